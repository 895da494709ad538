"""Selection methods. A model method is a generator of request rounds (methods.rounds): it
yields LogprobRequests, is answered by request, and reduces the answers to one score per
sample; none sees the engine or the model. `registry.METHODS` lists them all."""

from iclselect.methods.pool import Pool
from iclselect.methods.scores import MethodScores

__all__ = ["MethodScores", "Pool"]

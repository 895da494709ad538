"""Selection methods. Each plans LogprobRequests, has the engine answer them, and reduces the
answers to one score per sample; none calls the model itself. `registry.METHODS` lists them."""

from iclselect.methods.pool import Pool
from iclselect.methods.scores import MethodScores

__all__ = ["MethodScores", "Pool"]

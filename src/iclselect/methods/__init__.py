"""Selection methods. Each plans LogprobRequests, has the engine answer them, and reduces the
answers to one score per sample; none calls the model itself."""

from iclselect.methods.scores import Scores
from iclselect.methods.wici import WiciConfig, score_wici

__all__ = ["Scores", "WiciConfig", "score_wici"]

"""iclselect's guards against rows a score ranks first for the wrong reason; each is off by
default wherever it departs from a method's paper (docs/METHODS.md, "Guards on a dirty pool")."""

from __future__ import annotations

import numpy as np

from iclselect.selectors import Excluded

# A mean loss over one to three tokens is mostly noise, and a method ranking rows by their own
# loss then favours one-word answers.
MIN_TOKENS_DEFAULT = 0
MIN_TOKENS_HELP = (
    "rank only rows whose response has at least this many scored tokens (iclselect; 0: off, "
    "the paper's)"
)
LOSS_OUTLIERS_HELP = (
    "rank only rows whose response loss L(y|x) is at most the pool's median + 3 MADs, which "
    "leaves out word salad and responses that belong to another row (iclselect's guard on a "
    "dirty pool; off: the paper's)"
)
PREFILTER_IFD_HELP = (
    "rank only rows whose own IFD L(y|x) / L(y) is at most 1, which leaves out rows whose "
    "instruction does not help their response: refusals, another row's response (iclselect's "
    "guard on a dirty pool, Cherry's rule; asks L(y) too, one more request a row; off: the "
    "paper's)"
)
# Hampel's rule: a loss more than 3 robust standard deviations (1.4826 MAD each) above the
# pool's median is an outlier whatever the loss's scale.
_OUTLIER_MADS, _MAD_TO_SD = 3.0, 1.4826


def too_short(tokens: list[int], min_tokens: int) -> dict[int, Excluded]:
    """Rows whose response has fewer than `min_tokens` scored tokens (`tokens`, per row)."""
    return {
        i: Excluded("prefiltered", f"{n} response tokens < min_tokens {min_tokens}")
        for i, n in enumerate(tokens)
        if n < min_tokens
    }


def loss_outliers(losses: np.ndarray) -> dict[int, Excluded]:
    """Rows whose response loss is above the pool's median + 3 MADs (`losses`, per row; a NaN
    is no outlier)."""
    finite = losses[np.isfinite(losses)]
    if not len(finite):
        return {}
    median = float(np.median(finite))
    limit = median + _OUTLIER_MADS * _MAD_TO_SD * float(np.median(np.abs(finite - median)))
    return {
        i: Excluded("prefiltered", f"response loss {loss:.2f} > {limit:.2f} (median + 3 MADs)")
        for i, loss in enumerate(losses.tolist())
        if loss > limit
    }


def ifd_above_one(ifd: np.ndarray) -> dict[int, Excluded]:
    """Rows whose own IFD (`ifd`, per row) is above 1: the instruction does not help the model
    predict the response (a NaN is not above 1)."""
    return {
        i: Excluded("prefiltered", "IFD > 1: the instruction does not help")
        for i, value in enumerate(ifd.tolist())
        if value > 1
    }

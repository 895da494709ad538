"""Length-matched random subsets: the control that says whether a method adds anything beyond
the response lengths it picks.

The pool's response lengths (characters) are cut into quantile bins; a method's subset is
counted per bin, and a control draws, with a seeded generator, that many rows uniformly from
each bin of the pool. The control therefore has the method's length distribution (equal counts
per bin) and is random in everything else.
"""

from __future__ import annotations

import numpy as np

BINS = 10  # deciles of the pool's response length


def length_bins(lengths: list[int] | np.ndarray, bins: int = BINS) -> np.ndarray:
    """Each row's quantile bin (0 .. bins-1) by its length; equal lengths share a bin."""
    lengths = np.asarray(lengths, dtype=float)
    edges = np.quantile(lengths, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, lengths, side="right")


def matched_draw(
    lengths: list[int] | np.ndarray, chosen: list[int], seed: int, bins: int = BINS
) -> list[int]:
    """Pool indices of a random subset with as many rows in each length bin as `chosen`."""
    which = length_bins(lengths, bins)
    wanted = np.bincount(which[np.asarray(chosen, dtype=int)], minlength=bins)
    rng = np.random.default_rng(seed)
    drawn: list[int] = []
    for b, count in enumerate(wanted):
        members = np.flatnonzero(which == b)
        # chosen is a subset of the pool, so each bin holds at least `count` rows.
        drawn += rng.choice(members, size=int(count), replace=False).tolist()
    return sorted(drawn)

"""How a method ranks planted rows (defects.py) against clean ones.

A method's ranking is the order it would select the whole pool in, near-duplicate suppression
included; rows it never selects (excluded, unscored, suppressed) share the last place.

    AUC of clean over planted = P(a clean row ranks above a planted row), ties counted 1/2

1 means every clean row comes before every planted one, 0.5 is what random order gives, 0 means
the method prefers junk. Per kind, the planted rows are those of that kind only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iclselect.bench.quality.defects import CLEAN, KINDS


def positions(order: Sequence[int], n: int) -> np.ndarray:
    """Each row's place in `order` (0 first); rows not in it share place len(order)."""
    place = np.full(n, len(order), dtype=float)
    place[np.asarray(order, dtype=int)] = np.arange(len(order))
    return place


def clean_auc(order: Sequence[int], labels: Sequence[str], kind: str | None = None) -> float:
    """AUC of clean over planted rows (of `kind` only, if given); nan when either is absent."""
    place = positions(order, len(labels))
    clean = place[[label == CLEAN for label in labels]]
    planted = place[[label != CLEAN and kind in (None, label) for label in labels]]
    if not len(clean) or not len(planted):
        return float("nan")
    # Mann-Whitney by sorting: for each planted row, the clean rows strictly before it, plus
    # half of those tied with it.
    clean = np.sort(clean)
    before = np.searchsorted(clean, planted, side="left")
    tied = np.searchsorted(clean, planted, side="right") - before
    return float((before + tied / 2).sum() / (len(clean) * len(planted)))


def planted_share(indices: Sequence[int], labels: Sequence[str]) -> float:
    """The share of planted rows among the rows at `indices`."""
    if not len(indices):
        return float("nan")
    return sum(labels[i] != CLEAN for i in indices) / len(indices)


def junk_report(order: Sequence[int], labels: Sequence[str]) -> dict[str, float]:
    """AUC overall and per kind present: {"all": ..., "<kind>": ...}."""
    present = [kind for kind in KINDS if kind in labels]
    return {"all": clean_auc(order, labels)} | {k: clean_auc(order, labels, k) for k in present}


def planted_summary(
    labels: Sequence[str], orders: dict[str, Sequence[int]], arms: list[dict]
) -> dict[str, object]:
    """What the dirty track reports: the pool's planted share (random's expectation), each
    method's AUC of clean over planted rows (overall and per kind), and each arm's planted
    share. `labels`, `orders` (each method's ranking of the whole pool) and each arm's
    `pool_rows` all index the rows of the pool file."""
    by_arm = {
        arm["arm"]: planted_share(arm["pool_rows"], labels)
        for arm in arms
        if arm["method"] not in ("untuned", "full")
    }
    kinds = {kind: sum(label == kind for label in labels) for kind in KINDS}
    return {
        "pool_share": sum(kinds.values()) / len(labels),
        "kinds": kinds,
        "auc": {label: junk_report(order, labels) for label, order in orders.items()},
        "subset_share": by_arm,
    }

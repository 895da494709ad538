"""Selectors: turn scores into a kept subset, with a typed decision for every sample.

Every sample gets one `Reason`; the numbers behind it are separate fields (rank, the copy or
near-copy it lost to, the similarity), never text to parse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Reason = Literal[
    "selected", "below_budget", "below_threshold", "near_duplicate", "duplicate", "too_long",
    "prefiltered", "not_scored", "invalid",
]  # fmt: skip

# What each reason means; README and the report say the same.
REASONS: dict[str, str] = {
    "selected": "kept",
    "below_budget": "scored, but ranked below the budget's cut (see rank)",
    "below_threshold": "scored below the threshold",
    "near_duplicate": "too similar to a kept row (near_duplicate_of, similarity >= tau)",
    "duplicate": "identical to an earlier row (duplicate_of); only the first copy can be kept",
    "too_long": "its response leaves no room in the window for any of its own context",
    "prefiltered": "dropped by the method's own rule before selection (detail)",
    "not_scored": "the method has no score for it (detail)",
    "invalid": "a bad field, skipped with --skip-invalid (detail)",
}

# Scores this close (relative) to the last kept score are ties in all but rounding: which of
# them is kept then follows input order, not the method.
NEAR_TIE = 1e-6


@dataclass(frozen=True)
class Excluded:
    """A sample a method (or the window policy) refused to rank, and why."""

    reason: Reason
    detail: str


@dataclass(frozen=True)
class Budget:
    """Exactly one of: a fraction of the scored samples, a count, or a score threshold."""

    fraction: float | None = None
    count: int | None = None
    threshold: float | None = None
    # Errors name the limits as the caller wrote them: "fraction=" in Python, "--fraction" in
    # the CLI.
    api: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        def name(limit: str) -> str:
            return f"{limit}=" if self.api else f"--{limit}"

        given = [v for v in (self.fraction, self.count, self.threshold) if v is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {name('fraction')}, {name('count')} or {name('threshold')}"
            )
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ValueError(f"{name('fraction')} must be in (0, 1], got {self.fraction}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"{name('count')} must be at least 1, got {self.count}")

    def size(self, n: int) -> int:
        """Most samples to keep out of n candidates (a threshold has no size cap)."""
        if self.count is not None:
            return min(self.count, n)
        if self.fraction is not None:
            return min(n, max(1, round(self.fraction * n)))
        return n


@dataclass
class Selection:
    """One decision per sample; indices are sample indices (not source rows)."""

    selected: list[int]  # in the order they were accepted (best first)
    rank: list[int | None]  # 1 = highest score; None where not ranked
    reason: list[Reason]
    detail: list[str | None]
    duplicate_of: list[int | None]  # the first identical sample
    near_duplicate_of: list[int | None]  # the kept sample it is too similar to
    similarity: list[float | None]  # cosine to near_duplicate_of
    near_ties: list[int]  # left out below budget with a score tied with the last kept one

    @property
    def ranked(self) -> int:
        return sum(r is not None for r in self.rank)

    def warning(self) -> str | None:
        """A budget that selects nothing, or everything it could, selects nothing in effect."""
        if not self.selected:
            return f"the budget keeps 0 of the {self.ranked} ranked rows"
        if len(self.selected) == self.ranked:
            return f"the budget keeps all {self.ranked} ranked rows: none is left out for its score"
        return None


def first_copies(ids: Sequence[str]) -> list[int | None]:
    """For each sample, the index of the first sample with the same content id (None for the
    first copy itself)."""
    first: dict[str, int] = {}
    return [
        None if (at := first.setdefault(sample_id, i)) == i else at
        for i, sample_id in enumerate(ids)
    ]


def select(
    score: np.ndarray,
    budget: Budget,
    excluded: dict[int, Excluded],
    vectors: np.ndarray | None = None,
    tau: float | None = None,
    ids: Sequence[str] | None = None,
) -> Selection:
    """Greedy by score, highest first. With `ids`, only the first copy of identical samples is
    a candidate; later copies are `duplicate` and take no budget. With `vectors` (unit norm)
    and `tau`, a candidate is accepted only if its cosine similarity to every accepted sample
    is below tau."""
    n = len(score)
    duplicate_of = first_copies(ids) if ids is not None else [None] * n
    reason: list[Reason] = ["not_scored"] * n
    detail: list[str | None] = [None] * n
    for i, why in excluded.items():
        reason[i], detail[i] = why.reason, why.detail
    for i, first in enumerate(duplicate_of):
        if first is not None:
            reason[i], detail[i] = "duplicate", None
    scored = [
        i
        for i in range(n)
        if i not in excluded and duplicate_of[i] is None and not math.isnan(score[i])
    ]
    # Ties broken by sample order so that a rerun selects the same rows.
    order = sorted(scored, key=lambda i: (-score[i], i))
    rank: list[int | None] = [None] * n
    for position, i in enumerate(order, start=1):
        rank[i] = position
    near_of: list[int | None] = [None] * n
    similarity_to: list[float | None] = [None] * n
    limit = budget.size(len(order))
    accepted: list[int] = []
    for i in order:
        if len(accepted) >= limit:
            reason[i] = "below_budget"
            continue
        if budget.threshold is not None and score[i] < budget.threshold:
            reason[i], detail[i] = "below_threshold", f"threshold {budget.threshold:g}"
            continue
        if vectors is not None and tau is not None and accepted:
            similarity = vectors[accepted] @ vectors[i]
            closest = int(np.argmax(similarity))
            if similarity[closest] >= tau:
                reason[i], detail[i] = "near_duplicate", f"tau {tau:g}"
                near_of[i], similarity_to[i] = accepted[closest], float(similarity[closest])
                continue
        accepted.append(i)
        reason[i] = "selected"
    return Selection(
        accepted, rank, reason, detail, duplicate_of, near_of, similarity_to,
        _near_ties(score, accepted, reason),
    )  # fmt: skip


def _near_ties(score: np.ndarray, accepted: list[int], reason: list[Reason]) -> list[int]:
    if not accepted:
        return []
    last = float(score[accepted[-1]])
    close = NEAR_TIE * max(abs(last), 1e-12)
    return [
        i for i, why in enumerate(reason) if why == "below_budget" and abs(score[i] - last) <= close
    ]

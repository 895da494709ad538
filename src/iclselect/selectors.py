"""Selectors: turn scores into a kept subset, with a reason for every sample left out."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Budget:
    """Exactly one of: a fraction of the scored samples, a count, or a score threshold."""

    fraction: float | None = None
    count: int | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.fraction, self.count, self.threshold) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of --fraction, --count or --threshold")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ValueError(f"--fraction must be in (0, 1], got {self.fraction}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"--count must be at least 1, got {self.count}")

    def size(self, n: int) -> int:
        """Most samples to keep out of n candidates (a threshold has no size cap)."""
        if self.count is not None:
            return min(self.count, n)
        if self.fraction is not None:
            return min(n, max(1, round(self.fraction * n)))
        return n


@dataclass
class Selection:
    selected: list[int]  # sample indices in the order they were accepted (best first)
    rank: list[int | None]  # 1 = highest score; None where not scored
    reason: list[str]  # "selected" or why not, one per sample


def select(
    score: np.ndarray,
    budget: Budget,
    excluded: dict[int, str],
    vectors: np.ndarray | None = None,
    tau: float | None = None,
    rows: list[int] | None = None,
) -> Selection:
    """Greedy by score, highest first. With `vectors` (unit norm) and `tau`, a candidate is
    accepted only if its cosine similarity to every accepted sample is below tau. `rows` names
    samples in reasons (their source rows); sample indices are used without it."""
    n = len(score)
    scored = [i for i in range(n) if i not in excluded and not math.isnan(score[i])]
    # Ties broken by sample order so that a rerun selects the same rows.
    order = sorted(scored, key=lambda i: (-score[i], i))
    rank: list[int | None] = [None] * n
    for position, i in enumerate(order, start=1):
        rank[i] = position
    reason = [excluded.get(i, "not scored") for i in range(n)]
    limit = budget.size(len(order))
    accepted: list[int] = []
    for i in order:
        if len(accepted) >= limit:
            reason[i] = f"below budget (rank {rank[i]})"
            continue
        if budget.threshold is not None and score[i] < budget.threshold:
            reason[i] = f"score below threshold {budget.threshold}"
            continue
        if vectors is not None and tau is not None and accepted:
            similarity = vectors[accepted] @ vectors[i]
            closest = int(np.argmax(similarity))
            if similarity[closest] >= tau:
                reason[i] = (
                    f"near-duplicate of selected row {(rows or range(n))[accepted[closest]]} "
                    f"(cosine {similarity[closest]:.3f} >= {tau})"
                )
                continue
        accepted.append(i)
        reason[i] = "selected"
    return Selection(accepted, rank, reason)

"""Selectors: turn scores into a kept subset, with a typed decision for every sample.

Every sample gets one `Decision`: a `Reason` and the numbers behind it as fields (rank, the copy
or near-copy it gave way to, the similarity), never text to parse. scores.parquet holds them as
columns, and the manifest, the report and the closing summary read those columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from iclselect.errors import UsageError
from iclselect.infra.words import counted

Reason = Literal[
    "selected", "below_budget", "below_threshold", "near_duplicate", "duplicate", "too_long",
    "prefiltered", "not_scored", "invalid",
]  # fmt: skip

# What each reason means; docs/formats.md and the report say the same.
REASONS: dict[str, str] = {
    "selected": "kept",
    "below_budget": "scored, but ranked below the budget's cut (see rank)",
    "below_threshold": "its score is short of the threshold (below it; above it where lower "
    "scores are kept first)",
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
# Candidates compared with the accepted rows per matrix product (near-duplicate selection).
_BLOCK = 512


@dataclass(frozen=True)
class Excluded:
    """A sample a method (or the window policy) refused to rank, and why."""

    reason: Reason
    detail: str


@dataclass(frozen=True)
class Budget:
    """Exactly one of: a fraction of the scored samples, a count, or a score threshold (the
    score as shown: kept at or above it, or at or below it where lower scores come first)."""

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
            raise UsageError(
                f"give exactly one of {name('fraction')}, {name('count')} or {name('threshold')}"
            )
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise UsageError(f"{name('fraction')} must be in (0, 1], got {self.fraction}")
        if self.count is not None and self.count < 1:
            raise UsageError(f"{name('count')} must be at least 1, got {self.count}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise UsageError(f"{name('threshold')} must be a finite number, got {self.threshold}")

    def size(self, n: int) -> int:
        """Most samples to keep out of n candidates (a threshold has no size cap)."""
        if self.count is not None:
            return min(self.count, n)
        if self.fraction is not None:
            return min(n, max(1, round(self.fraction * n)))
        return n


def check_tau(tau: float, name: str = "--tau") -> None:
    """Refuse a near-duplicate threshold that is no cosine similarity worth having (0 or less:
    every row would be a near-duplicate of the first kept; NaN)."""
    if not (math.isfinite(tau) and tau > 0):
        raise UsageError(
            f"{name} must be a number above 0 (a cosine similarity; 1 or more turns the "
            f"near-duplicate step off); got {tau}"
        )


@dataclass(frozen=True)
class Decision:
    """What became of one sample, as data: the scores.parquet columns reason, rank,
    duplicate_of / near_duplicate_of and similarity are these fields, and nothing reads
    `detail`, which is words for a person."""

    reason: Reason
    rank: int | None = None  # 1 = highest score; None where not ranked
    # The sample it gave way to: the first identical one (duplicate) or the kept one it is too
    # similar to (near_duplicate); None for every other reason.
    related: int | None = None
    similarity: float | None = None  # cosine to `related` (near_duplicate)
    detail: str | None = None

    @property
    def duplicate_of(self) -> int | None:
        return self.related if self.reason == "duplicate" else None

    @property
    def near_duplicate_of(self) -> int | None:
        return self.related if self.reason == "near_duplicate" else None


@dataclass
class Selection:
    """One decision per sample; indices are sample indices (not source rows)."""

    decisions: list[Decision]
    selected: list[int]  # in the order they were accepted (best first)
    near_ties: list[int]  # left out below budget with a score tied with the last kept one

    # Each field of the decisions as one list, a value per sample.
    @property
    def reason(self) -> list[Reason]:
        return [d.reason for d in self.decisions]

    @property
    def rank(self) -> list[int | None]:
        return [d.rank for d in self.decisions]

    @property
    def detail(self) -> list[str | None]:
        return [d.detail for d in self.decisions]

    @property
    def duplicate_of(self) -> list[int | None]:
        return [d.duplicate_of for d in self.decisions]

    @property
    def near_duplicate_of(self) -> list[int | None]:
        return [d.near_duplicate_of for d in self.decisions]

    @property
    def similarity(self) -> list[float | None]:
        return [d.similarity for d in self.decisions]

    @property
    def ranked(self) -> int:
        return sum(d.rank is not None for d in self.decisions)

    def warning(self) -> str | None:
        """A budget that selects nothing, or everything it could, selects nothing in effect."""
        if not self.selected:
            return f"the budget keeps 0 of the {counted(self.ranked, 'ranked row')}"
        if len(self.selected) == self.ranked:
            every = "the 1 ranked row" if self.ranked == 1 else f"all {self.ranked} ranked rows"
            return f"the budget keeps {every}: none is left out for its score"
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
    *,
    vectors: np.ndarray | None = None,
    tau: float | None = None,
    ids: Sequence[str] | None = None,
    higher_first: bool = True,
) -> Selection:
    """Greedy by score, highest first (lowest first unless `higher_first`; a threshold then
    keeps scores at or below it). With `ids`, only the first copy of identical samples is a
    candidate; later copies are `duplicate` and take no budget. With `vectors` (unit norm) and
    `tau`, a candidate is accepted only if its cosine similarity to every accepted sample is
    below tau."""
    n = len(score)
    duplicate_of = first_copies(ids) if ids is not None else [None] * n
    decisions = [Decision("not_scored")] * n
    for i, why in excluded.items():
        decisions[i] = Decision(why.reason, detail=why.detail)
    for i, first in enumerate(duplicate_of):
        if first is not None:
            decisions[i] = Decision("duplicate", related=first)
    scored = [
        i
        for i in range(n)
        if i not in excluded and duplicate_of[i] is None and not math.isnan(score[i])
    ]
    sign = 1.0 if higher_first else -1.0
    # Ties broken by sample order so that a rerun selects the same rows.
    order = sorted(scored, key=lambda i: (-sign * score[i], i))
    limit = budget.size(len(order))
    check = vectors is not None and tau is not None
    # Candidates are taken in blocks: one matrix product gives a block's similarity to every
    # row accepted before it, another its similarity within itself, so the greedy walk never
    # recomputes what an earlier candidate already paid for (a row-at-a-time product against
    # the accepted set was 923 s at 52,000 rows; BENCHMARKS.md "Host side at scale").
    accepted_vectors = np.empty((limit, vectors.shape[1]), vectors.dtype) if check else None
    accepted: list[int] = []
    for start in range(0, len(order), _BLOCK):
        block = order[start : start + _BLOCK]
        if check and len(accepted) < limit:
            block_vectors = vectors[block]
            before = block_vectors @ accepted_vectors[: len(accepted)].T
            closest_before = before.argmax(axis=1) if accepted else None
            within = block_vectors @ block_vectors.T
        in_block: list[int] = []  # positions in the block of the rows it accepted
        for j, i in enumerate(block):
            rank = start + j + 1
            if len(accepted) >= limit:
                decisions[i] = Decision("below_budget", rank)
                continue
            if budget.threshold is not None and sign * score[i] < sign * budget.threshold:
                lower = "" if higher_first else " (lower scores first: kept at or below it)"
                decisions[i] = Decision(
                    "below_threshold", rank, detail=f"threshold {budget.threshold:g}{lower}"
                )
                continue
            if check:
                related, similarity = None, -math.inf
                if closest_before is not None:
                    related = accepted[closest_before[j]]
                    similarity = float(before[j, closest_before[j]])
                if in_block:
                    here = within[j, in_block]
                    best = int(np.argmax(here))
                    # On a tie the earlier accepted row is named, as the accepted order has it.
                    if here[best] > similarity:
                        related, similarity = block[in_block[best]], float(here[best])
                if related is not None and similarity >= tau:
                    decisions[i] = Decision(
                        "near_duplicate", rank, related, similarity, f"tau {tau:g}"
                    )
                    continue
                accepted_vectors[len(accepted)] = vectors[i]
                in_block.append(j)
            accepted.append(i)
            decisions[i] = Decision("selected", rank)
    return Selection(decisions, accepted, _near_ties(score, accepted, decisions))


def _near_ties(score: np.ndarray, accepted: list[int], decisions: list[Decision]) -> list[int]:
    if not accepted:
        return []
    last = float(score[accepted[-1]])
    close = NEAR_TIE * max(abs(last), 1e-12)
    return [
        i
        for i, decision in enumerate(decisions)
        if decision.reason == "below_budget" and abs(score[i] - last) <= close
    ]

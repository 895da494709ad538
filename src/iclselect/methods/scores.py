"""What a method returns: one score per sample, the parts it was computed from, and the samples
it refused to score, each with its reason (never a made-up score)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iclselect.selectors import Excluded


@dataclass
class MethodScores:
    method: str
    score: np.ndarray  # float64, one per sample, NaN where excluded
    components: dict[str, list[Any]] = field(default_factory=dict)  # column -> value per sample
    excluded: dict[int, Excluded] = field(default_factory=dict)  # by sample index
    params: dict[str, Any] = field(default_factory=dict)
    # Components that name other source rows (one row, or a list of rows, per sample), each
    # with the list components that go with its rows entry by entry: wICI's
    # {"probe_rows": ("probe_ici", "probe_weight")}. scores.parquet marks them in its schema.
    row_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Selection keeps the highest scores first, or with False the lowest (perplexity order=low,
    # length order=short): `score` is always the value as the user reads it, never negated.
    higher_first: bool = True
    # What a user must know before trusting these scores (ICon's selector at chance): the CLI
    # prints them, and the manifest and the report keep them.
    warnings: list[str] = field(default_factory=list)
    # Why selecting by these scores is refused unless the user insists (ICon's selector at
    # chance): a run stops with it after scoring; a dry run, whose answers are made up, not.
    refusal: str | None = None

    def ranking_key(self) -> np.ndarray:
        """The scores turned so that higher is better whatever the order (ranks, correlations)."""
        return self.score if self.higher_first else -self.score

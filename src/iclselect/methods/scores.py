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

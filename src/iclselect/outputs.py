"""The run's outputs besides the subset: scores.parquet (one row per input row) and
manifest.json (what was read, kept and dropped, and everything needed to repeat the run)."""

from __future__ import annotations

import json
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from iclselect.io import Dataset, replace_file
from iclselect.methods import Scores
from iclselect.select import Selection

_PACKAGES = (
    "iclselect", "torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy",
    "pyarrow", "datasets",
)  # fmt: skip


def scores_table(dataset: Dataset, scores: Scores, selection: Selection) -> pa.Table:
    """One row per INPUT row, invalid rows included, so nothing drops out unseen."""
    by_row = {sample.row: i for i, sample in enumerate(dataset.samples)}
    invalid = {bad.row: bad for bad in dataset.invalid}
    first_of: dict[str, int] = {}
    columns: dict[str, list[Any]] = {
        name: [] for name in ("row", "id", "score", "selected", "rank", "reason", "duplicate_of")
    }
    columns.update({name: [] for name in scores.components})
    for row in range(dataset.n_rows):
        i = by_row.get(row)
        if i is None:
            bad = invalid[row]
            field = f"field {bad.field!r}: " if bad.field else ""
            values: dict[str, Any] = {"reason": f"invalid: {field}{bad.message}", "selected": False}
        else:
            sample = dataset.samples[i]
            first = first_of.setdefault(sample.id, row)
            score = float(scores.score[i])
            values = {
                "id": sample.id,
                "score": None if score != score else score,
                "selected": selection.reason[i] == "selected",
                "rank": selection.rank[i],
                "reason": selection.reason[i],
                "duplicate_of": first if first != row else None,
                **{name: column[i] for name, column in scores.components.items()},
            }
        values["row"] = row
        for name, column in columns.items():
            column.append(values.get(name))
    return pa.table(columns)


def write_scores(path: Path, table: pa.Table) -> None:
    replace_file(path, lambda temp: pq.write_table(table, temp))


def manifest(
    dataset: Dataset,
    table: pa.Table,
    scores: Scores,
    config: dict[str, Any],
    model_id: str,
    template: str,
    subset_path: Path,
    timings: dict[str, float],
    engine_stats: dict[str, int],
) -> dict[str, Any]:
    reasons = Counter(_reason_kind(reason) for reason in table.column("reason").to_pylist())
    kept = reasons.pop("selected", 0)
    duplicates = table.column("duplicate_of").drop_null()
    return {
        "input": {
            "path": str(dataset.path),
            "schema": dataset.schema,
            "container": dataset.container,
            "compression": dataset.compression,
            "rows": dataset.n_rows,
        },
        "kept": kept,
        "dropped": dataset.n_rows - kept,
        "dropped_by_reason": dict(sorted(reasons.items())),
        "invalid_rows": [
            {"row": bad.row, "field": bad.field, "message": bad.message} for bad in dataset.invalid
        ],
        "exact_duplicates": {
            "rows": len(duplicates),
            "note": "rows identical to an earlier row; scores.parquet column duplicate_of",
        },
        "method": {"name": scores.method, "params": scores.params},
        "model": model_id,
        "template": template,
        "config": config,
        "outputs": {"subset": subset_path.name, "scores": "scores.parquet"},
        "versions": {name: _version(name) for name in _PACKAGES},
        "engine": engine_stats,
        "seconds": {name: round(value, 2) for name, value in timings.items()},
    }


def write_manifest(path: Path, content: dict[str, Any]) -> None:
    text = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
    replace_file(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def _reason_kind(reason: str) -> str:
    """Group per-row reasons ("below budget (rank 12)") into countable kinds ("below budget")."""
    return reason.split(":")[0].split(" (")[0].split(" of selected")[0]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None

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

from iclselect.embed.atlas import Atlas
from iclselect.io import Dataset, replace_dir, replace_file
from iclselect.io.tables import save_quietly
from iclselect.methods import MethodScores
from iclselect.selectors import Selection

_PACKAGES = (
    "iclselect", "torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy",
    "pyarrow", "datasets",
)  # fmt: skip


def scores_table(
    dataset: Dataset, scores: MethodScores, selection: Selection | None = None
) -> pa.Table:
    """One row per INPUT row, invalid rows included, so nothing drops out unseen. Without a
    selection (scores not yet selected from) there are no selected/rank columns, and `reason`
    is set only where a row was not scored."""
    by_row = {sample.row: i for i, sample in enumerate(dataset.samples)}
    invalid = {bad.row: bad for bad in dataset.invalid}
    first_of: dict[str, int] = {}
    names = ["row", "id", "score", "selected", "rank", "reason", "duplicate_of"]
    if selection is None:
        names = [name for name in names if name not in ("selected", "rank")]
    columns: dict[str, list[Any]] = {name: [] for name in names}
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
                "duplicate_of": first if first != row else None,
                **{name: column[i] for name, column in scores.components.items()},
            }
            if selection is None:
                values["reason"] = scores.excluded.get(i)
            else:
                values["selected"] = selection.reason[i] == "selected"
                values["rank"] = selection.rank[i]
                values["reason"] = selection.reason[i]
        values["row"] = row
        for name, column in columns.items():
            column.append(values.get(name))
    return pa.table(columns)


def with_atlas(table: pa.Table, dataset: Dataset, atlas: Atlas) -> pa.Table:
    """scores table + map_x, map_y, cluster, cluster_central (null for invalid rows)."""
    n = table.num_rows
    columns: dict[str, list[Any]] = {
        name: [None] * n for name in ("map_x", "map_y", "cluster", "cluster_central")
    }
    for i, sample in enumerate(dataset.samples):
        columns["map_x"][sample.row] = float(atlas.xy[i, 0])
        columns["map_y"][sample.row] = float(atlas.xy[i, 1])
        columns["cluster"][sample.row] = int(atlas.cluster[i])
        columns["cluster_central"][sample.row] = bool(atlas.central[i])
    for name, values in columns.items():
        table = table.append_column(name, pa.array(values))
    return table


def with_scores(dataset: Dataset, table: pa.Table, rows: list[int]) -> pa.Table:
    """The input's own columns for `rows`, followed by their score columns, each prefixed
    `iclselect_` so they cannot clash with the input's."""
    data = dataset.table(rows)
    picked = table.take(pa.array(rows, type=pa.int64()))
    for name in picked.column_names:
        if name != "row":
            data = data.append_column(f"iclselect_{name}", picked.column(name))
    return data


def write_scored_subset(target: Path, dataset: Dataset, table: pa.Table, rows: list[int]) -> Path:
    """The kept rows with their scores, as a datasets dataset (save_to_disk) at `target`."""
    import datasets

    scored = datasets.Dataset(with_scores(dataset, table, rows))
    replace_dir(target, lambda temp: save_quietly(scored, temp))
    return target


def write_scores(path: Path, table: pa.Table) -> None:
    replace_file(path, lambda temp: pq.write_table(table, temp))


def manifest(
    dataset: Dataset,
    table: pa.Table,
    scores: MethodScores,
    config: dict[str, Any],
    model_id: str | None,
    template: str | None,
    files: list[Path],
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
            "unused_columns": dataset.unused_columns,
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
        "outputs": [path.name for path in files] + ["manifest.json"],
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

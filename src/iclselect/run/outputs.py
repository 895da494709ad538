"""The run's outputs besides the subset: scores.parquet (one row per input row) and
manifest.json (what was read, kept and dropped, and everything needed to repeat the run)."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iclselect.embed.atlas import Atlas
from iclselect.io import Dataset, replace_dir, replace_file
from iclselect.io.tables import save_quietly
from iclselect.methods import MethodScores
from iclselect.run.overlong import CUT_COLUMNS
from iclselect.selectors import Selection, first_copies

if TYPE_CHECKING:
    import pandas as pd

_PACKAGES = (
    "iclselect", "torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy",
    "pyarrow", "datasets",
)  # fmt: skip


# The columns every scores table starts with, typed so that every run has the same schema
# (int64 with nulls, never a float column that happens to have no nulls in one run).
BASE: dict[str, pa.DataType] = {
    "row": pa.int64(), "id": pa.string(), "score": pa.float64(), "selected": pa.bool_(),
    "rank": pa.int64(), "reason": pa.string(), "detail": pa.string(),
    "duplicate_of": pa.int64(), "near_duplicate_of": pa.int64(), "similarity": pa.float64(),
}  # fmt: skip
_SELECTION_ONLY = ("selected", "rank", "near_duplicate_of", "similarity")


def scores_table(
    dataset: Dataset, scores: MethodScores, selection: Selection | None = None
) -> pa.Table:
    """One row per INPUT row, invalid rows included, so nothing drops out unseen. Without a
    selection (scores not yet selected from) there are no selected, rank, near_duplicate_of or
    similarity columns, and `reason` is set only where a row will not be ranked."""
    samples = dataset.samples
    source = [sample.row for sample in samples]
    by_row = {row: i for i, row in enumerate(source)}
    invalid = {bad.row: bad for bad in dataset.invalid}
    first_of = first_copies([sample.id for sample in samples])
    names = [n for n in BASE if selection is not None or n not in _SELECTION_ONLY]
    columns: dict[str, list[Any]] = {name: [] for name in names}
    columns.update({name: [] for name in scores.components})
    for row in range(dataset.n_rows):
        i = by_row.get(row)
        if i is None:
            bad = invalid[row]
            field = f"field {bad.field!r}: " if bad.field else ""
            values: dict[str, Any] = {
                "reason": "invalid",
                "detail": f"{field}{bad.message}",
                "selected": False,
            }
        else:
            score = float(scores.score[i])
            first = first_of[i]
            values = {
                "id": samples[i].id,
                "score": None if math.isnan(score) else score,
                "duplicate_of": None if first is None else source[first],
                **{name: column[i] for name, column in scores.components.items()},
            }
            if selection is not None:
                decision = selection.decisions[i]
                near = decision.near_duplicate_of
                values |= {
                    "selected": decision.reason == "selected",
                    "rank": decision.rank,
                    "reason": decision.reason,
                    "detail": decision.detail,
                    "near_duplicate_of": None if near is None else source[near],
                    "similarity": decision.similarity,
                }
            elif first is not None:
                values["reason"] = "duplicate"
            elif i in scores.excluded:
                values["reason"] = scores.excluded[i].reason
                values["detail"] = scores.excluded[i].detail
        values["row"] = row
        for name, column in columns.items():
            column.append(values.get(name))
    table = pa.table(
        {name: pa.array(values, type=BASE.get(name)) for name, values in columns.items()}
    )
    order = b"true" if scores.higher_first else b"false"
    table = table.replace_schema_metadata({HIGHER_FIRST: order})
    return with_row_columns(table, scores.row_columns)


# Schema metadata key of a scores table: b"true" where the highest scores were kept first,
# b"false" where the lowest were (perplexity order=low, length order=short).
HIGHER_FIRST = b"iclselect.higher_first"


def higher_first(schema: pa.Schema) -> bool:
    """Whether the scores of a scores table with `schema` are kept highest first."""
    return (schema.metadata or {}).get(HIGHER_FIRST, b"true") == b"true"


# Field metadata key of a column whose values are source rows (one, or a list, per row); its
# value is the JSON list of the columns that go with a list's rows entry by entry.
ROW_COLUMN = b"iclselect.rows"


def with_row_columns(table: pa.Table, row_columns: dict[str, tuple[str, ...]]) -> pa.Table:
    """`table` with its row-reference columns marked in the schema, so that readers (the
    report) know them from the schema, not from their names."""
    if not row_columns:
        return table
    fields = [
        field.with_metadata({ROW_COLUMN: json.dumps(list(row_columns[field.name])).encode()})
        if field.name in row_columns
        else field
        for field in table.schema
    ]
    return table.cast(pa.schema(fields, table.schema.metadata))


def row_columns(schema: pa.Schema) -> dict[str, list[str]]:
    """The row-reference columns marked in `schema`, each with the columns that go with it."""
    return {
        field.name: json.loads(field.metadata[ROW_COLUMN])
        for field in schema
        if field.metadata and ROW_COLUMN in field.metadata
    }


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """`table` in pandas, integer columns as nullable Int64 whether or not they hold nulls."""
    import pandas as pd

    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


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
    """scores.parquet, with pandas metadata that makes pd.read_parquet give the same dtypes as
    to_pandas (Int64 for integer columns)."""
    pandas_schema = pa.Schema.from_pandas(to_pandas(table.slice(0, 0)), preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), **pandas_schema.metadata}
    )
    replace_file(path, lambda temp: pq.write_table(table, temp))


@dataclass(frozen=True)
class ModelUsed:
    """What scored a run's rows; None each for a method without a model."""

    id: str | None = None
    template: str | None = None  # the template's fingerprint
    dtype: str | None = None  # as --dtype names it: what auto resolved to


def manifest(
    dataset: Dataset,
    table: pa.Table,
    scores: MethodScores,
    *,
    config: dict[str, Any],
    model: ModelUsed,
    files: list[Path],
    timings: dict[str, float],
    engine_stats: dict[str, int],
    cut: dict[str, Any],
) -> dict[str, Any]:
    """`cut`: the last kept score and the rows left out whose score ties it (near_ties)."""
    reasons = Counter(table.column("reason").to_pylist())
    kept = reasons.pop("selected", 0)
    duplicates = table.column("duplicate_of").drop_null()
    too_long = [
        {name: row[name] for name in ("row", *CUT_COLUMNS)}
        for row in table.filter(pc.equal(table["reason"], "too_long")).to_pylist()
    ]
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
            "note": "rows identical to an earlier row (scores.parquet column duplicate_of); "
            "only the first copy can be selected",
        },
        "too_long": {
            "rows": too_long,
            "policy": "a row whose own context is cut away entirely to fit --max-length (its "
            "response fills the window) is not ranked",
        },
        "cut": cut,
        "method": {
            "name": scores.method,
            "params": scores.params,
            "higher_first": scores.higher_first,
        },
        "warnings": scores.warnings,
        "model": model.id,
        "template": model.template,
        "dtype": model.dtype,  # the one the model ran in (config.dtype may say auto)
        "config": config,
        "outputs": [path.name for path in files] + ["manifest.json"],
        "versions": {name: _version(name) for name in _PACKAGES},
        "engine": engine_stats,
        "seconds": {name: round(value, 2) for name, value in timings.items()},
    }


def write_manifest(path: Path, content: dict[str, Any]) -> None:
    text = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
    replace_file(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None

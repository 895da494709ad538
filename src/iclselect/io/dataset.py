"""The Dataset a reader returns: normalised samples plus what it takes to write rows back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from iclselect.io.errors import InvalidRow
from iclselect.io.layout import Layout
from iclselect.io.llamafactory import LlamaFactoryEntry
from iclselect.io.tables import hf_table
from iclselect.records import Sample

if TYPE_CHECKING:
    import datasets


@dataclass(frozen=True)
class TextSource:
    """JSON, JSON Lines or CSV: rows are written back as their original bytes."""

    layout: Layout
    suffix: str  # the input's extension(s), e.g. ".jsonl.gz"
    # Each row as parsed (None where it did not parse), for writing rows as a table.
    values: list[dict[str, Any] | None] = field(default_factory=list)


@dataclass(frozen=True)
class ParquetSource:
    table: pa.Table


@dataclass(frozen=True)
class HFSource:
    dataset: datasets.Dataset


Source = TextSource | ParquetSource | HFSource


@dataclass(kw_only=True)
class Dataset:
    """One input file, read.

    `samples` are the valid rows in input order, each with `Sample.row` its 0-based source row
    index; `invalid` the rows dropped under skip_invalid. Every source row is one or the other:
    len(samples) + len(invalid) == n_rows.
    """

    path: Path
    schema: str  # "alpaca" | "sharegpt" | "messages"
    container: str  # "json" | "jsonl" | "csv" | "parquet" | "hf"
    compression: str | None  # "gzip" for *.gz
    n_rows: int
    samples: list[Sample]
    invalid: list[InvalidRow]
    # How to write rows back; None for a Dataset built by hand, which cannot be written.
    _source: Source | None = field(default=None, repr=False, compare=False)
    # The LLaMA-Factory dataset_info.json entry the data was read through, if any.
    entry: LlamaFactoryEntry | None = None
    # Columns the schema does not read: carried into the subset, never scored.
    unused_columns: list[str] = field(default_factory=list)

    def table(self, rows: list[int]) -> pa.Table:
        """The given source rows (valid ones) as an Arrow table with the input's columns."""
        source = self._source
        if isinstance(source, TextSource):
            return pa.Table.from_pylist([source.values[row] for row in rows])
        if isinstance(source, ParquetSource):
            return source.table.take(pa.array(rows, type=pa.int64()))
        if isinstance(source, HFSource):
            return hf_table(source.dataset.select(rows))
        raise ValueError("this Dataset was not made by a reader and holds no rows")

"""The Dataset a reader returns: normalised samples plus what it takes to write rows back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from iclselect.io.errors import InvalidRow
from iclselect.io.layout import Layout
from iclselect.records import Sample

if TYPE_CHECKING:
    import datasets


@dataclass(frozen=True)
class TextSource:
    """JSON, JSON Lines or CSV: rows are written back as their original bytes."""

    layout: Layout
    suffix: str  # the input's extension(s), e.g. ".jsonl.gz"


@dataclass(frozen=True)
class ParquetSource:
    table: pa.Table


@dataclass(frozen=True)
class HFSource:
    dataset: datasets.Dataset


Source = TextSource | ParquetSource | HFSource


@dataclass
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

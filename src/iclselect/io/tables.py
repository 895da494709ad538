"""Columnar containers: Parquet files and datasets saved with datasets' save_to_disk.

Their round trip is exact at the table level (same schema, values and row order), not
byte-for-byte: pyarrow and datasets rewrite the file with their own encoding, compression and
row groups. Arrow values are read as plain Python objects (lists, dicts, str, None).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from iclselect.io.errors import InputError

if TYPE_CHECKING:
    import datasets


def read_parquet(files: Sequence[Path]) -> pa.Table:
    """One Parquet file, or the shards of one split concatenated in order."""
    tables = []
    for path in files:
        try:
            tables.append(pq.read_table(path))
        except (pa.ArrowException, OSError) as error:
            raise InputError(str(path), f"not a readable Parquet file: {error}") from None
    try:
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    except pa.ArrowInvalid as error:
        raise InputError(str(files[0].parent), f"shards have different schemas: {error}") from None


def read_arrow(files: Sequence[Path]) -> datasets.Dataset:
    """Arrow files as datasets writes them (its cache files and save_to_disk shards)."""
    import datasets

    parts = []
    for path in files:
        try:
            parts.append(datasets.Dataset.from_file(str(path)))
        except (OSError, ValueError, pa.ArrowException) as error:
            raise InputError(str(path), f"not a readable Arrow file: {error}") from None
    return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def read_hf(path: Path, split: str | None = None) -> datasets.Dataset:
    """A save_to_disk directory; of a DatasetDict, the split named, or its only split."""
    import datasets  # slow to import, and only this container needs it

    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError, pa.ArrowException) as error:
        raise InputError(str(path), f"not a readable Hugging Face dataset: {error}") from None
    if not isinstance(loaded, datasets.DatasetDict):
        if split is not None:
            raise InputError(str(path), f"--split {split}: holds one dataset, not a DatasetDict")
        return loaded
    splits = list(loaded)
    if split is None and len(splits) == 1:
        return loaded[splits[0]]
    if split is None:
        raise InputError(str(path), f"holds the splits {splits}; choose one with --split")
    if split not in loaded:
        raise InputError(str(path), f"no split {split!r}; splits: {splits}")
    return loaded[split]


def hf_table(dataset: datasets.Dataset) -> pa.Table:
    # The "arrow" format honours an indices mapping, which dataset.data alone would not.
    return dataset.with_format("arrow")[:]


def write_parquet(table: pa.Table, rows: Sequence[int], target: Path) -> None:
    pq.write_table(table.take(pa.array(rows, type=pa.int64())), target)


def write_hf(dataset: datasets.Dataset, rows: Sequence[int], target: Path) -> None:
    save_quietly(dataset.select(rows), target)


def save_quietly(dataset: datasets.Dataset, target: Path) -> None:
    """save_to_disk without its progress bar, which would break the run's own output."""
    from datasets.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        dataset.save_to_disk(str(target))
    finally:
        if shown:
            logging.enable_progress_bar()

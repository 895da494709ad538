"""write_subset: chosen rows out, in the input's own format. (The subset's LLaMA-Factory
entry is written by io/llamafactory.py, beside its reader.)"""

from __future__ import annotations

import gzip
import operator
from collections.abc import Sequence
from pathlib import Path

from iclselect.io.dataset import Dataset, HFSource, ParquetSource, TextSource
from iclselect.io.files import replace_dir, replace_file
from iclselect.io.tables import write_hf, write_parquet


def write_subset(dataset: Dataset, rows: Sequence[int], out_dir: str | Path) -> Path:
    """Write the given source rows to out_dir/'subset<input's extension(s)>'.

    Rows may come in any order and are written once each, in input order. JSON, JSON Lines and
    CSV rows are written byte-for-byte as read (gzip-compressed again for a .gz input), with
    the file's own head, separators and tail, so writing every row reproduces the input.
    Parquet and save_to_disk datasets are rewritten from the table: exact in schema and values,
    not in bytes. The write is atomic: a temporary in out_dir, then os.replace.
    """
    source = dataset._source
    if source is None:
        raise ValueError("this Dataset was not made by read_dataset and cannot be written")
    chosen = _rows(rows, dataset.n_rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(source, TextSource):
        target = out / f"subset{source.suffix}"
        data = source.layout.join(chosen)
        if dataset.compression == "gzip":
            # mtime=0 keeps the output identical from run to run.
            data = gzip.compress(data, mtime=0)
        replace_file(target, lambda temp: temp.write_bytes(data))
    elif isinstance(source, ParquetSource):
        target = out / "subset.parquet"
        replace_file(target, lambda temp: write_parquet(source.table, chosen, temp))
    else:
        assert isinstance(source, HFSource)
        target = out / "subset"
        replace_dir(target, lambda temp: write_hf(source.dataset, chosen, temp))
    return target


def _rows(rows: Sequence[int], n_rows: int) -> list[int]:
    chosen = sorted({operator.index(row) for row in rows})
    if chosen and (chosen[0] < 0 or chosen[-1] >= n_rows):
        bad = chosen[0] if chosen[0] < 0 else chosen[-1]
        raise IndexError(f"row {bad} out of range: the dataset has {n_rows} rows")
    return chosen

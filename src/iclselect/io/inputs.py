"""read_input: whatever a user hands iclselect (a path, a LLaMA-Factory entry, rows in memory)
read into one Dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iclselect.errors import UsageError
from iclselect.io.dataset import Dataset
from iclselect.io.errors import InputError
from iclselect.io.llamafactory import INFO_FILE, is_info_file, read_entry
from iclselect.io.read import read_dataset, read_records


def read_input(
    data: Any,
    *,
    format: str = "auto",
    fields: dict[str, str] | None = None,
    skip_invalid: bool = False,
    dataset: str | None = None,
    split: str | None = None,
) -> Dataset:
    """`data`: a file or directory path, "-" for standard input (see read_dataset); a
    LLaMA-Factory dataset_info.json, or its directory, with `dataset` naming the entry; or a
    list of dicts, a pandas DataFrame or a datasets.Dataset (see read_records). `split` picks
    one split of a DatasetDict directory."""
    if not isinstance(data, (str, Path)):
        if dataset is not None:
            raise UsageError("dataset names a LLaMA-Factory entry: give its dataset_info.json")
        return read_records(data, format=format, fields=fields, skip_invalid=skip_invalid)
    path = Path(data)
    if dataset is None and not is_info_file(path):
        return read_dataset(
            path, format=format, fields=fields, skip_invalid=skip_invalid, split=split
        )
    info = path / INFO_FILE if path.is_dir() else path
    if not info.is_file():
        raise InputError(
            str(info), "no such file: --dataset reads a LLaMA-Factory dataset_info.json"
        )
    if format != "auto" or fields:
        raise InputError(str(info), "the entry sets the format and columns: drop --format/--fields")
    found = read_entry(info, dataset)
    read = read_dataset(
        found.path,
        format=found.format,
        fields=found.fields,
        skip_invalid=skip_invalid,
        roles=found.roles,
        split=split,
    )
    read.entry = found.entry
    return read

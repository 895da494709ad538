"""Which container a path holds, told from its name (or, for a directory, its contents)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iclselect.io.errors import InputError

CONTAINERS: tuple[str, ...] = ("json", "jsonl", "csv", "parquet", "hf")

_TEXT_SUFFIXES = {".json": "json", ".jsonl": "jsonl", ".csv": "csv"}
# save_to_disk writes these next to the Arrow files (dataset_dict.json for a DatasetDict).
_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


@dataclass(frozen=True)
class Location:
    container: str
    compression: str | None
    suffix: str  # the input's extension(s) as spelled, e.g. ".jsonl.gz"; "" for a directory


def locate(path: Path) -> Location:
    if not path.exists():
        raise InputError(str(path), "no such file or directory")
    if path.is_dir():
        if any((path / marker).is_file() for marker in _HF_MARKERS):
            return Location("hf", None, "")
        raise InputError(
            str(path),
            "directory is not a Hugging Face dataset saved with save_to_disk "
            f"(none of {list(_HF_MARKERS)} inside)",
        )
    suffixes = path.suffixes
    last = suffixes[-1] if suffixes else ""
    compression = "gzip" if last.lower() == ".gz" else None
    inner = (suffixes[-2] if len(suffixes) > 1 else "") if compression else last
    if inner.lower() in _TEXT_SUFFIXES:
        suffix = inner + last if compression else inner
        return Location(_TEXT_SUFFIXES[inner.lower()], compression, suffix)
    if inner.lower() == ".parquet" and compression is None:
        return Location("parquet", None, inner)
    given = "".join(suffixes[-2:]) if compression else last
    raise InputError(
        str(path),
        f"unsupported file extension {given or '(none)'!r}; expected .json, .jsonl or .csv "
        "(each optionally .gz), .parquet, or a directory saved by datasets' save_to_disk",
    )

"""Which container a path holds, told from its name (or, for a directory, its contents)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from iclselect.io.errors import InputError

CONTAINERS: tuple[str, ...] = ("json", "jsonl", "csv", "parquet", "arrow", "hf")

_TEXT_SUFFIXES = {".json": "json", ".jsonl": "jsonl", ".csv": "csv"}
# save_to_disk writes these next to the Arrow files (dataset_dict.json for a DatasetDict).
_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
# Hub shards are named "<split>-00000-of-00002.parquet"; the split is what comes before.
_SHARD = re.compile(r"^(?P<split>.*?)-\d{5}-of-\d{5}$")


@dataclass(frozen=True)
class Location:
    container: str
    compression: str | None
    suffix: str  # the input's extension(s) as spelled, e.g. ".jsonl.gz"; "" for a directory
    files: tuple[Path, ...] = ()  # a directory of Parquet or Arrow shards: the shards, in order
    data: bytes | None = None  # the content itself, when it came from standard input


def locate(path: Path) -> Location:
    if not path.exists():
        raise InputError(str(path), "no such file or directory")
    if path.is_dir():
        if any((path / marker).is_file() for marker in _HF_MARKERS):
            return Location("hf", None, "")
        for container in ("parquet", "arrow"):
            shards = sorted(path.rglob(f"*.{container}"))
            if shards:
                return Location(container, None, "", _one_split(path, shards))
        raise InputError(
            str(path),
            "directory is not a Hugging Face dataset saved with save_to_disk "
            f"(none of {list(_HF_MARKERS)} inside) and holds no .parquet or .arrow shards",
        )
    suffixes = path.suffixes
    last = suffixes[-1] if suffixes else ""
    compression = "gzip" if last.lower() == ".gz" else None
    inner = (suffixes[-2] if len(suffixes) > 1 else "") if compression else last
    if inner.lower() in _TEXT_SUFFIXES:
        suffix = inner + last if compression else inner
        return Location(_TEXT_SUFFIXES[inner.lower()], compression, suffix)
    if inner.lower() in (".parquet", ".arrow") and compression is None:
        return Location(inner.lower()[1:], None, inner, (path,))
    given = "".join(suffixes[-2:]) if compression else last
    raise InputError(
        str(path),
        f"unsupported file extension {given or '(none)'!r}; expected .json, .jsonl or .csv "
        "(each optionally .gz), .parquet, .arrow, or a directory saved by datasets' "
        "save_to_disk or holding .parquet/.arrow shards",
    )


def _one_split(directory: Path, shards: list[Path]) -> tuple[Path, ...]:
    """The shards, refusing a directory that holds several splits: mixing train and test rows
    would select from data the user did not mean to give."""
    splits = {_split(shard) for shard in shards}
    if len(splits) > 1:
        raise InputError(
            str(directory),
            f"holds shards of several splits {sorted(splits)}; pass one split's shard file or "
            "a directory holding only that split",
        )
    return tuple(shards)


def _split(shard: Path) -> str:
    match = _SHARD.match(shard.name.split(".")[0])
    return str(shard.parent / (match.group("split") if match else ""))

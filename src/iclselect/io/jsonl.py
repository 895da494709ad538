"""Plain JSON-lines files outside the formats iclselect selects from (ICon's assessment set,
eval sets): rows as dicts, with errors that name the file, row and field."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from iclselect.io.errors import InputError, json_reason


def first_row(path: Path) -> dict[str, Any] | None:
    """The first line as a JSON object, or None if it is not one."""
    with _open(path) as handle:
        line = handle.readline()
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(0-based line number, object) for every non-blank line."""
    with _open(path) as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                reason = f"not valid JSON: {json_reason(error.msg)} at column {error.colno}"
                raise InputError(str(path), reason, number) from None
            if not isinstance(row, dict):
                raise InputError(str(path), "not a JSON object", number)
            yield number, row


def need(row: dict[str, Any], field: str, kind: type, path: Path, number: int) -> Any:
    """row[field], which must be a `kind`."""
    value = row.get(field)
    if not isinstance(value, kind):
        raise InputError(str(path), f"missing or not a {_NAMES[kind]}", number, field)
    return value


_NAMES = {str: "string", list: "list", int: "integer", dict: "object"}


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")

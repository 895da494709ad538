"""Errors for bad input: one exception for the caller, one record per dropped row."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def _one_line(text: str) -> str:
    # Messages from json/pyarrow/datasets may span lines; a CLI error must stay one line.
    return _LINE_BREAKS.sub(" ", text).strip()


def json_reason(message: str) -> str:
    """json's message, ready for "at column N" to follow: some end on a dangling "at"
    ("Unterminated string starting at")."""
    return message.removesuffix(" at")


def locate_row(row: int | None, line: int | None) -> str:
    """'row 3 (line 4)': rows are 0-based like Sample.row, lines 1-based like an editor."""
    if row is None:
        return f"line {line}" if line is not None else ""
    return f"row {row} (line {line})" if line is not None else f"row {row}"


class InputError(Exception):
    """One bad input.

    str(e) is one line: '{path}: row {row} (line {line}): field {field!r}: {message}', leaving
    out the parts that are unknown (an empty file has no row, a bad JSON line no field).
    """

    def __init__(
        self,
        path: str,
        message: str,
        row: int | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        # All arguments go to Exception so that pickling (multiprocessing) rebuilds the error.
        super().__init__(path, message, row, field, line)
        self.path = str(path)
        self.message = _one_line(message)
        self.row = row
        self.field = field
        self.line = line

    def __str__(self) -> str:
        parts = [self.path]
        where = locate_row(self.row, self.line)
        if where:
            parts.append(where)
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        parts.append(self.message)
        return ": ".join(parts)


@dataclass(frozen=True)
class InvalidRow:
    """A row dropped under skip_invalid; `row` is its 0-based source row index."""

    row: int
    field: str | None
    message: str
    line: int | None = None


class RowError(Exception):
    """A problem confined to one row; the reader turns it into InputError or InvalidRow."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, field)
        self.message = _one_line(message)
        self.field = field

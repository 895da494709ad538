"""The bytes of a text file cut into rows, so that any subset of rows can be written back
byte-for-byte as it was read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from iclselect.io.errors import RowError


@dataclass
class Layout:
    """head + raws[0] + seps[1] + raws[1] + ... + seps[n-1] + raws[n-1] + tail == the file.

    `head` holds everything before the first row (a byte-order mark, "[" and indentation, a CSV
    header line); `seps[k]` the bytes between row k-1 and row k (",\\n  ", newlines, blank
    lines); `tail` everything after the last row. seps[0] is always empty.
    """

    head: bytes
    seps: list[bytes]
    raws: list[bytes]
    tail: bytes

    def join(self, rows: Iterable[int]) -> bytes:
        """The file holding only `rows` (sorted, unique). Each row keeps the separator that
        preceded it, except the first, whose place the head takes. With no rows, the tail's
        leading whitespace, which ended the last row, goes too: an empty JSON Lines subset is
        an empty file, not a blank line."""
        pieces = [self.head]
        for n, k in enumerate(rows):
            if n:
                pieces.append(self.seps[k])
            pieces.append(self.raws[k])
        pieces.append(self.tail if len(pieces) > 1 else self.tail.lstrip())
        return b"".join(pieces)


def layout_from_spans(data: bytes, spans: list[tuple[int, int]]) -> Layout:
    """The layout of `data` whose rows sit at the given (start, end) byte spans, in order."""
    seps = [b""] + [data[spans[k - 1][1] : spans[k][0]] for k in range(1, len(spans))]
    raws = [data[start:end] for start, end in spans]
    return Layout(data[: spans[0][0]], seps, raws, data[spans[-1][1] :])


@dataclass
class ParsedRow:
    """One source row: its value when it parsed, else the problem that stopped it."""

    line: int | None
    value: dict[str, Any] | None = None
    problem: RowError | None = None


def non_utf8(data: bytes, offset: int, compression: str | None) -> str:
    where = " of the decompressed data" if compression else ""
    return f"non-UTF-8 byte 0x{data[offset]:02x} at byte offset {offset}{where}"

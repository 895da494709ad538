"""CSV files, cut into records: a header, then one row per record.

A record may span several lines (a quoted field holding newlines), so csv.reader is fed one
line at a time and the lines each record consumed are counted. Empty lines are not rows.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from contextlib import contextmanager

from iclselect.io.errors import InputError, RowError
from iclselect.io.layout import Layout, ParsedRow, layout_from_spans, non_utf8

# Long responses exceed csv's default 128 KiB field limit; 2**31 - 1 is the largest value
# every platform's C long accepts.
_FIELD_LIMIT = 2**31 - 1


def parse_csv(
    data: bytes, path: str, compression: str | None
) -> tuple[list[str], Layout, list[ParsedRow]]:
    """The header's column names, the layout, and one ParsedRow per record."""
    feed = _LineFeed(data, compression)
    spans: list[tuple[int, int]] = []
    rows: list[ParsedRow] = []
    with _field_limit(_FIELD_LIMIT):
        # strict: a stray or unclosed quote is an error, not a field that silently swallows
        # the lines after it.
        reader = csv.reader(feed, strict=True)
        header = _header(reader, feed, path)
        while True:
            first = feed.consumed
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                # The reader restarts at the next line, so a bad record costs only its row.
                message = feed.first_bad(first) or f"invalid CSV: {error}"
                if feed.at_end and feed.consumed - first > 1:
                    message += " (an unclosed quote runs to the end of the file?)"
                spans.append(feed.span(first))
                rows.append(ParsedRow(first + 1, problem=RowError(message)))
                continue
            if record:
                spans.append(feed.span(first))
                rows.append(_row(header, record, first, feed))
    if not rows:
        raise InputError(path, "no rows after the CSV header")
    return header, layout_from_spans(data, spans), rows


def _header(reader: Iterator[list[str]], feed: _LineFeed, path: str) -> list[str]:
    try:
        header = next((record for record in reader if record), None)
    except csv.Error as error:
        raise InputError(path, f"invalid CSV header: {error}", line=feed.consumed) from None
    if header is None:
        raise InputError(path, "file is empty")
    bad = feed.first_bad(0)
    if bad:
        raise InputError(path, bad, line=feed.consumed)
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        message = f"duplicate column name(s) {duplicates} in the CSV header"
        raise InputError(path, message, line=feed.consumed)
    return header


def _row(header: list[str], record: list[str], first: int, feed: _LineFeed) -> ParsedRow:
    line = first + 1
    bad = feed.first_bad(first)
    if bad:
        return ParsedRow(line, problem=RowError(bad))
    if len(record) != len(header):
        message = f"has {len(record)} field(s), the header has {len(header)}"
        return ParsedRow(line, problem=RowError(message))
    return ParsedRow(line, value=dict(zip(header, record, strict=True)))


class _LineFeed:
    """Hands csv.reader one decoded line at a time; only b"\\n" ends a line here, as in csv."""

    def __init__(self, data: bytes, compression: str | None) -> None:
        self._data = data
        self._compression = compression
        self._starts = [0]  # byte offset of each line handed out, and of the next one
        self._bad: dict[int, str] = {}  # line index -> non-UTF-8 message
        self.consumed = 0  # lines handed out so far

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        start = self._starts[-1]
        if start >= len(self._data):
            raise StopIteration
        newline = self._data.find(b"\n", start)
        end = len(self._data) if newline < 0 else newline + 1
        if start == 0 and self._data.startswith(codecs.BOM_UTF8):
            start = len(codecs.BOM_UTF8)
        raw = self._data[start:end]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            message = non_utf8(self._data, start + error.start, self._compression)
            self._bad[self.consumed] = message
            # Decode anyway so that the record's boundaries (quotes, newlines) stay right.
            text = raw.decode("utf-8", "surrogateescape")
        self._starts.append(end)
        self.consumed += 1
        return text

    @property
    def at_end(self) -> bool:
        return self._starts[-1] >= len(self._data)

    def span(self, first: int) -> tuple[int, int]:
        """Byte span of the record made of lines first..consumed, without its line end."""
        start, end = self._starts[first], self._starts[self.consumed]
        if self._data.endswith(b"\r\n", start, end):
            return start, end - 2
        if self._data.endswith(b"\n", start, end):
            return start, end - 1
        return start, end

    def first_bad(self, first: int) -> str | None:
        """The non-UTF-8 message of the first bad line among lines first..consumed."""
        return next((self._bad[i] for i in range(first, self.consumed) if i in self._bad), None)


@contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)

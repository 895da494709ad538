"""JSON containers, cut into rows: a JSON array of objects, or JSON Lines."""

from __future__ import annotations

import codecs
import json
import re

from iclselect.io.errors import InputError, RowError, json_reason
from iclselect.io.layout import Layout, ParsedRow, layout_from_spans, non_utf8
from iclselect.io.schemas import as_row

_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, not Python's wider str.isspace
# Decoding with surrogateescape keeps undecodable bytes as U+DC80..U+DCFF, so the text still
# cuts into rows; a strict UTF-8 decode never produces these, so any one found is a bad byte.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def is_array(data: bytes) -> bool:
    """Whether the content is a JSON array (else it is read as JSON Lines)."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    return data.lstrip(b" \t\n\r")[:1] == b"["


def parse_array(data: bytes, path: str, compression: str | None) -> tuple[Layout, list[ParsedRow]]:
    """Walk the array element by element, keeping each element's exact span.

    Syntax errors raise InputError: a broken array has no trustworthy row boundaries.
    """
    text = data.decode("utf-8", "surrogateescape")
    start = 1 if text.startswith("\ufeff") else 0
    pos = _skip(text, _skip(text, start) + 1)  # past "["
    decoder = json.JSONDecoder()

    def syntax(at: int, message: str, row: int | None) -> InputError:
        return _syntax_error(
            path, data, text, compression=compression, pos=at, message=message, row=row
        )

    spans: list[tuple[int, int]] = []
    values: list[object] = []
    if text.startswith("]", pos):
        raise InputError(path, "empty JSON array")
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            raise syntax(error.pos, json_reason(error.msg), len(spans)) from None
        spans.append((pos, end))
        values.append(value)
        after = _skip(text, end)
        if text.startswith("]", after):
            break
        if not text.startswith(",", after):
            raise syntax(after, "Expecting ',' or ']'", len(spans) - 1)
        pos = _skip(text, after + 1)
    rest = _skip(text, after + 1)
    if rest < len(text):
        raise syntax(rest, "Extra data after the array", None)
    return _cut(text, spans, values, data, compression)


def parse_lines(data: bytes, compression: str | None) -> tuple[Layout, list[ParsedRow]]:
    """One row per non-blank line (the caller has checked there is one); blank lines and line
    ends are kept in the separators."""
    spans: list[tuple[int, int]] = []
    rows: list[ParsedRow] = []
    pos = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    line = 0
    while pos < len(data):
        newline = data.find(b"\n", pos)
        end = len(data) if newline < 0 else newline
        line += 1
        content = data[pos:end]
        if content.strip(b" \t\r"):
            spans.append((pos, end))
            rows.append(_parse_line(content, pos, line, data, compression))
        pos = end + 1
    return layout_from_spans(data, spans), rows


def single_document(data: bytes) -> str | None:
    """What a file that is not JSON Lines holds instead, when it is one JSON document (e.g. a
    pretty-printed object) that JSON Lines reading would report as a broken first line."""
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    return (
        f"holds one JSON object (keys {sorted(value)}), not a JSON array of objects or one "
        "object per line"
    )


def _parse_line(
    content: bytes, offset: int, line: int, data: bytes, compression: str | None
) -> ParsedRow:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        return ParsedRow(line, problem=RowError(non_utf8(data, offset + error.start, compression)))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        message = f"invalid JSON: {json_reason(error.msg)} at column {error.colno}"
        return ParsedRow(line, problem=RowError(message))
    return _as_parsed(line, value)


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _syntax_error(
    path: str,
    data: bytes,
    text: str,
    *,
    compression: str | None,
    pos: int,
    message: str,
    row: int | None,
) -> InputError:
    line = text.count("\n", 0, pos) + 1
    column = pos - text.rfind("\n", 0, pos)
    if _ESCAPED_BYTE.match(text, pos):
        offset = len(text[:pos].encode("utf-8", "surrogateescape"))
        return InputError(path, non_utf8(data, offset, compression), row=row, line=line)
    where = f"at line {line} column {column}" if pos < len(text) else "at the end of the file"
    return InputError(path, f"invalid JSON: {message} {where}", row=row, line=line)


def _cut(
    text: str,
    spans: list[tuple[int, int]],
    values: list[object],
    data: bytes,
    compression: str | None,
) -> tuple[Layout, list[ParsedRow]]:
    def encoded(piece: str) -> bytes:
        return piece.encode("utf-8", "surrogateescape")

    head = encoded(text[: spans[0][0]])
    offset = len(head)  # byte offset in `data` of the current piece
    seps: list[bytes] = []
    raws: list[bytes] = []
    rows: list[ParsedRow] = []
    line = 1 + text.count("\n", 0, spans[0][0])
    previous_end = spans[0][0]
    for (start, end), value in zip(spans, values, strict=True):
        sep_text = text[previous_end:start]
        seps.append(encoded(sep_text))
        offset += len(seps[-1])
        line += sep_text.count("\n")
        raw_text = text[start:end]
        raws.append(encoded(raw_text))
        bad = _ESCAPED_BYTE.search(raw_text)
        if bad:
            at = offset + len(encoded(raw_text[: bad.start()]))
            rows.append(ParsedRow(line, problem=RowError(non_utf8(data, at, compression))))
        else:
            rows.append(_as_parsed(line, value))
        offset += len(raws[-1])
        line += raw_text.count("\n")
        previous_end = end
    return Layout(head, seps, raws, encoded(text[previous_end:])), rows


def _as_parsed(line: int, value: object) -> ParsedRow:
    try:
        return ParsedRow(line, value=as_row(value))
    except RowError as problem:
        return ParsedRow(line, problem=problem)

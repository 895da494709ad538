"""read_dataset: any supported file in, normalised samples out."""

from __future__ import annotations

import codecs
import gzip
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from iclselect.io.containers import Location, locate
from iclselect.io.csv_text import parse_csv
from iclselect.io.dataset import Dataset, HFSource, ParquetSource, Source, TextSource
from iclselect.io.errors import InputError, InvalidRow, RowError
from iclselect.io.json_text import is_array, parse_array, parse_lines, single_document
from iclselect.io.layout import ParsedRow
from iclselect.io.schemas import (
    FORMATS,
    SCHEMAS,
    detect,
    field_names,
    mismatch_message,
    to_turns,
)
from iclselect.io.tables import hf_table, read_hf, read_parquet
from iclselect.records import Sample


def read_dataset(
    path: str | Path,
    format: str = "auto",
    fields: dict[str, str] | None = None,
    skip_invalid: bool = False,
) -> Dataset:
    """Read a JSON / JSONL / CSV file (optionally .gz), a Parquet file or a save_to_disk
    directory holding alpaca, sharegpt or messages rows.

    `format` forces a schema ("auto" detects it from the keys); `fields` renames our keys to
    the file's, e.g. {"instruction": "question", "output": "answer"}. A bad row raises
    InputError, or with skip_invalid=True is dropped and recorded in Dataset.invalid; problems
    with the whole file always raise.
    """
    path = Path(path)
    shown = str(path)
    if format not in FORMATS:
        raise InputError(shown, f"unknown format {format!r}; expected one of {list(FORMATS)}")
    try:
        names = field_names(fields)
    except ValueError as error:
        raise InputError(shown, str(error)) from None
    where = locate(path)
    container, columns, rows, source = _parse(path, where)
    allowed = ("alpaca",) if container == "csv" else SCHEMAS
    schema = _schema(format, columns, rows, names, allowed, shown)
    samples: list[Sample] = []
    invalid: list[InvalidRow] = []
    for index, parsed in enumerate(rows):
        try:
            if parsed.value is None:
                assert parsed.problem is not None  # a ParsedRow holds one or the other
                raise parsed.problem
            samples.append(Sample(index, to_turns(schema, parsed.value, names)))
        except RowError as problem:
            if not skip_invalid:
                raise _row_error(shown, index, parsed.line, problem) from None
            invalid.append(InvalidRow(index, problem.field, problem.message, parsed.line))
    return Dataset(path, schema, container, where.compression, len(rows), samples, invalid, source)


def _parse(
    path: Path, where: Location
) -> tuple[str, Sequence[str] | None, list[ParsedRow], Source]:
    """(container, column names if the container has them, parsed rows, source)."""
    shown = str(path)
    if where.container in ("parquet", "hf"):
        if where.container == "parquet":
            table = read_parquet(path)
            source: Source = ParquetSource(table)
        else:
            dataset = read_hf(path)
            table = hf_table(dataset)
            source = HFSource(dataset)
        if table.num_rows == 0:
            raise InputError(shown, "no rows")
        rows = [ParsedRow(None, value=value) for value in table.to_pylist()]
        return where.container, table.column_names, rows, source
    data = _load_bytes(path, where.compression)
    if where.container == "csv":
        columns, layout, rows = parse_csv(data, shown, where.compression)
        return "csv", columns, rows, TextSource(layout, where.suffix)
    if is_array(data):
        layout, rows = parse_array(data, shown, where.compression)
        return "json", None, rows, TextSource(layout, where.suffix)
    layout, rows = parse_lines(data, where.compression)
    if rows[0].problem is not None and len(layout.raws) > 1:
        whole = single_document(data)
        if whole:
            raise InputError(shown, whole)
    return "jsonl", None, rows, TextSource(layout, where.suffix)


def _load_bytes(path: Path, compression: str | None) -> bytes:
    shown = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(shown, f"cannot read: {error.strerror or error}") from None
    if compression == "gzip":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise InputError(shown, f"not a valid gzip file: {error}") from None
    body = data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data
    if not body.strip(b" \t\r\n"):
        raise InputError(shown, "file is empty" if not data else "file holds only whitespace")
    return data


def _schema(
    format: str,
    columns: Sequence[str] | None,
    rows: list[ParsedRow],
    names: Mapping[str, str],
    allowed: Sequence[str],
    shown: str,
) -> str:
    """The schema forced by `format`, else the first that fits; raises if none fits.

    Tables have fixed columns; JSON rows each have their own keys, so the first row whose keys
    fit a schema decides, and rows that don't fit it fail one by one with a field error.
    """
    if format != "auto" and format not in allowed:
        raise InputError(shown, f"format {format!r} needs nested lists, which CSV cannot hold")
    candidates = allowed if format == "auto" else (format,)
    if columns is not None:
        key_sets: list[Sequence[str]] = [columns]
    else:
        key_sets = [list(row.value) for row in rows if row.value is not None]
        if not key_sets:
            # No row parsed at all: its own problem says more than "cannot detect format".
            first = rows[0]
            assert first.problem is not None
            raise _row_error(shown, 0, first.line, first.problem)
    for keys in key_sets:
        found = detect(keys, names, candidates)
        if found:
            return found
    message = mismatch_message(key_sets[0], None if format == "auto" else format, names)
    raise InputError(shown, message)


def _row_error(shown: str, row: int, line: int | None, problem: RowError) -> InputError:
    return InputError(shown, problem.message, row=row, field=problem.field, line=line)

"""read_dataset: any supported file in, normalised samples out."""

from __future__ import annotations

import codecs
import gzip
import json
import sys
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from iclselect.io.containers import Location, locate
from iclselect.io.csv_text import parse_csv
from iclselect.io.dataset import Dataset, HFSource, ParquetSource, Source, TextSource
from iclselect.io.errors import InputError, InvalidRow, RowError
from iclselect.io.json_text import is_array, parse_array, parse_lines, single_document
from iclselect.io.layout import Layout, ParsedRow
from iclselect.io.schemas import (
    FIELD_NAMES,
    FORMATS,
    READS,
    ROLES,
    SCHEMAS,
    as_row,
    detect,
    field_names,
    mismatch_message,
    to_turns,
)
from iclselect.io.tables import hf_table, read_arrow, read_hf, read_parquet
from iclselect.records import Role, Sample

STDIN = "<stdin>"


def read_dataset(
    path: str | Path,
    *,
    format: str = "auto",
    fields: dict[str, str] | None = None,
    skip_invalid: bool = False,
    roles: Mapping[str, Role] | None = None,
    split: str | None = None,
) -> Dataset:
    """Read a JSON / JSONL / CSV file (optionally .gz), a Parquet file or a save_to_disk
    directory holding alpaca, sharegpt or messages rows; "-" reads JSON or JSON Lines from
    standard input, which needs `format`.

    `format` forces a schema ("auto" detects it from the keys); `fields` renames our keys to
    the file's, e.g. {"instruction": "question", "output": "answer"}; `roles` adds role names
    (LLaMA-Factory tags); `split` picks one split of a DatasetDict directory. A bad row raises
    InputError, or with skip_invalid=True is dropped and recorded in Dataset.invalid; problems
    with the whole file always raise.
    """
    path = Path(path)
    shown = STDIN if str(path) == "-" else str(path)
    names = _names(format, fields, shown)
    if shown == STDIN:
        if format == "auto":
            raise InputError(
                shown, "reading standard input needs --format alpaca, sharegpt or messages"
            )
        where = _stdin_location(sys.stdin.buffer.read())
    else:
        where = locate(path)
    if split is not None and where.container != "hf":
        raise InputError(shown, "--split picks a split of a DatasetDict directory (save_to_disk)")
    container, columns, rows, source = _parse(path, where, shown, split)
    keys = _keys(columns, rows)
    _check_mapped(fields, keys, shown)
    allowed = ("alpaca",) if container == "csv" else SCHEMAS
    schema = _schema(format, columns, rows, names=names, allowed=allowed, shown=shown)
    samples, invalid = _samples(
        rows, schema, names, skip_invalid=skip_invalid, shown=shown, roles=roles
    )
    dataset = Dataset(
        path=path,
        schema=schema,
        container=container,
        compression=where.compression,
        n_rows=len(rows),
        samples=samples,
        invalid=invalid,
        _source=source,
    )
    dataset.unused_columns = _unused(keys, schema, names)
    return dataset


def read_records(
    data: Any,
    *,
    format: str = "auto",
    fields: dict[str, str] | None = None,
    skip_invalid: bool = False,
) -> Dataset:
    """Read rows held in memory: a list of dicts, a pandas DataFrame or a datasets.Dataset,
    with the same schemas, options and errors as read_dataset. Errors name the object
    ("<pandas.DataFrame>: row 3: field 'output': missing"). A list is written back as
    subset.jsonl, a DataFrame as subset.parquet, a datasets.Dataset as a save_to_disk directory.
    """
    kind, columns, values, source = _in_memory(data)
    shown = f"<{kind}>"
    names = _names(format, fields, shown)
    if not values:
        raise InputError(shown, "no rows")
    rows = [_memory_row(value) for value in values]
    keys = _keys(columns, rows)
    _check_mapped(fields, keys, shown)
    schema = _schema(format, columns, rows, names=names, allowed=SCHEMAS, shown=shown)
    samples, invalid = _samples(rows, schema, names, skip_invalid=skip_invalid, shown=shown)
    container = {"list": "jsonl", "pandas.DataFrame": "parquet"}.get(kind, "hf")
    dataset = Dataset(
        path=Path(shown),
        schema=schema,
        container=container,
        compression=None,
        n_rows=len(rows),
        samples=samples,
        invalid=invalid,
        _source=source,
    )
    dataset.unused_columns = _unused(keys, schema, names)
    return dataset


def _stdin_location(data: bytes) -> Location:
    container = "json" if is_array(data) else "jsonl"
    return Location(container, None, f".{container}", data=data)


def _keys(columns: Sequence[str] | None, rows: list[ParsedRow]) -> list[str]:
    """The columns of a table, or every key any row has, in order of first appearance."""
    if columns is not None:
        return list(columns)
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row.value or ()))
    return list(seen)


def _check_mapped(fields: Mapping[str, str] | None, keys: list[str], shown: str) -> None:
    """A field renamed to a column no row has is a typo, not an absent optional field (no row
    parsed at all: that row's own error says more)."""
    if not keys:
        return
    for ours, theirs in (fields or {}).items():
        if ours in FIELD_NAMES and theirs not in keys:
            raise InputError(
                shown,
                f"field {ours!r} is mapped to column {theirs!r}, which no row has; "
                f"columns: {sorted(keys)}",
            )


def _unused(keys: list[str], schema: str, names: Mapping[str, str]) -> list[str]:
    read = {names[name] for name in READS[schema]}
    return [key for key in keys if key not in read]


def _names(format: str, fields: dict[str, str] | None, shown: str) -> dict[str, str]:
    """Check --format, and our field names -> the user's (--fields)."""
    if format not in FORMATS:
        raise InputError(shown, f"unknown format {format!r}; expected one of {list(FORMATS)}")
    try:
        return field_names(fields)
    except ValueError as error:
        raise InputError(shown, str(error)) from None


def _in_memory(data: Any) -> tuple[str, list[str] | None, list[Any], Source]:
    """(name of the kind, column names if it has them, the rows, how to write rows back)."""
    if isinstance(data, (list, tuple)):
        raws = [json.dumps(value, ensure_ascii=False, default=str).encode() for value in data]
        layout = Layout(b"", [b""] + [b"\n"] * (len(raws) - 1), raws, b"\n" if raws else b"")
        return "list", None, list(data), TextSource(layout, ".jsonl", list(data))
    module = type(data).__module__.split(".")[0]
    if module == "pandas" and type(data).__name__ == "DataFrame":
        table = pa.Table.from_pandas(data, preserve_index=False)
        return "pandas.DataFrame", table.column_names, table.to_pylist(), ParquetSource(table)
    if module == "datasets" and type(data).__name__ == "Dataset":
        table = hf_table(data)
        return "datasets.Dataset", table.column_names, table.to_pylist(), HFSource(data)
    raise TypeError(
        f"cannot read a {type(data).__name__}: give a path, a list of dicts, a pandas DataFrame "
        "or a datasets.Dataset"
    )


def _memory_row(value: Any) -> ParsedRow:
    try:
        return ParsedRow(None, value=as_row(value))
    except RowError as problem:
        return ParsedRow(None, problem=problem)


def _samples(
    rows: list[ParsedRow],
    schema: str,
    names: Mapping[str, str],
    *,
    skip_invalid: bool,
    shown: str,
    roles: Mapping[str, Role] | None = None,
) -> tuple[list[Sample], list[InvalidRow]]:
    known = {**ROLES, **roles} if roles else ROLES
    samples: list[Sample] = []
    invalid: list[InvalidRow] = []
    for index, parsed in enumerate(rows):
        try:
            if parsed.value is None:
                assert parsed.problem is not None  # a ParsedRow holds one or the other
                raise parsed.problem
            samples.append(Sample(index, to_turns(schema, parsed.value, names, known)))
        except RowError as problem:
            if not skip_invalid:
                raise _row_error(shown, index, parsed.line, problem) from None
            invalid.append(InvalidRow(index, problem.field, problem.message, parsed.line))
    return samples, invalid


def _parse(
    path: Path, where: Location, shown: str, split: str | None = None
) -> tuple[str, Sequence[str] | None, list[ParsedRow], Source]:
    """(container, column names if the container has them, parsed rows, source)."""
    if where.container in ("parquet", "arrow", "hf"):
        if where.container == "parquet":
            table = read_parquet(where.files)
            source: Source = ParquetSource(table)
        else:
            dataset = read_hf(path, split) if where.container == "hf" else read_arrow(where.files)
            table = hf_table(dataset)
            source = HFSource(dataset)
        if table.num_rows == 0:
            raise InputError(shown, "no rows")
        rows = [ParsedRow(None, value=value) for value in table.to_pylist()]
        return where.container, table.column_names, rows, source
    data = where.data if where.data is not None else _load_bytes(path, where.compression)
    if where.container == "csv":
        columns, layout, rows = parse_csv(data, shown, where.compression)
        return "csv", columns, rows, TextSource(layout, where.suffix, [r.value for r in rows])
    if is_array(data):
        layout, rows = parse_array(data, shown, where.compression)
        return "json", None, rows, TextSource(layout, where.suffix, [r.value for r in rows])
    layout, rows = parse_lines(data, where.compression)
    if rows[0].problem is not None and len(layout.raws) > 1:
        whole = single_document(data)
        if whole:
            raise InputError(shown, whole)
    return "jsonl", None, rows, TextSource(layout, where.suffix, [r.value for r in rows])


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
    *,
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
    # One bad row of many (a pool with empty fields has thousands) need not stop the run.
    message = f"{problem.message}; run with --skip-invalid to drop invalid rows"
    return InputError(shown, message, row=row, field=problem.field, line=line)

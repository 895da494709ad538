"""Tests of iclselect.io: reading every container and schema, byte-exact subsets, bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
import pickle
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iclselect.io import FORMATS, Dataset, InputError, read_dataset, read_input, write_subset
from iclselect.records import Turn

Row = dict[str, Any]


def shared_data() -> Path:
    """shared/data sits beside the repository checkout (../shared/data)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


@cache
def first_rows(name: str, n: int) -> tuple[Row, ...]:
    """The first n rows of a real data file (JSON array or JSON Lines, gzip-compressed)."""
    path = shared_data() / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    if name.endswith(".jsonl.gz"):
        return tuple(json.loads(line) for line in text.splitlines()[:n])
    decoder = json.JSONDecoder()
    rows: list[Row] = []
    pos = text.index("[") + 1
    while len(rows) < n:
        pos = text.index("{", pos)
        row, pos = decoder.raw_decode(text, pos)
        rows.append(row)
    return tuple(rows)


def alpaca_rows(n: int = 12) -> list[Row]:
    return list(first_rows("alpaca_pool_21k.json.gz", n))


def sharegpt_rows(n: int = 8) -> list[Row]:
    return list(first_rows("sharegpt_glaive_toolcall_en_demo.json.gz", n))


def messages_rows(n: int = 8) -> list[Row]:
    return list(first_rows("messages_v1_sft_demo.jsonl.gz", n))


# Writers: each puts rows into one container the way ordinary tools do.


def _text_file(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_json(path: Path, rows: list[Row]) -> Path:
    return _text_file(path, json.dumps(rows, ensure_ascii=False, indent=2) + "\n")


def write_jsonl(path: Path, rows: list[Row]) -> Path:
    return _text_file(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_csv(path: Path, rows: list[Row]) -> Path:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return _text_file(path, out.getvalue())


def write_parquet(path: Path, rows: list[Row]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_hf(path: Path, rows: list[Row]) -> Path:
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


Writer = Callable[[Path, list[Row]], Path]
TEXT_WRITERS: dict[str, Writer] = {
    "data.json": write_json,
    "data.json.gz": write_json,
    "data.jsonl": write_jsonl,
    "data.jsonl.gz": write_jsonl,
    "data.csv": write_csv,
    "data.csv.gz": write_csv,
}
ALL_WRITERS: dict[str, Writer] = {
    **TEXT_WRITERS,
    "data.parquet": write_parquet,
    "hf_dir": write_hf,
}


def plain_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def alpaca_turns(row: Row) -> tuple[Turn, ...]:
    """Our own statement of the alpaca rule, independent of the reader."""
    extra = row.get("input") or ""
    user = f"{row['instruction']}\n{extra}" if extra.strip() else row["instruction"]
    return (Turn("user", user), Turn("assistant", row["output"]))


def turns_of(dataset: Dataset) -> list[tuple[Turn, ...]]:
    return [sample.turns for sample in dataset.samples]


def input_error(path: Path, **kwargs: Any) -> str:
    with pytest.raises(InputError) as caught:
        read_dataset(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert path.name in message
    return message


# Round trips.


@pytest.mark.parametrize("name", ["alpaca_en_demo_1k.json.gz", "messages_v1_sft_demo.jsonl.gz"])
def test_real_files_round_trip_byte_exact(name: str, tmp_path: Path) -> None:
    source = shared_data() / name
    if not source.exists():
        pytest.skip(f"{source} is not available")
    dataset = read_dataset(source)
    out = write_subset(dataset, range(dataset.n_rows), tmp_path)
    assert out.name == "subset" + name[name.index(".") :]
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(source.read_bytes())


@pytest.mark.parametrize(
    ("name", "rows"),
    [(name, alpaca_rows) for name in sorted(TEXT_WRITERS)]
    # CSV holds only flat alpaca columns.
    + [
        (name, rows)
        for name in sorted(TEXT_WRITERS)
        if ".csv" not in name
        for rows in (sharegpt_rows, messages_rows)
    ],
)
def test_text_containers_round_trip_byte_exact(
    name: str, rows: Callable[[], list[Row]], tmp_path: Path
) -> None:
    path = TEXT_WRITERS[name](tmp_path / name, rows())
    dataset = read_dataset(path)
    out = write_subset(dataset, list(range(dataset.n_rows)), tmp_path / "out")
    assert out == tmp_path / "out" / name.replace("data", "subset")
    assert plain_bytes(out) == plain_bytes(path)
    assert dataset.compression == ("gzip" if name.endswith(".gz") else None)


def test_parquet_round_trip_table_equal(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "data.parquet", sharegpt_rows())
    dataset = read_dataset(path)
    out = write_subset(dataset, range(dataset.n_rows), tmp_path / "out")
    assert out.name == "subset.parquet"
    assert pq.read_table(out).equals(pq.read_table(path), check_metadata=True)


def test_hf_round_trip_table_equal(tmp_path: Path) -> None:
    import datasets

    path = write_hf(tmp_path / "hf", messages_rows())
    dataset = read_dataset(path)
    assert (dataset.container, dataset.schema) == ("hf", "messages")
    out = write_subset(dataset, range(dataset.n_rows), tmp_path / "out")
    assert out == tmp_path / "out" / "subset" and out.is_dir()
    written, original = datasets.load_from_disk(str(out)), datasets.load_from_disk(str(path))
    assert written.features == original.features
    assert written.with_format("arrow")[:].equals(original.with_format("arrow")[:])
    # A second write replaces the first directory rather than nesting inside it.
    write_subset(dataset, [1], tmp_path / "out")
    assert datasets.load_from_disk(str(out)).num_rows == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["subset"]


@pytest.mark.parametrize("name", sorted(ALL_WRITERS))
def test_subset_is_valid_and_reads_back_to_those_rows(name: str, tmp_path: Path) -> None:
    rows = alpaca_rows()
    path = ALL_WRITERS[name](tmp_path / name, rows)
    dataset = read_dataset(path)
    chosen = [7, 0, 3, 7]  # any order, repeats written once
    out = write_subset(dataset, chosen, tmp_path / "out")
    if name.startswith("data.json") and not name.startswith("data.jsonl"):
        assert json.loads(plain_bytes(out)) == [rows[0], rows[3], rows[7]]
    if name.startswith("data.jsonl"):
        lines = plain_bytes(out).decode().splitlines()
        assert [json.loads(line) for line in lines] == [rows[0], rows[3], rows[7]]
    if name.startswith("data.csv"):
        assert len(list(csv.reader(io.StringIO(plain_bytes(out).decode())))) == 4
    back = read_dataset(out)
    assert back.n_rows == 3 and back.container == dataset.container
    assert turns_of(back) == [alpaca_turns(rows[k]) for k in (0, 3, 7)]
    assert [sample.row for sample in dataset.samples] == list(range(len(rows)))


def test_jsonl_layout_quirks_round_trip(tmp_path: Path) -> None:
    """BOM, CRLF line ends, blank lines and no final newline all survive; subsets stay valid."""
    lines = [json.dumps(row) for row in alpaca_rows(4)]
    text = "\ufeff\r\n" + lines[0] + "\r\n\r\n" + lines[1] + "\r\n  \n" + "\r\n".join(lines[2:])
    path = tmp_path / "quirks.jsonl"
    path.write_bytes(text.encode())
    dataset = read_dataset(path)
    assert dataset.n_rows == 4
    assert plain_bytes(write_subset(dataset, range(4), tmp_path / "all")) == text.encode()
    subset = write_subset(dataset, [1, 3], tmp_path / "some").read_bytes().decode("utf-8-sig")
    parsed = [json.loads(line) for line in subset.splitlines() if line.strip()]
    assert parsed == [json.loads(lines[1]), json.loads(lines[3])]


def test_csv_multiline_quoted_fields_round_trip(tmp_path: Path) -> None:
    text = (
        "\ufeffinstruction,input,output\n"
        '"Write a poem, please.","","Roses are red,\nviolets are ""blue"".\n"\n'
        "\n"
        "Add 2 and 3.,,5\n"
        '"Say hi","in French\r\nplease",Salut\n'
    )
    path = tmp_path / "poems.csv"
    path.write_bytes(text.encode())
    dataset = read_dataset(path)
    assert dataset.n_rows == 3
    assert dataset.samples[0].response == 'Roses are red,\nviolets are "blue".\n'
    assert dataset.samples[2].turns[0] == Turn("user", "Say hi\nin French\r\nplease")
    assert write_subset(dataset, range(3), tmp_path / "a").read_bytes() == text.encode()
    back = read_dataset(write_subset(dataset, [0, 2], tmp_path / "b"))
    assert turns_of(back) == [dataset.samples[0].turns, dataset.samples[2].turns]


def test_json_file_holding_json_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "lines.json", alpaca_rows(3))
    dataset = read_dataset(path)
    assert dataset.container == "jsonl"
    assert write_subset(dataset, [2], tmp_path).name == "subset.json"


# Schemas.


@pytest.mark.parametrize(
    ("rows", "schema"),
    [(alpaca_rows, "alpaca"), (sharegpt_rows, "sharegpt"), (messages_rows, "messages")],
)
@pytest.mark.parametrize("name", ["data.json", "data.jsonl.gz", "data.parquet"])
def test_schema_auto_detection(
    rows: Callable[[], list[Row]], schema: str, name: str, tmp_path: Path
) -> None:
    path = ALL_WRITERS[name](tmp_path / name, rows())
    dataset = read_dataset(path)
    assert dataset.schema == schema
    assert len(dataset.samples) == dataset.n_rows == len(rows())
    assert all(sample.turns[-1].role == "assistant" for sample in dataset.samples)


def test_real_sharegpt_and_alpaca_files_detected() -> None:
    for name, schema in [
        ("sharegpt_dummy_conversation.json.gz", "sharegpt"),
        ("alpaca_en_demo_1k.json.gz", "alpaca"),
    ]:
        path = shared_data() / name
        if not path.exists():
            pytest.skip(f"{path} is not available")
        dataset = read_dataset(path)
        assert (dataset.schema, dataset.container) == (schema, "json")
        assert len(dataset.samples) == dataset.n_rows


def test_format_override(tmp_path: Path) -> None:
    row = {
        "instruction": "Name a colour.",
        "output": "Blue.",
        "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
    }
    path = write_jsonl(tmp_path / "both.jsonl", [row])
    assert read_dataset(path).schema == "sharegpt"
    forced = read_dataset(path, format="alpaca")
    assert forced.schema == "alpaca"
    assert turns_of(forced) == [alpaca_turns(row)]
    message = input_error(path, format="messages")
    assert "format 'messages' does not fit" in message and "'conversations'" in message
    assert set(FORMATS) == {"auto", "alpaca", "sharegpt", "messages"}


def test_fields_mapping_csv_and_parquet(tmp_path: Path) -> None:
    rows = [
        {"question": r["instruction"], "context": r["input"], "answer": r["output"]}
        for r in alpaca_rows(5)
    ]
    fields = {"instruction": "question", "input": "context", "output": "answer"}
    paths = [write_csv(tmp_path / "qa.csv", rows), write_parquet(tmp_path / "qa.parquet", rows)]
    for path in paths:
        message = input_error(path)
        assert "cannot detect format" in message and "['answer', 'context', 'question']" in message
        dataset = read_dataset(path, fields=fields)
        assert dataset.schema == "alpaca"
        expected = [
            alpaca_turns(
                {"instruction": r["question"], "input": r["context"], "output": r["answer"]}
            )
            for r in rows
        ]
        assert turns_of(dataset) == expected


def test_fields_mapping_errors_name_the_users_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"q": "Why?", "a": "Because."}, {"q": "How?"}])
    message = input_error(path, fields={"instruction": "q", "output": "a"})
    assert "row 1 (line 2)" in message and "field 'a'" in message and "missing" in message


def test_sharegpt_multi_turn_with_system_and_tools(tmp_path: Path) -> None:
    row = {
        "system": "You are helpful.",
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": '{"name": "weather"}'},
            {"from": "observation", "value": '{"temp": 20}'},
            {"from": "gpt", "value": "It is 20 degrees."},
            {"from": "human", "value": "Thanks!"},
            {"from": "gpt", "value": "You're welcome."},
        ],
    }
    dataset = read_dataset(write_json(tmp_path / "chat.json", [row]))
    assert dataset.samples[0].turns == (
        Turn("system", "You are helpful."),
        Turn("user", "Weather in Paris?"),
        Turn("assistant", '{"name": "weather"}'),
        Turn("user", '{"temp": 20}'),
        Turn("assistant", "It is 20 degrees."),
        Turn("user", "Thanks!"),
        Turn("assistant", "You're welcome."),
    )
    assert dataset.samples[0].response == "You're welcome."


def test_messages_with_system_and_content_parts(tmp_path: Path) -> None:
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Add "}, {"type": "text", "text": "2+2"}],
            },
            {"role": "assistant", "content": [{"type": "text", "value": "4"}], "loss_weight": 1.0},
            {"role": "user", "content": "And 3+3?"},
            {"role": "tool", "content": "calculator: 6"},
            {"role": "assistant", "content": "6"},
        ]
    }
    dataset = read_dataset(write_jsonl(tmp_path / "chat.jsonl", [row]))
    assert dataset.samples[0].turns == (
        Turn("system", "Be brief."),
        Turn("user", "Add 2+2"),
        Turn("assistant", "4"),
        Turn("user", "And 3+3?"),
        Turn("user", "calculator: 6"),
        Turn("assistant", "6"),
    )


def test_alpaca_system_and_input(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Translate.", "input": "chat", "output": "cat", "system": "Be exact."},
        {"instruction": "Say yes.", "input": "  ", "output": "Yes", "system": "", "history": []},
    ]
    dataset = read_dataset(write_jsonl(tmp_path / "a.jsonl", rows))
    assert turns_of(dataset) == [
        (Turn("system", "Be exact."), Turn("user", "Translate.\nchat"), Turn("assistant", "cat")),
        (Turn("user", "Say yes."), Turn("assistant", "Yes")),
    ]


# Bad input.


def _bad_jsonl(tmp_path: Path, bad: str, name: str = "bad.jsonl") -> Path:
    good = [json.dumps(row) for row in alpaca_rows(3)]
    path = tmp_path / name
    path.write_text(good[0] + "\n" + good[1] + "\n\n" + bad + "\n" + good[2] + "\n")
    return path


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        ('{"instruction": "Hi", "output": }', None, "invalid JSON"),
        ('{"instruction": "Hi"}', "output", "missing"),
        ('{"instruction": "Hi", "output": 42}', "output", "expected a string, got number"),
        ('{"instruction": "Hi", "output": null}', "output", "expected a string, got null"),
        ('{"instruction": "Hi", "output": " \\n\\t"}', "output", "empty or whitespace-only"),
        ('{"instruction": "", "output": "Yes"}', "instruction", "empty"),
        ('["not", "an", "object"]', None, "expected a JSON object, got array"),
        (
            '{"instruction": "Hi", "output": "x\\ud800"}',
            "output",
            "lone surrogate",
        ),
    ],
)
def test_bad_jsonl_row(tmp_path: Path, bad: str, field: str | None, words: str) -> None:
    path = _bad_jsonl(tmp_path, bad)
    message = input_error(path)
    assert "row 2 (line 4)" in message and words in message
    if field is not None:
        assert f"field {field!r}" in message
    dataset = read_dataset(path, skip_invalid=True)
    assert [s.row for s in dataset.samples] == [0, 1, 3]
    assert [(r.row, r.field, r.line) for r in dataset.invalid] == [(2, field, 4)]
    assert words in dataset.invalid[0].message


@pytest.mark.parametrize(
    ("conversation", "field", "words"),
    [
        (
            [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "  "}],
            "conversations[1].value",
            "empty or whitespace-only",
        ),
        ([{"from": "human", "value": "Hi"}], "conversations[0]", "expected the assistant"),
        ([{"from": "gpt", "value": "Hello"}], "conversations", "no user turn"),
        (
            [{"from": "alien", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
            "conversations[0].from",
            "unknown role 'alien'",
        ),
        (
            [{"from": "human"}, {"from": "gpt", "value": "Hello"}],
            "conversations[0].value",
            "missing",
        ),
        ([], "conversations", "empty list"),
        ("Hi", "conversations", "expected a list of turns, got string"),
    ],
)
def test_bad_sharegpt_row(tmp_path: Path, conversation: Any, field: str, words: str) -> None:
    rows: list[Any] = [*sharegpt_rows(2), {"conversations": conversation}]
    message = input_error(write_json(tmp_path / "chat.json", rows))
    assert "row 2 (line" in message and f"field {field!r}" in message and words in message


def test_bad_messages_part(tmp_path: Path) -> None:
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": "A cat."},
        ]
    }
    message = input_error(write_jsonl(tmp_path / "m.jsonl", [*messages_rows(1), row]))
    assert "row 1 (line 2)" in message and "field 'messages[0].content[0]'" in message
    assert "unsupported content part type 'image_url'" in message


def test_malformed_json_array_names_row_line_and_column(tmp_path: Path) -> None:
    text = json.dumps(alpaca_rows(3), indent=2)
    cut = text.rindex('"output"') + len('"output"')  # inside row 2, the last one
    broken = text[:cut] + " oops" + text[cut:]
    path = tmp_path / "broken.json"
    path.write_text(broken)
    message = input_error(path, skip_invalid=True)
    line = broken[: broken.index("oops")].count("\n") + 1
    assert f"row 2 (line {line})" in message and "invalid JSON" in message
    assert f"line {line} column" in message


@pytest.mark.parametrize(
    ("name", "where"), [("cut.jsonl", "at column 33"), ("cut.json", "at line 1 column 34")]
)
def test_an_unterminated_string_reads_as_one_sentence(tmp_path: Path, name, where) -> None:
    row = '{"instruction": "Hi", "output": "never closed}'
    path = tmp_path / name
    path.write_text(row + "\n" if name.endswith("jsonl") else f"[{row}]")
    message = input_error(path)
    assert f"Unterminated string starting {where}" in message and "at at" not in message


def test_truncated_json_array(tmp_path: Path) -> None:
    path = tmp_path / "cut.json.gz"
    path.write_bytes(gzip.compress(json.dumps(alpaca_rows(2), indent=1)[:-30].encode()))
    message = input_error(path)
    assert "row 1" in message and "invalid JSON" in message


@pytest.mark.parametrize("name", ["bytes.jsonl", "bytes.json", "bytes.csv", "bytes.jsonl.gz"])
def test_non_utf8_bytes_name_row_and_offset(name: str, tmp_path: Path) -> None:
    rows = alpaca_rows(3)
    rows[1] = {**rows[1], "output": "caf\u00e9 MARK"}
    path = ALL_WRITERS[name.replace("bytes", "data")](tmp_path / name, rows)
    data = plain_bytes(path)
    offset = data.index("\u00e9 MARK".encode())
    bad = data.replace("\u00e9 MARK".encode(), b"\xe9 MARK")  # a latin-1 byte
    path.write_bytes(gzip.compress(bad) if name.endswith(".gz") else bad)
    message = input_error(path)
    assert "row 1" in message and "non-UTF-8 byte 0xe9" in message
    assert f"byte offset {offset}" in message
    dataset = read_dataset(path, skip_invalid=True)
    assert [s.row for s in dataset.samples] == [0, 2]
    assert [r.row for r in dataset.invalid] == [1]
    # The bad row's bytes are kept and written back untouched.
    assert plain_bytes(write_subset(dataset, range(3), tmp_path / "out")) == bad


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("empty.jsonl", b"", "file is empty"),
        ("blank.json", b"  \n\t\n", "only whitespace"),
        ("empty.json", b"[\n]\n", "empty JSON array"),
        ("empty.json.gz", gzip.compress(b""), "file is empty"),
        ("header.csv", b"instruction,input,output\n", "no rows after the CSV header"),
        ("empty.csv", b"\n\n", "only whitespace"),
        ("notgz.jsonl.gz", b"plain text", "not a valid gzip file"),
        ("trailing.json", b'[{"instruction": "a", "output": "b"}] x', "Extra data"),
        ("nothing.parquet", b"PAR1 nonsense", "not a readable Parquet file"),
    ],
)
def test_whole_file_problems(name: str, content: bytes, words: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    for skip in (False, True):
        with pytest.raises(InputError) as caught:
            read_dataset(path, skip_invalid=skip)
        assert words in str(caught.value) and name in str(caught.value)
        assert caught.value.row is None and "\n" not in str(caught.value)


def test_csv_unclosed_quote_is_reported_not_swallowed(tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    path.write_text('instruction,output\nHi,Hello\nAsk,"never closed\nLost,row\n')
    message = str(input_error(path))
    assert "row 1 (line 3)" in message and "unclosed quote" in message
    dataset = read_dataset(path, skip_invalid=True)
    assert (dataset.n_rows, len(dataset.samples), dataset.invalid[0].row) == (2, 1, 1)


def test_pretty_printed_single_object(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(alpaca_rows(1)[0], indent=2))
    assert "holds one JSON object" in input_error(path)


def test_hf_dataset_dict_of_one_split_reads_it(tmp_path: Path) -> None:
    import datasets

    splits = {"train": datasets.Dataset.from_list(alpaca_rows(2))}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "dd"))
    assert read_dataset(tmp_path / "dd").n_rows == 2
    assert read_dataset(tmp_path / "dd" / "train").n_rows == 2
    assert "--split train: holds one dataset" in input_error(
        tmp_path / "dd" / "train", split="train"
    )


def test_empty_parquet(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"instruction": pa.array([], pa.string())}), path)
    assert "no rows" in input_error(path)


def test_unknown_format_lists_keys(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "odd.jsonl", [{"foo": 1, "bar": 2}] * 3)
    message = input_error(path, skip_invalid=True)
    assert "cannot detect format: keys ['bar', 'foo']" in message
    assert "sharegpt (conversations)" in message and "--format/--fields" in message


def test_csv_cannot_hold_nested_formats(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "flat.csv", alpaca_rows(2))
    assert "CSV" in input_error(path, format="sharegpt")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("missing.json", "no such file or directory"),
        ("data.txt", "unsupported file extension '.txt'"),
        ("data.parquet.gz", "unsupported file extension '.parquet.gz'"),
        ("plain_dir", "not a Hugging Face dataset"),
    ],
)
def test_bad_paths(name: str, words: str, tmp_path: Path) -> None:
    path = tmp_path / name
    if name == "plain_dir":
        path.mkdir()
    elif name != "missing.json":
        path.write_text("{}")
    assert words in input_error(path)


def test_bad_arguments(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ok.jsonl", alpaca_rows(2))
    assert "unknown format 'yaml'" in input_error(path, format="yaml")
    assert "unknown field name(s) ['answer']" in input_error(path, fields={"answer": "a"})


def test_input_error_shape_and_pickle() -> None:
    error = InputError("d.jsonl", "bad\nthing", row=3, field="output", line=4)
    assert str(error) == "d.jsonl: row 3 (line 4): field 'output': bad thing"
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
    assert str(InputError("d.json", "file is empty")) == "d.json: file is empty"


def test_skip_invalid_accounting(tmp_path: Path) -> None:
    rows: list[Any] = alpaca_rows(6)
    rows[1] = {"instruction": "Hi", "output": ""}
    rows[4] = {"instruction": "Hi", "output": 7}
    rows.append({"conversations": "wrong schema"})
    path = write_json(tmp_path / "mixed.json", rows)
    dataset = read_dataset(path, skip_invalid=True)
    assert dataset.n_rows == 7
    assert len(dataset.samples) + len(dataset.invalid) == dataset.n_rows
    assert [(r.row, r.field) for r in dataset.invalid] == [
        (1, "output"),
        (4, "output"),
        (6, "instruction"),
    ]
    assert "empty" in dataset.invalid[0].message and "number" in dataset.invalid[1].message
    # Invalid rows keep their index and are written only when asked for.
    out = write_subset(dataset, [s.row for s in dataset.samples], tmp_path / "valid")
    back = read_dataset(out)
    assert turns_of(back) == turns_of(dataset) and not back.invalid
    out = write_subset(dataset, [4], tmp_path / "asked")
    assert json.loads(out.read_text()) == [rows[4]]


def test_write_subset_rejects_bad_rows(tmp_path: Path) -> None:
    dataset = read_dataset(write_jsonl(tmp_path / "a.jsonl", alpaca_rows(3)))
    with pytest.raises(IndexError, match="row 3 out of range"):
        write_subset(dataset, [0, 3], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked before anything is written


# Property: whatever the text, standard-library files round-trip exactly.

_text = st.text(max_size=40)
_nonblank = _text.filter(lambda s: s.strip() != "")
_alpaca_row = st.fixed_dictionaries({"instruction": _nonblank, "input": _text, "output": _nonblank})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(_alpaca_row, min_size=1, max_size=8),
    kind=st.sampled_from(["json", "jsonl", "csv"]),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
    data=st.data(),
)
def test_property_round_trip_and_subsets(
    rows: list[Row], kind: str, ensure_ascii: bool, indent: int | None, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"gen.{kind}"
        if kind == "json":
            path.write_text(
                json.dumps(rows, ensure_ascii=ensure_ascii, indent=indent), encoding="utf-8"
            )
        elif kind == "jsonl":
            lines = (json.dumps(row, ensure_ascii=ensure_ascii) + "\n" for row in rows)
            path.write_text("".join(lines), encoding="utf-8")
        else:
            with path.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=["instruction", "input", "output"])
                writer.writeheader()
                writer.writerows(rows)
        dataset = read_dataset(path)
        assert turns_of(dataset) == [alpaca_turns(row) for row in rows]
        whole = write_subset(dataset, range(len(rows)), Path(tmp) / "all")
        assert whole.read_bytes() == path.read_bytes()
        chosen = data.draw(st.sets(st.integers(0, len(rows) - 1), min_size=1))
        back = read_dataset(write_subset(dataset, list(chosen), Path(tmp) / "some"))
        assert turns_of(back) == [alpaca_turns(rows[k]) for k in sorted(chosen)]


# What LLaMA-Factory trains on is what is scored.


def test_alpaca_history_is_scored_as_earlier_turns(tmp_path: Path) -> None:
    row = {
        "instruction": "And in French?",
        "input": "",
        "output": "Bonjour",
        "system": "Translate.",
        "history": [["Say hello.", "Hello"], ["In German?", "Hallo"]],
    }
    dataset = read_dataset(
        write_json(tmp_path / "a.json", [row, {**row, "history": [["x"]]}]), skip_invalid=True
    )
    assert dataset.samples[0].turns == (
        Turn("system", "Translate."),
        Turn("user", "Say hello."),
        Turn("assistant", "Hello"),
        Turn("user", "In German?"),
        Turn("assistant", "Hallo"),
        Turn("user", "And in French?"),
        Turn("assistant", "Bonjour"),
    )
    assert dataset.invalid[0].field == "history[0]"
    assert dataset.unused_columns == []


def test_sharegpt_tools_are_part_of_the_system_context(tmp_path: Path) -> None:
    tools = '[{"name": "weather", "parameters": {"city": "string"}}]'
    conversations = [
        {"from": "human", "value": "Weather in Paris?"},
        {"from": "function_call", "value": '{"name": "weather"}'},
        {"from": "observation", "value": '{"temp": 20}'},
        {"from": "gpt", "value": "20 degrees."},
    ]
    rows = [
        {"conversations": conversations, "tools": tools, "system": "Be brief."},
        {"conversations": conversations, "tools": tools},
    ]
    dataset = read_dataset(write_jsonl(tmp_path / "glaive.jsonl", rows))
    assert dataset.samples[0].turns[0] == Turn("system", f"Be brief.\n\n{tools}")
    assert dataset.samples[1].turns[0] == Turn("system", tools)
    assert dataset.samples[1].turns[1:] == dataset.samples[0].turns[1:]


def test_llamafactory_custom_role_tags_are_accepted(tmp_path: Path) -> None:
    rows = [
        {"chat": [{"speaker": "USER", "text": "Hi"}, {"speaker": "ASSISTANT", "text": "Hello"}]},
        {"chat": [{"speaker": "USER", "text": "Bye"}, {"speaker": "ASSISTANT", "text": "Ciao"}]},
    ]
    write_json(tmp_path / "chat.json", rows)
    tags = {
        "role_tag": "speaker",
        "content_tag": "text",
        "user_tag": "USER",
        "assistant_tag": "ASSISTANT",
    }
    entry = {"file_name": "chat.json", "formatting": "sharegpt", "columns": {"messages": "chat"}}
    info = write_json(tmp_path / "dataset_info.json", {"c": {**entry, "tags": tags}})
    dataset = read_input(info, dataset="c")
    assert dataset.samples[0].turns == (Turn("user", "Hi"), Turn("assistant", "Hello"))


def test_a_datasetdict_is_read_one_split_at_a_time(tmp_path: Path) -> None:
    import datasets

    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(4)]
    both = datasets.DatasetDict(
        train=datasets.Dataset.from_list(rows[:3]), test=datasets.Dataset.from_list(rows[3:])
    )
    both.save_to_disk(str(tmp_path / "both"))
    datasets.DatasetDict(train=both["train"]).save_to_disk(str(tmp_path / "one"))
    assert read_dataset(tmp_path / "one").n_rows == 3
    assert read_dataset(tmp_path / "both", split="test").samples[0].response == "a3"
    with pytest.raises(InputError) as error:
        read_dataset(tmp_path / "both")
    assert str(error.value) == (
        f"{tmp_path / 'both'}: holds the splits ['train', 'test']; choose one with --split"
    )
    with pytest.raises(InputError, match=r"no split 'dev'; splits: \['train', 'test'\]"):
        read_dataset(tmp_path / "both", split="dev")


def test_unused_columns_are_listed_and_a_mapped_missing_column_is_named(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "q": "Why?", "a": "Because.", "source": "web"},
        {"id": 2, "q": "How?", "a": "So.", "lang": "en"},
    ]
    path = write_jsonl(tmp_path / "qa.jsonl", rows)
    dataset = read_dataset(path, fields={"instruction": "q", "output": "a"})
    assert dataset.unused_columns == ["id", "source", "lang"]
    message = input_error(path, fields={"instruction": "q", "output": "answer"})
    assert message == (
        f"{path}: field 'output' is mapped to column 'answer', which no row has; "
        "columns: ['a', 'id', 'lang', 'q', 'source']"
    )

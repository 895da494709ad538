"""Every row of the error table in docs/guarantees.md is produced, word for word, by the case
named in it: one line, exit code 2, nothing written."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import cli

ROOT = Path(__file__).resolve().parents[1]
GOOD = '{"instruction": "a", "output": "b"}'
POOL = ["run", "pool.json", "-m", "length", "-q"]

# Table row ("you gave" column) -> (files to create, command-line arguments)
CASES: dict[str, tuple[dict[str, bytes], list[str]]] = {
    "a line that is not JSON": (
        {"pool.jsonl": f'{GOOD}\n{{"instruction": oops}}\n'.encode()},
        ["run", "pool.jsonl"],
    ),
    "a row without a required field": (
        {"pool.json": f'[{GOOD}, {{"instruction": "c"}}]'.encode()},
        POOL,
    ),
    "a field of the wrong type": ({"pool.json": b'[{"instruction": "a", "output": 7}]'}, POOL),
    "an empty response": (
        {"pool.json": f'[{GOOD}, {{"instruction": "c", "output": " "}}]'.encode()},
        POOL,
    ),
    "bytes that are not UTF-8": (
        {"pool.jsonl": f'{GOOD}\n{{"instruction": "\xff", "output": "d"}}\n'.encode("latin-1")},
        ["run", "pool.jsonl"],
    ),
    "a conversation that ends on the user": (
        {"chat.jsonl": b'{"messages": [{"role": "user", "content": "hi"}]}\n'},
        ["run", "chat.jsonl"],
    ),
    "a role iclselect does not know": (
        {"chat.jsonl": b'{"messages": [{"role": "narrator", "content": "hi"}]}\n'},
        ["run", "chat.jsonl"],
    ),
    "an empty file": ({"pool.json": b""}, POOL),
    "rows of no known schema": ({"pool.json": b'[{"question": "a", "answer": "b"}]'}, POOL),
    "fewer than two valid rows": ({"pool.json": f"[{GOOD}]".encode()}, POOL),
    "a path that does not exist": ({}, ["run", "nope.json"]),
    "a file type iclselect does not read": ({"pool.txt": b"text"}, ["run", "pool.txt"]),
    "an unknown method": ({"pool.json": f"[{GOOD}, {GOOD}]".encode()}, [*POOL, "-m", "wicci"]),
    "a method option that does not exist": (
        {"pool.json": f"[{GOOD}, {GOOD}]".encode()},
        [*POOL, "-m", "random", "-s", "sed=3"],
    ),
    "an option value of the wrong type": (
        {"pool.json": f"[{GOOD}, {GOOD}]".encode()},
        [*POOL, "-m", "random", "-s", "seed=three"],
    ),
    "two budgets at once": (
        {"pool.json": f"[{GOOD}, {GOOD}]".encode()},
        [*POOL, "--count", "1", "--fraction", "0.5"],
    ),
    "an executor iclselect does not have": (
        {"pool.json": f"[{GOOD}, {GOOD}]".encode()},
        [*POOL, "--executor", "spark"],
    ),
    "a LLaMA-Factory entry that is not there": (
        {"dataset_info.json": b'{"qa": {"file_name": "qa.json"}}'},
        ["run", "dataset_info.json", "--dataset", "alpaca"],
    ),
    "a config file key that is not an option": (
        {"run.yaml": b"data: pool.json\nfration: 0.1\n"},
        ["run", "--config", "run.yaml"],
    ),
    "an `--out` that is a file": ({"pool.json": f"[{GOOD}, {GOOD}]".encode(), "out": b""}, POOL),
    "an `--out` holding an earlier run": (
        {
            "pool.json": f"[{GOOD}, {GOOD}]".encode(),
            "out/manifest.json": b'{"input": {}, "config": {}, "outputs": []}',
        },
        POOL,
    ),
    "`--device cuda` where torch sees no GPU": (
        {"pool.json": f"[{GOOD}, {GOOD}]".encode()},
        ["run", "pool.json", "-m", "ifd", "--device", "cuda"],
    ),
    "`--executor ray` without ray installed": (
        {"pool.json": f"[{GOOD}, {GOOD}]".encode()},
        ["run", "pool.json", "-m", "ifd", "--executor", "ray"],
    ),
}


def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else found(name, *a)
    )


# What a case needs of the machine, made so wherever the suite runs.
MACHINE: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "`--device cuda` where torch sees no GPU": lambda mp: mp.setattr(
        torch.cuda, "is_available", lambda: False
    ),
    "`--executor ray` without ray installed": _no_ray,
}


def table_rows() -> dict[str, str]:
    text = (ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
    section = text.split("## Errors you can meet")[1].split("\n## ")[0]
    return dict(re.findall(r"^\| (.+?) \| `(error: .+)` \|$", section, re.MULTILINE))


def test_the_table_and_the_cases_match():
    assert set(table_rows()) == set(CASES)


@pytest.mark.parametrize("case", list(CASES))
def test_each_error_reads_as_the_docs_say(tmp_path, monkeypatch, case):
    files, args = CASES[case]
    monkeypatch.chdir(tmp_path)
    for name, content in files.items():
        Path(name).parent.mkdir(exist_ok=True)
        Path(name).write_bytes(content)
    if case in MACHINE:
        MACHINE[case](monkeypatch)
    result = cli(*args, "--out", "out")
    assert result.exit_code == 2, result.output
    assert result.output.strip() == table_rows()[case]
    assert {str(path): path.read_bytes() for path in Path().rglob("*") if path.is_file()} == files

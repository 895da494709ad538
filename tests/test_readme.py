"""The README's quick start runs as written and prints what the README shows; the Python code
blocks of the README and docs/ run as written, from a directory laid out like the repository
(data/ beside them)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from conftest import cli

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Pages whose Python blocks run, in this order: docs/formats.md's read the quick start's runs/demo.
PAGES = ["README.md", "docs/api.md", "docs/formats.md"]


def blocks(page: str, language: str) -> list[str]:
    text = (ROOT / page).read_text(encoding="utf-8")
    return [body for lang, body in _BLOCK.findall(text) if lang == language]


def quick_start() -> tuple[list[str], list[str]]:
    """The first command's iclselect arguments, and the lines of the output the README shows
    that hold no score (the scores move a little between dtypes)."""
    command = blocks("README.md", "bash")[0]
    args = shlex.split(command.split(".venv/bin/iclselect ", 1)[1])
    shown = blocks("README.md", "")[0]
    steady = [line.strip() for line in shown.splitlines() if not re.search(r"[+-]0\.\d", line)]
    return args, steady


def test_the_quick_start_runs_as_the_readme_shows_then_the_python_blocks(tmp_path, monkeypatch):
    args, steady = quick_start()
    assert args == ["run", "data/alpaca_demo_60.json", "--out", "runs/demo"]
    assert "kept 6 of 60 rows" in steady
    (tmp_path / "data").symlink_to(ROOT / "data")
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert result.exit_code == 0, result.output
    printed = {line.strip() for line in result.output.splitlines()}
    assert [line for line in steady if line not in printed] == []
    for page in PAGES:
        python = blocks(page, "python")
        assert python, f"{page} has no Python block"
        namespace: dict = {"__name__": "__docs__"}
        for number, block in enumerate(python, start=1):
            code = compile(block, f"{page} python block {number}", "exec")
            exec(code, namespace)  # running the documentation is the test
    assert os.path.isfile("runs/api/manifest.json")


def test_the_docs_name_every_column_of_scores_parquet(tmp_path, demo_rows):
    """The columns a wICI run writes (with the map: wICI embeds the pool) are each named in
    the docs: the base and map columns in the scores.parquet row of docs/formats.md, the
    components in wici's row of docs/method-guide.md's methods table."""
    import pyarrow.parquet as pq
    from conftest import CHEAP, shortest, write_json

    data = write_json(tmp_path / "pool.json", shortest(demo_rows, 4))
    out = tmp_path / "out"
    result = cli("run", str(data), *CHEAP["wici"], "--count", "2", "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    formats = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8").splitlines()
    guide = (ROOT / "docs" / "method-guide.md").read_text(encoding="utf-8").splitlines()
    scores_row = next(line for line in formats if line.startswith("| `scores.parquet`"))
    wici_row = next(line for line in guide if line.startswith("| `wici` |"))
    named = set(re.findall(r"`([a-z_]+)`", scores_row + wici_row))
    columns = set(pq.read_schema(out / "scores.parquet").names)
    assert "cluster_central" in columns and "n_probes" in columns
    assert columns - named == set()

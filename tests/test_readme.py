"""The README's Python code blocks run as written, in order, from a directory laid out like the
repository (data/ beside them)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from conftest import cli

ROOT = Path(__file__).resolve().parents[1]
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks() -> list[str]:
    return _PYTHON_BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 2 and any("iclselect.score(" in block for block in blocks)
    (tmp_path / "data").symlink_to(ROOT / "data")
    monkeypatch.chdir(tmp_path)
    # The blocks after the quick start read its runs/demo; the quick-start command itself (wICI,
    # five minutes) is run here with IFD instead, which writes the same files and columns.
    result = cli("run", "data/alpaca_demo_60.json", "--out", "runs/demo", "-m", "ifd", "-q")
    assert result.exit_code == 0, result.output
    namespace: dict = {"__name__": "__readme__"}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"README.md python block {number}", "exec")
        exec(code, namespace)  # running the documentation is the test
    assert os.path.isfile("runs/api/manifest.json")


def test_readme_names_every_column_of_scores_parquet(tmp_path, demo_rows):
    """The columns a wICI run writes (with the map: wICI embeds the pool) are each named in
    the README: the base and map columns in the scores.parquet row of "What you get", the
    components in wici's row of the methods table."""
    import pyarrow.parquet as pq
    from conftest import CHEAP, shortest, write_json

    data = write_json(tmp_path / "pool.json", shortest(demo_rows, 4))
    out = tmp_path / "out"
    result = cli("run", str(data), *CHEAP["wici"], "--count", "2", "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    scores_row = next(line for line in text.splitlines() if line.startswith("| `scores.parquet`"))
    wici_row = next(line for line in text.splitlines() if line.startswith("| `wici` |"))
    named = set(re.findall(r"`([a-z_]+)`", scores_row + wici_row))
    columns = set(pq.read_schema(out / "scores.parquet").names)
    assert "cluster_central" in columns and "n_probes" in columns
    assert columns - named == set()

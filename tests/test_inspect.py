"""`iclselect inspect`: what the data holds, and a cost estimate that matches the real run."""

from __future__ import annotations

import json
import re

from conftest import cli, write_json


def test_inspect_reports_format_lengths_and_the_cost_a_run_then_has(tmp_path, demo_rows):
    rows = sorted(demo_rows, key=lambda r: len(r["output"]))[:6]
    data = write_json(tmp_path / "pool.json", [*rows, rows[0], {"instruction": "x"}])
    result = cli("inspect", str(data), "--methods", "ifd,miwv,length", "-q")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"{data}: alpaca rows, json container" in out
    assert "rows: 8 (7 valid, 1 invalid); exact duplicates: 1" in out
    assert "invalid row 7: field 'output': missing" in out
    assert re.search(r"context +\d+ +\d+", out) and "longer than --max-length 2048: 0" in out
    costs = {
        m.group(1): (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
        for m in re.finditer(r"^ +(ifd|miwv|length) +([\d,]+) +([\d,]+)", out, re.MULTILINE)
    }
    assert costs["length"] == (0, 0)
    assert costs["ifd"][0] == 2 * 7
    run = cli("run", str(data), "-m", "ifd", "--skip-invalid", "-o", str(tmp_path / "run"), "-q")
    assert run.exit_code == 0, run.output
    engine = json.loads((tmp_path / "run" / "manifest.json").read_text())["engine"]
    assert (engine["requests"], engine["tokens"]) == costs["ifd"]

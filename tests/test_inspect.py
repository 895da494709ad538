"""`iclselect inspect`: what the data holds, and a cost estimate that matches the real run."""

from __future__ import annotations

import json
import re

import pytest
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


def test_inspect_states_time_in_hours_and_keeps_its_table_aligned_for_wide_numbers():
    from dataclasses import replace

    import numpy as np

    from iclselect.run.inspection import Inspection, MethodCost

    costs = [
        MethodCost("wici", 123_456_789, 1, 98_765_432_109, 9.07e17),
        MethodCost("length", 0, 0, 0, 0.0),
    ]
    lengths = {name: np.array([1, 12_345_678]) for name in ("context", "response", "total")}
    page = Inspection(
        path="p.json",
        schema="alpaca",
        container="json",
        rows=2,
        invalid=[],
        duplicates=0,
        lengths=lengths,
        max_length=2048,
        model="m",
        template="chat",
        costs=costs,
        rate=1e11,
    )
    lines = page.render().splitlines()
    wici = next(line for line in lines if line.lstrip().startswith("wici"))
    assert wici.endswith("~2519 h 27 min")
    head = next(line for line in lines if line.lstrip().startswith("method"))
    for column, cell in (("requests", "123,456,789"), ("TFLOP", "907000.00")):
        assert head.index(column) + len(column) == wici.index(cell) + len(cell)
    lengths_table = lines[lines.index(next(x for x in lines if "tokens per sample" in x)) + 1 :][:4]
    assert len({len(line) for line in lengths_table}) == 1
    untimed = replace(page, rate=None, timed=False)
    assert "unknown (--no-timing)" in untimed.render()


def test_inspect_no_timing_runs_no_request(tmp_path, demo_rows, monkeypatch):
    import iclselect.run.inspection

    monkeypatch.setattr(iclselect.run.inspection, "calibrate", lambda *a: pytest.fail("timed"))
    data = write_json(tmp_path / "pool.json", demo_rows[:4])
    result = cli("inspect", str(data), "--methods", "ifd", "--no-timing", "-q")
    assert result.exit_code == 0, result.output
    assert "unknown (--no-timing)" in result.output


def test_inspect_estimates_with_the_settings_a_run_takes(tmp_path, demo_rows):
    data = write_json(tmp_path / "pool.json", sorted(demo_rows, key=lambda r: len(r["output"]))[:6])
    base = ["inspect", str(data), "--no-timing", "-q"]
    one = cli(*base, "--methods", "nuggets", "-s", "anchors=2")
    assert one.exit_code == 0, one.output
    assert re.search(r"^ +nuggets +12 ", one.output, re.MULTILINE)  # 2 + 6 x 2 anchors - 2 self
    several = cli(*base, "--methods", "nuggets,ifd", "--set", "nuggets.anchors=2")
    assert several.exit_code == 0, several.output
    assert re.search(r"^ +nuggets +12 ", several.output, re.MULTILINE)
    bare = cli(*base, "--methods", "nuggets,ifd", "-s", "anchors=2")
    assert bare.exit_code == 2
    assert "--set anchors: with several methods, name the method: METHOD.anchors" in bare.output

"""`iclselect bench pipeline` at a tiny size: the whole run's path under the no-model kernel,
every host stage in the table. Figures are never asserted."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import DEMO_DATA, cli

from iclselect.bench.pipeline import FORWARD, STAGES


def test_bench_pipeline_times_every_stage_of_a_run(tmp_path):
    result = cli(
        "bench",
        "pipeline",
        "--rows",
        "70",
        "--pool",
        str(DEMO_DATA),
        "--no-dry-run",
        "--no-write",
        "--workdir",
        str(tmp_path),
        "-m",
        "wici,miwv",
    )
    assert result.exit_code == 0, result.output
    table = [line for line in result.output.splitlines() if line.startswith("| ")]
    named = {line.split(" | ")[0].removeprefix("| ") for line in table}
    assert {name for name, _ in STAGES} - {FORWARD} <= named
    assert "**host total** (model stages excluded)" in named
    assert "fed the engine" in result.output and "H200" in result.output
    assert "### bench pipeline" in result.output.split("wici, 70 rows")[1]  # miwv's table too
    run = tmp_path / "wici" / "70"
    rows = [json.loads(line) for line in (run / "pool_70.jsonl").open()]
    originals = json.loads(Path(DEMO_DATA).read_text())
    assert rows[0]["instruction"] == originals[0]["instruction"]
    assert rows[65]["instruction"] == originals[5]["instruction"] + " (#65)"
    manifest = json.loads((run / "out" / "manifest.json").read_text())
    assert manifest["input"]["rows"] == 70 and (run / "out" / "report.html").is_file()
    assert (tmp_path / "miwv" / "70" / "out" / "manifest.json").is_file()

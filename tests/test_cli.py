"""`iclselect run` end to end on real rows, and the one-line errors for bad input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import cli, write_json
from typer.testing import CliRunner

from iclselect.cli.main import app

FAST = ["--set", "n_probes=2", "--set", "n_neighbours=4", "--quiet"]


def invoke(*args: str):
    return CliRunner().invoke(app, ["run", *args])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, demo_rows):
    """One full run on 12 real rows, one of them a near-copy of another, keeping all it can."""
    tmp = tmp_path_factory.mktemp("run")
    rows = [dict(r) for r in demo_rows[:11]]
    twin = dict(rows[3], output=rows[3]["output"] + " ")
    data = write_json(tmp / "pool.json", [*rows, twin])
    result = invoke(str(data), "--out", str(tmp / "out"), "--fraction", "1.0", *FAST)
    assert result.exit_code == 0, result.output
    return data, tmp / "out", result.output


def test_run_writes_subset_scores_and_manifest(run_dir):
    data, out, output = run_dir
    assert f"subset:   {out / 'subset.json'}" in output
    table = pq.read_table(out / "scores.parquet").to_pylist()
    best = min((r for r in table if r["selected"]), key=lambda r: r["rank"])
    assert f"row {best['row']} " in output and f"{best['score']:+.4f}" in output
    assert f"kept {sum(r['selected'] for r in table)} of 12 rows" in output
    assert [r["row"] for r in table] == list(range(12))
    assert {"row", "id", "score", "selected", "rank", "reason", "ifd", "probe_rows"} <= set(
        table[0]
    )
    kept = [r["row"] for r in table if r["selected"]]
    source = json.loads(data.read_text(encoding="utf-8"))
    assert json.loads((out / "subset.json").read_text(encoding="utf-8")) == [
        source[i] for i in kept
    ]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["input"]["rows"] == 12
    assert manifest["kept"] == len(kept) and manifest["kept"] + manifest["dropped"] == 12
    assert sum(manifest["dropped_by_reason"].values()) == manifest["dropped"]
    assert manifest["method"]["params"]["n_probes"] == 2
    assert manifest["versions"]["torch"] and manifest["model"].startswith("smollm2-135m-instruct@")


def test_near_duplicates_are_not_both_kept(run_dir):
    _, out, _ = run_dir
    table = pq.read_table(out / "scores.parquet").to_pylist()
    assert not (table[3]["selected"] and table[11]["selected"])
    loser, winner = (table[11], table[3]) if table[3]["selected"] else (table[3], table[11])
    assert loser["reason"] == "near_duplicate" and loser["near_duplicate_of"] == winner["row"]
    assert loser["similarity"] >= 0.9 and loser["rank"] is not None


def test_subset_is_byte_for_byte_the_input_rows(tmp_path, demo_rows):
    data = tmp_path / "pool.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in demo_rows[:6]]
    data.write_text("".join(lines), encoding="utf-8")
    result = invoke(str(data), "--out", str(tmp_path / "out"), "--count", "2", *FAST)
    assert result.exit_code == 0, result.output
    kept = [
        r["row"]
        for r in pq.read_table(tmp_path / "out" / "scores.parquet").to_pylist()
        if r["selected"]
    ]
    assert (tmp_path / "out" / "subset.jsonl").read_text(encoding="utf-8") == "".join(
        lines[i] for i in kept
    )


def test_skip_invalid_accounts_for_every_row(tmp_path, demo_rows):
    lines = [json.dumps(r) for r in demo_rows[:6]]
    lines.insert(2, '{"instruction": "broken", "output": ')
    lines.insert(4, json.dumps({"instruction": "no answer", "input": "", "output": "  "}))
    data = tmp_path / "pool.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")

    stopped = invoke(str(data), "--out", str(tmp_path / "stop"), *FAST)
    assert stopped.exit_code == 2 and "row 2" in stopped.output

    result = invoke(
        str(data), "--out", str(tmp_path / "out"), "--skip-invalid", "--count", "2", *FAST
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [bad["row"] for bad in manifest["invalid_rows"]] == [2, 4]
    assert manifest["input"]["rows"] == 8 and manifest["kept"] + manifest["dropped"] == 8
    assert manifest["dropped_by_reason"]["invalid"] == 2
    table = pq.read_table(tmp_path / "out" / "scores.parquet").to_pylist()
    assert len(table) == 8
    assert table[4]["reason"] == "invalid" and table[4]["score"] is None
    assert table[4]["detail"].startswith("field 'output': empty")


GOOD = b'{"instruction": "a", "output": "b"}'
BAD_INPUTS = {
    "malformed_json": ("bad.jsonl", GOOD + b'\n{"instruction": \n', ["row 1", "line 2"]),
    "missing_field": ("bad.json", b"[" + GOOD + b', {"instruction": "c"}]', ["row 1", "'output'"]),
    "wrong_type": ("bad.json", b"[" + GOOD + b', {"instruction": "c", "output": 7}]', ["row 1", "'output'"]),  # noqa: E501
    "empty_response": ("bad.jsonl", GOOD + b'\n{"instruction": "c", "output": ""}\n', ["row 1", "'output'"]),  # noqa: E501
    "non_utf8": ("bad.jsonl", GOOD + b'\n{"instruction": "\xff\xfe", "output": "d"}\n', ["row 1", "0xff"]),  # noqa: E501
    "empty_file": ("bad.json", b"", ["empty"]),
    "unknown_format": ("bad.json", b'[{"question": "a", "answer": "b"}]', ["question", "--format"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_naming_file_row_and_field(tmp_path, case):
    name, content, expected = BAD_INPUTS[case]
    data = tmp_path / name
    data.write_bytes(content)
    result = invoke(str(data), "--out", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0]
    for part in expected:
        assert part in lines[0]
    assert not (tmp_path / "out").exists()


def test_real_process_exits_2_without_traceback(tmp_path):
    data = tmp_path / "bad.json.gz"
    data.write_bytes(gzip.compress(b'[{"instruction": "a", "output": 1}]'))
    done = subprocess.run(
        [sys.executable, "-m", "iclselect", "run", str(data), "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip().count("\n") == 0
        and "row 0" in done.stderr
        and "'output'" in done.stderr
    )


def test_help_teaches(tmp_path):
    result = CliRunner().invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--fraction", "--template", "--method", "--set", "--skip-invalid", "--tau"):
        assert option in result.output
    assert not Path(tmp_path / "runs").exists()


def test_dry_run_estimates_without_writing_outputs(tmp_path, demo_rows):
    data = write_json(tmp_path / "pool.json", demo_rows[:5])
    result = invoke(str(data), "--out", str(tmp_path / "out"), "--dry-run", *FAST)
    assert result.exit_code == 0, result.output
    assert "requests: 20 (20 distinct" in result.output  # 5 x (2 + 2 probes)
    assert "estimated scoring time: ~" in result.output and "TFLOP" in result.output
    assert not (tmp_path / "out" / "scores.parquet").exists()


def test_bench_speed_runs_both_arms_and_checks_agreement(tmp_path):
    """The benchmark itself (figures are never asserted: they live in BENCHMARKS.md)."""
    report = tmp_path / "BENCH.md"
    args = ["bench", "speed", "--rows", "3", "--n-probes", "1", "--benchmarks", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert "| reference loop |" in text
    assert "| engine (loop attention) |" in text and "| engine (flex attention) |" in text
    assert "Agreement with the fp32 reference: Spearman" in text


def test_version():
    from importlib import metadata

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"iclselect {metadata.version('iclselect')}\n"


def test_standard_input_is_read_with_format_and_its_rows_written_back(tmp_path, demo_rows):
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in demo_rows[:5])
    args = ["run", "-", "-m", "length", "--count", "2", "-q", "-o", str(tmp_path / "out")]
    refused = CliRunner().invoke(app, args, input=text)
    assert refused.exit_code == 2
    assert refused.output == (
        "error: <stdin>: reading standard input needs --format alpaca, sharegpt or messages\n"
    )
    result = CliRunner().invoke(app, [*args, "--format", "alpaca"], input=text)
    assert result.exit_code == 0, result.output
    kept = (tmp_path / "out" / "subset.jsonl").read_text(encoding="utf-8").splitlines(True)
    assert len(kept) == 2 and all(line in text.splitlines(True) for line in kept)
    assert cli("report", str(tmp_path / "out")).exit_code == 0


def test_unused_columns_are_named_once_and_listed_in_the_manifest(tmp_path, demo_rows):
    rows = [{**r, "id": i, "source": "alpaca"} for i, r in enumerate(demo_rows[:4])]
    data = tmp_path / "pool.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = invoke(str(data), "-m", "length", "--count", "2", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    warning = "warning: columns not scored (carried into the subset as they are): id, source"
    assert result.output.count(warning) == 1
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["input"]["unused_columns"] == ["id", "source"]


def test_split_picks_one_split_of_a_datasetdict(tmp_path, demo_rows):
    import datasets

    pool = datasets.Dataset.from_list(demo_rows[:6])
    datasets.DatasetDict(train=pool.select(range(4)), test=pool.select([4, 5])).save_to_disk(
        str(tmp_path / "dd")
    )
    base = [str(tmp_path / "dd"), "-m", "length", "--count", "1", "-q"]
    refused = invoke(*base, "-o", str(tmp_path / "no"))
    assert refused.exit_code == 2
    assert "holds the splits ['train', 'test']; choose one with --split" in refused.output
    result = invoke(*base, "--split", "test", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert datasets.load_from_disk(str(tmp_path / "out" / "subset"))[0] in demo_rows[4:6]


def test_compare_dry_run_estimates_every_method_and_writes_nothing(tmp_path, demo_rows):
    data = write_json(tmp_path / "pool.json", demo_rows[:4])
    out = tmp_path / "cmp"
    args = ["compare", str(data), "--methods", "ifd,length", "--dry-run", "-o", str(out), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "dry run: 4 samples, method ifd, model " in result.output
    assert "\n  requests per sample: 2\n" in result.output
    assert "requests: 8 (8 distinct" in result.output
    assert "dry run: 4 samples, method length: no model requests" in result.output
    assert not out.exists()  # not even store.sqlite: the calibration answers are thrown away


def test_help_shows_no_type_for_flags_and_whole_sentences_at_80_columns():
    runner = CliRunner(env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    top = runner.invoke(app, ["--help"])
    run = runner.invoke(app, ["run", "--help"])
    assert top.exit_code == 0 and run.exit_code == 0
    assert "<bool>" not in top.output + run.output
    assert "instruction=q,output=a" in run.output
    commands = " ".join(top.output.split("Commands")[1].replace("│", " ").split())
    assert (
        "inspect Describe DATA and what each method would cost on it, before scoring " in commands
    )
    assert "anything. report (Re)build OUT/report.html from OUT/manifest.json and " in commands
    assert "OUT/scores.parquet. methods" in commands

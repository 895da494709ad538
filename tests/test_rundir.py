"""--out is safe: checked before anything loads, an earlier run is replaced only with
--overwrite (and then only its own outputs), and one run's outputs never mix with another's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli, shortest, write_json

import iclselect.api

CHEAP = ["-m", "length", "--count", "2", "-q", "--no-report"]


@pytest.fixture
def pool(tmp_path, demo_rows) -> Path:
    return write_json(tmp_path / "pool.json", shortest(demo_rows, 4))


def _no_prepare(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the input was read before --out was checked")

    monkeypatch.setattr(iclselect.api, "prepare", refuse)


def test_an_out_that_is_a_file_is_refused_before_anything_loads(tmp_path, pool, monkeypatch):
    (tmp_path / "taken").write_text("mine")
    _no_prepare(monkeypatch)
    result = cli("run", str(pool), "-o", str(tmp_path / "taken"), *CHEAP)
    assert result.exit_code == 2
    taken = tmp_path / "taken"
    assert result.output.strip() == f"error: --out {taken}: is a file; --out names a directory"
    assert (tmp_path / "taken").read_text() == "mine"


def test_an_earlier_run_is_refused_without_overwrite(tmp_path, pool, monkeypatch):
    out = tmp_path / "out"
    assert cli("run", str(pool), "-o", str(out), *CHEAP).exit_code == 0
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    _no_prepare(monkeypatch)
    result = cli("run", str(pool), "-o", str(out), *CHEAP)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: --out {out}: holds an earlier iclselect run (manifest.json); pass --overwrite "
        "to replace its outputs, or choose another --out"
    )
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before


def test_a_rerun_is_as_the_docs_say_refused_then_answered_by_the_store(tmp_path, pool):
    usage = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text(encoding="utf-8")
    resume = " ".join(usage.split("- **Resume for free.**")[1].split("\n- **")[0].split())
    assert "refused on a rerun (`pass --overwrite to replace its outputs`)" in resume
    assert "rerun with `--overwrite` and the store answers every request" in resume
    args = ["run", str(pool), "-m", "ifd", "--count", "2", "--no-report", "-o", str(tmp_path / "o")]
    assert cli(*args, "-q").exit_code == 0
    refused = cli(*args, "-q")
    assert refused.exit_code == 2 and "pass --overwrite to replace its outputs" in refused.output
    again = cli(*args, "--overwrite")
    assert again.exit_code == 0, again.output
    assert "ifd: 8 requests, 8 answered from the store, 0 computed (0 tokens)" in again.output


def test_overwrite_removes_the_old_runs_outputs_and_nothing_else(tmp_path, demo_rows):
    """The LLaMA-Factory repro: a plain run over a LLaMA-Factory run must not leave the old
    dataset_info.json pointing at a subset of another format."""
    rows = shortest(demo_rows, 4)
    write_json(tmp_path / "lf.json", rows)
    write_json(tmp_path / "dataset_info.json", {"qa": {"file_name": "lf.json"}})
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    first = cli(
        "run",
        str(tmp_path / "dataset_info.json"),
        "--dataset",
        "qa",
        "-o",
        str(out),
        "--add-scores",
        *CHEAP,
    )
    assert first.exit_code == 0, first.output
    assert {"subset.json", "dataset_info.json", "subset_scored"} <= {p.name for p in out.iterdir()}
    (out / "notes.txt").write_text("mine")
    second = cli("run", str(jsonl), "-o", str(out), "--overwrite", *CHEAP)
    assert second.exit_code == 0, second.output
    names = {path.name for path in out.iterdir()}
    assert names == {"subset.jsonl", "scores.parquet", "manifest.json", "notes.txt"}
    assert (out / "notes.txt").read_text() == "mine"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"]["path"] == str(jsonl)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("manifest.json", '{"version": 1}', "holds a manifest.json iclselect did not write"),
        ("dataset_info.json", "{}", "holds dataset_info.json but no manifest.json"),
    ],
)
def test_files_iclselect_did_not_write_are_never_touched(tmp_path, pool, name, content, expected):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text(content)
    for flags in ([], ["--overwrite"]):
        result = cli("run", str(pool), "-o", str(out), *CHEAP, *flags)
        assert result.exit_code == 2 and expected in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == [name] and (out / name).read_text() == content


def test_a_run_killed_while_publishing_is_finished_by_its_rerun(tmp_path, pool):
    out = tmp_path / "out"
    out.mkdir()
    (out / "subset.csv").write_text("stale")  # left by a run of another input, killed mid-way
    (out / ".iclselect-publishing.tmp").write_text("subset.csv\nmanifest.json\n")
    result = cli("run", str(pool), "-o", str(out), *CHEAP)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"subset.json", "scores.parquet", "manifest.json"}


def test_compare_replaces_its_method_runs_only_with_overwrite(tmp_path, pool):
    out = tmp_path / "cmp"
    args = ["compare", str(pool), "--methods", "length,random", "--count", "2", "-o", str(out)]
    assert cli(*args, "-q").exit_code == 0
    again = cli(*args, "-q")
    assert again.exit_code == 2 and "holds an earlier iclselect run" in again.output
    assert cli(*args, "-q", "--overwrite").exit_code == 0
    single = cli("compare", str(pool), "--methods", "length,random", "-o", str(out / "length"))
    assert single.exit_code == 2 and "holds a single run (manifest.json)" in single.output

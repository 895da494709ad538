"""`iclselect methods`, `run --method` for every method, and `compare`, end to end on real rows."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from conftest import CHEAP, cli, shortest, write_json

from iclselect.lm import Engine
from iclselect.methods.registry import METHODS


@pytest.fixture(scope="module")
def six(tmp_path_factory, demo_rows):
    """Six short real rows, and one store shared by every run so a request is computed once."""
    tmp = tmp_path_factory.mktemp("six")
    return write_json(tmp / "pool.json", shortest(demo_rows, 6)), tmp / "store.sqlite"


def test_methods_lists_every_method_with_cost_and_options():
    result = cli("methods")
    assert result.exit_code == 0, result.output
    for name in METHODS:
        assert f"\n{name} " in "\n" + result.output
    assert "requests per sample: 2 + n_probes" in result.output
    one = cli("methods", "nuggets")
    assert "anchors = 100" in one.output and "wici" not in one.output
    assert "under --template reference: anchor_space=model" in one.output
    assert cli("methods", "nope").exit_code == 2


@pytest.mark.parametrize("method", [m for m in METHODS if m != "wici"])
def test_run_with_each_method(tmp_path, six, short_assessment, method):
    data, store = six
    out = tmp_path / method
    args = ["run", str(data), "-m", method, "-o", str(out), "--count", "2", "--store", str(store)]
    if method == "icon":
        args += ["-s", f"assessment={short_assessment}"]
    result = cli(*args, *CHEAP.get(method, []), "--quiet")
    assert result.exit_code == 0, result.output
    assert f"best kept (rank, row, {method} score, instruction)" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"]["name"] == method and manifest["kept"] == 2
    table = pq.read_table(out / "scores.parquet").to_pylist()
    assert [r["row"] for r in table] == list(range(6))
    assert sum(r["selected"] for r in table) == 2
    assert len(json.loads((out / "subset.json").read_text())) == 2


def test_default_budget_is_the_method_papers_headline(tmp_path, six):
    data, store = six
    out = tmp_path / "miwv"
    result = cli("run", str(data), "-m", "miwv", "-o", str(out), "--store", str(store), "-q")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["fraction"] == 0.01  # MIWV's top 1%
    assert manifest["kept"] == 1  # at least one row, whatever the fraction


def test_compare_shares_one_store_and_writes_the_table(tmp_path, six, monkeypatch):
    data, _ = six
    out = tmp_path / "compare"
    sent: list[str] = []
    ask = Engine.loglikelihood

    def spy(self, requests, desc="scoring"):
        sent.extend(r.key() for r in requests)
        return ask(self, requests, desc)

    monkeypatch.setattr(Engine, "loglikelihood", spy)
    result = cli(
        "compare",
        str(data),
        "--methods",
        "ifd,miwv,perplexity,length",
        "-o",
        str(out),
        "--count",
        "3",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    for name in ("ifd", "miwv", "perplexity", "length"):
        assert (out / name / "scores.parquet").exists() and (out / name / "subset.json").exists()
    table = (out / "compare.md").read_text()
    assert "Spearman rank correlation" in table and "Overlap of kept subsets" in table
    assert table in result.output
    budgets = {
        json.loads((out / name / "manifest.json").read_text())["config"]["count"]
        for name in ("ifd", "miwv", "perplexity", "length")
    }
    assert budgets == {3}  # every method at the same budget
    engine = {
        name: json.loads((out / name / "manifest.json").read_text())["engine"]
        for name in ("ifd", "miwv", "perplexity")
    }
    # L(y|x) of the six rows: computed for IFD, then answered from the store for MIWV and
    # perplexity, which ask exactly the same requests.
    assert engine["ifd"]["computed"] == 12
    assert engine["miwv"]["stored"] == 6 and engine["miwv"]["computed"] == 6
    assert engine["perplexity"]["stored"] == 6 and engine["perplexity"]["computed"] == 0
    # Each distinct request went to the engine once: IFD's 12, then MIWV's 6 with a demo.
    assert len(sent) == len(set(sent)) == 18
    rows = list(csv.DictReader((out / "compare.csv").read_text().splitlines()))
    assert [r["method"] for r in rows] == ["ifd", "miwv", "perplexity", "length"]
    assert rows[0]["computed"] == "12" and rows[1]["from_store"] == "6"
    assert rows[0]["spearman_ifd"] == "1.0000" and rows[3]["overlap_length"] == "1.0000"
    assert {r["kept"] for r in rows} == {"3"}
    report = (out / "report.html").read_text()
    assert report.count('src="data:image/png;base64,') == 2  # Spearman and overlap heatmaps
    assert "<pre>" not in report and "<th>mean response chars kept</th>" in report
    for name in ("ifd", "miwv", "perplexity", "length"):
        assert f'href="{name}/report.html"' in report and (out / name / "report.html").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "-m", "nope"], "unknown method 'nope'"),
        (["run", "-m", "nuggets", "-s", "anchor=3"], "nuggets has no option 'anchor'"),
        (["run", "-m", "nuggets", "-s", "anchors=many"], "nuggets.anchors must be an integer"),
        (["run", "-s", "n_probes"], "expected KEY=VALUE"),
        (["compare", "--methods", "ifd,random", "-s", "seed=1"], "name the method"),
        (["compare", "--methods", "ifd,random", "-s", "wici.n_probes=1"], "not among --methods"),
        (["compare", "--methods", "ifd"], "two or more"),
    ],
)
def test_method_errors_are_one_line(tmp_path, six, args, message):
    data, _ = six
    command, *rest = args
    result = cli(command, str(data), "-o", str(tmp_path / "out"), *rest, "--quiet")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()


def test_dry_run_costs_any_method(tmp_path, six):
    data, _ = six
    out = tmp_path / "out"
    nuggets = cli("run", str(data), "-m", "nuggets", "-s", "anchors=2", "-o", str(out), "--dry-run")
    assert nuggets.exit_code == 0, nuggets.output
    assert "requests: 12 (12 distinct" in nuggets.output  # 2 zero-shot + 6 x 2 anchors - 2 self
    assert "\n  requests per sample: anchors (100 by default)\n" in nuggets.output
    length = cli("run", str(data), "-m", "length", "-o", str(out), "--dry-run", "-q")
    assert length.exit_code == 0 and "no model requests" in length.output
    assert not (out / "scores.parquet").exists()

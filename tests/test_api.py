"""The Python API: same scores and subset as the CLI, every in-memory input type, and outputs
that open in pandas and datasets."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import DEMO_DATA, write_json
from typer.testing import CliRunner

import iclselect
from iclselect.cli.main import app
from iclselect.io import InputError


def test_api_and_cli_give_identical_scores_and_subset(tmp_path):
    """Separate stores, so both compute every answer: IFD on the real 60-row slice."""
    scores = iclselect.score(DEMO_DATA, method="ifd", store=tmp_path / "api.sqlite", quiet=True)
    subset = iclselect.select(scores)
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app, ["run", str(DEMO_DATA), "-m", "ifd", "-o", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    cli = pq.read_table(out / "scores.parquet").to_pandas()
    api = scores.to_pandas()
    assert len(api) == len(cli) == 60
    # Same engine, same batches, same fp32 arithmetic: equal to the last bit, NaN where excluded.
    np.testing.assert_array_equal(api.score.to_numpy(float), cli.score.to_numpy(float))
    unranked = ("prefiltered", "not_scored")
    assert api.reason.fillna("").tolist() == [r if r in unranked else "" for r in cli.reason]
    kept = cli[cli.selected].sort_values("rank").row.tolist()
    assert subset.rows == kept
    written = subset.write(tmp_path / "api_out")
    assert written.subset.read_bytes() == (out / "subset.json").read_bytes()


@pytest.fixture(scope="module")
def rows(demo_rows):
    return demo_rows[:20]


@pytest.mark.parametrize("kind", ["list", "pandas", "datasets"])
def test_in_memory_inputs_score_like_the_file(tmp_path, rows, kind):
    data = {
        "list": rows,
        "pandas": pd.DataFrame(rows),
        "datasets": datasets.Dataset.from_list(rows),
    }[kind]
    from_file = iclselect.score(write_json(tmp_path / "rows.json", rows), method="length")
    from_memory = iclselect.score(data, method="length", quiet=True)
    assert from_memory.to_pandas().score.tolist() == from_file.to_pandas().score.tolist()
    subset = iclselect.select(from_memory, count=4)
    kept = subset.to_pandas()
    expected = [rows[r] for r in sorted(subset.rows)]
    assert kept[["instruction", "input", "output"]].to_dict("records") == expected
    assert kept.iclselect_selected.all() and sorted(kept.iclselect_rank) == [1, 2, 3, 4]
    result = subset.write(tmp_path / kind)
    assert result.subset.name == {"list": "subset.jsonl", "pandas": "subset.parquet"}.get(
        kind, "subset"
    )


def test_in_memory_errors_name_the_object_row_and_field(rows):
    bad = [*rows[:3], {"instruction": "x", "output": 7}]
    with pytest.raises(InputError, match=r"^<list>: row 3: field 'output': expected a string"):
        iclselect.score(bad, method="length")
    with pytest.raises(InputError, match=r"^<pandas.DataFrame>: row 1: field 'output': empty"):
        frame = pd.DataFrame([rows[0], {**rows[1], "output": " "}])
        iclselect.score(frame, method="length")
    with pytest.raises(TypeError, match="cannot read a int"):
        iclselect.score(42, method="length")


def test_scores_open_in_pandas_and_datasets(rows):
    scores = iclselect.score(rows, method="length", quiet=True)
    frame = scores.to_pandas()
    assert frame.columns.tolist() == [
        "row",
        "id",
        "score",
        "reason",
        "detail",
        "duplicate_of",
        "response_chars",
    ]
    assert frame.score.tolist() == [float(len(r["output"])) for r in rows]
    table = scores.to_dataset()
    assert isinstance(table, datasets.Dataset) and table["score"] == frame.score.tolist()
    subset = iclselect.select(scores, fraction=0.25)
    assert len(subset) == 5
    kept = subset.to_dataset()
    assert kept.column_names[:3] == ["instruction", "input", "output"]
    assert "iclselect_score" in kept.column_names


def test_api_options_are_method_options(rows):
    with pytest.raises(ValueError, match="random has no option 'anchors'"):
        iclselect.score(rows, method="random", anchors=3)
    one = iclselect.score(rows, method="random", seed=1, quiet=True).to_pandas().score
    two = iclselect.score(rows, method="random", seed=2, quiet=True).to_pandas().score
    assert not one.equals(two)


def test_manifest_of_an_api_run_records_the_budget_used(tmp_path, rows):
    subset = iclselect.select(iclselect.score(rows, method="length", quiet=True), count=3)
    manifest = json.loads(subset.write(tmp_path / "out").manifest.read_text())
    assert manifest["config"]["count"] == 3 and manifest["config"]["fraction"] is None
    assert manifest["input"]["path"] == "<list>" and manifest["kept"] == 3


def test_subset_keeps_the_callers_dataframe_index(rows):
    frame = pd.DataFrame(rows, index=[f"sample-{i}" for i in range(len(rows))])
    subset = iclselect.select(iclselect.score(frame, method="length", quiet=True), count=3)
    kept = subset.to_pandas()
    assert kept.index.tolist() == [f"sample-{r}" for r in sorted(subset.rows)]
    assert kept.output.tolist() == frame.output.iloc[sorted(subset.rows)].tolist()


def test_scores_and_subset_print_a_summary_not_their_arrays(rows):
    scores = iclselect.score(rows, method="length", quiet=True)
    subset = iclselect.select(scores, count=3)
    assert repr(scores) == "<Scores length: 20 rows of <list>, 20 scored>"
    assert repr(subset) == "<Subset length: kept 3 of 20 rows (20 ranked)>"

"""`iclselect run --config`: YAML settings, command-line overrides, and repeating a run from
its manifest.json."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import cli, shortest, write_json
from typer.main import get_command

from iclselect.cli import app
from iclselect.config import ACTION_KEYS, KEYS


@pytest.fixture(scope="module")
def pool(tmp_path_factory, demo_rows):
    tmp = tmp_path_factory.mktemp("config")
    return write_json(tmp / "pool.json", shortest(demo_rows, 8)), tmp / "store.sqlite"


def test_every_run_option_has_a_config_key():
    command = get_command(app).commands["run"]  # type: ignore[attr-defined]
    options = {p.name for p in command.params} - {"ctx", "config"}
    keys = {"options" if name == "set_" else name for name in options}
    assert keys - set(KEYS) - set(ACTION_KEYS) == set()
    assert set(KEYS) - keys == set(), "a RunConfig field the command cannot set"


def test_run_repeated_from_its_manifest_gives_identical_outputs(tmp_path, pool):
    """Non-default template, method options, budget and tau must all carry over: with the
    store shared, a lost setting would change the requests (and recompute) or the subset."""
    data, store = pool
    first, again = tmp_path / "first", tmp_path / "again"
    args = ["-m", "nuggets", "-s", "anchors=3", "-s", "seed=7", "--template", "alpaca"]
    args += ["--count", "3", "--tau", "0.95", "--store", str(store), "--quiet"]
    assert cli("run", str(data), "-o", str(first), *args).exit_code == 0
    result = cli("run", "--config", str(first / "manifest.json"), "-o", str(again))
    assert result.exit_code == 0, result.output
    assert (again / "subset.json").read_bytes() == (first / "subset.json").read_bytes()
    assert pq.read_table(again / "scores.parquet").equals(pq.read_table(first / "scores.parquet"))
    one, two = (json.loads((d / "manifest.json").read_text()) for d in (first, again))
    assert two["engine"]["computed"] == 0 and two["engine"]["requests"] > 0
    assert two["method"] == one["method"] and two["template"] == one["template"]
    assert {**two["config"], "out": None} == {**one["config"], "out": None}


def test_yaml_config_with_command_line_overrides(tmp_path, pool):
    data, store = pool
    config = tmp_path / "run.yaml"
    config.write_text(
        f"data: {data}\nmethod: random\noptions:\n  seed: 3\ncount: 2\nquiet: true\n"
        f"store: {store}\n",
        encoding="utf-8",
    )
    result = cli("run", "-c", str(config), "-o", str(tmp_path / "a"), "--count", "5")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["kept"] == 5  # the command line wins
    assert manifest["method"] == {"name": "random", "params": {"seed": 3}}
    result = cli("run", "-c", str(config), "-o", str(tmp_path / "b"), "-s", "seed=4")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["kept"] == 2 and manifest["method"]["params"] == {"seed": 4}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("method: random\nbogus: 1\n", "run.yaml: unknown key 'bogus'; keys: data, out"),
        ("- a\n- b\n", "run.yaml: a config file holds a mapping of settings"),
        ("method: [unclosed\n", "run.yaml: not valid YAML"),
        ("options: 3\n", "run.yaml: key 'options': expected a mapping"),
        ("method: random\n", "give DATA, or a --config file with a 'data' key"),
    ],
)
def test_bad_config_is_one_line_error(tmp_path, text, message):
    config = tmp_path / "run.yaml"
    config.write_text(text, encoding="utf-8")
    result = cli("run", "-c", str(config))
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and message in line, line

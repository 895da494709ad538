"""`iclselect run --config`: YAML settings, command-line overrides, and repeating a run from
its manifest.json."""

from __future__ import annotations

import json
import typing

import pyarrow.parquet as pq
import pytest
from conftest import cli, shortest, write_json
from typer.main import get_command

from iclselect.cli.main import app
from iclselect.run.config import DEFAULT_FRACTION, FIELDS, RunConfig, help_text
from iclselect.run.config_files import ACTION_KEYS, KEYS


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
    assert manifest["method"] == {"name": "random", "params": {"seed": 3}, "higher_first": True}
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
        ("data: x.json\nmax_length: long\n", "max_length must be an integer; got 'long'"),
        ("data: x.json\nquiet: maybe\n", "quiet must be true or false; got 'maybe'"),
    ],
)
def test_bad_config_is_one_line_error(tmp_path, text, message):
    config = tmp_path / "run.yaml"
    config.write_text(text, encoding="utf-8")
    result = cli("run", "-c", str(config))
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and message in line, line


def _non_default(name: str):
    """A value of field `name` that is not its default, and how the command line spells it."""
    spec = FIELDS[name]
    special = {
        "data": ("pool.json", "pool.json"),
        "out": ("runs/x", "runs/x"),
        "method": ("random", "random"),
        "options": ({"seed": "3"}, "seed=3"),
        "fields": ({"output": "answer"}, "output=answer"),
        "store": ("s.sqlite", "s.sqlite"),
    }
    if name in special:
        return special[name]
    if spec.metadata["choices"]:
        value = next(c for c in spec.metadata["choices"] if c != spec.default)
        return value, value
    kind = typing.get_type_hints(RunConfig)[name]
    if kind is bool:
        return not spec.default, None
    if int in typing.get_args(kind) or kind is int:
        return 7, "7"
    if float in typing.get_args(kind) or kind is float:
        return 0.5, "0.5"
    return "x", "x"


def test_every_setting_is_a_run_option_a_config_key_and_an_api_keyword():
    """RunConfig's fields are the one list: each is set by its own option of `iclselect run`,
    is a config-file key, and is a keyword of iclselect.score."""
    from iclselect.api import config_for
    from iclselect.cli.options import given_settings, run_settings

    assert set(KEYS) == set(FIELDS)
    command = get_command(app).commands["run"]  # type: ignore[attr-defined]
    by_name = {p.name: p for p in command.params}
    budgets = ("fraction", "count", "threshold")  # one at a time: two are refused
    for budget in budgets:
        args: list[str] = []
        expected = {}
        for name in FIELDS:
            assert name in by_name, f"RunConfig.{name} is no option of iclselect run"
            if name in budgets and name != budget:
                expected[name] = None
                continue
            value, text = _non_default(name)
            expected[name] = value
            param = by_name[name]
            if name == "data":
                args.append(text)
            elif text is None:  # a switch: --name, or --no-name to turn a default on off
                args.append(param.opts[0] if value else param.secondary_opts[0])
            else:
                args += [param.opts[0], text]
        ctx = command.make_context("run", args)
        from_cli = run_settings(given_settings(ctx))
        assert {name: getattr(from_cli, name) for name in FIELDS} == expected
        from_api = config_for("score", expected)
        assert {name: getattr(from_api, name) for name in FIELDS} == expected


def test_api_unknown_keyword_names_the_nearest_field():
    from iclselect.api import config_for

    with pytest.raises(ValueError, match=r"unknown keyword 'modle' \(did you mean 'model'\?\)"):
        config_for("score", {"data": "pool.json", "method": "random", "modle": "x"})
    config = config_for("score", {"data": "pool.json", "method": "random", "seed": 3})
    assert config.options == {"seed": 3}  # a method option, as --set gives it


def test_budget_and_method_help_come_from_the_registry():
    from iclselect.methods.registry import METHODS

    result = cli("run", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())
    for method in METHODS.values():
        assert f"{method.name}: {method.summary.split()[0]}" in text  # the methods epilog
        assert f"default --fraction {method.fraction:g}" in text
        if method.fraction != DEFAULT_FRACTION:
            assert f"{method.name} {method.fraction:g}" in help_text("fraction")
        if method.tau is not None:
            assert f"{method.tau:g} for {method.name}" in help_text("tau")


def test_defaults_named_twice_agree():
    """RunConfig spells the default model and embedder out, so --help need not load torch."""
    from iclselect.embed import DEFAULT_EMBEDDER
    from iclselect.lm import DEFAULT_MODEL

    assert FIELDS["model"].default == DEFAULT_MODEL
    assert FIELDS["embedder"].default == DEFAULT_EMBEDDER


def test_compare_reads_the_same_config_files(tmp_path, pool):
    data, _ = pool
    config = tmp_path / "cmp.yaml"
    config.write_text(f"data: {data}\ncount: 2\nquiet: true\n", encoding="utf-8")
    args = ["compare", "-c", str(config), "--methods", "length,random", "--dry-run"]
    result = cli(*args, "-o", str(tmp_path / "cmp"))
    assert result.exit_code == 0, result.output
    assert "dry run: 8 samples, method length: no model requests" in result.output


def test_no_method_option_is_named_as_a_setting():
    """score(**keywords) sends a RunConfig field to the run and anything else to the method:
    an option named as a field could never be set that way."""
    from iclselect.methods.registry import METHODS

    for method in METHODS.values():
        clash = {name for name, _, _ in method.options()} & set(FIELDS)
        assert not clash, f"{method.name}'s options {sorted(clash)} are named as RunConfig fields"

"""bench quality on a fresh install: the eval sets and the default pool ship in the package
(package-data covers them), and `iclselect bench quality --preset cpu-small --pool FILE` runs
end to end from a directory with no ../shared beside it, on a tiny pool and a tiny model."""

from __future__ import annotations

import fnmatch
import json
import time
from importlib import resources
from pathlib import Path

import pytest
from conftest import cli, shortest, write_json

ROOT = Path(__file__).resolve().parents[1]


def test_package_data_ships_every_asset():
    """setuptools' package-data globs do not recurse: each asset folder needs its own."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["iclselect"]
    package = ROOT / "src" / "iclselect"
    assets = [
        p.relative_to(package).as_posix() for p in (package / "assets").rglob("*") if p.is_file()
    ]
    missed = [a for a in assets if not any(fnmatch.fnmatchcase(a, g) for g in globs)]
    assert not missed, f"not in pyproject package-data: {missed}"
    for name in (
        "eval/gsm8k_train_first500.jsonl.gz",
        "eval/mmlu_dev_5shot.jsonl.gz",
        "eval/self_instruct_seed_tasks.jsonl.gz",
        "pool/alpaca_pool_2600.json.gz",
        "SOURCES.md",
    ):
        assert resources.files("iclselect").joinpath("assets", name).is_file(), name
        if name != "SOURCES.md":
            assert name in (package / "assets" / "SOURCES.md").read_text()


@pytest.fixture(scope="module")
def tiny_model(lm, tmp_path_factory) -> Path:
    """A 2-layer, 64-wide Llama with random weights and the default model's tokenizer, saved
    as a model directory: trains and evaluates in a blink."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = json.loads(
        resources.files("iclselect").joinpath("assets/configs/tiny.json").read_text()
    )
    tokenizer = lm.tokenizer
    config.update(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    directory = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_bench_quality_runs_on_a_fresh_install_without_shared_data(
    tiny_model, demo_rows, tmp_path, monkeypatch
):
    work = tmp_path / "elsewhere" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)  # no ../shared/data from here
    assert not (work.parent / "shared").exists()
    pool = write_json(work / "mine.json", shortest(demo_rows, 30))
    started = time.perf_counter()
    result = cli(
        "bench",
        "quality",
        "--preset",
        "cpu-small",
        "--pool",
        str(pool),
        "--model",
        str(tiny_model),
        "--methods",
        "ifd,longest",
        "--budgets",
        "0.25",
        "--seeds",
        "2",
        "--matched-seeds",
        "1",
        "--eval-rows",
        "6",
        "--precision",
        "fp32",
        "--out",
        "out",
        "--no-write",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    seconds = time.perf_counter() - started
    saved = json.loads((work / "out" / "quality.json").read_text())
    # The pool's last fifth is held out, and the preset's eval sets come from the package.
    assert (saved["pool"]["rows"], saved["pool"]["heldout"]) == (24, 6)
    names = [s["name"] for s in saved["eval_sets"]]
    assert names == [
        "mine-heldout",
        "gsm8k_train_first500",
        "mmlu_dev_5shot",
        "self_instruct_seed_tasks",
    ]
    package = Path(str(resources.files("iclselect")))
    for eval_set in saved["eval_sets"][1:]:
        assert Path(eval_set["path"]).is_relative_to(package / "assets" / "eval")
    assert "shared" not in json.dumps(saved["eval_sets"])
    arms = [a["arm"] for a in saved["arms"]]
    assert arms == [
        "untuned",
        "ifd@25%",
        "longest@25%",
        "random-s0@25%",
        "random-s1@25%",
        "ifd-matched-s0@25%",
        "full",
    ]
    assert saved["recommendation"]["text"] in result.output
    assert {"quality.md", "quality.csv", "quality.png", "quality.json"} <= {
        p.name for p in (work / "out").iterdir()
    }
    assert seconds < 120, f"took {seconds:.0f} s"

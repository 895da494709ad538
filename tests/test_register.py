"""Adding a method is one new module in iclselect/methods and nothing else: a throwaway method,
written as such a module, is found, listed, helped, compared and scored like a shipped one."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import DEMO_DATA, cli

import iclselect
import iclselect.methods
from iclselect.methods.method import Method, register
from iclselect.methods.registry import METHODS, discover, get
from iclselect.methods.scores import MethodScores

NAME = "throwaway_words"

# What a contributor writes: the whole of a new method.
MODULE = '''
"""A throwaway method: the number of words in the response."""

from dataclasses import asdict, dataclass

import numpy as np

from iclselect.methods.method import register
from iclselect.methods.options import option
from iclselect.methods.pool import Pool
from iclselect.methods.scores import MethodScores


@dataclass(frozen=True)
class WordsConfig:
    per: int = option(1, "divide the word count by this")


@register(
    name="throwaway_words",
    summary="words in the response (a test's throwaway method)",
    cost="0 (no model)",
    high_score="means a wordy response.",
    config=WordsConfig,
    uses_model=False,
    embeddings=False,
)
def words(pool: Pool, config: WordsConfig) -> MethodScores:
    counts = np.array([len(s.response.split()) / config.per for s in pool.samples])
    return MethodScores(method="throwaway_words", score=counts, params=asdict(config))
'''


@contextmanager
def new_module(folder: Path) -> Iterator[Method]:
    """MODULE as a file in a directory that the methods package searches as it does methods/
    itself; unregistered and forgotten afterwards."""
    folder.mkdir()
    (folder / f"{NAME}.py").write_text(MODULE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(iclselect.methods, "__path__", [*iclselect.methods.__path__, str(folder)])
        try:
            discover()
            yield get(NAME)
        finally:
            METHODS.pop(NAME, None)
            sys.modules.pop(f"iclselect.methods.{NAME}", None)


@pytest.fixture
def words(tmp_path) -> Iterator[Method]:
    with new_module(tmp_path / "methods") as method:
        yield method


@pytest.fixture(scope="module")
def word_counts() -> list[int]:
    rows = json.loads(DEMO_DATA.read_text(encoding="utf-8"))
    return [len(r["output"].split()) for r in rows]


def test_a_new_module_is_listed_after_the_ranked_methods(words):
    assert not words.uses_model and words.rank is None
    assert list(METHODS)[-1] == NAME
    listing = cli("methods")
    assert listing.exit_code == 0, listing.output
    assert f"\n{NAME:<11} words in the response" in listing.output
    assert "per = 1  divide the word count by this" in cli("methods", NAME).output
    for command in ("run", "compare"):
        shown = cli(command, "--help")
        assert shown.exit_code == 0, shown.output
        assert f"{NAME}: words in the response" in shown.output  # the methods epilog
    method_help = " ".join(cli("run", "--help").output.replace("│", " ").split())
    assert f"Scoring method: {', '.join(METHODS)} (" in method_help and f", {NAME} (" in method_help


def test_compare_runs_it_beside_a_shipped_method(words, word_counts, tmp_path):
    out = tmp_path / "compare"
    result = cli(
        "compare",
        str(DEMO_DATA),
        "--methods",
        f"{NAME},length",
        "-o",
        str(out),
        "--count",
        "5",
        "--no-report",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "compare.csv").read_text().splitlines()))
    assert [r["method"] for r in rows] == [NAME, "length"]
    table = pq.read_table(out / NAME / "scores.parquet").to_pylist()
    assert [r["score"] for r in table] == word_counts
    assert sum(r["selected"] for r in table) == 5


def test_the_api_scores_and_selects_with_it(words, word_counts, tmp_path):
    scores = iclselect.score(DEMO_DATA, method=NAME, per=2, store=tmp_path / "store.sqlite")
    assert scores.to_pandas()["score"].tolist() == [n / 2 for n in word_counts]
    kept = iclselect.select(scores, count=3).to_pandas()
    assert (
        sorted(kept["iclselect_score"], reverse=True)
        == sorted([n / 2 for n in word_counts], reverse=True)[:3]
    )


def test_the_new_module_leaves_no_trace(tmp_path):
    shipped, path = list(METHODS), list(iclselect.methods.__path__)
    with new_module(tmp_path / "methods"):
        assert list(METHODS) == [*shipped, NAME]
    assert list(METHODS) == shipped and iclselect.methods.__path__ == path
    assert f"iclselect.methods.{NAME}" not in sys.modules


@dataclass(frozen=True)
class NoOptions:
    pass


def scores_nothing(pool, config) -> MethodScores:
    raise AssertionError("never called")


def asks_nothing(pool, config):
    yield from ()


BASE = {
    "summary": "s",
    "cost": "0",
    "high_score": "means nothing.",
    "config": NoOptions,
}


def test_register_takes_keywords_and_refuses_a_false_capability():
    with pytest.raises(TypeError):
        register("unregistered", "s", "0", "means nothing.", NoOptions)
    with pytest.raises(ValueError, match="uses_model=True, but scores_nothing is not a generator"):
        register(name="unregistered", uses_model=True, **BASE)(scores_nothing)
    with pytest.raises(ValueError, match="uses_model=False, but asks_nothing is a generator"):
        register(name="unregistered", uses_model=False, **BASE)(asks_nothing)
    with pytest.raises(ValueError, match="'wici' is registered twice"):
        register(name="wici", uses_model=False, **BASE)(scores_nothing)
    assert "unregistered" not in METHODS and get("wici").uses_model


def test_listings_go_by_rank_then_name():
    added = ("zz_second", "aa_unranked", "zz_unranked")
    try:
        register(name="zz_second", uses_model=False, rank=15, **BASE)(scores_nothing)
        register(name="zz_unranked", uses_model=False, **BASE)(scores_nothing)
        register(name="aa_unranked", uses_model=False, **BASE)(scores_nothing)
        names = list(METHODS)
        assert names[:3] == ["wici", "zz_second", "miwv"]
        assert names[-2:] == ["aa_unranked", "zz_unranked"]
    finally:
        for name in added:
            METHODS.pop(name, None)

"""Selectors: budgets, ranks, typed reasons, exact and near duplicates, near ties, and every
path a selection takes (fraction, count, threshold, compare, the Python API). No model: the
selection paths run `length` and `random`, which score without one."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import cli, shortest, write_json

import iclselect
from iclselect.selectors import REASONS, Budget, Decision, Excluded, select


def test_budget_needs_exactly_one_limit():
    with pytest.raises(ValueError, match="exactly one"):
        Budget()
    with pytest.raises(ValueError, match="exactly one"):
        Budget(fraction=0.1, count=3)
    with pytest.raises(ValueError, match="fraction"):
        Budget(fraction=1.5)
    assert Budget(fraction=0.1).size(95) == 10
    assert Budget(fraction=0.001).size(95) == 1
    assert Budget(count=500).size(95) == 95


def test_ranks_reasons_and_exclusions():
    score = np.array([0.3, math.nan, 0.9, 0.5, 0.1])
    picked = select(score, Budget(count=2), excluded={4: Excluded("prefiltered", "IFD > 1")})
    assert picked.selected == [2, 3]
    assert picked.rank == [3, None, 1, 2, None]
    assert picked.reason == ["below_budget", "not_scored", "selected", "selected", "prefiltered"]
    assert picked.detail == [None, None, None, None, "IFD > 1"]
    assert set(picked.reason) <= set(REASONS)
    by_threshold = select(score, Budget(threshold=0.4), excluded={})
    assert by_threshold.selected == [2, 3]
    assert by_threshold.reason[0] == "below_threshold"
    assert by_threshold.detail[0] == "threshold 0.4"


@pytest.mark.parametrize(
    "budget", [Budget(fraction=0.4), Budget(count=2), Budget(threshold=0.75)], ids=repr
)
def test_exact_duplicates_take_no_budget(budget):
    """Rows 5-9 repeat rows 0-4. Only first copies are ranked; a later copy is `duplicate`,
    names its first copy, and never takes a place in the budget."""
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.1] * 2)
    ids = ["a", "b", "c", "d", "e"] * 2
    picked = select(score, budget, {}, ids=ids)
    assert picked.selected == [0, 1]
    assert picked.reason[5:] == ["duplicate"] * 5
    assert picked.duplicate_of == [None] * 5 + [0, 1, 2, 3, 4]
    assert picked.rank[5:] == [None] * 5 and picked.rank[:5] == [1, 2, 3, 4, 5]


def test_each_sample_gets_one_typed_decision():
    vectors = np.eye(6, dtype=np.float32)
    vectors[4] = vectors[0]  # row 4 is a near-copy of row 0
    score = np.array([5.0, 4.0, 3.0, 2.0, 4.5, 1.0])
    ids = ["a", "b", "c", "d", "e", "b"]  # row 5 is an exact copy of row 1
    picked = select(
        score,
        Budget(count=2),
        {3: Excluded("prefiltered", "IFD > 1")},
        vectors=vectors,
        tau=0.9,
        ids=ids,
    )
    assert picked.decisions == [
        Decision("selected", 1),
        Decision("selected", 3),
        Decision("below_budget", 4),
        Decision("prefiltered", detail="IFD > 1"),
        Decision("near_duplicate", 2, related=0, similarity=1.0, detail="tau 0.9"),
        Decision("duplicate", related=1),
    ]
    assert picked.duplicate_of == [None] * 5 + [1]
    assert picked.near_duplicate_of == [None] * 4 + [0, None]


def test_near_ties_at_the_cut_are_reported():
    score = np.array([3.0, 2.0, 2.0 + 1e-9, 2.0, 1.0])
    picked = select(score, Budget(count=2), {})
    assert picked.selected == [0, 2]
    assert picked.near_ties == [1, 3]  # tied with the last kept score; input order decided
    assert select(np.array([3.0, 2.0, 1.0]), Budget(count=2), {}).near_ties == []


def test_near_duplicate_pair_is_never_both_selected(embedder, demo_rows):
    texts = [f"{r['instruction']}\n{r['output']}" for r in demo_rows[:20]]
    twin = texts[5].replace(".", "!", 1) + " "
    vectors = embedder.encode([*texts, twin])
    assert float(vectors[5] @ vectors[20]) >= 0.9, "the pair must be near-duplicates"
    # Give the pair the two best scores: the greedy pass meets both first.
    score = np.linspace(0, 1, 21)[::-1].copy()
    score[20], score[5] = 2.0, 1.5
    picked = select(score, Budget(count=21), {}, vectors=vectors, tau=0.9)
    assert 20 in picked.selected and 5 not in picked.selected
    assert picked.reason[5] == "near_duplicate" and picked.near_duplicate_of[5] == 20
    assert picked.similarity[5] == pytest.approx(float(vectors[5] @ vectors[20]), abs=1e-6)
    # Every other sample was accepted: it is the pair that was suppressed, not the budget.
    unrelated_pairs = vectors[:20] @ vectors[:20].T - np.eye(20)
    if unrelated_pairs.max() < 0.9:
        assert len(picked.selected) == 20


def plain_greedy(score, limit, vectors, tau):
    """The near-duplicate walk one candidate at a time against every accepted row: the
    definition the blocked selector must match."""
    accepted, reasons, related = [], {}, {}
    for i in sorted(range(len(score)), key=lambda i: (-score[i], i)):
        if len(accepted) >= limit:
            reasons[i] = "below_budget"
            continue
        if accepted:
            similarity = np.array([float(vectors[a] @ vectors[i]) for a in accepted])
            if similarity.max() >= tau:
                reasons[i], related[i] = "near_duplicate", accepted[int(similarity.argmax())]
                continue
        accepted.append(i)
        reasons[i] = "selected"
    return accepted, reasons, related


@pytest.mark.parametrize("budget", [Budget(count=150), Budget(fraction=0.5), Budget(fraction=1.0)])
def test_blocked_near_duplicate_walk_matches_the_plain_one(pool200, monkeypatch, budget):
    import iclselect.selectors as selectors

    # 200 real rows and a turned copy of each (cosine ~0.99): every copy is a near-duplicate
    # of its original, and some originals of one another at tau 0.8.
    vectors = pool200.instructions()
    turned = vectors + 0.01 * np.random.default_rng(1).normal(size=vectors.shape)
    vectors = np.vstack([vectors, turned / np.linalg.norm(turned, axis=1, keepdims=True)])
    vectors = vectors.astype(np.float32)
    score = np.random.default_rng(2).normal(size=len(vectors))
    monkeypatch.setattr(selectors, "_BLOCK", 16)  # many block edges, one inside every run
    picked = select(score, budget, {}, vectors=vectors, tau=0.8)
    accepted, reasons, related = plain_greedy(score, budget.size(len(score)), vectors, 0.8)
    assert picked.selected == accepted
    assert {i: picked.reason[i] for i in reasons} == reasons
    assert {i: picked.near_duplicate_of[i] for i in related} == related
    for i, j in related.items():
        assert picked.similarity[i] == pytest.approx(float(vectors[i] @ vectors[j]), abs=1e-5)
    assert related and len(accepted) < len(score)  # the walk did suppress rows


# Every selection path, on ten unique real rows each given twice.


@pytest.fixture(scope="module")
def twice(tmp_path_factory, demo_rows):
    rows = shortest(demo_rows, 10)
    return write_json(tmp_path_factory.mktemp("twice") / "pool.json", rows * 2), rows


@pytest.mark.parametrize(
    "budget", [["--fraction", "0.1"], ["--count", "4"], ["--threshold", "1"]], ids=str
)
def test_run_never_keeps_two_copies(tmp_path, twice, budget):
    data, _ = twice
    out = tmp_path / "out"
    result = cli("run", str(data), "-m", "length", "-o", str(out), "-q", "--no-report", *budget)
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "scores.parquet")
    kept = table[table.selected]
    assert kept.id.is_unique and (kept.row < 10).all()
    assert (table.reason[10:] == "duplicate").all() and table.duplicate_of[10:].tolist() == list(
        range(10)
    )
    assert table["rank"][10:].isna().all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["exact_duplicates"]["rows"] == 10
    assert manifest["dropped_by_reason"]["duplicate"] == 10
    if budget[0] == "--fraction":
        assert manifest["kept"] == 1  # a tenth of the ten distinct rows


def test_compare_never_keeps_two_copies(tmp_path, twice):
    data, _ = twice
    out = tmp_path / "cmp"
    result = cli(
        "compare", str(data), "--methods", "length,random", "--count", "5", "-o", str(out), "-q"
    )
    assert result.exit_code == 0, result.output
    for method in ("length", "random"):
        table = pd.read_parquet(out / method / "scores.parquet")
        assert table[table.selected].id.is_unique and table.selected.sum() == 5
        assert (table.reason[10:] == "duplicate").all()


def test_api_never_keeps_two_copies(twice):
    _, rows = twice
    scores = iclselect.score(rows * 2, method="random", quiet=True)
    frame = scores.to_pandas()
    assert frame.reason[10:].tolist() == ["duplicate"] * 10 and frame.reason[:10].isna().all()
    subset = iclselect.select(scores, count=5)
    assert len(set(subset.rows)) == 5 and max(subset.rows) < 10


def test_decision_columns_have_one_type_in_every_run(tmp_path, twice):
    """Whether or not a column has nulls in a run, its type is the same: rank is Int64 even
    when every row has one."""
    data, rows = twice
    unique = write_json(tmp_path / "unique.json", rows)
    dtypes = []
    for path, args in ((data, ["--count", "3"]), (unique, ["--fraction", "1.0"])):
        out = tmp_path / path.stem
        assert cli("run", str(path), "-m", "length", "-o", str(out), "-q", *args).exit_code == 0
        frame = pd.read_parquet(out / "scores.parquet")
        dtypes.append(frame.dtypes.astype(str).to_dict())
    assert dtypes[0] == dtypes[1]
    assert (
        dtypes[0]["rank"] == dtypes[0]["duplicate_of"] == dtypes[0]["near_duplicate_of"] == "Int64"
    )
    assert dtypes[0]["similarity"] == "float64"


def test_api_budget_errors_and_warnings_name_the_api(twice):
    _, rows = twice
    scores = iclselect.score(rows, method="length", quiet=True)
    with pytest.raises(ValueError, match=r"^fraction= must be in \(0, 1\]"):
        iclselect.select(scores, fraction=1.5)
    with pytest.raises(ValueError, match=r"^give exactly one of fraction=, count= or threshold="):
        iclselect.select(scores, fraction=0.5, count=2)
    with pytest.warns(UserWarning, match="keeps all 10 ranked rows"):
        iclselect.select(scores, count=50)
    with pytest.warns(UserWarning, match="keeps 0 of the 10 ranked rows"):
        iclselect.select(scores, threshold=1e9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iclselect.select(scores, count=3)

"""Selectors: budgets, ranks, reasons, and the near-duplicate rule on real embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iclselect.selectors import Budget, select


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
    picked = select(score, Budget(count=2), excluded={4: "prefiltered: IFD > 1"})
    assert picked.selected == [2, 3]
    assert picked.rank == [3, None, 1, 2, None]
    assert picked.reason == [
        "below budget (rank 3)",
        "not scored",
        "selected",
        "selected",
        "prefiltered: IFD > 1",
    ]
    by_threshold = select(score, Budget(threshold=0.4), excluded={})
    assert by_threshold.selected == [2, 3]
    assert by_threshold.reason[0].startswith("score below threshold")


def test_near_duplicate_pair_is_never_both_selected(embedder, demo_rows):
    texts = [f"{r['instruction']}\n{r['output']}" for r in demo_rows[:20]]
    twin = texts[5].replace(".", "!", 1) + " "
    vectors = embedder.encode([*texts, twin])
    assert float(vectors[5] @ vectors[20]) >= 0.9, "the pair must be near-duplicates"
    # Give the pair the two best scores: the greedy pass meets both first.
    score = np.linspace(0, 1, 21)[::-1].copy()
    score[20], score[5] = 2.0, 1.5
    picked = select(score, Budget(count=21), {}, vectors, tau=0.9, rows=list(range(21)))
    assert 20 in picked.selected and 5 not in picked.selected
    assert picked.reason[5].startswith("near-duplicate of selected row 20 (cosine")
    # Every other sample was accepted: it is the pair that was suppressed, not the budget.
    unrelated_pairs = vectors[:20] @ vectors[:20].T - np.eye(20)
    if unrelated_pairs.max() < 0.9:
        assert len(picked.selected) == 20

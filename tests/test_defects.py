"""The dirty-pool track's arithmetic: planted defects on real rows, each kind's rule and label;
the AUC of clean over planted rows; the share of the full pool's gain a subset recovers."""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter
from functools import cache

import numpy as np
import pytest

from iclselect.bench.quality.data import POOL_ASSET, asset
from iclselect.bench.quality.defects import (
    CLEAN,
    KINDS,
    REFUSALS,
    REWORDINGS,
    SHUFFLE_MIN_WORDS,
    TRUNCATE_MIN_WORDS,
    plant,
)
from iclselect.bench.quality.junk import clean_auc, junk_report, planted_share
from iclselect.bench.quality.stats import recovered_share


@cache
def real_rows() -> tuple[dict, ...]:
    """The first 600 rows of the shipped Alpaca pool."""
    rows = json.loads(gzip.decompress(asset(POOL_ASSET).read_bytes()))
    return tuple(rows[:600])


@pytest.fixture(scope="module")
def planted():
    return plant([dict(r) for r in real_rows()], share=0.3, seed=0)


def test_share_and_kinds(planted):
    counts = Counter(planted.labels)
    assert sum(counts[k] for k in KINDS) == round(0.3 * 600)
    assert {counts[k] for k in KINDS} == {30}
    assert counts[CLEAN] == 420
    assert planted.mask() == [label != CLEAN for label in planted.labels]


def test_clean_rows_are_untouched(planted):
    for row, new, label in zip(real_rows(), planted.rows, planted.labels, strict=True):
        if label == CLEAN:
            assert new == row


def test_every_kind_follows_its_rule(planted):
    rows = real_rows()
    for i, label in enumerate(planted.labels):
        old, new, source = rows[i], planted.rows[i], planted.sources[i]
        if label == CLEAN:
            continue
        if label != "near_duplicate":
            assert new["instruction"] == old["instruction"]
            assert new["output"] != old["output"], (label, i)
        if label == "mismatched":
            assert source != i and new["output"] == rows[source]["output"]
        elif label == "truncated":
            words = old["output"].split()
            assert len(words) >= TRUNCATE_MIN_WORDS
            assert new["output"] == " ".join(words[: math.ceil(len(words) / 4)])
        elif label == "refusal":
            assert new["output"] in REFUSALS
        elif label == "shuffled":
            assert len(old["output"].split()) >= SHUFFLE_MIN_WORDS
            assert sorted(new["output"].split()) == sorted(old["output"].split())
        elif label == "wrong_number":
            before = re.findall(r"\d+", old["output"])
            after = re.findall(r"\d+", new["output"])
            assert len(after) == len(before) > 0
            assert all(
                a != b and abs(int(a) - int(b)) <= 9 for a, b in zip(after, before, strict=True)
            )
            assert re.sub(r"\d+", "#", new["output"]) == re.sub(r"\d+", "#", old["output"])
        elif label == "near_duplicate":
            base = rows[source]
            assert planted.labels[source] == CLEAN and planted.rows[source] == base
            assert new["output"] == base["output"] and new.get("input") == base.get("input")
            assert new["instruction"] in {t.format(base["instruction"]) for t in REWORDINGS}


def test_near_duplicates_come_in_clusters(planted):
    bases = Counter(
        s for s, k in zip(planted.sources, planted.labels, strict=True) if k == "near_duplicate"
    )
    assert len(bases) == 30 // len(REWORDINGS)
    assert set(bases.values()) == {len(REWORDINGS)}


def test_seeded():
    rows = [dict(r) for r in real_rows()[:200]]
    assert plant(rows, 0.3, seed=1) == plant(rows, 0.3, seed=1)
    assert plant(rows, 0.3, seed=1).labels != plant(rows, 0.3, seed=2).labels


def test_refused_shares_and_rows():
    rows = [dict(r) for r in real_rows()[:50]]
    with pytest.raises(ValueError, match=r"--corrupt must be in \(0, 1\)"):
        plant(rows, 1.0)
    with pytest.raises(ValueError, match="row 0 has fields conversations"):
        plant([{"conversations": []}], 0.3)
    with pytest.raises(ValueError, match="wrong_number asked"):
        plant([{"instruction": "x", "output": "no digits here"}] * 20, 0.9)


def test_auc_by_hand():
    labels = [CLEAN, "refusal", CLEAN, "shuffled"]
    # Order 0, 1, 2 then 3 unranked: clean 0 beats both planted; clean 2 loses to planted 1
    # and beats 3: 3 of 4 pairs.
    assert clean_auc([0, 1, 2], labels) == pytest.approx(0.75)
    assert clean_auc([1, 3, 0, 2], labels) == 0.0
    # Clean 2 and planted 3 both unranked: a tie counts half.
    assert clean_auc([0, 1], labels) == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert clean_auc([0, 1, 2], labels, "refusal") == pytest.approx(0.5)
    assert junk_report([0, 2, 1, 3], labels) == {"all": 1.0, "refusal": 1.0, "shuffled": 1.0}
    assert math.isnan(clean_auc([0], [CLEAN, CLEAN]))


def test_auc_of_random_order_is_near_half(planted):
    order = np.random.default_rng(0).permutation(len(planted.labels)).tolist()
    assert abs(clean_auc(order, planted.labels) - 0.5) < 0.06


def test_planted_share():
    labels = [CLEAN, "refusal", CLEAN, "shuffled"]
    assert planted_share([0, 1, 3], labels) == pytest.approx(2 / 3)
    assert math.isnan(planted_share([], labels))


def test_recovered_share_by_hand():
    untuned = np.array([2.0, 3.0, 4.0])
    full = np.array([1.0, 2.0, 2.0])  # gains 1, 1, 2: mean 4/3
    arm = np.array([1.5, 3.0, 3.0])  # gains 0.5, 0, 1: mean 1/2
    items = np.array([[0, 0, 0], [2, 2, 1], [0, 1, 2]])
    share = recovered_share(arm, full, untuned, lower_is_better=True, items=items)
    assert share.value == pytest.approx(0.5 / (4 / 3))
    # Replicates: items 0,0,0 -> 0.5/1; 2,2,1 -> (1+1+0)/3 / ((2+2+1)/3) = 0.4; 0,1,2 -> 0.375.
    low, high = np.quantile([0.5, 0.4, 0.375], [0.025, 0.975])
    assert (share.low, share.high) == (pytest.approx(low), pytest.approx(high))


def test_recovered_share_of_seeds_and_accuracy():
    untuned = np.array([0.0, 0.0])
    full = np.array([1.0, 1.0])
    seeds = np.array([[1.0, 0.0], [0.0, 0.0]])  # accuracy: seed means 0.5 and 0
    items = np.array([[0, 1]])
    draws = np.array([[0, 0]])  # seed 0 drawn twice
    share = recovered_share(seeds, full, untuned, False, items=items, seeds=draws)
    assert share.value == pytest.approx(0.25)
    assert share.low == share.high == pytest.approx(0.5)
    flat = recovered_share(np.array([1.0, 1.0]), untuned, untuned, lower_is_better=True)
    assert math.isnan(flat.value)


def test_no_share_of_a_full_pool_gain_that_may_be_zero():
    untuned = np.array([2.0, 2.0])
    full = np.array([1.0, 2.8])  # gains 1 and -0.8: mean +0.1, but one draw's mean is -0.8
    arm = np.array([1.5, 2.0])
    items = np.array([[0, 0], [1, 1], [0, 1]])
    share = recovered_share(arm, full, untuned, lower_is_better=True, items=items)
    assert math.isnan(share.value) and math.isnan(share.low) and math.isnan(share.high)
    sure = recovered_share(arm, full, untuned, lower_is_better=True, items=items[[0, 2]])
    assert sure.value == pytest.approx(0.25 / 0.1)  # every draw's full gain is above zero

"""wICI's probe choice and aggregation forms (its formula: test_rounds.py and test_oracles.py)."""

from __future__ import annotations

import numpy as np
import pytest

from iclselect.methods.wici import WiciConfig, aggregate, choose_probes


def test_aggregate_forms():
    assert aggregate([0.2, -0.4], [0.5, 1.0], "paper") == pytest.approx((0.1 - 0.4) / 4)
    assert aggregate([0.2, -0.4], [0.5, 1.0], "code") == pytest.approx(0.1)
    assert aggregate([-0.2, -0.4], [0.5, 1.0], "code") == 0.0


def test_difficult_probes_take_the_hardest_member_of_each_cluster():
    rng = np.random.default_rng(0)
    centre = np.eye(8)[0]
    # Sample 0 is the candidate; 1-6 sit in two tight groups around two different directions.
    group_a = [centre + 0.6 * np.eye(8)[1] + 0.01 * rng.standard_normal(8) for _ in range(3)]
    group_b = [centre + 0.6 * np.eye(8)[2] + 0.01 * rng.standard_normal(8) for _ in range(3)]
    vectors = np.array([centre, *group_a, *group_b], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    difficulty = np.array([0.0, 0.1, 0.9, 0.3, 0.5, 0.2, 0.8])
    config = WiciConfig(probes="difficult", n_probes=2, n_neighbours=6)
    assert sorted(choose_probes(vectors, difficulty, config)[0]) == [2, 6]
    topk = WiciConfig(probes="topk", n_probes=2, n_neighbours=6)
    assert len(choose_probes(vectors, difficulty, topk)[0]) == 2


def test_samples_with_undefined_ifd_are_never_probes():
    vectors = np.eye(4, dtype=np.float32) + 0.1
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    difficulty = np.array([0.5, np.nan, 0.7, 0.9])
    probes = choose_probes(vectors, difficulty, WiciConfig(probes="topk", n_probes=3))
    assert all(1 not in p for p in probes)
    assert probes[1] and all(p != [] for p in probes)

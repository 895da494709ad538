"""RDS+'s arithmetic with no model: round-robin over target rows, and the scores a fake
answerer's pooled states give (tests/test_engine.py checks the pooled states on the model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_rounds import Fake, pool

from iclselect.methods.loss_requests import conditioned
from iclselect.methods.rds import round_robin
from iclselect.methods.registry import get
from iclselect.methods.rounds import PooledStates
from iclselect.run.runner import drive


class Recording(Fake):
    """Keeps every pooled-states question, not only the last."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[PooledStates] = []

    def pooled_states(self, job: PooledStates) -> np.ndarray:
        self.jobs.append(job)
        return super().pooled_states(job)


def naive_round_robin(similarity: np.ndarray) -> list[int]:
    n_targets, n = similarity.shape
    order: list[int] = []
    while len(order) < n:
        for j in range(n_targets):
            free = [i for i in range(n) if i not in order]
            if not free:
                break
            order.append(max(free, key=lambda i: (similarity[j, i], -i)))
    return order


def test_round_robin_by_hand():
    similarity = np.array([[0.9, 0.8, 0.1, 0.0, 0.5], [0.95, 0.2, 0.7, 0.6, 0.1]])
    # Target 0 takes row 0 first, so target 1's best is row 2; then rows 1 and 3; then 4.
    assert round_robin(similarity) == [0, 2, 1, 3, 4]


@pytest.mark.parametrize(("targets", "n"), [(7, 50), (3, 200), (40, 30), (1, 9)])
def test_round_robin_equals_the_plain_loop(targets, n):
    rng = np.random.default_rng(targets * n)
    similarity = rng.normal(size=(targets, n)).round(1)  # rounded: ties happen
    assert round_robin(similarity) == naive_round_robin(similarity)


def test_rds_scores_are_the_round_robin_order(tmp_path):
    p = pool(9)
    rows = [{"instruction": f"target {k}", "input": "", "output": f"reply {k}"} for k in range(4)]
    target = tmp_path / "target.json"
    target.write_text(json.dumps(rows))
    fake = Recording()
    method = get("rds")
    scores = drive(method, p, method.configure({"target": str(target)}), fake)
    pool_job, target_job = fake.jobs
    assert (pool_job.weighting, target_job.weighting) == ("position", "position")
    assert pool_job.requests == [conditioned(s) for s in p.samples]
    assert [r.target for r in target_job.requests] == [f"reply {k}" for k in range(4)]
    states = np.array([fake.vector(r) for r in pool_job.requests])
    targets = np.array([fake.vector(r) for r in target_job.requests])
    order = naive_round_robin(targets @ states.T)
    assert [int(i) for i in np.argsort(-scores.score, kind="stable")] == order
    assert scores.score[order[0]] == 9 and scores.score[order[-1]] == 1
    assert [scores.components["target_row"][i] for i in order] == [k % 4 for k in range(9)]


def test_rds_target_subset_is_seeded(tmp_path):
    rows = [{"instruction": f"t{k}", "input": "", "output": f"r{k}"} for k in range(10)]
    target = tmp_path / "target.json"
    target.write_text(json.dumps(rows))
    method = get("rds")
    picked = []
    for seed in (1, 1, 2):
        fake = Recording()
        config = method.configure({"target": str(target), "target_size": 3, "seed": seed})
        scores = drive(method, pool(5), config, fake)
        assert scores.params["target_rows"] == 3
        picked.append([r.target for r in fake.jobs[1].requests])
    assert picked[0] == picked[1] != picked[2]
    with pytest.raises(ValueError, match=r"rds\.target_size must be >= 0"):
        method.configure({"target_size": -1})

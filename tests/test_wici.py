"""wICI against its formula, computed by hand from one-at-a-time engine answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import samples_from, scored_by

from iclselect.lm import Engine, Template
from iclselect.methods import Pool
from iclselect.methods.ifd import conditioned, unconditioned
from iclselect.methods.wici import WiciConfig, aggregate, choose_probes


@pytest.fixture(scope="module")
def four(demo_rows, lm, embedder):
    samples = samples_from(demo_rows[:4])
    vectors = embedder.encode([s.instruction_text for s in samples])
    engine = Engine(lm, Template("chat", lm.tokenizer), show_progress=False)
    single = Engine(
        lm,
        Template("chat", lm.tokenizer),
        max_batch_tokens=1,
        reuse_prefix=False,
        show_progress=False,
    )
    return samples, vectors, engine, single


def loss(engine, request) -> float:
    return engine.loglikelihood([request])[0].loss


@pytest.mark.parametrize("denominator", ["alone", "demo"])
def test_four_samples_match_the_formula(four, denominator):
    """alone (default, the reference code's): IFD(y_b | a_i, x_b) = L(y_b | a_i, x_b) / L(y_b),
    the probe's response alone below; demo (iclselect's variant): / L(y_b | a_i)."""
    samples, vectors, engine, single = four
    config = WiciConfig(probes="topk", n_probes=3, n_neighbours=3, denominator=denominator)
    scores = scored_by("wici", Pool(samples, vectors), engine, config)

    ifd = [loss(single, conditioned(s)) / loss(single, unconditioned(s)) for s in samples]
    for i, candidate in enumerate(samples):
        total = 0.0
        for b, probe in enumerate(samples):
            if b == i:
                continue
            below = (
                unconditioned(probe) if denominator == "alone"
                else unconditioned(probe, candidate.turns)
            )  # fmt: skip
            in_context = loss(single, conditioned(probe, candidate.turns)) / loss(single, below)
            weight = 1 - float(vectors[i] @ vectors[b])
            total += weight / (2 * 3) * (ifd[b] - in_context)
        assert scores.score[i] == pytest.approx(total, abs=1e-5, rel=1e-3)
        assert scores.components["ifd"][i] == pytest.approx(ifd[i], rel=1e-4)
        assert sorted(scores.components["probe_rows"][i]) == [b for b in range(4) if b != i]


def test_reference_code_variants(four):
    samples, vectors, engine, _ = four
    paper = scored_by("wici", Pool(samples, vectors), engine, WiciConfig(probes="topk", n_probes=3))
    code = scored_by(
        "wici",
        Pool(samples, vectors),
        engine,
        WiciConfig(probes="topk", n_probes=3, aggregate="code", prefilter_ifd=True),
    )
    for i in range(4):
        ifd_i = paper.components["ifd"][i]
        if ifd_i > 1:
            assert code.excluded[i] == "prefiltered: IFD > 1" and math.isnan(code.score[i])
            continue
        ici, weights = paper.components["probe_ici"][i], paper.components["probe_weight"][i]
        helped = [w * t for w, t in zip(weights, ici, strict=True) if t > 0]
        assert code.score[i] == pytest.approx(
            sum(helped) / len(helped) if helped else 0.0, rel=1e-6
        )


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

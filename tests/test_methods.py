"""Each method against a property its paper states, on a real 200-row Alpaca slice (their
formulas: test_rounds.py without a model, test_oracles.py against an independent oracle)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import pool_of, samples_from, scored_by

from iclselect.methods import Pool, baselines, icon, ifd, miwv, nuggets, wici
from iclselect.methods.assessment import SHIPPED, load_assessment
from iclselect.methods.icon_classifier import train_classifier
from iclselect.methods.options import make
from iclselect.methods.registry import METHODS, get
from iclselect.run.runner import EngineAnswerer

# IFD (Cherry) ---------------------------------------------------------------------------------


def test_ifd_drops_exactly_the_samples_the_instruction_does_not_help(pool200, engine):
    """Cherry: IFD > 1 means the instruction does not help; such samples are discarded."""
    scores = scored_by("ifd", pool200, engine, ifd.IfdConfig())
    values = np.array(scores.components["ifd"])
    above = {i for i in range(len(pool200)) if values[i] > 1}
    assert set(scores.excluded) == above and 0 < len(above) < len(pool200)
    assert all(math.isnan(scores.score[i]) for i in above)
    kept = [i for i in range(len(pool200)) if i not in above]
    assert np.allclose(scores.score[kept], values[kept]) and (values[kept] <= 1).all()


# MIWV -----------------------------------------------------------------------------------------


def test_miwv_demo_is_the_nearest_other_sample(pool200):
    """MIWV: the one-shot demo is the single most similar other sample in the whole pool."""
    demo, similarity = miwv.demos(pool200)
    vectors = pool200.instruction_vectors
    assert (demo != np.arange(len(pool200))).all()
    best = (vectors @ vectors.T - 3 * np.eye(len(pool200))).max(axis=1)
    assert np.allclose(similarity, best, atol=1e-5)
    assert np.allclose([vectors[i] @ vectors[d] for i, d in enumerate(demo)], best, atol=1e-5)


# ICon / RICo ----------------------------------------------------------------------------------


def test_icon_code_significance_is_the_clipped_sigmoid():
    small = icon.aggregates(np.array([0.01, 0.03]), "code")["significance"]
    assert small == pytest.approx(2 / (1 + math.exp(-50 * 0.02)) - 1)
    assert icon.aggregates(np.array([0.6, 0.8]), "code")["significance"] == 1.0
    assert icon.aggregates(np.array([-0.9, -0.7]), "code")["significance"] == -1.0
    assert icon.aggregates(np.array([0.6, -0.2]), "mean") == {
        "significance": pytest.approx(0.2),
        "consistency": 0.5,
        "stability": pytest.approx(0.32),
        "coverage": 0.5,
    }


def test_icon_random_control_has_the_candidates_character_lengths(pool200):
    """RICo: the control context is random printable text of the same character length."""
    for sample in pool200.samples:
        control = icon.random_control(sample, 42)
        assert [t.role for t in control] == [t.role for t in sample.turns]
        assert [len(t.content) for t in control] == [len(t.content) for t in sample.turns]
        assert all(c.isprintable() for t in control for c in t.content)
        assert control != sample.turns and control == icon.random_control(sample, 42)
    first, other = pool200.samples[0], pool200.samples[1]
    assert icon.random_control(first, 1) != icon.random_control(first, 42)
    # Per (candidate, assessment row) pair, as the reference code draws them.
    assert icon.random_control(first, 42, other) != icon.random_control(first, 42)


def test_shipped_assessment_set_parses_into_turns():
    samples, name = load_assessment(None)
    assert len(samples) == 1020 and SHIPPED in name
    for s in samples:
        assert s.turns[-2].role == "user" and s.turns[-1].role == "assistant"
        assert all("### " not in t.content.split("\n", 1)[0] for t in s.turns[:-1])
    assert sum(s.turns[0].role == "system" for s in samples) > 500  # the OpenOrca rows


def test_icon_reports_assessment_rows_that_are_also_in_the_pool(pool200):
    assessment = [
        pool200.samples[7],
        *samples_from([{"instruction": "x", "input": "", "output": "y"}]),
    ]
    assert icon.overlap(pool200.samples, assessment) == [pool200.samples[7].row]


def classify(kind, pool, exact, significance, config, engine=None):
    """train_classifier driven to its result, the LoRA fits answered with `engine`'s model."""
    run, reply = train_classifier(kind, pool, exact, significance, config), None
    while True:
        try:
            job = run.send(reply)
        except StopIteration as done:
            return done.value
        reply = EngineAnswerer(engine).fit_classifier(job)


def test_embedding_selector_learns_a_learnable_signal(pool200):
    """The trained selector must recover a ranking the embeddings carry (response length, which
    follows the kind of task), and report its held-out agreement."""
    n = len(pool200)
    signal = np.array([len(s.response) for s in pool200.samples], dtype=float)
    exact = list(range(0, n, 2))
    significance = np.full(n, np.nan)
    significance[exact] = signal[exact]
    config = icon.IconConfig(label_fraction=0.3)
    probability, report = classify("embedding", pool200, exact, significance, config)
    assert probability.shape == (n,) and ((probability >= 0) & (probability <= 1)).all()
    assert report["trained_on"] + report["held_out"] == len(exact)
    assert report["held_out_auc"] > 0.7
    rest = [i for i in range(n) if i not in exact]
    from scipy.stats import spearmanr

    assert spearmanr(probability[rest], signal[rest]).statistic > 0.3


def test_lora_selector_trains_on_the_scoring_model(demo_rows, embedder, engine):
    pytest.importorskip("peft", reason="the LoRA selector needs peft (pip install iclselect[lora])")
    short = sorted(demo_rows, key=lambda r: len(r["instruction"] + r["input"] + r["output"]))
    pool = pool_of(samples_from(short[:12]), embedder)
    significance = np.array([len(s.response) for s in pool.samples], dtype=float)
    # One epoch on the 12 shortest rows keeps this a test; the paper's 5 epochs are the default.
    config = icon.IconConfig(label_fraction=0.3, lora_epochs=1, lora_max_tokens=128)
    before = [p.detach().clone() for p in engine.model.parameters()]
    probability, report = classify("lora", pool, list(range(12)), significance, config, engine)
    assert probability.shape == (12,) and np.isfinite(probability).all()
    # Labels by quantile, as the code: at or above the 0.7 quantile of the significance.
    positives = int((significance >= np.quantile(significance, 0.7)).sum())
    assert report["kind"] == "lora" and report["positives"] == positives
    assert len(set(np.round(probability, 6))) > 1
    # Training adapts a copy: the scoring model itself is unchanged.
    assert all(torch_equal(a, b) for a, b in zip(before, engine.model.parameters(), strict=True))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


# Nuggets --------------------------------------------------------------------------------------


def test_nuggets_anchors_are_the_samples_nearest_the_kmeans_centres(pool200):
    from sklearn.cluster import KMeans

    config = nuggets.NuggetsConfig(anchors=10)
    anchors = nuggets.choose_anchors(pool200.instruction_vectors, config)
    vectors = pool200.instruction_vectors
    centres = KMeans(n_clusters=10, random_state=42, n_init=10).fit(vectors).cluster_centers_
    nearest = [int(np.argmin(np.linalg.norm(vectors - c, axis=1))) for c in centres]
    assert len(set(anchors)) == 10 and anchors == nearest


# wICI ----------------------------------------------------------------------------------------


def test_wici_difficult_probes_come_from_the_nearest_neighbours(pool200):
    """wICI: B_i holds at most K = 5 of the N = 32 nearest neighbours, one per k-means cluster,
    each the most difficult of its cluster."""
    vectors = pool200.instruction_vectors
    difficulty = np.array([len(s.response) for s in pool200.samples], dtype=float)
    probes = wici.choose_probes(vectors, difficulty, wici.WiciConfig())
    order = np.argsort(-(vectors @ vectors.T - 3 * np.eye(len(vectors))), axis=1)
    for i, chosen in enumerate(probes):
        assert len(chosen) == 5 and len(set(chosen)) == 5 and i not in chosen
        assert set(chosen) <= set(order[i, :32].tolist())
        assert max(difficulty[order[i, :32]]) == max(difficulty[chosen])


# Baselines ------------------------------------------------------------------------------------


def test_length_and_random(pool200):
    length = baselines.length(pool200, baselines.LengthConfig())
    assert length.score.tolist() == [len(s.response) for s in pool200.samples]
    first = baselines.random(pool200, baselines.RandomConfig(seed=1))
    again = baselines.random(pool200, baselines.RandomConfig(seed=1))
    other = baselines.random(pool200, baselines.RandomConfig(seed=2))
    assert np.array_equal(first.score, again.score) and not np.array_equal(first.score, other.score)
    shuffled = Pool(pool200.samples[::-1])
    reversed_scores = baselines.random(shuffled, baselines.RandomConfig(seed=1)).score
    assert np.array_equal(reversed_scores[::-1], first.score)  # a sample's score is its own


def test_diversity_is_k_center_greedy(pool200):
    scores = baselines.diversity(pool200, baselines.DiversityConfig())
    vectors = pool200.full_vectors
    order = np.argsort(-scores.score, kind="stable")
    assert order[0] == int(np.argmax(vectors @ vectors.mean(axis=0)))
    for t in range(1, 30):
        taken = vectors[order[:t]]
        distance = 1 - (vectors @ taken.T).max(axis=1)
        distance[order[:t]] = -np.inf
        assert distance[order[t]] == pytest.approx(distance.max(), abs=1e-6)
        assert scores.components["kcenter_distance"][order[t]] == pytest.approx(
            distance.max(), abs=1e-5
        )


# Registry and options -------------------------------------------------------------------------


def test_every_method_is_registered_with_its_options():
    shipped = [
        "wici",
        "miwv",
        "icon",
        "ifd",
        "nuggets",
        "rds",
        "perplexity",
        "length",
        "random",
        "diversity",
    ]
    # Catches a shipped method gone missing or moved in the listings; a new one may be anywhere.
    assert [name for name in METHODS if name in shipped] == shipped
    assert get("wici").tau == 0.9 and get("miwv").tau is None
    assert [name for name, _, _ in get("nuggets").options()] == ["anchors", "anchor_space", "seed"]
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        get("nope")


def test_options_convert_command_line_strings():
    config = make(
        wici.WiciConfig, {"n_probes": "3", "prefilter_ifd": "yes", "probes": "topk"}, "wici"
    )
    assert config == wici.WiciConfig(n_probes=3, prefilter_ifd=True, probes="topk")
    assert make(icon.IconConfig, {"assessment": "none"}, "icon").assessment is None
    for values, message in (
        ({"n_probe": "3"}, "wici has no option 'n_probe'"),
        ({"n_probes": "three"}, "wici.n_probes must be an integer"),
        ({"probes": "hard"}, "wici.probes must be one of difficult, topk"),
        ({"prefilter_ifd": "maybe"}, "wici.prefilter_ifd must be true or false"),
    ):
        with pytest.raises(ValueError, match=message):
            make(wici.WiciConfig, values, "wici")


def test_options_given_typed_are_checked():
    """The Python API and YAML hand options over already typed: they are checked, not trusted."""
    config = make(wici.WiciConfig, {"n_probes": 3, "prefilter_ifd": True}, "wici")
    assert config == wici.WiciConfig(n_probes=3, prefilter_ifd=True)
    assert make(icon.IconConfig, {"assessment": None}, "icon").assessment is None
    for values, message in (
        ({"n_probes": 2.5}, "wici.n_probes must be an integer"),
        ({"n_probes": True}, "wici.n_probes must be an integer"),
        ({"probes": 5}, "wici.probes must be one of difficult, topk"),
        ({"prefilter_ifd": 1}, "wici.prefilter_ifd must be true or false"),
    ):
        with pytest.raises(ValueError, match=message):
            make(wici.WiciConfig, values, "wici")

"""bench quality's statistics: paired bootstrap intervals (against a hand-computed case), the
length-matched control (same length distribution as the method's subset), and the
recommendation they add up to. No model: numbers in, verdicts out."""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pytest

from iclselect.bench.quality.matching import length_bins, matched_draw
from iclselect.bench.quality.stats import Interval, paired_bootstrap
from iclselect.bench.quality.verdicts import comparisons, recommendation


def test_paired_bootstrap_against_a_hand_computed_case():
    arm = np.array([1.0, 2.0, 3.0])
    reference = np.array([[2.0, 2.0, 4.0], [2.0, 4.0, 2.0]])  # two seeds
    # Replicate 1 draws items (0, 0, 0) and seed 0 twice: per-item gains 2-1, 2-2, 4-3 = 1, 0, 1,
    # items 0,0,0 -> mean 1. Replicate 2 draws items (1, 2, 2) and seed 1 twice: gains 1, 2, -1,
    # items 1,2,2 -> (2 - 1 - 1) / 3 = 0. Percentiles of {1, 0} interpolate linearly.
    items = np.array([[0, 0, 0], [1, 2, 2]])
    seeds = np.array([[0, 0], [1, 1]])
    got = paired_bootstrap(arm, reference, True, items=items, seeds=seeds)
    # The point gain: seeds averaged (2, 3, 3) minus the arm (1, 2, 3), averaged: 2/3.
    assert got.gain == pytest.approx(2 / 3)
    assert (got.low, got.high) == pytest.approx((0.025, 0.975))
    assert got.verdict == "better"
    # Accuracy (higher is better): the same numbers, the other sign.
    flipped = paired_bootstrap(arm, reference, False, items=items, seeds=seeds)
    assert (flipped.gain, flipped.low, flipped.high) == pytest.approx((-2 / 3, -0.975, -0.025))
    assert flipped.verdict == "worse"


def test_the_bootstrap_pairs_items_and_resamples_seeds():
    rng = np.random.default_rng(1)
    difficulty = rng.normal(2.0, 1.0, size=400)  # items differ far more than the arms do
    reference = np.stack([difficulty, difficulty])
    arm = difficulty - 0.01  # better by 0.01 on every item
    paired = paired_bootstrap(arm, reference, True)
    # Paired, the item spread cancels: the interval is the gain itself.
    assert paired.low > 0 and paired.high - paired.low < 1e-9 and paired.verdict == "better"
    # Unpaired (items drawn independently for each side) it would span zero by far:
    unpaired_sd = math.sqrt(2) * difficulty.std() / math.sqrt(len(difficulty))
    assert unpaired_sd > 0.05
    # Random's seeds far apart: resampling them widens the interval past zero.
    spread = np.stack([difficulty - 0.2, difficulty + 0.2])
    wide = paired_bootstrap(arm, spread, True)
    assert wide.gain == pytest.approx(0.01) and wide.low < 0 < wide.high
    assert wide.verdict == "not clearly different"
    assert paired_bootstrap(arm, spread, True) == wide  # seeded: the same interval again


def test_interval_text_has_no_negative_zero():
    assert Interval(-1e-6, -2e-6, 1e-6).text(3) == "+0.000 [+0.000, +0.000]"


def shipped_pool_lengths() -> list[int]:
    import gzip

    path = resources.files("iclselect").joinpath("assets/pool/alpaca_pool_2600.json.gz")
    rows = json.loads(gzip.decompress(path.read_bytes()))
    return [len(r["output"]) for r in rows[:2000]]


@pytest.mark.parametrize("pick", ["shortest", "longest", "mixed"])
def test_length_matched_control_matches_the_methods_length_bins(pick):
    lengths = np.array(shipped_pool_lengths())
    order = np.argsort(lengths, kind="stable")
    chosen = {
        "shortest": order[:100],  # one-word answers, as MIWV picks
        "longest": order[-100:],
        "mixed": np.concatenate([order[:30], order[900:940], order[-30:]]),
    }[pick].tolist()
    bins = length_bins(lengths)
    want = np.bincount(bins[chosen], minlength=10)
    draws = [matched_draw(lengths, chosen, seed) for seed in range(5)]
    for drawn in draws:
        assert len(drawn) == len(set(drawn)) == len(chosen)
        got = np.bincount(bins[drawn], minlength=10)
        assert np.abs(got - want).max() <= 1  # quantile bins equal within one row
    assert len({tuple(d) for d in draws}) == 5  # each seed draws its own subset
    assert draws[0] == matched_draw(lengths, chosen, 0)  # and the same one again


def test_length_bins_are_pool_quantiles_and_ties_share_a_bin():
    lengths = [1, 1, 1, 1, 2, 3, 4, 5, 6, 7]
    bins = length_bins(lengths, bins=5)
    assert len(set(bins[:4])) == 1  # equal lengths, one bin
    assert list(bins) == sorted(bins)  # monotone in length


def arm(name, method, budget, values, seed=None, of=None):
    return {
        "arm": name,
        "method": method,
        "budget": budget,
        "seed": seed,
        "of": of,
        "rows": 10,
        "mean_response_chars": 1.0,
        "eval": {
            s: {"nll": float(np.mean(v)), "n": len(v), "item_nll": list(v)}
            for s, v in values.items()
        },
    }


def summary_with(method_gain: float, matched_gain: float, longest_gain: float) -> dict:
    """One budget: random seeds around a base, a method, its length-matched seeds and longest,
    each better than random's mean by the gain given (NLL)."""
    rng = np.random.default_rng(0)
    base = rng.normal(2.0, 0.5, size=300)
    noise = lambda: rng.normal(0, 0.002, size=300)  # noqa: E731
    sets = lambda shift: {"pool-heldout": base - shift + noise(), "other": base + noise()}  # noqa: E731
    arms = [arm("untuned", "untuned", None, sets(-0.5))]
    arms += [arm("m@5%", "m", 0.05, sets(method_gain))]
    arms += [arm("longest@5%", "longest", 0.05, sets(longest_gain))]
    arms += [arm(f"random-s{s}@5%", "random", 0.05, sets(0.0), s) for s in range(5)]
    arms += [
        arm(f"m-matched-s{s}@5%", "matched", 0.05, sets(matched_gain), s, "m") for s in range(5)
    ]
    summary = {"arms": arms}
    summary["comparisons"] = comparisons(summary)
    return summary


def test_a_method_that_clears_every_control_is_recommended():
    summary = summary_with(method_gain=0.05, matched_gain=0.01, longest_gain=0.02)
    advice = recommendation(summary)
    assert (advice["method"], advice["budget"]) == ("m", 0.05)
    assert advice["text"].startswith("Use m at 5% of this pool")
    assert "vs length-matched" in advice["evidence"][0]


def test_beating_random_by_length_alone_is_not_a_recommendation():
    # The method beats random, but only as much as random subsets of its lengths do.
    summary = summary_with(method_gain=0.03, matched_gain=0.03, longest_gain=0.04)
    verdicts = {
        r["reference"]: r["verdict"]
        for r in summary["comparisons"]
        if r["arm"] == "m@5%" and r["set"] == "pool-heldout"
    }
    assert verdicts == {
        "random": "better",
        "length-matched": "not clearly different",
        "longest": "worse",
    }
    advice = recommendation(summary)
    assert advice["text"].startswith("None beats longest-response here")
    assert advice["method"] == "longest"


def test_when_nothing_beats_random_it_says_so():
    advice = recommendation(summary_with(0.0, 0.0, 0.0))
    assert advice["text"].startswith("None beats random here") and advice["method"] is None


def test_the_cpu_preset_runs_the_methods_at_their_own_settings():
    from iclselect.bench.quality.presets import PRESETS

    cpu = PRESETS["cpu"]
    assert cpu.options["wici.n_probes"] == 5
    assert cpu.options["icon.exact"] >= 200 and cpu.options["icon.assessment_size"] >= 100
    assert not any(key.startswith(("miwv.", "ifd.")) for key in cpu.options)  # as published
    assert cpu.seeds >= 5 and cpu.n_matched == cpu.seeds
    assert cpu.heldout >= 500 and all(rows == 0 for _, rows in cpu.eval_files)
    assert cpu.eval_rows == 0
    assert cpu.full  # the ceiling the recovered shares are read against
    arms = {label: (method, fixed) for label, method, fixed in cpu.extra_arms}
    assert arms["wici-code"] == (
        "wici",
        {
            "ifd_form": "ppl",
            "aggregate": "code",
            "prefilter_ifd": True,
            "probes": "topk",
            "probe_prefilter_ifd": False,
        },
    )
    assert arms["rds"] == ("rds", {})
    assert arms["wici-paper"] == ("wici", {"prefilter_ifd": False, "probe_prefilter_ifd": False})
    assert PRESETS["cpu-small"].n_matched == 1  # the quick look stays quick


def test_the_dirty_preset_plants_defects_and_keeps_the_ceiling():
    from iclselect.bench.quality.presets import PRESETS, QualityConfig

    dirty = PRESETS["dirty"]
    assert dirty.corrupt == 0.3 and dirty.full and dirty.pool_rows == PRESETS["cpu"].pool_rows
    labels = [label for label, _, _ in QualityConfig(out="x").arm_specs(dirty)]
    assert {"wici", "wici-code", "wici-paper", "rds", "ifd", "perplexity", "longest"} <= set(labels)
    arms = {label: fixed for label, _, fixed in dirty.extra_arms}
    # wICI as published, unguarded
    assert arms["wici-paper"] == {"prefilter_ifd": False, "probe_prefilter_ifd": False}
    assert arms["ifd-guarded"] == {"loss_outliers": True}  # IFD > 1 is dropped by default
    guards = {"loss_outliers": True, "prefilter_ifd": True}
    assert arms["miwv-guarded"] == arms["perplexity-guarded"] == guards
    assert QualityConfig(out="x", overrides={"corrupt": 0.2}).resolved().corrupt == 0.2


def test_icon_short_assessment_leaves_enough_rows(lm, tmp_path):
    from iclselect.bench.quality.data import short_assessment
    from iclselect.bench.quality.presets import ICON_TOKENS, PRESETS
    from iclselect.lm import Template
    from iclselect.methods.assessment import load_assessment

    path = short_assessment(Template("chat", lm.tokenizer), ICON_TOKENS, tmp_path)
    rows, _ = load_assessment(str(path))
    assert len(rows) >= PRESETS["cpu"].options["icon.assessment_size"]
    assert short_assessment(Template("chat", lm.tokenizer), ICON_TOKENS, tmp_path) == path


def test_a_preset_can_add_arms_by_method_options():
    from dataclasses import replace

    from iclselect.bench.quality.presets import PRESETS, QualityConfig

    preset = replace(PRESETS["cpu"], extra_arms=(("miwv-min3", "miwv", {"min_tokens": 3}),))
    specs = QualityConfig(out="x", methods=("miwv", "longest")).arm_specs(preset)
    assert specs == [
        ("miwv", "miwv", {}),
        ("longest", "length", {"order": "long"}),
        ("miwv-min3", "miwv", {"min_tokens": 3}),
    ]
    with pytest.raises(ValueError, match="random always runs"):
        QualityConfig(out="x", methods=("random",)).arm_specs(preset)
    with pytest.raises(ValueError, match="unknown bench quality setting"):
        QualityConfig(out="x", overrides={"seedz": 3}).resolved()

"""Each model method's arithmetic, with no model: a fake answerer gives every request a
made-up answer keyed by the request, and the scores must follow the paper's formula from those
answers. Also: the runner's contract (rounds answered by request, a compare asks nothing
twice) and the registry's."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np
import pytest

from iclselect.lm.requests import LogprobRequest, LogprobResult
from iclselect.methods import Pool, icon, nuggets, wici
from iclselect.methods.loss_requests import conditioned, unconditioned
from iclselect.methods.registry import METHODS, get
from iclselect.methods.rounds import FitClassifier, PooledStates
from iclselect.records import Sample, Turn
from iclselect.run.runner import CostAnswerer, drive, drive_together


class Fake:
    """Answers each request with a loss drawn from its content hash (so a repeated request gets
    the same answer), over a token count of its own, and records every call."""

    def __init__(self) -> None:
        self.calls: list[list[LogprobRequest]] = []
        self.earlier = 0

    def loglikelihood(self, requests: list[LogprobRequest], desc: str) -> list[LogprobResult]:
        self.calls.append(list(requests))
        return [self.result(r) for r in requests]

    @staticmethod
    def result(request: LogprobRequest) -> LogprobResult:
        digest = hashlib.sha256(request.key().encode()).digest()
        n_tokens = 1 + digest[0] % 7
        loss = 0.2 + 3.0 * int.from_bytes(digest[1:5], "big") / 2**32
        return LogprobResult(-loss * n_tokens, n_tokens)

    def loss(self, request: LogprobRequest) -> float:
        return self.result(request).loss

    def answered_earlier(self, n: int) -> None:
        self.earlier += n

    def fit_classifier(self, job: FitClassifier) -> np.ndarray:
        raise AssertionError("no classifier is asked for here")

    def can_fit_classifier(self) -> bool:
        return False

    def pooled_states(self, job: PooledStates) -> np.ndarray:
        self.pooled = list(job.requests)
        return np.array([self.vector(r) for r in job.requests])

    @staticmethod
    def vector(request: LogprobRequest) -> np.ndarray:
        digest = hashlib.sha256(request.key().encode()).digest()
        vector = np.frombuffer(digest[:16], dtype=np.uint8).astype(float) - 127.5
        return vector / np.linalg.norm(vector)


def pool(n: int = 8, seed: int = 0) -> Pool:
    rng = np.random.default_rng(seed)
    samples = [
        Sample(i, (Turn("user", f"task {i}: {'x' * (i % 3)}"), Turn("assistant", f"answer {i}")))
        for i in range(n)
    ]
    vectors = rng.normal(size=(n, 6)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Pool(samples, vectors, vectors.copy())


def run(name: str, p: Pool, **options):
    fake = Fake()
    method = get(name)
    return drive(method, p, method.configure(options), fake), fake


def test_ifd_is_the_loss_ratio():
    p = pool()
    scores, fake = run("ifd", p, drop_above_one=False)
    for i, s in enumerate(p.samples):
        expected = fake.loss(conditioned(s)) / fake.loss(unconditioned(s))
        assert scores.score[i] == pytest.approx(expected, rel=1e-12)
    ppl, _ = run("ifd", p, form="ppl", drop_above_one=False)
    s = p.samples[0]
    assert ppl.score[0] == pytest.approx(
        math.exp(fake.loss(conditioned(s)) - fake.loss(unconditioned(s)))
    )
    dropped, _ = run("ifd", p)
    above = [i for i in range(len(p)) if scores.score[i] > 1]
    assert above and all(math.isnan(dropped.score[i]) for i in above)
    assert {dropped.excluded[i].reason for i in above} == {"prefiltered"}


def test_miwv_is_the_loss_gap_with_the_nearest_other_sample_as_demo():
    p = pool()
    scores, fake = run("miwv", p)
    similarity = p.instruction_vectors @ p.instruction_vectors.T
    np.fill_diagonal(similarity, -np.inf)
    for i, s in enumerate(p.samples):
        demo = p.samples[int(similarity[i].argmax())].turns
        expected = fake.loss(conditioned(s, demo)) - fake.loss(conditioned(s))
        assert scores.score[i] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("probe_prefilter", [False, True])
def test_wici_is_the_weighted_in_context_ifd_drop(probe_prefilter):
    """The paper's formula; with probe_prefilter_ifd (iclselect's default) the probes are the
    nearest rows whose own IFD is at most 1."""
    p = pool()
    scores, fake = run(
        "wici",
        p,
        probes="topk",
        n_probes=3,
        n_neighbours=3,
        prefilter_ifd=False,
        probe_prefilter_ifd=probe_prefilter,
    )
    vectors = p.instruction_vectors
    own = [fake.loss(conditioned(s)) / fake.loss(unconditioned(s)) for s in p.samples]
    eligible = [b for b in range(len(p)) if own[b] <= 1 or not probe_prefilter]
    assert (len(eligible) < len(p)) == probe_prefilter and len(eligible) > 3
    for i, candidate in enumerate(p.samples):
        near = np.argsort(-(vectors @ vectors[i]), kind="stable")
        probes = [int(b) for b in near if b != i and b in eligible][:3]
        assert [p.samples[b].row for b in probes] == scores.components["probe_rows"][i]
        total = 0.0
        for b in probes:
            probe = p.samples[b]
            in_context = fake.loss(conditioned(probe, candidate.turns)) / fake.loss(
                unconditioned(probe)
            )
            total += (1 - float(vectors[i] @ vectors[b])) / (2 * 3) * (own[b] - in_context)
        assert scores.score[i] == pytest.approx(total, rel=1e-9, abs=1e-12)
    # Two rounds: every sample's own IFD, then the probes (which depend on it).
    assert len(fake.calls) == 2 and len(fake.calls[0]) == 2 * len(p)
    assert len(fake.calls[1]) == len(p) * 3


def test_wici_reference_code_variant_averages_the_helped_probes_and_prefilters():
    p = pool(12)
    paper, _ = run(
        "wici", p, probes="topk", n_probes=3, prefilter_ifd=False, probe_prefilter_ifd=False
    )
    code, _ = run(
        "wici",
        p,
        probes="topk",
        n_probes=3,
        aggregate="code",
        prefilter_ifd=True,
        probe_prefilter_ifd=False,
    )
    default, _ = run("wici", p, probes="topk", n_probes=3, probe_prefilter_ifd=False)
    above = [i for i in range(len(p)) if paper.components["ifd"][i] > 1]
    assert above and len(above) < len(p)
    for i in range(len(p)):
        if i in above:
            assert code.excluded[i].reason == "prefiltered" and math.isnan(code.score[i])
            # iclselect's default: the paper's score, with the code's IFD > 1 prefilter
            assert default.excluded[i].reason == "prefiltered" and math.isnan(default.score[i])
            continue
        assert default.score[i] == paper.score[i]
        ici, weights = paper.components["probe_ici"][i], paper.components["probe_weight"][i]
        helped = [w * t for w, t in zip(weights, ici, strict=True) if t > 0]
        assert code.score[i] == pytest.approx(sum(helped) / len(helped) if helped else 0.0)


def test_icon_is_the_perplexity_shift_against_the_random_control(tmp_path):
    from conftest import write_json

    assessment = [
        {"instruction": f"assess {k}", "input": "", "output": f"reply {k}"} for k in range(4)
    ]
    path = write_json(tmp_path / "assessment.json", assessment)
    p = pool(5)
    scores, fake = run("icon", p, assessment=str(path), selector="none")
    rows, _ = icon.load_assessment(str(path))

    def ppl(s: Sample, demo=None) -> float:
        return math.exp(fake.loss(conditioned(s, demo)))

    for c, candidate in enumerate(p.samples):
        influence = np.array(
            [
                (ppl(s, icon.random_control(candidate, 42, s)) - ppl(s, candidate.turns))
                / (ppl(s) + 1e-6)
                for s in rows
            ]
        )
        assert scores.score[c] == pytest.approx(influence.mean(), rel=1e-9)
        assert scores.components["stability"][c] == pytest.approx(influence.var(ddof=1))
        assert scores.components["consistency"][c] == (influence > 0).mean()


def test_nuggets_is_the_share_of_anchors_helped():
    p = pool(10)
    scores, fake = run("nuggets", p, anchors=3)
    anchors = nuggets.choose_anchors(p.instruction_vectors, nuggets.NuggetsConfig(anchors=3))
    for c in range(len(p)):
        others = [a for a in anchors if a != c]
        wins = sum(
            fake.result(conditioned(p.samples[a], p.samples[c].turns)).logprob
            > fake.result(conditioned(p.samples[a])).logprob
            for a in others
        )
        assert scores.score[c] == wins / len(others)


def test_nuggets_model_space_anchors_cluster_the_models_pooled_states():
    p = pool(10)
    scores, fake = run("nuggets", p, anchors=3, anchor_space="model")
    assert fake.pooled == [conditioned(s) for s in p.samples]
    space = np.array([fake.vector(r) for r in fake.pooled])
    anchors = nuggets.choose_anchors(space, nuggets.NuggetsConfig(anchors=3))
    assert anchors != nuggets.choose_anchors(
        p.instruction_vectors, nuggets.NuggetsConfig(anchors=3)
    )
    assert scores.params["anchor_rows"] == [p.samples[a].row for a in anchors]


def test_perplexity_is_exp_of_the_loss():
    p = pool()
    high, fake = run("perplexity", p)
    low, _ = run("perplexity", p, order="low")
    expected = [math.exp(fake.loss(conditioned(s))) for s in p.samples]
    assert high.score.tolist() == pytest.approx(expected) and (low.score == high.score).all()
    assert high.higher_first and not low.higher_first  # the order, never a negated score


def test_a_compare_asks_each_distinct_request_once():
    p = pool()
    methods = [(get(name), get(name).configure({})) for name in ("ifd", "miwv", "perplexity")]
    fakes = [Fake() for _ in methods]
    together = drive_together(methods, p, fakes)
    sent = Counter(r for fake in fakes for call in fake.calls for r in call)
    assert sent and max(sent.values()) == 1
    # Each method still gets every answer it asked for: the same scores as alone.
    for (method, config), (scores, _) in zip(methods, together, strict=True):
        alone = drive(method, p, config, Fake())
        assert np.array_equal(scores.score, alone.score, equal_nan=True)
    # L(y|x), asked by all three: sent for IFD, answered from memory for MIWV and perplexity.
    assert (fakes[1].earlier, fakes[2].earlier) == (len(p), len(p))


def test_the_cost_answerer_picks_the_longest_probe_of_each_cluster():
    """Dry runs answer pessimistically, so wICI's difficult probes (the hardest member of each
    k-means cluster) are the longest: the estimate bounds the run's tokens from above."""
    p = pool(40, seed=3)
    method = get("wici")
    config = method.configure({"n_neighbours": 12, "n_probes": 3})
    length = np.array([len(s.prompt[0].content) for s in p.samples], dtype=float)
    counter = CostAnswerer(lambda r: len(r.prompt[0].content) if r.prompt else 0)
    scores = drive(method, p, config, counter)
    expected = wici.choose_probes(p.instruction_vectors, length, config)
    assert scores.components["probe_rows"] == [[p.samples[b].row for b in B] for B in expected]
    assert [len(r) for r in counter.rounds] == [2 * len(p), 3 * len(p)]


def test_the_shipped_methods_say_whether_they_ask_the_model():
    model = ("wici", "miwv", "icon", "ifd", "nuggets", "rds", "perplexity")
    assert [m for m in model if METHODS[m].uses_model] == list(model)
    assert not any(METHODS[m].uses_model for m in ("length", "random", "diversity"))


def test_icon_labels_by_quantile_as_the_code_or_by_count():
    from iclselect.methods.icon_classifier import top_labels

    values = np.array([1.0, 2.0, 2.0, 2.0, 3.0])
    # The 0.6 quantile, linearly interpolated, is 2.0: every tie at it is positive.
    assert top_labels(values, 0.4, "quantile").tolist() == [0, 1, 1, 1, 1]
    assert top_labels(values, 0.4, "top").tolist() == [0, 1, 0, 0, 1]
    assert top_labels(np.arange(1.0, 11.0), 0.15, "quantile").tolist() == [0] * 8 + [1, 1]


class Gpu(Fake):
    """A fake answerer on a machine where the paper's LoRA selector is practical."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[FitClassifier] = []

    def can_fit_classifier(self) -> bool:
        return True

    def fit_classifier(self, job: FitClassifier) -> np.ndarray:
        self.jobs.append(job)
        return np.linspace(0, 1, len(job.score_texts))


@pytest.mark.parametrize(("answerer", "kind"), [(Fake, "embedding"), (Gpu, "lora")])
def test_icon_auto_selector_is_lora_only_where_it_is_practical(tmp_path, answerer, kind):
    from conftest import write_json

    rows = [{"instruction": f"assess {k}", "input": "", "output": f"reply {k}"} for k in range(2)]
    path = write_json(tmp_path / "assessment.json", rows)
    p, fake = pool(30), answerer()
    method = get("icon")
    options = {"assessment": str(path), "exact": 20, "trust_selector": True}
    scores = drive(method, p, method.configure(options), fake)
    assert scores.params["selector_report"]["kind"] == kind
    if kind == "lora":
        assert [len(job.score_texts) for job in fake.jobs][-1] == len(p)


@pytest.mark.parametrize("name", ["ifd", "wici", "miwv", "perplexity"])
def test_min_tokens_leaves_short_responses_unranked_and_nothing_else(name):
    """iclselect's option against one-word answers: rows whose own response has fewer scored
    tokens are prefiltered with the count; every other row keeps its score."""
    p = pool(12)
    extra = {"drop_above_one": False} if name == "ifd" else {}
    plain, fake = run(name, p, **extra)
    short, _ = run(name, p, min_tokens=4, **extra)
    tokens = [fake.result(conditioned(s)).n_tokens for s in p.samples]
    assert 0 < sum(n < 4 for n in tokens) < len(p)
    for i, n in enumerate(tokens):
        if n < 4:
            assert math.isnan(short.score[i]) and short.excluded[i].reason == "prefiltered"
            assert short.excluded[i].detail == f"{n} response tokens < min_tokens 4"
        else:
            assert short.score[i] == plain.score[i] or (
                math.isnan(short.score[i]) and math.isnan(plain.score[i])
            )


class Oracle(Gpu):
    """A selector that answers with each candidate's exact significance (`sign` -1: its
    opposite), read from a run that scored every candidate exactly."""

    def __init__(self, significance: dict[str, float], sign: float) -> None:
        super().__init__()
        self.significance, self.sign = significance, sign

    def fit_classifier(self, job: FitClassifier) -> np.ndarray:
        return np.array([self.sign * self.significance[t] for t in job.score_texts])


@pytest.mark.parametrize(("sign", "trust"), [(1.0, False), (-1.0, False), (-1.0, True)])
def test_icon_ranks_with_a_selector_only_above_chance_unless_insisted(tmp_path, sign, trust):
    """Held-out agreement from the selector's own outputs: a perfect selector (AUC 1) ranks
    the pool; its mirror image (AUC 0) is refused, or with trust_selector ranks with a warning."""
    from conftest import write_json

    from iclselect.methods.icon_classifier import text

    rows = [{"instruction": f"assess {k}", "input": "", "output": f"reply {k}"} for k in range(2)]
    path = write_json(tmp_path / "assessment.json", rows)
    p = pool(60)
    exact, _ = run("icon", p, assessment=str(path), selector="none")
    significance = {text(s): exact.score[i] for i, s in enumerate(p.samples)}
    options = {"assessment": str(path), "exact": 50, "selector": "lora", "label_fraction": 0.4}
    options["trust_selector"] = trust
    method = get("icon")
    scores = drive(method, p, method.configure(options), Oracle(significance, sign))
    report = scores.params["selector_report"]
    assert report["held_out"] == 10 and report["held_out_auc"] == (1.0 if sign > 0 else 0.0)
    assert report["trusted"] is (sign > 0)
    if sign > 0:
        assert scores.refusal is None and scores.warnings == []
    elif trust:
        assert scores.refusal is None and len(scores.warnings) == 1
        assert "held-out AUC 0.00, Spearman -1.00 is at or below chance" in scores.warnings[0]
    else:
        assert scores.warnings == [] and scores.refusal.startswith(
            "icon: the lora selector will not rank the 10 rows without an exact score: its "
            "held-out AUC 0.00, Spearman -1.00 is at or below chance (0.5)."
        )


def test_loss_outliers_is_hampels_rule_by_hand():
    from iclselect.methods.guards import loss_outliers

    # Finite losses 1, 2, 2, 3, 10: median 2, absolute deviations 1, 0, 0, 1, 8, MAD 1, so the
    # limit is 2 + 3 x 1.4826 x 1 = 6.4478; the NaN is no outlier.
    found = loss_outliers(np.array([1.0, 2.0, 2.0, 3.0, 10.0, math.nan]))
    assert list(found) == [4]
    assert found[4].reason == "prefiltered"
    assert found[4].detail == "response loss 10.00 > 6.45 (median + 3 MADs)"
    assert loss_outliers(np.array([math.nan])) == {}


class Salad(Fake):
    """Fake's answers, except that sample 3's own response (after its own prompt, no demo)
    is word salad to the model: a loss far above every other row's."""

    @staticmethod
    def result(request: LogprobRequest) -> LogprobResult:
        answer = Fake.result(request)
        if request.prompt and request.prompt[0].content.startswith("task 3:") and not request.demos:
            return LogprobResult(-40.0 * answer.n_tokens, answer.n_tokens)
        return answer


@pytest.mark.parametrize("name", ["ifd", "miwv", "perplexity"])
def test_loss_outliers_guard_leaves_out_the_salad_row_and_nothing_else(name):
    p, method = pool(12), get(name)
    extra = {"drop_above_one": False} if name == "ifd" else {}
    plain = drive(method, p, method.configure(extra), Salad())
    guarded = drive(method, p, method.configure({**extra, "loss_outliers": True}), Salad())
    assert (
        guarded.excluded[3].reason == "prefiltered"
        and "median + 3 MADs" in guarded.excluded[3].detail
    )
    assert not math.isnan(plain.score[3])  # as published, the salad row is ranked
    others = [i for i in range(len(p)) if i != 3]
    assert all(i not in guarded.excluded for i in others if i not in plain.excluded)
    np.testing.assert_array_equal(guarded.score[others], plain.score[others])


def test_ifd_above_one_is_the_ratio_by_hand():
    from iclselect.methods.guards import ifd_above_one

    found = ifd_above_one(np.array([0.5, 1.0, 1.25, math.nan]))
    assert list(found) == [2]  # exactly 1 and NaN are not above 1
    assert found[2].reason == "prefiltered"
    assert found[2].detail == "IFD > 1: the instruction does not help"


@pytest.mark.parametrize("name", ["miwv", "perplexity"])
def test_prefilter_ifd_guard_leaves_out_the_rows_whose_instruction_does_not_help(name):
    """The rows with L(y|x) / L(y) > 1 in the fake's answers, and no other, are left out; the
    rest keep the paper's score. The guard asks L(y) too, one request a row."""
    p = pool(12)
    plain, fake = run(name, p)
    guarded, guarded_fake = run(name, p, prefilter_ifd=True)
    own = [fake.loss(conditioned(s)) / fake.loss(unconditioned(s)) for s in p.samples]
    above = {i for i, value in enumerate(own) if value > 1}
    assert above and len(above) < len(p)
    assert {i for i, e in guarded.excluded.items() if "IFD > 1" in e.detail} == above
    assert all(math.isnan(guarded.score[i]) for i in above)
    kept = [i for i in range(len(p)) if i not in above]
    np.testing.assert_array_equal(guarded.score[kept], plain.score[kept])
    asked = sum(len(c) for c in guarded_fake.calls) - sum(len(c) for c in fake.calls)
    assert asked == len(p)

"""Engine numbers against a plain forward pass, and equivalence of every speed trick.

Tolerance: 1e-4 on the mean per-token loss (fp32). Packing several requests into one row and
running a shared prefix once change matmul shapes, hence float summation order, and nothing
else."""

from __future__ import annotations

import random
import threading

import pytest
import torch
from conftest import samples_from

from iclselect.lm import Engine, LogprobRequest, Template
from iclselect.lm.pooled import pooled_states
from iclselect.lm.templates import Encoded
from iclselect.lm.window import Fit, fit
from iclselect.methods.loss_requests import conditioned, unconditioned
from iclselect.records import Turn

TOL = 1e-4


@pytest.fixture(scope="module")
def requests(demo_rows) -> list[LogprobRequest]:
    """A wICI-shaped workload: own IFD pairs, then probes with candidates as demos."""
    samples = samples_from(demo_rows[:6])
    reqs = [conditioned(s) for s in samples] + [unconditioned(s) for s in samples]
    for cand in samples[:2]:
        for probe in samples[3:6]:
            reqs += [conditioned(probe, cand.turns), unconditioned(probe, cand.turns)]
    return reqs


def engine(lm, name="chat", **kwargs) -> Engine:
    return Engine(lm, Template(name, lm.tokenizer), show_progress=False, **kwargs)


def losses(results) -> list[float]:
    return [r.loss for r in results]


def assert_close(a, b):
    worst = max(abs(x - y) for x, y in zip(a, b, strict=True))
    assert worst < TOL, f"max per-token loss difference {worst:.2e} >= {TOL}"


def test_matches_a_plain_full_vocabulary_forward(lm, requests):
    eng = engine(lm)
    results = eng.loglikelihood(requests[:4] + requests[-2:])
    for request, result in zip(requests[:4] + requests[-2:], results, strict=True):
        enc = eng.template.encode(request)
        ids = torch.tensor([enc.context_ids + enc.target_ids])
        with torch.no_grad():
            logprobs = torch.log_softmax(lm.model(ids).logits[0].double(), dim=-1)
        n = len(enc.context_ids)
        expected = sum(logprobs[n - 1 + k, token].item() for k, token in enumerate(enc.target_ids))
        assert result.n_tokens == len(enc.target_ids)
        assert abs(result.logprob - expected) / result.n_tokens < TOL


@pytest.mark.parametrize("name", ["chat", "plain"])
def test_batched_equals_one_at_a_time(lm, requests, name):
    one_at_a_time = engine(lm, name, max_batch_tokens=1, reuse_prefix=False)
    batched = engine(lm, name, max_batch_tokens=4096, reuse_prefix=False)
    assert_close(
        losses(one_at_a_time.loglikelihood(requests)), losses(batched.loglikelihood(requests))
    )


@pytest.mark.parametrize("budget", [48, 160, 4096])
def test_packed_trees_equal_one_request_per_pass(lm, requests, budget):
    """48 tokens: every tree is split, each part running its prefix again; 160: a few trees
    and lone requests share each row; 4096: everything in one row."""
    alone = engine(lm, max_batch_tokens=1, reuse_prefix=False)
    packed = engine(lm, max_batch_tokens=budget)
    units = packed._plan(requests).units
    assert all(unit.tokens <= budget or len(unit.jobs) == 1 for unit in units)
    if budget == 160:
        assert any(len(unit.trees) > 1 for unit in units)
    assert_close(losses(alone.loglikelihood(requests)), losses(packed.loglikelihood(requests)))


def test_prefix_reuse_equals_no_reuse(lm, requests):
    without = engine(lm, reuse_prefix=False).loglikelihood(requests)
    with_reuse = engine(lm, reuse_prefix=True).loglikelihood(requests)
    assert_close(losses(without), losses(with_reuse))


def test_results_follow_request_order_whatever_the_order(lm, requests):
    eng = engine(lm)
    shuffled = list(range(len(requests)))
    random.Random(0).shuffle(shuffled)
    straight = eng.loglikelihood(requests)
    permuted = eng.loglikelihood([requests[i] for i in shuffled])
    assert_close([straight[i].loss for i in shuffled], losses(permuted))


def test_identical_requests_get_identical_answers(lm, requests):
    results = engine(lm).loglikelihood([requests[0], requests[1], requests[0]])
    assert results[0] == results[2]
    assert results[0] != results[1]


def test_long_context_loses_the_demo_never_the_target(lm, requests):
    long_demo = (Turn("user", "word " * 400), Turn("assistant", "ok"))
    request = LogprobRequest(requests[0].prompt, requests[0].target, (long_demo,))
    eng = engine(lm, max_length=256)
    result = eng.loglikelihood([request])[0]
    full = eng.template.encode(request)
    assert result.n_tokens == len(full.target_ids)
    assert result.truncated == len(full.context_ids) + len(full.target_ids) - 256


def test_cost_is_exactly_the_work_done(lm, requests):
    eng = engine(lm)
    cost = eng.cost(requests + requests[:3])
    assert (cost.requests, cost.distinct, cost.stored) == (len(requests) + 3, len(requests), 0)
    eng.loglikelihood(requests)
    assert eng.stats["tokens"] == cost.tokens
    assert eng.flops == pytest.approx(cost.flops, rel=1e-9)
    no_reuse = engine(lm, reuse_prefix=False).cost(requests)
    assert no_reuse.tokens > cost.tokens and no_reuse.flops > cost.flops


def test_chunked_scoring_equals_one_pass(lm, requests, monkeypatch):
    """Requests are tokenised and run a chunk at a time (memory stays flat on huge pools), each
    chunk after the first deduplicated and tokenised on a thread while the one before it runs,
    each request's content key hashed once; chunk boundaries change batch shapes only."""
    whole = engine(lm).loglikelihood(requests)
    chunked_engine = engine(lm, chunk=5)
    threads = []
    encode = chunked_engine.template.encode
    hashed = []
    key = LogprobRequest.key

    def recorded(request):
        threads.append(threading.current_thread().name)
        return encode(request)

    def counted(request):
        hashed.append(request)
        return key(request)

    monkeypatch.setattr(chunked_engine.template, "encode", recorded)
    monkeypatch.setattr(LogprobRequest, "key", counted)
    chunked = chunked_engine.loglikelihood(requests)
    assert len(hashed) == len(requests)
    monkeypatch.undo()
    # The first chunk is tokenised where it runs; every later one ahead, on the thread.
    assert threads.count(threading.main_thread().name) == 5
    assert len(threads) == len({r.key() for r in requests}) > 5
    assert_close(losses(whole), losses(chunked))
    assert [r.n_tokens for r in whole] == [r.n_tokens for r in chunked]
    assert chunked_engine.stats["requests"] == len(requests)
    assert engine(lm, chunk=5).cost(requests).requests == len(requests)


def test_truncated_answers_are_counted(lm, requests):
    short = engine(lm, max_length=48)
    results = short.loglikelihood(requests)
    cut = sum(1 for r in results if r.truncated)
    assert cut > 0 and short.stats["truncated"] == cut


def test_flex_kernel_equals_the_loop_in_the_engine(lm, requests):
    """The GPU attention kernel (compiled flex attention), run here on the CPU, gives the loop's
    answers on the real model: one candidate as the demo of three probes (a shared prefix),
    grouped-query heads. One row: flex attention on a CPU compiles slowly and runs slowly."""
    probes = requests[-6:]
    assert_close(
        losses(engine(lm, attention="flex").loglikelihood(probes)),
        losses(engine(lm, attention="loop").loglikelihood(probes)),
    )


def test_out_of_memory_halves_the_row_and_loses_nothing(lm, requests, tmp_path, monkeypatch):
    """An injected out-of-memory on any pass over a third of the workload (or over its longest
    request, which no split can shorten): the engine
    splits passes (whole trees apart, then one tree's probes apart) until they fit, every
    request is answered once (the store holds each distinct request once) with the numbers of
    an unsplit run, and the splits are counted."""
    requests = requests[:2] + requests[-6:]  # two own IFD pairs, then three demo probes
    expected = losses(engine(lm).loglikelihood(requests))
    eng = engine(lm, store_path=tmp_path / "store")
    forward, rows = eng.kernel._forward, []
    limit = max(eng.cost(requests).tokens // 3, *(eng.cost([r]).tokens for r in requests))

    def small_rows_only(unit):
        if unit.tokens > limit:
            raise torch.OutOfMemoryError("injected")
        rows.append(unit.tokens)
        return forward(unit)

    monkeypatch.setattr(eng.kernel, "_forward", small_rows_only)
    assert_close(losses(eng.loglikelihood(requests)), expected)
    assert eng.stats["oom_splits"] > 0
    assert max(rows) <= limit
    distinct = len({r.key() for r in requests})
    assert eng.stats["computed"] == distinct
    assert len(eng.store.get([eng.store.key(r.key()) for r in requests])) == distinct


def test_out_of_memory_on_a_single_request_is_raised(lm, monkeypatch):
    """A request that alone does not fit cannot be split: the error reaches the user."""
    eng = engine(lm)

    def no_memory(unit):
        raise torch.OutOfMemoryError("injected")

    monkeypatch.setattr(eng.kernel, "_forward", no_memory)
    with pytest.raises(torch.OutOfMemoryError):
        eng.loglikelihood([LogprobRequest((Turn("user", "Say hi."),), "Hi!")])


def test_the_window_cuts_context_from_the_left_and_knows_when_no_text_is_left():
    """Context of 10 tokens whose message text ends at token 8 (2 markup tokens follow),
    target of 5."""
    encoded = Encoded(tuple(range(10)), tuple(range(100, 105)), text_end=8)
    assert fit(encoded, 15) == Fit(0, 0, False)
    assert fit(encoded, 8) == Fit(7, 0, False)  # 1 text token and the markup are left
    assert fit(encoded, 7) == Fit(8, 0, True)  # markup alone conditions the target
    assert fit(encoded, 4) == Fit(9, 2, True)  # target cut at its end; 1 context token stays
    bare = Encoded((1, 2), (3,), text_end=0)  # L(y): the response header, no text to lose
    assert fit(bare, 2).text_lost is False


@pytest.mark.parametrize("weighting", ["mean", "position"])
def test_pooled_states_are_each_sequences_own_mean_whatever_the_padding(lm, requests, weighting):
    """Nuggets' model-space anchors (a plain mean) and RDS+'s states (token t weighs t):
    padding a batch must not move any row's pooled state."""
    eng = engine(lm, max_length=64)
    chosen = requests[:3] + requests[-3:]
    pooled = pooled_states(eng, chosen, weighting)
    for request, row in zip(chosen, pooled, strict=True):
        enc = eng.template.encode(request)
        cut = fit(enc, 64)
        ids = (enc.context_ids + enc.target_ids)[cut.context_cut :][:64]
        with torch.no_grad():
            last = lm.model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1]
        weights = torch.ones(len(ids), dtype=torch.float64)
        if weighting == "position":
            weights = torch.arange(1, len(ids) + 1, dtype=torch.float64)
        alone = (last[0].double() * weights[:, None]).sum(0) / weights.sum()
        alone = (alone / alone.norm()).numpy()
        assert abs(row - alone).max() < TOL

"""Each model method against an independent oracle: token ids built with the tokenizer directly
(its own chat template, the response tokenised on its own; no Template, no engine), one plain
Hugging Face forward per request with a full-vocabulary log-softmax, and the paper's formula
applied by hand. The methods' per-row scores must match to 1e-4 (fp32), with the default
tokenizer (no BOS) and with a variant whose chat template starts with a BOS token."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import pool_of, samples_from, scored_by, shortest

from iclselect.lm import Engine, Template, load_model
from iclselect.lm.model import LoadedModel
from iclselect.methods import Pool, icon, nuggets, wici
from iclselect.methods.registry import get
from iclselect.records import Sample

REL, ABS = 1e-4, 1e-6
HEADER = "<|im_start|>assistant\n"  # ChatML's response header: L(y) is scored after it alone


@pytest.fixture(scope="module")
def fp32() -> LoadedModel:
    return load_model(dtype="fp32", device="cpu")


@pytest.fixture(scope="module", params=["default", "bos"])
def oracle(request, fp32):
    """(engine of the method under test, oracle log-prob function) for one tokenizer."""
    tokenizer = copy.deepcopy(fp32.tokenizer)
    if request.param == "bos":
        tokenizer.bos_token = "<|endoftext|>"
        tokenizer.chat_template = "{{ bos_token }}" + tokenizer.chat_template
    model = fp32.model
    loaded = LoadedModel(model, tokenizer, f"{fp32.model_id}+{request.param}")
    engine = Engine(loaded, Template("chat", tokenizer), show_progress=False)
    bos = [tokenizer.bos_token_id] if request.param == "bos" else []

    @torch.inference_mode()
    def logprob(demos: list[Sample], sample: Sample | None, response: str) -> tuple[float, int]:
        """log p(response | demos as earlier exchanges, then sample's prompt), and the number
        of response tokens; sample None and no demos: after the bare response header."""
        messages = [{"role": t.role, "content": t.content} for d in demos for t in d.turns] + (
            [{"role": t.role, "content": t.content} for t in sample.prompt] if sample else []
        )
        if messages:
            context = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        else:
            context = bos + tokenizer(HEADER, add_special_tokens=False).input_ids
        target = tokenizer(response, add_special_tokens=False).input_ids
        ids = torch.tensor([list(context) + target])
        logits = model(ids).logits[0, len(context) - 1 : -1].float()
        scores = torch.log_softmax(logits, dim=-1)
        return float(scores[torch.arange(len(target)), torch.tensor(target)].sum()), len(target)

    return engine, logprob


@pytest.fixture(scope="module")
def pool(demo_rows, embedder) -> Pool:
    return pool_of(samples_from(shortest(demo_rows, 6)), embedder)


def cond(logprob, s: Sample, demo: Sample | None = None) -> float:
    """L(y_s | demo, x_s)"""
    total, n = logprob([demo] if demo else [], s, s.response)
    return -total / n


def alone(logprob, s: Sample) -> float:
    """L(y_s)"""
    total, n = logprob([], None, s.response)
    return -total / n


def test_ifd(oracle, pool):
    engine, logprob = oracle
    scores = scored_by("ifd", pool, engine, get("ifd").configure({"drop_above_one": "false"}))
    for i, s in enumerate(pool.samples):
        expected = cond(logprob, s) / alone(logprob, s)
        assert scores.score[i] == pytest.approx(expected, rel=REL, abs=ABS)


def test_perplexity(oracle, pool):
    engine, logprob = oracle
    scores = scored_by("perplexity", pool, engine, get("perplexity").configure({}))
    for i, s in enumerate(pool.samples):
        assert scores.score[i] == pytest.approx(math.exp(cond(logprob, s)), rel=REL)


def test_miwv(oracle, pool):
    engine, logprob = oracle
    scores = scored_by("miwv", pool, engine, get("miwv").configure({}))
    vectors = pool.instruction_vectors
    for i, s in enumerate(pool.samples):
        similarity = vectors @ vectors[i]
        similarity[i] = -np.inf
        demo = pool.samples[int(similarity.argmax())]
        with_demo, alone_ = cond(logprob, s, demo), cond(logprob, s)
        # A difference of two losses: each matches to REL, so the difference to REL of their
        # size, not of its own (a gap of 0.1 between losses of 2 carries 20x their error).
        tolerance = REL * (abs(with_demo) + abs(alone_))
        assert scores.score[i] == pytest.approx(with_demo - alone_, abs=tolerance)


def test_wici_with_probes_a_strict_subset_of_the_neighbours(oracle, pool):
    """Difficult probes: 2 of the 4 nearest, one per k-means cluster, the highest IFD of each."""
    engine, logprob = oracle
    config = get("wici").configure({"n_neighbours": 4, "n_probes": 2})
    scores = scored_by("wici", pool, engine, config)
    samples, vectors = pool.samples, pool.instruction_vectors
    own = np.array([cond(logprob, s) / alone(logprob, s) for s in samples])
    probes = wici.choose_probes(vectors, own, config)
    for i, candidate in enumerate(samples):
        assert (
            len(probes[i]) == 2
            and [samples[b].row for b in probes[i]] == (scores.components["probe_rows"][i])
        )
        total = 0.0
        for b in probes[i]:
            in_context = cond(logprob, samples[b], candidate) / alone(logprob, samples[b])
            total += (1 - float(vectors[i] @ vectors[b])) / (2 * 2) * (own[b] - in_context)
        assert scores.score[i] == pytest.approx(total, rel=1e-3, abs=1e-5)


def test_nuggets(oracle, pool):
    engine, logprob = oracle
    config = get("nuggets").configure({"anchors": 2})
    scores = scored_by("nuggets", pool, engine, config)
    anchors = nuggets.choose_anchors(pool.instruction_vectors, config)
    samples = pool.samples
    for c, candidate in enumerate(samples):
        others = [a for a in anchors if a != c]
        wins = sum(
            logprob([candidate], samples[a], samples[a].response)[0]
            > logprob([], samples[a], samples[a].response)[0]
            for a in others
        )
        assert scores.score[c] == wins / len(others)


def test_icon(oracle, pool, short_assessment):
    engine, logprob = oracle
    config = get("icon").configure({"assessment": str(short_assessment), "selector": "none"})
    scores = scored_by("icon", pool, engine, config)
    assessment, _ = icon.load_assessment(str(short_assessment))

    def ppl(s: Sample, demo: Sample | None) -> float:
        return math.exp(cond(logprob, s, demo))

    for c, candidate in enumerate(pool.samples):
        influence = np.array(
            [
                (
                    ppl(s, Sample(c, icon.random_control(candidate, config.seed, s)))
                    - ppl(s, candidate)
                )
                / (ppl(s, None) + 1e-6)
                for s in assessment
            ]
        )
        assert scores.score[c] == pytest.approx(influence.mean(), rel=1e-3, abs=1e-5)

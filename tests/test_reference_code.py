"""`--template reference` against ports of the authors' own code (tests/reference_ports.py) on
real Alpaca rows, in fp32. Where the two tokenise alike (no token straddles the prompt/response
boundary), the requests are the code's own sequences, so the losses agree to 1e-4; what differs
by design (the first response token of wICI's L(y), which iclselect scores) is left out here
and measured at scale by scripts/reference_check.py (BENCHMARKS.md)."""

from __future__ import annotations

import json
import math

import pytest
import reference_ports as ports
from conftest import POOL_DATA, write_json
from scipy.stats import spearmanr

from iclselect.io import read_dataset
from iclselect.lm import Engine, Template
from iclselect.methods.ifd import conditioned, unconditioned

TOL = 1e-4


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return json.loads(POOL_DATA.read_text(encoding="utf-8"))[:10]


@pytest.fixture(scope="module")
def reference_engine(lm) -> Engine:
    return Engine(lm, Template("reference", lm.tokenizer), show_progress=False)


@pytest.fixture(scope="module")
def samples(rows, tmp_path_factory):
    path = write_json(tmp_path_factory.mktemp("rows") / "rows.json", rows)
    return read_dataset(str(path)).samples


def split_alike(tokenizer, prompt: str, response: str) -> bool:
    joined = tokenizer(prompt + response).input_ids
    return joined == tokenizer(prompt).input_ids + tokenizer(response).input_ids


def test_cherry_ifd_is_the_codes_on_every_row_tokenised_alike(lm, reference_engine, rows, samples):
    answers = reference_engine.loglikelihood(
        [conditioned(s, style="cherry") for s in samples]
        + [unconditioned(s, style="cherry") for s in samples]
    )
    n = len(samples)
    ours, theirs, compared = [], [], 0
    for k, row in enumerate(rows):
        code = ports.cherry_ifd(lm.model, lm.tokenizer, row)
        cond, alone = answers[k], answers[n + k]
        ours.append(cond.loss / alone.loss)
        theirs.append(code["ifd"])
        prompt = ports.CHERRY_PROMPT_INPUT if row["input"] else ports.CHERRY_PROMPT_NO_INPUT
        if split_alike(lm.tokenizer, prompt.format_map(row), row["output"]):
            compared += 1
            assert cond.loss == pytest.approx(code["mean_loss_condition"], abs=TOL)
            assert alone.loss == pytest.approx(code["mean_loss_alone"], abs=TOL)
    assert compared >= 8
    finite = [(a, b) for a, b in zip(ours, theirs, strict=True) if math.isfinite(b)]
    assert spearmanr(*zip(*finite, strict=True)).statistic >= 0.99


def test_wici_in_context_perplexity_is_the_codes(lm, reference_engine, rows, samples):
    """PPL(y_b | a_i, x_b) and PPL(y_b | x_b) as ICL-influence-new.py computes them."""
    pairs = [(0, 1), (2, 3), (4, 5)]
    requests = [conditioned(samples[b], samples[a].turns, "wici") for a, b in pairs]
    requests += [conditioned(samples[b], style="wici") for _, b in pairs]
    answers = reference_engine.loglikelihood(requests)
    compared = 0
    for k, (a, b) in enumerate(pairs):
        context = ports.wici_prompt(rows[a]) + rows[a]["output"] + ports.wici_prompt(rows[b])
        if not split_alike(lm.tokenizer, context, rows[b]["output"]):
            continue
        compared += 1
        output = rows[b]["output"]
        with_demo = ports.wici_ppl_conditional(lm.model, lm.tokenizer, context + output, output)
        alone = ports.wici_ppl_conditional(
            lm.model, lm.tokenizer, ports.wici_prompt(rows[b]) + output, output
        )
        assert answers[k].perplexity == pytest.approx(with_demo, rel=TOL)
        assert answers[len(pairs) + k].perplexity == pytest.approx(alone, rel=TOL)
    assert compared >= 2

"""--executor vllm: vLLM's prompt log-probs against the HF engine on the same real 200-row
slice. Needs a CUDA GPU and vLLM; skipped, with the reason, anywhere else."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import POOL_DATA, samples_from

from iclselect.lm import Engine, Template, load_model
from iclselect.methods.loss_requests import conditioned

if not torch.cuda.is_available():
    pytest.skip("the vLLM backend needs a CUDA GPU; none is visible", allow_module_level=True)
pytest.importorskip("vllm", reason="the vLLM backend needs the vllm extra")


def test_vllm_scores_match_the_hf_engine():
    from scipy.stats import spearmanr

    from iclselect.lm.model import resolve
    from iclselect.lm.vllm_executor import VllmExecutor

    samples = samples_from(json.loads(POOL_DATA.read_text(encoding="utf-8"))[:200])
    requests = [conditioned(s) for s in samples]
    loaded = load_model(dtype="bf16", device="cuda")
    template = Template("chat", loaded.tokenizer)
    hf = [r.loss for r in Engine(loaded, template, show_progress=False).loglikelihood(requests)]
    executor = VllmExecutor(resolve("smollm2-135m-instruct").location, "bf16", 2048, 0.3)
    engine = Engine(loaded, template, show_progress=False, executor=executor)
    fast = [r.loss for r in engine.loglikelihood(requests)]
    # bf16 on both sides, different kernels: the ranking holds, values agree to bf16 rounding.
    assert spearmanr(hf, fast).statistic >= 0.99
    assert max(abs(a - b) for a, b in zip(hf, fast, strict=True)) < 0.05

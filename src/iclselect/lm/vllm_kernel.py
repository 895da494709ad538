"""The vLLM kernel (`--executor vllm`, extra `iclselect[vllm]`): units scored by vLLM on a GPU.

The engine still plans, deduplicates, truncates and commits to the store; vLLM only scores
whole sequences: each job goes in as token ids and its prompt log-probs are read at the target
positions. Requests carrying prompt log-probs bypass vLLM's prefix cache (vLLM V1 recomputes
them; vllm-project/vllm#17251, #23399), so on this path the shared prefixes are recomputed and
the speed comes from vLLM's kernels and continuous batching. Its numbers differ from the HF
path by kernel rounding only; answers are stored under their own namespace, never mixed with
the HF path's.

Written against vLLM's documented offline API (LLM.generate with TokensPrompt and
SamplingParams(prompt_logprobs=0)); tests/test_vllm.py checks it against the HF engine where a
CUDA GPU and vLLM are present, and skips with the reason elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from iclselect.errors import UsageError

if TYPE_CHECKING:
    from iclselect.lm.packer import Unit

# Units handed to vLLM per generate call: enough sequences for its scheduler to batch well,
# few enough that answers reach the store (and the progress bar) steadily.
_UNITS_PER_CALL = 64
_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class VllmKernel:
    backend = "vllm"

    def __init__(
        self, model_dir: str, dtype: str, max_length: int, gpu_memory_utilization: float = 0.85
    ) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise UsageError(
                "--executor vllm needs vLLM and a CUDA GPU: pip install 'iclselect[vllm]'"
            ) from None
        self.llm = LLM(
            model=model_dir,
            tokenizer=model_dir,
            dtype=_DTYPES[dtype],
            max_model_len=max_length + 1,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=False,
            seed=0,
        )
        # One generated token is the least vLLM will run; prompt_logprobs=0 returns the
        # log-prob of each prompt token itself and no alternatives.
        self.params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)

    def run(self, units: list[Unit]) -> Iterator[tuple[Unit, list[float]]]:
        from vllm.inputs import TokensPrompt

        for start in range(0, len(units), _UNITS_PER_CALL):
            chunk = units[start : start + _UNITS_PER_CALL]
            jobs = [job for unit in chunk for job in unit.jobs]
            prompts = [TokensPrompt(prompt_token_ids=[*j.context, *j.target]) for j in jobs]
            outputs = self.llm.generate(prompts, self.params, use_tqdm=False)
            sums = iter(
                sum(
                    out.prompt_logprobs[p][prompt["prompt_token_ids"][p]].logprob
                    for p in range(len(job.context), job.length)
                )
                for job, prompt, out in zip(jobs, prompts, outputs, strict=True)
            )
            for unit in chunk:
                yield unit, [next(sums) for _ in unit.jobs]

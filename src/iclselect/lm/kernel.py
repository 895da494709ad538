"""The forward kernel: computes units (packed rows, lm/packer.py) into per-job log-prob sums.

Every process that computes builds its kernel with `make_kernel(spec)`: the driver (around the
model it already holds), each Ray worker (loading the model the spec names) and the vLLM path
(`backend="vllm"`, lm/vllm_kernel.py). A kernel knows nothing of requests, the store or
progress; it turns units into numbers, the same numbers wherever it runs. `backend="random"`
runs no model: it lays each row out as the HF kernel does and draws its answers from a seeded
stream, so `bench pipeline` times every host stage of a run with the model's time taken out.

The HF kernel runs the LM head and log-softmax only at the positions that predict target
tokens, in chunks small enough to stay in cache, never over the whole row; a pass that runs out
of device memory is split in two halves of its row, each retried the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from iclselect.errors import UsageError
from iclselect.infra.stages import stage
from iclselect.lm.packed import KERNELS, Row, Segment, check_all_layers, default_kernel, packed
from iclselect.lm.packed import to_device as _to_device
from iclselect.lm.packer import Unit, halves, layout

if TYPE_CHECKING:
    from iclselect.lm.model import LoadedModel

# Target positions whose full-vocabulary logits are computed at once. On a CPU the log-softmax
# is bound by memory traffic: 128 rows (25 MB of float32 logits for a 49k vocabulary) ran the
# head 1.9x faster than 1024 rows; on a GPU larger chunks keep the device busy.
_HEAD_CHUNK_CPU = 128
_HEAD_CHUNK_GPU = 1024
# Tokens per packed forward pass by default. On 2 CPU cores the wICI workload in bf16 ran at
# 524 / 569 / 549 / 465 model GFLOP/s with rows of 1024 / 2048 / 4096 / 8192 tokens (taller
# rows push each layer's activations out of cache); a GPU wants rows as tall as memory allows.
_ROW_TOKENS_CPU = 2048
_ROW_TOKENS_GPU = 16384


def row_tokens(device: torch.device) -> int:
    """Tokens per packed forward pass by default on `device`."""
    return _ROW_TOKENS_CPU if device.type == "cpu" else _ROW_TOKENS_GPU


@dataclass(frozen=True, kw_only=True)
class KernelSpec:
    """What a kernel computes with: enough for a worker process to load the very model."""

    model: str  # a name or directory load_model resolves (vLLM: the model directory)
    model_id: str | None  # the driver's, weights fingerprint included: a load must match it
    # What a load uses: resolved (fp32, bf16, fp16), never auto, so every worker computes
    # alike. A kernel around an already loaded model (the driver's) only records it.
    dtype: str
    device: str
    max_batch_tokens: int | None = None  # None: the default for the device (row_tokens)
    threads: int = 0  # torch threads of a worker process; 0 leaves torch's own
    attention: str = "auto"  # "auto" (the faster on the device) or one of packed.KERNELS
    backend: str = "hf"  # "hf" (the packed forward here), "vllm" or "random" (no model)
    max_length: int = 2048  # vLLM's window
    gpu_memory_utilization: float = 0.85  # vLLM's share of the GPU


class Kernel(Protocol):
    backend: str  # answers of another backend differ by kernel rounding: not stored together

    def run(self, units: list[Unit]) -> Iterator[tuple[Unit, list[float]]]:
        """Each unit with its log-prob sums (one per job, in unit.jobs order), in any order."""
        ...


def make_kernel(
    spec: KernelSpec, loaded: LoadedModel | None = None, stats: dict[str, int] | None = None
) -> Any:
    """The kernel `spec` names. `loaded`: the model already in this process (the driver's);
    None loads spec.model. `stats`: where the kernel counts its out-of-memory splits."""
    if spec.backend == "vllm":
        from iclselect.lm.vllm_kernel import VllmKernel

        return VllmKernel(spec.model, spec.dtype, spec.max_length, spec.gpu_memory_utilization)
    if spec.backend == "random":
        return RandomKernel()
    if spec.backend != "hf":
        raise UsageError(f"kernel backend must be hf, vllm or random; got {spec.backend!r}")
    if loaded is None:
        from iclselect.lm.model import load_model

        if spec.threads:
            torch.set_num_threads(spec.threads)
        loaded = load_model(spec.model, spec.dtype, spec.device)
        if spec.model_id is not None and loaded.model_id != spec.model_id:
            raise RuntimeError(f"worker loaded {loaded.model_id}, the driver {spec.model_id}")
    return ForwardKernel(loaded.model, spec.attention, spec.max_batch_tokens, stats)


class ForwardKernel:
    """Packed forward passes of a Hugging Face causal LM (its attention swapped for packed
    attention, lm/packed.py)."""

    backend = "hf"

    def __init__(
        self,
        model: torch.nn.Module,
        attention: str = "auto",
        max_batch_tokens: int | None = None,
        stats: dict[str, int] | None = None,
    ) -> None:
        self.model = model
        self._base = model.base_model
        self._head = model.get_output_embeddings()
        self.device = next(model.parameters()).device
        self.max_batch_tokens = max_batch_tokens or row_tokens(self.device)
        self._head_chunk = _HEAD_CHUNK_CPU if self.device.type == "cpu" else _HEAD_CHUNK_GPU
        if attention not in ("auto", *KERNELS):
            raise UsageError(f"attention must be auto, {' or '.join(KERNELS)}; got {attention!r}")
        # The kernels agree to float rounding (tests/test_packed.py), as two devices do: the
        # store key does not name the kernel.
        self.attention = default_kernel(self.device) if attention == "auto" else attention
        # oom_splits: forward passes that ran out of device memory and were split in two.
        self.stats = stats if stats is not None else {"oom_splits": 0}

    def run(self, units: list[Unit]) -> Iterator[tuple[Unit, list[float]]]:
        """Each pass is launched before the previous one's answers are read back, so a GPU is
        never idle while the host lays out the next row."""
        previous = None
        for unit in units:
            with stage("model forward"):
                launched = (unit, self.launch(unit))
                answers = previous[1].tolist() if previous is not None else None
            if previous is not None:
                yield previous[0], answers
            previous = launched
        if previous is not None:
            with stage("model forward"):
                answers = previous[1].tolist()
            yield previous[0], answers

    def compute(self, unit: Unit) -> list[float]:
        """Sum of target log-probs of every job of `unit`, in unit.jobs order."""
        return self.launch(unit).tolist()

    def launch(self, unit: Unit) -> torch.Tensor:
        """compute(unit) as float64 sums on the model's device, queued and not waited for: on a
        GPU the host lays out the next pass while this one runs. A pass that runs out of device
        memory is split into two halves of its row, each retried the same way."""
        try:
            return self._forward(unit)
        except torch.OutOfMemoryError:
            if len(unit.jobs) == 1:
                raise
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if not self.stats["oom_splits"]:
            tqdm.write(
                f"out of memory on a {unit.tokens}-token row: splitting such rows in halves "
                f"(a smaller --max-batch-tokens than {self.max_batch_tokens} avoids the retries)",
                file=sys.stderr,
            )
        self.stats["oom_splits"] += 1
        return torch.cat([self.launch(half) for half in halves(unit)])

    @torch.inference_mode()
    def _forward(self, unit: Unit) -> torch.Tensor:
        row = layout(unit)
        segments = [Segment(*segment) for segment in row.segments]
        position_ids = self._to_device(row.positions)
        with packed(self.model, self.attention):
            hidden = self._base(
                input_ids=self._to_device([row.ids]),
                position_ids=position_ids[None],
                use_cache=False,
                row=Row(segments, position_ids),
            ).last_hidden_state[0]
        check_all_layers(self.model)
        token_logprobs = self._target_logprobs(
            hidden[self._to_device(row.picks)], self._to_device(row.targets)
        )
        sums = torch.zeros(row.jobs, dtype=torch.float64, device=self.device)
        sums.index_add_(0, self._to_device(row.owners), token_logprobs.double())
        return sums

    def _to_device(self, values: list[int] | list[list[int]]) -> torch.Tensor:
        # Always integers, an empty list too (a job whose code's cut left no token to score).
        return _to_device(torch.tensor(values, dtype=torch.long), self.device)

    def _target_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) at each row of `hidden`, a chunk of rows at a time."""
        out = torch.empty(len(targets), dtype=torch.float32, device=self.device)
        for start in range(0, len(targets), self._head_chunk):
            stop = start + self._head_chunk
            logits = self._head(hidden[start:stop]).float()
            # log_softmax's value at the target, without writing the whole log_softmax out.
            picked = logits.gather(1, targets[start:stop, None]).squeeze(1)
            out[start:stop] = picked - torch.logsumexp(logits, dim=-1)
        return out


class RandomKernel:
    """No model: each pass laid out as the HF kernel lays it out (host work a run does per
    pass), then each job's log-prob sum drawn from a seeded stream, -0.5 to -3 nats a target
    token. For timing the host side only: its answers mean nothing."""

    backend = "random"

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def run(self, units: list[Unit]) -> Iterator[tuple[Unit, list[float]]]:
        for unit in units:
            yield unit, self.compute(unit)

    def compute(self, unit: Unit) -> list[float]:
        with stage("pack"):
            layout(unit)
        lengths = np.array([len(job.target) for job in unit.jobs])
        return (-lengths * self._rng.uniform(0.5, 3.0, len(lengths))).tolist()

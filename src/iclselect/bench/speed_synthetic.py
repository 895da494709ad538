"""`iclselect bench speed --synthetic`: the engine's speed on a wICI-shaped workload of random
tokens, on models of shipped configs with random weights (bench/synthetic.py), so it runs on a
machine with only PyTorch and transformers, and no weights or data travel.

Per model, in one process, on the same requests:
- reference loop: one request per forward pass, fp32, full-vocabulary logits (the public
  scripts' way; also the fp32 reference every other arm is checked against);
- Hugging Face padded batch: length-sorted, right-padded batches with the model's own SDPA
  attention, in the engine's dtype;
- the engine with each packed-attention kernel (loop, flex), in the engine's dtype.
The padded-batch arm runs the workload once untimed first, and each engine arm one pass per row
size (kernel compilation, allocator warm-up).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

import torch

from iclselect.bench.speed import Arm, measure, padded_batches, peak_gflops, reference_loop
from iclselect.bench.synthetic import random_model, wici_workload
from iclselect.lm.engine import Engine
from iclselect.lm.flops import FlopModel
from iclselect.lm.model import LoadedModel, cache_dir
from iclselect.lm.packed import KERNELS
from iclselect.lm.precision import (
    DTYPES,
    cpu_name,
    dtype_name,
    resolve_device,
    resolve_dtype,
)

# Llama-3-8B's shapes, to turn a measured rate into an estimate for the papers' model size.
_LLAMA_8B = FlopModel(matmul_params=6_979_588_096, layers=32, hidden=4096, vocab=128_256)
ALPACA_ROWS = 52_002


@dataclass(kw_only=True)
class ModelResult:
    config: str
    requests: int
    distinct: int
    tokens: int
    arms: list[Arm]
    errors: dict[str, str]
    agreement: dict[str, tuple[float, float]]  # arm -> (Spearman, max |difference|) vs fp32
    peaks: dict[str, float]  # dtype name -> measured matmul GFLOP/s
    rows: int
    flop_model: FlopModel

    def summary(self, dtype: str) -> dict[str, Any]:
        reference = self.arms[0]
        arms = {}
        for arm in self.arms:
            peak = self.peaks["fp32" if arm is reference else dtype]
            arms[arm.name] = {
                "seconds": round(arm.seconds, 3),
                "tokens_per_s": round(self.tokens / arm.seconds),
                "speedup_vs_reference": round(reference.seconds / arm.seconds, 2),
                "model_tflops": round(arm.flops / arm.seconds / 1e12, 2),
                "mfu": round(arm.flops / arm.seconds / 1e9 / peak, 3),
                "peak_device_mb": round(arm.peak_device_mb),
                "peak_rss_mb": round(arm.peak_rss_mb),
                **(
                    {
                        "spearman_vs_fp32": round(self.agreement[arm.name][0], 5),
                        "max_abs_diff_vs_fp32": float(f"{self.agreement[arm.name][1]:.3g}"),
                    }
                    if arm.name in self.agreement
                    else {}
                ),
            }
        return {
            "config": self.config,
            "requests": self.requests,
            "distinct": self.distinct,
            "tokens": self.tokens,
            "peak_gflops": {k: round(v) for k, v in self.peaks.items()},
            "arms": arms,
            "errors": self.errors,
        }


def run_synthetic(
    configs: list[str],
    *,
    rows: int,
    n_probes: int,
    dtype: str,
    device: str,
    max_batch_tokens: int | None,
    command: str,
) -> tuple[str, dict[str, Any]]:
    """The Markdown report (naming `command`, the line that ran it) and the results as one
    JSON-able dict."""
    target = resolve_device(device)
    engine_dtype = resolve_dtype(dtype, target, cache_dir())
    engine_dtype_name = dtype_name(engine_dtype)
    results = [
        _run_model(
            config,
            rows=rows,
            n_probes=n_probes,
            dtype=engine_dtype,
            device=target,
            max_batch_tokens=max_batch_tokens,
        )
        for config in configs
    ]
    machine = (
        f"GPU {torch.cuda.get_device_name(target)}"
        if target.type == "cuda"
        else f"CPU {cpu_name()} ({platform.machine()}), {torch.get_num_threads()} threads"
    )
    summary = {
        "bench": "speed-synthetic",
        "date": date.today().isoformat(),
        "device": machine,
        "torch": torch.__version__,
        "dtype": engine_dtype_name,
        "rows": rows,
        "probes": n_probes,
        "models": [result.summary(engine_dtype_name) for result in results],
        "estimate_8b_alpaca_hours": _estimate_8b(results),
    }
    return _markdown(summary, command), summary


def _run_model(
    config: str,
    *,
    rows: int,
    n_probes: int,
    dtype: torch.dtype,
    device: torch.device,
    max_batch_tokens: int | None,
) -> ModelResult:
    reference_model = random_model(config, torch.float32, device)
    model = random_model(config, dtype, device)
    workload = wici_workload(rows, n_probes, reference_model.config.vocab_size)
    requests, template = workload.requests, workload.template
    distinct = {r.key(): template.encode(r) for r in requests}
    tokens = sum(len(e.context_ids) + len(e.target_ids) for e in distinct.values())
    peaks = {name: peak_gflops(DTYPES[name], device) for name in {"fp32", dtype_name(dtype)}}
    loaded = LoadedModel(model, None, f"random:{config}")
    engines = {
        kernel: Engine(loaded, template, max_batch_tokens, show_progress=False, attention=kernel)
        for kernel in KERNELS
    }
    row_tokens = engines["loop"].max_batch_tokens

    arms: list[Arm] = []
    errors: dict[str, str] = {}

    def attempt(name: str, work: Any, warm_up: bool = False) -> None:
        try:
            if warm_up:
                work()
            arms.append(measure(name, work))
        # One arm's failure (a kernel that does not compile on this device, say) is reported
        # with the others' figures, and the command exits non-zero.
        except Exception as error:
            errors[name] = f"{type(error).__name__}: {error}"

    attempt("reference loop (fp32)", partial(reference_loop, reference_model, template, requests))
    del reference_model  # its memory is the other arms' on a GPU
    attempt(
        "HF padded batch (SDPA)",
        lambda: padded_batches(model, template, requests, row_tokens),
        warm_up=True,
    )
    for kernel, engine in engines.items():

        def engine_work(engine: Engine = engine) -> tuple[list[float], float]:
            engine.warm_up(requests)
            engine.flops = 0.0
            return [r.loss for r in engine.loglikelihood(requests)], engine.flops

        attempt(f"engine ({kernel} attention)", engine_work)
    if not arms or not arms[0].name.startswith("reference"):
        raise RuntimeError(f"{config}: the reference loop failed: {errors}")
    for peak_dtype in peaks:
        peaks[peak_dtype] = max(peaks[peak_dtype], peak_gflops(DTYPES[peak_dtype], device))
    agreement = {arm.name: _agreement(arms[0].losses, arm.losses) for arm in arms[1:]}
    return ModelResult(
        config=config,
        requests=len(requests),
        distinct=len(distinct),
        tokens=tokens,
        arms=arms,
        errors=errors,
        agreement=agreement,
        peaks=peaks,
        rows=rows,
        flop_model=FlopModel.of(model),
    )


def _agreement(reference: list[float], other: list[float]) -> tuple[float, float]:
    from scipy.stats import spearmanr

    worst = max(abs(a - b) for a, b in zip(reference, other, strict=True))
    return float(spearmanr(reference, other).statistic), worst


def _estimate_8b(results: list[ModelResult]) -> float | None:
    """Hours for this workload's shape (wICI, the same probes per row) on the 52k-row Alpaca set
    with an 8B model, at the model-FLOP rate the last model's best engine arm reached here."""
    result = results[-1]
    engines = [arm for arm in result.arms if arm.name.startswith("engine")]
    if not engines:
        return None
    best = max(engines, key=lambda arm: arm.flops / arm.seconds)
    # FLOPs per token of the 8B model over this one's, at a typical position with the head.
    scale = (_LLAMA_8B.forward(1, 100) + _LLAMA_8B.head(1)) / (
        result.flop_model.forward(1, 100) + result.flop_model.head(1)
    )
    flops = best.flops * scale * ALPACA_ROWS / result.rows
    return round(flops / (best.flops / best.seconds) / 3600, 2)


def _markdown(summary: dict[str, Any], command: str) -> str:
    lines = [
        f"### bench speed --synthetic, {summary['date']}: {summary['rows']} wICI candidates x "
        f"{summary['probes']} probes, random weights",
        "",
        f"`{command}`",
        "",
        f"Device: {summary['device']}, torch {summary['torch']}, engine dtype {summary['dtype']}.",
        "",
    ]
    for model in summary["models"]:
        peaks = ", ".join(f"{v} GFLOP/s ({k})" for k, v in model["peak_gflops"].items())
        lines += [
            f"**{model['config']}**: {model['requests']} requests, {model['distinct']} distinct, "
            f"{model['tokens']} tokens. Measured matmul peak: {peaks}.",
            "",
            "| arm | seconds | tokens/s | speed-up | model TFLOP/s | MFU | peak GPU MB "
            "| Spearman vs fp32 | max abs diff vs fp32 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, arm in model["arms"].items():
            lines.append(
                f"| {name} | {arm['seconds']} | {arm['tokens_per_s']} | "
                f"{arm['speedup_vs_reference']}x | {arm['model_tflops']} | {arm['mfu']:.0%} | "
                f"{arm['peak_device_mb']} | {arm.get('spearman_vs_fp32', '')} | "
                f"{arm.get('max_abs_diff_vs_fp32', '')} |"
            )
        lines += [f"- {name} failed: {error}" for name, error in model["errors"].items()]
        lines.append("")
    if summary["estimate_8b_alpaca_hours"] is not None:
        lines.append(
            f"At the engine's model-FLOP rate on {summary['models'][-1]['config']}, wICI on the "
            f"{ALPACA_ROWS}-row Alpaca set with an 8B model would take about "
            f"{summary['estimate_8b_alpaca_hours']} h on this device (an estimate from the "
            "FLOPs per token of Llama-3-8B's shapes; larger matrices usually run nearer the peak, "
            "so it errs long)."
        )
    return "\n".join(lines) + "\n"

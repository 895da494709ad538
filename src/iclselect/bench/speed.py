"""`iclselect bench speed`: one wICI workload answered several ways in one process.

(a) reference: the way the public scripts do it (Cherry IFD, Nuggets, the wICI and RICo
    reference code): one request per forward pass, fp32, full-vocabulary logits at every
    position, each distinct request computed once, same tokens as the engine;
(b) the engine with its defaults (dtype auto, shared-prefix reuse, target-only head, batching),
    once with each packed-attention kernel (loop, flex), the device's default first.

They must agree (Spearman of per-request losses >= 0.99, and max difference reported); then
requests/s, tokens/s, the speed-up, peak RSS of each arm and model-FLOPs utilisation against this
machine's measured matmul peak are printed and appended to BENCHMARKS.md.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import torch

from iclselect.errors import UsageError
from iclselect.lm import Engine, LogprobRequest, Template, load_model
from iclselect.lm.flops import FlopModel
from iclselect.lm.packed import KERNELS, default_kernel
from iclselect.lm.precision import cpu_name, matmul_gflops


@dataclass(kw_only=True)
class Arm:
    name: str
    seconds: float
    flops: float
    peak_rss_mb: float
    losses: list[float]
    peak_device_mb: float = 0.0  # CUDA memory allocated at the arm's peak (0 on a CPU)


def wici_workload(data: str, rows: int, n_probes: int) -> list[LogprobRequest]:
    """The requests wICI makes for the first `rows` samples, with top-k probes (no IFD needed
    to choose them, so both arms get the same requests)."""
    from iclselect.embed import Embedder
    from iclselect.io import read_dataset
    from iclselect.methods import Pool, wici
    from iclselect.methods.registry import get
    from iclselect.run.runner import planned_rounds

    samples = read_dataset(data).samples
    if rows > len(samples):
        raise UsageError(f"--rows {rows}: {data} has only {len(samples)} valid rows")
    samples = samples[:rows]
    vectors = Embedder().encode([s.instruction_text for s in samples])
    config = wici.WiciConfig(probes="topk", n_probes=n_probes, n_neighbours=n_probes)
    # Top-k probes do not depend on answers: any token count gives the same requests.
    rounds = planned_rounds(get("wici"), Pool(samples, vectors), config, lambda r: len(r.target))
    return [request for requests in rounds for request in requests]


@torch.inference_mode()
def reference_loop(
    model, template: Template, requests: list[LogprobRequest]
) -> tuple[list[float], float]:
    """Per-request loss, one forward pass per distinct request; and the model FLOPs spent."""
    flop_model = FlopModel.of(model)
    device = next(model.parameters()).device
    answers: dict[str, float] = {}
    flops = 0.0
    for request in requests:
        key = request.key()
        if key in answers:
            continue
        encoded = template.encode(request)
        ids = torch.tensor([encoded.context_ids + encoded.target_ids], device=device)
        logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
        start = len(encoded.context_ids) - 1
        targets = torch.tensor(encoded.target_ids, device=device)
        picked = logprobs[start : start + len(targets)].gather(1, targets[:, None])
        answers[key] = -picked.sum().item() / len(targets)
        flops += flop_model.forward(ids.shape[1]) + flop_model.head(ids.shape[1])
    return [answers[r.key()] for r in requests], flops


@torch.inference_mode()
def padded_batches(
    model, template: Template, requests: list[LogprobRequest], max_tokens: int
) -> tuple[list[float], float]:
    """Per-request loss the way a Hugging Face user batches: distinct requests sorted by length,
    right-padded into batches of at most `max_tokens` padded tokens, the model's own attention
    (SDPA) with an attention mask, full-vocabulary logits; and the model FLOPs run (padding
    included: the model computes it)."""
    flop_model = FlopModel.of(model)
    device = next(model.parameters()).device
    distinct = {r.key(): template.encode(r) for r in requests}
    keys = sorted(distinct, key=lambda k: -len(distinct[k].context_ids + distinct[k].target_ids))
    answers: dict[str, float] = {}
    flops = 0.0
    start = 0
    while start < len(keys):
        width = len(distinct[keys[start]].context_ids + distinct[keys[start]].target_ids)
        batch = keys[start : start + max(1, max_tokens // width)]
        start += len(batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long, device=device)
        mask = torch.zeros(len(batch), width, dtype=torch.long, device=device)
        for n, key in enumerate(batch):
            sequence = distinct[key].context_ids + distinct[key].target_ids
            ids[n, : len(sequence)] = torch.tensor(sequence, device=device)
            mask[n, : len(sequence)] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits
        for n, key in enumerate(batch):
            context, target = distinct[key].context_ids, distinct[key].target_ids
            rows = logits[n, len(context) - 1 : len(context) - 1 + len(target)].float()
            picked = torch.log_softmax(rows, dim=-1).gather(
                1, torch.tensor(target, device=device)[:, None]
            )
            answers[key] = -picked.sum().item() / len(target)
        flops += len(batch) * (flop_model.forward(width) + flop_model.head(width))
    return [answers[r.key()] for r in requests], flops


def peak_gflops(dtype: torch.dtype, device: torch.device) -> float:
    """The best of two square sizes: on these CPUs 1024^3 and 2048^3 differ by up to 8%, in
    either direction from one machine to the next; a GPU needs larger products to fill."""
    sizes = (4096, 8192) if device.type == "cuda" else (1024, 2048)
    return max(matmul_gflops(dtype, 1.0, size, str(device)) for size in sizes)


def measure(name: str, work: Callable[[], tuple[list[float], float]]) -> Arm:
    import psutil

    on_cuda = torch.cuda.is_available()
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    process = psutil.Process()
    peak = [process.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], process.memory_info().rss)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    started = time.perf_counter()
    losses, flops = work()
    if on_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    done.set()
    watcher.join()
    device_mb = torch.cuda.max_memory_allocated() / 2**20 if on_cuda else 0.0
    return Arm(
        name=name,
        seconds=seconds,
        flops=flops,
        peak_rss_mb=peak[0] / 2**20,
        losses=losses,
        peak_device_mb=device_mb,
    )


def run_speed(
    data: str,
    *,
    rows: int,
    n_probes: int,
    template_name: str,
    dtype: str,
    max_batch_tokens: int | None,
    benchmarks: Path | None,
    command: str,
    executor: str = "local",
    workers: int = 2,
) -> str:
    requests = wici_workload(data, rows, n_probes)
    reference_model = load_model(dtype="fp32")
    template = Template(template_name, reference_model.tokenizer)
    unique = {r.key(): r for r in requests}
    tokens = sum(
        len(e.context_ids) + len(e.target_ids) for e in map(template.encode, unique.values())
    )

    reference = measure(
        "reference loop", lambda: reference_loop(reference_model.model, template, requests)
    )
    loaded = load_model(dtype=dtype)
    engine_dtype = loaded.model.dtype
    # The peak is probed twice, between the arms and after them, and the higher kept: a shared
    # machine's matmul rate drifts by several percent within minutes, and MFU must not profit
    # from a dip.
    device = next(loaded.model.parameters()).device
    peaks = {kind: peak_gflops(kind, device) for kind in (engine_dtype, torch.float32)}
    # The default kernel for this device first (the arm the other executors are checked
    # against), then the other, side by side.
    default = default_kernel(device)
    kernels = [default, *(kernel for kernel in KERNELS if kernel != default)]
    arms = [
        _engine_arm(loaded, template_name, max_batch_tokens, kernel, requests) for kernel in kernels
    ]
    fast = arms[0]
    if executor == "ray":
        arms.append(_ray_arm(loaded, template_name, max_batch_tokens, workers, requests))
        if arms[-1].losses != fast.losses:
            raise AssertionError("the Ray executor's answers differ from the local engine's")
    if executor == "vllm":
        arms.append(_vllm_arm(loaded, template_name, max_batch_tokens, requests))
        from scipy.stats import spearmanr

        if spearmanr(arms[-1].losses, fast.losses).statistic < 0.99:
            raise AssertionError("vLLM and the HF engine disagree: Spearman < 0.99")
    peaks = {kind: max(gflops, peak_gflops(kind, device)) for kind, gflops in peaks.items()}
    peak, reference_peak = peaks[engine_dtype], peaks[torch.float32]

    from scipy.stats import spearmanr

    rho = float(spearmanr(reference.losses, fast.losses).statistic)
    worst = max(abs(a - b) for a, b in zip(reference.losses, fast.losses, strict=True))
    for arm in arms[: len(KERNELS)]:
        arm_rho = float(spearmanr(reference.losses, arm.losses).statistic)
        if arm_rho < 0.99:
            raise AssertionError(f"{arm.name} and the reference disagree: Spearman {arm_rho:.4f}")

    def row(arm: Arm, gflops_peak: float) -> str:
        mfu = arm.flops / arm.seconds / 1e9 / gflops_peak
        return (
            f"| {arm.name} | {arm.seconds:.1f} | {len(requests) / arm.seconds:.2f} | "
            f"{tokens / arm.seconds:.0f} | {reference.seconds / arm.seconds:.2f}x | "
            f"{arm.peak_rss_mb:.0f} | {arm.flops / arm.seconds / 1e9:.0f} | {mfu:.0%} |"
        )

    report = "\n".join(
        [
            f"### bench speed, {date.today().isoformat()}: "
            f"{rows} wICI candidates x {n_probes} probes",
            "",
            f"`{command}`",
            "",
            f"Machine: {cpu_name()}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, "
            f"{_device(loaded.model)}. Measured matmul peak: {peak:.0f} GFLOP/s ({engine_dtype})"
            + ("" if reference_peak == peak else f", {reference_peak:.0f} GFLOP/s (fp32)")
            + ".",
            f"Workload: {len(requests)} requests, {len(unique)} distinct, {tokens} tokens "
            f"(template {template_name}, model {loaded.model_id}). Engine dtype {engine_dtype}.",
            f"Agreement with the fp32 reference: Spearman {rho:.5f} over per-request losses, "
            f"max |difference| {worst:.2e} nats/token.",
            "",
            "| arm | seconds | requests/s | tokens/s | speed-up | peak RSS MB | model GFLOP/s "
            "| MFU |",
            "|---|---|---|---|---|---|---|---|",
            row(reference, reference_peak),
            *(row(arm, peak) for arm in arms),
            "",
            *(
                [
                    f"The Ray arm: {workers} workers on this machine, "
                    f"{max(1, len(os.sched_getaffinity(0)) // workers)} threads each, started and "
                    "loaded before timing; its answers equal the local engine's exactly; peak "
                    "RSS is the driver's alone.",
                    "",
                ]
                if executor == "ray"
                else []
            ),
            "The two engine arms differ only in the packed-attention kernel: one sequence at a "
            "time (loop) or one compiled flex_attention kernel per layer (flex, compiled before "
            "timing). MFU counts the FLOPs of the forward passes each arm runs (the reference: "
            "every position through the full-vocabulary head; the engine: packed rows without "
            "padding, each shared prefix once per row, the head at target positions only), "
            "against the matmul peak of the arm's dtype (the best of two square products, probed "
            "between the arms and after them). tokens/s is the workload's tokens over wall time "
            "for every arm.",
            "",
        ]
    )
    if benchmarks is not None:
        with benchmarks.open("a", encoding="utf-8") as handle:
            handle.write("\n" + report)
    return report


def _engine_arm(
    loaded, template_name: str, max_batch_tokens: int | None, kernel: str, requests: list
) -> Arm:
    """The engine with one packed-attention kernel, its kernels compiled before timing (once
    per process in a real run)."""
    engine = Engine(
        loaded, Template(template_name, loaded.tokenizer), max_batch_tokens, attention=kernel
    )
    engine.warm_up(requests)

    def work() -> tuple[list[float], float]:
        return [r.loss for r in engine.loglikelihood(requests, desc=kernel)], engine.flops

    return measure(f"engine ({kernel} attention)", work)


def _ray_arm(
    loaded, template_name: str, max_batch_tokens: int | None, workers: int, requests: list
) -> Arm:
    import ray

    from iclselect.run.config import RunConfig
    from iclselect.run.pipeline import executor_for

    config = RunConfig(
        data="",
        out="",
        executor="ray",
        workers=workers,
        template=template_name,
        max_batch_tokens=max_batch_tokens,
    )
    executor = executor_for(config, loaded)
    ray.get([worker.pid.remote() for worker in executor.workers])  # started and loaded
    engine = Engine(
        loaded, Template(template_name, loaded.tokenizer), max_batch_tokens, executor=executor
    )

    def work() -> tuple[list[float], float]:
        return [r.loss for r in engine.loglikelihood(requests, desc="ray")], engine.flops

    arm = measure(f"engine, Ray x{workers}", work)
    ray.shutdown()
    return arm


def _vllm_arm(loaded, template_name: str, max_batch_tokens: int | None, requests: list) -> Arm:
    from iclselect.lm.model import DEFAULT_MODEL, resolve
    from iclselect.lm.precision import dtype_name
    from iclselect.lm.vllm_executor import VllmExecutor

    executor = VllmExecutor(resolve(DEFAULT_MODEL).location, dtype_name(loaded.model.dtype), 2048)
    engine = Engine(
        loaded, Template(template_name, loaded.tokenizer), max_batch_tokens, executor=executor
    )

    def work() -> tuple[list[float], float]:
        return [r.loss for r in engine.loglikelihood(requests, desc="vllm")], engine.flops

    return measure("engine, vLLM", work)


def _device(model) -> str:
    device = next(model.parameters()).device
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU ({platform.machine()})"

"""A run's cost before it runs: `run --dry-run`, `compare --dry-run` and `inspect`.

The method's own rounds are driven against the cost-only answerer (iclselect.run.runner), so the
estimate comes from the very requests the run makes; the engine prices each round as one call
(tokens after prefix sharing and store hits, model FLOPs), and a few real requests time this
machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import astuple
from typing import Any

from iclselect.infra.progress import duration
from iclselect.lm import Engine, LogprobRequest
from iclselect.lm.engine import Cost
from iclselect.methods.registry import Method, get
from iclselect.run.config import RunConfig
from iclselect.run.pipeline import Prepared, prepare
from iclselect.run.runner import planned_rounds

# A dry run plans on a seeded sample of this many rows and scales its counts to the pool:
# planning every row of a large pool (neighbours, probes, every request tokenised) took 90 s
# of host time at 52,000 rows, where a dry run is meant to answer in seconds.
PLAN_SAMPLE = 5_000


def dry_run(config: RunConfig, embedder: Any = None) -> str:
    """Plan the run and estimate its cost; compute only a short calibration (a few real
    requests, kept in the store so the run does not redo them). `embedder`: as prepare's."""
    method = get(config.method)
    method_config = method.configure(config.options_for(method))
    config.budget(method)
    with prepare(config, [method], embedder=embedder, sample=PLAN_SAMPLE) as prepared:
        return estimate(prepared, method, method_config)[0]


def estimate(
    prepared: Prepared, method: Method, method_config: Any, rate: float | None = None
) -> tuple[str, float | None]:
    """What scoring `prepared` with `method` would cost, and the model FLOP/s it is estimated
    at: `rate`, or else measured on a few of the method's own requests."""
    pool, engine = prepared.pool, prepared.engine
    rows = len(prepared.dataset.samples)  # more than len(pool) where the plan is on a sample
    head = f"dry run: {rows} samples, method {method.name}"
    if engine is None or not method.uses_model:
        return f"{head}: no model requests; it runs in seconds", rate
    rounds = planned_rounds(method, pool, method_config, token_counter(engine))
    cost = scaled(planned_cost(engine, rounds), rows / len(pool))
    sampled = (
        f"  planned on a seeded sample of {len(pool):,} of the {rows:,} rows, counts scaled "
        "to the whole pool\n"
        if rows > len(pool)
        else ""
    )
    if rate is None:
        rate = calibrate(engine, rounds[0][: min(len(pool), 16)])
    note = f"; {method.estimate_note}" if method.estimate_note else ""
    text = (
        f"{head}, model {engine.model_id} on {engine.device}\n"
        f"{sampled}"
        f"  requests per sample: {method.cost}\n"
        f"  requests: {cost.requests} ({cost.distinct} distinct, "
        f"{cost.stored} already in the store)\n"
        f"  tokens to run: ~{cost.tokens:,} (shared demo prefixes counted once{note})\n"
        f"  model FLOPs: ~{cost.flops / 1e12:.2f} TFLOP\n"
        f"  estimated scoring time: {estimated_time(cost.flops, rate)}"
        + (f" at {rate / 1e9:.0f} GFLOP/s measured here" if rate else "")
    )
    return text, rate


def planned_cost(engine: Engine, rounds: list[list[LogprobRequest]]) -> Cost:
    """What the engine would compute for `rounds`, each round one call as in a run."""
    costs = [engine.cost(requests) for requests in rounds]
    return Cost(*(sum(values) for values in zip(*(astuple(c) for c in costs), strict=True)))


def scaled(cost: Cost, factor: float) -> Cost:
    """`cost` of a sample of the pool, scaled to the whole pool."""
    if factor == 1:
        return cost
    counts = (round(value * factor) for value in astuple(cost)[:4])
    return Cost(*counts, cost.flops * factor)


def token_counter(engine: Engine) -> Callable[[LogprobRequest], int]:
    """Tokens of one request as the engine renders it (context and target)."""

    def count(request: LogprobRequest) -> int:
        encoded = engine.template.encode(request)
        return len(encoded.context_ids) + len(encoded.target_ids)

    return count


def calibrate(engine: Engine, requests: list[LogprobRequest]) -> float | None:
    """Model FLOP/s of this machine on a few real requests (their answers are stored); None
    when the store already held them all."""
    flops_before, started = engine.flops, time.perf_counter()
    engine.loglikelihood(requests, desc="calibrating")
    seconds = time.perf_counter() - started
    return (engine.flops - flops_before) / seconds if engine.flops > flops_before else None


def estimated_time(
    flops: float, rate: float | None, untimed: str = "all calibration requests were stored"
) -> str:
    """'~2 h 05 min' for `flops` at `rate` FLOP/s; `untimed` says why there is no rate."""
    if not flops:
        return "none (all answers stored)"
    return f"~{duration(flops / rate)}" if rate else f"unknown ({untimed})"

"""`iclselect inspect DATA`: what a dataset holds and what each method would cost on it, before
anything is scored: format, rows, invalid rows, exact duplicates, token lengths under the
model's template, and per method the requests, tokens, FLOPs and time the engine's dry run
estimates (measured on a few real requests on this machine)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from iclselect.lm import LogprobRequest
from iclselect.methods.registry import get
from iclselect.pipeline import RunConfig, _logger, calibrate, minutes, prepare

_PERCENTILES = (50, 90, 99)


@dataclass
class MethodCost:
    method: str
    requests: int
    distinct: int
    tokens: int
    flops: float


@dataclass
class Inspection:
    path: str
    schema: str
    container: str
    rows: int
    invalid: list[str]  # "row 3: field 'output': missing", one per invalid row
    duplicates: int  # rows identical to an earlier row
    lengths: dict[str, np.ndarray]  # "context" | "response" | "total" -> tokens per sample
    max_length: int
    model: str
    template: str
    costs: list[MethodCost]
    rate: float | None  # model FLOP/s measured here

    def render(self) -> str:
        lines = [
            f"{self.path}: {self.schema} rows, {self.container} container",
            f"  rows: {self.rows} ({self.rows - len(self.invalid)} valid, "
            f"{len(self.invalid)} invalid); exact duplicates: {self.duplicates}",
        ]
        lines += [f"    invalid {text}" for text in self.invalid[:5]]
        if len(self.invalid) > 5:
            lines.append(f"    ... and {len(self.invalid) - 5} more (run with --skip-invalid)")
        if self.lengths:
            head = "".join(f"{name:>8}" for name in ("min", *map("p{}".format, _PERCENTILES)))
            lines.append(f"  tokens per sample ({self.model}, template {self.template}):")
            lines.append(f"    {'':<9}{head}{'max':>8}{'mean':>8}")
            for name, values in self.lengths.items():
                cells = [values.min(), *np.percentile(values, _PERCENTILES), values.max()]
                row = "".join(f"{round(float(v)):>8}" for v in cells)
                lines.append(f"    {name:<9}{row}{values.mean():>8.0f}")
            over = int((self.lengths["total"] > self.max_length).sum())
            lines.append(f"    longer than --max-length {self.max_length}: {over}")
        if self.costs:
            speed = f" at {self.rate / 1e9:.0f} GFLOP/s measured here" if self.rate else ""
            lines.append(f"  estimated cost of each method{speed}:")
            lines.append(f"    {'method':<11}{'requests':>10}{'tokens':>12}{'TFLOP':>9}  time")
            for c in self.costs:
                lines.append(
                    f"    {c.method:<11}{c.requests:>10,}{c.tokens:>12,}{c.flops / 1e12:>9.2f}  "
                    f"{minutes(c.flops, self.rate) if c.requests else 'seconds (no model)'}"
                )
        return "\n".join(lines)


def inspect_data(config: RunConfig, names: list[str]) -> Inspection:
    """Read `config.data` (invalid rows counted, not fatal) and estimate each method in
    `names` with default options. Calibration answers go to a throwaway store."""
    methods = [get(name) for name in names]
    with tempfile.TemporaryDirectory(prefix="iclselect-inspect-") as scratch:
        config = replace(config, skip_invalid=True, store=str(Path(scratch) / "store.sqlite"))
        prepared = prepare(config, methods, _logger(config.quiet))
        dataset, pool, engine = prepared.dataset, prepared.pool, prepared.engine
        invalid = [
            f"row {bad.row}: " + (f"field {bad.field!r}: " if bad.field else "") + bad.message
            for bad in dataset.invalid
        ]
        lengths: dict[str, np.ndarray] = {}
        costs, rate = [], None
        if engine is not None:
            encoded = [
                engine.template.encode(LogprobRequest(s.prompt, s.response)) for s in pool.samples
            ]
            context = np.array([len(e.context_ids) for e in encoded])
            response = np.array([len(e.target_ids) for e in encoded])
            lengths = {"context": context, "response": response, "total": context + response}
        for method in methods:
            if not method.uses_model or engine is None:
                costs.append(MethodCost(method.name, 0, 0, 0, 0.0))
                continue
            requests = method.planner(pool, method.configure({}))  # type: ignore[misc]
            cost = engine.cost(requests)
            if rate is None:
                rate = calibrate(engine, requests[:16])
            costs.append(
                MethodCost(method.name, cost.requests, cost.distinct, cost.tokens, cost.flops)
            )
    return Inspection(
        str(dataset.path), dataset.schema, dataset.container, dataset.n_rows, invalid,
        len(pool) - len({s.id for s in pool.samples}), lengths, config.max_length,
        engine.model_id if engine else config.model, config.template, costs, rate,
    )  # fmt: skip

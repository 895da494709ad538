"""`iclselect inspect DATA`: what a dataset holds and what each method would cost on it, before
anything is scored: format, rows, invalid rows, exact duplicates, token lengths under the
model's template, and per method the requests, tokens, FLOPs and time the engine's dry run
estimates (measured on a few real requests on this machine)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from iclselect.methods.loss_requests import conditioned
from iclselect.methods.registry import get
from iclselect.run.config import RunConfig
from iclselect.run.estimate import calibrate, estimated_time, planned_cost, token_counter
from iclselect.run.pipeline import prepare
from iclselect.run.runner import planned_rounds

_PERCENTILES = (50, 90, 99)


@dataclass
class MethodCost:
    method: str
    requests: int
    distinct: int
    tokens: int
    flops: float


@dataclass(kw_only=True)
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
    timed: bool = True  # False: --no-timing, no rate was measured

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
            head = ("", "min", *map("p{}".format, _PERCENTILES), "max", "mean")
            rows = []
            for name, values in self.lengths.items():
                cells = [values.min(), *np.percentile(values, _PERCENTILES), values.max()]
                numbers = [round(float(v)) for v in [*cells, values.mean()]]
                rows.append((name, *map(str, numbers)))
            lines.append(f"  tokens per sample ({self.model}, template {self.template}):")
            lines += _table(head, rows, left={0})
            over = int((self.lengths["total"] > self.max_length).sum())
            lines.append(f"    longer than --max-length {self.max_length}: {over}")
        if self.costs:
            speed = f" at {self.rate / 1e9:.0f} GFLOP/s measured here" if self.rate else ""
            untimed = "all calibration requests were stored" if self.timed else "--no-timing"
            lines.append(f"  estimated cost of each method{speed}:")
            lines += _table(
                ("method", "requests", "tokens", "TFLOP", "time"),
                [
                    (
                        c.method,
                        f"{c.requests:,}",
                        f"{c.tokens:,}",
                        f"{c.flops / 1e12:.2f}",
                        estimated_time(c.flops, self.rate, untimed)
                        if c.requests
                        else "seconds (no model)",
                    )
                    for c in self.costs
                ],
                left={0, 4},
            )
        return "\n".join(lines)


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], left: set[int]) -> list[str]:
    """Rows under `head`, each column as wide as its widest cell; the columns in `left` left
    aligned (text), the others right aligned (numbers)."""
    widths = [max(len(row[k]) for row in [head, *rows]) for k in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.ljust(width) if k in left else cell.rjust(width)
            for k, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "    " + "  ".join(cells).rstrip()

    return [line(head), *map(line, rows)]


def inspect_data(config: RunConfig, names: list[str], timing: bool = True) -> Inspection:
    """Read `config.data` (invalid rows counted, not fatal) and estimate each method in
    `names` with its options (--set; METHOD.KEY where several methods are named); with
    `timing`, time a few real requests for the estimate. Calibration answers go to a
    throwaway store."""
    methods = [get(name) for name in names]
    configs = config.configs_for(methods)
    with tempfile.TemporaryDirectory(prefix="iclselect-inspect-") as scratch:
        config = replace(config, skip_invalid=True, store=str(Path(scratch) / "store.sqlite"))
        with prepare(config, methods) as prepared:
            dataset, pool, engine = prepared.dataset, prepared.pool, prepared.engine
            invalid = [
                f"row {bad.row}: " + (f"field {bad.field!r}: " if bad.field else "") + bad.message
                for bad in dataset.invalid
            ]
            lengths: dict[str, np.ndarray] = {}
            costs, rate = [], None
            if engine is not None:
                encoded = [engine.template.encode(conditioned(s)) for s in pool.samples]
                context = np.array([len(e.context_ids) for e in encoded])
                response = np.array([len(e.target_ids) for e in encoded])
                lengths = {"context": context, "response": response, "total": context + response}
            for method, method_config in zip(methods, configs, strict=True):
                if not method.uses_model or engine is None:
                    costs.append(MethodCost(method.name, 0, 0, 0, 0.0))
                    continue
                rounds = planned_rounds(method, pool, method_config, token_counter(engine))
                cost = planned_cost(engine, rounds)
                if rate is None and timing:
                    rate = calibrate(engine, rounds[0][:16])
                costs.append(
                    MethodCost(method.name, cost.requests, cost.distinct, cost.tokens, cost.flops)
                )
    return Inspection(
        path=str(dataset.path),
        schema=dataset.schema,
        container=dataset.container,
        rows=dataset.n_rows,
        invalid=invalid,
        duplicates=len(pool) - len({s.id for s in pool.samples}),
        lengths=lengths,
        max_length=config.max_length,
        model=engine.model_id if engine else config.model,
        template=config.template,
        costs=costs,
        rate=rate,
        timed=timing,
    )

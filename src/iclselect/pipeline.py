"""The whole job, top to bottom: read, embed, score, select, write.

read_dataset -> Embedder.encode -> method (plans requests; Engine answers) -> select
-> write_subset + scores.parquet + manifest.json

`compare` runs several methods through the same steps on one prepared pool, one model and one
result store, so a request two methods share is computed once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iclselect.embed import DEFAULT_EMBEDDER, Embedder
from iclselect.io import Dataset, InputError, read_dataset, write_subset
from iclselect.lm import DEFAULT_MODEL, Engine, Template, load_model
from iclselect.methods import Pool, Scores
from iclselect.methods.registry import Method, get
from iclselect.outputs import manifest, scores_table, write_manifest, write_scores
from iclselect.select import Budget, Selection, select

DEFAULT_FRACTION = 0.1  # compare's equal budget for every method, unless one is given


@dataclass
class RunConfig:
    data: str
    out: str
    method: str = "wici"
    # Method options by name ("n_probes") or, to address one method in a compare, by
    # "method.name" ("wici.n_probes"). Strings are converted to the option's type.
    options: dict[str, Any] = field(default_factory=dict)
    format: str = "auto"
    fields: dict[str, str] | None = None
    skip_invalid: bool = False
    model: str = DEFAULT_MODEL
    template: str = "chat"
    dtype: str = "auto"  # auto: bf16 on GPUs, on CPUs whichever a matmul probe finds faster
    device: str = "auto"
    embedder: str = DEFAULT_EMBEDDER
    fraction: float | None = None
    count: int | None = None
    threshold: float | None = None
    # Near-duplicate threshold (cosine of instruction+response embeddings); None: the method's
    # own (0.9 for wICI, whose paper has the diversity step; off for the others).
    tau: float | None = None
    max_batch_tokens: int = 8192
    max_length: int = 2048
    store: str | None = None  # result store; None = <out>/store.sqlite
    quiet: bool = False

    def budget(self, method: Method | None = None) -> Budget:
        """The budget given, or else the method's paper's headline fraction (compare passes no
        method: every method then gets the same DEFAULT_FRACTION)."""
        if self.fraction is None and self.count is None and self.threshold is None:
            return Budget(fraction=method.fraction if method else DEFAULT_FRACTION)
        return Budget(self.fraction, self.count, self.threshold)

    def options_for(self, method: str, prefixed_only: bool = False) -> dict[str, Any]:
        """The options addressed to `method`: "method.name" keys, and bare "name" keys unless
        `prefixed_only` (a compare, where a bare key would be ambiguous)."""
        chosen: dict[str, Any] = {}
        for key, value in self.options.items():
            owner, dot, name = key.rpartition(".")
            if dot and owner == method:
                chosen[name] = value
            elif not dot:
                if prefixed_only:
                    raise ValueError(f"--set {key}: in a compare, name the method: METHOD.{key}")
                chosen[key] = value
        return chosen

    def tau_for(self, method: Method) -> float | None:
        return self.tau if self.tau is not None else method.tau


@dataclass
class RunResult:
    method: str
    out: Path
    subset: Path
    scores: Path
    manifest: Path
    rows: int
    kept: int
    dropped_by_reason: dict[str, int]
    best: list[tuple[int, int, float, str]]  # (rank, row, score, instruction) of the top kept
    kept_response_chars: float  # mean response length of the kept rows
    seconds: float
    engine: dict[str, int]  # requests asked, answered from the store, computed; tokens run
    scores_data: Scores
    selection: Selection


@dataclass
class Prepared:
    dataset: Dataset
    pool: Pool
    engine: Engine | None
    timings: dict[str, float]


def run(config: RunConfig) -> RunResult:
    method = get(config.method)
    method_config = method.configure(config.options_for(method.name))
    budget = config.budget(method)
    log = _logger(config.quiet)
    prepared = prepare(config, [method], log)
    return score_and_write(prepared, method, method_config, config, budget, Path(config.out), log)


def prepare(config: RunConfig, methods: list[Method], log: Callable[[str], None]) -> Prepared:
    """Read, embed and load the model once, for every method in `methods`."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    dataset = read_dataset(config.data, config.format, config.fields, config.skip_invalid)
    samples = dataset.samples
    if len(samples) < 2:
        raise InputError(str(dataset.path), f"{len(samples)} valid rows: selection needs 2 or more")
    duplicates = len(samples) - len({s.id for s in samples})
    log(
        f"read {dataset.n_rows} rows ({dataset.schema}, {dataset.container}) from {dataset.path}"
        + (f"; {len(dataset.invalid)} invalid rows skipped" if dataset.invalid else "")
        + (f"; {duplicates} exact duplicates (see duplicate_of)" if duplicates else "")
    )
    timings["read"] = time.perf_counter() - started

    pool = Pool(samples)
    if any(m.embeddings or config.tau_for(m) is not None for m in methods):
        started = time.perf_counter()
        embedder = Embedder(config.embedder)
        pool.instruction_vectors = embedder.encode([s.instruction_text for s in samples])
        pool.full_vectors = embedder.encode([s.full_text for s in samples])
        log(f"embedded {len(samples)} samples with {config.embedder}")
        timings["embed"] = time.perf_counter() - started

    engine = None
    if any(m.uses_model for m in methods):
        loaded = load_model(config.model, config.dtype, config.device)
        engine = Engine(
            loaded,
            Template(config.template, loaded.tokenizer),
            config.max_batch_tokens,
            config.max_length,
            show_progress=not config.quiet,
            store_path=config.store or Path(config.out) / "store.sqlite",
        )
        log(
            f"scoring with {loaded.model_id} ({engine.device}, {loaded.model.dtype}), "
            f"template {config.template}"
        )
    return Prepared(dataset, pool, engine, timings)


def score_and_write(
    prepared: Prepared,
    method: Method,
    method_config: Any,
    config: RunConfig,
    budget: Budget,
    out: Path,
    log: Callable[[str], None],
) -> RunResult:
    """Score with one method, select, and write subset, scores.parquet and manifest.json."""
    dataset, pool, engine = prepared.dataset, prepared.pool, prepared.engine
    samples = pool.samples
    timings = dict(prepared.timings)
    before = dict(engine.stats) if engine else {}
    started = time.perf_counter()
    scores = method.score(pool, engine, method_config)
    timings["score"] = time.perf_counter() - started
    stats: dict[str, int] = {}
    if engine:
        stats = {key: engine.stats[key] - before[key] for key in engine.stats}
        stats["corrupt"] = engine.store.corrupt if engine.store is not None else 0
        log(
            f"{method.name}: {stats['requests']} requests, {stats['stored']} answered from the "
            f"store, {stats['computed']} computed ({stats['tokens']} tokens)"
            + (f"; {stats['corrupt']} corrupt store entries recomputed" if stats["corrupt"] else "")
        )

    started = time.perf_counter()
    tau = config.tau_for(method)
    selection = select(scores.score, budget, scores.excluded, pool.full_vectors, tau, pool.rows)
    subset = write_subset(dataset, [samples[i].row for i in selection.selected], out)
    table = scores_table(dataset, scores, selection)
    write_scores(out / "scores.parquet", table)
    timings["select_and_write"] = time.perf_counter() - started
    timings["total"] = sum(timings.values())
    effective = {**asdict(config), "method": method.name, "tau": tau, "budget": asdict(budget)}
    content = manifest(
        dataset, table, scores, effective,
        engine.model_id if engine else None, engine.template.fingerprint if engine else None,
        subset, timings, stats,
    )  # fmt: skip
    write_manifest(out / "manifest.json", content)
    log(f"{method.name}: kept {content['kept']} of {dataset.n_rows} rows")
    best = [
        (selection.rank[i], samples[i].row, float(scores.score[i]), samples[i].instruction_text)
        for i in selection.selected[:5]
    ]
    return RunResult(
        method.name, out, subset, out / "scores.parquet", out / "manifest.json", dataset.n_rows,
        content["kept"], content["dropped_by_reason"], best,
        float(np.mean([len(samples[i].response) for i in selection.selected] or [0])),
        timings["score"], stats, scores,
        selection,
    )  # fmt: skip


def dry_run(config: RunConfig) -> str:
    """Plan the run and estimate its cost; compute only a short calibration (a few real
    requests, kept in the store so the run does not redo them)."""
    method = get(config.method)
    method_config = method.configure(config.options_for(method.name))
    config.budget(method)
    prepared = prepare(config, [method], _logger(config.quiet))
    pool, engine = prepared.pool, prepared.engine
    head = f"dry run: {len(pool)} samples, method {method.name}"
    if engine is None:
        return f"{head}: no model requests; it runs in seconds"
    requests = method.planner(pool, method_config)  # type: ignore[misc]
    cost = engine.cost(requests)
    calibration = requests[: min(len(pool), 16)]
    flops_before, started = engine.flops, time.perf_counter()
    engine.loglikelihood(calibration, desc="calibrating")
    seconds = time.perf_counter() - started
    rate = (engine.flops - flops_before) / seconds if engine.flops > flops_before else None
    estimate = (
        f"~{cost.flops / rate / 60:.1f} min"
        if rate
        else "unknown (all calibration requests were stored)"
    )
    speed = f" at {rate / 1e9:.0f} GFLOP/s measured here" if rate else ""
    note = f"; {method.estimate_note}" if method.estimate_note else ""
    return (
        f"{head} ({method.cost} requests per sample), model {engine.model_id} on "
        f"{engine.device}\n"
        f"  requests: {cost.requests} ({cost.distinct} distinct, "
        f"{cost.stored} already in the store)\n"
        f"  tokens to run: ~{cost.tokens:,} (shared demo prefixes counted once{note})\n"
        f"  model FLOPs: ~{cost.flops / 1e12:.2f} TFLOP\n"
        f"  estimated scoring time: {estimate}{speed}"
    )


def _logger(quiet: bool) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not quiet:
            print(f"[iclselect] {message}", file=sys.stderr, flush=True)

    return log

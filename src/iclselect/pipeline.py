"""The whole job, top to bottom: read, embed, score, select, write.

read_dataset -> Embedder.encode -> score_wici (plans requests; Engine answers) -> select
-> write_subset + scores.parquet + manifest.json
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from iclselect.embed import DEFAULT_EMBEDDER, Embedder
from iclselect.io import Dataset, InputError, read_dataset, write_subset
from iclselect.lm import DEFAULT_MODEL, Engine, Template, load_model
from iclselect.methods import WiciConfig, score_wici
from iclselect.methods.wici import estimated_requests
from iclselect.outputs import manifest, scores_table, write_manifest, write_scores
from iclselect.select import Budget, select

DEFAULT_FRACTION = 0.1  # the wICI paper's headline budget


@dataclass
class RunConfig:
    data: str
    out: str
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
    tau: float = 0.9  # wICI's near-duplicate threshold: cosine of instruction+response embeddings
    max_batch_tokens: int = 8192
    max_length: int = 2048
    store: str | None = None  # result store; None = <out>/store.sqlite
    quiet: bool = False
    wici: WiciConfig = field(default_factory=WiciConfig)

    def budget(self) -> Budget:
        if self.fraction is None and self.count is None and self.threshold is None:
            return Budget(fraction=DEFAULT_FRACTION)
        return Budget(self.fraction, self.count, self.threshold)


@dataclass
class RunResult:
    out: Path
    subset: Path
    scores: Path
    manifest: Path
    rows: int
    kept: int
    dropped_by_reason: dict[str, int]
    best: list[tuple[int, int, float, str]]  # (rank, row, score, instruction) of the top kept


@dataclass
class _Prepared:
    dataset: Dataset
    instruction_vectors: np.ndarray
    full_vectors: np.ndarray
    engine: Engine


def run(config: RunConfig) -> RunResult:
    budget = config.budget()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    log = _logger(config.quiet)

    def lap(name: str) -> None:
        timings[name] = time.perf_counter() - started - sum(timings.values())

    prepared = _prepare(config, log, lap)
    dataset, engine = prepared.dataset, prepared.engine
    samples = dataset.samples
    scores = score_wici(samples, engine, prepared.instruction_vectors, config.wici)
    stats = {**engine.stats, "corrupt": engine.store.corrupt}
    log(
        f"{stats['requests']} requests: {stats['stored']} answered from the store, "
        f"{stats['computed']} computed ({stats['tokens']} tokens)"
        + (f"; {stats['corrupt']} corrupt store entries recomputed" if stats["corrupt"] else "")
    )
    lap("score")

    selection = select(
        scores.score,
        budget,
        scores.excluded,
        prepared.full_vectors,
        config.tau,
        [s.row for s in samples],
    )
    out = Path(config.out)
    subset = write_subset(dataset, [samples[i].row for i in selection.selected], out)
    table = scores_table(dataset, scores, selection)
    write_scores(out / "scores.parquet", table)
    lap("select_and_write")
    timings["total"] = time.perf_counter() - started
    content = manifest(
        dataset, table, scores, asdict(config), engine.model_id, engine.template.fingerprint,
        subset, timings, stats,
    )  # fmt: skip
    write_manifest(out / "manifest.json", content)
    log(f"kept {content['kept']} of {dataset.n_rows} rows in {timings['total']:.0f}s")
    best = [
        (selection.rank[i], samples[i].row, float(scores.score[i]), samples[i].instruction_text)
        for i in selection.selected[:5]
    ]
    return RunResult(
        out, subset, out / "scores.parquet", out / "manifest.json", dataset.n_rows,
        content["kept"], content["dropped_by_reason"], best,
    )  # fmt: skip


def dry_run(config: RunConfig) -> str:
    """Plan the run and estimate its cost; compute only a short calibration (a few real
    requests, kept in the store so the run does not redo them)."""
    config.budget()
    prepared = _prepare(config, _logger(config.quiet), lambda name: None)
    engine, samples = prepared.engine, prepared.dataset.samples
    requests = estimated_requests(samples, prepared.instruction_vectors, config.wici)
    difficult = config.wici.probes == "difficult"
    cost = engine.cost(requests)
    calibration = requests[: min(len(samples), 16)]
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
    return (
        f"dry run: {len(samples)} samples, wICI with {config.wici.probes} probes "
        f"({config.wici.n_probes} per candidate), model {engine.model_id} on {engine.device}\n"
        f"  requests: {cost.requests} ({cost.distinct} distinct, "
        f"{cost.stored} already in the store)\n"
        f"  tokens to run: ~{cost.tokens:,} (shared demo prefixes counted once"
        + ("; nearest neighbours stand in for the difficult probes" if difficult else "")
        + ")\n"
        f"  model FLOPs: ~{cost.flops / 1e12:.2f} TFLOP\n"
        f"  estimated scoring time: {estimate}{speed}"
    )


def _prepare(
    config: RunConfig, log: Callable[[str], None], lap: Callable[[str], None]
) -> _Prepared:
    dataset = read_dataset(config.data, config.format, config.fields, config.skip_invalid)
    samples = dataset.samples
    if len(samples) < 2:
        raise InputError(str(dataset.path), f"{len(samples)} valid rows: wICI needs at least 2")
    duplicates = len(samples) - len({s.id for s in samples})
    log(
        f"read {dataset.n_rows} rows ({dataset.schema}, {dataset.container}) from {dataset.path}"
        + (f"; {len(dataset.invalid)} invalid rows skipped" if dataset.invalid else "")
        + (f"; {duplicates} exact duplicates (see duplicate_of)" if duplicates else "")
    )
    lap("read")

    embedder = Embedder(config.embedder)
    instruction_vectors = embedder.encode([s.instruction_text for s in samples])
    full_vectors = embedder.encode([s.full_text for s in samples])
    log(f"embedded {len(samples)} samples with {config.embedder}")
    lap("embed")

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
    return _Prepared(dataset, instruction_vectors, full_vectors, engine)


def _logger(quiet: bool) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not quiet:
            print(f"[iclselect] {message}", file=sys.stderr, flush=True)

    return log

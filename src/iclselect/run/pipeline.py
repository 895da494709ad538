"""The whole job, top to bottom: read, embed, score, select, write.

prepare (read_input, embed through the store, load the model) -> score (the method plans
requests, the Engine answers) -> choose (budget, near-duplicate rule) -> write (subset,
scores.parquet, manifest.json). The CLI and the Python API (iclselect.api) are both thin
layers over these.

`compare` runs several methods through the same steps on one prepared pool, one model and one
result store, so a request two methods share is computed once.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from iclselect.embed import Embedder
from iclselect.embed.sharded import SHARD, ShardedEmbedder
from iclselect.errors import UsageError
from iclselect.infra import stages
from iclselect.infra.words import counted
from iclselect.io import Dataset, InputError, read_input, write_entry, write_subset
from iclselect.lm import Engine, Template, load_model, reference
from iclselect.lm.executors import Executor, RayExecutor, WorkerSpec
from iclselect.lm.model import LoadedModel, resolve
from iclselect.lm.precision import dtype_name
from iclselect.methods import MethodScores, Pool
from iclselect.methods.registry import Method
from iclselect.report import write_report
from iclselect.run import overlong, runner
from iclselect.run.config import RunConfig
from iclselect.run.embedding import embed_texts
from iclselect.run.outputs import (
    ModelUsed,
    manifest,
    scores_table,
    with_atlas,
    write_manifest,
    write_scored_subset,
    write_scores,
)
from iclselect.run.preflight import check_run
from iclselect.run.rundir import staged
from iclselect.run.runner import EngineAnswerer
from iclselect.selectors import NEAR_TIE, Budget, Selection, select

# Progress and notices; the CLI prints them to stderr as "[iclselect] ...", and a library user
# sees only warnings unless they configure logging (logging.basicConfig(level=logging.INFO)).
log = logging.getLogger("iclselect")


@dataclass
class Prepared:
    dataset: Dataset
    pool: Pool
    engine: Engine | None
    timings: dict[str, float]

    def __enter__(self) -> Prepared:
        return self

    def __exit__(self, *exc: object) -> None:
        """A run's end: the engine's store is closed and its Ray workers stopped."""
        if self.engine is not None:
            self.engine.close()


@dataclass(kw_only=True)
class Scored:
    """One method's scores on a prepared pool, and what produced them."""

    config: RunConfig
    method: Method
    dataset: Dataset
    pool: Pool
    scores: MethodScores
    model: ModelUsed
    engine_stats: dict[str, int]  # requests asked, answered from the store, computed; tokens
    timings: dict[str, float]


@dataclass
class Choice:
    selection: Selection
    budget: Budget
    tau: float | None


@dataclass(kw_only=True)
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
    scores_data: MethodScores
    selection: Selection
    files: list[Path]  # every file written
    warning: str | None  # a budget that keeps no row, or every ranked row
    near_ties: list[int]  # rows left out whose score ties the last kept score


def prepare(
    config: RunConfig,
    methods: list[Method],
    kernel: str = "hf",
    embedder: Any = None,
    sample: int = 0,
) -> Prepared:
    """Read, embed and load the model once, for every method in `methods`. `kernel`: "hf",
    or "random" for answers drawn without a model (lm/kernel.py); `embedder`: one to use
    instead of config.embedder's (both for `bench pipeline`); `sample`: if > 0, the pool is a
    seeded sample of at most this many valid rows (a dry run's plan, its counts scaled)."""
    check_run(config, methods)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with stages.stage("read and validate"):
        dataset = read_input(
            config.data,
            format=config.format,
            fields=config.fields,
            skip_invalid=config.skip_invalid,
            dataset=config.dataset,
            split=config.split,
        )
    samples = dataset.samples
    if len(samples) < 2:
        raise InputError(
            str(dataset.path),
            f"{counted(len(samples), 'valid row')}: selection needs 2 or more",
        )
    duplicates = len(samples) - len({s.id for s in samples})
    log.info(
        f"read {counted(dataset.n_rows, 'row')} ({dataset.schema}, {dataset.container}) from "
        f"{dataset.path}"
        + (f"; {counted(len(dataset.invalid), 'invalid row')} skipped" if dataset.invalid else "")
        + (f"; {counted(duplicates, 'exact duplicate')} (see duplicate_of)" if duplicates else "")
    )
    if dataset.unused_columns:
        log.warning(
            f"warning: columns not scored (carried into the subset as they are): "
            f"{', '.join(dataset.unused_columns)}"
        )
    timings["read"] = time.perf_counter() - started
    rows = len(samples)
    if 0 < sample < rows:
        keep = np.sort(np.random.default_rng(0).choice(rows, sample, replace=False))
        samples = [samples[i] for i in keep]

    pool = Pool(samples, reference=config.template == "reference")
    if any(m.embeddings or config.tau_for(m) is not None for m in methods):
        started = time.perf_counter()
        if pool.reference:
            retrieval = [reference.retrieval_text(s) for s in samples]
            duplicate = [reference.duplicate_text(s) for s in samples]
        else:
            retrieval = [s.instruction_text for s in samples]
            duplicate = [s.full_text for s in samples]
        with stages.stage("embed (model)"):
            if embedder is not None:
                # bench pipeline's own encoder: it relies on seeing the texts in pool order,
                # and its vectors are not the named embedder's, so they stay out of the store.
                pool.instruction_vectors = embedder.encode(retrieval)
                pool.full_vectors = embedder.encode(duplicate)
            else:
                pool.instruction_vectors, pool.full_vectors = embed_texts(
                    config.embedder,
                    lambda: embedder_for(config, len(samples)),
                    [retrieval, duplicate],
                    config.store or Path(config.out) / "store.sqlite",
                    show_progress=not config.quiet,
                )
        sharded = config.executor == "ray" and len(samples) > SHARD
        log.info(
            f"embedded {len(samples)} samples with {config.embedder}"
            + (f" on {config.workers} Ray workers" if sharded else "")
        )
        timings["embed"] = time.perf_counter() - started

    engine = None
    if any(m.uses_model for m in methods):
        engine = _engine(config, kernel)
    return Prepared(dataset, pool, engine, timings)


def _engine(config: RunConfig, kernel: str) -> Engine:
    with stages.stage("load model"):
        if config.executor == "vllm":
            # vLLM holds the weights on the GPU; this copy only tokenises and counts FLOPs.
            loaded = load_model(config.model, vllm_dtype(config.dtype), "cpu")
        else:
            loaded = load_model(config.model, config.dtype, config.device)
        engine = Engine(
            loaded,
            Template(config.template, loaded.tokenizer),
            config.max_batch_tokens,
            config.max_length,
            show_progress=not config.quiet,
            store_path=config.store or Path(config.out) / "store.sqlite",
            executor=executor_for(config, loaded),
            kernel=kernel,
        )
    log.info(
        f"scoring with {loaded.model_id} ({engine.device}, {loaded.model.dtype}), "
        f"template {config.template}"
        + ("; answers drawn at random, no model" if kernel != "hf" else "")
    )
    return engine


def embedder_for(config: RunConfig, n: int) -> Embedder | ShardedEmbedder:
    """This process's embedder, or Ray workers' when the run is on Ray and the pool is more than
    one shard (below that, starting the workers costs more than they save)."""
    if config.executor == "ray" and n > SHARD:
        threads = max(1, len(os.sched_getaffinity(0)) // config.workers)
        return ShardedEmbedder(config.embedder, config.workers, config.ray_address, threads)
    return Embedder(config.embedder)


def vllm_dtype(requested: str) -> str:
    """auto on a GPU: bf16 where supported, else fp16."""
    if requested != "auto":
        return requested
    import torch

    if not torch.cuda.is_available():
        raise UsageError("--executor vllm needs a CUDA GPU; none is visible")
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def executor_for(config: RunConfig, loaded: LoadedModel) -> Executor | None:
    """None (the engine's own, in this process) or Ray workers computing the same batches."""
    if config.executor == "local":
        return None
    if config.executor == "vllm":
        from iclselect.lm.vllm_executor import VllmExecutor

        return VllmExecutor(
            resolve(config.model).location, dtype_name(loaded.model.dtype), config.max_length
        )
    spec = WorkerSpec(
        model=config.model,
        model_id=loaded.model_id,
        dtype=dtype_name(loaded.model.dtype),
        device=config.device,
        template=config.template,
        max_batch_tokens=config.max_batch_tokens,
        max_length=config.max_length,
        threads=max(1, len(os.sched_getaffinity(0)) // config.workers),
    )
    return RayExecutor(
        spec,
        workers=config.workers,
        address=config.ray_address,
        gpus_per_worker=config.gpus_per_worker,
    )


def score(
    prepared: Prepared,
    method: Method,
    method_config: Any,
    config: RunConfig,
) -> Scored:
    return score_together(prepared, [(method, method_config)], config)[0]


def score_together(
    prepared: Prepared,
    methods: list[tuple[Method, Any]],
    config: RunConfig,
) -> list[Scored]:
    """Every method's scores on the prepared pool; model methods' rounds advance together and
    share the engine, so a request two of them ask goes to the engine once."""
    engine = prepared.engine
    answerers = [EngineAnswerer(engine) if engine and m.uses_model else None for m, _ in methods]
    all_scores = runner.drive_together(methods, prepared.pool, answerers)
    started = time.perf_counter()
    with stages.stage("tokenise"):
        fits = overlong.own_fits(prepared.pool, engine) if engine else None
    fitting = time.perf_counter() - started
    scored = []
    for (method, _), (scores, seconds), answerer in zip(
        methods, all_scores, answerers, strict=True
    ):
        if scores.refusal:
            raise UsageError(scores.refusal)
        for warning in scores.warnings:
            log.warning(f"warning: {warning}")
        stats: dict[str, int] = {}
        if engine and fits is not None:
            scores = overlong.apply(scores, fits, engine.max_length)
            stats = {key: 0 for key in engine.stats} | (answerer.stats if answerer else {})
            stats["corrupt"] = engine.store.corrupt if engine.store is not None else 0
            _log_engine(method.name, stats, config.max_length)
            cuts = overlong.describe(fits, prepared.pool.rows, engine.max_length)
            if cuts:
                log.info(f"{method.name}: {cuts}")
        scored.append(
            Scored(
                config=config,
                method=method,
                dataset=prepared.dataset,
                pool=prepared.pool,
                scores=scores,
                model=_model_used(engine),
                engine_stats=stats,
                timings={**prepared.timings, "score": seconds + fitting},
            )
        )
    return scored


def _model_used(engine: Engine | None) -> ModelUsed:
    if engine is None:
        return ModelUsed()
    return ModelUsed(engine.model_id, engine.template.fingerprint, dtype_name(engine.model.dtype))


def _log_engine(name: str, stats: dict[str, int], max_length: int) -> None:
    log.info(
        f"{name}: {stats['requests']} requests, {stats['stored']} answered from the "
        f"store, {stats['computed']} computed ({stats['tokens']} tokens)"
        + (f"; {stats['corrupt']} corrupt store entries recomputed" if stats["corrupt"] else "")
        + (
            f"; {stats['oom_splits']} forward passes split in halves after running out of "
            "device memory"
            if stats["oom_splits"]
            else ""
        )
        + (
            f"; {stats['truncated']} answers cut to fit --max-length {max_length} "
            "(context from the left, a demo before the rest; a response at its end only "
            "where it alone fills the window)"
            if stats["truncated"]
            else ""
        )
    )


def choose(scored: Scored, budget: Budget, tau: float | None = None) -> Choice:
    """Select under `budget`; tau None = the run's --tau, else the method's own."""
    tau = tau if tau is not None else scored.config.tau_for(scored.method)
    scores, pool = scored.scores, scored.pool
    ids = [sample.id for sample in pool.samples]
    with stages.stage("select (near-duplicates)"):
        selection = select(
            scores.score,
            budget,
            scores.excluded,
            vectors=pool.full_vectors,
            tau=tau,
            ids=ids,
            higher_first=scores.higher_first,
        )
    return Choice(selection, budget, tau)


def effective_config(scored: Scored, choice: Choice, out: Path) -> dict[str, Any]:
    """The config that repeats this run: `iclselect run --config manifest.json`."""
    dataset, config = scored.dataset, scored.config
    data = config.data if isinstance(config.data, str) else str(dataset.path)
    return {
        **asdict(replace(config, data=data)),
        "out": str(out),
        "method": scored.method.name,
        "tau": choice.tau,
        "fraction": choice.budget.fraction,
        "count": choice.budget.count,
        "threshold": choice.budget.threshold,
    }


def write(
    scored: Scored,
    choice: Choice,
    out: Path,
    overwrite: bool = False,
) -> RunResult:
    """Write subset, scores.parquet and manifest.json (and what --add-scores and a
    LLaMA-Factory input ask for) to `out`, all published together (rundir.staged); an earlier
    run there is replaced only with `overwrite`."""
    dataset, samples, scores = scored.dataset, scored.pool.samples, scored.scores
    selection, method = choice.selection, scored.method
    timings = dict(scored.timings)
    started = time.perf_counter()
    kept_rows = [samples[i].row for i in selection.selected]
    with staged(out, overwrite) as stage:
        with stages.stage("write subset"):
            subset = write_subset(dataset, kept_rows, stage)
        with stages.stage("write scores"):
            table = scores_table(dataset, scores, selection)
            if scored.pool.full_vectors is not None:
                table = with_atlas(table, dataset, scored.pool.atlas())
            write_scores(stage / "scores.parquet", table)
        files = [subset, stage / "scores.parquet"]
        if scored.config.add_scores:
            rows = sorted(kept_rows)
            files.append(write_scored_subset(stage / "subset_scored", dataset, table, rows))
        if dataset.entry is not None:
            files.append(write_entry(stage, dataset.entry, subset, method.name))
        if scored.config.report:
            # Listed before it is written (the page is built from the manifest), so that the
            # manifest names every output of the run.
            files.append(stage / "report.html")
        timings["select_and_write"] = time.perf_counter() - started
        timings["total"] = sum(timings.values())
        with stages.stage("write manifest"):
            content = manifest(
                dataset,
                table,
                scores,
                config=effective_config(scored, choice, out),
                model=scored.model,
                files=files,
                timings=timings,
                engine_stats=scored.engine_stats,
                cut=cut_of(scored, choice),
            )
            write_manifest(stage / "manifest.json", content)
        if scored.config.report:
            with stages.stage("report"):
                write_report(stage, dataset)
    files = [out / path.name for path in [*files, Path("manifest.json")]]
    log.info(f"{method.name}: kept {content['kept']} of {counted(dataset.n_rows, 'row')}")
    best = [
        (selection.rank[i], samples[i].row, float(scores.score[i]), samples[i].instruction_text)
        for i in selection.selected[:5]
    ]
    return RunResult(
        method=method.name,
        out=out,
        subset=out / subset.name,
        scores=out / "scores.parquet",
        manifest=out / "manifest.json",
        rows=dataset.n_rows,
        kept=content["kept"],
        dropped_by_reason=content["dropped_by_reason"],
        best=best,
        kept_response_chars=float(
            np.mean([len(samples[i].response) for i in selection.selected] or [0])
        ),
        seconds=timings["score"],
        engine=scored.engine_stats,
        scores_data=scores,
        selection=selection,
        files=files,
        warning=selection.warning(),
        near_ties=content["cut"]["near_ties"],
    )


def cut_of(scored: Scored, choice: Choice) -> dict[str, Any]:
    """The last kept score, and the source rows left below budget with a score that ties it to
    within NEAR_TIE (relative): among those, input order decided what was kept."""
    selection, samples = choice.selection, scored.pool.samples
    last = float(scored.scores.score[selection.selected[-1]]) if selection.selected else None
    return {
        "last_kept_score": last,
        "near_ties": [samples[i].row for i in selection.near_ties],
        "near_tie_tolerance": NEAR_TIE,
    }

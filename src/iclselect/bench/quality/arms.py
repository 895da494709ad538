"""The arms of a `bench quality` run and running one, resumably.

An arm is a subset to fine-tune on: a method's selection at a budget, a random subset (one per
seed), a length-matched random subset of a method's selection (one per seed), the whole pool,
or nothing (the untuned model). Arms run one after another, each in its own directory under
OUT/arms keyed by everything that decides its numbers (model, template, training config,
subset rows, eval items): a finished arm is read back instead of rerun, and an interrupted one
resumes from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from iclselect.bench.quality.matching import matched_draw
from iclselect.bench.quality.presets import ArmSpec, Preset, QualityConfig
from iclselect.io import replace_file
from iclselect.io.errors import InputError
from iclselect.lm.model import LoadedModel, load_model
from iclselect.lm.templates import Template
from iclselect.methods.registry import get
from iclselect.records import Sample
from iclselect.run.config import RunConfig
from iclselect.run.outputs import higher_first
from iclselect.run.pipeline import choose, prepare, score
from iclselect.selectors import Budget, select
from iclselect.tune.evalsets import EvalSet
from iclselect.tune.evaluate import evaluate
from iclselect.tune.finetune import examples, finetune, training_dtype

RESULT_VERSION = 2  # result.json holds per-item eval values (the bootstrap needs them)


@dataclass
class Arm:
    name: str  # "wici@5%", "random-s1@1%", "wici-matched-s0@5%", "full", "untuned"
    method: str  # the label of a method, or "random", "matched", "full", "untuned"
    budget: float | None
    indices: list[int]  # pool sample indices trained on
    seed: int | None = None
    of: str | None = None  # matched: the method whose length distribution it copies


def plan_arms(
    config: QualityConfig,
    preset: Preset,
    specs: list[ArmSpec],
    run_config: RunConfig,
    log: Callable[[str], None],
) -> tuple[list[Arm], list[Sample], dict[str, Any], dict[str, list[int]]]:
    """Score the pool with every method (through the usual pipeline and store) and turn each
    method's selection at each budget, and its controls, into arms. Also each method's
    ranking of the whole pool, as rows of the pool file (the order it would select them in)."""
    methods = [get(name) for name in dict.fromkeys([m for _, m, _ in specs] + ["random"])]
    with prepare(run_config, methods) as prepared:
        pool = prepared.pool.samples
        scoring: dict[str, Any] = {}
        rankings: dict[str, Callable[[Budget], list[int]]] = {}
        for label, name, fixed in specs:
            method = get(name)
            options = {**run_config.options_for(method, prefixed_only=True), **fixed}
            scored = score(prepared, method, method.configure(options), run_config)
            scoring[label] = {"seconds": scored.timings["score"], "engine": scored.engine_stats}
            rankings[label] = lambda budget, scored=scored: (
                choose(scored, budget).selection.selected
            )
        for name, path in config.scores.items():
            rankings[name] = ranking_from_file(path, pool)
        random = get("random")
        draws = [
            score(prepared, random, random.configure({"seed": seed}), run_config)
            for seed in range(preset.seeds)
        ]
    lengths = [len(s.response) for s in pool]
    arms: list[Arm] = [Arm("untuned", "untuned", None, [])]
    for budget in preset.budgets:
        label = f"{budget * 100:g}%"
        chosen = {name: ranking(Budget(fraction=budget)) for name, ranking in rankings.items()}
        arms += [Arm(f"{name}@{label}", name, budget, rows) for name, rows in chosen.items()]
        for seed, scored in enumerate(draws):
            rows = choose(scored, Budget(fraction=budget)).selection.selected
            arms.append(Arm(f"random-s{seed}@{label}", "random", budget, rows, seed))
        # Longest-response is the length baseline itself: its control would be itself.
        for name, rows in chosen.items():
            if name == "longest" or not rows:
                continue
            for seed in range(preset.n_matched):
                arms.append(
                    Arm(
                        f"{name}-matched-s{seed}@{label}",
                        "matched",
                        budget,
                        matched_draw(lengths, rows, seed),
                        seed,
                        of=name,
                    )
                )
    if preset.full:
        arms.append(Arm("full", "full", 1.0, list(range(len(pool)))))
    orders = {
        name: [pool[i].row for i in ranking(Budget(fraction=1.0))]
        for name, ranking in rankings.items()
    }
    return arms, pool, scoring, orders


def ranking_from_file(path: str, pool: list[Sample]) -> Callable[[Budget], list[int]]:
    """Selection by the `score` column of an earlier run's scores.parquet on the same pool."""
    read = pq.read_table(path, columns=["row", "score"])
    table = read.to_pylist()
    by_row = {s.row: i for i, s in enumerate(pool)}
    outside = [r["row"] for r in table if r["row"] not in by_row]
    if outside:
        raise InputError(path, f"row {outside[0]} is not in the pool: score the same pool rows")
    values = np.full(len(pool), np.nan)
    for r in table:
        values[by_row[r["row"]]] = np.nan if r["score"] is None else r["score"]
    ids = [s.id for s in pool]
    first = higher_first(read.schema)
    return lambda budget: select(values, budget, {}, ids=ids, higher_first=first).selected


def run_arm(
    arm: Arm,
    pool: list[Sample],
    eval_sets: list[EvalSet],
    *,
    preset: Preset,
    config: QualityConfig,
    model_id: str,
    template: Template,
    out: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Fine-tune on the arm's rows and evaluate; read back if done, resume if interrupted."""
    key = arm_key(
        arm, pool, eval_sets, preset=preset, model_id=model_id, template=template.fingerprint
    )
    workdir = out / "arms" / arm.name.replace("%", "pct").replace("@", "-") / key[:12]
    done = workdir / "result.json"
    if done.is_file():
        log(f"{arm.name}: done earlier, read from {done}")
        return json.loads(done.read_text(encoding="utf-8"))
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = [pool[i] for i in arm.indices]
    result: dict[str, Any] = {
        "arm": arm.name,
        "method": arm.method,
        "budget": arm.budget,
        "seed": arm.seed,
        "of": arm.of,
        "rows": len(chosen),
        "pool_rows": [s.row for s in chosen],
        "mean_response_chars": statistics.fmean(len(s.response) for s in chosen) if chosen else 0.0,
    }
    loaded = load_model(config.model, "fp32", config.device)
    model = loaded.model
    if chosen:
        model, train_log = finetune(
            model,
            examples(chosen, template, preset.train.max_length),
            preset.train,
            workdir,
            show_progress=not config.quiet,
            log=lambda m: log(f"{arm.name}: {m}"),
        )
        result["train"] = asdict(train_log)
    dtype = training_dtype(preset.train.precision, next(model.parameters()).device)
    tuned = LoadedModel(model.to(dtype), loaded.tokenizer, f"{loaded.model_id}+{arm.name}")
    started = time.perf_counter()
    result["eval"] = evaluate(
        tuned,
        template,
        eval_sets,
        preset.generate_tokens,
        max_length=preset.max_length,
        show_progress=not config.quiet,
    )
    result["eval_seconds"] = time.perf_counter() - started
    result["key"] = key
    nll = ", ".join(f"{name} {v['nll']:.4f}" for name, v in result["eval"].items())
    log(f"{arm.name}: NLL {nll}")
    replace_file(done, lambda temp: temp.write_text(json.dumps(result), "utf-8"))
    return result


def arm_key(
    arm: Arm,
    pool: list[Sample],
    eval_sets: list[EvalSet],
    *,
    preset: Preset,
    model_id: str,
    template: str,
) -> str:
    payload = {
        "version": RESULT_VERSION,
        "model": model_id,
        "template": template,
        "train": asdict(preset.train),
        "rows": [pool[i].id for i in arm.indices],
        "generate": preset.generate_tokens,
        "max_length": preset.max_length,
        "eval": [[s.name, items_digest(s)] for s in eval_sets],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def items_digest(eval_set: EvalSet) -> str:
    """sha256 of an eval set's items: the same items wherever the file was installed."""
    text = json.dumps(
        [
            [[[t.role, t.content] for t in i.prompt], i.reference, i.choices, i.number]
            for i in eval_set.items
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def load_base(config: QualityConfig) -> tuple[str, Template]:
    """The identity every arm's key names (each arm that runs loads fresh weights)."""
    base = load_model(config.model, "fp32", config.device)
    return base.model_id, Template(config.template, base.tokenizer)

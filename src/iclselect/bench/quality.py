"""`iclselect bench quality`: does a selected subset teach? Fine-tune on each method's subset,
on random subsets of the same size and on the whole pool, with the same hyperparameters, and
score every tuned model (and the untuned one) on held-out sets.

Arms run one after another, each in its own directory under OUT/arms, keyed by everything that
decides its numbers (model, template, training config, subset rows, eval sets): a finished arm
is read back instead of rerun, and an interrupted one resumes from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from iclselect.io import read_input, replace_file
from iclselect.io.errors import InputError
from iclselect.lm.model import DEFAULT_MODEL, LoadedModel, load_model
from iclselect.lm.precision import cpu_name
from iclselect.lm.templates import Template
from iclselect.methods.registry import get
from iclselect.pipeline import RunConfig, choose, prepare, score
from iclselect.records import Sample
from iclselect.selectors import Budget, select
from iclselect.tune.evalsets import EvalSet, check_disjoint, held_out, load_eval_set
from iclselect.tune.evaluate import evaluate
from iclselect.tune.finetune import TrainConfig, examples, finetune, training_dtype

# Method names users give, and what runs them: "longest" is the length baseline, longest first.
ALIASES = {"longest": ("length", {"order": "long"})}


@dataclass(frozen=True)
class Preset:
    pool_rows: int  # the first rows of the pool file (0: all)
    budgets: tuple[float, ...]
    seeds: int  # random subsets per budget
    train: TrainConfig
    heldout: int  # held-out pool rows evaluated on
    eval_files: tuple[tuple[str, int], ...]  # (file under the data dir, rows kept; 0: all)
    generate_tokens: int  # greedy tokens per GSM8K answer (0: no exact match)
    options: dict[str, Any] = field(default_factory=dict)  # method options ("wici.n_probes")
    max_length: int = 1024  # scoring and eval context limit
    eval_rows: int = 0  # if > 0, a cap on every eval set's items (a quick look)


_EVAL = ("eval/gsm8k_train_first500.jsonl", "eval/mmlu_dev_5shot.jsonl.gz",
         "eval/self_instruct_seed_tasks.jsonl")  # fmt: skip

PRESETS = {
    # Sized for 2 CPU cores in under an hour: 2,000 Alpaca rows, 1% and 5% budgets, one epoch.
    # Measured there: wICI with 2 probes per candidate alone took 23 min (1.9M tokens), and
    # each of the 18 evaluations over a minute, so wICI gets 1 probe, ICon 40 exactly scored
    # candidates against 8 assessment rows (the selector ranks the rest), the eval sets are
    # capped, and GSM8K gets no greedy answers (the 135M model solves none, at 15 s an arm).
    "cpu-small": Preset(
        pool_rows=2000,
        budgets=(0.01, 0.05),
        seeds=3,
        train=TrainConfig(epochs=1, lr=5e-5, batch_size=4, max_length=512, checkpoint_every=100),
        heldout=100,
        eval_files=((_EVAL[0], 40), (_EVAL[1], 40), (_EVAL[2], 80)),
        generate_tokens=0,
        options={"wici.n_probes": 1, "icon.exact": 40, "icon.assessment_size": 8},
        max_length=512,
    ),
    # A 0.5-8B model from a local directory (--model), the whole pool, paper method settings.
    "gpu": Preset(
        pool_rows=0,
        budgets=(0.01, 0.05, 0.10),
        seeds=3,
        train=TrainConfig(epochs=3, lr=2e-5, batch_size=16, max_length=2048, checkpoint_every=200),
        heldout=1000,
        eval_files=tuple((name, 0) for name in _EVAL),
        generate_tokens=320,
    ),
}

DEFAULT_METHODS = ("wici", "miwv", "icon", "ifd", "longest")
POOL_FILE = "alpaca_pool_21k.json.gz"


@dataclass
class QualityConfig:
    out: str
    preset: str = "cpu-small"
    pool: str | None = None  # default: <data_dir>/alpaca_pool_21k.json.gz
    data_dir: str = "../shared/data"
    methods: tuple[str, ...] = DEFAULT_METHODS
    scores: dict[str, str] = field(default_factory=dict)  # name -> a run's scores.parquet
    evals: tuple[str, ...] = ()  # more eval files, any supported format
    model: str = DEFAULT_MODEL
    template: str = "chat"
    device: str = "auto"
    store: str | None = None  # scoring result store; None = <out>/store.sqlite
    quiet: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)  # Preset or TrainConfig fields

    def resolved(self) -> Preset:
        if self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {', '.join(PRESETS)}; got {self.preset!r}")
        preset = PRESETS[self.preset]
        train_keys = set(asdict(preset.train))
        train = {k: v for k, v in self.overrides.items() if k in train_keys}
        rest = {k: v for k, v in self.overrides.items() if k not in train_keys}
        return replace(preset, train=replace(preset.train, **train), **rest)


@dataclass
class Arm:
    name: str  # "wici@5%", "random-s1@1%", "full", "untuned"
    method: str  # "wici", "random", "full", "untuned"
    budget: float | None
    indices: list[int]  # pool sample indices trained on
    seed: int | None = None


@dataclass
class Quality:
    summary: dict[str, Any]  # every number and the config: quality.json
    table: str  # Markdown
    files: list[Path]


def run_quality(config: QualityConfig) -> Quality:
    begun = time.perf_counter()
    preset = config.resolved()
    log = logging.getLogger("iclselect").info
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(config.data_dir)
    pool_path = Path(config.pool) if config.pool else data_dir / POOL_FILE
    if not pool_path.exists():
        raise InputError(str(pool_path), "no such pool file (set --pool or --data-dir)")
    # The pool is the first valid rows; a row with an empty field is not a training sample.
    source = read_input(str(pool_path), skip_invalid=True)
    n_pool = min(preset.pool_rows or len(source.samples), len(source.samples))
    rows = source.table([s.row for s in source.samples[:n_pool]]).to_pylist()
    run_config = RunConfig(
        data=rows, out=str(out), model=config.model, template=config.template, dtype="auto",
        device=config.device, options=dict(preset.options), max_length=preset.max_length,
        store=config.store or str(out / "store.sqlite"), report=False, quiet=config.quiet,
    )  # fmt: skip

    eval_sets = _eval_sets(config, preset, pool_path, n_pool, source.samples[:n_pool], data_dir)
    log(
        "eval sets (each checked disjoint from the pool by sha256 of its folded prompts): "
        + ", ".join(f"{s.name} ({len(s.items)})" for s in eval_sets)
    )
    started = time.perf_counter()
    arms, pool, scoring = _plan_arms(config, preset, run_config, log)
    scoring_seconds = time.perf_counter() - started

    # The identity every arm's key names; each arm that runs loads fresh weights of its own.
    base = load_model(config.model, "fp32", config.device)
    template = Template(config.template, base.tokenizer)
    results = []
    for n, arm in enumerate(arms, start=1):
        log(f"arm {n}/{len(arms)}: {arm.name} ({len(arm.indices)} rows)")
        results.append(
            _run_arm(arm, pool, eval_sets, preset, config, base.model_id, template, out, log)
        )
    summary = {
        "date": date.today().isoformat(),
        "machine": f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "config": {**asdict(config), "preset_resolved": asdict(preset)},
        "pool": {"path": str(pool_path), "rows": n_pool},
        "eval_sets": [
            {
                "name": s.name,
                "path": s.path,
                "items": len(s.items),
                "rows": s.n_rows,
                "empty_reference_left_out": s.n_empty,
                "disjoint_from_pool": True,
            }
            for s in eval_sets
        ],
        "scoring": {**scoring, "seconds": scoring_seconds},
        "arms": results,
        "seconds": time.perf_counter() - begun,
    }
    table = markdown(summary)
    files = _write_outputs(out, summary, table)
    return Quality(summary, table, files)


def _plan_arms(
    config: QualityConfig, preset: Preset, run_config: RunConfig, log: Callable[[str], None]
) -> tuple[list[Arm], list[Sample], dict[str, Any]]:
    """Score the pool with every method (through the usual pipeline and store) and turn each
    method's selection at each budget into an arm."""
    if "random" in config.methods:
        raise ValueError("--methods: random always runs, as the baseline (--seeds sets how often)")
    names = [ALIASES.get(name, (name, {}))[0] for name in config.methods]
    methods = [get(name) for name in dict.fromkeys([*names, "random"])]
    prepared = prepare(run_config, methods)
    pool = prepared.pool.samples
    arms: list[Arm] = [Arm("untuned", "untuned", None, [])]
    scoring: dict[str, Any] = {}
    rankings: dict[str, Callable[[Budget], list[int]]] = {}
    for shown in config.methods:
        name, fixed = ALIASES.get(shown, (shown, {}))
        method = get(name)
        options = {**run_config.options_for(name, prefixed_only=True), **fixed}
        scored = score(prepared, method, method.configure(options), run_config)
        scoring[shown] = {"seconds": scored.timings["score"], "engine": scored.engine_stats}
        rankings[shown] = lambda budget, scored=scored: choose(scored, budget).selection.selected
    for name, path in config.scores.items():
        rankings[name] = _ranking_from_file(path, pool)
    random = get("random")
    draws = [
        score(prepared, random, random.configure({"seed": seed}), run_config)
        for seed in range(preset.seeds)
    ]
    for budget in preset.budgets:
        label = f"{budget * 100:g}%"
        for name, ranking in rankings.items():
            arms.append(Arm(f"{name}@{label}", name, budget, ranking(Budget(fraction=budget))))
        for seed, scored in enumerate(draws):
            chosen = choose(scored, Budget(fraction=budget)).selection.selected
            arms.append(Arm(f"random-s{seed}@{label}", "random", budget, chosen, seed))
    arms.append(Arm("full", "full", 1.0, list(range(len(pool)))))
    return arms, pool, scoring


def _ranking_from_file(path: str, pool: list[Sample]) -> Callable[[Budget], list[int]]:
    """Selection by the `score` column of an earlier run's scores.parquet on the same pool."""
    table = pq.read_table(path, columns=["row", "score"]).to_pylist()
    by_row = {s.row: i for i, s in enumerate(pool)}
    outside = [r["row"] for r in table if r["row"] not in by_row]
    if outside:
        raise InputError(path, f"row {outside[0]} is not in the pool: score the same pool rows")
    score = np.full(len(pool), np.nan)
    for r in table:
        score[by_row[r["row"]]] = np.nan if r["score"] is None else r["score"]
    ids = [s.id for s in pool]
    return lambda budget: select(score, budget, {}, ids=ids).selected


def _eval_sets(
    config: QualityConfig,
    preset: Preset,
    pool_path: Path,
    n_pool: int,
    pool: list[Sample],
    data_dir: Path,
) -> list[EvalSet]:
    sets = []
    if preset.heldout:
        sets.append(held_out(pool_path, pool, n_pool, preset.heldout))
    for name, rows in preset.eval_files:
        sets.append(load_eval_set(data_dir / name, rows))
    sets += [load_eval_set(path) for path in config.evals]
    for eval_set in sets:
        if preset.eval_rows:
            eval_set.items = eval_set.items[: preset.eval_rows]
        check_disjoint(eval_set, pool)
    return sets


def _run_arm(
    arm: Arm,
    pool: list[Sample],
    eval_sets: list[EvalSet],
    preset: Preset,
    config: QualityConfig,
    model_id: str,
    template: Template,
    out: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    key = _arm_key(arm, pool, eval_sets, preset, model_id, template.fingerprint)
    workdir = out / "arms" / arm.name.replace("%", "pct").replace("@", "-") / key[:12]
    done = workdir / "result.json"
    if done.is_file():
        log(f"{arm.name}: done earlier, read from {done}")
        return json.loads(done.read_text(encoding="utf-8"))
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = [pool[i] for i in arm.indices]
    result: dict[str, Any] = {
        "arm": arm.name, "method": arm.method, "budget": arm.budget, "seed": arm.seed,
        "rows": len(chosen), "pool_rows": [s.row for s in chosen],
        "mean_response_chars": statistics.fmean(len(s.response) for s in chosen) if chosen else 0.0,
    }  # fmt: skip
    loaded = load_model(config.model, "fp32", config.device)
    model = loaded.model
    if chosen:
        model, train_log = finetune(
            model, examples(chosen, template, preset.train.max_length), preset.train, workdir,
            show_progress=not config.quiet, log=lambda m: log(f"{arm.name}: {m}"),
        )  # fmt: skip
        result["train"] = asdict(train_log)
    dtype = training_dtype(preset.train.precision, next(model.parameters()).device)
    tuned = LoadedModel(model.to(dtype), loaded.tokenizer, f"{loaded.model_id}+{arm.name}")
    started = time.perf_counter()
    result["eval"] = evaluate(
        tuned, template, eval_sets, preset.generate_tokens, max_length=preset.max_length,
        show_progress=not config.quiet,
    )  # fmt: skip
    result["eval_seconds"] = time.perf_counter() - started
    result["key"] = key
    nll = ", ".join(f"{name} {v['nll']:.4f}" for name, v in result["eval"].items())
    log(f"{arm.name}: NLL {nll}")
    replace_file(done, lambda temp: temp.write_text(json.dumps(result, indent=1), "utf-8"))
    return result


def _arm_key(
    arm: Arm,
    pool: list[Sample],
    eval_sets: list[EvalSet],
    preset: Preset,
    model_id: str,
    template: str,
) -> str:
    payload = {
        "model": model_id, "template": template, "train": asdict(preset.train),
        "rows": [pool[i].id for i in arm.indices], "generate": preset.generate_tokens,
        "max_length": preset.max_length,
        "eval": [[s.name, s.path, len(s.items)] for s in eval_sets],
    }  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def metrics(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(eval set, metric) columns: NLL for every set, accuracy where a set has it."""
    first = summary["arms"][0]["eval"]
    columns = []
    for name, values in first.items():
        columns.append((name, "nll"))
        if "accuracy" in values:
            columns.append((name, "accuracy"))
    return columns


def markdown(summary: dict[str, Any]) -> str:
    """One row per method and budget (random: mean ± sd over seeds), then full and untuned;
    then, per method, budget and set, the gap to random in units of random's spread."""
    columns = metrics(summary)
    header = ["arm", "rows", "mean response chars", "train s"] + [
        f"{name} {'NLL' if metric == 'nll' else 'acc'}" for name, metric in columns
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, group in _groups(summary["arms"]):
        cells = [
            label,
            f"{group[0]['rows']}",
            f"{statistics.fmean(a['mean_response_chars'] for a in group):.0f}",
            f"{statistics.fmean(a.get('train', {}).get('seconds', 0.0) for a in group):.0f}",
        ]
        for name, metric in columns:
            values = [a["eval"][name][metric] for a in group]
            cells.append(_mean_sd(values, metric))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + verdicts(summary) + "\n"


def verdicts(summary: dict[str, Any]) -> str:
    """Each method against random (gap in random standard deviations) and against full."""
    arms = summary["arms"]
    full = next((a for a in arms if a["method"] == "full"), None)
    lines = []
    for name, metric in metrics(summary):
        better = min if metric == "nll" else max
        for budget in sorted({a["budget"] for a in arms if a["method"] == "random"}):
            randoms = [a["eval"][name][metric] for a in arms
                       if a["method"] == "random" and a["budget"] == budget]  # fmt: skip
            mean = statistics.fmean(randoms)
            spread = statistics.stdev(randoms) if len(randoms) > 1 else 0.0
            for arm in arms:
                if arm["budget"] != budget or arm["method"] in ("random", "full", "untuned"):
                    continue
                value = arm["eval"][name][metric]
                gap = (mean - value) if metric == "nll" else (value - mean)
                units = f", {gap / spread:+.1f} sd" if spread > 0 else ""
                word = "better than" if gap > 0 else "no better than"
                versus_full = ""
                if full is not None:
                    f = full["eval"][name][metric]
                    versus_full = "; better than full" if better(value, f) == value != f else ""
                lines.append(
                    f"- {name} {metric}: {arm['arm']} {value:.4f}, {word} random's mean "
                    f"{mean:.4f} ± {spread:.4f} (by {gap:+.4f}{units}){versus_full}"
                )
    return "\n".join(lines)


def _groups(arms: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        if arm["method"] == "random":
            n = sum(1 for a in arms if a["method"] == "random" and a["budget"] == arm["budget"])
            label = f"random@{arm['budget'] * 100:g}% (mean ± sd, {n} seeds)"
        else:
            label = arm["arm"]
        groups.setdefault(label, []).append(arm)
    return list(groups.items())


def _mean_sd(values: list[float], metric: str) -> str:
    digits = 4 if metric == "nll" else 3
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _write_outputs(out: Path, summary: dict[str, Any], table: str) -> list[Path]:
    from iclselect.report.plots import quality_plot

    files = [out / "quality.json", out / "quality.md", out / "quality.csv", out / "quality.png"]
    replace_file(files[0], lambda t: t.write_text(json.dumps(summary, indent=1), "utf-8"))
    replace_file(files[1], lambda t: t.write_text(table, "utf-8"))
    replace_file(files[2], lambda t: t.write_text(_csv(summary), "utf-8"))
    replace_file(files[3], lambda t: quality_plot(summary, metrics(summary), t))
    return files


def _csv(summary: dict[str, Any]) -> str:
    import csv
    import io

    columns = metrics(summary)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["arm", "method", "budget", "seed", "rows", "mean_response_chars", "train_seconds"]
        + [f"{name}.{metric}" for name, metric in columns]
    )
    for arm in summary["arms"]:
        writer.writerow(
            [arm["arm"], arm["method"], arm["budget"], arm["seed"], arm["rows"],
             f"{arm['mean_response_chars']:.1f}", f"{arm.get('train', {}).get('seconds', 0):.1f}"]
            + [arm["eval"][name][metric] for name, metric in columns]
        )  # fmt: skip
    return buffer.getvalue()


def append_benchmarks(path: Path, result: Quality, command: str) -> None:
    """A section for BENCHMARKS.md: command, machine, pool, eval sets, table and verdicts, and
    the plot copied under docs/ beside it."""
    summary = result.summary
    preset = summary["config"]["preset"]
    image = path.parent / "docs" / f"bench_quality_{preset}.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(next(f for f in result.files if f.suffix == ".png").read_bytes())
    train = summary["config"]["preset_resolved"]["train"]
    kind = "LoRA" if train["lora"] else "full fine-tuning"
    sets = "; ".join(
        f"{s['name']} ({s['items']} items"
        + (
            f", {n} with an empty reference left out"
            if (n := s["empty_reference_left_out"])
            else ""
        )
        + ")"
        for s in summary["eval_sets"]
    )
    scoring = summary["scoring"]["seconds"] / 60
    about = (
        f"Machine: {summary['machine']}. Whole command: {summary['seconds'] / 60:.1f} min "
        f"(scoring the pool: {scoring:.1f} min). Pool: the first {summary['pool']['rows']} valid "
        f"rows of `{summary['pool']['path']}`. Training, every arm: {kind}, {train['epochs']} "
        f"epoch(s), lr {train['lr']}, batch {train['batch_size']}, at most {train['max_length']} "
        f"tokens, seed {train['seed']}, precision {train['precision']}, loss on response tokens "
        f"only. Eval sets, each checked disjoint from the pool (sha256 of the folded prompt): "
        f"{sets}. NLL is the mean per-token NLL of the reference reply (lower is better); acc is "
        "exact match (MMLU: the likeliest letter; GSM8K: the final number of a greedy answer)."
    )
    section = (
        f"\n### bench quality, {summary['date']}: preset {preset}\n\n`{command}`\n\n{about}\n\n"
        f"{result.table}\n![bench quality {preset}](docs/{image.name})\n"
    )
    with path.open("a", encoding="utf-8") as handle:
        handle.write(section)

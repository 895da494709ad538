"""`iclselect bench quality`: does a selected subset teach? Fine-tune on each method's subset,
on random subsets of the same size, on random subsets matched to each method's response
lengths and on the whole pool, with the same hyperparameters; score every tuned model (and the
untuned one) on held-out sets item by item; compare each method with its references by paired
bootstrap intervals; end with a recommendation.

    presets.py   what a run is (presets, config, arm specs)
    data.py      the pool, its held-out split and the shipped eval sets
    matching.py  length-matched random subsets
    defects.py   planted defects: a dirty pool from a clean one (--corrupt, the dirty preset)
    junk.py      how each method ranks planted rows against clean ones
    arms.py      the arms and running one (resumable)
    stats.py     paired bootstrap intervals
    verdicts.py  comparisons and the recommendation
    report.py    Markdown, CSV, JSON, BENCHMARKS.md section
    plot.py      the plot
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import torch

from iclselect.bench.quality.arms import load_base, plan_arms, run_arm
from iclselect.bench.quality.data import eval_sets, short_assessment, split_pool
from iclselect.bench.quality.defects import plant
from iclselect.bench.quality.junk import planted_summary
from iclselect.bench.quality.presets import PRESETS, Preset, QualityConfig
from iclselect.bench.quality.report import append_benchmarks, markdown, write_outputs
from iclselect.bench.quality.verdicts import (
    comparisons,
    full_gain,
    recommendation,
    recovered,
)
from iclselect.lm.precision import cpu_name
from iclselect.run.config import RunConfig

__all__ = [
    "PRESETS",
    "Preset",
    "Quality",
    "QualityConfig",
    "append_benchmarks",
    "markdown",
    "run_quality",
]


@dataclass
class Quality:
    summary: dict[str, Any]  # every number and the config: quality.json
    table: str  # Markdown, ending in the recommendation
    files: list[Path]


def run_quality(config: QualityConfig) -> Quality:
    begun = time.perf_counter()
    preset = config.resolved()
    specs = config.arm_specs(preset)
    log = logging.getLogger("iclselect").info
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    split = split_pool(config, preset)
    sets = eval_sets(config, preset, split)
    log(
        f"pool: {len(split.train)} rows of {split.path} to select from; eval sets (each checked "
        "disjoint from them by content id and folded prompt): "
        + ", ".join(f"{s.name} ({len(s.items)})" for s in sets)
    )
    model_id, template = load_base(config)
    options = dict(preset.options)
    # ICon's assessment rows and RDS+'s target rows: the same short rows of the paper's set.
    for name, key in (("icon", "icon.assessment"), ("rds", "rds.target")):
        if preset.icon_assessment_tokens and any(m == name for _, m, _ in specs):
            options[key] = str(short_assessment(template, preset.icon_assessment_tokens, out))
    rows = split.dataset.table([s.row for s in split.train]).to_pylist()
    planted = plant(rows, preset.corrupt, preset.corrupt_seed) if preset.corrupt else None
    if planted:
        rows = planted.rows
        log(f"planted {sum(planted.mask())} defective rows among {len(rows)} (defects.py)")
    run_config = RunConfig(
        data=rows,
        out=str(out),
        model=config.model,
        template=config.template,
        dtype="auto",
        device=config.device,
        options=options,
        max_length=preset.max_length,
        store=config.store or str(out / "store.sqlite"),
        report=False,
        quiet=config.quiet,
    )
    started = time.perf_counter()
    arms, pool, scoring, orders = plan_arms(config, preset, specs, run_config, log)
    scoring_seconds = time.perf_counter() - started
    results = []
    for n, arm in enumerate(arms, start=1):
        log(f"arm {n}/{len(arms)}: {arm.name} ({len(arm.indices)} rows)")
        results.append(
            run_arm(
                arm,
                pool,
                sets,
                preset=preset,
                config=config,
                model_id=model_id,
                template=template,
                out=out,
                log=log,
            )
        )
    summary: dict[str, Any] = {
        "date": date.today().isoformat(),
        "machine": f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "config": {**asdict(config), "preset_resolved": asdict(preset)},
        "pool": {
            "path": split.path,
            "rows": len(pool),
            "heldout": len(split.heldout.items) if split.heldout else 0,
        },
        "method_options": options,
        "matched": preset.n_matched,
        "eval_sets": [
            {
                "name": s.name,
                "path": s.path,
                "items": len(s.items),
                "rows": s.n_rows,
                "empty_reference_left_out": s.n_empty,
                "disjoint_from_pool": True,
            }
            for s in sets
        ],
        "scoring": {**scoring, "seconds": scoring_seconds},
        "arms": results,
        "seconds": time.perf_counter() - begun,
    }
    if planted:
        summary["planted"] = planted_summary(planted.labels, orders, results)
    summary["comparisons"] = comparisons(summary)
    summary["full_gain"] = full_gain(summary)
    summary["recovered"] = recovered(summary)
    summary["recommendation"] = recommendation(summary)
    table = markdown(summary)
    log("recommendation: " + summary["recommendation"]["text"])
    return Quality(summary, table, write_outputs(out, summary, table))

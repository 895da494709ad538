"""`iclselect compare`: several methods on the same data, model, embeddings and result store,
each writing its own run directory, then one table of cost, rank agreement and subset overlap.
"""

from __future__ import annotations

import csv
import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from iclselect.errors import UsageError
from iclselect.io import replace_file
from iclselect.methods.registry import Method, get
from iclselect.report import write_compare_report
from iclselect.run.config import RunConfig
from iclselect.run.estimate import PLAN_SAMPLE, estimate
from iclselect.run.pipeline import RunResult, choose, prepare, score_together, write
from iclselect.run.rundir import check_out


@dataclass
class Comparison:
    results: list[RunResult]
    spearman: np.ndarray  # methods x methods, over samples both scored
    overlap: np.ndarray  # |A & B| / min(|A|, |B|) of the kept subsets
    table: str  # Markdown
    files: list[Path]


def compare(config: RunConfig, names: list[str], overwrite: bool = False) -> Comparison:
    methods, configs = _methods(config, names)
    budget = config.budget()  # one budget for all: a comparison at equal size
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; --out names a directory")
    if (out / "manifest.json").exists():
        # compare.md and report.html would land beside that run's own report.
        raise UsageError(f"--out {out}: holds a single run (manifest.json); choose another --out")
    for name in names:
        check_out(out / name, overwrite)
    with prepare(config, methods) as prepared:
        everything = score_together(prepared, list(zip(methods, configs, strict=True)), config)
        results = [
            write(scored, choose(scored, budget), out / scored.method.name, overwrite)
            for scored in everything
        ]
    spearman, overlap = agreement(results)
    table = markdown(results, spearman, overlap)
    files = [out / "compare.md", out / "compare.csv"]
    replace_file(files[0], lambda temp: temp.write_text(table, encoding="utf-8"))
    replace_file(files[1], lambda temp: _write_csv(temp, results, spearman, overlap))
    if config.report:
        cost = (COST_HEADER, cost_rows(results))
        files.append(write_compare_report(out, names, spearman, overlap, cost))
    return Comparison(results, spearman, overlap, table, files)


def dry_run(config: RunConfig, names: list[str]) -> str:
    """Each method's estimate on one prepared pool, timed once on this machine. It writes
    nothing: the calibration answers go to a throwaway store."""
    methods, configs = _methods(config, names)
    config.budget()
    texts, rate = [], None
    with tempfile.TemporaryDirectory(prefix="iclselect-dry-run-") as scratch:
        config = replace(config, store=str(Path(scratch) / "store.sqlite"))
        with prepare(config, methods, sample=PLAN_SAMPLE) as prepared:
            for method, method_config in zip(methods, configs, strict=True):
                text, rate = estimate(prepared, method, method_config, rate)
                texts.append(text)
    return "\n".join(texts)


def _methods(config: RunConfig, names: list[str]) -> tuple[list[Method], list[Any]]:
    """The methods named, each with its options (which must name their method)."""
    if len(names) < 2 or len(set(names)) != len(names):
        raise UsageError("--methods needs two or more different methods, e.g. wici,ifd,random")
    methods = [get(name) for name in names]
    return methods, config.configs_for(methods)


def agreement(results: list[RunResult]) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import spearmanr

    k = len(results)
    spearman, overlap = np.eye(k), np.eye(k)
    for a in range(k):
        for b in range(a + 1, k):
            x, y = results[a].scores_data.ranking_key(), results[b].scores_data.ranking_key()
            both = np.isfinite(x) & np.isfinite(y)
            rho = spearmanr(x[both], y[both]).statistic if both.sum() > 2 else math.nan
            kept_a, kept_b = set(results[a].selection.selected), set(results[b].selection.selected)
            shared = len(kept_a & kept_b) / max(1, min(len(kept_a), len(kept_b)))
            spearman[a, b] = spearman[b, a] = rho
            overlap[a, b] = overlap[b, a] = shared
    return spearman, overlap


COST_HEADER = [
    "method",
    "scoring s",
    "requests",
    "from store",
    "computed",
    "tokens computed",
    "scored",
    "kept",
    "mean response chars kept",
]


def cost_rows(results: list[RunResult]) -> list[tuple[str, ...]]:
    """One row per method, cells as shown (COST_HEADER)."""
    rows = []
    for r in results:
        counts = [r.engine.get(key, 0) for key in ("requests", "stored", "computed", "tokens")]
        scored = int(np.isfinite(r.scores_data.score).sum())
        rows.append(
            (
                r.method,
                f"{r.seconds:.1f}",
                *map(str, counts),
                str(scored),
                str(r.kept),
                f"{r.kept_response_chars:.0f}",
            )
        )
    return rows


def markdown(results: list[RunResult], spearman: np.ndarray, overlap: np.ndarray) -> str:
    names = [r.method for r in results]
    lines = ["| " + " | ".join(COST_HEADER) + " |", "|---" * len(COST_HEADER) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cost_rows(results)]
    for title, matrix, form in (
        ("Spearman rank correlation of scores (samples both methods scored)", spearman, "+.2f"),
        ("Overlap of kept subsets, |A & B| / min(|A|, |B|)", overlap, ".2f"),
    ):
        lines += ["", title, "", "| | " + " | ".join(names) + " |"]
        lines.append("|---" * (len(names) + 1) + "|")
        for name, row in zip(names, matrix, strict=True):
            lines.append(f"| {name} | " + " | ".join(format(v, form) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(
    path: Path, results: list[RunResult], spearman: np.ndarray, overlap: np.ndarray
) -> None:
    """compare.md's tables as one: a row per method, its cost columns, then its Spearman
    correlation with and subset overlap with each method (spearman_<m>, overlap_<m>)."""
    names = [r.method for r in results]
    header = [name.replace(" ", "_") for name in COST_HEADER]
    header += [f"spearman_{m}" for m in names] + [f"overlap_{m}" for m in names]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for a, row in enumerate(cost_rows(results)):
            writer.writerow(
                [*row, *(f"{v:.4f}" for v in spearman[a]), *(f"{v:.4f}" for v in overlap[a])]
            )


def read_comparison(
    out: Path,
) -> tuple[list[str], np.ndarray, np.ndarray, tuple[list[str], list[tuple[str, ...]]]]:
    """What compare.csv in `out` holds: the methods, their Spearman and overlap matrices, and
    the cost table (COST_HEADER, rows), as write_compare_report takes them."""
    with (out / "compare.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    names = [row[0] for row in body]
    width = len(COST_HEADER)
    expected = [n.replace(" ", "_") for n in COST_HEADER]
    expected += [f"spearman_{m}" for m in names] + [f"overlap_{m}" for m in names]
    if header != expected:
        raise UsageError(f"{out / 'compare.csv'}: not the table iclselect compare writes")
    k = len(names)
    spearman = np.array([[float(v) for v in row[width : width + k]] for row in body])
    overlap = np.array([[float(v) for v in row[width + k :]] for row in body])
    return names, spearman, overlap, (COST_HEADER, [tuple(row[:width]) for row in body])

"""`iclselect bench pipeline`: the whole `iclselect run` path on N rows of real text, every host
stage timed (iclselect.infra.stages), with the engine's kernel drawing its answers at random
(lm/kernel.py, backend "random"): what is left is what the host must do to keep a GPU fed.

The rows are the shipped pool's (or --pool's) valid rows, then copies of them, each marked
" (#i)" at the end of its instruction (bench/memory.make_pool). The embedder is a model, and
on a CPU it is slow: the pool's distinct rows are embedded by the real embedder (the "embed"
stage, reported as model time with its rate), and each later copy gets its original's vectors
turned by a seeded draw to cosine ~0.995, what a few added characters do, at none of the cost.
The run's path is api.run's: prepare, score, choose, write (subset, scores, manifest, report).
`--dry-run` is timed the same way, after the run, with a fresh store.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np

from iclselect.bench.memory import make_pool
from iclselect.embed import Embedder
from iclselect.embed.embedder import DEFAULT_EMBEDDER
from iclselect.errors import UsageError
from iclselect.infra import stages
from iclselect.lm.model import DEFAULT_MODEL
from iclselect.methods.registry import get
from iclselect.run.config import RunConfig
from iclselect.run.runner import REQUESTS

SHIPPED_POOL = Path(__file__).resolve().parents[1] / "assets" / "pool" / "alpaca_pool_2600.json.gz"
EMBED, LOAD, FORWARD = "embed (model)", "load model", "model forward"
# Stages in a run's order, and what each one's rate counts.
STAGES = (
    ("read and validate", "rows"), (EMBED, "rows"), (LOAD, ""),
    ("neighbour search", "rows"), ("difficult probes (k-means)", "rows"),
    (REQUESTS, "requests"), ("tokenise", "requests"), ("pack", "requests"),
    ("store", "requests"), (FORWARD, "requests"), ("select (near-duplicates)", "rows"),
    ("write subset", "rows"), ("write scores", "rows"), ("write manifest", "rows"),
    ("report", "rows"),
)  # fmt: skip
MODEL_STAGES = (EMBED, LOAD, FORWARD)
# The engine's time for wICI on 52,002 Alpaca rows with an 8B model on one H200, 0.53 h: the
# estimate in BENCHMARKS.md ("On one GPU") from llama-1b's measured engine FLOP rate there.
H200_8B_SECONDS, H200_8B_ROWS = 0.53 * 3600, 52_002
_COPY_MARK = re.compile(r" \(#(\d+)\)")  # make_pool's mark on a copy's instruction


class CopiesEmbedder:
    """The real embedder on each distinct text; a copy (its instruction marked " (#i)" by
    make_pool) gets its original's vector turned slightly, by a draw seeded with i. A text is
    embedded once (the run, its dry run and a second size share the pool's rows); `texts` and
    `seconds` count the real embedder's work, for its rate."""

    def __init__(self, name: str) -> None:
        self.embedder = Embedder(name)
        self.known: dict[str, np.ndarray] = {}
        self.texts, self.seconds = 0, 0.0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        marked = [_COPY_MARK.search(text) for text in texts]
        originals = [
            text if mark is None else text[: mark.start()] + text[mark.end() :]
            for text, mark in zip(texts, marked, strict=True)
        ]
        new = list(dict.fromkeys(t for t in originals if t not in self.known))
        if new:
            started = time.perf_counter()
            self.known.update(zip(new, self.embedder.encode(new), strict=True))
            self.seconds += time.perf_counter() - started
            self.texts += len(new)
        vectors = np.stack([self.known[t] for t in originals])
        for row, mark in enumerate(marked):
            if mark is not None:
                turn = np.random.default_rng(int(mark.group(1))).normal(size=vectors.shape[1])
                vectors[row] += 0.1 * turn.astype(np.float32) / math.sqrt(vectors.shape[1])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors


@dataclass(kw_only=True)
class Measured:
    rows: int
    requests: int  # asked of the engine
    wall: float  # the whole run
    stages: dict[str, stages.Stage]
    dry_run: float  # the whole --dry-run
    dry_stages: dict[str, stages.Stage]
    embed_rate: float  # rows/s of the real embedder (both texts of a row), 0 if it did not run

    def host(self, which: dict[str, stages.Stage] | None = None) -> float:
        """Seconds outside the model's stages (embedder, model load, forward passes)."""
        which = self.stages if which is None else which
        return sum(s.seconds for name, s in which.items() if name not in MODEL_STAGES)


def measure(
    rows: int,
    pool: Path,
    method: str,
    *,
    workdir: Path,
    vectors: CopiesEmbedder,
    dry_run: bool = True,
    embedder: str = DEFAULT_EMBEDDER,
    model: str = DEFAULT_MODEL,
    kernel: str = "random",
) -> Measured:
    """One run of `iclselect run` on `rows` rows under the random kernel, and its dry run.
    `vectors`: the embedder, shared between sizes."""
    from iclselect.run.estimate import dry_run as estimate
    from iclselect.run.pipeline import choose, prepare, score, write

    workdir.mkdir(parents=True, exist_ok=True)
    data = make_pool(str(pool), rows, workdir / f"pool_{rows}.jsonl")
    store = workdir / "store.sqlite"
    store.unlink(missing_ok=True)
    config = RunConfig(
        data=str(data),
        out=str(workdir / "out"),
        method=method,
        quiet=True,
        store=str(store),
        embedder=embedder,
        model=model,
    )
    chosen = get(method)
    method_config = chosen.configure(config.options_for(chosen))
    with stages.recording() as run_stages:
        started = time.perf_counter()
        with prepare(config, [chosen], kernel=kernel, embedder=vectors) as prepared:
            scored = score(prepared, chosen, method_config, config)
        write(scored, choose(scored, config.budget(chosen)), Path(config.out), overwrite=True)
        wall = time.perf_counter() - started
    dry_wall, dry_stages = 0.0, {}
    if dry_run:
        store.unlink(missing_ok=True)
        shutil.rmtree(workdir / "dry", ignore_errors=True)
        dry = replace(config, out=str(workdir / "dry"))
        with stages.recording() as dry_stages:
            started = time.perf_counter()
            estimate(dry, embedder=vectors)
            dry_wall = time.perf_counter() - started
    requests = scored.engine_stats.get("requests", 0)
    rate = vectors.texts / 2 / vectors.seconds if vectors.seconds else 0.0
    return Measured(
        rows=rows,
        requests=requests,
        wall=wall,
        stages=run_stages,
        dry_run=dry_wall,
        dry_stages=dry_stages,
        embed_rate=rate,
    )


def render(runs: list[Measured], method: str, command: str, pool: Path, kernel: str) -> str:
    """The per-stage table of each size, the growth between the first two, and the reading."""
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"### bench pipeline, {date.today()}: {method}, "
        + ", ".join(f"{r.rows:,}" for r in runs)
        + (" rows, no model" if kernel == "random" else " rows, the model running"),
        "",
        f"`{command}`",
        "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"{platform.python_version()}; load average (1/5/15 min) at the end: {load}. Rows: "
        f"`{pool.name}`'s valid rows, then marked copies. The kernel draws answers at random "
        "(no model) unless the command says --kernel hf; the embedder embeds each distinct "
        "row once, copies get turned vectors (iclselect.bench.pipeline's docstring): the "
        "embed row is that, the embedder's own rate is below. Rates: rows/s or requests/s as "
        "the stage counts; peak RSS: each stage's own high-water mark (MB).",
        "",
    ]
    header = "| stage | " + " | ".join(f"{r.rows:,} rows: s | rate | peak MB" for r in runs)
    growth = len(runs) >= 2 and runs[0].rows != runs[1].rows
    lines += [
        header + (" | growth exponent |" if growth else " |"),
        "|---|" + "---|---|---|" * len(runs) + ("---|" if growth else ""),
    ]
    for name, unit in STAGES:
        if not any(name in r.stages for r in runs):
            continue
        cells = []
        for r in runs:
            s = r.stages.get(name)
            if s is None:
                cells.append(" | | ")
                continue
            count = {"rows": r.rows, "requests": r.requests}.get(unit, 0) if name != EMBED else 0
            rate = f"{count / s.seconds:,.0f} {unit}/s" if count and s.seconds > 0 else ""
            cells.append(f"{s.seconds:,.2f} | {rate} | {s.peak_rss_mb:,.0f}")
        row = f"| {name} | " + " | ".join(cells)
        if growth:
            row += f" | {_exponent(runs[0], runs[1], name)}"
        lines.append(row + " |")
    totals = [f"{r.host():,.1f}" for r in runs]
    lines.append(
        "| **host total** (model stages excluded) | "
        + " | ".join(f"**{t}** | | " for t in totals)
        + (f" | {_exponent(runs[0], runs[1], None)}" if growth else "")
        + " |"
    )
    lines += ["", *(_reading(r) for r in runs)]
    if growth:
        lines.append(
            f"- Growth exponent: log(t2/t1) / log(n2/n1) between {runs[0].rows:,} and "
            f"{runs[1].rows:,} rows (1: linear; n log n over this range: "
            f"{_nlogn(runs[0].rows, runs[1].rows):.2f}); stages under 0.5 s at both sizes show "
            "none."
        )
    return "\n".join(lines) + "\n"


def _reading(r: Measured) -> str:
    host = r.host()
    feed = r.requests / max(_scoring_host(r), 1e-9)
    engine = H200_8B_SECONDS * r.rows / H200_8B_ROWS
    embed_rate = r.embed_rate
    dry_host = r.host(r.dry_stages)
    text = (
        f"- **{r.rows:,} rows**: the run took {r.wall:,.1f} s in all, {host:,.1f} s of it host "
        f"work (every stage but the embedder, the model load and forward passes); "
        f"{r.requests:,} requests. The scoring stages fed the engine "
        f"{feed:,.0f} requests/s. Next to an H200 running an 8B model (0.53 h for wICI on 52,002 "
        f'rows, BENCHMARKS.md "On one GPU"; {engine:,.0f} s at this size), the host side '
        f"is {host / (host + engine):.0%} of the run if nothing overlaps."
    )
    if embed_rate:
        text += (
            f" The embedder ran {embed_rate:,.0f} rows/s on this CPU (both texts of a row): "
            f"{r.rows / embed_rate / 60:,.1f} min for all {r.rows:,} rows."
        )
    if r.dry_run:
        text += (
            f" `--dry-run`: {r.dry_run:,.1f} s, {dry_host:,.1f} s of it host work "
            f"(the rest: the embedder on the distinct rows, loading the model, timing a few "
            "real requests)."
        )
    return text


def _scoring_host(r: Measured) -> float:
    request_stages = {name for name, unit in STAGES if unit == "requests"} | {
        "neighbour search",
        "difficult probes (k-means)",
    }
    return sum(
        s.seconds
        for name, s in r.stages.items()
        if name in request_stages and name not in MODEL_STAGES
    )


def _exponent(a: Measured, b: Measured, name: str | None) -> str:
    ta = a.host() if name is None else a.stages.get(name, stages.Stage()).seconds
    tb = b.host() if name is None else b.stages.get(name, stages.Stage()).seconds
    if name in MODEL_STAGES or ta <= 0 or tb <= 0 or max(ta, tb) < 0.5:
        return ""
    return f"{math.log(tb / ta) / math.log(b.rows / a.rows):.2f}"


def _nlogn(n1: int, n2: int) -> float:
    return math.log((n2 * math.log(n2)) / (n1 * math.log(n1))) / math.log(n2 / n1)


def run_bench(
    rows: list[int],
    *,
    pool: Path | None,
    methods: list[str],
    workdir: Path,
    embedder: str,
    dry_run: bool,
    benchmarks: Path | None,
    command: str,
    model: str = DEFAULT_MODEL,
    kernel: str = "random",
) -> tuple[str, list[Measured]]:
    """One table per method, every size; the embedder's vectors are shared by them all."""
    source = pool or SHIPPED_POOL
    for method in methods:
        get(method)  # an unknown method fails before any work
    if kernel not in ("random", "hf"):
        raise UsageError(f"--kernel must be random or hf; got {kernel!r}")
    vectors = CopiesEmbedder(embedder)
    reports, measured = [], []
    for method in methods:
        where = workdir / method
        runs = [
            measure(
                n,
                source,
                method,
                workdir=where / str(n),
                vectors=vectors,
                dry_run=dry_run,
                embedder=embedder,
                model=model,
                kernel=kernel,
            )
            for n in rows
        ]
        reports.append(render(runs, method, command, source, kernel))
        measured += runs
        # Each method's table is kept as soon as it is measured: a later method may run long.
        if benchmarks is not None:
            with benchmarks.open("a", encoding="utf-8") as handle:
                handle.write("\n" + reports[-1])
    return "\n".join(reports), measured

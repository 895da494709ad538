"""`iclselect bench memory`: a large pool through everything that runs before and around the
model: read it, plan IFD's requests for it (2 per row), and run a whole selection on it
(`run -m length`: read, score, select, write subset, scores.parquet, manifest and report).

Each phase runs in a fresh process, so each peak RSS is that phase's own. The pool is made of
real rows, cycled: each copy after the first made unique by a suffix (" (#123)") on its
instruction.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from iclselect.infra.stages import peak_rss_kb
from iclselect.io import read_dataset

PHASES = ("read", "plan", "run")


@dataclass
class Phase:
    name: str
    seconds: float
    peak_rss_mb: float


def make_pool(source: str, rows: int, target: Path) -> Path:
    """`rows` JSONL rows cycled from the valid rows of `source`: its rows as they are, then
    copies of them, each marked " (#i)" at the end of its instruction: none an exact duplicate."""
    dataset = read_dataset(source)
    base = dataset.table([s.row for s in dataset.samples]).to_pylist()
    with target.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            row = dict(base[i % len(base)])
            if i >= len(base):
                row["instruction"] = f"{row['instruction']} (#{i})"
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return target


def phase(name: str, data: str, out: str) -> Phase:
    """Run one phase in this process (the subprocess side of measure())."""
    started = time.perf_counter()
    if name == "read":
        read_dataset(data)
    elif name == "plan":
        from iclselect.methods.loss_requests import pair_requests

        requests = pair_requests(read_dataset(data).samples)
        assert len(requests["alone"]) > 0
    else:
        from iclselect.api import run
        from iclselect.run.config import RunConfig

        # The benchmark's own scratch directory: an earlier measurement there is replaced.
        config = RunConfig(data=data, out=out, method="length", fraction=0.1, quiet=True)
        run(config, overwrite=True)
    seconds = time.perf_counter() - started
    return Phase(name, seconds, peak_rss_kb() / 1024)


def measure(data: Path, out: Path) -> list[Phase]:
    phases = []
    for name in PHASES:
        done = subprocess.run(
            [sys.executable, "-m", "iclselect.bench.memory", name, str(data), str(out)],
            check=True,
            capture_output=True,
            text=True,
        )
        phases.append(Phase(**json.loads(done.stdout.strip().splitlines()[-1])))
    return phases


def run_memory(
    source: str, rows: int, workdir: Path, benchmarks: Path | None, command: str
) -> tuple[str, list[Phase]]:
    workdir.mkdir(parents=True, exist_ok=True)
    data = make_pool(source, rows, workdir / f"pool_{rows}.jsonl")
    size_mb = data.stat().st_size / 2**20
    phases = measure(data, workdir / "out")
    lines = [
        f"### Big input: {rows:,} rows ({date.today()})",
        "",
        f"`{command}` on {platform.machine()}, {_cores()} cores. Pool: {rows:,} real Alpaca "
        f"rows cycled from `{source}`, each made unique, {size_mb:,.0f} MB of JSONL. Each phase "
        "runs in a fresh process; peak RSS includes the imports (torch, transformers).",
        "",
        "| phase | what it does | seconds | peak RSS (MB) | KB per row |",
        "|---|---|---|---|---|",
    ]
    what = {
        "read": "read and validate every row",
        "plan": f"read, then plan IFD's {2 * rows:,} requests",
        "run": "`run -m length --fraction 0.1`: read, score, select, write all outputs and report",
    }
    for p in phases:
        lines.append(
            f"| {p.name} | {what[p.name]} | {p.seconds:,.1f} | {p.peak_rss_mb:,.0f} | "
            f"{p.peak_rss_mb * 1024 / rows:.1f} |"
        )
    report = "\n".join(lines) + "\n"
    if benchmarks is not None:
        with benchmarks.open("a", encoding="utf-8") as handle:
            handle.write("\n" + report)
    return report, phases


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    result = phase(sys.argv[1], sys.argv[2], sys.argv[3])
    print(json.dumps(result.__dict__))

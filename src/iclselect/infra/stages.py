"""Where a run's time goes, stage by stage: seconds, entries and peak RSS per stage.

Code on a run's path marks its stages (`with stage("tokenise"):`). Nothing is
kept unless a caller asks (`with recording() as stages:`, as `iclselect bench pipeline` does);
then each stage's time is its own: a stage entered inside another is not counted in the outer
one. Peak RSS is each stage's own high-water mark on Linux (VmHWM, reset as a stage starts or
resumes through /proc/self/clear_refs); elsewhere the process's peak so far.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


@dataclass
class Stage:
    seconds: float = 0.0
    entries: int = 0
    peak_rss_mb: float = 0.0


_stages: dict[str, Stage] | None = None
_open: list[list] = []  # [name, started] of the stages entered and not left, innermost last


@contextmanager
def recording() -> Iterator[dict[str, Stage]]:
    """Record every stage entered inside the block, by name, in order of first entry."""
    global _stages
    if _stages is not None:
        raise RuntimeError("stages are already being recorded")
    _stages = {}
    _reset_peak()
    try:
        yield _stages
    finally:
        _stages = None
        _open.clear()


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Count the block's time and peak RSS to stage `name` (while recording)."""
    if _stages is None:
        yield
        return
    record = _stages.setdefault(name, Stage())
    record.entries += 1
    if _open:
        _charge(_open[-1])
    _open.append([name, time.perf_counter()])
    try:
        yield
    finally:
        _charge(_open.pop())
        if _open:
            _open[-1][1] = time.perf_counter()


def _charge(entry: list) -> None:
    """Add the time since `entry` started (or resumed) and its peak since then to its stage."""
    assert _stages is not None
    record = _stages[entry[0]]
    record.seconds += time.perf_counter() - entry[1]
    record.peak_rss_mb = max(record.peak_rss_mb, peak_rss_kb() / 1024)
    _reset_peak()


def peak_rss_kb() -> int:
    """This process's peak RSS since the last reset (VmHWM on Linux), else ever."""
    if _STATUS.exists():
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> None:
    if _CLEAR.exists():
        # "5" resets the peak RSS to the current RSS (Linux 4.0+).
        _CLEAR.write_text("5")

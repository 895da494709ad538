"""Progress of a long engine call, wherever it is watched.

On a terminal: a bar in tokens with rate and ETA. Anywhere else (a job log, nohup, a notebook),
where a bar's carriage returns pile up or show nothing: a plain line at least every 30 s or 5%
of the tokens, with the answers done, tokens/s and ETA. A Ctrl-C inside says how many answers
are already stored, which a rerun will not compute again.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

LINE_EVERY_S = 30.0
LINE_STEPS = 20  # a line each time another 1/20 (5%) of the tokens is done


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during an engine call, with how much of it is safe in the store."""

    def __init__(self, stored: int, total: int) -> None:
        super().__init__(stored, total)
        self.stored = stored
        self.total = total

    def __str__(self) -> str:
        return (
            f"interrupted: {self.stored} of {self.total} answers stored; "
            "rerun the same command to resume"
        )


def duration(seconds: float) -> str:
    """'42 s', '17 min', '2518 h 39 min': a person's reading of a time estimate."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """Counts the tokens and answers of one engine call: `update` per finished unit of work."""

    def __init__(
        self,
        desc: str,
        tokens: int,
        answers: int,
        stored: int = 0,
        enabled: bool = True,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        unit: tuple[str, str] = ("tok", "tokens"),
        stores: bool = True,
    ) -> None:
        """`tokens` counts the work in `unit` (short, plural): tokens for the engine, texts for
        the embedder. `stores`: each finished answer is in the store, so a Ctrl-C says how
        many a rerun will not compute again (work that is not stored stops plainly)."""
        self.desc = desc
        self._stores = stores
        self._unit = unit
        self.tokens_total = tokens
        self.answers_total = answers
        self.answers_done = stored
        self.tokens_done = 0
        self._stream = stream or sys.stderr
        self._clock = clock
        self._started = clock()
        self._shown_at = self._started
        self._shown_step = 0
        shown = enabled and tokens > 0
        terminal = shown and self._stream.isatty()
        self._lines = shown and not terminal
        self._bar = (
            tqdm(total=tokens, desc=desc, unit=unit[0], unit_scale=True, file=self._stream)
            if terminal
            else None
        )

    def update(self, tokens: int, answers: int) -> None:
        self.tokens_done += tokens
        self.answers_done += answers
        if self._bar is not None:
            self._bar.update(tokens)
        elif self._lines:
            now = self._clock()
            step = self.tokens_done * LINE_STEPS // self.tokens_total
            if step > self._shown_step or now - self._shown_at >= LINE_EVERY_S:
                self._shown_at, self._shown_step = now, step
                self._stream.write(self.line(now) + "\n")
                self._stream.flush()

    def line(self, now: float) -> str:
        elapsed = now - self._started
        rate = self.tokens_done / elapsed if elapsed > 0 else 0.0
        left = self.tokens_total - self.tokens_done
        eta = duration(left / rate) if rate else "unknown"
        return (
            f"[iclselect] {self.desc}: {self.answers_done:,} of {self.answers_total:,} answers "
            f"({self.tokens_done / self.tokens_total:.0%} of {self._unit[1]}), "
            f"{rate:,.0f} {self._unit[0]}/s, "
            f"ETA {eta}"
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()
        if (
            self._stores
            and isinstance(error, KeyboardInterrupt)
            and not isinstance(error, Interrupted)
        ):
            raise Interrupted(self.answers_done, self.answers_total) from None

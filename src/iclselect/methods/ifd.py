"""Instruction-Following Difficulty (Cherry LLM): how much the instruction helps the model
produce the response. Shared by every method that needs it (wICI, the IFD baseline)."""

from __future__ import annotations

import math
from typing import Literal

from iclselect.lm.requests import LogprobRequest, LogprobResult
from iclselect.records import Sample, Turn

IfdForm = Literal["loss", "ppl"]


def conditioned(sample: Sample, demo: tuple[Turn, ...] | None = None) -> LogprobRequest:
    """L(y | x), optionally with a one-shot demo before x."""
    return LogprobRequest(sample.prompt, sample.response, (demo,) if demo else ())


def unconditioned(sample: Sample, demo: tuple[Turn, ...] | None = None) -> LogprobRequest:
    """L(y): the response after the response header alone (after the demo, when given)."""
    return LogprobRequest((), sample.response, (demo,) if demo else ())


def ifd(cond: LogprobResult, uncond: LogprobResult, form: IfdForm = "loss") -> float:
    """IFD = L(y|x) / L(y) (Cherry's paper and code), or PPL(y|x) / PPL(y) (wICI's code).

    NaN where L(y) is exactly 0 (every response token certain without the instruction): the
    ratio is undefined there, and callers report that sample rather than score it.
    """
    if form == "ppl":
        return math.exp(cond.loss - uncond.loss)
    if uncond.loss == 0.0:
        return math.nan
    return cond.loss / uncond.loss

"""Instruction-Following Difficulty (Cherry LLM, NAACL 2024): how much the instruction helps the
model produce the response. The requests and ratio are shared by every method that needs them
(wICI's probes, the IFD baseline); `score` is the baseline itself.

    IFD(x, y) = L(y | x) / L(y)        (Cherry's paper and code; form "loss", the default)
              = PPL(y | x) / PPL(y)    (wICI's code; form "ppl")

IFD > 1 means the instruction does not help the model at all; Cherry discards those samples
(`drop_above_one`, on by default) and selects the highest IFD among the rest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from iclselect.lm import Engine
from iclselect.lm.requests import LogprobRequest, LogprobResult
from iclselect.methods.options import option
from iclselect.methods.pool import Pool
from iclselect.methods.scores import MethodScores
from iclselect.records import Sample, Turn
from iclselect.selectors import Excluded

IfdForm = Literal["loss", "ppl"]


@dataclass(frozen=True)
class IfdConfig:
    form: IfdForm = option("loss", "loss: L(y|x)/L(y) (Cherry); ppl: PPL(y|x)/PPL(y) (wICI code)")
    drop_above_one: bool = option(True, "exclude samples with IFD > 1, as Cherry does")


def conditioned(sample: Sample, demo: tuple[Turn, ...] | None = None) -> LogprobRequest:
    """L(y | x), optionally with a one-shot demo before x."""
    return LogprobRequest(sample.prompt, sample.response, (demo,) if demo else ())


def unconditioned(sample: Sample, demo: tuple[Turn, ...] | None = None) -> LogprobRequest:
    """L(y): the response after the response header alone (after the demo, when given)."""
    return LogprobRequest((), sample.response, (demo,) if demo else ())


def ifd(cond: LogprobResult, uncond: LogprobResult, form: IfdForm = "loss") -> float:
    """IFD of one sample from its two answers.

    NaN where L(y) is exactly 0 (every response token certain without the instruction): the
    ratio is undefined there, and callers report that sample rather than score it.
    """
    return ratio(cond.loss, uncond.loss, form)


def ratio(cond_loss: float, uncond_loss: float, form: IfdForm = "loss") -> float:
    """IFD from the two mean losses L(y | context) and L(y) (NaN where L(y) is 0)."""
    if form == "ppl":
        return math.exp(cond_loss - uncond_loss)
    if uncond_loss == 0.0:
        return math.nan
    return cond_loss / uncond_loss


def pair_requests(samples: list[Sample]) -> list[LogprobRequest]:
    """L(y|x) of every sample, then L(y) of every sample."""
    return [conditioned(s) for s in samples] + [unconditioned(s) for s in samples]


def own_ifd(
    samples: list[Sample], engine: Engine, form: IfdForm, desc: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(IFD, L(y|x), L(y)) of every sample."""
    n = len(samples)
    answers = engine.loglikelihood(pair_requests(samples), desc=desc)
    values = np.array([ifd(answers[i], answers[n + i], form) for i in range(n)])
    cond = np.array([a.loss for a in answers[:n]])
    uncond = np.array([a.loss for a in answers[n:]])
    return values, cond, uncond


def plan(pool: Pool, config: IfdConfig) -> list[LogprobRequest]:
    return pair_requests(pool.samples)


def score(pool: Pool, engine: Engine, config: IfdConfig) -> MethodScores:
    values, cond, uncond = own_ifd(pool.samples, engine, config.form, "IFD")
    excluded: dict[int, Excluded] = {}
    for i, value in enumerate(values):
        if math.isnan(value):
            excluded[i] = Excluded("not_scored", "IFD undefined: L(y) = 0")
        elif config.drop_above_one and value > 1:
            excluded[i] = Excluded("prefiltered", "IFD > 1: the instruction does not help")
    score = np.where([i in excluded for i in range(len(values))], math.nan, values)
    return MethodScores(
        method="ifd",
        score=score,
        components={"ifd": values.tolist(), "loss": cond.tolist(), "loss_alone": uncond.tolist()},
        excluded=excluded,
        params=asdict(config),
    )

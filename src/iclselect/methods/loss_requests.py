"""The log-likelihood requests every method builds, and IFD from their answers.

A method asks for L(y | x) (`conditioned`: the response after its instruction, optionally after
a one-shot demo) and L(y) (`unconditioned`: the response alone). IFD (Cherry LLM) compares them:

    IFD(x, y) = L(y | x) / L(y)        (Cherry's paper and code; form "loss", the default)
              = PPL(y | x) / PPL(y)    (wICI's code; form "ppl")
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from iclselect.lm.requests import PLAIN, Cut, LogprobRequest, LogprobResult
from iclselect.methods.rounds import Answered, Answers, Round, ask
from iclselect.records import Sample, Turn

IfdForm = Literal["loss", "ppl"]

# The reference code's quirks (`--template reference` switches them on; docs/METHODS.md).
JOINT_HELP = (
    "tokenise prompt and response as one text, the response starting where the prompt's own "
    "tokens end, so a token may straddle them ({}; reference only)"
)
CODE_MAX_LENGTH_HELP = (
    "the code's window, cut from the right, in place of --max-length ({}; reference only; "
    "0: --max-length)"
)


def conditioned(
    sample: Sample, demo: tuple[Turn, ...] | None = None, style: str = "", cut: Cut = PLAIN
) -> LogprobRequest:
    """L(y | x), optionally with a one-shot demo before x, in reference style `style`, if any,
    tokenised and scored as `cut` says."""
    return LogprobRequest(sample.prompt, sample.response, (demo,) if demo else (), style, cut)


def unconditioned(
    sample: Sample, demo: tuple[Turn, ...] | None = None, style: str = "", cut: Cut = PLAIN
) -> LogprobRequest:
    """L(y): the response after the response header alone (after the demo, when given)."""
    return LogprobRequest((), sample.response, (demo,) if demo else (), style, cut)


@dataclass(frozen=True)
class Cuts:
    """How a method's reference code cuts L(y | x) and L(y) (lm/requests.py's Cut)."""

    conditioned: Cut = PLAIN
    alone: Cut = PLAIN


PLAIN_CUTS = Cuts()


def ratio(cond_loss: float, uncond_loss: float, form: IfdForm = "loss") -> float:
    """IFD from the two mean losses L(y | context) and L(y).

    NaN where L(y) is exactly 0 (every response token certain without the instruction): the
    ratio is undefined there, and callers report that sample rather than score it.
    """
    if form == "ppl":
        return math.exp(cond_loss - uncond_loss)
    if form == "loss":
        return math.nan if uncond_loss == 0.0 else cond_loss / uncond_loss
    raise ValueError(f"IFD form must be loss or ppl; got {form!r}")


def pair_requests(
    samples: list[Sample], style: str = "", cuts: Cuts = PLAIN_CUTS
) -> dict[str, list[LogprobRequest]]:
    """L(y|x) of every sample ("with_instruction"), then L(y) of every sample ("alone")."""
    return {
        "with_instruction": [conditioned(s, style=style, cut=cuts.conditioned) for s in samples],
        "alone": [unconditioned(s, style=style, cut=cuts.alone) for s in samples],
    }


@dataclass
class OwnIfd:
    ifd: np.ndarray
    loss: np.ndarray  # L(y|x)
    loss_alone: np.ndarray  # L(y)
    tokens: list[int]  # scored response tokens


def own_ifd(
    samples: list[Sample], form: IfdForm, desc: str, style: str = "", cuts: Cuts = PLAIN_CUTS
) -> Generator[Round, Answers, OwnIfd]:
    """One round: IFD, L(y|x), L(y) and the scored response tokens of every sample."""
    got: Answered = yield from ask(desc, **pair_requests(samples, style, cuts))
    cond = losses(got["with_instruction"])
    uncond = losses(got["alone"])
    values = np.array([ratio(c, u, form) for c, u in zip(cond, uncond, strict=True)])
    return OwnIfd(values, cond, uncond, [a.n_tokens for a in got["with_instruction"]])


def losses(results: list[LogprobResult]) -> np.ndarray:
    """The mean response loss of each answer."""
    return np.array([a.loss for a in results])

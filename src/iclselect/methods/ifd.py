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
from collections.abc import Generator
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from iclselect.lm.requests import PLAIN, Cut, LogprobRequest
from iclselect.methods.method import register
from iclselect.methods.options import option
from iclselect.methods.pool import Pool
from iclselect.methods.rounds import Answers, Round, Rounds, ask
from iclselect.methods.scores import MethodScores
from iclselect.records import Sample, Turn
from iclselect.selectors import Excluded

IfdForm = Literal["loss", "ppl"]

# iclselect's option, off by default: a mean loss over one to three tokens is mostly noise, and
# a method ranking rows by their own loss then favours one-word answers.
MIN_TOKENS_DEFAULT = 0
MIN_TOKENS_HELP = (
    "rank only rows whose response has at least this many scored tokens (iclselect; 0: off, "
    "the paper's)"
)
LOSS_OUTLIERS_HELP = (
    "rank only rows whose response loss L(y|x) is at most the pool's median + 3 MADs, which "
    "leaves out word salad and responses that belong to another row (iclselect's guard on a "
    "dirty pool; off: the paper's)"
)
# Hampel's rule: a loss more than 3 robust standard deviations (1.4826 MAD each) above the
# pool's median is an outlier whatever the loss's scale.
_OUTLIER_MADS, _MAD_TO_SD = 3.0, 1.4826


# The reference code's quirks (`--template reference` switches them on; docs/METHODS.md).
JOINT_HELP = (
    "tokenise prompt and response as one text, the response starting where the prompt's own "
    "tokens end, so a token may straddle them ({}; reference only)"
)
CODE_MAX_LENGTH_HELP = (
    "the code's window, cut from the right, in place of --max-length ({}; reference only; "
    "0: --max-length)"
)


@dataclass(frozen=True)
class IfdConfig:
    form: IfdForm = option("loss", "loss: L(y|x)/L(y) (Cherry); ppl: PPL(y|x)/PPL(y) (wICI code)")
    drop_above_one: bool = option(True, "exclude samples with IFD > 1, as Cherry does")
    min_tokens: int = option(MIN_TOKENS_DEFAULT, MIN_TOKENS_HELP)
    loss_outliers: bool = option(False, LOSS_OUTLIERS_HELP)
    joint_tokens: bool = option(False, JOINT_HELP.format("Cherry's data_analysis.py:61-64"))
    code_max_length: int = option(0, CODE_MAX_LENGTH_HELP.format("512, data_analysis.py:34"))


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


def too_short(tokens: list[int], min_tokens: int) -> dict[int, Excluded]:
    """Rows whose response has fewer than `min_tokens` scored tokens (`tokens`, per row)."""
    return {
        i: Excluded("prefiltered", f"{n} response tokens < min_tokens {min_tokens}")
        for i, n in enumerate(tokens)
        if n < min_tokens
    }


def loss_outliers(losses: np.ndarray) -> dict[int, Excluded]:
    """Rows whose response loss is above the pool's median + 3 MADs (`losses`, per row; a NaN
    is no outlier)."""
    finite = losses[np.isfinite(losses)]
    if not len(finite):
        return {}
    median = float(np.median(finite))
    limit = median + _OUTLIER_MADS * _MAD_TO_SD * float(np.median(np.abs(finite - median)))
    return {
        i: Excluded("prefiltered", f"response loss {loss:.2f} > {limit:.2f} (median + 3 MADs)")
        for i, loss in enumerate(losses.tolist())
        if loss > limit
    }


def pair_requests(
    samples: list[Sample], style: str = "", cuts: Cuts = PLAIN_CUTS
) -> list[LogprobRequest]:
    """L(y|x) of every sample, then L(y) of every sample."""
    return [conditioned(s, style=style, cut=cuts.conditioned) for s in samples] + [
        unconditioned(s, style=style, cut=cuts.alone) for s in samples
    ]


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
    answers = yield from ask(pair_requests(samples, style, cuts), desc)
    cond_answers = [answers[conditioned(s, style=style, cut=cuts.conditioned)] for s in samples]
    cond = np.array([a.loss for a in cond_answers])
    uncond = np.array(
        [answers[unconditioned(s, style=style, cut=cuts.alone)].loss for s in samples]
    )
    values = np.array([ratio(c, u, form) for c, u in zip(cond, uncond, strict=True)])
    return OwnIfd(values, cond, uncond, [a.n_tokens for a in cond_answers])


def code_cuts(config: IfdConfig) -> Cuts:
    """L(y | x) and L(y) as the reference code's options in `config` cut them. Cherry's L(y)
    is "### Response:" + y, so its first token is scored: no `bare`."""
    cut = Cut(joint=config.joint_tokens, max_length=config.code_max_length)
    return Cuts(cut, cut)


@register(
    name="ifd",
    summary="instruction-following difficulty L(y|x) / L(y), IFD > 1 dropped (Cherry LLM)",
    cost="2",
    high_score=(
        "means the instruction helps the model little in producing the response: a "
        "hard-to-follow instruction."
    ),
    config=IfdConfig,
    uses_model=True,
    embeddings=False,
    fraction=0.05,
    reference=(("joint_tokens", True), ("code_max_length", 512)),
    rank=40,
)
def rounds(pool: Pool, config: IfdConfig) -> Rounds:
    pool.need_reference(
        "ifd", joint_tokens=config.joint_tokens, code_max_length=config.code_max_length
    )
    own = yield from own_ifd(
        pool.samples, config.form, "IFD", pool.style("alpaca"), code_cuts(config)
    )
    values, cond, uncond = own.ifd, own.loss, own.loss_alone
    excluded = too_short(own.tokens, config.min_tokens)
    if config.loss_outliers:
        excluded = loss_outliers(cond) | excluded
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

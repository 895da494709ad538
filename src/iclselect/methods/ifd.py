"""Instruction-Following Difficulty (Cherry LLM, NAACL 2024) as a selection baseline: how much
the instruction helps the model produce the response (methods/loss_requests.py computes it).

IFD > 1 means the instruction does not help the model at all; Cherry discards those samples
(`drop_above_one`, on by default) and selects the highest IFD among the rest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from iclselect.lm.requests import Cut
from iclselect.methods.guards import (
    LOSS_OUTLIERS_HELP,
    MIN_TOKENS_DEFAULT,
    MIN_TOKENS_HELP,
    ifd_above_one,
    loss_outliers,
    too_short,
)
from iclselect.methods.loss_requests import (
    CODE_MAX_LENGTH_HELP,
    JOINT_HELP,
    Cuts,
    IfdForm,
    own_ifd,
)
from iclselect.methods.method import register
from iclselect.methods.options import option
from iclselect.methods.pool import Pool
from iclselect.methods.rounds import Rounds
from iclselect.methods.scores import MethodScores
from iclselect.selectors import Excluded


@dataclass(frozen=True)
class IfdConfig:
    form: IfdForm = option("loss", "loss: L(y|x)/L(y) (Cherry); ppl: PPL(y|x)/PPL(y) (wICI code)")
    drop_above_one: bool = option(True, "exclude samples with IFD > 1, as Cherry does")
    min_tokens: int = option(MIN_TOKENS_DEFAULT, MIN_TOKENS_HELP)
    loss_outliers: bool = option(False, LOSS_OUTLIERS_HELP)
    joint_tokens: bool = option(False, JOINT_HELP.format("Cherry's data_analysis.py:61-64"))
    code_max_length: int = option(0, CODE_MAX_LENGTH_HELP.format("512, data_analysis.py:34"))


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
    if config.drop_above_one:
        excluded.update(ifd_above_one(values))
    for i, value in enumerate(values):
        if math.isnan(value):
            excluded[i] = Excluded("not_scored", "IFD undefined: L(y) = 0")
    score = np.where([i in excluded for i in range(len(values))], math.nan, values)
    return MethodScores(
        method="ifd",
        score=score,
        components={"ifd": values.tolist(), "loss": cond.tolist(), "loss_alone": uncond.tolist()},
        excluded=excluded,
        params=asdict(config),
    )

"""MIWV: Model Instruction Weakness Value (arXiv 2511.07074), as defined in METHODS.md.

Each sample gets as one-shot demo C_k its single nearest OTHER sample k in the whole pool, by
cosine similarity of instruction (+ input) embeddings, and

    MIWV(x_i, y_i) = L(y_i | C_k, x_i) - L(y_i | x_i)

High MIWV: even a closely related example makes the model worse at this sample, a weakness worth
training on. Selection is the top p% by MIWV, with no threshold and no diversity step (so the
near-duplicate filter is off by default for this method). 2 requests per sample; L(y|x) is the
same request IFD and wICI make, so a shared store answers it once for all three.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from iclselect.embed import nearest_neighbours
from iclselect.errors import UsageError
from iclselect.lm.requests import LogprobRequest
from iclselect.methods.guards import (
    LOSS_OUTLIERS_HELP,
    MIN_TOKENS_DEFAULT,
    MIN_TOKENS_HELP,
    PREFILTER_IFD_HELP,
    ifd_above_one,
    loss_outliers,
    too_short,
)
from iclselect.methods.loss_requests import conditioned, losses, ratio, unconditioned
from iclselect.methods.method import register
from iclselect.methods.options import option
from iclselect.methods.pool import Pool
from iclselect.methods.rounds import Rounds, ask
from iclselect.methods.scores import MethodScores


@dataclass(frozen=True)
class MiwvConfig:
    """Retrieval and the score are fixed by the paper; the guards are iclselect's options."""

    min_tokens: int = option(MIN_TOKENS_DEFAULT, MIN_TOKENS_HELP)
    loss_outliers: bool = option(False, LOSS_OUTLIERS_HELP)
    prefilter_ifd: bool = option(False, PREFILTER_IFD_HELP)


def demos(pool: Pool) -> tuple[np.ndarray, np.ndarray]:
    """Index of each sample's demo (its nearest other sample) and their cosine similarity."""
    found, similarity = nearest_neighbours(pool.instructions(), 1)
    return found[:, 0], similarity[:, 0]


def _requests(
    pool: Pool, demo: np.ndarray, style: str, config: MiwvConfig
) -> dict[str, list[LogprobRequest]]:
    """L(y|x) of every sample ("alone": without a demo), then L(y | its demo, x), and L(y) for
    the IFD guard."""
    samples = pool.samples
    asked = {
        "alone": [conditioned(s, style=style) for s in samples],
        "with_demo": [conditioned(s, samples[demo[i]].turns, style) for i, s in enumerate(samples)],
    }
    if config.prefilter_ifd:
        asked["response_alone"] = [unconditioned(s, style=style) for s in samples]
    return asked


@register(
    name="miwv",
    summary=(
        "instruction weakness: loss with the nearest sample as demo minus loss without (AAAI 2026)"
    ),
    cost="2",
    high_score=(
        "means the model does worse on the sample even with a closely related example shown "
        "first: a weakness worth training on."
    ),
    config=MiwvConfig,
    uses_model=True,
    fraction=0.01,
    rank=20,
)
def rounds(pool: Pool, config: MiwvConfig) -> Rounds:
    if len(pool) < 2:
        raise UsageError("MIWV needs at least 2 samples: each one's demo is another sample")
    demo, similarity = demos(pool)
    got = yield from ask(
        "MIWV: with and without the demo", **_requests(pool, demo, pool.style("alpaca"), config)
    )
    alone = losses(got["alone"])
    excluded = too_short([a.n_tokens for a in got["alone"]], config.min_tokens)
    if config.loss_outliers:
        excluded = loss_outliers(alone) | excluded
    if config.prefilter_ifd:
        ifd = np.array(
            [ratio(c, u) for c, u in zip(alone, losses(got["response_alone"]), strict=True)]
        )
        excluded = ifd_above_one(ifd) | excluded
    with_demo = losses(got["with_demo"])
    score = with_demo - alone
    score[list(excluded)] = np.nan
    return MethodScores(
        method="miwv",
        score=score,
        components={
            "loss": alone.tolist(),
            "loss_with_demo": with_demo.tolist(),
            "demo_row": [pool.samples[k].row for k in demo],
            "demo_similarity": similarity.astype(float).tolist(),
        },
        excluded=excluded,
        params=asdict(config),
        row_columns={"demo_row": ()},
    )

"""Nuggets golden score (Li et al. 2023, arXiv 2312.10302), a baseline, as in METHODS.md.

Anchors: k-means the pool's instruction embeddings into m clusters (paper: m = 100) and take the
sample nearest each centre; `anchor_space=model` clusters the scoring model's mean-pooled last
hidden states of prompt + response instead, as Nuggets' code does. For candidate c and anchor a:

    s_0(a) = log p(y_a | x_a)            zero-shot
    s_c(a) = log p(y_a | c, x_a)         c as a one-shot demo
    GS(c)  = share of anchors a (a != c) with s_c(a) > s_0(a)

MethodScores are summed log-probs, as in the reference code (both sides score the same tokens).
m requests per candidate, all sharing the candidate as prefix, so the engine computes each demo
once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from iclselect.errors import UsageError
from iclselect.lm.requests import LogprobRequest
from iclselect.methods.loss_requests import conditioned
from iclselect.methods.method import register
from iclselect.methods.options import option
from iclselect.methods.pool import Pool
from iclselect.methods.rounds import PooledStates, Rounds, ask
from iclselect.methods.scores import MethodScores
from iclselect.selectors import Excluded


@dataclass(frozen=True)
class NuggetsConfig:
    anchors: int = option(100, "m: anchor samples, the nearest to m k-means centres")
    anchor_space: Literal["embedding", "model"] = option(
        "embedding",
        "k-means space of the anchors: embedding: the instruction embeddings (iclselect's, no "
        "model pass); model: the scoring model's mean-pooled last hidden states of prompt + "
        "response (Nuggets' code; one more forward pass per sample)",
    )
    seed: int = option(42, "k-means seed")

    def __post_init__(self) -> None:
        if self.anchors < 1:
            raise UsageError("nuggets.anchors must be at least 1")


def choose_anchors(vectors: np.ndarray, config: NuggetsConfig) -> list[int]:
    """Sample indices of the anchors: for each k-means centre, the nearest sample not already
    an anchor (two centres can share a nearest sample)."""
    m = min(config.anchors, len(vectors))
    from sklearn.cluster import KMeans

    centres = (
        KMeans(n_clusters=m, random_state=config.seed, n_init=10).fit(vectors).cluster_centers_
    )
    anchors: list[int] = []
    for centre in centres:
        distance = np.linalg.norm(vectors - centre, axis=1)
        distance[anchors] = np.inf
        anchors.append(int(np.argmin(distance)))
    return anchors


def _pairs(n: int, anchors: list[int]) -> list[tuple[int, int]]:
    return [(c, a) for c in range(n) for a in anchors if a != c]


def _requests(
    pool: Pool, anchors: list[int], pairs: list[tuple[int, int]], style: str
) -> dict[str, list[LogprobRequest]]:
    """Each anchor zero-shot, then each (candidate, anchor) pair with the candidate as demo."""
    samples = pool.samples
    return {
        "zero_shot": [conditioned(samples[a], style=style) for a in anchors],
        "with_demo": [conditioned(samples[a], samples[c].turns, style) for c, a in pairs],
    }


@register(
    name="nuggets",
    summary="golden score: share of k-means anchor samples the sample helps as a demo (Nuggets)",
    cost="anchors (100 by default)",
    high_score=(
        "means the sample, shown as a one-shot example, helps the model on many representative "
        "anchor samples."
    ),
    config=NuggetsConfig,
    uses_model=True,
    fraction=0.01,
    reference=(("anchor_space", "model"),),
    rank=50,
)
def rounds(pool: Pool, config: NuggetsConfig) -> Rounds:
    if len(pool) < 2:
        raise UsageError("Nuggets needs at least 2 samples: a candidate and an anchor")
    samples, n = pool.samples, len(pool)
    style = pool.style("alpaca")
    if config.anchor_space == "model":
        space = yield PooledStates(
            [conditioned(s, style=style) for s in samples],
            desc="Nuggets: pooled states to pick anchors in",
        )
    else:
        space = pool.instructions()
    anchors = choose_anchors(space, config)
    pairs = _pairs(n, anchors)
    got = yield from ask(
        "Nuggets: anchors with each candidate as demo", **_requests(pool, anchors, pairs, style)
    )
    zero_shot = {a: answer.logprob for a, answer in zip(anchors, got["zero_shot"], strict=True)}
    wins = np.zeros(n)
    counted = np.zeros(n)
    for (c, a), with_demo in zip(pairs, got["with_demo"], strict=True):
        wins[c] += with_demo.logprob > zero_shot[a]
        counted[c] += 1
    anchor_rows = [pool.samples[a].row for a in anchors]
    no_anchor = Excluded("not_scored", "no anchor other than itself")
    excluded = {int(c): no_anchor for c in np.flatnonzero(counted == 0)}
    return MethodScores(
        method="nuggets",
        score=np.divide(wins, counted, out=np.full(n, np.nan), where=counted > 0),
        components={
            "anchor_wins": wins.astype(int).tolist(),
            "anchors": counted.astype(int).tolist(),
        },
        excluded=excluded,
        params={**asdict(config), "anchor_rows": anchor_rows},
    )

"""The simple baselines users compare ICL methods against at equal budget (METHODS.md):
response perplexity, response length, seeded random, and embedding diversity. A score is the
value itself (a perplexity, a length in characters); perplexity order=low and length
order=short keep the lowest first (MethodScores.higher_first). Perplexity asks the same L(y|x)
requests as the other model methods, the rest use the samples or their embeddings."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

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
class PerplexityConfig:
    order: Literal["high", "low"] = option(
        "high", "high: keep the responses the model finds hardest; low: the easiest"
    )
    min_tokens: int = option(MIN_TOKENS_DEFAULT, MIN_TOKENS_HELP)
    loss_outliers: bool = option(False, LOSS_OUTLIERS_HELP)
    prefilter_ifd: bool = option(False, PREFILTER_IFD_HELP)


@register(
    name="perplexity",
    summary="response perplexity PPL(y|x), highest first",
    cost="1",
    high_score=(
        "means the model finds the response hard to predict (order=low keeps the lowest first)."
    ),
    config=PerplexityConfig,
    uses_model=True,
    embeddings=False,
    rank=70,
)
def perplexity(pool: Pool, config: PerplexityConfig) -> Rounds:
    """PPL(y | x) of every sample's response."""
    style = pool.style("alpaca")
    asked = {"responses": [conditioned(s, style=style) for s in pool.samples]}
    if config.prefilter_ifd:
        asked["response_alone"] = [unconditioned(s, style=style) for s in pool.samples]
    got = yield from ask("perplexity", **asked)
    results = got["responses"]
    ppl = np.array([a.perplexity for a in results])
    loss = losses(results)
    excluded = too_short([a.n_tokens for a in results], config.min_tokens)
    if config.loss_outliers:
        excluded = loss_outliers(loss) | excluded
    if config.prefilter_ifd:
        ifd = np.array(
            [ratio(c, u) for c, u in zip(loss, losses(got["response_alone"]), strict=True)]
        )
        excluded = ifd_above_one(ifd) | excluded
    score = ppl.copy()
    score[list(excluded)] = np.nan
    return MethodScores(
        method="perplexity",
        score=score,
        components={"perplexity": ppl.tolist(), "loss": loss.tolist()},
        excluded=excluded,
        params=asdict(config),
        higher_first=config.order == "high",
    )


@dataclass(frozen=True)
class LengthConfig:
    order: Literal["long", "short"] = option("long", "long: longest responses first; short")


@register(
    name="length",
    summary="response length in characters, longest first",
    cost="0 (no model)",
    high_score="means a long response (order=short keeps the shortest first).",
    config=LengthConfig,
    uses_model=False,
    embeddings=False,
    rank=80,
)
def length(pool: Pool, config: LengthConfig) -> MethodScores:
    """Response length in characters (no model: the cheapest strong baseline on Alpaca)."""
    chars = np.array([len(s.response) for s in pool.samples], dtype=np.float64)
    return MethodScores(
        method="length",
        score=chars,
        components={"response_chars": chars.astype(int).tolist()},
        params=asdict(config),
        higher_first=config.order == "long",
    )


@dataclass(frozen=True)
class RandomConfig:
    seed: int = option(0, "seed; run several seeds to see the spread")


@register(
    name="random",
    summary="seeded uniform random scores",
    cost="0 (no model)",
    high_score="means nothing: scores are random, the baseline every method must beat.",
    config=RandomConfig,
    uses_model=False,
    embeddings=False,
    rank=90,
)
def random(pool: Pool, config: RandomConfig) -> MethodScores:
    """Uniform scores drawn per sample from (seed, content id): the same sample gets the same
    score whatever else is in the pool or in which order, so subsets are stable under reruns."""
    values = [_unit(f"{config.seed}:{s.id}") for s in pool.samples]
    return MethodScores(method="random", score=np.array(values), params=asdict(config))


@dataclass(frozen=True)
class DiversityConfig:
    """k-center greedy has no settings; it starts from the sample nearest the centroid."""


@register(
    name="diversity",
    summary="k-center greedy on instruction+response embeddings",
    cost="0 (no model; O(n^2) embedding distances)",
    high_score=(
        "means the sample was picked early by k-center greedy: far from everything picked before "
        "it."
    ),
    config=DiversityConfig,
    uses_model=False,
    rank=100,
)
def diversity(pool: Pool, config: DiversityConfig) -> MethodScores:
    """k-center greedy on instruction+response embeddings: repeatedly take the sample farthest
    (cosine distance) from everything taken so far. The score is the pick order reversed
    (n for the first pick), so any top-k is exactly the greedy k-center set; `kcenter_distance`
    is each sample's distance to the set when it was taken. O(n^2 d): minutes at 100k rows."""
    vectors = pool.fulls()
    n = len(vectors)
    centroid = vectors.mean(axis=0)
    first = int(np.argmax(vectors @ centroid))
    distance = np.full(n, np.inf)
    taken = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    at_pick = np.empty(n)
    pick, gap = first, math.inf
    for position in range(n):
        order[pick], at_pick[pick], taken[pick] = position, gap, True
        distance = np.minimum(distance, 1.0 - vectors @ vectors[pick])
        distance[taken] = -np.inf
        pick = int(np.argmax(distance))
        gap = float(distance[pick])
    at_pick[first] = 2.0  # nothing taken yet: the largest possible cosine distance
    return MethodScores(
        method="diversity",
        score=(n - order).astype(np.float64),
        components={"kcenter_order": (order + 1).tolist(), "kcenter_distance": at_pick.tolist()},
        params=asdict(config),
    )


def _unit(text: str) -> float:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64

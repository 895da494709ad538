"""Every selection method iclselect runs, by name: what it is, what it costs, its options.

Model methods plan LogprobRequests and have the one Engine answer them (so a shared store
answers a request any method already made); the others need only the samples or their
embeddings. All return MethodScores where higher is better, and all go through the same selector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from iclselect.lm import Engine, LogprobRequest
from iclselect.methods import baselines, icon, ifd, miwv, nuggets, wici
from iclselect.methods.options import describe, did_you_mean, make
from iclselect.methods.pool import Pool
from iclselect.methods.scores import MethodScores


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    cost: str  # requests per sample, in words
    high_score: str  # what a high score means, one plain sentence finishing "A high score ..."
    config: type
    # (pool, engine, config) for model methods; (pool, config) for the others.
    scorer: Callable[..., MethodScores]
    planner: Callable[[Pool, Any], list[LogprobRequest]] | None = None  # model methods only
    embeddings: bool = True  # needs the sample embeddings
    tau: float | None = None  # the paper's near-duplicate threshold; None: no diversity step
    fraction: float = 0.1  # the paper's headline budget, used when none is given
    estimate_note: str = ""

    @property
    def uses_model(self) -> bool:
        return self.planner is not None

    def configure(self, options: dict[str, Any]) -> Any:
        return make(self.config, options, self.name)

    def score(self, pool: Pool, engine: Engine | None, config: Any) -> MethodScores:
        if self.uses_model:
            return self.scorer(pool, engine, config)
        return self.scorer(pool, config)

    def options(self) -> list[tuple[str, str, str]]:
        return describe(self.config)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "wici",
            "weighted in-context influence: how much the sample, as a one-shot demo, makes its "
            "neighbours easier (ACL 2026)",
            "2 + n_probes (7 by default; 2 + 2 x n_probes with denominator=demo)",
            "means the sample, shown to the model as a one-shot example, makes similar tasks "
            "easier for it.",
            wici.WiciConfig,
            wici.score,
            wici.plan,
            tau=0.9,
            fraction=0.1,
            estimate_note="nearest neighbours stand in for the difficult probes",
        ),
        Method(
            "miwv",
            "instruction weakness: loss with the nearest sample as demo minus loss without "
            "(AAAI 2026)",
            "2",
            "means the model does worse on the sample even with a closely related example shown "
            "first: a weakness worth training on.",
            miwv.MiwvConfig,
            miwv.score,
            miwv.plan,
            fraction=0.01,
        ),
        Method(
            "icon",
            "in-context contribution to an assessment set against a random-text control, with a "
            "trained selector for the pool (ICon / RICo)",
            "2 x assessment rows per exactly scored sample (2,040 by default), 0 for the rest",
            "means the sample, shown as a one-shot example, helps the model on a varied "
            "assessment set more than random text of the same length does.",
            icon.IconConfig,
            icon.score,
            icon.plan,
            fraction=0.15,
        ),
        Method(
            "ifd",
            "instruction-following difficulty L(y|x) / L(y), IFD > 1 dropped (Cherry LLM)",
            "2",
            "means the instruction helps the model little in producing the response: a "
            "hard-to-follow instruction.",
            ifd.IfdConfig,
            ifd.score,
            ifd.plan,
            embeddings=False,
            fraction=0.05,
        ),
        Method(
            "nuggets",
            "golden score: share of k-means anchor samples the sample helps as a demo (Nuggets)",
            "anchors (100 by default)",
            "means the sample, shown as a one-shot example, helps the model on many "
            "representative anchor samples.",
            nuggets.NuggetsConfig,
            nuggets.score,
            nuggets.plan,
            fraction=0.01,
        ),
        Method(
            "perplexity",
            "response perplexity PPL(y|x), highest first",
            "1",
            "means the model finds the response hard to predict (with order=low: easy).",
            baselines.PerplexityConfig,
            baselines.perplexity,
            baselines.perplexity_plan,
            embeddings=False,
        ),
        Method(
            "length",
            "response length in characters, longest first",
            "0 (no model)",
            "means a long response (with order=short: a short one).",
            baselines.LengthConfig,
            baselines.length,
            embeddings=False,
        ),
        Method(
            "random",
            "seeded uniform random scores",
            "0 (no model)",
            "means nothing: scores are random, the baseline every method must beat.",
            baselines.RandomConfig,
            baselines.random,
            embeddings=False,
        ),
        Method(
            "diversity",
            "k-center greedy on instruction+response embeddings",
            "0 (no model; O(n^2) embedding distances)",
            "means the sample was picked early by k-center greedy: far from everything picked "
            "before it.",
            baselines.DiversityConfig,
            baselines.diversity,
        ),
    )
}


def get(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(
            f"unknown method {name!r}{did_you_mean(name, METHODS)}; choose one of "
            f"{', '.join(METHODS)}"
        )
    return METHODS[name]

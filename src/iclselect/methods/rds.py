"""RDS+ (Ivison et al. 2025, "Large-Scale Data Selection for Instruction Tuning"), a baseline.

Each row, pool and target alike, is represented by the scoring model's last hidden states over
its prompt and response, mean-pooled with position weights (token t of T weighs t / sum 1..T,
as SGPT pools a causal model: later tokens have seen more of the text), unit norm. The pool is
then ranked round-robin over the target rows: each target row in turn takes its most similar
(cosine) pool row not yet taken, until every pool row is taken. A row's score is how early it
was taken (pool size minus its place), so the usual selector reproduces that order at any
budget.

The target set is ICon's assessment set by default (the paper's targets are the evaluation
tasks' own examples; ICon's set is the diverse stand-in the tool ships), or `-s target=FILE`.
Unlike ICon, nothing is measured about what a row teaches: RDS+ prefers rows that look like
the targets to the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from iclselect.errors import UsageError
from iclselect.methods.assessment import load_assessment
from iclselect.methods.loss_requests import conditioned
from iclselect.methods.method import register
from iclselect.methods.options import option
from iclselect.methods.pool import Pool
from iclselect.methods.rounds import PooledStates, Rounds
from iclselect.methods.scores import MethodScores


@dataclass(frozen=True)
class RdsConfig:
    target: str | None = option(
        None, "target set file, any format iclselect reads (default: ICon's 1,020 rows)"
    )
    target_size: int = option(0, "use a seeded random subset of this many target rows (0: all)")
    seed: int = option(42, "seed of the target subset")

    def __post_init__(self) -> None:
        if self.target_size < 0:
            raise UsageError("rds.target_size must be >= 0")


def round_robin(similarity: np.ndarray) -> list[int]:
    """Pool indices in the order round-robin over target rows takes them: target rows take
    turns, each its most similar pool row not yet taken (ties: the lower index). `similarity`
    is targets x pool."""
    n_targets, n = similarity.shape
    taken = np.zeros(n, dtype=bool)
    order: list[int] = []
    # Each target's best untaken rows, deepened only when it runs out: a full sort of every
    # target's row would cost targets x pool x log(pool).
    depth = min(n, 4 * math.ceil(n / max(n_targets, 1)) + 8)
    queues: list[list[int]] = [[] for _ in range(n_targets)]
    while len(order) < n:
        for j in range(n_targets):
            if len(order) == n:
                break
            while True:
                if not queues[j]:
                    queues[j] = _best_untaken(similarity[j], taken, depth)
                i = queues[j].pop(0)
                if not taken[i]:
                    break
            taken[i] = True
            order.append(i)
    return order


def _best_untaken(similarity: np.ndarray, taken: np.ndarray, depth: int) -> list[int]:
    free = np.flatnonzero(~taken)
    best = np.lexsort((free, -similarity[free]))[:depth]
    return free[best].tolist()


@register(
    name="rds",
    summary=(
        "RDS+: similarity of the model's position-weighted pooled hidden states to a target set, "
        "taken round-robin over the target rows (Ivison et al. 2025)"
    ),
    cost="1 forward pass per sample and per target row, no log-likelihood requests",
    high_score=(
        "means the sample looks, to the scoring model, like a target row that fewer other "
        "samples resemble as closely."
    ),
    config=RdsConfig,
    uses_model=True,
    embeddings=False,
    rank=60,
)
def rounds(pool: Pool, config: RdsConfig) -> Rounds:
    targets, name = load_assessment(config.target)
    if not targets:
        raise UsageError(f"{name}: the target set is empty")
    if 0 < config.target_size < len(targets):
        rng = np.random.default_rng(config.seed)
        keep = sorted(rng.choice(len(targets), config.target_size, replace=False))
        targets = [targets[int(k)] for k in keep]
    style = pool.style("alpaca")
    pool_states = yield PooledStates(
        [conditioned(s, style=style) for s in pool.samples],
        weighting="position",
        desc="RDS+ 1/2: pooled states of the pool",
    )
    target_states = yield PooledStates(
        [conditioned(s, style=style) for s in targets],
        weighting="position",
        desc="RDS+ 2/2: pooled states of the targets",
    )
    similarity = target_states @ pool_states.T
    order = round_robin(similarity)
    n = len(pool)
    score = np.empty(n)
    chosen_by = np.empty(n, dtype=int)
    for place, i in enumerate(order):
        score[i] = n - place
        chosen_by[i] = place % len(targets)
    best = similarity.max(axis=0)
    return MethodScores(
        method="rds",
        score=score,
        components={
            "target_row": [targets[j].row for j in chosen_by],
            "similarity": similarity[chosen_by, np.arange(n)].tolist(),
            "best_similarity": best.tolist(),
        },
        params={**asdict(config), "target_name": name, "target_rows": len(targets)},
    )

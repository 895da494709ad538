"""wICI: weighted In-Context Influence (arXiv 2604.25132), as defined in METHODS.md.

A candidate a_i is good when, shown as a one-shot demo, it makes its semantic neighbours (its
probes B_i) easier for the model:

    ICI(i -> b) = IFD(y_b | x_b) - IFD(y_b | a_i, x_b)
    wICI(a_i)   = sum over b in B_i of (1 - cos(f(x_i), f(x_b))) / (2 |B_i|) * ICI(i -> b)

IFD(y_b | a_i, x_b) is IFD with the demo as part of the probe's instruction, as the reference
code computes it: L(y_b | a_i, x_b) / L(y_b), the denominator being the probe's response alone,
the same L(y_b) as in the probe's own IFD. So a sample costs 2 requests for its own IFD and 1
per probe: 2 + |B_i| (7 at the defaults).

Paper-vs-reference-code choices are options; the paper's value is the default, except one guard:
- probes: "difficult" (paper: N=32 neighbours, k-means into K=5 clusters with seed 42, the most
  complex member of each) or "topk" (the 5 nearest). The paper ranks complexity with a DEITA
  scorer, which is not available offline; `difficulty` picks the stand-in computed by the scoring
  model itself: the member's own IFD (default) or its loss L(y|x).
- ifd_form: "loss" (L ratio, the paper's Cherry IFD) or "ppl" (perplexity ratio, wICI's code).
- aggregate: "paper" (formula above) or "code" (only positive ICI terms, averaged over those, no
  1/2; a candidate that helps no probe scores 0).
- prefilter_ifd: True (default, the code's: candidates with IFD > 1 are not scored) or False
  (paper).
Probes are drawn only from samples whose own IFD is defined, and by default (probe_prefilter_ifd)
at most 1: the IFD stand-in for complexity otherwise picks the rows whose instruction does not
help their response, junk on a dirty pool. The two IFD > 1 guards are iclselect's departures:
without them wICI ranks planted junk above clean rows (docs/METHODS.md, "wICI on a dirty pool").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

from iclselect.embed import nearest_neighbours
from iclselect.errors import UsageError
from iclselect.infra.stages import stage
from iclselect.lm.requests import Cut, LogprobRequest
from iclselect.methods import loss_requests
from iclselect.methods.guards import MIN_TOKENS_DEFAULT, MIN_TOKENS_HELP, ifd_above_one, too_short
from iclselect.methods.kmeans import kmeans_labels
from iclselect.methods.method import register
from iclselect.methods.options import option
from iclselect.methods.pool import Pool
from iclselect.methods.rounds import Rounds, ask
from iclselect.methods.scores import MethodScores
from iclselect.records import Sample
from iclselect.selectors import Excluded

Aggregate = Literal["paper", "code"]


@dataclass(frozen=True)
class WiciConfig:
    probes: Literal["difficult", "topk"] = option(
        "difficult",
        "difficult: k-means the N nearest into K clusters, hardest of each (paper); "
        "topk: the K nearest",
    )
    n_probes: int = option(5, "probes per candidate: K clusters, or K nearest for topk")
    n_neighbours: int = option(32, "N nearest neighbours clustered into probes (difficult)")
    difficulty: Literal["ifd", "loss"] = option(
        "ifd", "stand-in for the paper's DEITA complexity: the probe's own IFD or loss"
    )
    seed: int = option(42, "k-means seed")
    ifd_form: loss_requests.IfdForm = option(
        "loss", "IFD as a loss ratio (paper) or ppl ratio (code)"
    )
    aggregate: Aggregate = option(
        "paper",
        "paper: sum of (1-cos)/(2|B|) * ICI; code: mean of (1-cos) * ICI over helped probes",
    )
    prefilter_ifd: bool = option(
        True, "skip candidates whose own IFD > 1 (code, and iclselect's default; paper: off)"
    )
    probe_prefilter_ifd: bool = option(
        True,
        "probes only from rows whose own IFD <= 1 (iclselect's default; paper and code: any row)",
    )
    min_tokens: int = option(MIN_TOKENS_DEFAULT, MIN_TOKENS_HELP)
    joint_tokens: bool = option(
        False, loss_requests.JOINT_HELP.format("ICL-influence-new.py:57-71")
    )
    alone_as_text: bool = option(
        False,
        "L(y) is the response as a text of its own, so its first token goes unscored where "
        "the tokenizer adds no BOS (ICL-influence-new.py:38-44; reference only)",
    )
    code_max_length: int = option(
        0, loss_requests.CODE_MAX_LENGTH_HELP.format("1024, ICL-influence-new.py:116")
    )

    def __post_init__(self) -> None:
        if self.n_probes < 1 or self.n_neighbours < self.n_probes:
            raise UsageError("wICI needs n_probes >= 1 and n_neighbours >= n_probes")


@register(
    name="wici",
    summary=(
        "weighted in-context influence: how much the sample, as a one-shot demo, makes its "
        "neighbours easier (ACL 2026)"
    ),
    cost="2 + n_probes (7 by default)",
    high_score=(
        "means the sample, shown to the model as a one-shot example, makes similar tasks easier "
        "for it."
    ),
    config=WiciConfig,
    uses_model=True,
    tau=0.9,
    fraction=0.1,
    estimate_note=(
        "difficult probes, which depend on the first round's answers, are estimated at the "
        "longest member of each cluster: an upper bound"
    ),
    reference=(
        ("ifd_form", "ppl"),
        ("aggregate", "code"),
        ("prefilter_ifd", True),
        ("probe_prefilter_ifd", False),
        ("joint_tokens", True),
        ("alone_as_text", True),
        ("code_max_length", 1024),
    ),
    rank=10,
)
def rounds(pool: Pool, config: WiciConfig) -> Rounds:
    samples, vectors = pool.samples, pool.instructions()
    n = len(samples)
    style = pool.style("wici")
    pool.need_reference(
        "wici",
        joint_tokens=config.joint_tokens,
        alone_as_text=config.alone_as_text,
        code_max_length=config.code_max_length,
    )
    cuts = code_cuts(config)
    own = yield from loss_requests.own_ifd(
        samples, config.ifd_form, "wICI 1/2: IFD of every sample", style, cuts
    )
    own_ifd, own_loss, alone_loss = own.ifd, own.loss, own.loss_alone
    difficulty = own_ifd if config.difficulty == "ifd" else own_loss
    if config.probe_prefilter_ifd:
        # Not a probe: a row whose own instruction does not help its response. The IFD stand-in
        # for the paper's complexity ranks exactly those first, junk on a dirty pool.
        difficulty = np.where(own_ifd > 1, np.nan, difficulty)
    probes = choose_probes(vectors, difficulty, config)
    excluded = too_short(own.tokens, config.min_tokens)
    if config.prefilter_ifd:
        excluded = ifd_above_one(own_ifd) | excluded
    for i in range(n):
        if i not in excluded and not probes[i]:
            excluded[i] = Excluded("not_scored", "no probe: no other sample with a defined IFD")

    pairs = [(i, b) for i in range(n) if i not in excluded for b in probes[i]]
    got = yield from ask(
        "wICI 2/2: probes with each candidate as demo",
        probes=probe_requests(samples, pairs, style, cuts),
    )

    ici: dict[int, list[float]] = {i: [] for i in range(n)}
    for (i, b), with_demo in zip(pairs, got["probes"], strict=True):
        ici[i].append(
            own_ifd[b] - loss_requests.ratio(with_demo.loss, alone_loss[b], config.ifd_form)
        )
    score = np.full(n, math.nan)
    weights: dict[int, list[float]] = {i: [] for i in range(n)}
    for i in range(n):
        if i in excluded:
            continue
        weights[i] = [1.0 - float(vectors[i] @ vectors[b]) for b in probes[i]]
        if any(math.isnan(term) for term in ici[i]):
            excluded[i] = Excluded(
                "not_scored", "in-context IFD undefined for a probe (its denominator is 0)"
            )
            continue
        score[i] = aggregate(ici[i], weights[i], config.aggregate)

    return MethodScores(
        method="wici",
        score=score,
        components={
            "ifd": own_ifd.tolist(),
            "loss": own_loss.tolist(),
            "n_probes": [len(ici[i]) for i in range(n)],
            "probe_rows": [[samples[b].row for b in probes[i]] if ici[i] else [] for i in range(n)],
            "probe_ici": [ici[i] for i in range(n)],
            "probe_weight": [weights[i] for i in range(n)],
        },
        excluded=excluded,
        params=asdict(config),
        row_columns={"probe_rows": ("probe_ici", "probe_weight")},
    )


def probe_requests(
    samples: list[Sample],
    pairs: list[tuple[int, int]],
    style: str = "",
    cuts: loss_requests.Cuts = loss_requests.PLAIN_CUTS,
) -> list[LogprobRequest]:
    """For each (candidate i, probe b): L(y_b | a_i, x_b). Its denominator is the probe's own
    L(y_b), asked in the first round."""
    return [
        loss_requests.conditioned(samples[b], samples[i].turns, style, cuts.conditioned)
        for i, b in pairs
    ]


def code_cuts(config: WiciConfig) -> loss_requests.Cuts:
    """L(y | x) and L(y) as the reference code's options in `config` tokenise and cut them."""
    cut = Cut(joint=config.joint_tokens, max_length=config.code_max_length)
    return loss_requests.Cuts(cut, replace(cut, bare=config.alone_as_text))


def aggregate(ici: list[float], weights: list[float], how: Aggregate) -> float:
    """Combine per-probe influences into wICI (see the module docstring for both forms)."""
    if how == "paper":
        return sum(w * term for w, term in zip(weights, ici, strict=True)) / (2 * len(ici))
    if how == "code":
        helped = [w * term for w, term in zip(weights, ici, strict=True) if term > 0]
        return sum(helped) / len(helped) if helped else 0.0
    raise ValueError(f"wICI aggregate must be paper or code; got {how!r}")


def choose_probes(
    vectors: np.ndarray, difficulty: np.ndarray, config: WiciConfig
) -> list[list[int]]:
    """Probe set B_i (sample indices) of every sample, drawn from samples with finite difficulty."""
    usable = np.flatnonzero(np.isfinite(difficulty))
    want = config.n_probes if config.probes == "topk" else config.n_neighbours
    neighbours = np.empty((len(vectors), min(want, max(len(usable) - 1, 0))), dtype=np.int64)
    found, _ = nearest_neighbours(vectors[usable], want)
    neighbours[usable] = usable[found]
    # A sample that is not usable still gets probes: its nearest usable samples.
    others = np.setdiff1d(np.arange(len(vectors)), usable)
    for start in range(0, len(others), 4096):
        rows = others[start : start + 4096]
        similarity = vectors[rows] @ vectors[usable].T
        order = np.argsort(-similarity, axis=1, kind="stable")[:, : neighbours.shape[1]]
        neighbours[rows] = usable[order]
    if config.probes == "topk" or neighbours.shape[1] <= config.n_probes:
        return neighbours.tolist()
    return _difficult(neighbours, vectors, difficulty, config)


def _difficult(
    neighbours: np.ndarray, vectors: np.ndarray, difficulty: np.ndarray, config: WiciConfig
) -> list[list[int]]:
    """K-means each sample's neighbours (all samples in one batch, methods/kmeans.py) and keep
    the most difficult member of each cluster (ties: the earlier sample)."""
    with stage("difficult probes (k-means)"):
        labels = kmeans_labels(vectors[neighbours], config.n_probes, config.seed)
    # Each sample's neighbours from most to least difficult; a cluster's probe is its first.
    order = np.lexsort((neighbours, -difficulty[neighbours]), axis=1)
    ranked = np.take_along_axis(neighbours, order, axis=1)
    ranked_labels = np.take_along_axis(labels, order, axis=1)
    clusters = np.arange(config.n_probes)
    first = (ranked_labels[:, None, :] == clusters[None, :, None]).argmax(axis=2)
    return np.take_along_axis(ranked, first, axis=1).tolist()

"""ICon / RICo: In-Context Contribution (arXiv 2505.05327), as defined in METHODS.md.

For candidate T and each assessment sample S (a diverse set disjoint from the pool):

    influence(T -> S) = (PPL(S | T_rand) - PPL(S | T)) / (PPL(S) + 1e-6)

PPL(S | T) places T (prompt and response) as a one-shot demo before S; T_rand is the control:
T's turns with every character replaced by a random printable one, the same number of
characters per turn, so both runs render the same template markup around the same amount of
text and differ only in content. Aggregates over S: significance (mean influence; selection
uses it), consistency (share > 0), stability (variance), coverage (share > 0.5).

Scaling, as in the paper: only `exact` candidates (a seeded random subset) get exact scores;
the top `label_fraction` of those are labelled positive, a classifier learns them and scores the
whole pool in one pass, and the pool is ranked by its probability. The default classifier is a
logistic regression on the instruction+response embeddings (cheap on CPU); `selector=lora`
fine-tunes a LoRA classifier on the scoring model as the paper does (needs peft). Its held-out
agreement with the exact scores is reported in the manifest; a selector at or below chance, or
with too few held-out candidates to judge, ranks nothing unless icon.trust_selector is set
(icon_classifier.distrust).

Options where the paper and its code differ: significance "mean" (paper) or "code"
(2 / (1 + exp(-50 x)) - 1, +-1 beyond |x| > 0.5). Cost: 2 |D_a| requests per exactly scored
candidate plus |D_a|, each candidate's demo computed once for its 2 |D_a| requests.
"""

from __future__ import annotations

import hashlib
import math
import re
import string
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from iclselect.errors import UsageError
from iclselect.lm import reference
from iclselect.lm.requests import Cut, LogprobRequest
from iclselect.methods.assessment import load_assessment
from iclselect.methods.icon_classifier import (
    MIN_EXACT,
    distrust,
    too_few_to_judge,
    train_classifier,
)
from iclselect.methods.loss_requests import conditioned
from iclselect.methods.method import register
from iclselect.methods.options import option
from iclselect.methods.pool import Pool
from iclselect.methods.rounds import CanFitClassifier, Rounds, ask
from iclselect.methods.scores import MethodScores
from iclselect.records import Sample, Turn
from iclselect.selectors import Excluded

_PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "


@dataclass(frozen=True)
class IconConfig:
    assessment: str | None = option(None, "assessment set file (default: the paper's 1,020 rows)")
    assessment_size: int = option(0, "use a seeded random subset of this many rows (0: all)")
    exact: int = option(
        5000, "candidates scored exactly (paper: 5,000); a selector scores the rest"
    )
    selector: Literal["auto", "none", "embedding", "lora"] = option(
        "auto",
        "classifier for the pool: lora (the paper's; needs peft), embedding (iclselect's cheaper "
        "stand-in: logistic regression on the embeddings), none; auto, when exact < pool size: "
        "lora on a CUDA device with peft installed, else embedding",
    )
    lora_epochs: int = option(5, "selector=lora: training epochs (paper: 5, lr 5e-5, r=alpha=8)")
    lora_max_tokens: int = option(2048, "selector=lora: tokens per sample, longer ones cut (code)")
    label_fraction: float = option(0.15, "top share of exact scores labelled positive (paper: 15%)")
    labels: Literal["quantile", "top"] = option(
        "quantile",
        "quantile: positive where significance >= its (1 - label_fraction) quantile (code); "
        "top: exactly the ceil(label_fraction x exact) highest",
    )
    significance: Literal["mean", "code"] = option(
        "mean", "mean influence (paper) or the code's sigmoid map 2/(1+exp(-50x))-1"
    )
    control: Literal["pair", "candidate"] = option(
        "pair",
        "pair: a fresh random text for every (candidate, assessment row) pair (code); "
        "candidate: one per candidate for every row (cheaper: its demo is computed once)",
    )
    seed: int = option(42, "seed of the random subsets and the random-text control")
    trust_selector: bool = option(
        False,
        "let a selector rank the rows without an exact score even when its held-out agreement "
        "is at or below chance or too small to judge (default: refuse; see METHODS.md)",
    )
    code_slices: bool = option(
        False,
        "tokenise demo, separator, assessment prompt and response each on its own, every part "
        "after the first without its first token, a real one where the tokenizer adds no BOS "
        "(compute_context_ppl.py:45, compute_assessment_ppl.py:59; reference only)",
    )
    skip_tokens: int = option(
        0,
        "leave the first this many response tokens after a demo unscored: the code's label "
        "mask counts the separator's and the prompt's tokens before its slices, 2 more "
        "(compute_context_ppl.py:48-49; reference only)",
    )
    code_max_length: int = option(
        0,
        "cut the demo from the right at this many tokens, the separator at 10, the prompt and "
        "the response at 1024, in place of --max-length (2040, compute_context_ppl.py:40-43; "
        "reference only; 0: --max-length)",
    )

    def __post_init__(self) -> None:
        if self.exact < 1 or self.assessment_size < 0:
            raise UsageError("icon.exact must be >= 1 and icon.assessment_size >= 0")
        if not 0 < self.label_fraction < 1:
            raise UsageError("icon.label_fraction must be in (0, 1)")
        if self.lora_epochs < 1 or self.lora_max_tokens < 1:
            raise UsageError("icon.lora_epochs and icon.lora_max_tokens must be at least 1")
        if self.assessment is not None and not Path(self.assessment).exists():
            raise UsageError(f"icon.assessment {self.assessment}: no such file or directory")


@dataclass
class _Setup:
    assessment: list[Sample]
    assessment_name: str
    exact: list[int]  # pool indices scored exactly


def _setup(pool: Pool, config: IconConfig) -> _Setup:
    assessment, name = load_assessment(config.assessment)
    if not assessment:
        raise UsageError(f"{name}: the assessment set is empty")
    rng = np.random.default_rng(config.seed)
    if 0 < config.assessment_size < len(assessment):
        keep = sorted(rng.choice(len(assessment), config.assessment_size, replace=False))
        assessment = [assessment[int(k)] for k in keep]
    n = len(pool)
    exact = (
        list(range(n))
        if config.exact >= n
        else sorted(int(k) for k in rng.choice(n, config.exact, replace=False))
    )
    return _Setup(assessment, name, exact)


def random_control(
    candidate: Sample, seed: int, row: Sample | None = None, style: str = ""
) -> tuple[Turn, ...]:
    """T_rand: the candidate's text replaced by random printable characters (letters, digits,
    punctuation, space), the same number in each turn, so the template renders the same turns
    around it. In a reference style, the candidate's whole text as that style writes it, prompt
    format included, is replaced, as the reference code does. Seeded by the candidate's content
    id and, given `row`, the assessment row's too: a fresh text for every pair, as the reference
    code draws one."""
    key = f"{seed}:{candidate.id}" + (f":{row.id}" if row is not None else "")
    digest = hashlib.sha256(key.encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    if style:
        length = len(reference.context_text(candidate.turns, style))
        return (Turn("assistant", "".join(rng.choice(list(_PRINTABLE), length))),)
    text = "".join(rng.choice(list(_PRINTABLE), sum(len(t.content) for t in candidate.turns)))
    turns, start = [], 0
    for t in candidate.turns:
        turns.append(Turn(t.role, text[start : start + len(t.content)]))
        start += len(t.content)
    return tuple(turns)


def control_for(
    candidate: Sample, row: Sample, config: IconConfig, style: str = ""
) -> tuple[Turn, ...]:
    """The control demo before assessment row `row` (see IconConfig.control)."""
    paired = row if config.control == "pair" else None
    return random_control(candidate, config.seed, paired, style)


def code_cuts(config: IconConfig) -> tuple[Cut, Cut]:
    """PPL(S) and PPL(S | demo) as the reference code's options in `config` cut them."""
    alone = Cut(parts=config.code_slices, max_length=config.code_max_length)
    return alone, replace(alone, skip=config.skip_tokens)


def _requests(pool: Pool, setup: _Setup, config: IconConfig) -> list[LogprobRequest]:
    """For each exactly scored candidate in turn: every assessment row with it as the demo,
    then with its random-text control as the demo (each control drawn once, here)."""
    style = pool.style("rico")
    cut = code_cuts(config)[1]
    requests = []
    for c in setup.exact:
        candidate = pool.samples[c]
        requests += [conditioned(s, candidate.turns, style, cut) for s in setup.assessment]
        requests += [
            conditioned(s, control_for(candidate, s, config, style), style, cut)
            for s in setup.assessment
        ]
    return requests


def influences(base: np.ndarray, with_t: np.ndarray, with_rand: np.ndarray) -> np.ndarray:
    """influence(T -> S) per assessment sample, from the three perplexities."""
    return (with_rand - with_t) / (base + 1e-6)


def aggregates(influence: np.ndarray, significance: str = "mean") -> dict[str, float]:
    """The four aggregates over the assessment rows. Stability is the sample variance (ddof 1,
    pandas' var, as the code computes it); 0 for a single row."""
    mean = float(influence.mean())
    if significance == "code":
        mean = math.copysign(1.0, mean) if abs(mean) > 0.5 else 2 / (1 + math.exp(-50 * mean)) - 1
    return {
        "significance": mean,
        "consistency": float((influence > 0).mean()),
        "stability": float(influence.var(ddof=1)) if len(influence) > 1 else 0.0,
        "coverage": float((influence > 0.5).mean()),
    }


@register(
    name="icon",
    summary=(
        "in-context contribution to an assessment set against a random-text control, with a "
        "trained selector for the pool (ICon / RICo)"
    ),
    cost="2 x assessment rows per exactly scored sample (2,040 by default), 0 for the rest",
    high_score=(
        "means the sample, shown as a one-shot example, helps the model on a varied assessment "
        "set more than random text of the same length does."
    ),
    config=IconConfig,
    uses_model=True,
    fraction=0.15,
    reference=(("code_slices", True), ("skip_tokens", 2), ("code_max_length", 2040)),
    rank=30,
)
def rounds(pool: Pool, config: IconConfig) -> Rounds:
    pool.need_reference(
        "icon",
        code_slices=config.code_slices,
        skip_tokens=config.skip_tokens,
        code_max_length=config.code_max_length,
    )
    n = len(pool)
    setup = _setup(pool, config)
    ranks_unscored = config.selector != "none" and len(setup.exact) < n
    if ranks_unscored:
        _check_selector_size(len(setup.exact), n, config)
    m = len(setup.assessment)
    baseline = code_cuts(config)[0]
    alone = [conditioned(s, style=pool.style("rico"), cut=baseline) for s in setup.assessment]
    got = yield from ask(
        f"ICon: {m} assessment rows with each of {len(setup.exact)} candidates",
        alone=alone,
        with_candidate=_requests(pool, setup, config),
    )
    base = np.array([a.perplexity for a in got["alone"]])
    # One (demo, control) pair of m perplexities per candidate, in setup.exact's order.
    shifted = np.array([a.perplexity for a in got["with_candidate"]]).reshape(-1, 2, m)
    columns: dict[str, list[Any]] = {
        name: [None] * n for name in ("significance", "consistency", "stability", "coverage")
    }
    exact_significance = np.full(n, math.nan)
    for c, (with_t, control) in zip(setup.exact, shifted, strict=True):
        values = aggregates(influences(base, with_t, control), config.significance)
        for name, value in values.items():
            columns[name][c] = value
        exact_significance[c] = values["significance"]

    params: dict[str, Any] = {
        **asdict(config),
        "assessment_rows": m,
        "assessment_source": setup.assessment_name,
        "assessment_overlap_rows": overlap(pool.samples, setup.assessment),
        "exact_rows": len(setup.exact),
    }
    selector = config.selector
    if not ranks_unscored:
        selector = "none"
    elif selector == "auto":
        selector = "lora" if (yield CanFitClassifier()) else "embedding"
    excluded: dict[int, Excluded] = {}
    warnings: list[str] = []
    refusal = None
    if selector == "none":
        score_values = exact_significance
        unscored = Excluded(
            "not_scored",
            f"not among the {len(setup.exact)} exactly scored (icon.exact); no selector",
        )
        excluded = {i: unscored for i in range(n) if math.isnan(exact_significance[i])}
    else:
        score_values, report = yield from train_classifier(
            selector, pool, setup.exact, exact_significance, config
        )
        columns["selector_probability"] = score_values.tolist()
        params["selector_report"] = report
        doubt = distrust(report)
        report["trusted"] = doubt is None
        unscored = n - len(setup.exact)
        if doubt and config.trust_selector:
            warnings.append(
                f"icon: the {selector} selector ranked the {unscored} rows without an exact "
                f"score although {doubt} (icon.trust_selector=true)"
            )
        elif doubt:
            refusal = (
                f"icon: the {selector} selector will not rank the {unscored} rows without an "
                f"exact score: {doubt}. {_FIXES} (the exact scores are in the store: a rerun "
                "recomputes nothing)"
            )
    columns["exact"] = [not math.isnan(v) for v in exact_significance]
    return MethodScores(
        "icon", score_values, columns, excluded, params, warnings=warnings, refusal=refusal
    )


_FIXES = (
    "Raise icon.exact, set icon.selector=none to rank the exactly scored rows alone, or "
    "icon.trust_selector=true to rank every row anyway"
)


def _check_selector_size(exact: int, n: int, config: IconConfig) -> None:
    """Refuse, before any request, a selector too small to train, or to judge unless the user
    insists: what its scores would show is known from the sizes alone."""
    if exact < MIN_EXACT:
        raise UsageError(
            f"icon: {exact} exactly scored candidates are too few to train a selector "
            f"(need {MIN_EXACT}); raise icon.exact or set icon.selector=none"
        )
    small = too_few_to_judge(exact)
    if small and not config.trust_selector:
        raise UsageError(
            f"icon: a selector would rank the {n - exact} of {n} rows without an exact score, "
            f"but {small}. {_FIXES}"
        )


def overlap(pool: list[Sample], assessment: list[Sample]) -> list[int]:
    """Pool rows whose instruction and response equal an assessment row's (whitespace and case
    ignored): the assessment set should be disjoint from the pool."""
    keys = {_normal(s) for s in assessment}
    return [s.row for s in pool if _normal(s) in keys]


def _normal(sample: Sample) -> tuple[str, str]:
    return _squash(sample.instruction_text), _squash(sample.response)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()

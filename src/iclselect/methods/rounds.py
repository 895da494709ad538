"""What a model method asks and is answered: rounds of log-likelihood requests.

A model method is a generator. It yields a `Round` (requests and a progress label), is sent
back the answers keyed by request (never by position), may yield again with requests that
depend on those answers (wICI: every sample's own IFD first, then its difficult probes), and
returns its `MethodScores`. It never sees the engine: the runner (iclselect.run.runner) answers
rounds with the engine for a run, or with a cost-only answerer for a dry run, so the estimate
and the run come from the same code. Two other questions go to the model: ICon's LoRA selector
(`FitClassifier`, answered with a probability per row) and Nuggets' model-space anchors
(`PooledStates`, answered with a vector per request).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from iclselect.lm.requests import LogprobRequest, LogprobResult
from iclselect.methods.scores import MethodScores


@dataclass(frozen=True)
class Round:
    requests: list[LogprobRequest]
    desc: str  # the progress label


@dataclass(frozen=True, kw_only=True)
class FitClassifier:
    """Fine-tune a LoRA sequence classifier on the scoring model (train_texts -> labels) and
    answer with P(label 1) for each of score_texts."""

    train_texts: list[str]
    labels: np.ndarray
    score_texts: list[str]
    seed: int
    epochs: int
    max_tokens: int


@dataclass(frozen=True)
class CanFitClassifier:
    """Whether FitClassifier can be answered well here (a CUDA device and peft): answered
    with a bool. ICon's selector=auto uses the paper's LoRA selector only then."""


@dataclass(frozen=True)
class PooledStates:
    """The scoring model's last hidden states mean-pooled over each request's context and
    response tokens: answered with one unit-norm row per request. `weighting` "mean" weighs
    every token alike (Nuggets); "position" weighs token t of T by t / sum 1..T (RDS+)."""

    requests: list[LogprobRequest]
    weighting: Literal["mean", "position"] = "mean"
    desc: str = "pooled hidden states"  # what the progress line calls it


Answers = Mapping[LogprobRequest, LogprobResult]
Answered = dict[str, list[LogprobResult]]
Question = Round | FitClassifier | CanFitClassifier | PooledStates
Rounds = Generator[Question, "Answers | np.ndarray | bool", MethodScores]


def ask(desc: str, **groups: list[LogprobRequest]) -> Generator[Round, Answers, Answered]:
    """`got = yield from ask(desc, alone=a, with_demo=b)`: one round of every group's requests,
    in the order given, and each group's answers in its requests' order (got["alone"][j]
    answers a[j]). A method keeps what it asked this way; it never rebuilds a request to find
    its answer."""
    answers = yield Round([r for requests in groups.values() for r in requests], desc)
    return {name: [answers[r] for r in requests] for name, requests in groups.items()}

"""Drive model methods' request rounds (methods.rounds) to their scores.

A run answers rounds with the engine (`EngineAnswerer`); a dry run, `inspect` and the speed
benchmark answer the same rounds with `CostAnswerer`, which records what was asked and
answers without a model, so an estimate comes from the very requests a run makes.

Several methods (a compare) advance round by round together, and a request one method asked
is answered for the others from memory, so each distinct request goes to the engine once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from iclselect.infra import stages
from iclselect.lm.requests import LogprobRequest, LogprobResult
from iclselect.methods.method import Method
from iclselect.methods.pool import Pool
from iclselect.methods.rounds import CanFitClassifier, FitClassifier, PooledStates, Round, Rounds
from iclselect.methods.scores import MethodScores

if TYPE_CHECKING:
    from iclselect.lm import Engine

# The stage of a method's own work between its rounds: planning requests, reducing answers.
REQUESTS = "requests (method rounds)"


class Answerer(Protocol):
    def loglikelihood(self, requests: list[LogprobRequest], desc: str) -> list[LogprobResult]: ...

    def fit_classifier(self, job: FitClassifier) -> np.ndarray: ...

    def can_fit_classifier(self) -> bool: ...

    def pooled_states(self, job: PooledStates) -> np.ndarray: ...

    def answered_earlier(self, n: int) -> None: ...


def drive(method: Method, pool: Pool, config: Any, answerer: Answerer | None) -> MethodScores:
    """One method's scores; `answerer` may be None for a method that needs no model."""
    return drive_together([(method, config)], pool, [answerer])[0][0]


def drive_together(
    methods: list[tuple[Method, Any]], pool: Pool, answerers: list[Answerer | None]
) -> list[tuple[MethodScores, float]]:
    """Each method's scores on `pool` and the seconds spent on it; model methods' rounds
    advance together, answered by the method's own answerer (which keeps its statistics),
    never asking a request twice."""
    results: list[MethodScores | None] = [None] * len(methods)
    seconds = [0.0] * len(methods)
    runs: dict[int, Rounds] = {}
    for k, (method, config) in enumerate(methods):
        started = time.perf_counter()
        if method.uses_model:
            if answerers[k] is None:
                raise ValueError(f"{method.name} needs a model to answer its requests")
            runs[k] = method.scorer(pool, config)
        else:
            with stages.stage(REQUESTS):
                results[k] = method.scorer(pool, config)
        seconds[k] += time.perf_counter() - started
    # Only a compare can ask a request twice; a single method never repeats one.
    memory: dict[LogprobRequest, LogprobResult] | None = {} if len(runs) > 1 else None
    replies: dict[int, Any] = dict.fromkeys(runs)
    while runs:
        for k in list(runs):
            started = time.perf_counter()
            try:
                with stages.stage(REQUESTS):
                    question = runs[k].send(replies[k])
            except StopIteration as done:
                results[k] = done.value
                del runs[k]
            else:
                answerer = answerers[k]
                assert answerer is not None
                if isinstance(question, Round):
                    replies[k] = _answer(question, answerer, memory)
                elif isinstance(question, FitClassifier):
                    replies[k] = answerer.fit_classifier(question)
                elif isinstance(question, PooledStates):
                    replies[k] = answerer.pooled_states(question)
                elif isinstance(question, CanFitClassifier):
                    replies[k] = answerer.can_fit_classifier()
                else:
                    raise TypeError(
                        f"{methods[k][0].name} asked {question!r}, not a question a runner answers"
                    )
            seconds[k] += time.perf_counter() - started
    return [(r, s) for r, s in zip(results, seconds, strict=True) if r is not None]


def _answer(
    question: Round,
    answerer: Answerer,
    memory: dict[LogprobRequest, LogprobResult] | None,
) -> dict[LogprobRequest, LogprobResult]:
    if memory is None:
        return dict(
            zip(
                question.requests,
                answerer.loglikelihood(question.requests, question.desc),
                strict=True,
            )
        )
    fresh = [r for r in dict.fromkeys(question.requests) if r not in memory]
    memory.update(zip(fresh, answerer.loglikelihood(fresh, question.desc), strict=True))
    answerer.answered_earlier(len(question.requests) - len(fresh))
    return {r: memory[r] for r in question.requests}


@dataclass
class EngineAnswerer:
    """The engine's answers, and how the requests one method sent were answered."""

    engine: Engine
    stats: dict[str, int] = field(default_factory=dict)

    def loglikelihood(self, requests: list[LogprobRequest], desc: str) -> list[LogprobResult]:
        before = dict(self.engine.stats)
        answers = self.engine.loglikelihood(requests, desc=desc)
        for key, value in self.engine.stats.items():
            self.stats[key] = self.stats.get(key, 0) + value - before[key]
        return answers

    def answered_earlier(self, n: int) -> None:
        # Answered for another method of the compare: like a store hit, nothing computed.
        self.stats["requests"] = self.stats.get("requests", 0) + n
        self.stats["stored"] = self.stats.get("stored", 0) + n

    def fit_classifier(self, job: FitClassifier) -> np.ndarray:
        from iclselect.tune.lora_classifier import fit_predict

        engine = self.engine
        return fit_predict(job, engine.model, engine.template.tokenizer, engine.device)

    def can_fit_classifier(self) -> bool:
        """The paper's LoRA selector is a fine-tune: practical on a CUDA device, with peft."""
        return self.engine.device.type == "cuda" and find_spec("peft") is not None

    def pooled_states(self, job: PooledStates) -> np.ndarray:
        from iclselect.lm.pooled import pooled_states

        return pooled_states(self.engine, job.requests, job.weighting, job.desc)


@dataclass
class CostAnswerer:
    """Records every request asked and answers without a model, pessimistically: the longer a
    request (in tokens, `count_tokens`), the closer its loss to 1, and every response alone
    (an empty prompt) at loss 1. A method that chooses by its answers (wICI's difficult
    probes: the hardest member of each cluster) then chooses the longest, so its estimate is
    an upper bound; every other method's requests do not depend on answers at all."""

    count_tokens: Callable[[LogprobRequest], int]
    rounds: list[list[LogprobRequest]] = field(default_factory=list)

    def loglikelihood(self, requests: list[LogprobRequest], desc: str) -> list[LogprobResult]:
        self.rounds.append(list(requests))
        return [
            LogprobResult(-(1.0 - 1.0 / (self.count_tokens(r) + 1) if r.prompt else 1.0), 1)
            for r in requests
        ]

    def answered_earlier(self, n: int) -> None:
        return None

    def fit_classifier(self, job: FitClassifier) -> np.ndarray:
        return np.full(len(job.score_texts), 0.5)

    def can_fit_classifier(self) -> bool:
        return False  # its cost is not estimated either way

    def pooled_states(self, job: PooledStates) -> np.ndarray:
        """A forward pass per request, counted like a round; the vectors are a seeded draw,
        so the anchors (and the requests that follow) are a plausible set, not the run's."""
        self.rounds.append(list(job.requests))
        vectors = np.random.default_rng(0).normal(size=(len(job.requests), 8))
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def planned_rounds(
    method: Method, pool: Pool, config: Any, count_tokens: Callable[[LogprobRequest], int]
) -> list[list[LogprobRequest]]:
    """The requests `method` asks, round by round, when it scores `pool` (see CostAnswerer
    for the bound on rounds that depend on earlier answers)."""
    answerer = CostAnswerer(count_tokens)
    drive(method, pool, config, answerer)
    return answerer.rounds

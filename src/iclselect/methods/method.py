"""A selection method as registered: its scoring function and what users are told about it.

Each method module decorates its scoring function with `@register(...)`, so its description,
cost, options and paper budget live beside its code; `methods.registry` imports the modules
and lists them. A model method's function is a generator of request rounds (methods.rounds);
the others return their MethodScores directly.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from iclselect.methods.options import describe, make

F = TypeVar("F", bound=Callable[..., Any])

REGISTERED: dict[str, Method] = {}


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    cost: str  # requests per sample, in words
    high_score: str  # what a high score means, one plain sentence finishing "A high score ..."
    config: type
    # (pool, config): a generator of rounds for model methods, else MethodScores.
    scorer: Callable[..., Any]
    embeddings: bool = True  # needs the sample embeddings
    tau: float | None = None  # the paper's near-duplicate threshold; None: no diversity step
    fraction: float = 0.1  # the paper's headline budget, used when none is given
    estimate_note: str = ""
    # The reference code's option values, the defaults under `--template reference`.
    reference: tuple[tuple[str, Any], ...] = ()

    @property
    def uses_model(self) -> bool:
        return inspect.isgeneratorfunction(self.scorer)

    def configure(self, options: dict[str, Any]) -> Any:
        return make(self.config, options, self.name)

    def options(self) -> list[tuple[str, str, str]]:
        return describe(self.config)


def register(
    name: str,
    summary: str,
    cost: str,
    high_score: str,
    config: type,
    *,
    embeddings: bool = True,
    tau: float | None = None,
    fraction: float = 0.1,
    estimate_note: str = "",
    reference: tuple[tuple[str, Any], ...] = (),
) -> Callable[[F], F]:
    """Register the decorated function as method `name` (see Method for the fields)."""

    def add(scorer: F) -> F:
        if name in REGISTERED:
            raise ValueError(f"method {name!r} is registered twice")
        REGISTERED[name] = Method(
            name, summary, cost, high_score, config, scorer, embeddings, tau, fraction,
            estimate_note, reference,
        )  # fmt: skip
        return scorer

    return add

"""A selection method as registered: its scoring function and what users are told about it.

Each method module decorates its scoring function with `@register(name=..., ...)`, so its
description, cost, options and paper budget live beside its code; `methods.registry` imports
every module of the package, so a new module that registers is listed with no other edit. A
model method's function is a generator of request rounds (methods.rounds); the others return
their MethodScores directly.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from iclselect.methods.options import describe, make

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True)
class Method:
    name: str
    summary: str
    cost: str  # requests per sample, in words
    high_score: str  # what a high score means, one plain sentence finishing "A high score ..."
    config: type
    # (pool, config): a generator of rounds for model methods, else MethodScores.
    scorer: Callable[..., Any]
    uses_model: bool  # asks the scoring model (its scorer is a generator of rounds)
    embeddings: bool = True  # needs the sample embeddings
    tau: float | None = None  # the paper's near-duplicate threshold; None: no diversity step
    fraction: float = 0.1  # the paper's headline budget, used when none is given
    estimate_note: str = ""
    # The reference code's option values, the defaults under `--template reference`.
    reference: tuple[tuple[str, Any], ...] = ()
    rank: int | None = None  # place in listings; unranked methods follow, by name

    def configure(self, options: dict[str, Any]) -> Any:
        return make(self.config, options, self.name)

    def options(self) -> list[tuple[str, str, str]]:
        return describe(self.config)


# Every registered method, kept in listing order: by rank, then the unranked ones by name.
METHODS: dict[str, Method] = {}


def _listing_order(method: Method) -> tuple[bool, int, str]:
    return (method.rank is None, method.rank or 0, method.name)


def register(
    *,
    name: str,
    summary: str,
    cost: str,
    high_score: str,
    config: type,
    uses_model: bool,
    embeddings: bool = True,
    tau: float | None = None,
    fraction: float = 0.1,
    estimate_note: str = "",
    reference: tuple[tuple[str, Any], ...] = (),
    rank: int | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as method `name` (see Method for the fields)."""

    def add(scorer: F) -> F:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        # The runner drives a model method's rounds and calls any other directly, so the flag
        # must say which the function is.
        if uses_model != inspect.isgeneratorfunction(scorer):
            kind = "is" if inspect.isgeneratorfunction(scorer) else "is not"
            raise ValueError(
                f"method {name!r}: uses_model={uses_model}, but {scorer.__qualname__} {kind} a "
                "generator of request rounds"
            )
        method = Method(
            name=name,
            summary=summary,
            cost=cost,
            high_score=high_score,
            config=config,
            scorer=scorer,
            uses_model=uses_model,
            embeddings=embeddings,
            tau=tau,
            fraction=fraction,
            estimate_note=estimate_note,
            reference=reference,
            rank=rank,
        )
        ordered = sorted([*METHODS.values(), method], key=_listing_order)
        METHODS.clear()
        METHODS.update((m.name, m) for m in ordered)
        return scorer

    return add

"""Planted defects: a dirty pool made from a clean one, each planted row labelled with its kind.

Real instruction sets hold rows like these; each kind's rule is fixed here and tuned to no
method. A planted row takes the place of a clean row (the pool keeps its size), so `share` is
the planted fraction of the pool, which is also random selection's expected share of planted
rows in any subset. Kinds share the planted rows equally (the remainder to the first kinds).

    mismatched      the response of another row of the pool, drawn at random among those whose
                    response differs (a misaligned join of two columns)
    truncated       the first quarter of the response's words, rounded up, for responses of 8+
                    words (generation cut off at a length limit)
    refusal         a boilerplate refusal in place of the response (distilled from a chat
                    model's refusals)
    shuffled        the response's words in a seeded random order, for responses of 4+ words
                    with 2+ distinct words (scrambled text)
    wrong_number    every number in the response moved by 1 to 9 either way, never below 0
                    (answers with arithmetic errors)
    near_duplicate  a clean row's instruction reworded by a fixed template, its response kept,
                    three rewordings per reworded row: clusters of near-duplicates (one task
                    padded out by paraphrase); the row reworded stays clean
"""

from __future__ import annotations

import itertools
import math
import random
import re
from dataclasses import dataclass
from typing import Any

from iclselect.errors import UsageError

KINDS = ("mismatched", "truncated", "refusal", "shuffled", "wrong_number", "near_duplicate")
CLEAN = "clean"
DEFAULT_SHARE = 0.30

REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "As an AI language model, I cannot complete this request.",
    "I apologize, but I am unable to provide an answer to this question.",
    "Sorry, I can't assist with that request.",
    "As an AI, I don't have the ability to do that.",
)
REWORDINGS = (
    "Please do the following. {}",
    "{} Thank you!",
    "Here is a task for you: {}",
)
NUMBER = re.compile(r"\d+")
TRUNCATE_MIN_WORDS = 8
SHUFFLE_MIN_WORDS = 4


@dataclass
class Planted:
    rows: list[dict[str, Any]]  # the dirty pool, in the clean pool's order
    labels: list[str]  # CLEAN or the kind planted, per row
    sources: list[int | None]  # the clean row a planted row's text came from (donor or base)

    def mask(self) -> list[bool]:
        return [label != CLEAN for label in self.labels]


def plant(rows: list[dict[str, Any]], share: float = DEFAULT_SHARE, seed: int = 0) -> Planted:
    """The pool with round(share * len(rows)) rows replaced by planted ones."""
    if not 0 < share < 1:
        raise UsageError(f"--corrupt must be in (0, 1); got {share}")
    for i, row in enumerate(rows):
        if not isinstance(row.get("instruction"), str) or not isinstance(row.get("output"), str):
            raise UsageError(
                f"--corrupt plants defects in Alpaca rows (instruction, input, output); row {i} "
                f"has fields {', '.join(sorted(row))}"
            )
    rng = random.Random(seed)
    n = len(rows)
    quotas = _quotas(round(share * n))
    out = [dict(row) for row in rows]
    labels = [CLEAN] * n
    sources: list[int | None] = [None] * n
    free = list(range(n))
    rng.shuffle(free)

    def take(kind: str, count: int, eligible: Any) -> list[int]:
        chosen = list(itertools.islice((i for i in free if eligible(rows[i]["output"])), count))
        if len(chosen) < count:
            raise UsageError(
                f"--corrupt: {count} rows of kind {kind} asked, but only {len(chosen)} clean "
                "rows qualify; lower the share or use a larger pool"
            )
        taken = set(chosen)
        free[:] = [i for i in free if i not in taken]
        for i in chosen:
            labels[i] = kind
        return chosen

    # The kinds with the narrowest eligibility choose first.
    for i in take("wrong_number", quotas["wrong_number"], NUMBER.search):
        out[i]["output"] = _wrong_numbers(rows[i]["output"], rng)
    for i in take("truncated", quotas["truncated"], _long_enough(TRUNCATE_MIN_WORDS)):
        words = rows[i]["output"].split()
        out[i]["output"] = " ".join(words[: math.ceil(len(words) / 4)])
    for i in take("shuffled", quotas["shuffled"], _shuffleable):
        out[i]["output"] = _shuffled(rows[i]["output"], rng)
    for i in take("refusal", quotas["refusal"], lambda _: True):
        out[i]["output"] = rng.choice(REFUSALS)
    mismatched = take("mismatched", quotas["mismatched"], lambda _: True)
    for i in mismatched:
        donor = _donor(i, rows, rng)
        out[i]["output"] = rows[donor]["output"]
        sources[i] = donor
    copies = take("near_duplicate", quotas["near_duplicate"], lambda _: True)
    # Reworded rows are clean rows no defect touched; each gives up to len(REWORDINGS) copies.
    bases = free[: math.ceil(len(copies) / len(REWORDINGS))]
    for n_copy, i in enumerate(copies):
        base = bases[n_copy // len(REWORDINGS)]
        template = REWORDINGS[n_copy % len(REWORDINGS)]
        out[i] = {**rows[base], "instruction": template.format(rows[base]["instruction"])}
        sources[i] = base
    return Planted(out, labels, sources)


def _quotas(total: int) -> dict[str, int]:
    per, extra = divmod(total, len(KINDS))
    return {kind: per + (k < extra) for k, kind in enumerate(KINDS)}


def _long_enough(words: int) -> Any:
    return lambda text: len(text.split()) >= words


def _shuffleable(text: str) -> bool:
    words = text.split()
    return len(words) >= SHUFFLE_MIN_WORDS and len(set(words)) >= 2


def _shuffled(text: str, rng: random.Random) -> str:
    words = text.split()
    order = list(words)
    while order == words:
        rng.shuffle(order)
    return " ".join(order)


def _wrong_numbers(text: str, rng: random.Random) -> str:
    def moved(match: re.Match[str]) -> str:
        value = int(match.group())
        step = rng.randint(1, 9)
        return str(value + step if value - step < 0 or rng.random() < 0.5 else value - step)

    return NUMBER.sub(moved, text)


def _donor(i: int, rows: list[dict[str, Any]], rng: random.Random) -> int:
    """A random row whose response differs from row i's."""
    for _ in range(1000):
        j = rng.randrange(len(rows))
        if rows[j]["output"] != rows[i]["output"]:
            return j
    raise UsageError(f"--corrupt: no row found whose response differs from row {i}'s")

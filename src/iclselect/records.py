"""Sample records: what every reader produces and every method consumes.

A sample is a conversation whose last assistant turn is the response y; every turn before it
(system prompt, earlier user/assistant exchanges, the final user instruction) is the context x.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str
    # The source row's own fields the content was joined from, kept apart for the reference
    # prompt formats (`--template reference`), which write them separately: an Alpaca row's
    # ("instruction", ...), ("input", ...); an ICon assessment row's ("inputs", ...) verbatim.
    # Not part of a turn's identity: rows whose contents are equal are the same row.
    fields: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def source(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)


@dataclass(frozen=True)
class Sample:
    """One input row, normalised.

    `row` is the 0-based index of the source row in the input file (its pointer back to the
    original bytes); `id` is a content hash of the turns, so identical rows share an id.
    """

    row: int
    turns: tuple[Turn, ...]

    @property
    def id(self) -> str:
        return content_id(self.turns)

    @property
    def prompt(self) -> tuple[Turn, ...]:
        return self.turns[:-1]

    @property
    def response(self) -> str:
        return self.turns[-1].content

    @property
    def instruction_text(self) -> str:
        """User-side text of the context, the text neighbours are found by."""
        return "\n".join(t.content for t in self.prompt if t.role == "user")

    @property
    def full_text(self) -> str:
        """Instruction and response together, the text near-duplicates are judged by."""
        return "\n".join(t.content for t in self.turns if t.role != "system")


def content_id(turns: tuple[Turn, ...]) -> str:
    payload = json.dumps([[t.role, t.content] for t in turns], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

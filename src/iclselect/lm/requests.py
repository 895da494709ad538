"""Log-likelihood requests and their results: the only language methods and the engine share.

A request asks: how likely is `target` as the assistant's reply after `demos` (each a whole
earlier exchange shown first) and `prompt` (the turns right before the reply)? An empty prompt
means "the reply with no instruction": the unconditioned L(y) of IFD.

`style` names a reference code's prompt format (lm/reference.py) that renders the request
instead of the engine's template: set by methods under `--template reference`, empty otherwise.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from iclselect.records import Turn


@dataclass(frozen=True)
class LogprobRequest:
    prompt: tuple[Turn, ...]
    target: str
    demos: tuple[tuple[Turn, ...], ...] = ()
    style: str = ""

    def key(self) -> str:
        """Content hash of the request; identical questions share a key and are answered once."""

        def turn(t: Turn) -> list:
            # A reference style writes the rows' source fields apart: they are part of its key.
            return [t.role, t.content, t.fields] if self.style else [t.role, t.content]

        fields: dict[str, object] = {
            "demos": [[turn(t) for t in d] for d in self.demos],
            "prompt": [turn(t) for t in self.prompt],
            "target": self.target,
        }
        if self.style:
            fields["style"] = self.style
        payload = json.dumps(fields, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LogprobResult:
    """Sum of the target tokens' log-probabilities, and how many tokens were scored.

    `truncated` counts context tokens dropped from the left to fit the model's window.
    """

    logprob: float
    n_tokens: int
    truncated: int = 0

    @property
    def loss(self) -> float:
        """Mean negative log-likelihood per target token: L(y | c) in METHODS.md."""
        return -self.logprob / self.n_tokens

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

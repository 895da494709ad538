"""Log-likelihood requests and their results: the only language methods and the engine share.

A request asks: how likely is `target` as the assistant's reply after `demos` (each a whole
earlier exchange shown first) and `prompt` (the turns right before the reply)? An empty prompt
means "the reply with no instruction": the unconditioned L(y) of IFD.

`style` names a reference code's prompt format (lm/reference.py) that renders the request
instead of the engine's template: set by methods under `--template reference`, empty otherwise.
`cut` says how that code tokenises, cuts and scores the rendered text (Cut; only with a style).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

from iclselect.records import Turn


@dataclass(frozen=True)
class Cut:
    """How a reference code turns its text into tokens and which of them it scores: each field
    one of its scripts' quirks, all off by default (iclselect's own rules: every part
    tokenised apart, every response token scored after at least one context token, the
    engine's --max-length cutting the context from the left). Only a styled request has one.

    - joint: prompt and response tokenised as one text, with the tokenizer's own special
      tokens; the response starts where the prompt's own tokens end (Cherry, wICI).
    - parts: demo, separator, prompt and response each tokenised on its own with the
      tokenizer's special tokens, every part after the first losing its first token (RICo's
      `[:, 1:]`: a BOS where the tokenizer adds one, else a real token).
    - bare: nothing goes before a sequence but what the tokenizer adds, so its first token is
      never scored (a response with no prompt loses its first token where there is no BOS).
    - skip: the first `skip` response tokens are left in the sequence but not scored.
    - max_length: the code's truncation, from the right, in place of --max-length: of the whole
      sequence, or with `parts` of each demo (the style's own caps for the other parts).
    """

    joint: bool = False
    parts: bool = False
    bare: bool = False
    skip: int = 0
    max_length: int = 0


PLAIN = Cut()


@dataclass(frozen=True)
class LogprobRequest:
    prompt: tuple[Turn, ...]
    target: str
    demos: tuple[tuple[Turn, ...], ...] = ()
    style: str = ""
    cut: Cut = PLAIN

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
        if self.cut != PLAIN:
            fields["cut"] = asdict(self.cut)
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
        """Mean negative log-likelihood per target token: L(y | c) in METHODS.md. NaN where no
        token was scored (a reference code's cut can leave none, where that code gets NaN)."""
        return -self.logprob / self.n_tokens if self.n_tokens else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

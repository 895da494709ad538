"""The one rule that fits a sequence into the model's window (`--max-length`), for every method.

The target is kept whole when it fits beside at least one context token (which predicts its
first token); otherwise its end is cut. The context loses tokens from the left: the demos go
first, then the system prompt and earlier turns, then the instruction.
"""

from __future__ import annotations

from dataclasses import dataclass

from iclselect.lm.templates import Encoded


@dataclass(frozen=True)
class Fit:
    context_cut: int  # context tokens dropped from the left
    target_cut: int  # target tokens dropped from the end
    # Not one token of the context's message text is left (demos, system prompt, turns): what
    # the target is conditioned on is template markup alone.
    text_lost: bool


def fit(encoded: Encoded, max_length: int) -> Fit:
    target = min(len(encoded.target_ids), max_length - 1)
    room = max_length - target
    context_cut = max(0, len(encoded.context_ids) - room)
    return Fit(context_cut, len(encoded.target_ids) - target, 0 < encoded.text_end <= context_cut)

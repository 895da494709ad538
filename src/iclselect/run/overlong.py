"""One policy for over-long rows, in every method that uses the model.

Each row's own request, L(y | x) (its system prompt, earlier turns and instruction, then its
response), is fitted to the window by the engine's rule (lm/window.py). Its cut counts become
the columns `context_cut_tokens` and `response_cut_tokens`. A row none of whose own context
text is left (its response alone fills the window) is `too_long`: whatever a method computes
for it then compares the response with itself (IFD is exactly 1), so it is not ranked.
Rows cut only in part are scored, with their counts in the columns.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from iclselect.lm import Engine
from iclselect.lm.window import Fit, fit
from iclselect.methods import MethodScores, Pool
from iclselect.methods.loss_requests import conditioned
from iclselect.selectors import Excluded

CUT_COLUMNS = ("context_cut_tokens", "response_cut_tokens")


def own_fits(pool: Pool, engine: Engine) -> list[Fit]:
    """How each row's own request fits the engine's window."""
    return [
        fit(engine.template.encode(conditioned(sample)), engine.max_length)
        for sample in pool.samples
    ]


def apply(scores: MethodScores, fits: list[Fit], max_length: int) -> MethodScores:
    """`scores` with the cut columns, and every too-long row unranked (score NaN)."""
    excluded = dict(scores.excluded)
    score = scores.score.copy()
    for i, cut in enumerate(fits):
        if cut.text_lost:
            excluded[i] = Excluded(
                "too_long",
                f"all {cut.context_cut} context tokens cut"
                + (f" and {cut.target_cut} response tokens" if cut.target_cut else "")
                + f" to fit --max-length {max_length}",
            )
            score[i] = math.nan
    components = {
        **scores.components,
        "context_cut_tokens": [cut.context_cut for cut in fits],
        "response_cut_tokens": [cut.target_cut for cut in fits],
    }
    return replace(scores, score=np.asarray(score), components=components, excluded=excluded)


def describe(fits: list[Fit], rows: list[int], max_length: int) -> str | None:
    """One log line saying what the window cut from the rows' own requests; None if nothing."""
    context = [cut.context_cut for cut in fits if cut.context_cut]
    response = [cut.target_cut for cut in fits if cut.target_cut]
    too_long = [row for row, cut in zip(rows, fits, strict=True) if cut.text_lost]
    if not context and not response:
        return None
    parts = []
    if context:
        parts.append(
            f"{len(context)} rows lost {sum(context):,} context tokens from the left (system "
            "prompt and earlier turns first, then the instruction's start)"
        )
    if response:
        parts.append(f"{len(response)} rows lost {sum(response):,} response tokens from the end")
    if too_long:
        shown = ", ".join(map(str, too_long[:10])) + (", ..." if len(too_long) > 10 else "")
        parts.append(
            f"{len(too_long)} rows kept no context text at all (row {shown}): reason too_long, "
            "not ranked"
        )
    return f"to fit --max-length {max_length}, in the rows' own requests: " + "; ".join(parts)

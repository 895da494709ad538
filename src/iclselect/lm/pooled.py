"""The scoring model's last hidden states, mean-pooled over a request's prompt and response
tokens: the space Nuggets' code picks its anchors in (`nuggets.anchor_space=model`), and with
position weights the space RDS+ compares rows in."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from iclselect.infra.progress import Progress
from iclselect.lm.packer import to_job
from iclselect.lm.requests import LogprobRequest

if TYPE_CHECKING:
    from iclselect.lm.engine import Engine

_BATCH = 16


def pooled_states(
    engine: Engine,
    requests: list[LogprobRequest],
    weighting: str = "mean",
    desc: str = "pooled hidden states",
) -> np.ndarray:
    """One unit-norm row per request: the mean of the last layer's hidden states over every
    token of its context and response, fitted to the engine's window as a scored request is.
    `weighting` "position" weighs token t (from 1) by t instead of 1."""
    if weighting not in ("mean", "position"):
        raise ValueError(f"unknown pooling weighting {weighting!r}")
    import torch

    jobs = [
        to_job(i, engine.template.encode(request), engine.max_length, reuse_prefix=False)
        for i, request in enumerate(requests)
    ]
    sequences = [job.context + job.target for job in jobs]
    # Longest first, so that a batch pads to lengths near its own and the widest batch, the
    # one that decides the peak memory, comes first.
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    rows = []
    tokens = sum(len(s) for s in sequences)
    shown = engine.cache.show_progress
    with (
        torch.inference_mode(),
        Progress(desc, tokens, len(sequences), 0, shown, stores=False) as progress,
    ):
        for start in range(0, len(order), _BATCH):
            batch = [sequences[i] for i in order[start : start + _BATCH]]
            width = max(len(s) for s in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, sequence in enumerate(batch):
                ids[i, : len(sequence)] = torch.tensor(sequence)
                mask[i, : len(sequence)] = 1
            # The transformer without its LM head: logits for every position of a padded batch
            # would take batch x width x vocabulary floats (GBs) to be thrown away.
            out = engine.model.base_model(
                input_ids=ids.to(engine.device), attention_mask=mask.to(engine.device)
            )
            last = out.last_hidden_state.float()
            weights = mask.float()
            if weighting == "position":
                weights = weights * torch.arange(1, width + 1, dtype=torch.float32)
            weights = weights.to(engine.device).unsqueeze(-1)
            rows.append(((last * weights).sum(1) / weights.sum(1)).cpu().numpy())
            progress.update(sum(len(s) for s in batch), len(batch))
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    by_length = np.concatenate(rows)
    states = np.empty_like(by_length)
    states[order] = by_length
    return states / np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12)

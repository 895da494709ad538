"""Scoring a (tuned) model on eval sets: reference NLL through the engine, and exact-match
accuracy where a set has short gold answers."""

from __future__ import annotations

import statistics
from typing import Any

import torch

from iclselect.lm.engine import Engine
from iclselect.lm.model import LoadedModel
from iclselect.lm.requests import LogprobRequest
from iclselect.lm.templates import Template
from iclselect.tune.evalsets import EvalItem, EvalSet, final_number

_GENERATE_BATCH = 25


def evaluate(
    loaded: LoadedModel,
    template: Template,
    eval_sets: list[EvalSet],
    generate_tokens: int,
    max_batch_tokens: int | None = None,
    max_length: int = 2048,
    show_progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Per set: `nll` (mean over items of the reference's per-token NLL; lower is better), `n`,
    and `accuracy` for choice sets and, when generate_tokens > 0, for number sets."""
    engine = Engine(loaded, template, max_batch_tokens, max_length, show_progress=show_progress)
    results: dict[str, dict[str, Any]] = {}
    for eval_set in eval_sets:
        items = eval_set.items
        answers = engine.loglikelihood(
            [LogprobRequest(item.prompt, item.reference) for item in items],
            desc=f"eval {eval_set.name}",
        )
        result: dict[str, Any] = {
            "nll": statistics.fmean(a.loss for a in answers),
            "n": len(items),
        }
        if eval_set.kind == "choice":
            result["accuracy"] = _choice_accuracy(engine, items, eval_set.name)
        elif eval_set.kind == "number" and generate_tokens > 0:
            replies = generate(loaded, template, items, generate_tokens)
            hits = [
                final_number(reply) == item.number
                for reply, item in zip(replies, items, strict=True)
            ]
            result["accuracy"] = sum(hits) / len(hits)
        results[eval_set.name] = result
    return results


def generate(
    loaded: LoadedModel, template: Template, items: list[EvalItem], max_new_tokens: int
) -> list[str]:
    """Greedy replies, batched by prompt length with left padding."""
    model, tokenizer = loaded.model, loaded.tokenizer
    device = next(model.parameters()).device
    prompts = [template.encode(LogprobRequest(item.prompt, "")).context_ids for item in items]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    replies: dict[int, str] = {}
    for start in range(0, len(order), _GENERATE_BATCH):
        chunk = order[start : start + _GENERATE_BATCH]
        width = max(len(prompts[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for r, i in enumerate(chunk):
            ids[r, width - len(prompts[i]) :] = torch.tensor(prompts[i])
            mask[r, width - len(prompts[i]) :] = 1
        with torch.no_grad():
            out = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                max_new_tokens=max_new_tokens, pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
        for r, i in enumerate(chunk):
            replies[i] = tokenizer.decode(out[r, width:], skip_special_tokens=True)
    return [replies[i] for i in range(len(items))]


def _choice_accuracy(engine: Engine, items: list[EvalItem], name: str) -> float:
    requests = [LogprobRequest(item.prompt, choice) for item in items for choice in item.choices]
    answers = iter(engine.loglikelihood(requests, desc=f"eval {name} choices"))
    hits = 0
    for item in items:
        logprobs = [next(answers).logprob for _ in item.choices]
        hits += item.choices[logprobs.index(max(logprobs))] == item.reference
    return hits / len(items)

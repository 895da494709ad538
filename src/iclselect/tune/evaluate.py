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
    and `accuracy` for choice sets and, when generate_tokens > 0, for number sets; with each
    item's value beside them (`item_nll`, `item_correct`) for paired comparisons."""
    engine = Engine(loaded, template, max_batch_tokens, max_length, show_progress=show_progress)
    results: dict[str, dict[str, Any]] = {}
    for eval_set in eval_sets:
        items = eval_set.items
        # Single-token choices (MMLU's letters): one pass gives the reference's NLL and the
        # likeliest choice together; otherwise the engine scores the reference (and each
        # choice) as requests.
        one_pass = (
            choice_pass(loaded, template, items, max_length) if eval_set.kind == "choice" else None
        )
        if one_pass is not None:
            losses, hits = one_pass
        else:
            answers = engine.loglikelihood(
                [LogprobRequest(item.prompt, item.reference) for item in items],
                desc=f"eval {eval_set.name}",
            )
            losses, hits = [a.loss for a in answers], None
        result: dict[str, Any] = {
            "nll": statistics.fmean(losses),
            "n": len(items),
            "item_nll": losses,
        }
        if eval_set.kind == "choice" and hits is None:
            hits = _choice_hits(engine, items, eval_set.name)
        elif eval_set.kind == "number" and generate_tokens > 0:
            replies = generate(loaded, template, items, generate_tokens)
            hits = [
                final_number(reply) == item.number
                for reply, item in zip(replies, items, strict=True)
            ]
        if hits is not None:
            result["accuracy"] = sum(hits) / len(hits)
            result["item_correct"] = [int(hit) for hit in hits]
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
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
            )
        for r, i in enumerate(chunk):
            replies[i] = tokenizer.decode(out[r, width:], skip_special_tokens=True)
    return [replies[i] for i in range(len(items))]


def choice_pass(
    loaded: LoadedModel, template: Template, items: list[EvalItem], max_length: int
) -> tuple[list[float], list[bool]] | None:
    """Each item's reference NLL and whether its likeliest choice is the reference, from one
    forward pass per item: when every choice is one token after the same context (MMLU's
    letters), the log-softmax at the context's last position holds them all, where the engine
    would run the context once for the reference and once per choice (5x the tokens). None
    when the choices are not single tokens after one context."""
    contexts, targets = [], []
    for item in items:
        encoded = [template.encode(LogprobRequest(item.prompt, c)) for c in item.choices]
        if any(len(e.target_ids) != 1 or e.context_ids != encoded[0].context_ids for e in encoded):
            return None
        # As the engine cuts an over-long context: its left end goes.
        contexts.append(list(encoded[0].context_ids[-(max_length - 1) :]))
        targets.append([e.target_ids[0] for e in encoded])
    model = loaded.model
    device = next(model.parameters()).device
    order = sorted(range(len(items)), key=lambda i: len(contexts[i]))
    losses: dict[int, float] = {}
    hits: dict[int, bool] = {}
    for start in range(0, len(order), _GENERATE_BATCH):
        chunk = order[start : start + _GENERATE_BATCH]
        width = max(len(contexts[i]) for i in chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for r, i in enumerate(chunk):
            ids[r, : len(contexts[i])] = torch.tensor(contexts[i])
            mask[r, : len(contexts[i])] = 1
        # Right padding: row r's next-token logits sit at its last real position; the head
        # runs there only (not over the whole vocabulary at every position).
        lasts = torch.tensor([len(contexts[i]) - 1 for i in chunk], device=device)
        with torch.no_grad():
            hidden = model.base_model(input_ids=ids.to(device), attention_mask=mask.to(device))
            rows = torch.arange(len(chunk), device=device)
            last = model.get_output_embeddings()(hidden.last_hidden_state[rows, lasts])
            logprobs = torch.log_softmax(last.float(), dim=-1)
        for r, i in enumerate(chunk):
            scores = logprobs[r, torch.tensor(targets[i], device=device)].tolist()
            reference = items[i].choices.index(items[i].reference)
            losses[i] = -scores[reference]
            hits[i] = scores.index(max(scores)) == reference
    return [losses[i] for i in range(len(items))], [hits[i] for i in range(len(items))]


def _choice_hits(engine: Engine, items: list[EvalItem], name: str) -> list[bool]:
    requests = [LogprobRequest(item.prompt, choice) for item in items for choice in item.choices]
    answers = iter(engine.loglikelihood(requests, desc=f"eval {name} choices"))
    hits = []
    for item in items:
        logprobs = [next(answers).logprob for _ in item.choices]
        hits.append(item.choices[logprobs.index(max(logprobs))] == item.reference)
    return hits

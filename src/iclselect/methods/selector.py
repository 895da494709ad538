"""ICon's trained selector: learn which candidates score in the top share exactly, then score
the whole pool in one pass (the paper's answer to 2 |D_a| requests per candidate).

Two classifiers on the same labels:
- embedding (default): logistic regression on the instruction+response embeddings the run
  already has; seconds on a CPU.
- lora (the paper's): the scoring model with a classification head, LoRA r=8, alpha=8 on the
  q/v projections, 5 epochs at lr 5e-5 (needs `pip install peft`). Training is a real
  fine-tune: on a CPU, budget minutes per hundred samples.

Agreement is measured before the final fit: the classifier is trained on 80% of the exactly
scored candidates and compared with the exact scores of the other 20% (ROC AUC against the
top-share labels, Spearman against the significance itself).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from iclselect.lm import Engine
from iclselect.methods.pool import Pool

_LORA = {"r": 8, "alpha": 8, "lr": 5e-5, "batch": 8}
_MIN_EXACT = 10


def train_selector(
    kind: str,
    pool: Pool,
    engine: Engine,
    exact: list[int],
    significance: np.ndarray,
    config: Any,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Probability of being a top candidate for every pool sample, and the agreement report."""
    if len(exact) < _MIN_EXACT:
        raise ValueError(
            f"icon: {len(exact)} exactly scored candidates are too few to train a selector "
            f"(need {_MIN_EXACT}); raise icon.exact or set icon.selector=none"
        )
    values = significance[exact]
    positives = max(1, math.ceil(config.label_fraction * len(exact)))
    labels = np.zeros(len(exact), dtype=int)
    labels[np.argsort(-values, kind="stable")[:positives]] = 1  # ties: the earlier sample
    fit = _embedding if kind == "embedding" else _lora
    order = np.random.default_rng(config.seed).permutation(len(exact))
    held = order[: max(2, len(exact) // 5)]
    train = order[len(held) :]
    exact_array = np.asarray(exact)
    report: dict[str, Any] = {"kind": kind, "positives": int(labels.sum()), "exact": len(exact)}
    if labels[train].min() != labels[train].max():
        predicted = fit(pool, engine, exact_array[train], labels[train], exact_array[held], config)
        report.update(_agreement(predicted, labels[held], values[held]))
        report["trained_on"], report["held_out"] = len(train), len(held)
    else:
        report["held_out_note"] = "the training split held one class only; agreement not measured"
    everything = np.arange(len(pool))
    return fit(pool, engine, exact_array, labels, everything, config), report


def _agreement(predicted: np.ndarray, labels: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    both = labels.min() != labels.max()
    return {
        "held_out_auc": float(roc_auc_score(labels, predicted)) if both else None,
        "held_out_spearman": float(spearmanr(predicted, values).statistic),
    }


def _embedding(
    pool: Pool,
    engine: Engine,
    train: np.ndarray,
    labels: np.ndarray,
    score: np.ndarray,
    config: Any,
) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    vectors = pool.fulls()
    model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=config.seed)
    model.fit(vectors[train], labels)
    return model.predict_proba(vectors[score])[:, 1]


def _lora(
    pool: Pool,
    engine: Engine,
    train: np.ndarray,
    labels: np.ndarray,
    score: np.ndarray,
    config: Any,
) -> np.ndarray:
    import torch

    try:
        from peft import LoraConfig, get_peft_model
    except ModuleNotFoundError:
        raise ValueError("icon.selector=lora needs peft: pip install 'iclselect[lora]'") from None
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(config.seed)
    causal, tokenizer = engine.model, engine.template.tokenizer
    settings = copy.deepcopy(causal.config)
    settings.num_labels = 2
    classifier = AutoModelForSequenceClassification.from_config(settings).to(causal.dtype)
    getattr(classifier, classifier.base_model_prefix).load_state_dict(
        causal.base_model.state_dict()
    )
    classifier.config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    model = get_peft_model(
        classifier.to(engine.device),
        LoraConfig(
            r=_LORA["r"], lora_alpha=_LORA["alpha"], target_modules=["q_proj", "v_proj"],
            task_type="SEQ_CLS",
        ),
    )  # fmt: skip
    texts = [_text(s) for s in pool.samples]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], _LORA["lr"])
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    for _ in range(config.lora_epochs):
        for batch in torch.randperm(len(train), generator=generator).split(_LORA["batch"]):
            chosen = [texts[train[i]] for i in batch]
            inputs = _batch(tokenizer, chosen, config.lora_max_tokens, engine.device)
            target = torch.as_tensor(labels[batch.numpy()], device=engine.device)
            loss = model(**inputs, labels=target).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    probabilities = []
    with torch.inference_mode():
        for chunk in np.array_split(score, max(1, math.ceil(len(score) / 32))):
            chosen = [texts[i] for i in chunk]
            logits = model(
                **_batch(tokenizer, chosen, config.lora_max_tokens, engine.device)
            ).logits
            probabilities.append(torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy())
    return np.concatenate(probabilities)


def _text(sample: Any) -> str:
    return "\n".join(t.content for t in sample.turns)


def _batch(tokenizer: Any, texts: list[str], max_tokens: int, device: Any) -> dict[str, Any]:
    # Sequence classifiers read the last non-pad token; pad on the right so it is found.
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    encoded = tokenizer(
        texts, truncation=True, max_length=max_tokens, padding=True, return_tensors="pt"
    )
    return {key: value.to(device) for key, value in encoded.items()}

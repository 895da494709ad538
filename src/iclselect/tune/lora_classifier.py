"""ICon's paper selector, trained as the RICo code trains it: the scoring model with a
two-label classification head, LoRA r=8, alpha=8, dropout 0.05 on the q/v projections and only
the LoRA weights trained (the head stays as initialised, as in the code), AdamW at lr 5e-5 with
no weight decay, a cosine schedule after 3% warm-up, batches of 8 accumulated to 128 (needs
`pip install peft`). It answers the `FitClassifier` question ICon's method asks
(methods.icon_classifier)."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from iclselect.errors import UsageError
from iclselect.methods.rounds import FitClassifier

_LORA = {"r": 8, "alpha": 8, "dropout": 0.05, "lr": 5e-5, "batch": 8, "accumulate": 16}
_WARMUP = 0.03


def fit_predict(job: FitClassifier, causal: Any, tokenizer: Any, device: Any) -> np.ndarray:
    """P(label 1) for each of job.score_texts, from a LoRA classifier trained on the rest."""
    import torch

    try:
        from peft import LoraConfig, get_peft_model
    except ModuleNotFoundError:
        raise UsageError("icon.selector=lora needs peft: pip install 'iclselect[lora]'") from None
    from transformers import AutoModelForSequenceClassification, get_cosine_schedule_with_warmup

    torch.manual_seed(job.seed)
    settings = copy.deepcopy(causal.config)
    settings.num_labels = 2
    classifier = AutoModelForSequenceClassification.from_config(settings).to(causal.dtype)
    getattr(classifier, classifier.base_model_prefix).load_state_dict(
        causal.base_model.state_dict()
    )
    classifier.config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    model = get_peft_model(
        classifier.to(device),
        LoraConfig(
            r=_LORA["r"],
            lora_alpha=_LORA["alpha"],
            lora_dropout=_LORA["dropout"],
            target_modules=["q_proj", "v_proj"],
            bias="none",
            task_type="SEQ_CLS",
        ),
    )
    for name, parameter in model.named_parameters():
        parameter.requires_grad = "lora" in name
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, _LORA["lr"], weight_decay=0.0)
    batches = math.ceil(len(job.train_texts) / _LORA["batch"])
    steps = job.epochs * math.ceil(batches / _LORA["accumulate"])
    schedule = get_cosine_schedule_with_warmup(optimizer, math.ceil(_WARMUP * steps), steps)
    generator = torch.Generator().manual_seed(job.seed)
    model.train()
    for _ in range(job.epochs):
        order = torch.randperm(len(job.train_texts), generator=generator)
        chunks = order.split(_LORA["batch"])
        for k, batch in enumerate(chunks, start=1):
            chosen = [job.train_texts[i] for i in batch]
            inputs = _batch(tokenizer, chosen, job.max_tokens, device)
            target = torch.as_tensor(job.labels[batch.numpy()], device=device)
            # Each batch's mean loss, weighted by its share of the accumulated step.
            group = min(
                _LORA["accumulate"],
                len(chunks) - (k - 1) // _LORA["accumulate"] * _LORA["accumulate"],
            )
            (model(**inputs, labels=target).loss / group).backward()
            if k % _LORA["accumulate"] == 0 or k == len(chunks):
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
    model.eval()
    probabilities = []
    with torch.inference_mode():
        for chunk in np.array_split(
            np.arange(len(job.score_texts)), max(1, math.ceil(len(job.score_texts) / 32))
        ):
            chosen = [job.score_texts[i] for i in chunk]
            logits = model(**_batch(tokenizer, chosen, job.max_tokens, device)).logits
            probabilities.append(torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy())
    return np.concatenate(probabilities)


def _batch(tokenizer: Any, texts: list[str], max_tokens: int, device: Any) -> dict[str, Any]:
    # Sequence classifiers read the last non-pad token; pad on the right so it is found.
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    encoded = tokenizer(
        texts, truncation=True, max_length=max_tokens, padding=True, return_tensors="pt"
    )
    return {key: value.to(device) for key, value in encoded.items()}

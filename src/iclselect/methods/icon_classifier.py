"""ICon's trained selector: learn which candidates score in the top share exactly, then score
the whole pool in one pass (the paper's answer to 2 |D_a| requests per candidate).

Two classifiers on the same labels:
- embedding (iclselect's cheaper stand-in): logistic regression on the instruction+response
  embeddings the run already has; seconds on a CPU.
- lora (the paper's): the scoring model with a classification head, fine-tuned with LoRA
  (tune.lora_classifier; needs `pip install peft`). The method asks for it as a
  `FitClassifier` question, which the runner answers with the model: this module never
  touches it. Training is a real fine-tune: on a CPU, budget minutes per hundred samples.

Agreement is measured before the final fit: the classifier is trained on 80% of the exactly
scored candidates and compared with the exact scores of the other 20% (ROC AUC against the
top-share labels, Spearman against the significance itself).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np

from iclselect.methods.pool import Pool
from iclselect.methods.rounds import FitClassifier

_MIN_EXACT = 10


def train_classifier(
    kind: str,
    pool: Pool,
    exact: list[int],
    significance: np.ndarray,
    config: Any,
) -> Generator[FitClassifier, np.ndarray, tuple[np.ndarray, dict[str, Any]]]:
    """Probability of being a top candidate for every pool sample, and the agreement report."""
    if len(exact) < _MIN_EXACT:
        raise ValueError(
            f"icon: {len(exact)} exactly scored candidates are too few to train a selector "
            f"(need {_MIN_EXACT}); raise icon.exact or set icon.selector=none"
        )
    values = significance[exact]
    labels = top_labels(values, config.label_fraction, config.labels)
    order = np.random.default_rng(config.seed).permutation(len(exact))
    held = order[: max(2, len(exact) // 5)]
    train = order[len(held) :]
    exact_array = np.asarray(exact)
    report: dict[str, Any] = {"kind": kind, "positives": int(labels.sum()), "exact": len(exact)}
    if labels[train].min() != labels[train].max():
        predicted = yield from _fit(kind, pool, exact_array[train], labels[train],
                                    exact_array[held], config)  # fmt: skip
        report.update(_agreement(predicted, labels[held], values[held]))
        report["trained_on"], report["held_out"] = len(train), len(held)
    else:
        report["held_out_note"] = "the training split held one class only; agreement not measured"
    everything = np.arange(len(pool))
    probabilities = yield from _fit(kind, pool, exact_array, labels, everything, config)
    return probabilities, report


def top_labels(values: np.ndarray, fraction: float, how: str) -> np.ndarray:
    """1 for the top `fraction` of `values`. quantile: values >= the (1 - fraction) quantile,
    linearly interpolated as pandas' quantile is (the reference code; ties all count);
    top: exactly ceil(fraction x n), ties broken by the earlier sample."""
    labels = np.zeros(len(values), dtype=int)
    if how == "quantile":
        labels[values >= np.quantile(values, 1 - fraction)] = 1
    else:
        positives = max(1, math.ceil(fraction * len(values)))
        labels[np.argsort(-values, kind="stable")[:positives]] = 1
    return labels


def _fit(
    kind: str, pool: Pool, train: np.ndarray, labels: np.ndarray, score: np.ndarray, config: Any
) -> Generator[FitClassifier, np.ndarray, np.ndarray]:
    """P(top candidate) for the samples `score`, from a classifier fitted on `train`."""
    if kind == "embedding":
        return _logistic(pool, train, labels, score, config.seed)
    texts = [text(pool.samples[i]) for i in range(len(pool))]
    probabilities = yield FitClassifier(
        [texts[i] for i in train], labels, [texts[i] for i in score], config.seed,
        config.lora_epochs, config.lora_max_tokens,
    )  # fmt: skip
    return probabilities


def _logistic(
    pool: Pool, train: np.ndarray, labels: np.ndarray, score: np.ndarray, seed: int
) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    vectors = pool.fulls()
    model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)
    model.fit(vectors[train], labels)
    return model.predict_proba(vectors[score])[:, 1]


def _agreement(predicted: np.ndarray, labels: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    both = labels.min() != labels.max()
    return {
        "held_out_auc": float(roc_auc_score(labels, predicted)) if both else None,
        "held_out_spearman": float(spearmanr(predicted, values).statistic),
    }


def text(sample: Any) -> str:
    """What the LoRA classifier reads of a sample: its turns' text, one per line."""
    return "\n".join(t.content for t in sample.turns)

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
top-share labels, Spearman against the significance itself). A selector that cannot be judged
(fewer than MIN_HELD_OUT held-out candidates, or one class among them) or whose held-out AUC is
at or below chance (0.5) is not trusted to rank the rows without an exact score
(`distrust`; ICon then refuses unless icon.trust_selector is set).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any, Literal

import numpy as np

from iclselect.methods.pool import Pool
from iclselect.methods.rounds import FitClassifier

Classifier = Literal["embedding", "lora"]

MIN_EXACT = 10  # exactly scored candidates a selector is trained on, at the least
# Held-out candidates needed to judge a selector (held_out_size: icon.exact >= 50): with fewer,
# one or two lucky rows decide its AUC.
MIN_HELD_OUT = 10


def held_out_size(exact: int) -> int:
    """Exactly scored candidates held out to measure the selector's agreement (20%)."""
    return max(2, exact // 5)


def train_classifier(
    kind: Classifier,
    pool: Pool,
    exact: list[int],
    significance: np.ndarray,
    config: Any,
) -> Generator[FitClassifier, np.ndarray, tuple[np.ndarray, dict[str, Any]]]:
    """Probability of being a top candidate for every pool sample, and the agreement report."""
    values = significance[exact]
    labels = top_labels(values, config.label_fraction, config.labels)
    order = np.random.default_rng(config.seed).permutation(len(exact))
    held = order[: held_out_size(len(exact))]
    train = order[len(held) :]
    exact_array = np.asarray(exact)
    report: dict[str, Any] = {
        "kind": kind,
        "positives": int(labels.sum()),
        "exact": len(exact),
        "trained_on": len(train),
        "held_out": len(held),
    }
    if labels[train].min() != labels[train].max():
        predicted = yield from _fit(
            kind,
            pool,
            train=exact_array[train],
            labels=labels[train],
            score=exact_array[held],
            config=config,
        )
        report.update(_agreement(predicted, labels[held], values[held]))
    else:
        report["held_out_note"] = "the training split held one class only; agreement not measured"
    everything = np.arange(len(pool))
    probabilities = yield from _fit(
        kind, pool, train=exact_array, labels=labels, score=everything, config=config
    )
    return probabilities, report


def too_few_to_judge(exact: int) -> str | None:
    """Why a selector trained on `exact` exactly scored candidates cannot be judged, whatever
    their scores, or None: known before any of them is scored."""
    held = held_out_size(exact)
    if held < MIN_HELD_OUT:
        return (
            f"{exact} exactly scored candidates leave {held} held out, too few to judge the "
            f"selector (need {MIN_HELD_OUT}: icon.exact >= {5 * MIN_HELD_OUT})"
        )
    return None


def distrust(report: dict[str, Any]) -> str | None:
    """Why the selector of `report` is not to be trusted with the rows that have no exact
    score, or None: too few held-out candidates to judge it, no measured agreement, or a
    held-out AUC at or below chance (0.5)."""
    spearman = report.get("held_out_spearman")
    rho = "" if spearman is None or math.isnan(spearman) else f", Spearman {spearman:+.2f}"
    auc = report.get("held_out_auc")
    if report["held_out"] < MIN_HELD_OUT:
        measured = f" (held-out AUC {auc:.2f}{rho})" if auc is not None else ""
        return f"{too_few_to_judge(report['exact'])}{measured}"
    if auc is None:
        why = report.get("held_out_note", "the held-out candidates hold one class only")
        return f"its agreement with the exact scores could not be measured: {why}"
    if auc <= 0.5:
        return f"its held-out AUC {auc:.2f}{rho} is at or below chance (0.5)"
    return None


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
    kind: Classifier,
    pool: Pool,
    *,
    train: np.ndarray,
    labels: np.ndarray,
    score: np.ndarray,
    config: Any,
) -> Generator[FitClassifier, np.ndarray, np.ndarray]:
    """P(top candidate) for the samples `score`, from a classifier fitted on `train`."""
    if kind == "embedding":
        return _logistic(pool, train, labels, score, config.seed)
    if kind != "lora":
        raise ValueError(f"ICon's selector must be embedding or lora; got {kind!r}")
    texts = [text(pool.samples[i]) for i in range(len(pool))]
    probabilities = yield FitClassifier(
        train_texts=[texts[i] for i in train],
        labels=labels,
        score_texts=[texts[i] for i in score],
        seed=config.seed,
        epochs=config.lora_epochs,
        max_tokens=config.lora_max_tokens,
    )
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
    # A constant prediction (or significance) has no rank correlation: None, not a NaN that
    # scipy warns about and JSON cannot hold.
    varies = np.ptp(predicted) > 0 and np.ptp(values) > 0
    return {
        "held_out_auc": float(roc_auc_score(labels, predicted)) if both else None,
        "held_out_spearman": float(spearmanr(predicted, values).statistic) if varies else None,
    }


def text(sample: Any) -> str:
    """What the LoRA classifier reads of a sample: its turns' text, one per line."""
    return "\n".join(t.content for t in sample.turns)

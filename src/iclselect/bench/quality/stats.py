"""How sure a difference is: paired bootstrap intervals over eval items.

Every tuned model is scored on the same eval items, so an arm and its reference (random's
seeds, a length-matched control's seeds, or the longest-response arm) are compared item by
item. One bootstrap replicate draws the eval items with replacement (the same draw for both
sides: that is the pairing) and, where the reference has several seeds, its seeds with
replacement too, so the interval also carries how much random's mean moves with the subsets
drawn:

    gain_b = mean over drawn items i of ( mean over drawn seeds s of ref[s, i]  -  arm[i] )

for a metric where lower is better (NLL), the other way round for accuracy: a positive gain
means the arm is better. The 95% interval is the 2.5th and 97.5th percentiles of gain_b; a
verdict says "better" only when the whole interval is above zero, "worse" when it is below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    gain: float  # the arm's advantage over the reference, averaged over all items and seeds
    low: float  # 95% paired bootstrap interval of the gain
    high: float

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "not clearly different"

    def text(self, digits: int = 4) -> str:
        # round() then + 0.0: no "-0.000" for a value that rounds to zero.
        gain, low, high = (round(v, digits) + 0.0 for v in (self.gain, self.low, self.high))
        return f"{gain:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def paired_bootstrap(
    arm: np.ndarray,
    reference: np.ndarray,
    lower_is_better: bool,
    resamples: int = RESAMPLES,
    seed: int = 0,
    items: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
) -> Interval:
    """The gain of `arm` (one value per eval item) over `reference` (seeds x items), with its
    interval. `items` (resamples x n_items) and `seeds` (resamples x n_seeds) are the draws;
    by default seeded random ones (a test passes its own)."""
    arm = np.asarray(arm, dtype=float)
    reference = np.atleast_2d(np.asarray(reference, dtype=float))
    n_seeds, n_items = reference.shape
    assert arm.shape == (n_items,), f"arm has {arm.shape} values, reference {reference.shape}"
    assert n_items > 0, "no eval items to compare on"
    items, seeds = _draws(
        n_items, n_seeds, resamples=resamples, seed=seed, items=items, seeds=seeds
    )
    sign = 1.0 if lower_is_better else -1.0
    reference_means = _seed_means(reference, seeds)  # replicates x items
    per_item = sign * (reference_means - arm[None, :])
    gains = np.take_along_axis(per_item, items, axis=1).mean(axis=1)
    low, high = np.quantile(gains, [0.025, 0.975])
    gain = float(sign * (reference.mean(axis=0) - arm).mean())
    return Interval(gain, float(low), float(high))


@dataclass(frozen=True)
class Share:
    value: float  # the arm's gain over the untuned model as a share of the full pool's gain
    low: float  # 95% paired bootstrap interval
    high: float

    def text(self) -> str:
        return f"{self.value:.0%} [{self.low:.0%}, {self.high:.0%}]"


def recovered_share(
    arm: np.ndarray,
    full: np.ndarray,
    untuned: np.ndarray,
    lower_is_better: bool,
    resamples: int = RESAMPLES,
    seed: int = 0,
    items: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
) -> Share:
    """How much of what tuning on the whole pool teaches the arm's subset keeps:

        share = mean_i sign * (untuned[i] - arm[i])  /  mean_i sign * (untuned[i] - full[i])

    sign 1 where lower is better (NLL), -1 for accuracy. `arm` is one value per eval item, or
    seeds x items (random's subsets: their mean, seeds resampled as in paired_bootstrap). One
    bootstrap replicate draws the items once for all three models, so the interval is paired.
    A share is a ratio, and one over a gain that may be zero says nothing: where the full
    pool's own gain over the untuned model is not clearly positive (its 95% interval, from the
    same draws, reaches zero) the share is undefined, nan."""
    arm = np.atleast_2d(np.asarray(arm, dtype=float))
    full, untuned = (np.asarray(v, dtype=float) for v in (full, untuned))
    n_seeds, n_items = arm.shape
    assert full.shape == untuned.shape == (n_items,), "arm, full and untuned need the same items"
    items, seeds = _draws(
        n_items, n_seeds, resamples=resamples, seed=seed, items=items, seeds=seeds
    )
    sign = 1.0 if lower_is_better else -1.0
    arm_means = _seed_means(arm, seeds)  # replicates x items
    arm_gain = np.take_along_axis(sign * (untuned[None, :] - arm_means), items, axis=1)
    full_gain = (sign * (untuned - full))[items]
    full_means = full_gain.mean(axis=1)
    total = sign * (untuned - full).mean()
    if total <= 0 or np.quantile(full_means, 0.025) <= 0:
        return Share(math.nan, math.nan, math.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = arm_gain.mean(axis=1) / full_means
    value = float(sign * (untuned - arm.mean(axis=0)).mean() / total)
    low, high = np.quantile(shares, [0.025, 0.975])
    return Share(value, float(low), float(high))


def _draws(
    n_items: int,
    n_seeds: int,
    *,
    resamples: int,
    seed: int,
    items: np.ndarray | None,
    seeds: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap's item draws (resamples x n_items) and seed draws (resamples x n_seeds):
    those given, else seeded random ones."""
    rng = np.random.default_rng(seed)
    if items is None:
        items = rng.integers(0, n_items, size=(resamples, n_items))
    if seeds is None:
        seeds = (
            rng.integers(0, n_seeds, size=(resamples, n_seeds))
            if n_seeds > 1
            else np.zeros((len(items), 1), dtype=int)
        )
    return items, seeds


def _seed_means(values: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Per replicate, the mean of `values` (seeds x items) over its drawn seeds, item by item:
    a seed drawn twice counts twice."""
    counts = np.stack([np.bincount(row, minlength=len(values)) for row in seeds]) / seeds.shape[1]
    return counts @ values

"""K-means of many small point sets at once: wICI clusters each candidate's N = 32 neighbours
into K = 5, for every candidate of the pool.

One scikit-learn KMeans per candidate costs 0.1-0.3 s of Python and thread start-up for a few
thousand FLOPs of work (1.5-5 h of CPU at 52k rows). Here every set is clustered together, in
the Gram space of its own points: a centroid is the mean of its members, so a point's squared
distance to it is G_ii - 2 mean_j G_ij + mean_jl G_jl over the members j, l, and each Lloyd step
is one batched (N x N) @ (N x K) product, whatever the embedding's width.

The algorithm is scikit-learn's KMeans(n_init=10, random_state=seed): greedy k-means++ (2 + ln K
trials per centre), Lloyd steps until no label moves, an emptied cluster taking the point
farthest from its centre, the start of least within-cluster sum of squares kept. Each set is
seeded alike, as the paper's code seeds each candidate's KMeans: every set's starts use the same
draws of a RandomState(seed) stream, in the order scikit-learn takes them, so a set's clustering
depends only on its points and the seed, never on the batch it is in.
"""

from __future__ import annotations

import math

import numpy as np

N_INIT = 10  # starts per set, as scikit-learn's KMeans(n_init=10)
MAX_ITER = 300  # Lloyd steps at most, as scikit-learn's; 32 points settle in far fewer
_BATCH = 1024  # sets per batch: (batch x n_init) Gram-space arrays of N x N stay ~100 MB


def kmeans_labels(points: np.ndarray, k: int, seed: int, n_init: int = N_INIT) -> np.ndarray:
    """Cluster labels (sets x N) of each of `points` (sets x N x dim) into `k` clusters."""
    sets, n, _ = points.shape
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= points per set; got k={k}, {n} points")
    trials = 2 + int(math.log(k))
    # Per start: the first centre, then `trials` draws per later centre.
    draws = np.random.RandomState(seed).random_sample((n_init, 1 + (k - 1) * trials))
    labels = np.empty((sets, n), dtype=np.int64)
    for start in range(0, sets, _BATCH):
        batch = points[start : start + _BATCH].astype(np.float64)
        batch -= batch.mean(axis=1, keepdims=True)  # as scikit-learn: distances in less rounding
        labels[start : start + _BATCH] = _cluster(batch, k, draws, trials)
    return labels


def inertia(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Within-cluster sum of squared distances to the centroid, per set."""
    total = np.zeros(len(points))
    for cluster in np.unique(labels):
        member = (labels == cluster)[:, :, None]
        count = member.sum(axis=1)
        centre = (points * member).sum(axis=1) / np.maximum(count, 1)
        total += (((points - centre[:, None]) ** 2).sum(axis=2) * member[:, :, 0]).sum(axis=1)
    return total


def _cluster(points: np.ndarray, k: int, draws: np.ndarray, trials: int) -> np.ndarray:
    sets, n = points.shape[:2]
    n_init = len(draws)
    gram = points @ points.transpose(0, 2, 1)
    norms = np.einsum("bii->bi", gram)
    pairwise = np.maximum(norms[:, :, None] + norms[:, None, :] - 2 * gram, 0.0)
    # Every start of every set side by side: b indexes (set, start).
    gram = np.repeat(gram, n_init, axis=0)
    norms = np.repeat(norms, n_init, axis=0)
    pairwise = np.repeat(pairwise, n_init, axis=0)
    draws = np.tile(draws, (sets, 1))
    centres = _plus_plus(pairwise, k, draws, trials)
    rows = np.arange(len(pairwise))
    distance = pairwise[rows[:, None], centres]  # (b, k, n): the first step's centres are points
    labels = distance.argmin(axis=1)
    for _ in range(MAX_ITER):
        labels = _fill_empty(labels, distance, k)
        distance = _to_centroids(gram, norms, labels, k)
        moved = distance.argmin(axis=1)
        if np.array_equal(moved, labels):
            break
        labels = moved
    cost = distance.min(axis=1).sum(axis=1).reshape(sets, n_init)
    # The first start of least cost, as scikit-learn keeps.
    best = cost.argmin(axis=1)
    return labels.reshape(sets, n_init, n)[np.arange(sets), best]


def _plus_plus(pairwise: np.ndarray, k: int, draws: np.ndarray, trials: int) -> np.ndarray:
    """Greedy k-means++ centres (point indices, b x k): each next centre is the best, by the
    potential it leaves, of `trials` points drawn in proportion to their squared distance."""
    b, n = pairwise.shape[:2]
    rows = np.arange(b)
    centres = np.empty((b, k), dtype=np.int64)
    # RandomState.choice(n) with equal weights: the draw's place among the cumulative weights.
    cumulative = np.cumsum(np.full(n, 1.0 / n))
    centres[:, 0] = np.minimum(
        np.searchsorted(cumulative / cumulative[-1], draws[:, 0], "right"), n - 1
    )
    closest = pairwise[rows, centres[:, 0]]
    for c in range(1, k):
        potential = closest.sum(axis=1)
        cumulative = np.cumsum(closest, axis=1)
        wanted = draws[:, 1 + (c - 1) * trials : 1 + c * trials] * potential[:, None]
        picked = np.minimum(
            (cumulative[:, None, :] < wanted[:, :, None]).sum(axis=2), n - 1
        )  # searchsorted per row
        candidate = np.minimum(closest[:, None, :], pairwise[rows[:, None], picked])
        best = candidate.sum(axis=2).argmin(axis=1)
        centres[:, c] = picked[rows, best]
        closest = candidate[rows, best]
    return centres


def _to_centroids(gram: np.ndarray, norms: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Squared distance (b, k, n) from each point to each cluster's centroid."""
    member = (labels[:, None, :] == np.arange(k)[None, :, None]).astype(gram.dtype)
    count = np.maximum(member.sum(axis=2), 1.0)
    cross = member @ gram  # (b, k, n): sum over members j of G_ji
    spread = (cross * member).sum(axis=2) / count**2
    return np.maximum(norms[:, None, :] - 2 * cross / count[:, :, None] + spread[:, :, None], 0)


def _fill_empty(labels: np.ndarray, distance: np.ndarray, k: int) -> np.ndarray:
    """Each empty cluster takes the point farthest from its own centre (scikit-learn's rule)."""
    counts = (labels[:, None, :] == np.arange(k)[None, :, None]).sum(axis=2)
    empty = np.argwhere(counts == 0)
    if not len(empty):
        return labels
    labels = labels.copy()
    for b, cluster in empty:
        own = distance[b, labels[b], np.arange(labels.shape[1])]
        alone = np.bincount(labels[b], minlength=k)[labels[b]] == 1
        own[alone] = -1.0  # a point alone in its cluster would empty that one instead
        labels[b, int(own.argmax())] = cluster
    return labels

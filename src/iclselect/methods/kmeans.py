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
    """Labels (sets x n) of the best of len(draws) starts per set; the starts' arrays are
    (sets, starts, ...), sharing each set's Gram matrix."""
    sets = len(points)
    gram = points @ points.transpose(0, 2, 1)
    norms = np.einsum("bii->bi", gram)
    pairwise = np.maximum(norms[:, :, None] + norms[:, None, :] - 2 * gram, 0.0)
    centres = _plus_plus(pairwise, k, draws, trials)
    # The first step's centres are points: their distances are rows of `pairwise`.
    distance = pairwise[np.arange(sets)[:, None, None], centres]  # (sets, starts, k, n)
    labels = distance.argmin(axis=2)
    for _ in range(MAX_ITER):
        labels = _fill_empty(labels, distance, k)
        distance = _to_centroids(gram, norms, labels, k)
        moved = distance.argmin(axis=2)
        if np.array_equal(moved, labels):
            break
        labels = moved
    cost = distance.min(axis=2).sum(axis=2)
    # The first start of least cost, as scikit-learn keeps.
    return labels[np.arange(sets), cost.argmin(axis=1)]


def _plus_plus(pairwise: np.ndarray, k: int, draws: np.ndarray, trials: int) -> np.ndarray:
    """Greedy k-means++ centres (point indices, sets x starts x k): each next centre is the
    best, by the potential it leaves, of `trials` points drawn in proportion to their squared
    distance to the centres so far."""
    sets, n = pairwise.shape[:2]
    starts = len(draws)
    centres = np.empty((sets, starts, k), dtype=np.int64)
    # RandomState.choice(n) with equal weights: the draw's place among the cumulative weights.
    cumulative = np.cumsum(np.full(n, 1.0 / n))
    first = np.minimum(np.searchsorted(cumulative / cumulative[-1], draws[:, 0], "right"), n - 1)
    centres[:, :, 0] = first
    closest = pairwise[:, first]  # (sets, starts, n)
    own = np.arange(sets)[:, None, None]
    for c in range(1, k):
        potential = closest.sum(axis=2)
        cumulative = np.cumsum(closest, axis=2)
        wanted = draws[None, :, 1 + (c - 1) * trials : 1 + c * trials] * potential[:, :, None]
        # np.searchsorted (left) per start: how many cumulative sums lie below each draw.
        picked = np.minimum((cumulative[:, :, None, :] < wanted[:, :, :, None]).sum(axis=3), n - 1)
        candidate = np.minimum(closest[:, :, None, :], pairwise[own, picked])
        best = candidate.sum(axis=3).argmin(axis=2)[:, :, None]
        centres[:, :, c] = np.take_along_axis(picked, best, axis=2)[:, :, 0]
        closest = np.take_along_axis(candidate, best[:, :, :, None], axis=2)[:, :, 0]
    return centres


def _to_centroids(gram: np.ndarray, norms: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Squared distance (sets, starts, k, n) from each point to each cluster's centroid."""
    sets, starts, n = labels.shape
    member = (labels[:, :, None, :] == np.arange(k)[None, None, :, None]).astype(gram.dtype)
    count = np.maximum(member.sum(axis=3), 1.0)
    # Sum over members j of G_ji, every start of a set in one product with its Gram matrix.
    cross = (member.reshape(sets, starts * k, n) @ gram).reshape(sets, starts, k, n)
    spread = (cross * member).sum(axis=3) / count**2
    centred = norms[:, None, None, :] - 2 * cross / count[..., None] + spread[..., None]
    return np.maximum(centred, 0.0)


def _fill_empty(labels: np.ndarray, distance: np.ndarray, k: int) -> np.ndarray:
    """Each empty cluster takes the point farthest from its own centre (scikit-learn's rule)."""
    shape = labels.shape
    labels, distance = labels.reshape(-1, shape[-1]), distance.reshape(-1, k, shape[-1])
    counts = (labels[:, None, :] == np.arange(k)[None, :, None]).sum(axis=2)
    empty = np.argwhere(counts == 0)
    if not len(empty):
        return labels.reshape(shape)
    labels = labels.copy()
    for b, cluster in empty:
        own = distance[b, labels[b], np.arange(labels.shape[1])]
        alone = np.bincount(labels[b], minlength=k)[labels[b]] == 1
        own[alone] = -1.0  # a point alone in its cluster would empty that one instead
        labels[b, int(own.argmax())] = cluster
    return labels.reshape(shape)

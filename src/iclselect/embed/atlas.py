"""A map of the pool for people: 2-D coordinates (PCA of the sample embeddings) and topic
clusters (k-means), each cluster named by its most central member."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FIT_ROWS = 20_000  # k-means is fit on at most this many samples, then assigns every sample
_MAX_CLUSTERS = 20


@dataclass
class Atlas:
    xy: np.ndarray  # (n, 2) float32
    cluster: np.ndarray  # (n,) int, 0..k-1
    central: np.ndarray  # (n,) bool: the member nearest its cluster's centre


def atlas(vectors: np.ndarray, seed: int = 42) -> Atlas:
    """PCA via the d x d covariance (memory grows with d, not n) and k-means with
    k = clamp(sqrt(n) / 2, 2, 20)."""
    from sklearn.cluster import KMeans

    n = len(vectors)
    data = vectors.astype(np.float64)
    centred = data - data.mean(axis=0)
    _, eigenvectors = np.linalg.eigh(centred.T @ centred)
    xy = (centred @ eigenvectors[:, ::-1][:, :2]).astype(np.float32)
    k = int(min(_MAX_CLUSTERS, max(2, round(np.sqrt(n) / 2)), n))
    rng = np.random.default_rng(seed)
    fit = data if n <= _FIT_ROWS else data[rng.choice(n, _FIT_ROWS, replace=False)]
    model = KMeans(n_clusters=k, random_state=seed, n_init=3).fit(fit)
    cluster = model.predict(data)
    distance = np.linalg.norm(data - model.cluster_centers_[cluster], axis=1)
    central = np.zeros(n, dtype=bool)
    for c in np.unique(cluster):
        members = np.flatnonzero(cluster == c)
        central[members[np.argmin(distance[members])]] = True
    return Atlas(xy, cluster.astype(np.int64), central)

"""Exact k-nearest-neighbour graph by cosine similarity (faiss inner product on unit vectors)."""

from __future__ import annotations

import numpy as np


def nearest_neighbours(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row, its k most similar OTHER rows (by index, so an exact duplicate still counts
    as a neighbour) and their cosine similarities, most similar first. k is capped at n - 1."""
    import faiss

    n = len(vectors)
    k = min(k, n - 1)
    if k <= 0:
        return np.empty((n, 0), dtype=np.int64), np.empty((n, 0), dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    similarity, ids = index.search(vectors, k + 1)
    neighbours = np.empty((n, k), dtype=np.int64)
    similarities = np.empty((n, k), dtype=np.float32)
    for row in range(n):
        keep = ids[row] != row
        # With duplicates the row itself may not come first; drop it wherever it is,
        # and drop the last hit when the row was not among the k + 1.
        found, sims = ids[row][keep][:k], similarity[row][keep][:k]
        neighbours[row], similarities[row] = found, sims
    return neighbours, similarities

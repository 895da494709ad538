"""k-nearest-neighbour graph by cosine similarity (faiss inner product on unit vectors).

Exact search compares every pair: right up to a few hundred thousand rows, hours beyond (10M
rows is 1e14 dot products). Larger pools use an inverted-file index (IVF): vectors are bucketed
by k-means into about 4 * sqrt(n) lists and each query searches the `probes` nearest lists,
which finds nearly all true neighbours (recall is measured in the tests) at a small share of
the cost.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from iclselect.infra.stages import stage

# Above this many rows, "auto" switches from exact search to IVF.
EXACT_UP_TO = 200_000
_IVF_PROBES = 32
_TRAIN_PER_LIST = 64  # k-means training points per list (faiss wants at least 39)

Search = Literal["auto", "exact", "ivf"]


def nearest_neighbours(
    vectors: np.ndarray, k: int, search: Search = "auto", lists: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For each row, its k most similar OTHER rows (by index, so an exact duplicate still counts
    as a neighbour) and their cosine similarities, most similar first. k is capped at n - 1.
    `search` auto is exact up to EXACT_UP_TO rows, IVF above; `lists` overrides IVF's list count.
    """
    n = len(vectors)
    k = min(k, n - 1)
    if k <= 0:
        return np.empty((n, 0), dtype=np.int64), np.empty((n, 0), dtype=np.float32)
    if search == "auto":
        search = "exact" if n <= EXACT_UP_TO else "ivf"
    with stage("neighbour search"):
        index = _exact(vectors) if search == "exact" else _ivf(vectors, lists)
        similarity, ids = index.search(vectors, k + 1)
        short = np.flatnonzero((ids < 0).any(axis=1))
        if len(short):  # IVF's probed lists held fewer than k + 1 rows: search those exactly
            similarity[short], ids[short] = _exact(vectors).search(vectors[short], k + 1)
    neighbours = np.empty((n, k), dtype=np.int64)
    similarities = np.empty((n, k), dtype=np.float32)
    for row in range(n):
        keep = ids[row] != row
        # With duplicates the row itself may not come first; drop it wherever it is,
        # and drop the last hit when the row was not among the k + 1.
        found, sims = ids[row][keep][:k], similarity[row][keep][:k]
        neighbours[row], similarities[row] = found, sims
    return neighbours, similarities


def _exact(vectors: np.ndarray):
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def _ivf(vectors: np.ndarray, lists: int | None):
    import faiss

    n, dim = vectors.shape
    lists = lists or max(1, min(round(4 * math.sqrt(n)), n // _TRAIN_PER_LIST))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    # A seeded sample trains the lists: the same pool gives the same graph.
    sample = np.random.default_rng(0).choice(n, min(n, lists * _TRAIN_PER_LIST), replace=False)
    index.cp.seed = 0
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    index.nprobe = min(lists, _IVF_PROBES)
    return index

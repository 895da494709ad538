"""The neighbour graph: exact search, and the IVF index large pools switch to, on real
embeddings of real rows."""

from __future__ import annotations

import numpy as np

from iclselect.embed import nearest_neighbours
from iclselect.embed.neighbours import EXACT_UP_TO


def test_ivf_finds_nearly_all_exact_neighbours(pool200):
    vectors = pool200.instructions()
    exact, exact_sims = nearest_neighbours(vectors, 5, "exact")
    ivf, ivf_sims = nearest_neighbours(vectors, 5, "ivf", lists=8)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact, ivf, strict=True)])
    assert recall >= 0.95, recall
    assert (ivf != np.arange(len(vectors))[:, None]).all()  # never a row's own neighbour
    # Similarities are true cosines, most similar first, and never above the exact k-th best.
    assert (np.diff(ivf_sims, axis=1) <= 1e-6).all()
    assert (ivf_sims[:, 0] <= exact_sims[:, 0] + 1e-6).all()


def test_rows_whose_probed_lists_are_too_small_are_searched_exactly(pool200):
    vectors = pool200.instructions()
    # 200 lists of about one row each, 32 probed: fewer than k + 1 = 41 candidates per row.
    ivf, _ = nearest_neighbours(vectors, 40, "ivf", lists=200)
    exact, _ = nearest_neighbours(vectors, 40, "exact")
    assert (ivf == exact).all()


def test_auto_is_exact_below_the_switch(pool200):
    vectors = pool200.instructions()
    assert len(vectors) <= EXACT_UP_TO
    assert (nearest_neighbours(vectors, 4)[0] == nearest_neighbours(vectors, 4, "exact")[0]).all()

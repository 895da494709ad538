"""Sentence embeddings and the faiss neighbour graph built on them."""

from iclselect.embed.embedder import DEFAULT_EMBEDDER, Embedder
from iclselect.embed.neighbours import nearest_neighbours

__all__ = ["DEFAULT_EMBEDDER", "Embedder", "nearest_neighbours"]

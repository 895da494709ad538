"""Embedding a large pool on Ray workers: the texts are cut into shards, each worker holds one
embedder copy and encodes whole shards; the driver puts the shards back in order. A worker
that dies is replaced and its shards are redone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iclselect.embed.embedder import Embedder
from iclselect.infra.cluster import Actor, ActorPool

SHARD = 8192  # texts per unit of work: a few seconds of encoding, small next to actor start-up


class _EmbedWorker(Actor):
    def __init__(self, name: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.embedder = Embedder(name)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode(texts)


class ShardedEmbedder:
    """The Embedder interface, spread over `workers` Ray actors."""

    def __init__(
        self,
        name: str,
        workers: int,
        address: str | None = None,
        threads: int = 1,
        shard: int = SHARD,
    ) -> None:
        self.name = name
        self.shard = shard
        self.chunk = shard * workers  # one shard per worker per call through the store
        self.pool = ActorPool(
            _EmbedWorker, (name, threads), workers=workers, address=address, cpus=threads
        )

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        shards = [list(texts[i : i + self.shard]) for i in range(0, len(texts), self.shard)]
        parts: dict[int, np.ndarray] = dict(self.pool.map("encode", shards))
        if not parts:
            return np.empty((0, 0), dtype=np.float32)
        return np.concatenate([parts[i] for i in range(len(shards))])

    def close(self) -> None:
        self.pool.shutdown()

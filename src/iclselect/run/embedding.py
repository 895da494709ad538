"""A pool's sentence embeddings through the result store: a text embedded once, by the same
embedder weights, is never embedded again (a rerun, another method, another --out sharing
--store), and a long embedding shows progress and resumes after Ctrl-C like scoring does."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from iclselect.embed.embedder import weights_directory
from iclselect.infra.progress import Progress
from iclselect.lm.fingerprint import weights_fingerprint
from iclselect.lm.store import VectorStore

log = logging.getLogger("iclselect")


class TextEncoder(Protocol):
    chunk: int  # texts per call: each call's vectors are committed to the store

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def close(self) -> None: ...


def embed_texts(
    name: str,
    make: Callable[[], TextEncoder],
    lists: Sequence[Sequence[str]],
    store_path: str | Path,
    show_progress: bool = True,
) -> list[np.ndarray]:
    """One float32 matrix per list of texts, a row per text, by embedder `name`; texts the
    store holds are not embedded again, each text is embedded at most once, and the embedder
    is made (`make`) only when some text is not stored."""
    embedder = None
    directory = weights_directory(name)
    if directory is None:  # a hub id not in the cache yet: loading it downloads it
        embedder = make()
        directory = weights_directory(name)
    if directory is None:
        raise FileNotFoundError(f"--embedder {name}: loaded, but its weights are not in the cache")
    # Vectors change with the weights; they are unit-norm float32, as Embedder.encode returns.
    store = VectorStore(store_path, f"embed|{name}@{weights_fingerprint(directory)}|unit-f32")
    try:
        keys = {text: store.key(text) for texts in lists for text in texts}
        found = store.get(list(keys.values()))
        vectors = {text: found[key] for text, key in keys.items() if key in found}
        missing = [text for text in keys if text not in vectors]
        if store.corrupt:
            log.warning(f"{store.corrupt} corrupt stored embeddings are computed again")
        if missing:
            embedder = embedder or make()
            _encode(
                embedder,
                missing,
                keys=keys,
                store=store,
                vectors=vectors,
                show_progress=show_progress,
            )
        log.info(
            f"embedding: {len(keys)} distinct texts, {len(keys) - len(missing)} from the store, "
            f"{len(missing)} computed"
        )
    finally:
        store.close()
        if embedder is not None:
            embedder.close()
    return [
        np.stack([vectors[text] for text in texts]) if texts else np.empty((0, 0), np.float32)
        for texts in lists
    ]


def _encode(
    embedder: TextEncoder,
    texts: list[str],
    *,
    keys: dict[str, str],
    store: VectorStore,
    vectors: dict[str, np.ndarray],
    show_progress: bool,
) -> None:
    """Embed `texts` a chunk at a time, each chunk committed to the store as it is done."""
    desc = f"embedding ({len(texts):,} texts)"
    with Progress(desc, len(texts), len(texts), 0, show_progress, unit=("text", "texts")) as bar:
        for start in range(0, len(texts), embedder.chunk):
            part = texts[start : start + embedder.chunk]
            pairs = list(zip(part, embedder.encode(part), strict=True))
            store.put((keys[text], vector) for text, vector in pairs)
            vectors.update(pairs)
            bar.update(len(part), len(part))

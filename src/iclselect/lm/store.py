"""On-disk store of engine answers and sentence embeddings, keyed by content: a rerun
recomputes nothing, and a run killed at any point resumes where it stopped (answers are
committed batch by batch).

Each entry is keyed by sha256(namespace, request key or text), where the namespace names
everything that changes the numbers (model or embedder weights, dtype, template, max length).
Each row carries a checksum of its own key and values: an entry that fails it is treated as
missing and recomputed, never used. Log-likelihoods and embeddings are two tables of one file.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from iclselect.lm.requests import LogprobResult


class ResultStore:
    def __init__(self, path: str | Path, namespace: str) -> None:
        self.path = Path(path)
        self.namespace = namespace
        self._db = _connect(self.path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, logprob REAL NOT NULL, "
            "n_tokens INTEGER NOT NULL, truncated INTEGER NOT NULL, checksum TEXT NOT NULL)"
        )
        self.corrupt = 0  # entries found failing their checksum, since opening

    def key(self, request_key: str) -> str:
        return hashlib.sha256(f"{self.namespace}\0{request_key}".encode()).hexdigest()

    def get(self, keys: list[str]) -> dict[str, LogprobResult]:
        found: dict[str, LogprobResult] = {}
        select = "SELECT key, logprob, n_tokens, truncated, checksum FROM results"
        for key, logprob, n_tokens, truncated, checksum in _rows(self._db, select, keys):
            result = LogprobResult(logprob, n_tokens, truncated)
            if checksum == _checksum(key, result):
                found[key] = result
            else:
                self.corrupt += 1
        return found

    def put(self, items: Iterable[tuple[str, LogprobResult]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                [(key, r.logprob, r.n_tokens, r.truncated, _checksum(key, r)) for key, r in items],
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class VectorStore:
    """Float32 vectors (sentence embeddings) by text, in the `vectors` table of a store file;
    a vector comes back byte for byte as it was put."""

    def __init__(self, path: str | Path, namespace: str) -> None:
        self.namespace = namespace
        self._db = _connect(Path(path))
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL, "
            "checksum TEXT NOT NULL)"
        )
        self.corrupt = 0

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.namespace}\0{text}".encode()).hexdigest()

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        select = "SELECT key, vector, checksum FROM vectors"
        for key, blob, checksum in _rows(self._db, select, keys):
            if checksum == _blob_checksum(key, blob):
                found[key] = np.frombuffer(blob, dtype=np.float32)
            else:
                self.corrupt += 1
        return found

    def put(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        blobs = [(key, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for key, v in items]
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [(key, blob, _blob_checksum(key, blob)) for key, blob in blobs],
            )

    def close(self) -> None:
        self._db.close()


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    # WAL: a reader never blocks the writer, and a killed writer leaves committed rows intact.
    db.execute("PRAGMA journal_mode=WAL")
    # Under WAL, NORMAL syncs at checkpoints, not at every commit (a commit per forward pass):
    # a killed process still keeps every committed row; only an OS crash or power loss can
    # take the last commits back (never corrupting the file).
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _rows(db: sqlite3.Connection, select: str, keys: list[str]) -> Iterator[tuple]:
    """The rows of `select` whose key is in `keys`, 500 keys a query (SQLite's limit on bound
    parameters is 999 in older builds)."""
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        yield from db.execute(f"{select} WHERE key IN ({','.join('?' * len(chunk))})", chunk)


def _blob_checksum(key: str, blob: bytes) -> str:
    return hashlib.sha256(key.encode() + b"|" + blob).hexdigest()[:16]


def _checksum(key: str, result: LogprobResult) -> str:
    payload = f"{key}|{result.logprob!r}|{result.n_tokens}|{result.truncated}"
    return hashlib.sha256(payload.encode()).hexdigest()[:16]

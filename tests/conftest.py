"""Shared fixtures: the real default model and embedder, loaded once, and the real data slice
shipped in data/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iclselect.embed import Embedder
from iclselect.lm import load_model
from iclselect.lm.model import LoadedModel
from iclselect.records import Sample, Turn

DEMO_DATA = Path(__file__).resolve().parents[1] / "data" / "alpaca_demo_60.json"


@pytest.fixture(scope="session")
def lm() -> LoadedModel:
    return load_model()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="session")
def demo_rows() -> list[dict]:
    return json.loads(DEMO_DATA.read_text(encoding="utf-8"))


def write_json(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def samples_from(rows: list[dict]) -> list[Sample]:
    out = []
    for i, r in enumerate(rows):
        user = r["instruction"] + (f"\n{r['input']}" if r["input"] else "")
        out.append(Sample(i, (Turn("user", user), Turn("assistant", r["output"]))))
    return out

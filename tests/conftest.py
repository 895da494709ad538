"""Shared fixtures: the real default model and embedder, loaded once, and the real data slice
shipped in data/."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from iclselect.embed import Embedder
from iclselect.lm import Engine, Template, load_model
from iclselect.lm.model import LoadedModel
from iclselect.methods import Pool
from iclselect.records import Sample, Turn

DEMO_DATA = Path(__file__).resolve().parents[1] / "data" / "alpaca_demo_60.json"
POOL_DATA = Path(__file__).resolve().parents[1] / "data" / "alpaca_pool_500.json"


@pytest.fixture(scope="session")
def lm() -> LoadedModel:
    return load_model()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="session")
def demo_rows() -> list[dict]:
    return json.loads(DEMO_DATA.read_text(encoding="utf-8"))


def cli(*args: str):
    """Run the iclselect command in-process; the result has exit_code and output."""
    from typer.testing import CliRunner

    from iclselect.cli.main import app

    return CliRunner().invoke(app, list(args))


# Method options that keep a run to a few requests on a few rows; everything else is default.
CHEAP = {
    "wici": ["-s", "n_probes=2", "-s", "n_neighbours=3"],
    "nuggets": ["-s", "anchors=2"],
    "rds": ["-s", "target_size=4"],
}


def shortest(rows: list[dict], n: int) -> list[dict]:
    """The n shortest real rows: cheap to score."""
    return sorted(rows, key=lambda r: len(r["instruction"] + r["input"] + r["output"]))[:n]


def write_json(path: Path, rows: list[dict] | dict) -> Path:
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def samples_from(rows: list[dict]) -> list[Sample]:
    out = []
    for i, r in enumerate(rows):
        user = r["instruction"] + (f"\n{r['input']}" if r["input"] else "")
        out.append(Sample(i, (Turn("user", user), Turn("assistant", r["output"]))))
    return out


@pytest.fixture(scope="session")
def one_at_a_time(lm) -> Engine:
    """The engine with every speed-up off: one request per forward pass, no prefix reuse. The
    hand computations of the method tests use it, so they check the batched engine too."""
    template = Template("chat", lm.tokenizer)
    return Engine(lm, template, max_batch_tokens=1, reuse_prefix=False, show_progress=False)


@pytest.fixture(scope="session")
def engine(lm, tmp_path_factory) -> Engine:
    """The batched engine with its defaults and a store, so tests that ask the same request
    (L(y|x) for IFD, perplexity and MIWV) compute it once."""
    store = tmp_path_factory.mktemp("store") / "store.sqlite"
    return Engine(lm, Template("chat", lm.tokenizer), show_progress=False, store_path=store)


@pytest.fixture(scope="session")
def pool200(embedder) -> Pool:
    """The first 200 rows of the shipped 500-row Alpaca slice, embedded."""
    samples = samples_from(json.loads(POOL_DATA.read_text(encoding="utf-8"))[:200])
    return pool_of(samples, embedder)


def scored_by(name: str, pool: Pool, engine: Engine | None, config):
    """Method `name`'s scores, its rounds answered by `engine` as a run answers them."""
    from iclselect.methods.registry import get
    from iclselect.run.runner import EngineAnswerer, drive

    return drive(get(name), pool, config, EngineAnswerer(engine) if engine else None)


def pool_of(samples: list[Sample], embedder: Embedder) -> Pool:
    return Pool(
        samples,
        embedder.encode([s.instruction_text for s in samples]),
        embedder.encode([s.full_text for s in samples]),
    )


@pytest.fixture(scope="session")
def short_assessment(tmp_path_factory) -> Path:
    """The two shortest rows of ICon's shipped assessment set, in its own file format: a real
    assessment set small enough to score by hand."""
    from iclselect.methods.assessment import SHIPPED

    shipped = Path(__file__).resolve().parents[1] / "src" / "iclselect" / "assets" / SHIPPED
    with gzip.open(shipped, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rows.sort(key=lambda r: len(r["inputs"]) + len(r["response"]))
    path = tmp_path_factory.mktemp("assessment") / "assessment.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]), encoding="utf-8")
    return path

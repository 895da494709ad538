"""The result store: reruns recompute nothing, corrupt entries are recomputed, and a run killed
with SIGKILL resumes to exactly the scores of an uninterrupted run."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import samples_from, write_json
from typer.testing import CliRunner

from iclselect.cli.main import app
from iclselect.lm import Engine, Template
from iclselect.lm.requests import LogprobResult
from iclselect.lm.store import ResultStore
from iclselect.methods.loss_requests import conditioned, unconditioned


def test_store_round_trip_and_checksum(tmp_path):
    store = ResultStore(tmp_path / "s.sqlite", "ns")
    key = store.key("request")
    assert key != ResultStore(tmp_path / "t.sqlite", "other").key("request")
    store.put([(key, LogprobResult(-12.5, 5, 0))])
    assert store.get([key, store.key("missing")]) == {key: LogprobResult(-12.5, 5, 0)}
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        db.execute("UPDATE results SET logprob = -1.0")
    assert store.get([key]) == {} and store.corrupt == 1


def test_engine_rerun_recomputes_nothing_and_distrusts_corruption(lm, demo_rows, tmp_path):
    samples = samples_from(demo_rows[:4])
    requests = [conditioned(s) for s in samples] + [unconditioned(samples[0], samples[1].turns)]
    path = tmp_path / "store.sqlite"
    template = Template("chat", lm.tokenizer)
    first = Engine(lm, template, show_progress=False, store_path=path)
    expected = first.loglikelihood(requests)
    assert first.stats["computed"] == 5 and first.stats["stored"] == 0

    again = Engine(lm, template, show_progress=False, store_path=path)
    assert again.loglikelihood(requests) == expected
    assert (
        again.stats["computed"] == 0 and again.stats["stored"] == 5 and again.stats["tokens"] == 0
    )

    with sqlite3.connect(path) as db:
        db.execute("UPDATE results SET logprob = logprob + 1 WHERE rowid = 1")
    third = Engine(lm, template, show_progress=False, store_path=path)
    assert third.loglikelihood(requests) == expected
    assert third.stats["computed"] == 1 and third.store.corrupt == 1


def _answers(store: Path) -> int:
    """Answers committed so far: 0 before the run has created the store and its table."""
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sigkill_then_rerun_gives_identical_scores(tmp_path, demo_rows):
    data = write_json(tmp_path / "pool.json", demo_rows[:6])
    # Rows of 256 tokens hold several requests each: the resumed run packs what is left, and
    # must still give the uninterrupted run's numbers to the bit (fp32: there a request's
    # log-prob moves by ~1e-6 with what shares its row; bf16 rounds that away).
    args = [
        "-s",
        "n_probes=2",
        "-s",
        "n_neighbours=3",
        "--max-batch-tokens",
        "256",
        "--dtype",
        "fp32",
        "--quiet",
    ]

    clean = CliRunner().invoke(app, ["run", str(data), "--out", str(tmp_path / "clean"), *args])
    assert clean.exit_code == 0, clean.output
    total = json.loads((tmp_path / "clean" / "manifest.json").read_text())["engine"]["computed"]

    out = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "iclselect", "run", str(data), "--out", str(out), *args]
    )
    store = out / "store.sqlite"
    deadline = time.monotonic() + 300
    done = 0
    while done < total // 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        done = _answers(store)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 0 < done < total, "the run was to be killed halfway through scoring"
    assert not (out / "scores.parquet").exists()
    with sqlite3.connect(store) as db:
        survived = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    resumed = CliRunner().invoke(app, ["run", str(data), "--out", str(out), *args])
    assert resumed.exit_code == 0, resumed.output
    engine = json.loads((out / "manifest.json").read_text())["engine"]
    assert engine["stored"] == survived and engine["computed"] == total - survived
    columns = ["row", "score", "ifd", "probe_ici", "selected", "rank", "reason"]
    assert (
        pq.read_table(out / "scores.parquet")
        .select(columns)
        .equals(pq.read_table(tmp_path / "clean" / "scores.parquet").select(columns))
    )
    assert (out / "subset.json").read_bytes() == (tmp_path / "clean" / "subset.json").read_bytes()


def test_closing_the_engine_closes_its_store(lm, demo_rows, tmp_path):
    template, store = Template("chat", lm.tokenizer), tmp_path / "s.sqlite"
    with Engine(lm, template, show_progress=False, store_path=store) as engine:
        engine.loglikelihood([conditioned(samples_from(demo_rows[:1])[0])])
        assert len(engine.store) == 1
    with pytest.raises(sqlite3.ProgrammingError):
        len(engine.store)
    engine.close()  # twice is harmless


def test_a_run_closes_its_store(tmp_path, demo_rows, monkeypatch):
    """`iclselect run` (api.run): when it returns, the engine it built has closed its store."""
    from iclselect import api
    from iclselect.run import pipeline

    engines = []

    class Recorded(Engine):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            engines.append(self)

    monkeypatch.setattr(pipeline, "Engine", Recorded)
    data = write_json(tmp_path / "pool.json", demo_rows[:4])
    out = str(tmp_path / "out")
    api.run(pipeline.RunConfig(str(data), out, method="perplexity", fraction=0.5, quiet=True))
    (engine,) = engines
    assert engine.stats["computed"] == 4
    with pytest.raises(sqlite3.ProgrammingError):
        len(engine.store)

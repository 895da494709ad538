"""Logging: the library logs to logging.getLogger("iclselect") and configures nothing; the CLI
prints "[iclselect] message" on stderr, warnings only with --quiet."""

from __future__ import annotations

import json
import logging

import pytest
from typer.testing import CliRunner

import iclselect
from iclselect.cli.main import app

WARNING = "[iclselect] warning: columns not scored (carried into the subset as they are): source"


@pytest.fixture
def unconfigured():
    """The "iclselect" logger as a fresh process has it (a CLI test may have configured it)."""
    logger = logging.getLogger("iclselect")
    saved = logger.handlers[:], logger.level
    logger.handlers, logger.level = [], logging.NOTSET
    yield logger
    logger.handlers, logger.level = saved


@pytest.fixture
def pool(tmp_path, demo_rows):
    rows = [{**r, "source": "alpaca"} for r in demo_rows[:4]]  # one column nothing reads
    data = tmp_path / "pool.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return data


def run(pool, out, *extra):
    args = ["run", str(pool), "-m", "length", "--count", "2", "-o", str(out), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stderr


def test_cli_prints_progress_and_warnings_on_stderr(tmp_path, pool, unconfigured):
    stderr = run(pool, tmp_path / "out")
    lines = stderr.splitlines()
    assert f"[iclselect] read 4 rows (alpaca, jsonl) from {pool}" in lines
    assert "[iclselect] length: kept 2 of 4 rows" in lines
    assert lines.count(WARNING) == 1


def test_cli_quiet_prints_warnings_only(tmp_path, pool, unconfigured):
    stderr = run(pool, tmp_path / "out", "--quiet")
    assert stderr.splitlines() == [WARNING]
    # Configured once, however many commands run in one process.
    run(pool, tmp_path / "again", "--quiet")
    assert len(unconfigured.handlers) == 1


def test_the_library_logs_but_prints_only_warnings(tmp_path, pool, unconfigured, caplog, capfd):
    with caplog.at_level(logging.INFO, logger="iclselect"):
        iclselect.score(str(pool), method="length", quiet=True)
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("read 4 rows (alpaca, jsonl)") for m in messages)
    caplog.clear()
    capfd.readouterr()
    unconfigured.propagate = False  # as in a process where nothing configured logging
    try:
        iclselect.score(str(pool), method="length", quiet=True)
    finally:
        unconfigured.propagate = True
    stderr = capfd.readouterr().err
    assert "read 4 rows" not in stderr
    assert "warning: columns not scored" in stderr  # logging's last resort prints warnings

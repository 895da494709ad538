"""Every failure is one line and a non-zero exit naming what to do: no CUDA, a missing optional
package (found before anything is read), a write the file system refuses, and Ctrl-C."""

from __future__ import annotations

import errno
import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import cli, shortest, write_json

import iclselect.run.outputs
import iclselect.run.pipeline
from iclselect.lm.caching import Cache


@pytest.fixture
def pool(tmp_path, demo_rows) -> Path:
    return write_json(tmp_path / "pool.json", shortest(demo_rows, 4))


def _without(monkeypatch, module: str) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else found(name, *a)
    )


def _one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line(tmp_path, pool):
    line = _one_line(
        cli("run", str(pool), "-m", "ifd", "--device", "cuda", "-o", str(tmp_path / "o"))
    )
    assert line == (
        "error: --device cuda: torch sees no CUDA GPU on this machine; use --device cpu (or auto)"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        ("ray", ["-m", "ifd", "--executor", "ray"], "--executor ray needs the package 'ray'"),
        ("vllm", ["-m", "ifd", "--executor", "vllm"], "pip install 'iclselect[vllm]'"),
        ("peft", ["-m", "icon", "-s", "selector=lora"], "icon.selector=lora needs the package"),
    ],
)
def test_a_missing_optional_package_stops_the_run_before_it_starts(
    tmp_path, pool, monkeypatch, module, args, expected
):
    _without(monkeypatch, module)
    monkeypatch.setattr(iclselect.run.pipeline, "read_input", pytest.fail)
    line = _one_line(cli("run", str(pool), *args, "-o", str(tmp_path / "o"), "-q"))
    assert expected in line and "pip install" in line


def test_a_write_the_disk_refuses_is_one_line_and_leaves_no_outputs(tmp_path, pool, monkeypatch):
    def full(path, table):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(iclselect.run.pipeline, "write_scores", full)
    out = tmp_path / "out"
    line = _one_line(cli("run", str(pool), "-m", "length", "--count", "2", "-o", str(out), "-q"))
    assert line.startswith(f"error: {out}/.iclselect-staging-")
    assert line.endswith(": no space left on device; free some disk space or choose another --out")
    assert list(out.iterdir()) == []


def test_a_full_disk_inside_a_write_names_the_file_and_the_fix(tmp_path, pool, monkeypatch):
    """A full disk surfaces inside write() as a bare [Errno 28] naming no file (as Python's and
    pyarrow's writers raise it); the error still names the file and what to do."""

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(iclselect.run.outputs.pq, "write_table", full)
    out = tmp_path / "out"
    line = _one_line(cli("run", str(pool), "-m", "length", "--count", "2", "-o", str(out), "-q"))
    assert line.startswith(f"error: {out}/.iclselect-staging-"), line
    assert (
        "/scores.parquet: no space left on device; free some disk space or choose another" in line
    )
    assert "Errno" not in line
    assert list(out.iterdir()) == []


def test_ctrl_c_while_scoring_says_what_is_kept_and_exits_130(tmp_path, pool, monkeypatch):
    commit = Cache._commit
    calls = []

    def interrupt_third_batch(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if pressed while the third batch ran
        commit(self, *args)

    monkeypatch.setattr(Cache, "_commit", interrupt_third_batch)
    args = ["run", str(pool), "-m", "ifd", "--max-batch-tokens", "64", "-o", str(tmp_path / "o")]
    line = _one_line(cli(*args, "-q"), code=130)
    stored, total = (int(n) for n in line.split(": ")[1].split(" answers")[0].split(" of "))
    assert line == (
        f"interrupted: {stored} of {total} answers stored; rerun the same command to resume"
    )
    assert 0 < stored < total == 8
    monkeypatch.setattr(Cache, "_commit", commit)
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert f"{stored} answered from the store, {total - stored} computed" in result.output

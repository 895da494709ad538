"""The user's mistake is one line and exit code 2; iclselect's own error keeps its traceback,
asks to be reported and exits 1, even when it is a ValueError."""

from __future__ import annotations

from conftest import cli, shortest, write_json

from iclselect.run import pipeline


def test_an_unexpected_value_error_in_a_run_shows_its_traceback_and_exits_1(
    tmp_path, demo_rows, monkeypatch
):
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    # Deep on the run's path, after reading and scoring: where a library bug would surface.
    monkeypatch.setattr(pipeline, "select", broken)
    data = write_json(tmp_path / "pool.json", shortest(demo_rows, 6))
    result = cli("run", str(data), "--out", str(tmp_path / "out"), "-m", "length", "-q")
    assert result.exit_code == 1, result.output
    assert "Traceback (most recent call last)" in result.output
    assert "ValueError: operands could not be broadcast together" in result.output
    assert "in broken" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last == "iclselect: unexpected error; please report it with the traceback above"
    assert "error: operands" not in result.output


def test_a_bad_option_is_still_one_line_and_exit_2(tmp_path, demo_rows):
    data = write_json(tmp_path / "pool.json", shortest(demo_rows, 6))
    result = cli("run", str(data), "--out", str(tmp_path / "out"), "--fraction", "2", "-q")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == ["error: --fraction must be in (0, 1], got 2.0"]
    assert not (tmp_path / "out").exists()

"""Progress shows wherever a run is watched: a bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

import pytest

from iclselect.infra.progress import Interrupted, Progress, duration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_a_line_every_five_percent_with_rate_and_eta():
    stream, clock = io.StringIO(), Clock()
    with Progress("scoring (200 requests)", 1000, 200, 0, stream=stream, clock=clock) as bar:
        for _ in range(100):
            clock.now += 0.1
            bar.update(10, 2)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 20
    assert lines[0] == (
        "[iclselect] scoring (200 requests): 10 of 200 answers (5% of tokens), 100 tok/s, ETA 10 s"
    )
    assert lines[-1].startswith("[iclselect] scoring (200 requests): 200 of 200 answers (100%")


def test_off_a_terminal_a_line_at_least_every_30_seconds():
    stream, clock = io.StringIO(), Clock()
    with Progress("scoring", 10_000, 10_000, 4_000, stream=stream, clock=clock) as bar:
        for _ in range(3):
            clock.now += 31
            bar.update(10, 10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[2] == (
        "[iclselect] scoring: 4,030 of 10,000 answers (0% of tokens), 0 tok/s, ETA 8 h 35 min"
    )


def test_on_a_terminal_a_bar_in_tokens_and_nothing_when_off():
    stream = Terminal()
    with Progress("scoring", 1000, 10, stream=stream) as bar:
        bar.update(1000, 10)
    assert "scoring: 100%" in stream.getvalue() and "tok" in stream.getvalue()
    quiet = io.StringIO()
    with Progress("scoring", 1000, 10, enabled=False, stream=quiet) as bar:
        bar.update(1000, 10)
    assert quiet.getvalue() == ""


def test_ctrl_c_inside_says_how_many_answers_are_stored():
    with pytest.raises(Interrupted) as caught, Progress("scoring", 100, 8, 3, enabled=False) as bar:
        bar.update(10, 2)
        raise KeyboardInterrupt
    assert str(caught.value) == (
        "interrupted: 5 of 8 answers stored; rerun the same command to resume"
    )


def test_ctrl_c_inside_work_that_is_not_stored_claims_nothing_stored():
    with (
        pytest.raises(KeyboardInterrupt) as caught,
        Progress("pooled states", 100, 8, enabled=False, stores=False) as bar,
    ):
        bar.update(10, 2)
        raise KeyboardInterrupt
    assert not isinstance(caught.value, Interrupted)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(42, "42 s"), (600, "10 min"), (9_067_122, "2518 h 39 min"), (3600, "1 h 00 min")],
)
def test_durations_read_in_hours_and_minutes(seconds, text):
    assert duration(seconds) == text

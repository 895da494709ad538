"""What the `iclselect` commands print: the summary of a run; the user's mistake as one line
naming what to do (exit code 2, 130 for Ctrl-C); anything else, a bug, with its traceback."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from iclselect.errors import UsageError
from iclselect.infra.words import counted

if TYPE_CHECKING:
    from iclselect.run.pipeline import RunResult


def guarded(action: Callable[[], None]) -> None:
    """Run `action`; a failure the user can fix (bad input or options, the file system, the
    store) becomes one line on stderr naming what to do, and exit code 2 (130 for Ctrl-C).
    Anything else is iclselect's bug: its traceback, a line asking for a report, exit code 1."""
    from iclselect.infra.progress import Interrupted
    from iclselect.io import InputError

    try:
        action()
    except (typer.Exit, typer.Abort):
        raise  # the command's own exit code
    except (InputError, UsageError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except OSError as error:
        typer.echo(f"error: {_os_error(error)}", err=True)
        raise typer.Exit(2) from None
    except sqlite3.Error as error:
        fix = "check that the disk of --store has space and is writable"
        typer.echo(f"error: result store: {error}; {fix}", err=True)
        raise typer.Exit(2) from None
    except Interrupted as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
    except Exception:
        traceback.print_exc()
        typer.echo(
            "iclselect: unexpected error; please report it with the traceback above", err=True
        )
        raise typer.Exit(1) from None


_OS_FIXES = {
    errno.ENOSPC: "free some disk space or choose another --out",
    errno.EDQUOT: "free some disk space or choose another --out",
    errno.EACCES: "choose a directory you can write to",
    errno.EPERM: "choose a directory you can write to",
    errno.EROFS: "choose a directory you can write to",
    errno.ENOTDIR: "a part of the path is a file; choose another path",
}


def _os_error(error: OSError) -> str:
    """'PATH: what went wrong; what to do' for an error of the file system."""
    if error.errno is None or (error.filename is None and error.errno not in _OS_FIXES):
        return str(error)
    fix = _OS_FIXES.get(error.errno, "check the path and the disk, then rerun")
    what = os.strerror(error.errno).lower()
    return f"{error.filename}: {what}; {fix}" if error.filename is not None else f"{what}; {fix}"


def summary(result: RunResult) -> str:
    """What a user wants to see first: what was kept, why the rest was not, where it all is."""
    lines = [f"kept {result.kept} of {counted(result.rows, 'row')}"]
    if result.warning:
        lines.append(f"  warning: {result.warning}")
    lines += [f"  dropped, {reason}: {n}" for reason, n in result.dropped_by_reason.items()]
    if result.best:
        lines.append(f"  best kept (rank, row, {result.method} score, instruction):")
        scores = _scores_shown([score for _, _, score, _ in result.best])
        for (rank, row, _, instruction), score in zip(result.best, scores, strict=True):
            preview = " ".join(instruction.split())
            preview = preview if len(preview) <= 60 else preview[:57] + "..."
            lines.append(f"    {rank:>4}  row {row:<6} {score}  {preview}")
    if result.near_ties:
        ties = result.near_ties
        shown = ", ".join(map(str, ties[:5])) + (", ..." if len(ties) > 5 else "")
        lines.append(
            f"  near ties at the cut: {counted(len(ties), 'row')} left out (rows {shown}) score "
            "within 1e-6 of the last kept row; input order, not the score, decided between them"
        )
    lines += [
        f"  subset:   {result.subset}",
        f"  scores:   {result.scores}  (one row per input row: score, rank, reason, components)",
        f"  manifest: {result.manifest}",
    ]
    lines += [
        f"  report:   {path}  (open in a browser)"
        for path in result.files
        if path.name == "report.html"
    ]
    return "\n".join(lines)


def _scores_shown(scores: list[float]) -> list[str]:
    """Scores as one right-aligned column: whole numbers (a length, a pick order) as integers,
    the rest with 4 decimals and a sign."""
    whole = all(float(score).is_integer() for score in scores)
    texts = [f"{score:.0f}" if whole else f"{score:+.4f}" for score in scores]
    width = max(map(len, texts), default=0)
    return [text.rjust(width) for text in texts]


class _Stderr(logging.Handler):
    """Log records as "[iclselect] message" lines on stderr, the one sys.stderr is at the time
    (a test runner swaps it between commands)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"[iclselect] {self.format(record)}", file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


def log_to_stderr(quiet: bool) -> None:
    """The CLI's logging, set once per command: progress (INFO) on stderr, only warnings with
    --quiet. The library itself configures none (a Python user sees warnings only)."""
    logger = logging.getLogger("iclselect")
    if not any(isinstance(handler, _Stderr) for handler in logger.handlers):
        logger.addHandler(_Stderr())
    logger.setLevel(logging.WARNING if quiet else logging.INFO)

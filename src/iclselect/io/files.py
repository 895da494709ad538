"""Atomic file and directory writes: a temporary beside the target, then a rename, so a crash
never leaves a half-written output."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def replace_file(target: Path, write: Callable[[Path], object]) -> None:
    """Write through `write(temp)` and rename over `target`: never a half-written target."""
    temp = _temp_name(target)
    try:
        write(temp)
        os.replace(temp, target)
    except OSError as error:
        _name_the_file(error, target)
        raise
    finally:
        temp.unlink(missing_ok=True)


def replace_dir(target: Path, write: Callable[[Path], object]) -> None:
    # os.replace cannot put a directory over a non-empty one, so an old subset is moved
    # aside first and removed only once the new one is in place.
    temp, old = _temp_name(target), _temp_name(target)
    try:
        write(temp)
        if target.exists():
            os.replace(target, old)
        os.replace(temp, target)
    except OSError as error:
        _name_the_file(error, target)
        raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _name_the_file(error: OSError, target: Path) -> None:
    """Give `error` the file it was writing: a full disk surfaces in write() (Python's or
    pyarrow's) as a bare [Errno 28] that names no file."""
    if error.filename is None and error.errno is not None:
        error.filename = str(target)
        error.strerror = os.strerror(error.errno)

"""A run's output directory: never two runs mixed in one, never a file iclselect did not write
touched.

A finished run is told by its manifest.json, which is published last. A run's outputs are
written into a hidden staging directory inside --out and then moved into place; while they are
moved, a marker file names them, so that a run killed mid-way is told apart from files someone
else put there, and its rerun clears what it left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from iclselect.errors import UsageError

MANIFEST = "manifest.json"
_MARKER = ".iclselect-publishing.tmp"
_STAGE_PREFIX = ".iclselect-staging-"
# What a run writes besides the store: subset.<input's extension> (or a subset/ directory),
# scores.parquet, manifest.json, report.html, dataset_info.json, subset_scored/.
_OWN = re.compile(
    r"subset(\.(json|jsonl|csv)(\.gz)?|\.parquet)?|subset_scored|scores\.parquet|"
    r"manifest\.json|report\.html|dataset_info\.json"
)


def check_out(out: Path, overwrite: bool, api: bool = False) -> None:
    """Raise UsageError (one line, what to do) unless `out` can take a run's outputs: it is
    new, empty of run outputs, the leftovers of a run killed while publishing, or, with
    `overwrite`, a finished run. The error names the settings as the caller wrote them:
    --out and --overwrite on the command line, out and overwrite=True in Python (`api`)."""
    where, replace = ("out", "overwrite=True") if api else ("--out", "--overwrite")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{where} {out}: is a file; {where} names a directory")
    if not out.is_dir():
        return
    manifest = out / MANIFEST
    if manifest.exists():
        if not _is_run_manifest(manifest):
            raise UsageError(
                f"{where} {out}: holds a manifest.json iclselect did not write; choose another "
                f"{where}"
            )
        if not overwrite:
            raise UsageError(
                f"{where} {out}: holds an earlier iclselect run (manifest.json); pass {replace} "
                f"to replace its outputs, or choose another {where}"
            )
        return
    if (out / _MARKER).exists():
        return
    foreign = sorted(path.name for path in out.iterdir() if _OWN.fullmatch(path.name))
    if foreign:
        raise UsageError(
            f"{where} {out}: holds {', '.join(foreign)} but no manifest.json of an iclselect "
            f"run; move them away or choose another {where}"
        )


@contextmanager
def staged(out: Path, overwrite: bool) -> Iterator[Path]:
    """A fresh staging directory for one run's outputs; on leaving, they replace the earlier
    run's in `out` (its own outputs only), manifest.json last. An error leaves `out` as it was."""
    check_out(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    stage = out / f"{_STAGE_PREFIX}{uuid.uuid4().hex}.tmp"
    stage.mkdir()
    try:
        yield stage
        _publish(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _publish(stage: Path, out: Path) -> None:
    names = sorted(path.name for path in stage.iterdir() if path.name != MANIFEST)
    marker = out / _MARKER
    marker.write_text("\n".join([*names, MANIFEST]) + "\n", encoding="utf-8")
    for path in out.iterdir():
        if _OWN.fullmatch(path.name) or (
            path.name.startswith(_STAGE_PREFIX) and path.name != stage.name
        ):
            _remove(path)
    for name in [*names, MANIFEST]:
        os.replace(stage / name, out / name)
    marker.unlink()


def _is_run_manifest(path: Path) -> bool:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(content, dict) and {"input", "config", "outputs"} <= set(content)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()

"""The code stays ruff-clean (lint and format), checked by the same suite CI runs; calls pass
all but a few arguments by keyword, and formatting is skipped only for aligned tables."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "src", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_ruff_lint_is_clean():
    done = ruff("check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_is_clean():
    done = ruff("format", "--check")
    assert done.returncode == 0, done.stdout + done.stderr


MAX_POSITIONAL = 5
MAX_FMT_SKIP = 15  # markers allowed, fewer than this: only where a table reads better aligned


def test_no_call_passes_more_than_five_positional_arguments():
    offenders = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                positional = [a for a in node.args if not isinstance(a, ast.Starred)]
                if len(positional) > MAX_POSITIONAL:
                    where = path.relative_to(ROOT)
                    offenders.append(f"{where}:{node.lineno}: {ast.unparse(node.func)}")
    assert not offenders, f"pass these by keyword (> {MAX_POSITIONAL} positional): {offenders}"


def test_fmt_skip_is_kept_for_tables_only():
    marker = "# fmt" + ": skip"  # split, or this file would count itself
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("src", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if marker in line
    ]
    assert len(found) < MAX_FMT_SKIP, f"{len(found)} '{marker}' markers: {found}"

"""The layers, read from the source: which package may import which, and no import cycles.

Imports are read with ast, function-local ones and TYPE_CHECKING ones included: an import
inside a function is still an edge (it runs the first time the function does).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from import_graph import cycles, graph

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "iclselect"


def test_imports_are_read_from_function_bodies_too(tmp_path):
    edges = graph()
    assert "iclselect.infra.hub" in edges["iclselect.embed.embedder"]
    # io/tables.py imports datasets inside a function; not ours.
    assert all(m.startswith("iclselect.io") for m in edges["iclselect.io.tables"])


def test_embed_does_not_import_the_lm_layer():
    """Embedding must not pull in torch-heavy iclselect.lm (model loading, attention kernels)."""
    edges = graph()
    for name in sorted(edges):
        if name == "iclselect.embed" or name.startswith("iclselect.embed."):
            bad = sorted(m for m in edges[name] if m.split(".")[:2] == ["iclselect", "lm"])
            assert not bad, f"{name} imports {bad}"


def test_importing_embed_loads_neither_the_lm_layer_nor_torch():
    code = (
        "import sys, iclselect.embed, iclselect.embed.sharded, iclselect.embed.atlas; "
        "print(sorted(m for m in sys.modules if m.startswith(('iclselect.lm', 'torch'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_methods_never_see_the_engine_or_the_model():
    """A method plans requests and reduces answers: from the LM layer it imports the requests
    and their reference text formats (plain strings, for ICon's control) and nothing else, and
    importing every method loads no engine, torch or transformers."""
    edges = graph()
    for name in sorted(edges):
        if name.startswith("iclselect.methods"):
            lm = sorted(m for m in edges[name] if m.split(".")[:2] == ["iclselect", "lm"])
            allowed = {"iclselect.lm.requests", "iclselect.lm.reference"}
            assert set(lm) <= allowed, f"{name} imports {lm}"
    code = (
        "import sys, iclselect.methods.registry, iclselect.run.runner; "
        "print(sorted(m for m in sys.modules if m.startswith(('iclselect.lm.engine', "
        "'iclselect.lm.kernel', 'iclselect.lm.model', 'torch', 'transformers'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_hub_helper_is_neutral():
    assert graph()["iclselect.infra.hub"] == set()


def test_the_top_level_shows_the_layers():
    """At most 8 modules sit loose at the package's top level; the rest live in their layer's
    package (docs/layout.md)."""
    loose = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(loose) <= 8, loose


def test_the_shared_helpers_import_nothing_above_them():
    """infra/ serves every layer, so it imports nothing of iclselect's but itself and errors."""
    edges = graph()
    for name in sorted(edges):
        if name.startswith("iclselect.infra"):
            above = sorted(
                m
                for m in edges[name]
                if not m.startswith("iclselect.infra") and m != "iclselect.errors"
            )
            assert not above, f"{name} imports {above}"


def test_the_user_error_type_is_neutral():
    """Every layer raises UsageError, io/ too: its module imports nothing of iclselect."""
    assert graph()["iclselect.errors"] == set()


def test_io_has_no_import_cycle():
    edges = graph()
    io = {name for name in edges if name.startswith("iclselect.io.")}
    assert "iclselect.io.llamafactory" in io and "iclselect.io.write" in io
    found = cycles({name: edges[name] & io for name in io})
    assert not found, f"import cycles in io/: {found}"
    # io/ is a bottom layer: it imports only itself, records and the user error type.
    outside = {m for name in io for m in edges[name] if not m.startswith("iclselect.io")}
    assert outside <= {"iclselect.records", "iclselect.errors"}, outside


def test_write_writes_subsets_only():
    """The LLaMA-Factory entry is written beside its reader; write.py does not know it."""
    edges = graph()
    assert "iclselect.io.llamafactory" not in edges["iclselect.io.write"]
    assert "iclselect.io.write" not in edges["iclselect.io.llamafactory"]


def test_the_report_reads_decisions_from_columns_not_text():
    """report/ reads typed columns (reason, rank, duplicate_of, near_duplicate_of, similarity,
    and row references declared in the table's schema): no regex, no row numbers parsed out of
    text, no column found by the ending of its name."""
    for path in (PACKAGE / "report").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "re" not in imported, f"{path.name} imports re"
        assert not re.search(r"\.(str\.)?(extract|contains|endswith|startswith)\(", text), (
            f"{path.name} reads text it could read from a column"
        )
        assert "selected row" not in text

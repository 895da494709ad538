"""No import cycles between iclselect's modules (the graph: tests/import_graph.py)."""

from __future__ import annotations

import ast

from import_graph import MODULES, cycles, graph


def test_the_graph_sees_every_kind_of_import():
    edges = graph()
    assert len(edges) > 50
    assert "iclselect.lm.packer" in edges["iclselect.lm.engine"]  # top level
    assert "iclselect.lm.kernel" in edges["iclselect.lm.executors"]  # local / TYPE_CHECKING


def test_the_cycle_finder_finds_a_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [{"a", "b", "c"}]


def test_no_import_cycles():
    found = [sorted(c) for c in cycles(graph())]
    assert not found, f"import cycles: {found}"


def test_the_packer_needs_no_torch():
    """The packer is plain ints and tuples: it and everything it imports stay clear of torch."""
    edges, seen, todo = graph(), set(), ["iclselect.lm.packer"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += edges[module]
    heavy = {
        module
        for module in seen
        for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8")))
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            (name or "").split(".")[0] in ("torch", "transformers")
            for name in ([node.module] if isinstance(node, ast.ImportFrom) else [])
            + [alias.name for alias in node.names]
        )
    }
    assert not heavy, f"the packer reaches torch through {sorted(heavy)}"

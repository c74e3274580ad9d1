"""The package's import structure (tools/import_graph.py): no import cycles, no upward imports.

A helper that a low layer needs lives in that layer (fs.sha256_file, data.manifest.write_tsv),
never in a stage above it, so a module can be read, tested and moved with what is below it."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# No circle is left; a new one fails the test (this list may only shrink).
KNOWN_CYCLES: list[list[str]] = []


@pytest.fixture(scope="module")
def graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module  # dataclasses resolve the module by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("import_graph", None)


def test_the_package_has_no_import_cycle_beyond_the_known_one(graph):
    found = graph.cycles(graph.edges(ROOT / "src"))
    assert [c for c in found if c not in KNOWN_CYCLES] == []


def test_no_module_imports_from_a_higher_layer(graph):
    up = graph.upward(graph.edges(ROOT / "src"))
    assert [str(e) for e in up] == []


def test_every_module_has_a_layer(graph):
    for name in graph.modules(ROOT / "src"):
        graph.layer(name)  # raises for a module no layer names


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / "use_repro" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_the_tool_finds_cycles_upward_and_deferred_imports(graph, tmp_path):
    src = _write(tmp_path, {
        "__init__.py": "",
        "fs.py": "def helper():\n    from use_repro.report import tables  # upward, deferred\n",
        "data/__init__.py": "",
        "data/a.py": "from . import b\n",
        "data/b.py": "def f():\n    from use_repro.data.a import x\n",
        "data/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from use_repro.report import tables\n",
        "report/__init__.py": "",
        "report/tables.py": "import use_repro.data.a\nfrom use_repro.data import b\n",
    })
    edges = graph.edges(src)
    assert graph.cycles(edges) == [["use_repro.data.a", "use_repro.data.b"]]
    up = graph.upward(edges)
    assert [(e.src, e.dst, e.deferred) for e in up] == [("use_repro.fs", "use_repro.report.tables", True)]
    assert not any(e.src == "use_repro.data.c" for e in edges)  # TYPE_CHECKING: never runs
    text, problems = graph.report(src)
    assert problems == 2 and "import cycles: 1" in text and "upward imports: 1" in text

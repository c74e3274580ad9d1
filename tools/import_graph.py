"""The import structure of `src/use_repro`: its import cycles and its upward imports.

    python tools/import_graph.py            # from the repository root; prints both lists
    python tools/import_graph.py --edges    # also every intra-package import edge
    python tools/import_graph.py --check    # exit status 1 if there is a cycle or an upward import

Why: a helper that lives in the wrong module shows up as an import that goes the wrong way (a
low-level module reaching up into a stage for a private function) or as a circle of modules that
can only be understood together (issue 21). This script makes both visible, and
tests/test_import_graph.py keeps them at zero.

It reads the source with `ast` only: it never imports the package (no torch, no side effects),
so it runs with any Python >= 3.10 and no installed dependency.

What counts as an import: every `import use_repro...` / `from use_repro... import ...` /
relative `from . import ...`, at module level or inside a function (those are marked `(fn)`:
a deferred import is still a dependency, it only loads later). Imports under
`if TYPE_CHECKING:` are left out (they never run). `importlib.import_module("...")` with a
name in a string (cli.py's table of stages) is not an import edge: the CLI names its stages,
which is the downward direction anyway. An import of `use_repro.a.b` is an edge to that module
only, not to the packages `use_repro` and `use_repro.a` that Python also initialises (their
`__init__.py` files import nothing at module level).

Layers, lowest first. A module may import from its own layer or any layer below; an import
from a higher layer is "upward". The order follows the data flow of DESIGN.md (corpus ->
simulate -> quality/train -> enhance -> evaluate -> report) and what each module is:

  0 base      fs, progress, seeding, lock, committed, shards, errors - helpers that know nothing of the project
  1 settings  config (profiles, settings digests), stage_settings (what each stage reads),
              batch (lists of jobs): read configs and files
  2 audio     audio/ - reading, writing, resampling, STFT
  3 data      data/ - manifests, corpus, simulation, the torch Dataset
  4 models    models/, metrics/, quality/ - the networks, the metric suite, VQScore (siblings:
              each stands on data and audio; none needs another's internals)
  5 weights   weights.py - `use-repro weights`: pins and fetches the files of metrics and models
  6 train     train/ - training stages, which validate with metrics
  7 enhance   enhancer.py (Python API), enhance.py (`use-repro enhance`), gather.py (merges stages' shards)
  8 report    report/ - tables, figures, comparison: reads what every stage wrote
  9 entry     cli.py, __main__.py, the package's __init__.py (its lazy `Enhancer`)
"""
from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "use_repro"

# (layer name, module prefixes), lowest first; a module's layer is that of its longest prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("use_repro.fs", "use_repro.progress", "use_repro.seeding", "use_repro.lock",
              "use_repro.committed", "use_repro.shards", "use_repro.errors")),
    ("settings", ("use_repro.config", "use_repro.stage_settings", "use_repro.batch")),
    ("audio", ("use_repro.audio",)),
    ("data", ("use_repro.data",)),
    ("models", ("use_repro.models", "use_repro.metrics", "use_repro.quality")),
    ("weights", ("use_repro.weights",)),
    ("train", ("use_repro.train",)),
    ("enhance", ("use_repro.enhancer", "use_repro.enhance", "use_repro.gather")),
    ("report", ("use_repro.report",)),
    ("entry", ("use_repro.cli", "use_repro.__main__", "use_repro")),
]


@dataclass(frozen=True)
class Edge:
    """`src` imports `dst` at `path:line`; `deferred`: the import is inside a function."""
    src: str
    dst: str
    path: str
    line: int
    deferred: bool

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst}  ({self.path}:{self.line}{', fn' if self.deferred else ''})"


def modules(src_root: Path) -> dict[str, tuple[Path, bool]]:
    """Every module of the package under `src_root`: dotted name -> (file, is a package)."""
    found = {}
    for path in sorted((src_root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src_root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_pkg)
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:` (never executed)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skip.update(id(n) for n in ast.walk(child))
    return skip


def _in_function_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside a function or method body."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
    return inside


def edges(src_root: Path) -> list[Edge]:
    """Every intra-package import of the package under `src_root`, in file order."""
    mods = modules(src_root)
    out: list[Edge] = []
    for name, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skip, inside = _type_checking_nodes(tree), _in_function_nodes(tree)
        rel = path.relative_to(src_root.parent).as_posix() if src_root.parent in path.parents else str(path)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the module's package, one level up per extra dot
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # `from pkg import mod` imports the module pkg.mod; `from mod import func`, mod
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names]
            else:
                continue
            for target in dict.fromkeys(targets):
                if target == PACKAGE or target.startswith(PACKAGE + "."):
                    # `import use_repro.a.b` of a name that is not a module: its longest module prefix
                    while target not in mods and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target != name:
                        out.append(Edge(name, target, rel, node.lineno, id(node) in inside))
    return sorted(out, key=lambda e: (e.src, e.line, e.dst))


def layer(module: str) -> int:
    """Index in LAYERS of `module` (its longest matching prefix)."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    if best is None:
        raise ValueError(f"{module}: in no layer (add its prefix to LAYERS in {__file__})")
    return best


def cycles(all_edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted, the list
    sorted: every set of modules that import each other, directly or through others."""
    graph: dict[str, set[str]] = {}
    for e in all_edges:
        graph.setdefault(e.src, set()).add(e.dst)
        graph.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:  # recursion depth <= number of modules (~150)
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def upward(all_edges: list[Edge]) -> list[Edge]:
    """The edges from a lower layer to a higher one."""
    return [e for e in all_edges if layer(e.dst) > layer(e.src)]


def report(src_root: Path, show_edges: bool = False) -> tuple[str, int]:
    """The printed report and the number of problems (cycles + upward imports)."""
    all_edges = edges(src_root)
    cyc, up = cycles(all_edges), upward(all_edges)
    lines = [f"{len(modules(src_root))} modules, {len(all_edges)} intra-package imports "
             f"({sum(e.deferred for e in all_edges)} inside functions)",
             "layers (lowest first): " + " < ".join(n for n, _ in LAYERS), "",
             f"import cycles: {len(cyc)}"]
    for comp in cyc:
        members = set(comp)
        lines.append("  " + " <-> ".join(m.removeprefix(PACKAGE + ".") for m in comp))
        lines += [f"    {e}" for e in all_edges if e.src in members and e.dst in members]
    lines += ["", f"upward imports: {len(up)}"]
    lines += [f"  {e}   [{LAYERS[layer(e.src)][0]} -> {LAYERS[layer(e.dst)][0]}]" for e in up]
    if show_edges:
        lines += ["", "edges:"] + [f"  {e}" for e in all_edges]
    return "\n".join(lines), len(cyc) + len(up)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=Path("src"), help="the folder holding use_repro/ (default: src)")
    ap.add_argument("--edges", action="store_true", help="also list every intra-package import")
    ap.add_argument("--check", action="store_true", help="exit status 1 if there is any cycle or upward import")
    args = ap.parse_args(argv)
    if not (args.src / PACKAGE).is_dir():
        print(f"import_graph: {args.src / PACKAGE}: no such folder (run from the repository root, or pass --src)",
              file=sys.stderr)
        return 2
    text, problems = report(args.src, args.edges)
    print(text)
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())

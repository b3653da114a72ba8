"""The architecture stays true: layers run one way with no import cycles, the core never imports notebook
libraries, and the library never prints.

Every import counts, at module level and inside functions alike: a function-level import still ties the two
modules together and still makes a cycle when the other side imports back.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "facecluster_widgets"
NAME = PACKAGE.name
UI_LIBRARIES = {"ipywidgets", "plotly", "k3d", "anywidget", "IPython", "matplotlib"}

#: The method's flow, top to bottom. A module may import from its own layer or any layer before it, never after.
#: Keys are the first component under the package (a module or a sub-package).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "config", "registry", "features", "store", "nativelog"),   # foundations every stage leans on
    ("io",),                                                  # decode, datasets, the faces table
    ("detect", "standardize", "embed", "recon"),              # the per-face stages of the method
    ("descriptors", "identity"),                              # 3D descriptors from the fitted meshes
    ("pipeline", "fusion", "metrics"),                        # extract() over the stages; fused distance; scores
    ("cluster",),                                             # the hybrid method and its baselines
    ("evaluation", "review"),                                 # reports; what a person does with a clustering
    ("viz",),                                                 # plotly / k3d figure factories
    ("widgets",),                                             # notebook views
    ("cli", "__init__"),                                      # entry points
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute names of what ``module`` imports, with ``from . import x`` resolved to the sub-module ``x``."""
    names: set[str] = set()
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)  # from pkg import submodule
    return names


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports (names that are not modules, e.g. classes, are dropped)."""
    files = {module_name(p, package): p for p in sorted(package.rglob("*.py"))}
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        found = imported_modules(tree, module, path.name == "__init__.py")
        graph[module] = {name for name in found if name in files and name != module}
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted: every import cycle.

    A package's ``__init__`` re-exporting its own sub-modules is not a cycle of design, so edges from a
    package to its own sub-modules are left out."""
    edges = {m: [t for t in ts if not t.startswith(m + ".")] for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(graph: Mapping[str, Iterable[str]], rank: Mapping[str, int] = RANK) -> list[str]:
    """``a -> b`` for every import of a later layer (or of a module no layer declares)."""
    bad = []
    for module, targets in sorted(graph.items()):
        if module.count(".") == 0:
            continue  # the package's __init__ sits on top: it may re-export anything
        for target in sorted(targets):
            src, dst = layer_of(module), layer_of(target)
            if src not in rank or dst not in rank:
                bad.append(f"{module} -> {target}: layer {src if src not in rank else dst!r} is not declared")
            elif rank[dst] > rank[src]:
                bad.append(f"{module} (layer {rank[src]}) -> {target} (layer {rank[dst]})")
    return bad


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_layers_run_one_way():
    assert upward_imports(import_graph()) == []


def test_every_top_level_module_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert tops - set(RANK) == set()


def test_the_checks_fail_on_a_cycle_and_an_upward_import(tmp_path):
    """The two checks above must be able to fail: a small package with a function-level cycle and an upward import."""
    pkg = tmp_path / NAME
    (pkg / "cluster").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cluster" / "__init__.py").write_text("")
    (pkg / "cluster" / "a.py").write_text("from . import b\n")
    (pkg / "cluster" / "b.py").write_text("def f():\n    from .a import thing\n    return thing\n")
    (pkg / "fusion.py").write_text("def g():\n    from .cluster.a import x\n    return x\n")
    graph = import_graph(pkg)
    assert cycles(graph) == [[f"{NAME}.cluster.a", f"{NAME}.cluster.b"]]
    assert upward_imports(graph) == [f"{NAME}.fusion (layer 4) -> {NAME}.cluster.a (layer 5)"]


@pytest.mark.parametrize("source, expected", [
    ("from ..store import Store", {f"{NAME}.store", f"{NAME}.store.Store"}),
    ("from . import graph", {f"{NAME}.cluster", f"{NAME}.cluster.graph"}),
    ("import numpy", {"numpy"}),
])
def test_relative_imports_resolve(source, expected):
    assert imported_modules(ast.parse(source), f"{NAME}.cluster.hybrid", False) == expected


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        yield rel, ast.parse(path.read_text(), filename=str(path))


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
    return names


def test_core_does_not_import_ui_libraries():
    for rel, tree in _modules():
        if rel.parts[0] in ("widgets", "viz"):
            continue
        bad = {name for name in _imports(tree) if name.split(".")[0] in UI_LIBRARIES}
        assert not bad, f"{rel} imports {bad}: UI libraries belong in widgets/ or viz/"


def test_library_does_not_print():
    for rel, tree in _modules():
        if rel.name == "cli.py":
            continue
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"]
        assert not calls, f"{rel} calls print(); use logging"

"""The architecture stays true: the core never imports notebook libraries, nothing imports the widgets,
and the library never prints."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "facecluster_widgets"
UI_LIBRARIES = {"ipywidgets", "plotly", "k3d", "anywidget", "IPython", "matplotlib"}


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


def test_nothing_imports_the_widgets():
    for rel, tree in _modules():
        if rel.parts[0] == "widgets":
            continue
        bad = {name for name in _imports(tree) if "widgets" in name.split(".")[1:] or name.lstrip(".") == "widgets"}
        assert not bad, f"{rel} imports {bad}: nothing may import widgets/"


def test_library_does_not_print():
    for rel, tree in _modules():
        if rel.name == "cli.py":
            continue
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"]
        assert not calls, f"{rel} calls print(); use logging"

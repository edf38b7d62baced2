"""Layering: core modules import without Qt, pyqtgraph or VTK; render imports no Qt."""
from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import discviewer

PKG = Path(discviewer.__file__).parent


def core_modules() -> list[str]:
    mods = []
    for m in pkgutil.walk_packages([str(PKG)], prefix="discviewer."):
        if m.name.startswith(("discviewer.ui", "discviewer.render")) or m.name == "discviewer.__main__":
            continue
        mods.append(m.name)
    return sorted(mods)


def test_core_modules_exist():
    mods = core_modules()
    for expected in ("discviewer.io", "discviewer.io.scan", "discviewer.io.load", "discviewer.volume",
                     "discviewer.phantom", "discviewer.study", "discviewer.linking"):
        assert expected in mods


def test_core_imports_without_gui_or_vtk():
    mods = core_modules()
    code = (
        "import sys\n"
        "for name in ('PySide6', 'pyqtgraph', 'vtkmodules', 'vtk', 'shiboken6'):\n"
        "    sys.modules[name] = None\n"
        "import importlib\n"
        f"mods = {mods!r}\n"
        "for m in mods:\n"
        "    importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'vtkmodules', 'vtk')"
        " and sys.modules[m] is not None]\n"
        "assert not bad, bad\n"
        "print('ok', len(mods))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_render_layer_has_no_qt():
    for f in (PKG / "render").rglob("*.py"):
        for name in _imports(f):
            assert not name.startswith(("PySide6", "pyqtgraph", "vtkmodules.qt", "discviewer.ui")), (f, name)


def test_core_source_has_no_upward_imports():
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG).parts
        if rel[0] in ("ui", "render"):
            continue
        for name in _imports(f):
            assert not name.startswith(("PySide6", "pyqtgraph", "vtk", "discviewer.ui", "discviewer.render")), \
                (f, name)

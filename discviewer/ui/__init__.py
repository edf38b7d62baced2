"""Qt user interface of discviewer (PySide6 + pyqtgraph).

UI layer: may import core (`discviewer.*`), `discviewer.render`, PySide6 and pyqtgraph.
Modules: `app` (QApplication setup, `run`), `main_window` (`MainWindow`), `study_browser`
(`StudyBrowserPanel`), `workers` (background scan/load jobs),
`pgsetup` (the one place that imports pyqtgraph with the right settings).

Display math (orientation letters, auto window, scale bar) lives in core: `discviewer.display`.
Importing this package does not import Qt; `run` imports it on first call.
"""
from __future__ import annotations


def run(paths=None, *, demo_dir=None) -> int:
    """Start the desktop app (see `discviewer.ui.app.run`)."""
    from discviewer.ui.app import run as _run

    return _run(paths, demo_dir=demo_dir)


__all__ = ["run"]

"""Import pyqtgraph the one right way for discviewer.

pyqtgraph picks its Qt binding at import time from `PYQTGRAPH_QT_LIB`, and images must be
row-major (`array[row, column]`) to match `Volume.array[slice]`. Every UI module imports
pyqtgraph through here: `from discviewer.ui.pgsetup import pg`.
"""
from __future__ import annotations

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg  # noqa: E402

if pg.Qt.QT_LIB != "PySide6":  # pragma: no cover - misconfigured environment
    raise ImportError(
        f"discviewer needs pyqtgraph on PySide6, but it loaded {pg.Qt.QT_LIB}; "
        "set PYQTGRAPH_QT_LIB=PySide6 before importing pyqtgraph"
    )


def configure() -> None:
    """Apply discviewer's global pyqtgraph options (idempotent)."""
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


configure()

__all__ = ["pg", "configure"]

"""UI test setup: every test here is marked `gui` and skipped (with a reason) when no display exists.

Run under Xvfb: `PYQTGRAPH_QT_LIB=PySide6 xvfb-run -a .venv/bin/python -m pytest tests/ui -q`.
We never fall back to `QT_QPA_PLATFORM=offscreen` (DESIGN.md §5: it renders VTK garbage).
Synthetic volumes, candidates and a fake io (scan/load with delays and cancel counters) are
provided as fixtures, so the UI is tested without DICOM files.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
# QSettings (recent list, …) must never touch the real user's config during tests
import tempfile  # noqa: E402

os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="discviewer-test-config-")

HERE = Path(__file__).resolve().parent
HAS_DISPLAY = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in (
    "win32", "darwin")
NO_DISPLAY_REASON = "no display (DISPLAY unset): run the UI tests under Xvfb, e.g. `xvfb-run -a python -m pytest tests/ui`"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue
        item.add_marker(pytest.mark.gui)
        item.add_marker(pytest.mark.timeout(60))
        if not HAS_DISPLAY:
            item.add_marker(pytest.mark.skip(reason=NO_DISPLAY_REASON))


# synthetic volumes/candidates live in tests/synthetic.py (shared with core tests)
from tests.synthetic import DIRECTIONS, make_affine, make_candidate, make_volume  # noqa: E402,F401


class FakeIO:
    """scan/load stand-ins: configurable delays, counters, per-path results; records calls."""

    def __init__(self, result=None):
        from discviewer.io.types import Problem, ScanResult

        if result is None:
            series = []
            for d, date in enumerate(("20210301", "20200101")):  # deliberately out of date order
                uid = f"1.2.{d}"
                series += [make_candidate("Localizer", 1, date=date, study_uid=uid, shape=(3, 40, 60), localizer=True),
                           make_candidate("T2 sag", 2, date=date, study_uid=uid, shape=(7, 40, 60)),
                           make_candidate("T1 sag", 3, date=date, study_uid=uid, shape=(5, 40, 60), te=12.0)]
            result = ScanResult(series=series, files_seen=40,
                                problems=[Problem("/fake/notes.txt", "not a DICOM file"),
                                          Problem("/fake/broken.dcm", "truncated pixel data")])
        self.result = result
        self.results_by_path: dict[str, object] = {}
        self.scan_steps = 4
        self.scan_delay = 0.0  # seconds per step
        self.scan_error: Exception | None = None
        self.load_delay = 0.0
        self.load_delays: dict[int, float] = {}  # id(candidate) → seconds
        self.steps_done = 0
        self.scan_calls: list[str] = []
        self.load_calls: list[object] = []
        self.lock = threading.Lock()

    def scan(self, path, *, progress=None, cancel=None):
        from discviewer.io.types import ScanResult

        self.scan_calls.append(str(path))
        self.steps_done = 0
        for i in range(self.scan_steps):
            if cancel is not None and cancel():
                return ScanResult(series=[], problems=[], files_seen=i, cancelled=True)
            time.sleep(self.scan_delay)
            self.steps_done = i + 1
            if progress is not None:
                progress(i + 1, self.scan_steps)
        if self.scan_error is not None:
            raise self.scan_error
        return self.results_by_path.get(str(path), self.result)

    def load(self, candidate, *, progress=None):
        from discviewer.volume import Volume

        self.load_calls.append(candidate)
        time.sleep(self.load_delays.get(id(candidate), self.load_delay))
        shape = (candidate.slice_count, candidate.rows, candidate.columns)
        k, r, c = np.indices(shape)
        arr = (1000 * k + shape[2] * r + c + candidate.info.series_number * 100000).astype(np.int32)
        if progress is not None:
            progress(shape[0], shape[0])
        return Volume(arr, candidate.affine, candidate.info)


@pytest.fixture
def volume_factory():
    return make_volume


@pytest.fixture
def candidate_factory():
    return make_candidate


@pytest.fixture
def fake_io():
    return FakeIO()


# ---------------------------------------------------------------------------- event helpers
class Events:
    """Synthesize mouse/wheel events on a QGraphicsView's viewport (explicit buttons, no OS cursor)."""

    @staticmethod
    def _send(widget, ev):
        from PySide6 import QtWidgets

        QtWidgets.QApplication.sendEvent(widget, ev)

    @classmethod
    def mouse(cls, view, kind, pos, button=None, buttons=None, modifiers=None):
        from PySide6 import QtCore, QtGui

        Qt = QtCore.Qt
        types = {"press": QtCore.QEvent.Type.MouseButtonPress, "move": QtCore.QEvent.Type.MouseMove,
                 "release": QtCore.QEvent.Type.MouseButtonRelease}
        vp = view.viewport()
        local = QtCore.QPointF(pos)
        glob = QtCore.QPointF(vp.mapToGlobal(local.toPoint()))
        ev = QtGui.QMouseEvent(types[kind], local, glob, button or Qt.MouseButton.NoButton,
                               buttons if buttons is not None else Qt.MouseButton.NoButton,
                               modifiers or Qt.KeyboardModifier.NoModifier)
        cls._send(vp, ev)

    @classmethod
    def drag(cls, view, start, end, button, steps=5):
        from PySide6 import QtCore

        start, end = QtCore.QPointF(start), QtCore.QPointF(end)
        cls.mouse(view, "press", start, button, button)
        for i in range(1, steps + 1):
            p = start + (end - start) * (i / steps)
            cls.mouse(view, "move", p, None, button)
        cls.mouse(view, "release", end, button, None)

    @classmethod
    def wheel(cls, view, notches=1, pos=None, modifiers=None):
        from PySide6 import QtCore, QtGui

        Qt = QtCore.Qt
        vp = view.viewport()
        local = QtCore.QPointF(pos) if pos is not None else QtCore.QPointF(vp.width() / 2, vp.height() / 2)
        ev = QtGui.QWheelEvent(local, QtCore.QPointF(vp.mapToGlobal(local.toPoint())), QtCore.QPoint(0, 0),
                               QtCore.QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                               modifiers or Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        cls._send(vp, ev)


@pytest.fixture
def events():
    return Events


# ---------------------------------------------------------------------------- the phantom demo study
@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The small phantom study (1 patient, 5 visits), written once per test session."""
    from discviewer.phantom import write_study

    out = tmp_path_factory.mktemp("demo")
    write_study(out, patients=1, seed=0, size="small")
    return out


@pytest.fixture
def demo_window(qtbot, demo, tmp_path):
    """A shown MainWindow (own settings file) with the demo study open and its first series on screen."""
    from PySide6 import QtCore

    from discviewer.ui.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1500, 950)
    w.show()
    qtbot.waitExposed(w)
    with qtbot.waitSignal(w.volume_shown, timeout=30000):
        w.open_path(demo)
    yield w
    w.shutdown()


# ---------------------------------------------------------------------------- questions to the user
class AutoAnswers:
    """Stands in for the project controller's message boxes: records every question and answers
    from `answers` (title → button), else the first of Discard / Later / OK / Continue / Cancel
    that is offered — so a test never blocks on a modal dialog."""

    DEFAULTS = ("Discard", "Later", "OK", "Continue", "Cancel")

    def __init__(self):
        self.asked: list[tuple[str, str, str, list[str]]] = []
        self.answers: dict[str, str] = {}

    def __call__(self, kind, title, text, buttons):
        self.asked.append((kind, title, text, list(buttons)))
        if title in self.answers:
            return self.answers[title]
        for b in self.DEFAULTS:
            if b in buttons:
                return b
        return buttons[-1] if buttons else ""

    def titles(self) -> list[str]:
        return [a[1] for a in self.asked]


@pytest.fixture(autouse=True)
def research_use_acknowledged(monkeypatch):
    """The first-run research-use dialog is modal: entry points the tests call (`discviewer read`,
    `app.run`) would wait on it forever. tests/ui/test_first_run.py removes this to test the dialog."""
    monkeypatch.setenv("DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE", "1")


@pytest.fixture(autouse=True)
def auto_answers(monkeypatch):
    answers = AutoAnswers()
    monkeypatch.setattr("discviewer.ui.project_controller.default_ask", lambda parent: answers)
    return answers

"""Crash safety: an exception raised inside a slot is logged, the unsaved work autosaved first, a crash
report written and a (non-blocking) dialog names the log and the report."""
from __future__ import annotations

import sys

import pytest
from PySide6 import QtCore

from discviewer import logsetup
from discviewer.ui.crash_ui import install_excepthook, uninstall_excepthook


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from discviewer.ui.main_window import MainWindow

    monkeypatch.setenv("DISCVIEWER_LOG_DIR", str(tmp_path / "logs"))
    logsetup.setup_logging()
    w = MainWindow(settings=QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    yield w
    w.shutdown()
    w.project.close()
    logsetup.shutdown_logging()


@pytest.mark.qt_no_exception_capture
def test_exception_in_a_slot(window, qtbot, tmp_path):
    from discviewer.workspace.autosave import autosave_path

    ws = window.project.workspace
    ws.mark_modified("test")  # unsaved work
    target = autosave_path(ws.path, window.project.untitled_id)
    if target.exists():
        target.unlink()
    handler = install_excepthook(window)
    try:
        def slot():
            raise RuntimeError("boom in a slot")

        QtCore.QTimer.singleShot(0, slot)
        qtbot.waitUntil(lambda: bool(handler.reports), timeout=10000)
    finally:
        uninstall_excepthook(handler)
    assert sys.excepthook is not handler
    # 1. the autosave was written (and first: the report names it)
    assert target.exists() and handler.last_autosave == target
    # 2. the crash report
    report = handler.reports[0]
    assert report.exists() and report.parent == tmp_path / "logs" / "crashes"
    text = report.read_text()
    assert "RuntimeError: boom in a slot" in text and f"autosave: {target}" in text and "slot" in text
    # 3. the log has it
    assert "boom in a slot" in (tmp_path / "logs" / "discviewer.log").read_text()
    # 4. the dialog, non-modal, naming the log and the report
    box = handler.dialog
    assert box is not None and box.isVisible() and not box.isModal()
    assert str(report) in box.text() and str(logsetup.log_path()) in box.text() and str(target) in box.text()
    box.close()


@pytest.mark.qt_no_exception_capture
def test_nothing_unsaved_still_reports(window, qtbot):
    handler = install_excepthook(window, show_dialog=False)
    try:
        QtCore.QTimer.singleShot(0, lambda: 1 / 0)
        qtbot.waitUntil(lambda: bool(handler.reports), timeout=10000)
    finally:
        uninstall_excepthook(handler)
    assert handler.last_autosave is None
    assert "none (no unsaved changes)" in handler.reports[0].read_text()
    assert handler.dialog is None


@pytest.mark.qt_no_exception_capture
def test_patient_strings_redacted_in_report_and_log(window, qtbot, tmp_path):
    from types import SimpleNamespace

    from discviewer.study import Patient

    window.study = SimpleNamespace(patients=[Patient("PAT-0077", "DOE^JANE")])
    handler = install_excepthook(window, show_dialog=False)
    try:
        def slot():
            raise OSError("cannot read /data/DOE^JANE/PAT-0077/IM1.dcm")

        QtCore.QTimer.singleShot(0, slot)
        qtbot.waitUntil(lambda: bool(handler.reports), timeout=10000)
    finally:
        uninstall_excepthook(handler)
        window.study = None
    for text in (handler.reports[0].read_text(), (tmp_path / "logs" / "discviewer.log").read_text()):
        assert "cannot read /data/[redacted]/[redacted]/IM1.dcm" in text
        assert "DOE" not in text and "PAT-0077" not in text

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


# ---------------------------------------------------------------------------------------- worker threads
def _on_gui_thread_recorder(handler):
    """Wrap `handler.handle` to record whether each exception was handled on the GUI thread."""
    import threading

    seen = []
    handle = handler.handle

    def recording(exc_info):
        seen.append(threading.current_thread() is threading.main_thread())
        return handle(exc_info)

    handler.handle = recording
    return seen


def _assert_crash_handled(handler, window, qtbot, target, message):
    from PySide6 import QtWidgets

    qtbot.waitUntil(lambda: bool(handler.reports), timeout=10000)
    assert target.exists() and handler.last_autosave == target
    text = handler.reports[0].read_text()
    assert message in text and f"autosave: {target}" in text
    box = handler.dialog
    assert box is not None and box.isVisible() and not box.isModal()
    assert box.thread() is QtWidgets.QApplication.instance().thread()
    assert str(handler.reports[0]) in box.text()
    # the app keeps running: the event loop still delivers, the window is still there
    ticks = []
    QtCore.QTimer.singleShot(0, lambda: ticks.append(1))
    qtbot.waitUntil(lambda: bool(ticks), timeout=5000)
    window.statusBar().showMessage("still running")
    assert window.statusBar().currentMessage() == "still running"
    box.close()


def _unsaved(window):
    from discviewer.workspace.autosave import autosave_path

    ws = window.project.workspace
    ws.mark_modified("test")
    target = autosave_path(ws.path, window.project.untitled_id)
    if target.exists():
        target.unlink()
    return target


@pytest.mark.qt_no_exception_capture
def test_exception_in_a_python_thread(window, qtbot):
    import threading

    target = _unsaved(window)
    before_sys, before_thread = sys.excepthook, threading.excepthook
    handler = install_excepthook(window)
    assert threading.excepthook == handler.thread_hook
    seen = _on_gui_thread_recorder(handler)
    try:
        def work():
            raise RuntimeError("boom in a thread")

        t = threading.Thread(target=work, name="worker-7")
        t.start()
        t.join(5)
        _assert_crash_handled(handler, window, qtbot, target, "RuntimeError: boom in a thread")
    finally:
        uninstall_excepthook(handler)
    assert seen == [True] and handler.handled_threads == ["worker-7"]
    # uninstall restores both previous hooks
    assert sys.excepthook is before_sys and threading.excepthook == before_thread


@pytest.mark.qt_no_exception_capture
def test_exception_escaping_a_qthread(window, qtbot):
    target = _unsaved(window)
    handler = install_excepthook(window)
    seen = _on_gui_thread_recorder(handler)

    class Thread(QtCore.QThread):
        def run(self):
            raise RuntimeError("boom in a QThread")

    th = Thread()
    try:
        th.start()
        assert th.wait(5000)
        _assert_crash_handled(handler, window, qtbot, target, "RuntimeError: boom in a QThread")
    finally:
        uninstall_excepthook(handler)
    assert seen == [True] and handler.handled_threads[0] != "MainThread"


@pytest.mark.qt_no_exception_capture
def test_job_unexpected_error_reaches_the_handler_expected_one_does_not(window, qtbot):
    from discviewer.ui.workers import Job

    class Bug(BaseException):
        pass

    target = _unsaved(window)
    handler = install_excepthook(window)
    seen = _on_gui_thread_recorder(handler)
    try:
        # an expected error: the job's own `failed` signal only, no crash report
        failed = []
        job = Job(lambda progress, cancel: (_ for _ in ()).throw(ValueError("bad file")))
        job.failed.connect(lambda rid, msg: failed.append(msg))
        job.start()
        qtbot.waitUntil(lambda: bool(failed), timeout=5000)
        assert job.wait(5000) and job.outcome == "failed" and "ValueError: bad file" in failed[0]
        qtbot.wait(100)
        assert not handler.reports
        # an unexpected one: still `failed` (no receiver waits for ever), and to the crash handler
        failed.clear()

        def buggy(progress, cancel):
            raise Bug("bug in a job")

        job2 = Job(buggy)
        job2.failed.connect(lambda rid, msg: failed.append(msg))
        job2.start()
        _assert_crash_handled(handler, window, qtbot, target, "Bug: bug in a job")
        assert job2.wait(5000) and job2.outcome == "failed"
        qtbot.waitUntil(lambda: bool(failed), timeout=5000)
        assert "unexpected error" in failed[0]
    finally:
        uninstall_excepthook(handler)
    assert seen == [True] and len(handler.reports) == 1

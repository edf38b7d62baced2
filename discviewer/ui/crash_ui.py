"""Crash safety: an excepthook for the desktop app.

`install_excepthook(window)` replaces `sys.excepthook` (PySide6 routes exceptions raised in slots and
Qt virtual overrides through it). For an unhandled exception `CrashHandler`, in this order:
1. logs it (with traceback, patient names/IDs/dates of the open study redacted) to the rotating log
   (`discviewer.logsetup`);
2. saves an autosave of the open project's unsaved work (`ProjectController.autosave`) — first,
   so nothing else can lose it; the next start offers to recover it;
3. writes a crash report (`logsetup.write_crash_report`: traceback, versions, platform; the open
   study's patient names, IDs and dates redacted);
4. shows a non-modal dialog naming the log, the report and the autosave (one dialog at a time;
   later crashes update it).
Each step is guarded, so a failure in one never hides the others; KeyboardInterrupt goes to the
default hook. The app keeps running after the dialog (Qt cannot unwind a slot): the user decides
whether to save and quit.

Worker threads: `install_excepthook` also replaces `threading.excepthook` (unhandled exceptions in
Python threads), and `sys.excepthook` is also what PySide6 calls for an exception escaping a QThread's
`run` (and what `workers.Job` calls for an error it does not expect, see `report_unhandled`). Called on
any thread but the GUI thread, the handler only queues the exception to the GUI thread (a queued
signal), where the steps above run — so autosave, report and dialog never run off the GUI thread.
"""
from __future__ import annotations

import logging
import sys
import threading
import traceback
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from discviewer import logsetup

Qt = QtCore.Qt
log = logging.getLogger("discviewer.crash")


def _patient_strings(window) -> list[str]:
    study = getattr(window, "study", None)
    out: list[str] = []
    for p in getattr(study, "patients", None) or []:
        try:
            from discviewer.render.montage import forbidden_strings

            out += forbidden_strings(p)
        except Exception:
            out += [str(getattr(p, "id", "") or ""), str(getattr(p, "name", "") or "")]
    return [s for s in out if s]


class _Relay(QtCore.QObject):
    """Lives on the GUI thread; `raised` emitted from a worker thread is delivered there (queued)."""

    raised = QtCore.Signal(object)  # (etype, value, tb, thread name)


def _on_gui_thread() -> bool:
    app = QtCore.QCoreApplication.instance()
    if app is None:
        return threading.current_thread() is threading.main_thread()
    return QtCore.QThread.currentThread() is app.thread()


class CrashHandler:
    def __init__(self, window, *, previous=None, previous_thread_hook=None, show_dialog: bool = True) -> None:
        self.window = window
        self.previous = previous
        self.previous_thread_hook = previous_thread_hook
        self.show_dialog = show_dialog
        self.dialog: QtWidgets.QMessageBox | None = None
        self.reports: list[Path] = []
        self.last_autosave: Path | None = None
        self.handled_threads: list[str] = []  # the thread each handled exception came from
        self._busy = False
        self._relay = _Relay()  # created on the GUI thread (install_excepthook runs there)
        self._relay.raised.connect(self._on_raised, Qt.ConnectionType.QueuedConnection)

    def thread_hook(self, args) -> None:
        """`threading.excepthook`: an unhandled exception in a Python thread."""
        if args.exc_type is SystemExit:
            return
        name = getattr(args.thread, "name", None) or "thread"
        self._dispatch(args.exc_type, args.exc_value, args.exc_traceback, name)

    def _dispatch(self, etype, value, tb, thread_name: str) -> None:
        if _on_gui_thread():
            self._call(etype, value, tb, thread_name)
            return
        try:
            log.error("unhandled exception in thread %s: %s: %s (handled on the GUI thread)", thread_name,
                      etype.__name__, value)
        except Exception:
            pass
        self._relay.raised.emit((etype, value, tb, thread_name))  # queued: runs on the GUI thread

    def _on_raised(self, item) -> None:
        self._call(*item)

    def _call(self, etype, value, tb, thread_name: str) -> None:
        if issubclass(etype, KeyboardInterrupt) or self._busy:
            (self.previous or sys.__excepthook__)(etype, value, tb)
            return
        self._busy = True
        try:
            self.handled_threads.append(thread_name)
            self.handle((etype, value, tb))
        finally:
            self._busy = False

    def autosave(self) -> Path | None:
        """Autosave the open project's unsaved work now; its path (None: nothing unsaved)."""
        project = getattr(self.window, "project", None)
        ws = getattr(project, "workspace", None)
        if project is None or ws is None or not ws.is_dirty:
            return None
        from discviewer.workspace.autosave import autosave_path

        project.autosave()  # False when the autosave already holds this state: still fine
        path = autosave_path(ws.path, project.untitled_id)
        return path if path.exists() else None

    def __call__(self, etype, value, tb) -> None:
        """`sys.excepthook`; from a thread other than the GUI thread it is queued to the GUI thread."""
        self._dispatch(etype, value, tb, threading.current_thread().name)

    def handle(self, exc_info) -> Path | None:
        redact = []
        try:
            redact = _patient_strings(self.window)
            text = "".join(traceback.format_exception(*exc_info)).rstrip()
            log.error("unhandled exception\n%s", logsetup.redact_text(text, redact))  # the log holds no names either
        except Exception:
            pass
        autosave, autosave_error = None, ""
        try:
            autosave = self.autosave()
        except Exception as exc:  # the report must still be written
            autosave_error = f"{type(exc).__name__}: {exc}"
            log.exception("autosave after the crash failed")
        self.last_autosave = autosave
        report = None
        try:
            context = {"autosave": str(autosave) if autosave else (f"failed: {autosave_error}" if autosave_error
                                                                  else "none (no unsaved changes)")}
            report = logsetup.write_crash_report(exc_info, context, redact=redact)
            self.reports.append(report)
            log.error("crash report written to %s", report)
        except Exception:
            log.exception("could not write the crash report")
            sys.__excepthook__(*exc_info)
        if self.show_dialog:
            try:
                self._show(exc_info, report, autosave)
            except Exception:
                log.exception("could not show the crash dialog")
        return report

    def _show(self, exc_info, report: Path | None, autosave: Path | None) -> None:
        etype, value, _tb = exc_info
        lines = [f"An unexpected error occurred: {etype.__name__}: {value}"[:400], ""]
        if autosave is not None:
            lines.append(f"Your unsaved work was autosaved to {autosave}; it is offered for recovery on the "
                         "next start.")
        lines.append(f"Log file: {logsetup.log_path()}")
        lines.append(f"Crash report: {report}" if report else "The crash report could not be written.")
        lines += ["", "discviewer may be unstable now: save your project and restart it."]
        text = "\n".join(lines)
        parent = self.window if isinstance(self.window, QtWidgets.QWidget) else None
        box = self.dialog
        if box is None:
            box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Critical, "discviewer — unexpected error", text,
                                        QtWidgets.QMessageBox.StandardButton.Ok, parent)
            box.setObjectName("crash-dialog")
            box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            box.setWindowModality(Qt.WindowModality.NonModal)
            box.finished.connect(lambda _r: setattr(self, "dialog", None))
            self.dialog = box
        else:
            box.setText(text)
        box.show()  # non-blocking: the event loop (and the tests) go on


def install_excepthook(window, *, show_dialog: bool = True) -> CrashHandler:
    """Route unhandled exceptions (GUI thread and worker threads) to a `CrashHandler` for `window`;
    returns it (`uninstall_excepthook`). Call on the GUI thread."""
    handler = CrashHandler(window, previous=sys.excepthook, previous_thread_hook=threading.excepthook,
                           show_dialog=show_dialog)
    sys.excepthook = handler
    threading.excepthook = handler.thread_hook
    return handler


def uninstall_excepthook(handler: CrashHandler) -> None:
    if sys.excepthook is handler:
        sys.excepthook = handler.previous or sys.__excepthook__
    if threading.excepthook == handler.thread_hook:
        threading.excepthook = handler.previous_thread_hook or threading.__excepthook__


def report_unhandled(exc_info=None) -> None:
    """Hand an exception nobody expected to the installed hook (`sys.excepthook`): from a worker
    thread, a `CrashHandler` queues it to the GUI thread. Never raises."""
    exc_info = exc_info or sys.exc_info()
    try:
        sys.excepthook(*exc_info)
    except Exception:
        try:
            sys.__excepthook__(*exc_info)
        except Exception:
            pass

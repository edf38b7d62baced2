"""Open the blinded reading flow straight from a path: `discviewer read PACKAGE_OR_PROJECT [--reader ID]`.

- A **reader package** (its folder, its .zip or its package.json; `discviewer.reading.package`): the
  package's study and session; every submit writes the package's answers.json at once
  (`ReaderPackage.save`). The reader is the package's reader; `--reader` must name the same one.
  File → "Export answers…" writes the return file for the coordinator (`export_answers`).
- A **project** (.dvw): opened through a `ProjectController` (lock, recovery; its message boxes are
  answered silently — they name paths), its source files scanned behind a progress dialog that names
  no file, the study attached, and the session chosen (`--session` id or name; the only one; else a
  list of session names). Every submit saves the project file. A project another app holds (read-only)
  is refused: answers could not be saved.

`open_reading(path, *, reader=None, session=None, ...) -> ReadingWindow` builds the window (not shown);
`run_reading(...)` runs the app until it closes. Errors raise `ReadingLaunchError` with a message for
the person who typed the command (it may name the path they gave, never a case's files).
Screenshot hook as in `app.run`: with `DISCVIEWER_SCREENSHOT=/path.png` the window is grabbed once the
first case is on screen and the app quits.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from discviewer.workspace.data import EXTENSION

Qt = QtCore.Qt


class ReadingLaunchError(Exception):
    """The path cannot be opened for reading (the message says why)."""


def _silent_ask(kind, title, text, buttons):
    """Answers a project controller's questions without showing them (they name paths): keep an
    autosave for later, acknowledge notes."""
    for b in ("Later", "OK", "Cancel"):
        if b in buttons:
            return b
    return buttons[-1] if buttons else ""


def is_package(path) -> bool:
    p = Path(path)
    return (p.is_dir() and (p / "package.json").exists()) or p.name == "package.json" or \
        (p.is_file() and p.suffix.lower() == ".zip")


def open_package_window(path, *, reader: str | None = None, **kw):
    """A `ReadingWindow` on the reader package at `path`."""
    from discviewer.reading.package import PackageError, export_answers, open_reader_package
    from discviewer.ui.reading_window import ReadingWindow

    try:
        pkg = open_reader_package(path)
    except PackageError as exc:
        raise ReadingLaunchError(str(exc)) from None
    if reader is not None and reader.strip() != pkg.reader:
        pkg.close()
        raise ReadingLaunchError(f"this package was made for reader {pkg.reader!r}, not {reader.strip()!r}")
    w = ReadingWindow(pkg.session, pkg.workspace.study, reader=reader, workspace=pkg.workspace, persist=pkg.save,
                      allow_new_reader=False, **kw)
    w.progress = pkg.progress  # one ReaderProgress: the package's
    w.package = pkg

    def export() -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(w, "Folder for the answers file")
        if not folder:
            return
        try:
            export_answers(pkg, folder)
        except Exception as exc:  # noqa: BLE001 - told to the reader without details
            print(f"discviewer read: exporting the answers failed: {exc}", file=sys.stderr)
            w.ask("error", "Answers not exported", "The answers file could not be written.", ["OK"])
            return
        w.statusBar().showMessage("Answers exported", 6000)

    menu = w.menuBar().addMenu("&File")
    act = menu.addAction("&Export answers…", export)
    act.setToolTip("Write the answers file to send back to the study coordinator")
    w.export_answers_action = act
    w.destroyed.connect(lambda *_: pkg.close())
    return w


def _choose_session(sessions, wanted: str | None, parent=None):
    if wanted:
        for s in sessions:
            if wanted in (s.id, s.name):
                return s
        raise ReadingLaunchError(f"no reading session {wanted!r} in this project "
                                 f"(sessions: {', '.join(s.name for s in sessions)})")
    if len(sessions) == 1:
        return sessions[0]
    names = [f"{s.name} ({len(s.cases)} cases)" for s in sessions]
    item, ok = QtWidgets.QInputDialog.getItem(parent, "Reading session", "Which reading session?", names, 0, False)
    if not ok:
        return None
    return sessions[names.index(item)]


def open_project_window(path, *, reader: str | None = None, session: str | None = None, scan_fn=None, **kw):
    """A `ReadingWindow` on a reading session of the project file at `path`."""
    from discviewer.reading import sessions_in
    from discviewer.study import Study
    from discviewer.ui.project_controller import ProjectController
    from discviewer.ui.reading_window import ReadingWindow

    project = ProjectController()
    project.ask = _silent_ask
    ws = project.load_project(path)
    if ws is None:
        raise ReadingLaunchError(f"{path}: could not open the project ({project.last_error or 'unreadable'})")
    if ws.read_only:
        project.close()
        raise ReadingLaunchError(f"{path}: the project is open in another discviewer (or read-only), so answers "
                                 f"could not be saved: {ws.read_only_reason}")
    sessions = sessions_in(ws)
    if not sessions:
        project.close()
        raise ReadingLaunchError(f"{path}: the project has no reading session")
    chosen = _choose_session(sessions, session)
    if chosen is None:
        project.close()
        raise ReadingLaunchError("no reading session chosen")
    paths = [s.path for s in ws.sources if os.path.exists(s.path)]
    if not paths:
        project.close()
        raise ReadingLaunchError(f"{path}: the project's source images are missing (relink them in discviewer)")
    dlg = QtWidgets.QProgressDialog("Preparing the cases…", "", 0, len(paths))
    dlg.setWindowTitle("Blinded read")
    dlg.setCancelButton(None)
    dlg.setMinimumDuration(300)

    def progress(done, total):
        dlg.setMaximum(max(total, 1))
        dlg.setValue(min(done, max(total, 1)))
        QtWidgets.QApplication.processEvents()

    try:
        if scan_fn is not None:
            result = scan_fn(paths, progress=progress)
        else:
            from discviewer.io import scan_files

            result = scan_files(paths, progress=progress)
    finally:
        dlg.close()
        dlg.deleteLater()
    study = Study.from_scan(result)
    ws.attach_study(study)
    w = ReadingWindow(chosen, study, reader=reader, project=project,
                      load_fn=project.wrap_load(_default_load), **kw)
    w.project = project
    w.destroyed.connect(lambda *_: project.close())
    return w


def _default_load(candidate, *, progress=None):
    from discviewer.io import load

    return load(candidate, progress=progress)


def open_reading(path, *, reader: str | None = None, session: str | None = None, **kw):
    """The reading window for a reader package or a project file (see the module docstring)."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ReadingLaunchError(f"{p}: no such file or folder")
    if p.lower().endswith(EXTENSION):
        return open_project_window(p, reader=reader, session=session, **kw)
    if is_package(p):
        return open_package_window(p, reader=reader, **kw)
    raise ReadingLaunchError(f"{p}: neither a reader package (folder with package.json, or its .zip) "
                             f"nor a project ({EXTENSION})")


def run_reading(path, *, reader: str | None = None, session: str | None = None) -> int:
    """Run the app with the reading window until it closes; returns the exit code."""
    from discviewer.ui.app import create_app

    from discviewer import logsetup

    if not logsetup.is_configured():
        logsetup.setup_logging()
    app = create_app()
    if not os.environ.get("DISCVIEWER_SCREENSHOT"):  # first start: the research-use notice, as in app.run
        from discviewer.ui.help_ui import acknowledge_research_use
        from discviewer.ui.preferences_ui import app_settings

        if not acknowledge_research_use(app_settings()):
            return 1
    try:
        w = open_reading(path, reader=reader, session=session)
    except ReadingLaunchError as exc:
        print(f"discviewer read: {exc}", file=sys.stderr)
        return 2
    w.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    w.show()
    from discviewer.ui.crash_ui import install_excepthook

    install_excepthook(w)  # log, autosave (a local project), crash report, dialog
    shot = os.environ.get("DISCVIEWER_SCREENSHOT")
    if shot:
        def grab(*_):
            def save():
                for f in w.frames:
                    f.view.render_now()
                ok = w.grab_with_views().save(shot)
                print(f"discviewer read: screenshot {'saved' if ok else 'FAILED'}", file=sys.stderr)
                w.close()
                app.exit(0 if ok else 3)
            QtCore.QTimer.singleShot(400, save)

        w.case_shown.connect(grab)
        w.finished_read.connect(grab)
        QtCore.QTimer.singleShot(int(float(os.environ.get("DISCVIEWER_SCREENSHOT_TIMEOUT", "120")) * 1000),
                                 lambda: app.exit(2))
    return int(app.exec())


__all__ = ["ReadingLaunchError", "open_reading", "open_package_window", "open_project_window", "run_reading",
           "is_package"]

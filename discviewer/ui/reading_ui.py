"""`ReadingUI`: the main window's **Reading** menu — the coordinator's side of blinded reading.

Menu items: New reading session… (`ReadingSetupDialog`), Start reading… (a session, then the
reader's `ReadingWindow`, where the reader identifies), Results… (the `ReadingResultsPanel` dock), Export reader
package…, Import answers…. Installed by one line in `MainWindow` (like `MeasureUI`); it owns the
glue only — sessions, packages and statistics are `discviewer.reading` / `discviewer.stats`.

**Blinding.** While a reader window is open the main window — whose study browser, title, status
bar and docks show patient names, dates and visit labels — is hidden, and shown again when the
reader window closes. The reader window shows only what the session's cases allow.

Questions to the user go through `project_controller.default_ask` (a message box; tests replace it).
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from discviewer.ui import project_controller

Qt = QtCore.Qt


def ask(parent, kind: str, title: str, text: str, buttons=("OK",)) -> str:
    """A message box through the project controller's `default_ask` (replaceable in tests)."""
    return project_controller.default_ask(parent)(kind, title, text, list(buttons))


class ReadingUI(QtCore.QObject):
    session_created = QtCore.Signal(str)  # session id
    answers_imported = QtCore.Signal(str)  # session id

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.results_panel = None
        self.results_dock: QtWidgets.QDockWidget | None = None
        self.reader_window = None
        self._hidden_main = False
        self._build_menu()
        window.project.workspace_replaced.connect(self._on_workspace_replaced)

    @property
    def workspace(self):
        return self.window.project.workspace

    # ------------------------------------------------------------------ menu
    def _build_menu(self) -> None:
        w = self.window
        menu = QtWidgets.QMenu("&Reading", w)
        w.menuBar().insertMenu(w.help_menu.menuAction(), menu)
        self.menu = menu
        self.actions: dict[str, QtGui.QAction] = {}
        for name, text, slot, tip in (
                ("new_session", "New reading session…", self.new_session,
                 "Create a blinded reading session: cases, questions, readers, seed, options"),
                ("start_reading", "Start reading…", self.start_reading,
                 "Read a session as one reader (the main window is hidden while reading)"),
                ("results", "Results…", self.show_results,
                 "Progress per reader, agreement statistics and plots; exports"),
                (None, None, None, None),
                ("export_package", "Export reader package…", self.export_package,
                 "A package of one reader's cases (blinded) to read on another machine"),
                ("import_answers", "Import answers…", self.import_answers,
                 "Import the answers a reader returned from a package")):
            if name is None:
                menu.addSeparator()
                continue
            a = menu.addAction(text, slot)
            a.setToolTip(tip)
            a.setStatusTip(tip)
            self.actions[name] = a
            w.actions_by_name[f"reading_{name}"] = a

    def _on_workspace_replaced(self, ws) -> None:
        if self.results_panel is not None:
            self.results_panel.set_workspace(ws)

    # ------------------------------------------------------------------ sessions
    def session_ids(self) -> list[str]:
        return list(self.workspace.reading)

    def load_session(self, session_id: str):
        from discviewer.ui.reading_results import session_from_workspace

        return session_from_workspace(self.workspace, session_id)

    def choose_session(self, title: str) -> str | None:
        """The session to act on: the only one, else one picked from a list (None: none / cancelled)."""
        ids = self.session_ids()
        if not ids:
            ask(self.window, "information", title, "This project has no reading session yet: "
                "Reading → New reading session… creates one.")
            return None
        if len(ids) == 1:
            return ids[0]
        labels = [self._session_label(i) for i in ids]
        text, ok = QtWidgets.QInputDialog.getItem(self.window, title, "Reading session:", labels, 0, False)
        return ids[labels.index(text)] if ok and text in labels else None

    def _session_label(self, session_id: str) -> str:
        doc = self.workspace.reading.get(session_id, {})
        name = doc.get("name", "") if isinstance(doc, dict) else ""
        return f"{name} ({session_id})" if name else session_id

    def choose_reader(self, session, title: str) -> str | None:
        readers = list(session.readers)
        if not readers:
            return None
        if len(readers) == 1:
            return readers[0]
        text, ok = QtWidgets.QInputDialog.getItem(self.window, title, "Reader:", readers, 0, False)
        return text if ok and text in readers else None

    # ------------------------------------------------------------------ actions
    def new_session(self, *, exec_: bool = True):
        """Open the setup dialog (modal); returns it (after it closed when `exec_`)."""
        from discviewer.ui.reading_setup import ReadingSetupDialog

        ws = self.workspace
        if ws.read_only:
            ask(self.window, "warning", "New reading session", "The project is read-only.")
            return None
        if self.window.study is None:
            ask(self.window, "information", "New reading session", "Open a study first: its patients and "
                "visits are the cases.")
            return None
        dlg = ReadingSetupDialog(ws, self.window.study, parent=self.window)
        dlg.session_created.connect(self._on_session_created)
        self.setup_dialog = dlg
        if exec_:
            dlg.exec()
        return dlg

    def _on_session_created(self, session) -> None:
        self.window.statusBar().showMessage(
            f"Reading session {session.name or session.id} created: {len(session.cases)} case(s), "
            f"{len(session.readers)} reader(s)", 8000)
        if self.results_panel is not None:
            self.results_panel.refresh()
        self.session_created.emit(session.id)

    def start_reading(self, session_id: str | None = None, reader: str | None = None):
        """Open the reader's window for a session (the reader identifies in it unless `reader` is
        given); the main window is hidden until the reader window closes."""
        from discviewer.ui.reading_window import ReadingWindow

        session_id = session_id or self.choose_session("Start reading")
        if session_id is None:
            return None
        w = self.window
        if w.study is None:
            ask(w, "information", "Start reading", "Open the project's study first: the cases show its images.")
            return None
        if self.reader_window is not None:
            self.reader_window.raise_()
            return self.reader_window
        try:
            session = self.load_session(session_id)
            rw = ReadingWindow(session, w.study, reader=reader, project=w.project, load_fn=w.controller.load_fn)
        except Exception as exc:
            ask(w, "warning", "Cannot start reading", str(exc))
            return None
        self.reader_window = rw
        rw.installEventFilter(self)
        self._hidden_main = w.isVisible()
        w.hide()  # the main window shows names, dates and visit labels: never beside a blinded read
        rw.show()
        rw.raise_()
        return rw

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt API
        if obj is self.reader_window and ev.type() == QtCore.QEvent.Type.Close:
            QtCore.QTimer.singleShot(0, self._on_reader_closed)
        return False

    def _on_reader_closed(self) -> None:
        rw, self.reader_window = self.reader_window, None
        if rw is not None:
            rw.removeEventFilter(self)
            rw.deleteLater()
        if self._hidden_main:
            self._hidden_main = False
            self.window.show()
        if self.results_panel is not None:
            self.results_panel.refresh()

    def show_results(self, session_id: str | None = None) -> QtWidgets.QDockWidget:
        from discviewer.ui.reading_results import ReadingResultsPanel

        w = self.window
        if self.results_dock is None:
            self.results_panel = ReadingResultsPanel(self.workspace)
            dock = QtWidgets.QDockWidget("Reading results", w)
            dock.setObjectName("dock-reading-results")
            dock.setWidget(self.results_panel)
            w.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
            w.resizeDocks([dock], [max(320, w.height() // 2)], Qt.Orientation.Vertical)
            self.results_dock = dock
            self.results_panel.answers_imported.connect(self.answers_imported.emit)
        else:
            self.results_panel.refresh()
        if session_id:
            self.results_panel.set_session(session_id)
        self.results_dock.show()
        self.results_dock.raise_()
        return self.results_dock

    def export_package(self, session_id: str | None = None, reader: str | None = None, path: str | None = None):
        from discviewer.ui.reading_results import export_package_flow

        session_id = session_id or self.choose_session("Export reader package")
        if session_id is None:
            return None
        return export_package_flow(self.window, self.workspace, session_id, reader=reader, path=path,
                                   choose_reader=lambda s: self.choose_reader(s, "Export reader package"))

    def import_answers(self, session_id: str | None = None, path: str | None = None):
        from discviewer.ui.reading_results import import_answers_flow

        session_id = session_id or self.choose_session("Import answers")
        if session_id is None:
            return None
        result = import_answers_flow(self.window, self.workspace, session_id, path=path)
        if result is not None:
            if self.results_panel is not None:
                self.results_panel.refresh()
            self.answers_imported.emit(session_id)
        return result


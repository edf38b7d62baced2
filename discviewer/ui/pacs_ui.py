"""File → Query/Retrieve…: search a PACS, retrieve studies / series into the local cache and open them.

`PacsUI(window)` adds the action. The remote nodes are the preferences' `pacs_nodes` (one store:
`discviewer.ui.preferences_ui`, Edit → Preferences… → PACS, where they are added, edited and tested).
`QueryRetrieveDialog`:
- node box with **Edit nodes…** (the Preferences dialog on its PACS page; the box follows its OK) and
  **Test** (C-ECHO, or a QIDO-RS search for DICOMweb);
- filters: level (patient / study / series), patient ID, name, study dates from–to, modality,
  description; **Search** fills the results table;
- **Retrieve** the selected rows (C-GET, or C-MOVE where the node says so) or **All visits** of the
  selected patient, with a progress bar and **Cancel**; series already in the cache are skipped unless
  "Retrieve again" is ticked; the retrieved series then open through `MainWindow.open_paths`;
- **Send files…** C-STOREs (or STOW-RS) result files (SR, Secondary Capture) into their study.

All network work runs in `workers.Job` threads; a `PacsError`'s message is shown as is. The methods
`test_node`, `search`, `retrieve_selected`, `retrieve_all_visits` and `send_files` start the same jobs
without clicks (tests, scripts) and return the Job; `set_nodes` replaces the node list (stored through
the preferences by `PacsUI`).
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6 import QtCore, QtGui, QtWidgets

from discviewer.pacs import PacsError, QueryFilter, RemoteNode, SeriesCache, SeriesRecord, StudyRecord
from discviewer.ui.workers import Job

Qt = QtCore.Qt
LEVELS = ("study", "series", "patient")


@dataclass
class _Failed:
    message: str


def _guarded(fn):
    """A job function that returns `_Failed(message)` for a PacsError (its message is for the user)."""
    def run(progress, cancel):
        try:
            return fn(progress, cancel)
        except PacsError as exc:
            if cancel():
                raise
            return _Failed(str(exc))
    return run


def _date(text: str) -> str:
    from discviewer.pacs.records import dicom_date

    return dicom_date(text.strip()) if text.strip() else ""


def _fmt_date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:]}" if len(d) == 8 and d.isdigit() else d


class QueryRetrieveDialog(QtWidgets.QDialog):
    """See the module docstring."""

    nodes_changed = QtCore.Signal(list)
    search_finished = QtCore.Signal(list)  # records
    retrieve_finished = QtCore.Signal(object)  # RetrieveResult
    send_finished = QtCore.Signal(object)  # StoreResult
    echo_finished = QtCore.Signal(float)
    failed = QtCore.Signal(str)

    def __init__(self, parent=None, *, nodes: list[RemoteNode] | None = None, cache: SeriesCache | None = None,
                 open_paths=None, track=None, edit_nodes=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Query / Retrieve")
        self.resize(900, 560)
        self.nodes: list[RemoteNode] = list(nodes or [])
        self._cache = cache
        self.open_paths = open_paths  # callable(list of folders) or None
        self._track = track
        self.edit_nodes = edit_nodes  # callable() opening the node editor (Preferences → PACS), or None
        self.records: list = []
        self.job: Job | None = None
        self.last_result = None

        lay = QtWidgets.QVBoxLayout(self)
        top = QtWidgets.QHBoxLayout()
        self.node_combo = QtWidgets.QComboBox()
        self.node_combo.setMinimumWidth(260)
        top.addWidget(QtWidgets.QLabel("PACS"))
        top.addWidget(self.node_combo, 1)
        self.edit_nodes_button = QtWidgets.QPushButton("Edit nodes…")
        self.edit_nodes_button.setToolTip("Add, edit, remove and test PACS nodes (Edit → Preferences… → PACS)")
        self.edit_nodes_button.clicked.connect(self._on_edit_nodes)
        self.edit_nodes_button.setVisible(edit_nodes is not None)
        top.addWidget(self.edit_nodes_button)
        self.test_button = QtWidgets.QPushButton("Test")
        self.test_button.setToolTip("C-ECHO (DICOMweb: a one-result search)")
        self.test_button.clicked.connect(self.test_node)
        top.addWidget(self.test_button)
        lay.addLayout(top)

        grid = QtWidgets.QGridLayout()
        self.level = QtWidgets.QComboBox()
        self.level.addItems(list(LEVELS))
        self.patient_id = QtWidgets.QLineEdit()
        self.patient_name = QtWidgets.QLineEdit()
        self.date_from = QtWidgets.QLineEdit()
        self.date_to = QtWidgets.QLineEdit()
        for e in (self.date_from, self.date_to):
            e.setPlaceholderText("YYYY-MM-DD")
        self.modality = QtWidgets.QLineEdit()
        self.modality.setPlaceholderText("MR")
        self.description = QtWidgets.QLineEdit()
        cells = (("Level", self.level), ("Patient ID", self.patient_id), ("Name", self.patient_name),
                 ("Study date from", self.date_from), ("to", self.date_to), ("Modality", self.modality),
                 ("Description", self.description))
        for i, (label, w) in enumerate(cells):
            grid.addWidget(QtWidgets.QLabel(label), i // 4, 2 * (i % 4))
            grid.addWidget(w, i // 4, 2 * (i % 4) + 1)
        self.search_button = QtWidgets.QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        grid.addWidget(self.search_button, 1, 7)
        lay.addLayout(grid)

        self.table = QtWidgets.QTableWidget(0, 0)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        lay.addWidget(self.table, 1)

        bottom = QtWidgets.QHBoxLayout()
        self.force = QtWidgets.QCheckBox("Retrieve again (even if cached)")
        self.open_after = QtWidgets.QCheckBox("Open when done")
        self.open_after.setChecked(True)
        self.retrieve_button = QtWidgets.QPushButton("Retrieve")
        self.retrieve_button.clicked.connect(self.retrieve_selected)
        self.all_visits_button = QtWidgets.QPushButton("All visits of patient")
        self.all_visits_button.setToolTip("Every study of the selected row's patient")
        self.all_visits_button.clicked.connect(self.retrieve_all_visits)
        self.send_button = QtWidgets.QPushButton("Send files…")
        self.send_button.setToolTip("C-STORE / STOW-RS result files (DICOM SR, Secondary Capture) into their study")
        self.send_button.clicked.connect(self._send_dialog)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        for w in (self.force, self.open_after):
            bottom.addWidget(w)
        bottom.addStretch(1)
        for w in (self.progress, self.cancel_button, self.send_button, self.all_visits_button, self.retrieve_button):
            bottom.addWidget(w)
        lay.addLayout(bottom)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        self._fill_nodes()
        self._update_buttons()
        self._hint_if_no_nodes()

    # ------------------------------------------------------------------ nodes
    @property
    def cache(self) -> SeriesCache:
        if self._cache is None:
            self._cache = SeriesCache()
        return self._cache

    def _fill_nodes(self, select: str | None = None) -> None:
        current = select or self.node_combo.currentText()
        self.node_combo.blockSignals(True)
        self.node_combo.clear()
        for n in self.nodes:
            self.node_combo.addItem(n.name, n)
            self.node_combo.setItemData(self.node_combo.count() - 1, n.describe(), Qt.ItemDataRole.ToolTipRole)
        i = self.node_combo.findText(current) if current else -1
        self.node_combo.setCurrentIndex(max(i, 0) if self.nodes else -1)
        self.node_combo.blockSignals(False)

    def node(self) -> RemoteNode | None:
        return self.node_combo.currentData()

    def set_nodes(self, nodes: list[RemoteNode], select: str | None = None) -> None:
        """Replace the node list and announce it (`nodes_changed`: `PacsUI` stores it in the preferences)."""
        self.show_nodes(nodes, select)
        self.nodes_changed.emit(list(self.nodes))

    def show_nodes(self, nodes: list[RemoteNode], select: str | None = None) -> None:
        """Show this node list (the stored one changed); keeps the selected node where it still exists."""
        self.nodes = list(nodes)
        self._fill_nodes(select)
        self._update_buttons()
        self._hint_if_no_nodes()

    def _hint_if_no_nodes(self) -> None:
        if not self.nodes and not self._busy():
            self.status.setText("No PACS node yet: Edit nodes… (Edit → Preferences… → PACS) adds one.")
            self.status.setStyleSheet("")

    def _on_edit_nodes(self) -> None:
        if self.edit_nodes is not None:
            self.edit_nodes()

    # ------------------------------------------------------------------ jobs
    def _busy(self) -> bool:
        try:
            return self.job is not None and self.job.isRunning()
        except RuntimeError:  # the window reaped (deleted) the finished job
            return False

    def _update_buttons(self) -> None:
        has_node = self.node() is not None
        busy = self._busy()
        selected = bool(self.selected_records())
        for b in (self.test_button, self.search_button, self.send_button):
            b.setEnabled(has_node and not busy)
        self.retrieve_button.setEnabled(has_node and not busy and selected)
        self.all_visits_button.setEnabled(has_node and not busy and selected)
        self.cancel_button.setEnabled(busy)

    def _start(self, what: str, fn, on_success) -> Job | None:
        node = self.node()
        if node is None:
            self._show_error("Add a PACS node first (Edit nodes…, or Edit → Preferences… → PACS).")
            return None
        if self._busy():
            return None
        job = Job(_guarded(fn), kind=f"pacs-{what}", parent=self)
        self.job = job
        job.progressed.connect(self._on_progress)

        def succeeded(_rid, result):
            self._finish()
            if isinstance(result, _Failed):
                self._show_error(result.message)
            else:
                on_success(result)

        job.succeeded.connect(succeeded)
        job.failed.connect(lambda _rid, msg: (self._finish(), self._show_error(msg.split("\n\n")[0])))
        job.cancelled.connect(lambda _rid: (self._finish(), self.status.setText(f"{what.capitalize()} cancelled.")))
        if self._track is not None:
            self._track(job)
        self.status.setText(f"{what.capitalize()} on {node.describe()}…")
        self.status.setStyleSheet("")
        job.start()
        self._update_buttons()
        return job

    def _on_progress(self, _rid: int, done: int, total: int) -> None:
        self.progress.setVisible(True)
        self.progress.setRange(0, max(total, 0))
        self.progress.setValue(done)

    def _finish(self) -> None:
        self.progress.setVisible(False)
        QtCore.QTimer.singleShot(0, self._update_buttons)  # the thread's isRunning() turns False just after

    def _show_error(self, message: str) -> None:
        self.status.setText(message)
        self.status.setStyleSheet("color: #c0392b")
        self.failed.emit(message)

    def cancel(self) -> None:
        if self._busy():
            self.job.cancel()

    def wait(self, timeout_ms: int = 30000) -> None:
        if self._busy():
            self.job.wait(timeout_ms)

    # ------------------------------------------------------------------ actions
    def test_node(self) -> Job | None:
        from discviewer.pacs import echo

        node = self.node()

        def done(seconds):
            self.status.setText(f"{node.name}: OK ({seconds * 1000:.0f} ms)")
            self.echo_finished.emit(float(seconds))
        return self._start("test", lambda p, c: echo(node), done)

    def query_filter(self) -> QueryFilter:
        return QueryFilter(patient_id=self.patient_id.text(), patient_name=self.patient_name.text(),
                           date_from=_date(self.date_from.text()), date_to=_date(self.date_to.text()),
                           modality=self.modality.text(), description=self.description.text())

    def search(self) -> Job | None:
        from discviewer.pacs import find

        node, level = self.node(), self.level.currentText()
        try:
            flt = self.query_filter()
        except ValueError as exc:
            self._show_error(str(exc))
            return None
        return self._start("search", lambda p, c: find(node, level, flt, cancel=c), self.set_records)

    COLUMNS = {
        "patient": (("Patient ID", "patient_id"), ("Name", "patient_name"), ("Birth date", "birth_date"),
                    ("Sex", "sex"), ("Studies", "n_studies")),
        "study": (("Patient ID", "patient_id"), ("Name", "patient_name"), ("Date", "study_date"),
                  ("Description", "description"), ("Modalities", "modalities"), ("Series", "n_series"),
                  ("Images", "n_instances"), ("Accession", "accession")),
        "series": (("Patient ID", "patient_id"), ("Date", "study_date"), ("#", "series_number"),
                   ("Modality", "modality"), ("Description", "description"), ("Images", "n_instances")),
    }

    def set_records(self, records: list) -> None:
        self.records = list(records)
        level = records[0].level if records else self.level.currentText()
        cols = self.COLUMNS[level]
        self.table.clear()
        self.table.setColumnCount(len(cols) + 1)
        self.table.setHorizontalHeaderLabels([c for c, _ in cols] + ["Cached"])
        self.table.setRowCount(len(records))
        for r, rec in enumerate(records):
            for c, (_, attr) in enumerate(cols):
                v = getattr(rec, attr)
                text = ("/".join(v) if isinstance(v, tuple) else _fmt_date(v) if attr.endswith("date")
                        else "" if v is None else str(v))
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
            self.table.setItem(r, len(cols), QtWidgets.QTableWidgetItem(self._cached_text(rec)))
        self.table.resizeColumnsToContents()
        self.status.setText(f"{len(records)} {level} result{'s' if len(records) != 1 else ''}.")
        self.status.setStyleSheet("")
        self.search_finished.emit(list(records))
        self._update_buttons()

    def _cached_text(self, rec) -> str:
        if isinstance(rec, SeriesRecord):
            return "yes" if self.cache.has_series(rec.study_uid, rec.series_uid) else ""
        if isinstance(rec, StudyRecord):
            n = len(self.cache.study_series(rec.study_uid))
            return "" if not n else "yes" if rec.n_series is not None and n >= rec.n_series else f"{n} series"
        return ""

    def _refresh_cached(self) -> None:
        col = self.table.columnCount() - 1
        for r, rec in enumerate(self.records):
            if col >= 0 and r < self.table.rowCount():
                self.table.setItem(r, col, QtWidgets.QTableWidgetItem(self._cached_text(rec)))

    def selected_records(self) -> list:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.records[r] for r in rows if r < len(self.records)]

    def select_rows(self, rows) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.MultiSelection)
        for r in rows:
            self.table.selectRow(r)
        self.table.setSelectionMode(mode)

    def _retrieve(self, fn) -> Job | None:
        def done(result):
            self.last_result = result
            n, s = len(result.retrieved), len(result.skipped)
            self.status.setText(f"Retrieved {n} series" + (f", {s} already in the cache" if s else "") + ".")
            self._refresh_cached()
            self.retrieve_finished.emit(result)
            if self.open_after.isChecked() and self.open_paths is not None and result.paths:
                self.open_paths(result.paths)
        return self._start("retrieve", fn, done)

    def retrieve_selected(self) -> Job | None:
        from discviewer.pacs import retrieve

        node, items, force, cache = self.node(), self.selected_records(), self.force.isChecked(), self.cache
        if not items:
            self._show_error("Select the studies or series to retrieve.")
            return None
        return self._retrieve(lambda p, c: retrieve(node, items, cache, force=force, progress=p, cancel=c))

    def retrieve_all_visits(self) -> Job | None:
        from discviewer.pacs import retrieve_patient

        node, force, cache = self.node(), self.force.isChecked(), self.cache
        items = self.selected_records()
        pids = {getattr(r, "patient_id", "") for r in items} - {""}
        if len(pids) != 1:
            self._show_error("Select rows of one patient (with a Patient ID) to retrieve all their visits.")
            return None
        pid = pids.pop()
        return self._retrieve(lambda p, c: retrieve_patient(node, pid, cache, force=force, progress=p, cancel=c))

    def _send_dialog(self) -> None:
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(self, "Send result files to the PACS", "",
                                                          "DICOM (*.dcm);;All files (*)")
        if paths:
            self.send_files(paths)

    def send_files(self, paths) -> Job | None:
        from discviewer.pacs import send

        node, paths = self.node(), [str(p) for p in paths]

        def done(result):
            self.status.setText(f"Sent {len(result.stored)} file{'s' if len(result.stored) != 1 else ''} "
                                f"to {node.name}.")
            self.send_finished.emit(result)
        return self._start("send", lambda p, c: send(node, paths, progress=p, cancel=c), done)

    def done(self, r: int) -> None:  # noqa: D401 — Qt API: closing cancels a running job
        self.cancel()
        super().done(r)


class PacsUI(QtCore.QObject):
    """File → Query/Retrieve… of a MainWindow; its nodes are the window's preferences (`pacs_nodes`)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.dialog: QueryRetrieveDialog | None = None
        self.cache: SeriesCache | None = None  # None: the default cache folder (created on first use)
        self.action = QtGui.QAction("Query/Retrieve…", window)
        self.action.setToolTip("Search a PACS, retrieve studies into the local cache and open them")
        self.action.triggered.connect(self.open_dialog)
        window.addAction(self.action)
        if hasattr(window, "actions_by_name"):
            window.actions_by_name["pacs_query"] = self.action
        menu = self._file_menu()
        if menu is not None:
            menu.insertAction(self._after_open(menu), self.action)

    def _file_menu(self):
        for act in self.window.menuBar().actions():
            if act.menu() is not None and act.text().replace("&", "") == "File":
                return act.menu()
        return None

    @staticmethod
    def _after_open(menu):
        """Insert after the last "Open…" entry (before the next action), else at the end."""
        acts = menu.actions()
        idx = max((i for i, a in enumerate(acts) if a.text().replace("&", "").startswith("Open")), default=-1)
        return acts[idx + 1] if 0 <= idx + 1 < len(acts) else None

    def _prefs_ui(self):
        return getattr(self.window, "prefs_ui", None)

    def _store(self):
        from discviewer.ui.preferences_ui import PreferencesStore

        return PreferencesStore(getattr(self.window, "settings", None))

    def nodes(self) -> list[RemoteNode]:
        """The configured nodes (the preferences in force; the stored ones for a window without them)."""
        ui = self._prefs_ui()
        return ui.pacs_nodes() if ui is not None else self._store().nodes()

    def save_nodes(self, nodes) -> None:
        """Store the node list in the preferences (ValueError for an invalid node)."""
        ui = self._prefs_ui()
        if ui is not None:
            ui.set_pacs_nodes(nodes)
            return
        store = self._store()
        prefs = store.load()
        prefs.pacs_nodes = [n.validated().to_dict() for n in nodes]
        store.save(prefs)

    def edit_nodes(self):
        """Edit → Preferences… on its PACS page (the node box follows its OK)."""
        ui = self._prefs_ui()
        return ui.open_dialog("PACS") if ui is not None else None

    def _on_preferences_applied(self, _prefs) -> None:
        if self.dialog is not None:
            self.dialog.show_nodes(self.nodes())

    def open_dialog(self) -> QueryRetrieveDialog:
        if self.dialog is None:
            w = self.window
            ui = self._prefs_ui()
            self.dialog = QueryRetrieveDialog(w, nodes=self.nodes(), cache=self.cache,
                                              open_paths=getattr(w, "open_paths", None),
                                              track=getattr(w, "_track", None),
                                              edit_nodes=self.edit_nodes if ui is not None else None)
            self.dialog.nodes_changed.connect(self.save_nodes)
            if ui is not None:
                ui.applied.connect(self._on_preferences_applied)
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

"""`MainWindow`: study browser on the left, the reading area (VTK viewports) on the right.

Flow: `open_path(s)` scans in a background `Job` behind a window-modal `QProgressDialog`
(files done/total, Cancel works; the event loop keeps running); the browser fills, problems
are counted in the status bar and listed in the browser, and a `Study` (patients → visits →
series with roles) is built. Selecting a series shows it (middle slice first, then the whole
series from a background job); "Hang visits" puts every visit side by side, linked. The
`ReviewController` owns what the reading area shows; this window owns menus, toolbar, status
bar and scanning. A result is applied only if its job is still the current one.

The scan and load functions are injectable (`scan_fn(path, *, progress, cancel)`,
`load_fn(candidate, *, progress)`); by default they are `discviewer.io.scan` / `load`.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

import discviewer
from discviewer.display import format_number
from discviewer.ui.project_controller import ProjectController
from discviewer.ui.recent import RecentPaths
from discviewer.ui.review_controller import ReviewController
from discviewer.ui.review_panel import ReviewPanel
from discviewer.ui.study_browser import StudyBrowserPanel, candidate_label
from discviewer.ui.workers import Job, LoadFn, ScanFn, default_load, make_scan_job
from discviewer.workspace.data import EXTENSION

Qt = QtCore.Qt
# half-size (x: left-right, y: anterior-posterior, z: superior-inferior, mm) of the disc-level box:
# one disc with the adjacent halves of its two vertebral bodies
DISC_ROI_HALF_MM = (20.0, 30.0, 25.0)
DISC_LEVELS = ("T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")


def about_text() -> str:
    return (f"<h3>discviewer {discviewer.__version__}</h3>"
            "<p>Serial lumbar-spine MRI review.</p>"
            f"<p><b>{discviewer.RESEARCH_USE_NOTICE}.</b> Not a medical device; "
            "results must not be used for clinical decisions.</p>")


class MainWindow(QtWidgets.QMainWindow):
    """The discviewer main window."""

    scan_finished = QtCore.Signal(object)  # ScanResult, after it was applied to the browser
    scan_failed = QtCore.Signal(str)
    volume_shown = QtCore.Signal(object)  # Volume, after it is displayed
    load_failed = QtCore.Signal(str)

    def __init__(self, *, scan_fn: ScanFn | None = None, load_fn: LoadFn | None = None,
                 auto_select: bool = True, settings: QtCore.QSettings | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("discviewer")
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self._scan_fn = scan_fn
        self._load_fn = load_fn
        self.auto_select = auto_select
        self._jobs: set[Job] = set()
        self._scan_job: Job | None = None
        self.scan_result: Any = None
        self.current_candidate: Any = None  # candidate whose volume is displayed
        self.progress_dialog: QtWidgets.QProgressDialog | None = None
        self._message_box: QtWidgets.QMessageBox | None = None
        self.settings = settings if settings is not None else QtCore.QSettings()
        self.recent = RecentPaths(self.settings)

        self.study = None
        self.project = ProjectController(self)
        self.browser = StudyBrowserPanel()
        self.review = ReviewPanel()
        self.review.setAcceptDrops(False)
        self.controller = ReviewController(self.review, load_fn=self.project.wrap_load(load_fn or default_load),
                                           parent=self)
        self.volume_dock: QtWidgets.QDockWidget | None = None
        self.registration_panel = None
        self.volume_view = None
        splitter = QtWidgets.QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.browser)
        splitter.addWidget(self.review)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([440, 840])
        self.splitter = splitter
        self.setCentralWidget(splitter)

        self._build_status_bar()
        self._build_menus()
        self._build_review_actions()

        self.browser.series_selected.connect(self._on_series_selected)
        self.review.cursor_moved.connect(self._on_cursor_moved)
        self.review.slice_changed.connect(self._on_slice_changed)
        self.review.active_changed.connect(self._on_active_changed)
        self.controller.status.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.controller.volume_shown.connect(self._on_volume_shown)
        self.controller.load_failed.connect(self._on_load_failed)
        self.controller.mode_changed.connect(self._on_mode_changed)
        self.controller.load_progress.connect(self._on_load_progress)
        self.project.title_changed.connect(self._on_title_changed)
        self.project.history_changed.connect(self._update_edit_actions)
        self.project.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.project.saved.connect(lambda p: self.recent.add(p))
        self.project.collect_settings = lambda: {"link_level": self.controller.link_level}
        self.project.prepare_save = self.wait_for_indexing  # a project is never saved without its source index
        self._on_title_changed(self.project.title())
        self._update_edit_actions()
        from discviewer.ui.measure_ui import MeasureUI

        self.measure = MeasureUI(self)
        from discviewer.ui.reading_ui import ReadingUI

        self.reading = ReadingUI(self)  # the Reading menu (blinded reader studies)
        from discviewer.ui.export_ui import ExportUI

        self.export = ExportUI(self)  # File → Export (images, montages, sequences; rendered offscreen)
        from discviewer.ui.pacs_ui import PacsUI

        self.pacs = PacsUI(self)  # File → Query/Retrieve…
        from discviewer.ui.preferences_ui import PreferencesUI

        self.prefs_ui = PreferencesUI(self)  # Edit → Preferences…; restores and applies the stored preferences
        from discviewer.ui.help_ui import HelpUI

        self.help = HelpUI(self)  # F1 cheat sheet, About; keep last: it reads every action

    @property
    def slice_view(self):
        """The active viewport's slice view (None before anything is shown)."""
        return self.review.active_view()

    # ------------------------------------------------------------------ construction
    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.cursor_label = QtWidgets.QLabel("")
        self.cursor_label.setMinimumWidth(340)
        self.slice_label = QtWidgets.QLabel("")
        self.series_label = QtWidgets.QLabel("")
        self.problems_label = QtWidgets.QLabel("")
        self.mode_label = QtWidgets.QLabel("")
        self.mode_label.setStyleSheet("color: #d04040; font-weight: bold;")
        self.load_progress = QtWidgets.QProgressBar()
        self.load_progress.setMaximumWidth(140)
        self.load_progress.setTextVisible(False)
        self.load_progress.hide()
        for w in (self.load_progress, self.mode_label, self.cursor_label, self.slice_label, self.series_label,
                  self.problems_label):
            if isinstance(w, QtWidgets.QLabel):
                w.setContentsMargins(10, 0, 10, 0)
            sb.addPermanentWidget(w)
        self.cursor_label.setToolTip("Voxel under the mouse: centre in patient coordinates (LPS, mm), "
                                     "index [column, row, slice] and stored value")
        self.problems_label.setStyleSheet("color: #b35c00;")

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.new_project_action = file_menu.addAction("&New project", self.new_project)
        self.new_project_action.setShortcut(QtGui.QKeySequence.StandardKey.New)
        self.new_project_action.setToolTip("Close this project (asking about unsaved work) and start an empty one")
        self.open_project_action = file_menu.addAction("Open &project…", self.choose_project)
        self.open_project_action.setShortcut(QtGui.QKeySequence("Ctrl+Shift+O"))
        self.open_project_action.setToolTip(f"Open a discviewer project file (*{EXTENSION})")
        self.open_folder_action = file_menu.addAction("Open &folder…", self.choose_folder)
        self.open_folder_action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        self.open_folder_action.setToolTip("Scan a folder of DICOM files (or NIfTI, DICOMDIR) as a new project")
        self.open_file_action = file_menu.addAction("Open f&ile…", self.choose_file)
        self.open_file_action.setToolTip("Open one DICOM or NIfTI file as a new project")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        self.save_action = file_menu.addAction("&Save project", self.project.save)
        self.save_action.setShortcut(QtGui.QKeySequence.StandardKey.Save)
        self.save_action.setToolTip("Save the project (labels, roles, transforms, annotations, readings) to its file")
        self.save_as_action = file_menu.addAction("Save project &as…", lambda: self.project.save_as())
        self.save_as_action.setShortcut(QtGui.QKeySequence("Ctrl+Shift+S"))
        self.save_as_action.setToolTip("Save the project to a new file")
        self.relink_action = file_menu.addAction("Re&link sources…", self.choose_relink_folder)
        self.relink_action.setToolTip("Point the project to the new folder of source files that were moved")
        file_menu.addSeparator()
        self.quit_action = file_menu.addAction("&Quit", self.close)
        self.quit_action.setShortcut(QtGui.QKeySequence.StandardKey.Quit)
        self.quit_action.setToolTip("Close discviewer (asking about unsaved work)")
        edit_menu = self.menuBar().addMenu("&Edit")
        self.undo_action = edit_menu.addAction("&Undo", self.project.undo)
        self.undo_action.setShortcut(QtGui.QKeySequence.StandardKey.Undo)
        self.undo_action.setToolTip("Undo the last change to the project")
        self.redo_action = edit_menu.addAction("&Redo", self.project.redo)
        self.redo_action.setShortcuts([QtGui.QKeySequence.StandardKey.Redo, QtGui.QKeySequence("Ctrl+Y")])
        self.redo_action.setToolTip("Redo the change last undone")
        help_menu = self.menuBar().addMenu("&Help")
        self.help_menu = help_menu
        self.about_action = help_menu.addAction("&About discviewer", self.show_about)

    # ------------------------------------------------------------------ menu actions
    def choose_folder(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open folder with DICOM files")
        if path:
            self.open_path(path)

    def choose_project(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open project", "",
                                                        f"discviewer project (*{EXTENSION});;All files (*)")
        if path:
            self.open_project(path)

    def choose_relink_folder(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder that now holds the project's source files")
        if path:
            self.relink_sources(path)

    def choose_file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open DICOM file", "", "DICOM files (*.dcm *.DCM *.ima *.IMA);;All files (*)")
        if path:
            self.open_path(path)

    def _fill_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        paths = self.recent.paths()
        for i, p in enumerate(paths):
            act = menu.addAction(f"&{i + 1}  {p}" if i < 9 else p)
            act.setData(p)
            act.triggered.connect(lambda _=False, path=p: self.open_paths([path]))
        if not paths:
            menu.addAction("(none yet)").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list", self.recent.clear)

    def show_about(self) -> None:
        QtWidgets.QMessageBox.about(self, "About discviewer", about_text())

    # ------------------------------------------------------------------ drag and drop
    @staticmethod
    def _local_paths(mime: QtCore.QMimeData) -> list[str]:
        if not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]

    def dragEnterEvent(self, ev: QtGui.QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if self._local_paths(ev.mimeData()):
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dragMoveEvent(self, ev: QtGui.QDragMoveEvent) -> None:  # noqa: N802 - Qt API
        if self._local_paths(ev.mimeData()):
            ev.acceptProposedAction()

    def dropEvent(self, ev: QtGui.QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = self._local_paths(ev.mimeData())
        if paths:
            ev.acceptProposedAction()
            self.open_paths(paths)

    # ------------------------------------------------------------------ scanning
    def open_path(self, path: str | os.PathLike) -> Job:
        """Scan one folder or file in the background; returns the scan job."""
        return self.open_paths([path])

    def open_paths(self, paths: Sequence[str | os.PathLike]) -> Job | None:
        """Open folders/files as a new (untitled) project: scan them in the background (results
        merged); any earlier scan becomes stale. A project file (.dvw) opens that project instead.
        None if the user cancelled (unsaved changes)."""
        paths = [os.fspath(p) for p in paths]
        projects = [p for p in paths if p.lower().endswith(EXTENSION)]
        if projects:
            return self.open_project(projects[0])
        if not self.project.maybe_save("opening another study"):
            return None
        self._opening_project = False
        return self._start_scan(paths, self._scan_fn)

    def _start_scan(self, paths: list[str], scan_fn, *, label: str | None = None, remember: bool = True) -> Job:
        self.cancel_scan()
        if remember:
            for p in reversed(paths):
                self.recent.add(p)
        job = make_scan_job(paths, scan_fn, parent=self)
        job.progressed.connect(self._on_scan_progress)
        job.succeeded.connect(self._on_scan_succeeded)
        job.failed.connect(self._on_scan_failed)
        job.cancelled.connect(self._on_scan_cancelled)
        self._track(job)
        self._scan_job = job

        name = label or ", ".join(os.path.basename(p.rstrip("/\\")) or p for p in paths)
        dlg = QtWidgets.QProgressDialog(f"Scanning {name}…", "Cancel", 0, 0, self)
        dlg.setWindowTitle("discviewer — scanning")
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(300)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.canceled.connect(self.cancel_scan)
        self.progress_dialog = dlg
        self._scan_name = name
        self.statusBar().showMessage(f"Scanning {name}…")
        job.start()
        return job

    def cancel_scan(self) -> None:
        """Cancel the running scan (if any); its result, partial or not, is dropped."""
        job, self._scan_job = self._scan_job, None
        if job is not None:
            job.cancel()
            self.statusBar().showMessage("Scan cancelled", 5000)
        self._close_progress()

    def _close_progress(self) -> None:
        dlg, self.progress_dialog = self.progress_dialog, None
        if dlg is not None:
            dlg.blockSignals(True)
            dlg.close()
            dlg.deleteLater()

    def is_scanning(self) -> bool:
        return self._scan_job is not None

    def _is_current_scan(self, request_id: int) -> bool:
        return self._scan_job is not None and self._scan_job.request_id == request_id

    def _on_scan_progress(self, request_id: int, done: int, total: int) -> None:
        if not self._is_current_scan(request_id) or self.progress_dialog is None:
            return
        dlg = self.progress_dialog
        dlg.setMaximum(max(total, 1))
        dlg.setValue(min(done, max(total, 1)))
        dlg.setLabelText(f"Scanning {self._scan_name}…\n{done} of {total} files")

    def _on_scan_succeeded(self, request_id: int, result: Any) -> None:
        if not self._is_current_scan(request_id):
            return
        self._scan_job = None
        self._close_progress()
        self.apply_scan_result(result)

    def _on_scan_failed(self, request_id: int, message: str) -> None:
        if not self._is_current_scan(request_id):
            return
        self._scan_job = None
        self._close_progress()
        summary = message.split("\n\n", 1)[0]
        self.statusBar().showMessage(f"Scan failed: {summary}")
        self._show_error("Could not scan", summary, message)
        self.scan_failed.emit(message)

    def _on_scan_cancelled(self, request_id: int) -> None:
        if self._is_current_scan(request_id):
            self._scan_job = None
            self._close_progress()

    def apply_scan_result(self, result: Any) -> None:
        """Show a `ScanResult` in the browser (and select the first series if `auto_select`): as a new
        untitled project, or — when the scan was of an opened project's sources — in that project."""
        from discviewer.study import Study

        self.scan_result = result
        self.study = Study.from_scan(result)
        if getattr(self, "_opening_project", False):
            self._opening_project = False
            ws = self.project.workspace
        else:
            ws = self.project.new_project()
            self._start_indexing(result)
        ws.attach_study(self.study)
        self.controller.set_study(self.study, ws.transforms)
        self.measure.study_attached()
        level = ws.settings.get("link_level")
        if level and level in ws.transforms:
            self.controller.set_link_level(level)
        self.current_candidate = None
        self.browser.set_study(self.study, result)
        n_prob = len(result.problems)
        self.problems_label.setText(f"Problems: {n_prob}" if n_prob else "")
        self.problems_label.setToolTip("\n".join(str(p) for p in result.problems[:30]))
        n = len(result.series)
        self.statusBar().showMessage(
            f"Found {n} series" + (f", {n_prob} unusable file{'s' if n_prob != 1 else ''}" if n_prob else ""),
            8000)
        self.scan_finished.emit(result)
        if self.auto_select:
            first = self.browser.first_loadable()
            if first is not None:
                self.browser.select_candidate(first)

    # ------------------------------------------------------------------ projects
    def new_project(self) -> bool:
        """Close the current project (asking about unsaved work) and start an empty one."""
        if not self.project.maybe_save("starting a new project"):
            return False
        self.cancel_scan()
        self.project.new_project()
        self.scan_result = None
        self.study = None
        self.controller.set_study(None)
        self.browser.clear()
        self.current_candidate = None
        return True

    def open_project(self, path: str | os.PathLike) -> Job | None:
        """Open a project file: read it (lock, recovery, damaged-file handling), check its source files,
        then scan them in the background and show the study with the stored labels, roles,
        transforms and annotations. None if nothing is scanned (cancelled, failed or no sources)."""
        if not self.project.maybe_save("opening another project"):
            return None
        self.cancel_scan()
        ws = self.project.load_project(path)
        if ws is None:
            return None
        self.recent.add(os.path.abspath(os.fspath(path)))
        self.controller.set_study(None, ws.transforms)
        return self._scan_project_sources()

    def open_recovered(self) -> Job | None:
        """Show the project `ProjectController.offer_recovery` just recovered (scan its sources)."""
        ws = self.project.workspace
        self.controller.set_study(None, ws.transforms)
        return self._scan_project_sources()

    def _scan_project_sources(self) -> Job | None:
        from discviewer.workspace.sources import verify_sources

        ws = self.project.workspace
        if not ws.sources:
            self.statusBar().showMessage("The project has no source files yet: open a folder", 6000)
            return None
        report = verify_sources(ws.sources)
        self.source_report = report
        if report.missing or report.changed:
            choice = self.project.ask("warning", "Source files moved or changed", report.message(),
                                      ["Relink…", "Continue"])
            if choice == "Relink…":
                folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder that now holds the source files")
                if folder:
                    return self.relink_sources(folder)
        paths = [s.path for s in ws.sources if os.path.exists(s.path)]
        if not paths:
            return None
        self._opening_project = True
        return self._start_scan([paths[0]], _files_scan_fn(self._scan_fn, paths),
                                label=f"{len(paths)} source files of {os.path.basename(ws.path or 'project')}",
                                remember=False)

    def relink_sources(self, folder: str | os.PathLike) -> Job | None:
        """Point the project's missing source files to `folder` (matched by relative path or name
        and size, accepted only with the same SHA-256), then re-scan them."""
        from discviewer.workspace.sources import relink

        ws = self.project.workspace
        res = relink(ws.sources, os.fspath(folder))
        if res.relinked:
            ws.sources = list(res.files)
            ws.log("relink sources", os.fspath(folder), "", f"{res.relinked} file(s)")
            ws.mark_modified("sources")
        msg = f"Relinked {res.relinked} file(s)"
        if res.unresolved:
            msg += f"; {len(res.unresolved)} still missing (e.g. {res.unresolved[0].path})"
        self.statusBar().showMessage(msg, 10000)
        paths = [s.path for s in ws.sources if os.path.exists(s.path)]
        if not paths:
            return None
        self._opening_project = True
        return self._start_scan([paths[0]], _files_scan_fn(self._scan_fn, paths), label="relinked sources",
                                remember=False)

    def _start_indexing(self, result: Any) -> None:
        """Hash the scanned files as the new project's source index, in the background."""
        ws = self.project.workspace
        job = Job(lambda progress, cancel: self.project.index_sources(result, progress=progress, cancel=cancel)
                  if ws is self.project.workspace else None, kind="index", parent=self)
        self._track(job)
        self._index_job = job
        job.start()

    def wait_for_indexing(self, timeout_ms: int = 60000) -> None:
        job, self._index_job = getattr(self, "_index_job", None), None
        if job is not None:
            try:
                job.wait(timeout_ms)
            except RuntimeError:  # already finished and deleted
                pass

    def _on_title_changed(self, title: str) -> None:
        self.setWindowTitle(title)
        self.setWindowModified(self.project.workspace.is_dirty)
        self.save_action.setEnabled(True)

    def _update_edit_actions(self) -> None:
        h = self.project.workspace.history
        self.undo_action.setEnabled(h.can_undo())
        self.redo_action.setEnabled(h.can_redo())
        self.undo_action.setText(f"&Undo {h.undo_text()}".rstrip())
        self.redo_action.setText(f"&Redo {h.redo_text()}".rstrip())
        self.setWindowModified(self.project.workspace.is_dirty)

    # ------------------------------------------------------------------ review actions
    def _build_review_actions(self) -> None:
        tb = self.addToolBar("Review")
        tb.setObjectName("review-toolbar")
        tb.setMovable(False)
        menu = QtWidgets.QMenu("&View", self)
        self.menuBar().insertMenu(self.help_menu.menuAction(), menu)
        self.actions_by_name: dict[str, QtGui.QAction] = {}

        def act(name, text, slot, shortcut=None, checkable=False, tip="", toolbar=True):
            a = QtGui.QAction(text, self)
            if shortcut:
                a.setShortcut(QtGui.QKeySequence(shortcut))
                a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.setCheckable(checkable)
            a.setToolTip(f"{tip or text} ({shortcut})" if shortcut else (tip or text))
            a.triggered.connect(slot)
            self.addAction(a)
            menu.addAction(a)
            if toolbar:
                tb.addAction(a)
            self.actions_by_name[name] = a
            return a

        act("hang", "Hang visits", lambda: self.controller.hang(self._chosen_protocol()), "H",
            tip="All visits of this patient side by side, linked")
        self.protocol_combo = QtWidgets.QComboBox()
        for p in self.controller.protocols:
            self.protocol_combo.addItem(p.name, p)
        self.protocol_combo.setToolTip("Hanging protocol (resources/hanging/*.json)")
        tb.addWidget(self.protocol_combo)
        tb.addSeparator()
        act("mpr", "MPR", lambda: self.controller.show_mpr(), "M", tip="Sagittal, coronal and axial of this series")
        for plane, text, key in (("sag", "Sag", "Alt+S"), ("cor", "Cor", "Alt+C"), ("ax", "Ax", "Alt+A")):
            act(f"plane_{plane}", text, lambda _=False, p=plane: self.controller.set_plane(p), key,
                tip=f"Show the {text.lower()} plane (reformat where acquired otherwise)")
        act("echoes", "Echoes", lambda: self.controller.show_all_echoes(), "E",
            tip="All echoes of this multi-echo series side by side (one absolute window)")
        self.echo_combo = QtWidgets.QComboBox()
        self.echo_combo.setToolTip("Echo (multi-echo series)")
        self.echo_combo.setEnabled(False)
        self.echo_combo.activated.connect(lambda i: self.controller.set_echo(i))
        tb.addWidget(self.echo_combo)
        tb.addSeparator()
        menu.addSeparator()
        self.link_actions = {}
        for name, text in (("slice", "Link slice"), ("view", "Link zoom/pan"), ("window", "Link W/L")):
            a = act(f"link_{name}", text, lambda on, n=name: self.review.links.set_enabled(n, on),
                    checkable=True, tip=f"{text} across visits", toolbar=False)
            a.setChecked(True)
            self.link_actions[name] = a
        act("link_all", "Link", self._toggle_links, "L", checkable=True,
            tip="Link slice, zoom/pan and window/level across visits").setChecked(True)
        tb.addSeparator()
        act("flicker", "Flicker", self.controller.toggle_flicker, "F",
            tip="Toggle each follow-up with the baseline resampled onto its slices")
        act("difference", "Difference", lambda: self.controller.set_mode(
            "normal" if self.controller.mode == "difference" else "difference"), "D",
            checkable=True, tip="Follow-up − baseline (each in units of its own intensity range)")
        act("overlay", "Overlay", lambda: self.controller.set_mode(
            "normal" if self.controller.mode == "overlay" else "overlay"), "O", checkable=True,
            tip="Follow-up (hot colours) over the baseline resampled onto its slices")
        self.opacity_slider = QtWidgets.QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(50)
        self.opacity_slider.setMaximumWidth(90)
        self.opacity_slider.setToolTip("Overlay opacity")
        self.opacity_slider.valueChanged.connect(lambda v: self.controller.set_overlay_opacity(v / 100.0))
        tb.addWidget(self.opacity_slider)
        act("checkerboard", "Checker", lambda: self.controller.set_mode(
            "normal" if self.controller.mode == "checkerboard" else "checkerboard"), "K", checkable=True,
            tip="Checkerboard of follow-up and baseline (registration check)")
        act("fusion", "Fusion", lambda: self.controller.set_mode(
            "normal" if self.controller.mode == "fusion" else "fusion"), "Shift+F", checkable=True,
            tip="Colour fusion: baseline grey, follow-up magenta (registration check)")
        act("prev_visit", "◀ Visit", lambda: self.controller.step_visit(-1), "[", tip="Previous visit")
        act("next_visit", "Visit ▶", lambda: self.controller.step_visit(1), "]", tip="Next visit")
        tb.addSeparator()
        act("linear", "Smooth", self._toggle_interpolation, checkable=True,
            tip="Linear interpolation (off: nearest, shows the real voxels)").setChecked(True)
        act("crosshair", "Crosshair", self._toggle_scheme, "X", checkable=True,
            tip="Left-drag places a crosshair (research scheme) instead of window/level")
        act("volume3d", "3D", self.show_3d, "Ctrl+3", tip="Volume rendering of the active series")
        tb.addSeparator()
        act("register", "Register", self.register_visits, "Ctrl+R",
            tip="Register every visit to baseline (rigid, on the T2 sag); linked views then follow")
        self.level_combo = QtWidgets.QComboBox()
        self.level_combo.setToolTip("Link visits through the whole-volume registration or a disc level's own")
        self.level_combo.activated.connect(lambda i: self.controller.set_link_level(self.level_combo.itemText(i)))
        tb.addWidget(self.level_combo)
        self.controller.link_levels_changed.connect(self._fill_level_combo)
        self._fill_level_combo()
        act("register_here", "Register here", lambda: self.register_here(), "Ctrl+Shift+R", toolbar=False,
            tip="Disc-level registration: a box around the active view's position (one disc and its two "
                "vertebrae) instead of the whole volume")
        for name, text, key, kw in (("nudge_left", "Nudge left", "Shift+Left", dict(du=-0.5)),
                                    ("nudge_right", "Nudge right", "Shift+Right", dict(du=0.5)),
                                    ("nudge_up", "Nudge up", "Shift+Up", dict(dv=0.5)),
                                    ("nudge_down", "Nudge down", "Shift+Down", dict(dv=-0.5)),
                                    ("rotate_ccw", "Rotate +0.5°", "Ctrl+Shift+Left", dict(rotate_deg=0.5)),
                                    ("rotate_cw", "Rotate −0.5°", "Ctrl+Shift+Right", dict(rotate_deg=-0.5))):
            act(name, text, lambda _=False, k=kw: self.controller.nudge(**k), key, toolbar=False,
                tip="Manual registration correction of the active follow-up")
        menu.addSeparator()
        wl = menu.addMenu("Window/level presets")
        for name, rel in (("Auto (1st–99th percentile)", None), ("Full range", "full"),
                          ("Narrow (half range)", (0.5, 0.5)), ("Wide (1.5× range)", (0.5, 1.5))):
            wl.addAction(name, lambda r=rel: self._apply_wl_preset(r)).setToolTip(
                f"Window/level of the active view: {name[0].lower()}{name[1:]}, relative to its intensities")

    def _chosen_protocol(self):
        return self.protocol_combo.currentData()

    def _toggle_links(self, on: bool) -> None:
        self.review.links.set_all(on)
        for a in self.link_actions.values():
            a.setChecked(on)
        self.statusBar().showMessage("Visits linked" if on else "Visits unlinked", 3000)

    def _toggle_interpolation(self, on: bool) -> None:
        for f in self.review.view_frames():
            f.view.set_interpolation("linear" if on else "nearest")

    def _toggle_scheme(self, on: bool) -> None:
        for f in self.review.view_frames():
            f.view.set_mouse_scheme("crosshair" if on else "pacs")
            if not on and self.review.mode != "mpr":  # the MPR layout keeps its shared crosshair
                f.view.set_crosshair(None)  # crosshair off: its lines go too

    def _apply_wl_preset(self, rel) -> None:
        from discviewer.linking import IntensityNormalizer

        view = self.slice_view
        if view is None or view.volume is None:
            return
        if rel is None:
            view.set_window(*view.auto_window_values())
        elif rel == "full":
            lo, hi = float(view.volume.array.min()), float(view.volume.array.max())
            view.set_window((lo + hi) / 2, max(hi - lo, 1e-6))
        else:
            view.set_window(*IntensityNormalizer.from_array(view.volume).from_relative(*rel))

    def register_visits(self) -> None:
        """Register every follow-up to baseline; results in the Registration dock."""
        self._registration_dock()
        self.controller.register_visits()

    def _fill_level_combo(self) -> None:
        combo = self.level_combo
        combo.blockSignals(True)
        combo.clear()
        for name in self.controller.transform_sets:
            combo.addItem(name)
        combo.setCurrentText(self.controller.link_level)
        combo.blockSignals(False)

    def register_here(self, level: str | None = None) -> None:
        """Register every visit on a box around the active view's point (in baseline space), as the
        disc level `level` (asked for when not given); the views are then linked through it."""
        if level is None:
            level, ok = QtWidgets.QInputDialog.getItem(self, "Disc-level registration", "Disc level at the view point:",
                                                       list(DISC_LEVELS), DISC_LEVELS.index("L4/L5"), False)
            if not ok:
                return
        view = self.slice_view
        frame = self.review.active
        if view is None or view.volume is None or frame is None:
            self.statusBar().showMessage("Show a series first", 4000)
            return
        p = self.controller.transforms.to_baseline(view.pipeline.point(), frame.visit_id)
        half = np.array(DISC_ROI_HALF_MM)
        roi = tuple(np.concatenate([p - half, p + half]).tolist())
        self._registration_dock()
        self.controller.register_visits(roi=roi, level=level)

    def _registration_dock(self):
        if getattr(self, "registration_panel", None) is None:
            from discviewer.ui.registration_panel import RegistrationPanel

            self.registration_panel = RegistrationPanel(self.controller)
            self.registration_panel.register_requested.connect(self.controller.register_visits)
            dock = QtWidgets.QDockWidget("Registration", self)
            dock.setObjectName("dock-registration")
            dock.setWidget(self.registration_panel)
            self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
            self.registration_dock = dock
        self.registration_dock.show()
        return self.registration_panel

    def show_3d(self) -> None:
        """Open (or update) the 3-D view dock with the active viewport's volume."""
        view = self.slice_view
        if view is None or view.volume is None:
            self.statusBar().showMessage("Show a series first", 4000)
            return
        if self.volume_view is None:
            from discviewer.ui.volume_view import VolumeView

            self.volume_view = VolumeView()
            dock = QtWidgets.QDockWidget("3D", self)
            dock.setObjectName("dock-3d")
            dock.setWidget(self.volume_view)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self.volume_dock = dock
        self.volume_dock.show()
        self.volume_view.set_volume(view.volume)
        self.volume_view.set_point(view.pipeline.point())

    # ------------------------------------------------------------------ loading / showing
    def _on_series_selected(self, candidate: Any) -> None:
        if candidate is self.current_candidate and self.review.mode == "single":
            return
        self.show_candidate(candidate)

    def show_candidate(self, candidate: Any) -> None:
        self.current_candidate = candidate
        self.controller.show_candidate(candidate)
        self.series_label.setText(candidate_label(candidate))
        self._update_echo_combo()

    def load_candidate(self, candidate: Any) -> None:
        """Show `candidate` (kept for callers of the first window's API)."""
        self.show_candidate(candidate)

    def is_loading(self) -> bool:
        return self.controller.is_loading()

    def _update_echo_combo(self) -> None:
        f = self.review.active
        entry = self.controller.locate(f.candidate)[2] if f is not None and f.candidate is not None else None
        combo = self.echo_combo
        combo.blockSignals(True)
        combo.clear()
        if entry is not None and entry.n_echoes > 1:
            for te in entry.echo_times:
                combo.addItem(f"TE {te:g} ms" if te is not None else "echo")
            combo.setCurrentIndex(entry.echoes.index(f.candidate) if f.candidate in entry.echoes else 0)
            combo.setEnabled(True)
        else:
            combo.setEnabled(False)
        combo.blockSignals(False)

    def _on_active_changed(self, frame) -> None:
        if frame is not None and frame.candidate is not None:
            self.series_label.setText(frame.title)
            self._update_echo_combo()
        view = frame.view if frame is not None else None
        if view is not None and view.volume is not None:
            self.slice_label.setText(f"Slice {view.slice_index + 1}/{view.slice_count}")

    def _on_volume_shown(self, frame, volume) -> None:
        if frame is self.review.active:
            warnings = list(getattr(volume, "warnings", []) or [])
            self.series_label.setToolTip("\n".join(warnings))
            msg = f"Showing {frame.title}"
            if warnings:
                msg += f" — {len(warnings)} warning{'s' if len(warnings) != 1 else ''}: {warnings[0]}"
            self.statusBar().showMessage(msg, 8000)
            self._on_active_changed(frame)
        self.volume_shown.emit(volume)

    def _on_load_failed(self, message: str) -> None:
        summary = message.split("\n\n", 1)[0]
        self.statusBar().showMessage(f"Load failed: {summary}")
        self._show_error("Could not load series", summary, message)
        self.load_failed.emit(message)

    def _on_load_progress(self, done: int, total: int) -> None:
        if total <= 0:
            self.load_progress.hide()
            return
        self.load_progress.setRange(0, total)
        self.load_progress.setValue(done)
        self.load_progress.setToolTip(f"Loading series {min(done + 1, total)} of {total}")
        self.load_progress.show()

    def _on_mode_changed(self, mode: str) -> None:
        self.actions_by_name["difference"].setChecked(mode == "difference")
        for name in ("overlay", "checkerboard", "fusion"):
            self.actions_by_name[name].setChecked(mode == name)
        self.mode_label.setText("" if mode == "normal" else mode.upper())

    # ------------------------------------------------------------------ status bar
    def _on_slice_changed(self, frame, k: int) -> None:
        if frame is self.review.active and frame.view is not None:
            self.slice_label.setText(f"Slice {k + 1}/{frame.view.slice_count}")

    def _on_cursor_moved(self, frame, lps, value) -> None:
        self.cursor_label.setText(format_cursor(lps, value, frame.title if frame is not None else ""))

    # ------------------------------------------------------------------ capture
    def grab_with_views(self) -> QtGui.QImage:
        """The window as an image, with every VTK view painted from its own render
        (`QWidget.grab()` cannot read VTK's OpenGL surface — DESIGN.md §5)."""
        img = self.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
        painter = QtGui.QPainter(img)
        try:
            views = [f.view for f in self.review.view_frames() if f.isVisible()]
            if self.volume_view is not None and self.volume_view.isVisible():
                views.append(self.volume_view)
            for v in views:
                rgb = v.capture() if hasattr(v, "capture") else v.grab_image()
                h, w = rgb.shape[:2]
                buf = np.ascontiguousarray(rgb[..., :3])
                q = QtGui.QImage(buf.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()
                target = getattr(v, "vtk_widget", v)
                top_left = target.mapTo(self, QtCore.QPoint(0, 0))
                painter.drawImage(QtCore.QRect(top_left, target.size()), q)
        finally:
            painter.end()
        return img

    # ------------------------------------------------------------------ errors / lifetime
    def _show_error(self, title: str, summary: str, details: str) -> None:
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, title, summary,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        if self._message_box is not None:
            self._message_box.close()
        self._message_box = box
        box.open()  # non-blocking

    def _track(self, job: Job) -> None:
        self._jobs.add(job)
        job.finished.connect(self._reap_jobs)

    def _reap_jobs(self) -> None:
        for job in [j for j in self._jobs if j.isFinished()]:
            self._jobs.discard(job)
            job.deleteLater()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Cancel every job and wait for its thread (called on close)."""
        self.cancel_scan()
        self.browser.shutdown()
        self.controller.shutdown()
        self.review.shutdown()
        if self.volume_view is not None:
            self.volume_view.shutdown()
        for job in list(self._jobs):
            job.cancel()
            job.wait(timeout_ms)
        self._reap_jobs()

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        if not self.project.maybe_save("closing"):
            ev.ignore()
            return
        self.wait_for_indexing()
        self.shutdown()
        self.project.close()
        super().closeEvent(ev)


def _files_scan_fn(scan_fn: ScanFn | None, paths: list[str]) -> ScanFn:
    """A scan function for `make_scan_job` (given one placeholder path) that scans exactly the
    project's source files in one call, so series spread over many files group as usual. With an
    injected `scan_fn` (tests with fake io), that function on the files' common folder."""
    def scan(_path, *, progress=None, cancel=None):
        if scan_fn is not None:
            return scan_fn(os.path.commonpath(paths) if len(paths) > 1 else paths[0], progress=progress, cancel=cancel)
        from discviewer.io import scan_files

        return scan_files(paths, progress=progress, cancel=cancel)

    return scan


def format_cursor(lps, value, title: str = "") -> str:
    """Status-bar text for the point under the mouse (patient coordinates, LPS mm)."""
    if lps is None:
        return ""
    x, y, z = lps
    text = f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm  ·  value {format_number(value) if value is not None else '—'}"
    return f"{text}  ·  {title}" if title else text

"""`MainWindow`: study browser on the left, slice view on the right, status bar below.

Flow: `open_path(s)` scans in a background `Job` behind a window-modal `QProgressDialog`
(files done/total, Cancel works; the event loop keeps running); the browser fills, problems
are counted in the status bar and listed in the browser. Selecting a series loads it in a
second `Job` and shows its middle slice. A result is applied only if its job is still the
current one (a newer open/selection makes older results stale; they are dropped).

The scan and load functions are injectable (`scan_fn(path, *, progress, cancel)`,
`load_fn(candidate, *, progress)`); by default they are `discviewer.io.scan` / `load`.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from PySide6 import QtCore, QtGui, QtWidgets

import discviewer
from discviewer.ui.slice_view import CursorSample, SliceView
from discviewer.ui.recent import RecentPaths
from discviewer.ui.study_browser import StudyBrowserPanel, candidate_label
from discviewer.display import format_number
from discviewer.ui.workers import Job, LoadFn, ScanFn, make_load_job, make_scan_job

Qt = QtCore.Qt


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
        self._load_job: Job | None = None
        self.scan_result: Any = None
        self.current_candidate: Any = None  # candidate whose volume is displayed
        self.progress_dialog: QtWidgets.QProgressDialog | None = None
        self._message_box: QtWidgets.QMessageBox | None = None
        self.settings = settings if settings is not None else QtCore.QSettings()
        self.recent = RecentPaths(self.settings)

        self.browser = StudyBrowserPanel()
        self.slice_view = SliceView()
        self.slice_view.setAcceptDrops(False)
        self.slice_view.viewport().setAcceptDrops(False)
        splitter = QtWidgets.QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.browser)
        splitter.addWidget(self.slice_view)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([430, 850])
        self.splitter = splitter
        self.setCentralWidget(splitter)

        self._build_status_bar()
        self._build_menus()

        self.browser.series_selected.connect(self._on_series_selected)
        self.slice_view.cursor_moved.connect(self._on_cursor_moved)
        self.slice_view.slice_changed.connect(self._on_slice_changed)

    # ------------------------------------------------------------------ construction
    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.cursor_label = QtWidgets.QLabel("")
        self.cursor_label.setMinimumWidth(340)
        self.slice_label = QtWidgets.QLabel("")
        self.series_label = QtWidgets.QLabel("")
        self.problems_label = QtWidgets.QLabel("")
        self.load_progress = QtWidgets.QProgressBar()
        self.load_progress.setMaximumWidth(140)
        self.load_progress.setTextVisible(False)
        self.load_progress.hide()
        for w in (self.load_progress, self.cursor_label, self.slice_label, self.series_label,
                  self.problems_label):
            if isinstance(w, QtWidgets.QLabel):
                w.setContentsMargins(10, 0, 10, 0)
            sb.addPermanentWidget(w)
        self.cursor_label.setToolTip("Voxel under the mouse: centre in patient coordinates (LPS, mm), "
                                     "index [column, row, slice] and stored value")
        self.problems_label.setStyleSheet("color: #b35c00;")

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_folder_action = file_menu.addAction("Open &folder…", self.choose_folder)
        self.open_folder_action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        self.open_file_action = file_menu.addAction("Open f&ile…", self.choose_file)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        self.quit_action = file_menu.addAction("&Quit", self.close)
        self.quit_action.setShortcut(QtGui.QKeySequence.StandardKey.Quit)
        help_menu = self.menuBar().addMenu("&Help")
        self.about_action = help_menu.addAction("&About discviewer", self.show_about)

    # ------------------------------------------------------------------ menu actions
    def choose_folder(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open folder with DICOM files")
        if path:
            self.open_path(path)

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
            act.triggered.connect(lambda _=False, path=p: self.open_path(path))
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

    def open_paths(self, paths: Sequence[str | os.PathLike]) -> Job:
        """Scan folders/files in the background (results merged); any earlier scan becomes stale."""
        paths = [os.fspath(p) for p in paths]
        self.cancel_scan()
        for p in reversed(paths):
            self.recent.add(p)
        job = make_scan_job(paths, self._scan_fn, parent=self)
        job.progressed.connect(self._on_scan_progress)
        job.succeeded.connect(self._on_scan_succeeded)
        job.failed.connect(self._on_scan_failed)
        job.cancelled.connect(self._on_scan_cancelled)
        self._track(job)
        self._scan_job = job

        name = ", ".join(os.path.basename(p.rstrip("/\\")) or p for p in paths)
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
        """Show a `ScanResult` in the browser (and select the first series if `auto_select`)."""
        self.scan_result = result
        self.browser.set_scan_result(result)
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

    # ------------------------------------------------------------------ loading
    def _on_series_selected(self, candidate: Any) -> None:
        if candidate is self.current_candidate and self._load_job is None:
            return
        if self._load_job is not None and getattr(self._load_job, "candidate", None) is candidate:
            return
        self.load_candidate(candidate)

    def load_candidate(self, candidate: Any) -> Job:
        """Load `candidate` in the background and show its middle slice when done."""
        if self._load_job is not None:
            self._load_job.cancel()  # stale from now on
        job = make_load_job(candidate, self._load_fn, parent=self)
        job.progressed.connect(self._on_load_progress)
        job.succeeded.connect(self._on_load_succeeded)
        job.failed.connect(self._on_load_failed)
        self._track(job)
        self._load_job = job
        self.load_progress.setRange(0, 0)
        self.load_progress.show()
        self.statusBar().showMessage(f"Loading {candidate_label(candidate)}…")
        job.start()
        return job

    def is_loading(self) -> bool:
        return self._load_job is not None

    def _is_current_load(self, request_id: int) -> bool:
        return self._load_job is not None and self._load_job.request_id == request_id

    def _on_load_progress(self, request_id: int, done: int, total: int) -> None:
        if self._is_current_load(request_id):
            self.load_progress.setRange(0, max(total, 1))
            self.load_progress.setValue(done)

    def _on_load_succeeded(self, request_id: int, volume: Any) -> None:
        if not self._is_current_load(request_id):
            return
        candidate = self._load_job.candidate
        self._load_job = None
        self.load_progress.hide()
        self.show_volume(volume, candidate)

    def _on_load_failed(self, request_id: int, message: str) -> None:
        if not self._is_current_load(request_id):
            return
        self._load_job = None
        self.load_progress.hide()
        summary = message.split("\n\n", 1)[0]
        self.statusBar().showMessage(f"Load failed: {summary}")
        self._show_error("Could not load series", summary, message)
        self.load_failed.emit(message)

    def show_volume(self, volume: Any, candidate: Any = None) -> None:
        """Display `volume` (middle slice, auto window)."""
        self.current_candidate = candidate
        label = candidate_label(candidate) if candidate is not None else (
            volume.info.series_description or "")
        self.slice_view.set_volume(volume, label=label)
        self.series_label.setText(label)
        warnings = list(getattr(volume, "warnings", []) or [])
        self.series_label.setToolTip("\n".join(warnings))
        msg = f"Showing {label}"
        if warnings:
            msg += f" — {len(warnings)} warning{'s' if len(warnings) != 1 else ''}: {warnings[0]}"
        self.statusBar().showMessage(msg, 8000)
        self.slice_view.setFocus()
        self.volume_shown.emit(volume)

    # ------------------------------------------------------------------ status bar
    def _on_slice_changed(self, k: int) -> None:
        self.slice_label.setText(f"Slice {k + 1}/{self.slice_view.slice_count}")

    def _on_cursor_moved(self, sample: CursorSample | None) -> None:
        self.cursor_label.setText(format_cursor(sample))

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
        if self._load_job is not None:
            self._load_job.cancel()
            self._load_job = None
        for job in list(self._jobs):
            job.cancel()
            job.wait(timeout_ms)
        self._reap_jobs()

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(ev)


def format_cursor(sample: CursorSample | None) -> str:
    """Status-bar text for the voxel under the mouse."""
    if sample is None:
        return ""
    x, y, z = sample.patient
    return (f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm  ·  voxel [{sample.column}, {sample.row}, {sample.slice}]"
            f"  ·  value {format_number(sample.value)}")

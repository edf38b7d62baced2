"""`ExportUI`: File → Export — the active view as an image, a montage of one disc level across visits,
and flicker / slice-sweep image sequences.

The pictures never come from the screen: the active view's state (plane, slice, window, zoom, pan,
overlay, the annotations it draws) becomes a `ViewState` and is rendered offscreen by
`discviewer.render.figure.render_view` at `scale` × the view's size (default 3×), with fonts and lines
scaled alike — so the file looks like the view, only sharper, whatever the window size.

De-identified by default: the corner label is the patient's pseudonym, the day relative to baseline
and the series role (`discviewer.render.montage.visit_label`), every drawn text is checked against
the patient's name, ID and dates, and the file carries no identifying metadata. The dialogs' "Include
identifying text" box is the explicit opt-in (unchecked each time a dialog opens, unless the user turned
"De-identify exports by default" off in Preferences → Export, which also sets the default scale).

The methods `export_view`, `export_montage` and `export_sequence` do the work without a dialog
(tests, scripts); the menu actions open a dialog and call them.

Rendering stays on the GUI thread (VTK render windows are bound to one thread and VTK is not
thread-safe with the Qt VTK widgets), so montages and sequences, which take seconds, render one
cell / frame at a time behind a window-modal `QProgressDialog` with Cancel, letting the event loop
run between cells. Files are written only once everything rendered, so Cancel writes nothing. The
single-view exports are fast and run as before.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from discviewer.levels import LUMBAR_LEVELS

Qt = QtCore.Qt
IMAGE_FILTER = "PNG image (*.png);;TIFF image (*.tif *.tiff)"
IDENTIFYING_TEXT = "Include identifying text (patient name, ID, dates)"


class ExportDialog(QtWidgets.QDialog):
    """A small form: a path (file or folder), a scale factor, the identifying opt-in and extras."""

    def __init__(self, parent, title: str, *, path: str, folder: bool = False, scale: float | None = None,
                 extra: dict | None = None) -> None:
        super().__init__(parent)
        from discviewer.ui.preferences_ui import export_defaults

        default_scale, default_identifying = export_defaults(parent)  # Preferences → Export (3×, de-identified)
        scale = default_scale if scale is None else scale
        self.setWindowTitle(title)
        self.folder = folder
        form = QtWidgets.QFormLayout(self)
        row = QtWidgets.QHBoxLayout()
        self.path_edit = QtWidgets.QLineEdit(path)
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form.addRow("Folder" if folder else "File", row)
        self.scale_spin = QtWidgets.QDoubleSpinBox()
        self.scale_spin.setRange(1.0, 8.0)
        self.scale_spin.setSingleStep(0.5)
        self.scale_spin.setDecimals(1)
        self.scale_spin.setSuffix(" ×")
        self.scale_spin.setValue(scale)
        self.scale_spin.setToolTip("Resolution relative to the view on screen (fonts and lines scale too)")
        form.addRow("Scale", self.scale_spin)
        self.extra_widgets: dict[str, QtWidgets.QWidget] = {}
        for name, (label, widget) in (extra or {}).items():
            form.addRow(label, widget)
            self.extra_widgets[name] = widget
        self.identifying_box = QtWidgets.QCheckBox(IDENTIFYING_TEXT)
        self.identifying_box.setChecked(default_identifying)
        self.identifying_box.setToolTip("Off (default): a pseudonym and the day relative to baseline instead of "
                                        "name, ID and dates")
        form.addRow(self.identifying_box)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        form.addRow(buttons)

    def _browse(self) -> None:
        if self.folder:
            p = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder", self.path_edit.text())
        else:
            p, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export image", self.path_edit.text(), IMAGE_FILTER)
        if p:
            self.path_edit.setText(p)

    @property
    def path(self) -> str:
        return self.path_edit.text().strip()

    @property
    def scale(self) -> float:
        return float(self.scale_spin.value())

    @property
    def identifying(self) -> bool:
        return self.identifying_box.isChecked()


class ExportUI(QtCore.QObject):
    """The File → Export submenu of a `MainWindow` (module docstring)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.dialog: ExportDialog | None = None
        self.last_dir = str(Path.home())
        self.last_result = None  # RenderedView / MontageResult / list of paths of the last export
        self.progress_dialog: QtWidgets.QProgressDialog | None = None  # while a montage / sequence renders
        self._build_menu()

    # ------------------------------------------------------------------ menu
    def _file_menu(self) -> QtWidgets.QMenu | None:
        for act in self.window.menuBar().actions():
            if act.menu() is not None and act.text().replace("&", "") == "File":
                return act.menu()
        return None

    def _build_menu(self) -> None:
        w = self.window
        menu = QtWidgets.QMenu("&Export", w)
        self.menu = menu

        def act(name, text, slot, key=None, tip=""):
            a = QtGui.QAction(text, w)
            if key:
                a.setShortcut(QtGui.QKeySequence(key))
                a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.setToolTip(tip)
            a.triggered.connect(slot)
            w.addAction(a)
            menu.addAction(a)
            if hasattr(w, "actions_by_name"):
                w.actions_by_name[name] = a
            return a

        self.view_action = act("export_view", "Current view as image…", self.export_view_dialog, "Ctrl+E",
                               "The active view rendered offscreen at 3× (PNG or TIFF), de-identified by default")
        self.montage_action = act("export_montage", "Montage of this level…", self.export_montage_dialog, None,
                                  "One disc level across all visits, registered, one row per series role")
        self.view3d_action = act("export_3d", "3D view as image…", self.export_3d_dialog, None,
                                 "The 3-D view rendered offscreen at 3× (same camera, preset and clip box)")
        self.sequence_action = act("export_sequence", "Flicker/sweep sequence…", self.export_sequence_dialog, None,
                                   "Baseline ↔ this visit (registered), or every slice of the view, as numbered PNGs")
        file_menu = self._file_menu()
        if file_menu is not None:
            before = getattr(w, "quit_action", None)
            if before is not None and before in file_menu.actions():
                file_menu.insertMenu(before, menu)
                file_menu.insertSeparator(before)
            else:
                file_menu.addMenu(menu)

    # ------------------------------------------------------------------ context
    def _message(self, text: str) -> None:
        self.window.statusBar().showMessage(text, 8000)

    def _error(self, title: str, text: str) -> None:
        self._message(f"{title}: {text}")
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, title, text,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self.window)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self._box = box

    def workspace(self):
        return self.window.project.workspace

    def policy(self, identifying: bool = False):
        from discviewer.export.pseudonym import policy_for

        ws = self.workspace()
        store = not getattr(ws, "read_only", False)
        return policy_for(ws, identifying=identifying, store=store)

    def active(self):
        """(frame, view, patient, visit, entry, echo) of the active viewport; view None when nothing shows."""
        frame = self.window.review.active
        view = frame.view if frame is not None else None
        if view is None or view.volume is None:
            return frame, None, None, None, None, None
        patient, visit, entry, echo = self.window.controller.locate(frame.candidate)
        return frame, view, patient, visit, entry, echo

    def view_annotations(self, view) -> tuple:
        tools = getattr(getattr(self.window, "measure", None), "tools", None)
        t = tools.tools_for(view) if tools is not None else None
        return tuple(t.layer.visible_items()) if t is not None else ()

    def view_labels(self, policy, patient, visit, entry, echo) -> dict:
        from discviewer.render.montage import role_label, visit_label

        if patient is None or visit is None:
            return {"series": ""}
        extra = role_label(entry, echo or 0).replace("\n", " ") if entry is not None else ""
        mode = getattr(self.window.controller, "mode", "normal")
        if mode != "normal":
            extra += f" · {mode}"
        return {"series": visit_label(policy, patient, visit, extra=extra)}

    def _default_path(self, name: str) -> str:
        return str(Path(self.last_dir) / name)

    # ------------------------------------------------------------------ current view
    def export_view(self, path, *, scale: float = 3.0, identifying: bool = False, dpi: float = 300.0):
        """Render the active view at `scale` × its size to `path` (.png/.tif); returns the `RenderedView`."""
        from discviewer.render.figure import ViewState, render_view_info, save_image
        from discviewer.render.montage import forbidden_strings

        frame, view, patient, visit, entry, echo = self.active()
        if view is None:
            raise ValueError("no image in the active view")
        policy = self.policy(identifying)
        labels = self.view_labels(policy, patient, visit, entry, echo)
        state = ViewState.from_pipeline(view.pipeline, annotations=self.view_annotations(view), labels=labels)
        w, h = view.render_window.GetSize()
        colorbar = None
        bar = view.color_bar()
        if bar is not None and bar.visible():
            lo, hi = bar.range()
            colorbar = {"title": bar.title(), "vmin": lo, "vmax": hi}
        forbidden = () if identifying or patient is None else tuple(forbidden_strings(patient))
        info = render_view_info(view.volume, state, int(round(w * scale)), int(round(h * scale)), scale=scale,
                                colorbar=colorbar, forbidden=forbidden)
        save_image(path, info.rgb, dpi=dpi, metadata={"Title": labels.get("series", "")}, forbidden=forbidden)
        self.last_result = info
        self.last_dir = str(Path(path).parent)
        self._message(f"Exported {path} ({info.rgb.shape[1]}×{info.rgb.shape[0]})")
        return info

    def export_view_dialog(self) -> ExportDialog | None:
        frame, view, *_ = self.active()
        if view is None:
            self._message("Nothing to export: show an image first")
            return None
        d = ExportDialog(self.window, "Export current view", path=self._default_path("view.png"))
        d.accepted.connect(lambda: self._run(lambda: self.export_view(d.path, scale=d.scale,
                                                                       identifying=d.identifying)))
        return self._open(d)

    # ------------------------------------------------------------------ 3-D view
    def export_3d(self, path, *, scale: float = 3.0, identifying: bool = False, dpi: float = 300.0):
        """Render the 3-D view at `scale` × its size to `path`; returns the `RenderedView`. Labelled
        with the active viewport's visit (the 3-D view shows that viewport's volume)."""
        from discviewer.render.figure import VolumeViewState, render_volume_view_info, save_image
        from discviewer.render.montage import forbidden_strings

        vv = getattr(self.window, "volume_view", None)
        if vv is None or vv.pipeline.volume is None:
            raise ValueError("the 3-D view shows nothing (View → 3D first)")
        frame, view, patient, visit, entry, echo = self.active()
        policy = self.policy(identifying)
        labels = self.view_labels(policy, patient, visit, entry, echo)
        state = VolumeViewState.from_pipeline(vv.pipeline, labels=labels)
        w, h = vv.render_window.GetSize()
        forbidden = () if identifying or patient is None else tuple(forbidden_strings(patient))
        info = render_volume_view_info(vv.pipeline.volume, state, int(round(w * scale)), int(round(h * scale)),
                                       scale=scale, forbidden=forbidden, mapper=vv.pipeline.mapper_kind or "auto")
        save_image(path, info.rgb, dpi=dpi, metadata={"Title": labels.get("series", "")}, forbidden=forbidden)
        self.last_result = info
        self.last_dir = str(Path(path).parent)
        self._message(f"Exported {path} ({info.rgb.shape[1]}×{info.rgb.shape[0]})")
        return info

    def export_3d_dialog(self) -> ExportDialog | None:
        vv = getattr(self.window, "volume_view", None)
        if vv is None or vv.pipeline.volume is None:
            self._message("Nothing to export: open the 3-D view first")
            return None
        d = ExportDialog(self.window, "Export 3-D view", path=self._default_path("view3d.png"))
        d.accepted.connect(lambda: self._run(lambda: self.export_3d(d.path, scale=d.scale, identifying=d.identifying)))
        return self._open(d)

    # ------------------------------------------------------------------ montage
    def _level(self) -> str:
        m = getattr(self.window, "measure", None)
        if m is not None and getattr(m, "level", ""):
            return m.level
        lvl = getattr(self.window.controller, "link_level", "")
        return lvl if lvl in LUMBAR_LEVELS else "L4/L5"

    def _roles_present(self, patient) -> list[str]:
        from discviewer.render.batch import DEFAULT_MONTAGE_ROLES

        present = []
        for v in patient.visits:
            for e in v.series:
                r = str(getattr(e.role, "value", e.role))
                if r not in present and r != "localizer":
                    present.append(r)
        first = [r for r in DEFAULT_MONTAGE_ROLES if r in present]
        return first + [r for r in present if r not in first]

    def _load(self, candidate):
        c = self.window.controller
        from discviewer.ui.review_controller import _default_load

        return c.cache.get_or_load(candidate, c.load_fn or _default_load)

    def _view_centre_baseline(self, view, visit, level: str):
        """The active view's picture centre in baseline space (fallback when the level has no disc label)."""
        from discviewer.render.montage import _level_set

        fx, fy, _ = view.pipeline.view_state()
        p = view.pipeline.plane_to_patient(fx, fy)
        ts, _ = _level_set(self.window.controller.transform_sets, level)
        if visit is None:
            return p
        return np.asarray(ts.to_baseline(p, visit.id), float)

    @contextmanager
    def _progress(self, progress, title: str, label: str):
        """`progress(done, total) -> keep_going` for one montage / sequence: the caller's, or (None) one
        driving a window-modal `QProgressDialog` with Cancel that lets the event loop run between cells."""
        if progress is not None:
            yield progress
            return
        if self.progress_dialog is not None:
            raise RuntimeError("another export is still running")
        dlg = QtWidgets.QProgressDialog(label, "Cancel", 0, 0, self.window)
        dlg.setObjectName("export-progress")
        dlg.setWindowTitle(title)
        dlg.setWindowModality(Qt.WindowModality.WindowModal)  # no second export, no edits meanwhile
        dlg.setMinimumDuration(0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        self.progress_dialog = dlg
        QtWidgets.QApplication.setOverrideCursor(Qt.CursorShape.ArrowCursor)  # over `_run`'s wait cursor: Cancel
        dlg.show()
        QtWidgets.QApplication.processEvents()

        def step(done: int, total: int) -> bool:
            if dlg.maximum() != total:
                dlg.setMaximum(int(total))
            dlg.setValue(int(done))
            dlg.setLabelText(f"{label} ({done} of {total})")
            QtWidgets.QApplication.processEvents()  # paint, and let Cancel be clicked
            return not dlg.wasCanceled()

        try:
            yield step
        finally:
            self.progress_dialog = None
            QtWidgets.QApplication.restoreOverrideCursor()
            dlg.close()
            dlg.deleteLater()

    def export_montage(self, path, *, level: str | None = None, roles=None, scale: float = 2.0,
                       identifying: bool = False, cell: int = 256, progress=None):
        """The montage of `level` for the active viewport's patient to `path`; returns the `MontageResult`,
        or None when cancelled (then nothing is written). `progress(done, total) -> keep_going` is called
        once per cell; default: a progress dialog with Cancel."""
        from discviewer.render.figure import save_image
        from discviewer.render.montage import (MontageCancelled, MontageError, build_montage, disc_centre,
                                               forbidden_strings, _source)

        frame, view, patient, visit, entry, echo = self.active()
        if patient is None:
            raise ValueError("no patient in the active view")
        level = level or self._level()
        ws = self.workspace()
        policy = self.policy(identifying)
        src = _source(ws, policy)
        src.transforms = self.window.controller.transform_sets
        try:
            centre = disc_centre(src, patient, level)
            note, title = "", None
        except MontageError:
            centre = self._view_centre_baseline(view, visit, level)
            note, title = f" (no disc label for {level}: centred on the view)", "view centre"
        try:
            with self._progress(progress, "Export montage", f"Rendering the {level} montage") as step:
                res = build_montage(src, patient, level, roles or self._roles_present(patient)[:2], policy=policy,
                                    scale=scale, width_per_cell=int(round(cell * scale)), centre=centre,
                                    load=self._load, title=title, progress=step)
        except MontageCancelled:
            self._message("Montage export cancelled: nothing written")
            return None
        if not res.registered and len(patient.visits) > 1:
            note += " — the visits are not registered (Register visits first)"
        forbidden = () if identifying else tuple(forbidden_strings(patient))
        save_image(path, res.rgb, metadata={"Title": f"{policy.patient_label(patient.id)} {level}"},
                   forbidden=forbidden)
        self.last_result = res
        self.last_dir = str(Path(path).parent)
        self._message(f"Exported montage {path}{note}")
        return res

    def export_montage_dialog(self) -> ExportDialog | None:
        frame, view, patient, *_ = self.active()
        if patient is None:
            self._message("Nothing to export: show a series of a patient first")
            return None
        level_combo = QtWidgets.QComboBox()
        level_combo.addItems(list(LUMBAR_LEVELS))
        level_combo.setCurrentText(self._level())
        roles_list = QtWidgets.QListWidget()
        for i, r in enumerate(self._roles_present(patient)):
            it = QtWidgets.QListWidgetItem(r)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked if i < 2 else Qt.CheckState.Unchecked)
            roles_list.addItem(it)
        roles_list.setMaximumHeight(110)
        d = ExportDialog(self.window, "Export montage of a disc level",
                         path=self._default_path(f"montage_{level_combo.currentText().replace('/', '-')}.png"),
                         scale=2.0, extra={"level": ("Disc level", level_combo), "roles": ("Rows", roles_list)})

        def go():
            roles = [roles_list.item(i).text() for i in range(roles_list.count())
                     if roles_list.item(i).checkState() == Qt.CheckState.Checked]
            self.export_montage(d.path, level=level_combo.currentText(), roles=roles or None, scale=d.scale,
                                identifying=d.identifying)

        d.accepted.connect(lambda: self._run(go))
        return self._open(d)

    # ------------------------------------------------------------------ sequences
    def export_sequence(self, folder, *, kind: str = "flicker", scale: float = 3.0, identifying: bool = False,
                        level: str | None = None, step: int = 1, progress=None) -> list[Path] | None:
        """Numbered PNGs in `folder`: "flicker" (baseline and the active visit, registered to baseline,
        same view) or "sweep" (every `step`-th slice of the active view). Returns the paths, or None when
        cancelled (then nothing is written). `progress(done, total) -> keep_going` is called once per
        frame; default: a progress dialog with Cancel."""
        from discviewer.render.figure import write_sequence
        from discviewer.render.montage import MontageCancelled, forbidden_strings

        frame, view, patient, visit, entry, echo = self.active()
        if view is None:
            raise ValueError("no image in the active view")
        policy = self.policy(identifying)
        forbidden = () if identifying or patient is None else tuple(forbidden_strings(patient))
        w, h = view.render_window.GetSize()
        W, H = int(round(w * scale)), int(round(h * scale))
        if kind not in ("sweep", "flicker"):
            raise ValueError(f"kind must be 'flicker' or 'sweep', got {kind!r}")
        try:
            with self._progress(progress, "Export image sequence", f"Rendering the {kind} frames") as report:
                frames, prefix = self._sequence_frames(kind, view, patient, visit, entry, echo, policy, forbidden,
                                                       W, H, scale, level, step, report)
        except MontageCancelled:
            self._message("Sequence export cancelled: nothing written")
            return None
        paths = write_sequence(frames, folder, prefix, forbidden=forbidden)
        self.last_result = paths
        self.last_dir = str(Path(folder))
        self._message(f"Exported {len(paths)} frames to {folder}")
        return paths

    def _sequence_frames(self, kind, view, patient, visit, entry, echo, policy, forbidden, W, H, scale, level,
                         step, progress):
        from discviewer.render.figure import ViewState
        from discviewer.render.montage import MontageError, _source, disc_centre, flicker_frames, sweep_frames

        if kind == "sweep":
            labels = self.view_labels(policy, patient, visit, entry, echo)
            state = ViewState.from_pipeline(view.pipeline, annotations=self.view_annotations(view), labels=labels)
            frames = sweep_frames(view.volume, state, W, H, step=step, scale=scale, forbidden=forbidden,
                                  progress=progress)
            prefix = "sweep"
        else:
            if patient is None or entry is None:
                raise ValueError("no patient in the active view")
            level = level or self._level()
            src = _source(self.workspace(), policy)
            src.transforms = self.window.controller.transform_sets
            try:
                centre = disc_centre(src, patient, level)
            except MontageError:
                centre = self._view_centre_baseline(view, visit, level)
            other = visit if visit is not patient.baseline else (patient.visits[-1] if len(patient.visits) > 1
                                                                  else visit)
            fov = 2.0 * view.pipeline.view_state()[2]
            frames = flicker_frames(src, patient, level, str(getattr(entry.role, "value", entry.role)),
                                    visits=[patient.baseline, other], width=W, height=H, scale=scale, centre=centre,
                                    fov_mm=fov, echo=echo, load=self._load, progress=progress)
            prefix = "flicker"
        return frames, prefix

    def export_sequence_dialog(self) -> ExportDialog | None:
        frame, view, *_ = self.active()
        if view is None:
            self._message("Nothing to export: show an image first")
            return None
        kind = QtWidgets.QComboBox()
        kind.addItem("Flicker: baseline ↔ this visit (registered)", "flicker")
        kind.addItem("Slice sweep through this view", "sweep")
        d = ExportDialog(self.window, "Export image sequence", path=self._default_path("sequence"), folder=True,
                         extra={"kind": ("Sequence", kind)})
        d.accepted.connect(lambda: self._run(lambda: self.export_sequence(d.path, kind=kind.currentData(),
                                                                           scale=d.scale, identifying=d.identifying)))
        return self._open(d)

    # ------------------------------------------------------------------ plumbing
    def _open(self, d: ExportDialog) -> ExportDialog:
        d.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog = d
        d.finished.connect(lambda _=0: setattr(self, "dialog", None) if self.dialog is d else None)
        d.open()
        return d

    def _run(self, fn) -> None:
        QtWidgets.QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._error("Export failed", str(exc))
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()

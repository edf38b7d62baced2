"""`MeasureUI`: the main window's measuring — the Measure toolbar and menu (annotation tools, current
disc level), the Measurements dock (table, histogram, trend) and the Scores dock, wired to the
open project's annotations.

It owns the glue only: the tools (`annotation_tools`), panels (`measurement_panel`, `scores_panel`)
and the models (`Workspace.annotations`, undoable) do the work. Context for a new annotation comes
from the viewport it is drawn on: its visit, series, role and echo, the disc level — that of the
labelled disc within 15 mm of the measurement's centre on that visit, else the Level box — and the
project's reader.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

import numpy as np

from discviewer.levels import LUMBAR_LEVELS
from discviewer.measure_flows import ROI_ROLES
from discviewer.ui.annotation_tools import SHORTCUTS, TOOL_TITLES, AnnotationToolGroup, ToolContext

Qt = QtCore.Qt


class MeasureUI(QtCore.QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.tools = AnnotationToolGroup(parent=window)
        self.tools.message.connect(lambda m: window.statusBar().showMessage(m, 5000))
        self.tools.tool_changed.connect(self._on_tool_changed)
        self.tools.selection_changed.connect(self._on_tool_selection)
        self.tools.annotation_committed.connect(self._on_committed)
        self.r2star_frames: dict[int, object] = {}  # id(frame) → R2* Volume shown on it
        self.tool_actions: dict[str, QtGui.QAction] = {}
        self.measurement_panel = None
        self.scores_panel = None
        self.measurements_dock: QtWidgets.QDockWidget | None = None
        self.scores_dock: QtWidgets.QDockWidget | None = None
        self._build_actions()
        window.controller.volume_shown.connect(self._on_volume_shown)
        window.review.active_changed.connect(lambda frame: self._update_scores_context())
        window.project.workspace_replaced.connect(self._on_workspace_replaced)

    # ------------------------------------------------------------------ actions
    def _build_actions(self) -> None:
        w = self.window
        w.addToolBarBreak()
        tb = w.addToolBar("Measure")
        tb.setObjectName("measure-toolbar")
        tb.setMovable(False)
        self.toolbar = tb
        menu = QtWidgets.QMenu("&Measure", w)
        w.menuBar().insertMenu(w.help_menu.menuAction(), menu)
        self.menu = menu
        group = QtGui.QActionGroup(w)
        group.setExclusionPolicy(QtGui.QActionGroup.ExclusionPolicy.ExclusiveOptional)
        for name in ("none",) + tuple(SHORTCUTS):
            key = "Esc" if name == "none" else SHORTCUTS[name]
            a = QtGui.QAction(TOOL_TITLES[name], w)
            a.setCheckable(True)
            a.setShortcut(QtGui.QKeySequence(key))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.setToolTip(f"{TOOL_TITLES[name]} ({key})")
            a.triggered.connect(lambda _=False, n=name: self.tools.set_tool(n))
            group.addAction(a)
            w.addAction(a)
            menu.addAction(a)
            if name not in ("none",):
                tb.addAction(a)
            self.tool_actions[name] = a
            w.actions_by_name[f"tool_{name}"] = a
        self.tool_actions["none"].setChecked(True)
        tb.addSeparator()
        tb.addWidget(QtWidgets.QLabel(" Level "))
        self.level_combo = QtWidgets.QComboBox()
        self.level_combo.addItems(list(LUMBAR_LEVELS))
        self.level_combo.setCurrentText("L4/L5")
        self.level_combo.setToolTip("Disc level of new measurements and of the Scores panel")
        self.level_combo.currentTextChanged.connect(lambda _: self._update_scores_context())
        tb.addWidget(self.level_combo)
        tb.addWidget(QtWidgets.QLabel(" ROI "))
        self.roi_role_combo = QtWidgets.QComboBox()
        self.roi_role_combo.addItems(list(ROI_ROLES))
        self.roi_role_combo.setToolTip("Role of new ROIs: disc (measured), reference (surrounding tissue / CSF, "
                                       "for ratios and the iron threshold) or background (air, for noise)")
        tb.addWidget(self.roi_role_combo)
        tb.addWidget(QtWidgets.QLabel(" Iron rule "))
        self.iron_rule_combo = QtWidgets.QComboBox()
        for text, rule in (("≤ 50 % of reference", dict(kind="percent_of_reference", percent=50.0)),
                           ("≤ 70 % of reference", dict(kind="percent_of_reference", percent=70.0)),
                           ("≤ mean − 2 SD", dict(kind="mean_minus_k_sd", k=2.0)),
                           ("≤ mean − 3 SD", dict(kind="mean_minus_k_sd", k=3.0))):
            self.iron_rule_combo.addItem(text, rule)
        self.iron_rule_combo.setToolTip("Threshold of the hypointense (iron) region, relative to the reference ROI")
        tb.addWidget(self.iron_rule_combo)

        def act(name, text, slot, key, tip):
            a = QtGui.QAction(text, w)
            a.setShortcut(QtGui.QKeySequence(key))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.setToolTip(f"{tip} ({key})")
            a.triggered.connect(slot)
            w.addAction(a)
            menu.addAction(a)
            w.actions_by_name[name] = a
            return a

        menu.addSeparator()
        act("iron", "Iron in selected ROI", self.measure_iron, "Ctrl+I",
            "Segment the hypointense (iron) region inside the selected disc ROI by the iron rule, against the "
            "reference ROI on the same slice")
        act("r2star", "R2* map", self.toggle_r2star, "Ctrl+2",
            "Fit R2* (s⁻¹) of the active multi-echo series and show it as a colour overlay")
        act("carry", "Copy selected to all visits", self.carry_selected, "Ctrl+Shift+C",
            "Map the selected annotation to every other visit through the registration and measure it there")
        label_all = act("label_all", "Label discs from this one", self.label_discs_from_one, "Ctrl+B",
                        "Find the discs above and below the selected (or just placed) disc label — or the "
                        "disc at the view point, named by the Level box — and label them in order")
        tb.addAction(label_all)
        act("propagate_labels", "Propagate disc labels to all visits", self.propagate_labels, "Ctrl+Shift+B",
            "Copy this visit's disc labels to every visit through the registration")
        menu.addSeparator()
        self.delete_action = menu.addAction("Delete selected annotation", self.tools.delete_selected)
        self.delete_action.setToolTip("Delete the selected annotation or measurement (undoable)")
        self.delete_action.setShortcut(QtGui.QKeySequence(QtGui.QKeySequence.StandardKey.Delete))
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        w.addAction(self.delete_action)
        menu.addSeparator()
        self.measurements_action = menu.addAction("Measurements panel", self.show_measurements)
        self.measurements_action.setToolTip("The measurements table (level × visit), ROI histogram and trend plots")
        self.measurements_action.setShortcut(QtGui.QKeySequence("Ctrl+Shift+M"))
        self.scores_action = menu.addAction("Scores panel", self.show_scores)
        self.scores_action.setToolTip("Visual scores (Pfirrmann, Modic, HIZ, iron) of this disc level at this visit")
        self.scores_action.setShortcut(QtGui.QKeySequence("Ctrl+Shift+G"))
        w.actions_by_name["measurements"] = self.measurements_action
        w.actions_by_name["scores"] = self.scores_action

    @property
    def level(self) -> str:
        return self.level_combo.currentText()

    def set_level(self, level: str) -> None:
        self.level_combo.setCurrentText(level)

    def _on_tool_changed(self, name: str) -> None:
        a = self.tool_actions.get(name)
        if a is not None:
            a.setChecked(True)
        if name not in ("none", "select") and self.measurements_dock is None:
            self.show_measurements()

    # ------------------------------------------------------------------ context of a viewport
    def context(self, frame) -> ToolContext:
        w = self.window
        ws = w.project.workspace
        _, visit, entry, echo = w.controller.locate(frame.candidate)
        info = getattr(frame.candidate, "info", None)
        echo_time = None
        if entry is not None and echo is not None:
            echo_time = entry.echo_times[echo]
        elif info is not None:
            echo_time = info.echo_time
        volume = w.controller._own.get(id(frame))
        extra = None
        if volume is not None:
            from discviewer.measure_flows import acquisition_of

            extra = acquisition_of(volume)
            extra.pop("echo_time_ms", None)  # the tool stores the echo of the viewport itself
        return ToolContext(annotations=ws.annotations, visit_id=frame.visit_id or "",
                           series_uid=info.series_uid if info is not None else "",
                           series_role=str(getattr(entry.role, "value", entry.role)) if entry is not None else "",
                           echo_time_ms=echo_time, level=self.level, reader=ws.user, volume=volume,
                           extra=extra, roi_extra={"roi_role": self.roi_role_combo.currentText()},
                           level_for=lambda pts, vid=frame.visit_id: self.level_near(pts, vid))

    #: a measurement within this distance (mm) of a labelled disc centre belongs to that disc
    LEVEL_RADIUS_MM = 15.0

    def level_near(self, points, visit_id: str) -> str:
        """The labelled disc nearest to the points' centre on this visit ("" if none is near: the
        Level box then decides)."""
        from discviewer import levels

        if not points:
            return ""
        labels = levels.labels_of(self.window.project.workspace.annotations, visit_id)
        centre = np.mean(np.asarray(points, float).reshape(-1, 3), axis=0)
        return levels.level_at(centre, labels, max_distance_mm=self.LEVEL_RADIUS_MM)

    def _on_volume_shown(self, frame, volume) -> None:
        if frame is None or frame.view is None:
            return
        self.tools.attach(frame.view, lambda f=frame: self.context(f))
        self._update_scores_context()

    def _on_workspace_replaced(self, ws) -> None:
        self.tools.refresh()
        if self.measurement_panel is not None:
            self.measurement_panel.set_workspace(ws)
        self._update_scores_context()

    def study_attached(self) -> None:
        """After the project's study was (re)built: labels and roles may have changed silently."""
        if self.measurement_panel is not None:
            self.measurement_panel.refresh()
        self.tools.refresh()
        self._update_scores_context()

    # ------------------------------------------------------------------ docks
    def volume_for(self, annotation):
        """The loaded volume an annotation was measured on (None if not loaded; never loads)."""
        w = self.window
        if w.study is None:
            return None
        te = annotation.extra.get("echo_time_ms") if isinstance(annotation.extra, dict) else None
        for v in w.study.visits():
            if v.id != annotation.visit_id:
                continue
            for e in v.series:
                if e.series_uid != annotation.series_uid:
                    continue
                for c in e.echoes:
                    if te is None or c.info.echo_time is None or abs(c.info.echo_time - float(te)) < 1e-6:
                        vol = w.controller.cache.get(c)
                        if vol is not None:
                            return vol
        return None

    def show_measurements(self) -> QtWidgets.QDockWidget:
        w = self.window
        if self.measurements_dock is None:
            from discviewer.ui.measurement_panel import MeasurementPanel

            self.measurement_panel = MeasurementPanel(volume_for=self.volume_for)
            self.measurement_panel.set_workspace(w.project.workspace)
            self.measurement_panel.annotation_selected.connect(self._on_table_selection)
            self.measurement_panel.level_selected.connect(self.set_level)
            dock = QtWidgets.QDockWidget("Measurements", w)
            dock.setObjectName("dock-measurements")
            dock.setWidget(self.measurement_panel)
            w.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
            w.resizeDocks([dock], [max(220, w.height() // 3)], Qt.Orientation.Vertical)
            width = max(600, w.width())
            self.measurement_panel.splitter.setSizes([width * 45 // 100, width * 35 // 100, width * 20 // 100])
            self.measurements_dock = dock
        self.measurements_dock.show()
        self.measurements_dock.raise_()
        return self.measurements_dock

    def show_scores(self) -> QtWidgets.QDockWidget:
        w = self.window
        if self.scores_dock is None:
            from discviewer.ui.scores_panel import ScoresPanel

            self.scores_panel = ScoresPanel()
            dock = QtWidgets.QDockWidget("Scores", w)
            dock.setObjectName("dock-scores")
            dock.setWidget(self.scores_panel)
            w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            w.resizeDocks([dock], [max(380, w.width() // 4)], Qt.Orientation.Horizontal)
            self.scores_dock = dock
        self._update_scores_context()
        self.scores_dock.show()
        self.scores_dock.raise_()
        return self.scores_dock

    def _update_scores_context(self) -> None:
        if self.scores_panel is None:
            return
        w = self.window
        frame = w.review.active
        ws = w.project.workspace
        visit = None
        if frame is not None and frame.candidate is not None:
            _, visit, _, _ = w.controller.locate(frame.candidate)
        if visit is None:
            self.scores_panel.set_context(None, "", self.level, ws.user)
            return
        self.scores_panel.set_context(ws.annotations, visit.id, self.level, ws.user, visit_label=visit.label)

    def _on_table_selection(self, annotation_id: str) -> None:
        ws = self.window.project.workspace
        if annotation_id not in ws.annotations:
            return
        a = ws.annotations.get(annotation_id)
        if a.level:
            self.level_combo.blockSignals(True)
            self.level_combo.setCurrentText(a.level)
            self.level_combo.blockSignals(False)
        self.tools.select(annotation_id)
        if a.points:  # bring the viewport of that visit to the annotation
            for f in self.window.review.view_frames():
                if f.visit_id == a.visit_id and f.view is not None and f.view.volume is not None:
                    import numpy as np

                    f.view.set_point(np.mean(np.asarray(a.points, float), axis=0))
                    break

    def _on_tool_selection(self, annotation_id: str) -> None:
        if self.measurement_panel is not None and annotation_id:
            self.measurement_panel.select_annotation(annotation_id)

    # ------------------------------------------------------------------ workflows
    def _selected(self):
        ws = self.window.project.workspace
        aid = self.tools.selected_id
        return ws.annotations.get(aid) if aid and aid in ws.annotations else None

    def _status(self, text: str) -> None:
        self.window.statusBar().showMessage(text, 8000)

    def _on_committed(self, annotation_id: str) -> None:
        """After a disc label is placed, the Level box moves one disc down, so clicking the discs
        from top to bottom labels them in order."""
        ws = self.window.project.workspace
        if annotation_id not in ws.annotations:
            return
        a = ws.annotations.get(annotation_id)
        if a.kind == "disc_label" and a.level in LUMBAR_LEVELS:
            i = LUMBAR_LEVELS.index(a.level)
            if i + 1 < len(LUMBAR_LEVELS):
                self.set_level(LUMBAR_LEVELS[i + 1])

    def _frame_of(self, annotation):
        for f in self.window.review.view_frames():
            if f.visit_id == annotation.visit_id and f.candidate is not None \
                    and getattr(f.candidate.info, "series_uid", "") == annotation.series_uid:
                return f
        return None

    def measure_iron(self):
        """Iron in the selected disc ROI (see `discviewer.measure_flows.iron_annotation`)."""
        from discviewer.measure import IronRule
        from discviewer.measure_flows import find_roi, iron_annotation, mask_volume, roi_role

        roi = self._selected()
        if roi is None or roi_role(roi) != "disc":
            self._status("Iron: select a disc ROI first (and draw a reference ROI on the same slice)")
            return None
        ws = self.window.project.workspace
        ref = find_roi(ws.annotations, roi, "reference")
        if ref is None:
            self._status("Iron: draw a reference ROI (surrounding disc tissue) on the same slice first")
            return None
        volume = self.volume_for(roi)
        if volume is None:
            self._status("Iron: the ROI's image is not loaded")
            return None
        rule = IronRule(**self.iron_rule_combo.currentData())
        a, res = iron_annotation(roi, volume, ref, rule, background_roi=find_roi(ws.annotations, roi, "background"),
                                 reader=ws.user)
        stored = ws.annotations.add(a)
        frame = self._frame_of(roi)
        if frame is not None and frame.view is not None:
            frame.view.set_overlay(mask_volume(res.mask, volume), opacity=0.6, colormap="hot", window=(0.5, 1.0))
        te = a.extra.get("echo_time_ms")
        self._status(f"Iron ({rule.text()}): {a.values['void_volume_mm3']:.1f} mm³, contrast "
                     f"{a.values['contrast_ratio']:.2f}" + (f", TE {te:g} ms" if te else ""))
        return stored

    def toggle_r2star(self):
        """Show (or hide) the R2* map of the active viewport's multi-echo series as a colour overlay."""
        from discviewer.measure_flows import r2star_volume

        w = self.window
        frame = w.review.active
        if frame is None or frame.view is None or frame.candidate is None:
            self._status("R2*: show a multi-echo series first")
            return None
        if id(frame) in self.r2star_frames:
            self.r2star_frames.pop(id(frame))
            frame.view.set_overlay(None)
            frame.view.set_color_bar(None)
            return None
        _, visit, entry, _ = w.controller.locate(frame.candidate)
        if entry is None or entry.n_echoes < 2:
            self._status("R2*: the active series has a single echo; show a multi-echo gradient echo")
            return None
        load = w.controller.load_fn
        QtWidgets.QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            echoes = [w.controller.cache.get_or_load(c, load) for c in entry.echoes]
            vol, fit = r2star_volume(echoes)
        except Exception as exc:
            self._status(f"R2* failed: {exc}")
            return None
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        shown = frame.view.volume
        hi = float(np.nanpercentile(vol.array[vol.array > 0], 99)) if np.any(vol.array > 0) else 100.0
        if shown is not None and shown.array.shape == vol.array.shape and np.allclose(shown.affine, vol.affine):
            frame.view.set_overlay(vol, opacity=0.6, colormap="hot", window=(hi / 2.0, hi))
            frame.view.set_color_bar("R2* (s⁻¹)", colormap="hot", vmin=0.0, vmax=hi)
        self.r2star_frames[id(frame)] = vol
        n = self._r2star_in_rois(vol, visit.id if visit is not None else frame.visit_id, entry, fit.method)
        self._status(f"R2* map ({fit.method} fit, {len(entry.echoes)} echoes)"
                     + (f"; mean R2* stored for {n} ROI(s)" if n else ""))
        return vol

    def _r2star_in_rois(self, r2s, visit_id: str, entry, method: str) -> int:
        """Mean and SD of R2* (s⁻¹) inside every ROI on this series' slices — one undo step."""
        import dataclasses

        from discviewer.measure import roi_stats
        from discviewer.measure.compute import plane_roi_of
        from discviewer.measure_flows import ROI_KINDS

        ws = self.window.project.workspace
        rois = [a for a in ws.annotations if a.kind in ROI_KINDS and a.visit_id == visit_id
                and a.series_uid == entry.series_uid]
        n = 0
        with ws.history.group("R2* in ROIs"):
            for a in rois:
                try:
                    st = roi_stats(r2s, plane_roi_of(a))
                except Exception:
                    continue
                values = {**a.values, "r2star_mean_per_s": float(st.mean), "r2star_sd_per_s": float(st.sd)}
                units = {**a.units, "r2star_mean_per_s": "s⁻¹", "r2star_sd_per_s": "s⁻¹"}
                extra = {**a.extra, "r2star_method": f"{method} fit of {entry.n_echoes} echoes "
                                                     f"(TE {', '.join(f'{t:g}' for t in entry.echo_times)} ms)"}
                if ws.annotations.update(dataclasses.replace(a, values=values, units=units, extra=extra)):
                    n += 1
        return n

    def carry_selected(self):
        """Copy the selected annotation to every other visit of its patient through the registration
        (the level's own transform set when there is one) and measure it there — one undo step."""
        from discviewer.carry import carry_annotation
        from discviewer.linking import WHOLE_VOLUME

        a = self._selected()
        w = self.window
        if a is None or w.study is None:
            self._status("Copy to visits: select an annotation first")
            return []
        ws = w.project.workspace
        patient = next((p for p in w.study.patients if any(v.id == a.visit_id for v in p.visits)), None)
        if patient is None:
            return []
        set_name = a.level if a.level in ws.transforms else WHOLE_VOLUME
        ts = ws.transforms[set_name]
        role = (a.extra or {}).get("series_role", "")
        te = (a.extra or {}).get("echo_time_ms")
        made = []
        with ws.history.group("Copy to all visits"):
            for v in patient.visits:
                if v.id == a.visit_id:
                    continue
                entries = v.entries(role) if role else []
                entry = entries[0] if entries else None
                copy = carry_annotation(a, ts, v.id, series_uid=entry.series_uid if entry else "",
                                        set_name=set_name, reader=ws.user)
                copy = self._measure_on(copy, entry, te)
                made.append(ws.annotations.add(copy))
        self._status(f"Copied to {len(made)} visit(s) through {set_name!r}")
        return made

    def _measure_on(self, a, entry, te):
        """`a` with values computed on the entry's image (loaded if needed); unchanged if impossible."""
        import dataclasses

        from discviewer.measure import compute_values

        if entry is None or a.kind in ("point", "text", "disc_label", "score", "iron"):
            return a
        cand = entry.echoes[0]
        if te is not None:
            cand = min(entry.echoes, key=lambda c: abs((c.info.echo_time or 0.0) - float(te)))
        try:
            vol = self.window.controller.cache.get_or_load(cand, self.window.controller.load_fn)
            values, units = compute_values(a, vol)
        except Exception as exc:
            self._status(f"Could not measure on {entry.title}: {exc}")
            return a
        return dataclasses.replace(a, values=values, units=units)

    def propagate_labels(self):
        """The active visit's disc labels → every other visit through the registration (one undo step)."""
        from discviewer import levels

        w = self.window
        frame = w.review.active
        ws = w.project.workspace
        if frame is None or w.study is None or not frame.visit_id:
            return 0
        own = levels.labels_of(ws.annotations, frame.visit_id)
        if not own:
            self._status("Propagate: label the discs of this visit first (Disc level label tool, B)")
            return 0
        base = levels.to_baseline(own, ws.transforms, frame.visit_id)
        n = 0
        with ws.history.group("Propagate disc labels"):
            for p in w.study.patients:
                if not any(v.id == frame.visit_id for v in p.visits):
                    continue
                for v in p.visits:
                    if v.id == frame.visit_id:
                        continue
                    pts = levels.propagate(base, ws.transforms, v.id)
                    recs = levels.disc_label_records(pts, v.id, list(ws.annotations), reader=ws.user,
                                                     method="propagated by registration")
                    levels.store_disc_labels(ws.annotations, recs)
                    n += 1
        self._status(f"Disc labels propagated to {n} visit(s)")
        return n

    #: an existing disc label this close (mm) to a found disc is that disc: it is updated, not duplicated
    LABEL_MATCH_MM = 6.0

    def label_discs_from_one(self) -> dict:
        """Label the discs above and below one (see `discviewer.disc_finder`): the anchor is the
        selected disc label of the active visit, else the one last placed there, else the disc at
        the view point named by the Level box. One undo step. An existing label within
        `LABEL_MATCH_MM` of a found disc is updated to it (level and centre; the anchor keeps its
        point); a label the reader placed elsewhere keeps its level — that found disc is skipped.
        Returns level → centre of the labels written."""
        import dataclasses

        from discviewer import levels
        from discviewer.disc_finder import label_discs

        w = self.window
        frame = w.review.active
        ws = w.project.workspace
        if frame is None or frame.view is None or frame.view.volume is None or not frame.visit_id:
            self._status("Label discs: show a sagittal T2 first")
            return {}
        visit = frame.visit_id
        own = [a for a in ws.annotations if a.kind == levels.DISC_LABEL_KIND and a.visit_id == visit
               and a.level and a.points]
        anchor = self._selected()
        if anchor is None or anchor.kind != levels.DISC_LABEL_KIND or anchor.visit_id != visit or not anchor.level:
            anchor = max(own, key=lambda a: a.modified or a.created) if own else None
        if anchor is not None and anchor.level not in levels.DISC_LEVELS:
            self._status(f"Label discs: {anchor.level!r} is not a disc level")
            return {}
        seed, name = ((anchor.points[0], anchor.level) if anchor is not None
                      else (tuple(frame.view.pipeline.point()), self.level))
        volume = w.controller._own.get(id(frame)) or frame.view.volume
        QtWidgets.QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            found = label_discs(volume, seed, name)
        except ValueError as exc:
            self._status(f"Label discs: {exc}")
            return {}
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        info = getattr(frame.candidate, "info", None)
        series_uid = info.series_uid if info is not None else ""
        method = f"found along the spine from {name} (discviewer.disc_finder)"
        # match existing labels to found discs by distance first, then by level
        free = [a for a in own if anchor is None or a.id != anchor.id]
        records, kept = [], []
        unmatched = {}
        for level, d in found.items():
            if anchor is not None and level == anchor.level:
                continue  # the reader's own click stays where it is
            p = np.asarray(d.center_lps, float)
            near = [a for a in free if np.linalg.norm(np.asarray(a.points[0], float) - p) <= self.LABEL_MATCH_MM]
            if near:
                a = min(near, key=lambda a: np.linalg.norm(np.asarray(a.points[0], float) - p))
                free.remove(a)
                records.append(dataclasses.replace(a, level=level, points=(tuple(float(x) for x in p),),
                                                   series_uid=series_uid or a.series_uid, method=method,
                                                   reader=ws.user or a.reader,
                                                   extra={**a.extra, "confidence": round(d.confidence, 3)}))
            else:
                unmatched[level] = p
        held = {a.level for a in free}
        kept += [r.level for r in records if r.level in held]  # that level is the reader's elsewhere
        records = [r for r in records if r.level not in held]
        taken = held | {r.level for r in records}
        for level, p in unmatched.items():
            if level in taken:
                kept.append(level)  # the reader labelled this level elsewhere: keep theirs
                continue
            records.append(levels.disc_label_annotation(level, p, visit, series_uid=series_uid, reader=ws.user,
                                                        method=method,
                                                        extra={"confidence": round(found[level].confidence, 3)}))
        if records:
            with ws.history.group("Label discs from one"):
                levels.store_disc_labels(ws.annotations, records)
        written = {r.level: tuple(r.points[0]) for r in records}
        msg = f"Labelled {len(written)} disc(s) from {name}: {', '.join(levels.sort_levels(written)) or 'none'}"
        if kept:
            msg += f"; kept your own {', '.join(kept)} (not at a found disc)"
        doubtful = [r.level for r in records if found[r.level].confidence < 0.5]
        if doubtful:
            msg += f"; check {', '.join(levels.sort_levels(doubtful))} (low confidence)"
        self._status(msg)
        return written

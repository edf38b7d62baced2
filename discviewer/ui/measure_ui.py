"""`MeasureUI`: the main window's measuring — the Measure toolbar and menu (annotation tools, current
disc level), the Measurements dock (table, histogram, trend) and the Scores dock, wired to the
open project's annotations.

It owns the glue only: the tools (`annotation_tools`), panels (`measurement_panel`, `scores_panel`)
and the models (`Workspace.annotations`, undoable) do the work. Context for a new annotation comes
from the viewport it is drawn on: its visit, series, role and echo, the current disc level (the
Level box; when discs are labelled on that visit, a click near a labelled disc takes its level) and
the project's reader.
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from discviewer.levels import LUMBAR_LEVELS
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
        menu.addSeparator()
        self.delete_action = menu.addAction("Delete selected annotation", self.tools.delete_selected)
        self.delete_action.setShortcut(QtGui.QKeySequence(QtGui.QKeySequence.StandardKey.Delete))
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        w.addAction(self.delete_action)
        menu.addSeparator()
        self.measurements_action = menu.addAction("Measurements panel", self.show_measurements)
        self.measurements_action.setShortcut(QtGui.QKeySequence("Ctrl+Shift+M"))
        self.scores_action = menu.addAction("Scores panel", self.show_scores)
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
        return ToolContext(annotations=ws.annotations, visit_id=frame.visit_id or "",
                           series_uid=info.series_uid if info is not None else "",
                           series_role=str(getattr(entry.role, "value", entry.role)) if entry is not None else "",
                           echo_time_ms=echo_time, level=self.level, reader=ws.user,
                           volume=w.controller._own.get(id(frame)))

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

"""`RegistrationPanel`: the per-visit registration results, with accept / reset.

One row per follow-up visit: the series role registered on, the metric before → after, seconds,
the transform's provenance (registration, manual edits, identity) and whether the reader
accepted it. Rows update from the transform set (one-way: controller → model → this view).
"""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

COLUMNS = ("Visit", "Series", "Metric", "Before → after", "Seconds", "Transform", "Accepted")


class RegistrationPanel(QtWidgets.QWidget):
    reset_requested = QtCore.Signal(str)  # visit id
    register_requested = QtCore.Signal()

    def __init__(self, controller, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.rows: dict[str, dict] = {}
        self.accepted: set[str] = set()
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.table)
        buttons = QtWidgets.QHBoxLayout()
        self.register_button = QtWidgets.QPushButton("Register visits")
        self.accept_button = QtWidgets.QPushButton("Accept")
        self.reset_button = QtWidgets.QPushButton("Reset to identity")
        for b in (self.register_button, self.accept_button, self.reset_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        hint = QtWidgets.QLabel("Nudge the active follow-up: Shift+arrows 0.5 mm, Ctrl+Shift+←/→ 0.5°")
        hint.setStyleSheet("color: #666;")
        lay.addLayout(buttons)
        lay.addWidget(hint)
        self.register_button.clicked.connect(self.register_requested)
        self.accept_button.clicked.connect(self.accept_selected)
        self.reset_button.clicked.connect(self.reset_selected)
        controller.registered.connect(self._on_registered)
        controller.transforms_changed.connect(self._refresh_visit)

    def selected_visit(self) -> str | None:
        r = self.table.currentRow()
        if r < 0:
            return None
        item = self.table.item(r, 0)
        return item.data(QtCore.Qt.ItemDataRole.UserRole) if item is not None else None

    def _row_of(self, visit_id: str, label: str) -> int:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(QtCore.Qt.ItemDataRole.UserRole) == visit_id:
                return r
        r = self.table.rowCount()
        self.table.insertRow(r)
        item = QtWidgets.QTableWidgetItem(label)
        item.setData(QtCore.Qt.ItemDataRole.UserRole, visit_id)
        self.table.setItem(r, 0, item)
        for c in range(1, len(COLUMNS)):
            self.table.setItem(r, c, QtWidgets.QTableWidgetItem(""))
        return r

    def _on_registered(self, vr) -> None:
        if isinstance(vr, str):
            return
        res = vr.result
        self.rows[vr.visit_id] = {"label": vr.visit_label, "role": vr.role, "metric": res.metric,
                                  "before": res.initial_metric, "after": res.final_metric, "seconds": res.seconds}
        self.accepted.discard(vr.visit_id)
        self._refresh_visit(vr.visit_id)

    def _refresh_visit(self, visit_id: str) -> None:
        info = self.rows.get(visit_id)
        label = info["label"] if info else visit_id
        r = self._row_of(visit_id, label)
        prov = self.controller.transforms.provenance(visit_id)
        m = self.controller.transforms.get(visit_id)
        shift = float(np.linalg.norm(m[:3, 3]))
        angle = float(np.degrees(np.arccos(np.clip((np.trace(m[:3, :3]) - 1) / 2, -1, 1))))
        values = [label,
                  info["role"] if info else "",
                  info["metric"] if info else "",
                  f"{info['before']:.3f} → {info['after']:.3f}" if info else "",
                  f"{info['seconds']:.2f}" if info else "",
                  f"{prov.method}: {shift:.1f} mm, {angle:.1f}°",
                  "yes" if visit_id in self.accepted else ""]
        for c, v in enumerate(values):
            self.table.item(r, c).setText(str(v))

    def accept_selected(self) -> None:
        vid = self.selected_visit()
        if vid:
            self.accepted.add(vid)
            prov = self.controller.transforms.provenance(vid)
            prov.details["accepted"] = True
            self._refresh_visit(vid)

    def reset_selected(self) -> None:
        vid = self.selected_visit()
        if vid:
            self.accepted.discard(vid)
            self.controller.reset_transform(vid)
            self._refresh_visit(vid)

"""`StudyBrowserPanel`: the Patient → Study (visit) → series tree of a `ScanResult`.

Studies are ordered by date and show the date, the description and the day offset from the
patient's first study; series rows show the candidate label, slice count, matrix (rows×cols)
and TE. Files the scan could not use are listed under a collapsed "Problems (n)" node, one
row per file with its reason (full path and reason in the tooltip).

Emits `series_selected(VolumeCandidate)` when the current item becomes a series row,
whether by the user or by `select_candidate`.
"""
from __future__ import annotations

import datetime as _dt
import os
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

Qt = QtCore.Qt

ROLE_KIND = Qt.ItemDataRole.UserRole + 1  # "patient" | "study" | "series" | "problems" | "problem"
ROLE_INDEX = Qt.ItemDataRole.UserRole + 2  # index into the panel's candidate / problem list

COLUMNS = ("Series", "Slices", "Matrix", "TE (ms)")


def format_study_date(da: str) -> str:
    """DICOM DA "YYYYMMDD" → "YYYY-MM-DD" (unchanged when not a valid date; "no date" when empty)."""
    d = _parse_date(da)
    if d is not None:
        return d.isoformat()
    return da or "no date"


def _parse_date(da: str) -> _dt.date | None:
    try:
        return _dt.datetime.strptime((da or "").strip(), "%Y%m%d").date()
    except ValueError:
        return None


def format_patient_name(pn: str) -> str:
    """DICOM PN "FAMILY^GIVEN^…" → "FAMILY, GIVEN"."""
    parts = [p.strip() for p in (pn or "").split("=")[0].split("^")]
    parts = [p for p in parts if p]
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else f"{parts[0]}, {' '.join(parts[1:])}"


def format_te(te: float | None) -> str:
    if te is None:
        return ""
    return f"{te:.0f}" if abs(te - round(te)) < 0.05 else f"{te:.1f}"


def candidate_label(c: Any) -> str:
    return c.label or c.info.series_description or f"Series {c.info.series_number or '?'}"


class StudyBrowserPanel(QtWidgets.QWidget):
    """Tree of patients, studies and loadable series, plus the scan's problems."""

    series_selected = QtCore.Signal(object)  # VolumeCandidate

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._candidates: list[Any] = []
        self._problems: list[Any] = []
        self._series_items: list[QtWidgets.QTreeWidgetItem] = []
        self.problems_item: QtWidgets.QTreeWidgetItem | None = None

        self.summary = QtWidgets.QLabel("No folder open")
        self.summary.setWordWrap(True)
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.tree.currentItemChanged.connect(self._on_current_item_changed)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree)

    # ------------------------------------------------------------------ content
    def clear(self) -> None:
        self.tree.blockSignals(True)
        self.tree.clear()
        self.tree.blockSignals(False)
        self._candidates, self._problems, self._series_items = [], [], []
        self.problems_item = None
        self.summary.setText("No folder open")

    def set_scan_result(self, result: Any) -> None:
        """Replace the tree with `result` (a `ScanResult`)."""
        self.clear()
        self.tree.blockSignals(True)
        try:
            self._fill(result)
        finally:
            self.tree.blockSignals(False)
        n_studies = sum(len(p.studies) for p in result.patients)
        text = (f"{len(self._candidates)} series in {n_studies} "
                f"{'study' if n_studies == 1 else 'studies'}")
        if self._problems:
            text += f" · {len(self._problems)} problem{'s' if len(self._problems) != 1 else ''}"
        if getattr(result, "cancelled", False):
            text += " · scan cancelled (partial)"
        self.summary.setText(text)

    def _fill(self, result: Any) -> None:
        bold = QtGui.QFont()
        bold.setBold(True)
        for patient in result.patients:
            name = format_patient_name(patient.patient_name)
            title = f"{name} ({patient.patient_id})" if name and patient.patient_id else (
                name or patient.patient_id or "(no patient ID)")
            p_item = QtWidgets.QTreeWidgetItem([title])
            p_item.setData(0, ROLE_KIND, "patient")
            p_item.setFont(0, bold)
            p_item.setToolTip(0, f"Patient ID: {patient.patient_id}\nName: {patient.patient_name}")
            self.tree.addTopLevelItem(p_item)
            p_item.setFirstColumnSpanned(True)
            baseline = next((d for d in (_parse_date(s.date) for s in patient.studies) if d), None)
            for study in patient.studies:
                self._add_study(p_item, study, baseline)
            p_item.setExpanded(True)
        self._problems = list(result.problems)
        if self._problems:
            self._add_problems()

    def _add_study(self, parent: QtWidgets.QTreeWidgetItem, study: Any, baseline: _dt.date | None) -> None:
        parts = [format_study_date(study.date)]
        d = _parse_date(study.date)
        if d is not None and baseline is not None:
            days = (d - baseline).days
            parts.append("baseline" if days == 0 else f"day {days:+d}")
        if study.description:
            parts.append(study.description)
        s_item = QtWidgets.QTreeWidgetItem([" · ".join(parts)])
        s_item.setData(0, ROLE_KIND, "study")
        s_item.setToolTip(0, f"Study date: {format_study_date(study.date)}\n"
                             f"Description: {study.description or '—'}\n"
                             f"{len(study.series)} series\nStudy UID: {study.uid}")
        parent.addChild(s_item)
        s_item.setFirstColumnSpanned(True)
        for c in study.series:
            self._add_series(s_item, c)
        s_item.setExpanded(True)

    def _add_series(self, parent: QtWidgets.QTreeWidgetItem, c: Any) -> None:
        label = candidate_label(c)
        if c.is_localizer:
            label += " (localizer)"
        item = QtWidgets.QTreeWidgetItem([label, str(c.slice_count), f"{c.rows}×{c.columns}",
                                          format_te(c.info.echo_time)])
        item.setData(0, ROLE_KIND, "series")
        item.setData(0, ROLE_INDEX, len(self._candidates))
        for col in (1, 3):
            item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        tip = [label, f"Series number: {c.info.series_number}",
               f"Description: {c.info.series_description or '—'}",
               f"Matrix: {c.rows}×{c.columns}, {c.slice_count} slices"]
        if c.spacing:
            tip.append("Voxel (col × row × slice): " + " × ".join(f"{v:.2f}" for v in c.spacing) + " mm")
        else:
            tip.append("No usable geometry")
        if c.info.echo_time is not None:
            tip.append(f"TE {format_te(c.info.echo_time)} ms")
        if c.info.repetition_time is not None:
            tip.append(f"TR {format_te(c.info.repetition_time)} ms")
        if c.warnings:
            tip.append("Warnings:")
            tip.extend(f"  • {w}" for w in c.warnings)
            item.setIcon(0, self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MessageBoxWarning))
        item.setToolTip(0, "\n".join(tip))
        if c.is_localizer:
            grey = QtGui.QBrush(self.palette().color(QtGui.QPalette.ColorRole.PlaceholderText))
            for col in range(len(COLUMNS)):
                item.setForeground(col, grey)
        parent.addChild(item)
        self._candidates.append(c)
        self._series_items.append(item)

    def _add_problems(self) -> None:
        n = len(self._problems)
        top = QtWidgets.QTreeWidgetItem([f"Problems ({n})", "", "", ""])
        top.setData(0, ROLE_KIND, "problems")
        top.setIcon(0, self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MessageBoxWarning))
        top.setToolTip(0, f"{n} file{'s' if n != 1 else ''} could not be used")
        self.tree.addTopLevelItem(top)
        top.setFirstColumnSpanned(True)
        for i, p in enumerate(self._problems):
            child = QtWidgets.QTreeWidgetItem([f"{os.path.basename(p.path) or p.path} — {p.reason}"])
            child.setData(0, ROLE_KIND, "problem")
            child.setData(0, ROLE_INDEX, i)
            child.setToolTip(0, f"{p.path}\n{p.reason}")
            top.addChild(child)
            child.setFirstColumnSpanned(True)
        top.setExpanded(False)
        self.problems_item = top

    # ------------------------------------------------------------------ queries / selection
    def candidates(self) -> list[Any]:
        """All candidates in tree order (patients, studies by date, series)."""
        return list(self._candidates)

    def problems(self) -> list[Any]:
        return list(self._problems)

    def first_loadable(self) -> Any | None:
        """The first candidate in tree order that is not a localizer (None if there is none)."""
        return next((c for c in self._candidates if not c.is_localizer), None)

    def item_for(self, candidate: Any) -> QtWidgets.QTreeWidgetItem | None:
        for c, item in zip(self._candidates, self._series_items):
            if c is candidate:
                return item
        return None

    def select_candidate(self, candidate: Any) -> bool:
        """Make `candidate`'s row current (emits `series_selected`); False if it is not listed."""
        item = self.item_for(candidate)
        if item is None:
            return False
        self.tree.setCurrentItem(item)
        self.tree.scrollToItem(item)
        return True

    def current_candidate(self) -> Any | None:
        return self._candidate_of(self.tree.currentItem())

    def _candidate_of(self, item: QtWidgets.QTreeWidgetItem | None) -> Any | None:
        if item is None or item.data(0, ROLE_KIND) != "series":
            return None
        return self._candidates[int(item.data(0, ROLE_INDEX))]

    def _on_current_item_changed(self, current, previous) -> None:
        c = self._candidate_of(current)
        if c is not None:
            self.series_selected.emit(c)

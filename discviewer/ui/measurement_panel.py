"""`MeasurementPanel`: the measurements of the project — a level × visit table per measure, the
selected ROI's histogram, and a trend plot per disc level.

- **Table.** Rows (disc level, measure), one column per visit of the patient (label and days),
  then the measure's SDC95 where repeats exist; a cell shows the visit's value (the mean and n when
  measured repeatedly). Iron values (void area/volume, contrast, R2*) show the acquisition they
  depend on — TE, field strength, voxel size — in the cell, and a warning line above the table says
  when compared visits differ ("iron values not comparable: TE 14 ms vs 19 ms …"). The reader combo
  picks one reader or all. The table follows the `AnnotationSet` live (additions, edits, removals,
  undo/redo): changes are coalesced into one rebuild per event-loop turn; `refresh()` rebuilds now.
- **Selection.** Choosing a cell emits `annotation_selected(id)` (the newest annotation in the cell;
  for the level/measure columns, the first visit with a value); `select_annotation(id)` moves the
  selection to an annotation's cell without emitting (for the viewer → table direction).
- **Histogram.** For a selected ROI (ellipse, polygon, freehand, iron), pixel values from
  `discviewer.measure.roi_stats(volume, annotation)` on the volume the `volume_for(annotation)`
  callback gives; without a volume or the measure package it says why instead.
- **Trend.** `TrendPlot` of the selected cell's level (see `discviewer.ui.trend_plot`).

Everything is computed by `discviewer.measure_table.MeasureTable` (core); this widget only shows it.
"""
from __future__ import annotations

import importlib
import math

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from discviewer.measure_table import Acquisition, MeasureTable, iron_comparability
from discviewer.ui.pgsetup import pg
from discviewer.ui.trend_plot import TrendPlot

Qt = QtCore.Qt
ROI_KINDS = ("ellipse", "polygon", "freehand", "iron")
FIXED_COLUMNS = ("Level", "Measure", "Unit")
WARN_STYLE = ("QLabel { background: #fff3cd; color: #7a4b00; border: 1px solid #e0b44a; border-radius: 3px;"
              " padding: 3px 6px; }")
MIXED_BRUSH = QtGui.QBrush(QtGui.QColor("#ffe8b0"))
ID_ROLE = Qt.ItemDataRole.UserRole
KEY_ROLE = Qt.ItemDataRole.UserRole + 1


def fmt_value(v: float) -> str:
    if v is None or not math.isfinite(v):
        return ""
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _alive(obj) -> bool:
    try:
        import shiboken6

        return shiboken6.isValid(obj)
    except Exception:  # pragma: no cover
        return True


def histogram_of(stats, bins: int | str = "auto") -> tuple[np.ndarray, np.ndarray] | None:
    """(counts, edges) from a RoiStats-like object: its `histogram` ((counts, edges) or an object
    with `counts` and `edges`/`bin_edges`), else a histogram of its `values`/`pixels`."""
    h = getattr(stats, "histogram", None)
    if callable(h):
        h = h()
    if h is None and getattr(stats, "histogram_counts", None) is not None:  # discviewer.measure.RoiStats
        h = (stats.histogram_counts, stats.histogram_edges)
    if h is not None:
        if isinstance(h, (tuple, list)) and len(h) == 2:
            counts, edges = h
        else:
            counts = getattr(h, "counts", None)
            edges = getattr(h, "edges", getattr(h, "bin_edges", None))
        if counts is not None and edges is not None:
            counts, edges = np.asarray(counts, dtype=float), np.asarray(edges, dtype=float)
            if edges.size == counts.size + 1:
                return counts, edges
    vals = getattr(stats, "values", None)
    if vals is None or isinstance(vals, dict):
        vals = getattr(stats, "pixels", None)
    if vals is not None:
        vals = np.asarray(vals, dtype=float).ravel()
        vals = vals[np.isfinite(vals)]
        if vals.size:
            counts, edges = np.histogram(vals, bins=bins)
            return counts.astype(float), edges.astype(float)
    return None


class HistogramView(QtWidgets.QWidget):
    """Pixel-value histogram of one ROI annotation."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.info = QtWidgets.QLabel("Select an ROI to see its pixel histogram")
        self.info.setWordWrap(True)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumSize(220, 160)
        self.plot.setLabel("bottom", "pixel value")
        self.plot.setLabel("left", "voxels")
        for ax in ("left", "bottom"):
            self.plot.getAxis(ax).setPen("k")
            self.plot.getAxis(ax).setTextPen("k")
        self.curve = pg.PlotCurveItem([0.0, 1.0], [0.0], stepMode="center", fillLevel=0,
                                      brush=pg.mkBrush(70, 130, 200, 120), pen=pg.mkPen(40, 90, 160, width=1.5))
        self.curve.hide()
        self.plot.addItem(self.curve)
        self.mean_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#c0392b", width=1.5, style=Qt.PenStyle.DashLine))
        self.mean_line.hide()
        self.plot.addItem(self.mean_line)
        lay.addWidget(self.info)
        lay.addWidget(self.plot, 1)
        self.annotation_id = ""
        self.counts: np.ndarray | None = None
        self.edges: np.ndarray | None = None

    def clear(self, message: str = "Select an ROI to see its pixel histogram") -> None:
        self.annotation_id = ""
        self.counts = self.edges = None
        self.curve.setData([0.0, 1.0], [0.0], stepMode="center")
        self.curve.hide()
        self.mean_line.hide()
        self.info.setText(message)

    def show_annotation(self, annotation, volume_for, acquisition: Acquisition | None = None) -> None:
        if annotation is None:
            self.clear()
            return
        title = f"{annotation.kind} · {annotation.level or 'no level'}"
        if annotation.kind not in ROI_KINDS or len(annotation.points) < 3:
            self.clear(f"{title}: not an ROI — no histogram")
            return
        volume = None
        if volume_for is not None:
            try:
                volume = volume_for(annotation)
            except Exception as exc:  # the lead's loader failed: say so
                self.clear(f"{title}: image not available ({exc})")
                return
        if volume is None:
            self.clear(f"{title}: its image is not loaded — no histogram")
            return
        try:
            measure = importlib.import_module("discviewer.measure")
            roi_stats, plane_roi_of = measure.roi_stats, measure.plane_roi_of
        except (ImportError, AttributeError):
            self.clear(f"{title}: ROI statistics are not available (discviewer.measure missing)")
            return
        try:
            stats = roi_stats(volume, plane_roi_of(annotation, (annotation.extra or {}).get("roi_kind")))  # iron: its ROI
        except Exception as exc:
            self.clear(f"{title}: ROI statistics failed: {exc}")
            return
        h = histogram_of(stats)
        if h is None:
            self.clear(f"{title}: the ROI holds no voxel")
            return
        self.annotation_id = annotation.id
        self.counts, self.edges = h
        self.curve.setData(self.edges, self.counts, stepMode="center", fillLevel=0,
                           brush=pg.mkBrush(70, 130, 200, 120))
        self.curve.show()
        mean = getattr(stats, "mean", None)
        sd = getattr(stats, "sd", getattr(stats, "std", None))
        n = getattr(stats, "n_voxels", getattr(stats, "n", int(self.counts.sum())))
        parts = [title]
        if mean is not None and math.isfinite(float(mean)):
            self.mean_line.setValue(float(mean))
            self.mean_line.show()
            parts.append(f"mean {fmt_value(float(mean))}" + (f" ± {fmt_value(float(sd))}" if sd is not None else ""))
        else:
            self.mean_line.hide()
        parts.append(f"n = {int(n)}")
        if annotation.kind == "iron" and acquisition is not None:
            parts.append(acquisition.text())
        self.info.setText(" · ".join(parts))
        self.plot.enableAutoRange()


class MeasurementPanel(QtWidgets.QWidget):
    """Measurements table + ROI histogram + trend plot (see the module docstring)."""

    annotation_selected = QtCore.Signal(str)  # annotation id
    level_selected = QtCore.Signal(str)  # the disc level of the selected row (for the scores panel)

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, volume_for=None, acquisition_for=None) -> None:
        super().__init__(parent)
        self.volume_for = volume_for
        self.acquisition_for = acquisition_for
        self.annotations = None
        self.visits_source = None
        self.table: MeasureTable = MeasureTable([], None)
        self.pivot = None
        self.issues = []
        self._unsub = None
        self._pending = False
        self._updating = False
        self._current_key: tuple[str, str, str] | None = None  # (level, measure, visit id or "")

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Reader"))
        self.reader_combo = QtWidgets.QComboBox()
        self.reader_combo.setMinimumWidth(120)
        top.addWidget(self.reader_combo)
        self.patient_label = QtWidgets.QLabel("Patient")
        self.patient_combo = QtWidgets.QComboBox()
        top.addWidget(self.patient_label)
        top.addWidget(self.patient_combo)
        top.addStretch(1)
        self.summary = QtWidgets.QLabel("")
        self.summary.setStyleSheet("color: #666;")
        top.addWidget(self.summary)
        lay.addLayout(top)
        self.warning = QtWidgets.QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(WARN_STYLE)
        self.warning.hide()
        lay.addWidget(self.warning)

        self.view = QtWidgets.QTableWidget(0, len(FIXED_COLUMNS))
        self.view.setHorizontalHeaderLabels(FIXED_COLUMNS)
        self.view.verticalHeader().hide()
        self.view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectItems)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(True)
        self.view.horizontalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        self.histogram = HistogramView()
        self.trend = TrendPlot()
        # side by side: the dock is wide and short under the images (table | trend | histogram)
        hist_box = QtWidgets.QGroupBox("ROI histogram")
        QtWidgets.QVBoxLayout(hist_box).addWidget(self.histogram)
        trend_box = QtWidgets.QGroupBox("Trend")
        QtWidgets.QVBoxLayout(trend_box).addWidget(self.trend)
        split = QtWidgets.QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.view)
        split.addWidget(trend_box)
        split.addWidget(hist_box)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 4)
        split.setStretchFactor(2, 2)
        self.splitter = split
        lay.addWidget(split, 1)

        self.reader_combo.currentIndexChanged.connect(self._on_filter_changed)
        self.patient_combo.currentIndexChanged.connect(self._on_filter_changed)
        self.view.currentCellChanged.connect(self._on_current_cell)
        self.trend.level_changed.connect(self.level_selected)
        self._fill_combos()
        self.refresh()

    # ------------------------------------------------------------------ model
    def set_workspace(self, ws) -> None:
        """Follow a `Workspace`: its annotations and its study's visits (labels, days). Every stored
        change (`Workspace.changed`: annotations, visit labels, undo/redo) schedules a rebuild.
        Attaching a study is silent in the workspace: call `refresh()` after `attach_study`."""
        if ws is None:
            self.set_annotations(None)
        else:
            self.set_annotations(ws.annotations, ws, changed=ws.changed)

    def set_annotations(self, annotations, visits=None, *, changed=None) -> None:
        """Follow an `AnnotationSet`; `visits` is a Study, Workspace or list of visits (see
        `measure_table.visit_infos`; a Workspace is read again on every refresh). `changed` is the
        Signal to follow (default: the set's own `changed`)."""
        self.detach()
        self.annotations = annotations
        self.visits_source = visits
        if annotations is not None:
            signal = changed if changed is not None else annotations.changed
            self._unsub = signal.subscribe(self._on_model_changed)
        self.refresh()

    def set_volume_for(self, fn) -> None:
        self.volume_for = fn

    def set_acquisition_for(self, fn) -> None:
        self.acquisition_for = fn
        self.schedule_refresh()

    def detach(self) -> None:
        if self._unsub is not None:
            self._unsub()
            self._unsub = None

    def _on_model_changed(self, change) -> None:
        if not _alive(self):
            self.detach()
            return
        self.schedule_refresh()

    def schedule_refresh(self) -> None:
        """Rebuild once at the next event-loop turn (many changes → one rebuild)."""
        if not self._pending:
            self._pending = True
            QtCore.QTimer.singleShot(0, self._deferred_refresh)

    def _deferred_refresh(self) -> None:
        if self._pending and _alive(self):
            self.refresh()

    # ------------------------------------------------------------------ filters
    def reader(self) -> str | None:
        return self.reader_combo.currentData() if self.reader_combo.currentIndex() > 0 else None

    def set_reader(self, reader: str | None) -> None:
        i = 0 if reader is None else self.reader_combo.findData(reader)
        if i >= 0:
            self.reader_combo.setCurrentIndex(i)

    def patient(self) -> str | None:
        return self.patient_combo.currentData() if self.patient_combo.count() else None

    def _fill_combos(self) -> None:
        self._updating = True
        try:
            reader = self.reader()
            self.reader_combo.clear()
            self.reader_combo.addItem("All readers", None)
            for r in self.table.readers():
                self.reader_combo.addItem(r or "(no reader)", r)
            i = self.reader_combo.findData(reader) if reader is not None else 0
            self.reader_combo.setCurrentIndex(max(i, 0))
            patient = self.patient()
            patients = self.table.patients()
            self.patient_combo.clear()
            for p in patients:
                self.patient_combo.addItem(p or "(unknown)", p)
            i = self.patient_combo.findData(patient) if patient is not None else 0
            self.patient_combo.setCurrentIndex(max(i, 0))
            several = len(patients) > 1
            self.patient_label.setVisible(several)
            self.patient_combo.setVisible(several)
        finally:
            self._updating = False

    def _on_filter_changed(self, _index: int) -> None:
        if not self._updating:
            self._rebuild_view()

    # ------------------------------------------------------------------ building
    def refresh(self) -> None:
        """Rebuild the table from the model now."""
        self._pending = False
        anns = list(self.annotations) if self.annotations is not None else []
        self.table = MeasureTable(anns, self.visits_source, acquisition_for=self.acquisition_for)
        self._fill_combos()
        self._rebuild_view()

    def _rebuild_view(self) -> None:
        reader, patient = self.reader(), self.patient()
        self.pivot = pv = self.table.pivot(reader, patient)
        visits = [v for v in pv.visits]
        sdcs = {m: self.table.sdc(m, reader=reader, patient=patient) for _, m in pv.keys}
        rows_sel = self.table.select(reader=reader, patient=patient)
        self.issues = iron_comparability(rows_sel)
        # iron cells measured with another acquisition than the level's earliest iron value
        reference_acq: dict[str, Acquisition] = {}
        for level, measure in pv.keys:
            for v in visits:
                cell = pv.cell(level, measure, v.id)
                if level not in reference_acq and cell is not None and any(x.is_iron for x in cell.rows):
                    reference_acq[level] = cell.acquisitions[0]

        self._updating = True
        self.view.blockSignals(True)
        try:
            headers = list(FIXED_COLUMNS) + [
                f"{v.label}\n{v.days} d" if v.days is not None else f"{v.label}\nundated" for v in visits] + ["SDC95"]
            self.view.clear()
            self.view.setColumnCount(len(headers))
            self.view.setRowCount(len(pv.keys))
            self.view.setHorizontalHeaderLabels(headers)
            self.visit_columns = {v.id: len(FIXED_COLUMNS) + i for i, v in enumerate(visits)}
            prev_level = None
            for r, (level, measure) in enumerate(pv.keys):
                first_id = ""
                for c, v in enumerate(visits):
                    cell = pv.cell(level, measure, v.id)
                    item = QtWidgets.QTableWidgetItem("")
                    item.setData(KEY_ROLE, (level, measure, v.id))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    if cell is not None and cell.n:
                        newest = max(cell.rows, key=lambda x: x.time)
                        item.setData(ID_ROLE, newest.annotation_id)
                        first_id = first_id or newest.annotation_id
                        text = fmt_value(cell.mean) + (f" (n={cell.n})" if cell.n > 1 else "")
                        tips = [f"{x.value:g} {x.unit}  ·  {x.reader or 'no reader'}  ·  "
                                f"{x.method or x.kind}  ·  {x.time}" for x in cell.rows]
                        if any(x.is_iron for x in cell.rows):
                            acq = "; ".join(a.text() for a in cell.acquisitions)
                            text += "\n" + acq
                            tips.append("acquisition: " + acq)
                            ref = reference_acq.get(level)
                            diff = sorted({d for a in cell.acquisitions for d in a.differences(ref)}) if ref else []
                            if diff:
                                item.setBackground(MIXED_BRUSH)
                                tips.append(f"differs from the first visit in {', '.join(diff)}: "
                                            "not comparable")
                        item.setText(text)
                        item.setToolTip("\n".join(tips))
                    self.view.setItem(r, len(FIXED_COLUMNS) + c, item)
                for c, text in enumerate((level if level != prev_level else "", measure, pv.units.get(measure, ""))):
                    item = QtWidgets.QTableWidgetItem(text)
                    item.setData(KEY_ROLE, (level, measure, ""))
                    item.setData(ID_ROLE, first_id)
                    if c == 0:
                        f = item.font()
                        f.setBold(True)
                        item.setFont(f)
                        item.setToolTip(level)
                    self.view.setItem(r, c, item)
                prev_level = level
                sdc = sdcs.get(measure)
                item = QtWidgets.QTableWidgetItem(fmt_value(sdc.sdc95) if sdc is not None else "")
                item.setData(KEY_ROLE, (level, measure, ""))
                item.setData(ID_ROLE, first_id)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if sdc is not None:
                    item.setToolTip(f"SDC95 = 1.96·√2·SEM = {sdc.sdc95:.4g}; SEM {sdc.sem:.4g} from "
                                    f"{sdc.n_groups} repeated set(s), {sdc.n_values} values (all levels)")
                self.view.setItem(r, len(headers) - 1, item)
            self.view.resizeColumnsToContents()
            self.view.resizeRowsToContents()
            self._restore_current()
        finally:
            self.view.blockSignals(False)
            self._updating = False

        if self.issues:
            self.warning.setText("⚠ " + "\n⚠ ".join(dict.fromkeys(i.text for i in self.issues)))
            self.warning.show()
        else:
            self.warning.hide()
        n = len(rows_sel)
        self.summary.setText(f"{n} value{'s' if n != 1 else ''} · {len(pv.keys)} row{'s' if len(pv.keys) != 1 else ''}")
        self.trend.set_table(self.table, reader=reader, patient=patient)
        # the histogram follows the record it shows (an undo may have moved or removed the ROI)
        if self.histogram.annotation_id:
            self._show_histogram(self.histogram.annotation_id)

    def _restore_current(self) -> None:
        if self._current_key is None:
            return
        r, c = self._find_key(self._current_key)
        if r >= 0:
            self.view.setCurrentCell(r, c)

    def _find_key(self, key) -> tuple[int, int]:
        for r in range(self.view.rowCount()):
            for c in range(self.view.columnCount()):
                it = self.view.item(r, c)
                if it is not None and it.data(KEY_ROLE) == key:
                    return r, c
        return -1, -1

    # ------------------------------------------------------------------ selection
    def current_annotation_id(self) -> str:
        it = self.view.currentItem()
        return (it.data(ID_ROLE) or "") if it is not None else ""

    def _on_current_cell(self, row: int, col: int, _pr: int, _pc: int) -> None:
        if self._updating:
            return
        it = self.view.item(row, col)
        if it is None:
            return
        key = tuple(it.data(KEY_ROLE))
        self._current_key = key
        level, measure = key[0], key[1]
        self.trend.set_level(level)
        self.trend.ensure_measure(measure)
        self.level_selected.emit(level)
        aid = it.data(ID_ROLE) or ""
        self._show_histogram(aid)
        if aid:
            self.annotation_selected.emit(aid)

    def select_annotation(self, annotation_id: str) -> bool:
        """Make the cell of this annotation current, without emitting `annotation_selected`."""
        for r in range(self.view.rowCount()):
            for c in range(len(FIXED_COLUMNS), self.view.columnCount() - 1):
                it = self.view.item(r, c)
                if it is not None and it.data(ID_ROLE) == annotation_id:
                    self._updating = True
                    try:
                        self.view.setCurrentCell(r, c)
                    finally:
                        self._updating = False
                    self._current_key = tuple(it.data(KEY_ROLE))
                    self.trend.set_level(self._current_key[0])
                    self._show_histogram(annotation_id)
                    return True
        return False

    def _show_histogram(self, annotation_id: str) -> None:
        a = None
        if annotation_id and self.annotations is not None and annotation_id in self.annotations:
            a = self.annotations.get(annotation_id)
        if a is None:
            self.histogram.clear()
            return
        self.histogram.show_annotation(a, self.volume_for, self.table.acquisition_of(a))

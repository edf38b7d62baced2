"""`TrendPlot`: one disc level's measurements against days since baseline, one line per measure.

Data come from a `discviewer.measure_table.MeasureTable` (`set_table`), filtered by reader and
patient. The level is chosen in the combo (or by `set_level`), the measures in the check list
(or by `set_measures` / `ensure_measure`); each measure is one `PlotDataItem` named for the legend,
its points the visit means (`MeasureTable.trend`). When a measure was measured repeatedly
(`MeasureTable.sdc`), a shaded band of ± SDC95 around its baseline value shows which changes lie
within measurement error (DOMAIN.md §4). "% of baseline" rescales every line (and band) to its
baseline value, so measures in different units can share the axis.

Attributes for tests and callers: `curves` (measure → PlotDataItem), `bands` (measure →
FillBetweenItem), `sdc` (measure → SdcResult).
"""
from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from discviewer.ui.pgsetup import pg

Qt = QtCore.Qt


#: a qualitative palette (Tableau 10) — distinct colours for neighbouring measures
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def measure_color(index: int) -> QtGui.QColor:
    return QtGui.QColor(PALETTE[index % len(PALETTE)])


class TrendPlot(QtWidgets.QWidget):
    level_changed = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = None
        self.reader: str | None = None
        self.patient: str | None = None
        self.level = ""
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.bands: dict[str, pg.FillBetweenItem] = {}
        self.sdc: dict = {}
        self._band_edges: list = []
        self._checked: set[str] = set()
        self._updating = False

        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        side = QtWidgets.QVBoxLayout()
        self.level_combo = QtWidgets.QComboBox()
        self.level_combo.setToolTip("Disc level to plot")
        self.measure_list = QtWidgets.QListWidget()
        self.measure_list.setToolTip("Measures to plot (one line each)")
        self.measure_list.setMaximumWidth(190)
        self.percent_box = QtWidgets.QCheckBox("% of baseline")
        self.percent_box.setToolTip("Scale every line to its baseline value (100 %)")
        side.addWidget(QtWidgets.QLabel("Level"))
        side.addWidget(self.level_combo)
        side.addWidget(QtWidgets.QLabel("Measures"))
        side.addWidget(self.measure_list, 1)
        side.addWidget(self.percent_box)
        side_w = QtWidgets.QWidget()
        side_w.setLayout(side)
        side_w.setMaximumWidth(200)
        lay.addWidget(side_w)

        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumSize(260, 180)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "days since baseline")
        self.legend = self.plot.addLegend(offset=(-10, 10), labelTextColor="k", brush=pg.mkBrush(255, 255, 255, 200),
                                          pen=pg.mkPen("#bbbbbb"))
        for ax in ("left", "bottom"):
            self.plot.getAxis(ax).setPen("k")
            self.plot.getAxis(ax).setTextPen("k")
        lay.addWidget(self.plot, 1)
        self.empty_text = pg.TextItem("", color="#666", anchor=(0.5, 0.5))
        self.empty_text.setVisible(False)
        self.plot.addItem(self.empty_text, ignoreBounds=True)

        self.level_combo.currentIndexChanged.connect(self._on_level_chosen)
        self.measure_list.itemChanged.connect(self._on_measure_toggled)
        self.percent_box.toggled.connect(lambda _: self.redraw())

    # ------------------------------------------------------------------ inputs
    def set_table(self, table, *, reader: str | None = None, patient: str | None = None) -> None:
        """Show the measurements of `table` (a MeasureTable) for `reader` (None: all) and `patient`."""
        self.table, self.reader, self.patient = table, reader, patient
        self._fill_levels()
        self._fill_measures()
        self.redraw()

    def set_level(self, level: str) -> None:
        if level == self.level:
            return
        self.level = level
        self._updating = True
        try:
            i = self.level_combo.findData(level)
            if i >= 0:
                self.level_combo.setCurrentIndex(i)
        finally:
            self._updating = False
        self._fill_measures()
        self.redraw()

    def set_measures(self, measures) -> None:
        """Plot exactly these measures (those the level has)."""
        self._checked = set(measures)
        self._fill_measures(keep=True)
        self.redraw()

    def ensure_measure(self, measure: str) -> None:
        if measure not in self._checked:
            self._checked.add(measure)
            self._fill_measures(keep=True)
            self.redraw()

    def checked_measures(self) -> list[str]:
        out = []
        for i in range(self.measure_list.count()):
            it = self.measure_list.item(i)
            if it.checkState() == Qt.CheckState.Checked:
                out.append(it.data(Qt.ItemDataRole.UserRole))
        return out

    # ------------------------------------------------------------------ widgets from the table
    def _rows_kw(self) -> dict:
        return {"reader": self.reader, "patient": self.patient}

    def _fill_levels(self) -> None:
        levels = self.table.levels(**self._rows_kw()) if self.table is not None else []
        if self.level not in levels:
            self.level = levels[0] if levels else ""
        self._updating = True
        try:
            self.level_combo.clear()
            for lvl in levels:
                self.level_combo.addItem(lvl or "(no level)", lvl)
            i = self.level_combo.findData(self.level)
            if i >= 0:
                self.level_combo.setCurrentIndex(i)
        finally:
            self._updating = False

    def _level_measures(self) -> list[str]:
        if self.table is None:
            return []
        return self.table.measures(level=self.level, **self._rows_kw())

    def _fill_measures(self, keep: bool = False) -> None:
        measures = self._level_measures()
        if not (self._checked & set(measures)) and measures and not keep:
            unit = self.table.unit(measures[0])
            self._checked = {m for m in measures if self.table.unit(m) == unit and not m.endswith("_pct_baseline")}
        self._updating = True
        try:
            self.measure_list.clear()
            for i, m in enumerate(measures):
                unit = self.table.unit(m)
                it = QtWidgets.QListWidgetItem(f"{m} [{unit}]" if unit else m)
                it.setData(Qt.ItemDataRole.UserRole, m)
                it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                it.setCheckState(Qt.CheckState.Checked if m in self._checked else Qt.CheckState.Unchecked)
                it.setForeground(QtGui.QBrush(measure_color(i)))
                self.measure_list.addItem(it)
        finally:
            self._updating = False

    def _on_level_chosen(self, index: int) -> None:
        if self._updating or index < 0:
            return
        self.level = self.level_combo.itemData(index)
        self._fill_measures()
        self.redraw()
        self.level_changed.emit(self.level)

    def _on_measure_toggled(self, item: QtWidgets.QListWidgetItem) -> None:
        if self._updating:
            return
        m = item.data(Qt.ItemDataRole.UserRole)
        if item.checkState() == Qt.CheckState.Checked:
            self._checked.add(m)
        else:
            self._checked.discard(m)
        self.redraw()

    # ------------------------------------------------------------------ drawing
    def _clear(self) -> None:
        for item in list(self.curves.values()) + list(self.bands.values()) + self._band_edges:
            self.plot.removeItem(item)
        self.legend.clear()
        self.curves, self.bands, self.sdc, self._band_edges = {}, {}, {}, []

    def redraw(self) -> None:
        self._clear()
        measures = self._level_measures()
        chosen = [m for m in measures if m in self._checked]
        percent = self.percent_box.isChecked()
        units = {self.table.unit(m) for m in chosen} if self.table is not None else set()
        self.plot.setLabel("left", "% of baseline" if percent else (
            f"value [{units.pop()}]" if len(units) == 1 and "" not in units else "value"))
        self.plot.setTitle(f"{self.level}" if self.level else "", color="k", size="10pt")
        xs_all: list[float] = []
        for m in chosen:
            pts = self.table.trend(self.level, m, **self._rows_kw())
            if not pts:
                continue
            color = measure_color(measures.index(m))
            base = pts[0][1]
            xs = [float(d) for d, _ in pts]
            ys = [float(v) for _, v in pts]
            if percent:
                if base == 0:
                    continue
                ys = [100.0 * y / base for y in ys]
            xs_all += xs
            sdc = self.table.sdc(m, **self._rows_kw())
            name = m
            if sdc is not None:
                self.sdc[m] = sdc
                name = f"{m}  (band ± SDC95 {100 * sdc.sdc95 / base if percent else sdc.sdc95:.3g})"
            pen = pg.mkPen(color, width=2)
            curve = pg.PlotDataItem(xs, ys, pen=pen, symbol="o", symbolSize=7, symbolBrush=color,
                                    symbolPen=pen, name=name)
            self.plot.addItem(curve)
            self.curves[m] = curve
        # bands after all lines so the x range is known; drawn below the lines
        if xs_all:
            x0, x1 = min(xs_all), max(xs_all)
            if x1 - x0 < 1:
                x0, x1 = x0 - 10, x1 + 10
            for m, sdc in self.sdc.items():
                base = self.curves[m].yData[0]
                half = 100.0 * sdc.sdc95 / self.table.trend(self.level, m, **self._rows_kw())[0][1] \
                    if percent else sdc.sdc95
                color = measure_color(measures.index(m))
                edge_pen = pg.mkPen(color, width=1, style=Qt.PenStyle.DashLine)
                lo = pg.PlotDataItem([x0, x1], [base - half, base - half], pen=edge_pen)
                hi = pg.PlotDataItem([x0, x1], [base + half, base + half], pen=edge_pen)
                fill = QtGui.QColor(color)
                fill.setAlpha(45)
                band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(fill))
                band.setZValue(-10)
                lo.setZValue(-9)
                hi.setZValue(-9)
                for item in (band, lo, hi):
                    self.plot.addItem(item)
                self._band_edges += [lo, hi]
                self.bands[m] = band
                band.setToolTip(f"{m}: baseline ± SDC95 {sdc.sdc95:.3g} (SEM {sdc.sem:.3g}; "
                                f"{sdc.n_groups} repeated set(s), {sdc.n_values} values)")
        self.legend.setVisible(bool(self.curves))
        if self.curves:
            self.empty_text.setVisible(False)
            self.plot.enableAutoRange()
        else:
            self.empty_text.setText("no dated measurements at this level" if self.level or chosen
                                    else "no measurements")
            self.empty_text.setPos(0, 0)
            self.empty_text.setVisible(True)
            self.plot.setRange(xRange=(-1, 1), yRange=(-1, 1))

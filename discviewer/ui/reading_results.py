"""`ReadingResultsPanel`: the coordinator's results of a blinded reading session (a dock of the main window).

- **Progress** per reader: read 1 and re-read as done / total, when the re-read opens, last submit.
- **Agreement** table from `discviewer.reading.agreement.agreement_report`: question × scope (inter:
  read 1 between readers; intra: one reader's read 1 vs re-read) × readers × statistic × value ×
  95 % CI × n × band × note. The panel shows the core's numbers; it computes none of its own.
- **Plots** (pyqtgraph), one per question and reader pair (inter) or reader (intra), chosen in the
  combo: Bland–Altman for numeric questions (difference a − b against the mean, with the bias and
  the 95 % limits of agreement of `discviewer.stats.bland_altman`), a confusion-matrix heatmap
  (counts over the question's full category list, `discviewer.stats.contingency_table`) for
  categorical ones. The data are `rating_matrix` / `reread_pairs` of `discviewer.reading.export`.
- **Buttons**: Export answers CSV… (long format), Export unblinding key… (kept apart: it is the only
  file that links case codes to patients), Export agreement CSV + PNG figures… (a folder:
  `agreement.csv` and one PNG per plot, each marked "Research use only"), Export reader package…,
  Import answers… (`discviewer.reading.package`; a package of another session or answers already
  imported are refused with a message).

The file flows are module functions (`export_package_flow`, `import_answers_flow`) shared with the
Reading menu (`reading_ui.ReadingUI`). Paths may be passed in (tests, scripts); otherwise a file
dialog asks. Messages go through `project_controller.default_ask`.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

import discviewer
from discviewer.ui.pgsetup import pg

Qt = QtCore.Qt

AGREEMENT_HEADERS = ("Question", "Scope", "Readers", "Statistic", "Value", "95% CI", "n", "Band", "Note")
PROGRESS_HEADERS = ("Reader", "Read 1", "Re-read", "Re-read opens", "Last submit")
FIGURE_SIZE = (900, 650)


def ask(parent, kind: str, title: str, text: str, buttons=("OK",)) -> str:
    """A message box through the project controller's `default_ask` (tests replace it)."""
    from discviewer.ui import project_controller

    return project_controller.default_ask(parent)(kind, title, text, list(buttons))


def session_from_workspace(workspace, session_id: str):
    from discviewer.reading import load_session

    return load_session(workspace, session_id)


def format_value(v, digits: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "—" if not math.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


def format_ci(lo, hi, digits: int = 3) -> str:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return ""
    return f"{lo:.{digits}f} – {hi:.{digits}f}"


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "figure"


# ------------------------------------------------------------------------------------------------ plot data
@dataclass
class PlotSpec:
    """One agreement plot: question `question` (its Question in `q`), `scope` "inter"/"intra", the two
    rating columns `a`, `b` over the same cases (`codes`), named `a_name`, `b_name`."""

    question: str
    q: object
    scope: str
    a_name: str
    b_name: str
    codes: list
    a: list
    b: list

    @property
    def kind(self) -> str:
        return "bland_altman" if self.q.is_numeric else "confusion"

    @property
    def title(self) -> str:
        who = f"{self.a_name} vs {self.b_name}" if self.scope == "inter" else f"{self.a_name}: read 1 vs re-read"
        return f"{self.q.text} — {'inter-reader' if self.scope == 'inter' else 'intra-reader'}, {who}"

    @property
    def file_stem(self) -> str:
        who = f"{self.a_name}_vs_{self.b_name}" if self.scope == "inter" else self.a_name
        return safe_name(f"{self.question}_{self.scope}_{who}")


def plot_specs(session) -> list[PlotSpec]:
    """Every plot of the session: per categorical/numeric question, each reader pair of read 1 and
    each reader's read 1 vs re-read (only those with at least one case)."""
    import itertools

    from discviewer.reading.export import rating_matrix, reread_pairs

    out: list[PlotSpec] = []
    for q in session.questions:
        if not (q.is_numeric or q.is_categorical):
            continue
        codes, readers, data, _ = rating_matrix(session, q.id, 1)
        if len(codes) and len(readers) >= 2:
            for i, j in itertools.combinations(range(len(readers)), 2):
                out.append(PlotSpec(q.id, q, "inter", readers[i], readers[j], list(codes), list(data[:, i]),
                                    list(data[:, j])))
        if session.reread_codes:
            for r in session.readers:
                c2, v1, v2 = reread_pairs(session, q.id, r)
                if c2:
                    out.append(PlotSpec(q.id, q, "intra", r, r, list(c2), list(v1), list(v2)))
    return out


class AgreementPlot(pg.PlotWidget):
    """A Bland–Altman plot or a confusion-matrix heatmap of one `PlotSpec` (white background, with
    the research-use mark). Attributes for tests: `points` (the scatter), `lines` (name → InfiniteLine),
    `image` (the heatmap's ImageItem), `counts` (the heatmap's table)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        self.setMinimumSize(320, 240)
        self.spec: PlotSpec | None = None
        self.points = None
        self.lines: dict[str, pg.InfiniteLine] = {}
        self.image = None
        self.counts = None
        for ax in ("left", "bottom"):
            self.getAxis(ax).setPen("k")
            self.getAxis(ax).setTextPen("k")
            self.getAxis(ax).enableAutoSIPrefix(False)

    def clear_plot(self) -> None:
        pi = self.getPlotItem()
        pi.clear()
        if pi.legend is not None:
            pi.legend.scene() and pi.legend.scene().removeItem(pi.legend)
            pi.legend = None
        self.points, self.lines, self.image, self.counts = None, {}, None, None
        for ax in ("left", "bottom"):
            self.getAxis(ax).setTicks(None)
        pi.setTitle("")
        vb = pi.getViewBox()
        vb.invertY(False)
        vb.setAspectLocked(False)
        vb.enableAutoRange()

    def show_spec(self, spec: PlotSpec | None) -> None:
        self.clear_plot()
        self.spec = spec
        if spec is None:
            return
        pi = self.getPlotItem()
        # the research-use mark is part of the title, so it is in every exported figure and never hides data
        pi.setTitle(f"<span style='color:#222'>{spec.title}</span><br>"
                    f"<span style='color:#b00000; font-size:8pt'>{discviewer.RESEARCH_USE_NOTICE}</span>", size="10pt")
        if spec.kind == "bland_altman":
            self._bland_altman(spec)
        else:
            self._confusion(spec)

    def title_text(self) -> str:
        return self.getPlotItem().titleLabel.text

    def _bland_altman(self, spec: PlotSpec) -> None:
        from discviewer import stats

        a = np.asarray(spec.a, float)
        b = np.asarray(spec.b, float)
        mean, diff = (a + b) / 2.0, a - b
        unit = f" ({spec.q.unit})" if getattr(spec.q, "unit", "") else ""
        pi = self.getPlotItem()
        pi.showGrid(x=True, y=True, alpha=0.25)
        pi.setLabel("bottom", f"mean of {spec.a_name} and {spec.b_name}{unit}" if spec.scope == "inter"
                    else f"mean of read 1 and re-read{unit}")
        pi.setLabel("left", f"{spec.a_name} − {spec.b_name}{unit}" if spec.scope == "inter"
                    else f"read 1 − re-read{unit}")
        self.points = pg.ScatterPlotItem(mean, diff, size=8, pen=pg.mkPen("#1f4e79"),
                                         brush=pg.mkBrush(31, 119, 180, 170))
        pi.addItem(self.points)
        ba = stats.bland_altman(a, b)
        self.result = ba
        for name, y, style, color in (("bias", ba.bias, Qt.PenStyle.SolidLine, "#d62728"),
                                      ("loa_low", ba.loa_low, Qt.PenStyle.DashLine, "#7f7f7f"),
                                      ("loa_high", ba.loa_high, Qt.PenStyle.DashLine, "#7f7f7f")):
            if y is None or not math.isfinite(y):
                continue
            text = {"bias": f"bias {y:.3g}", "loa_low": f"−1.96 SD {y:.3g}", "loa_high": f"+1.96 SD {y:.3g}"}[name]
            line = pg.InfiniteLine(pos=y, angle=0, pen=pg.mkPen(color, width=2, style=style),
                                   label=text,
                                   labelOpts={"position": 0.05, "color": color, "anchors": [(0, 1), (0, 1)]})
            pi.addItem(line)
            self.lines[name] = line
        ys = [v for v in [*diff, ba.loa_low, ba.loa_high] if v is not None and math.isfinite(v)]
        if ys:
            pad = max(1e-6, 0.15 * (max(ys) - min(ys)) or 1.0)
            pi.setYRange(min(ys) - pad, max(ys) + pad)

    def _confusion(self, spec: PlotSpec) -> None:
        from discviewer.stats import contingency_table

        q = spec.q
        cats = q.categories()
        table = contingency_table(spec.a, spec.b, cats)
        self.counts = table
        k = len(cats)
        pi = self.getPlotItem()
        pi.showGrid(x=False, y=False)
        # rows of the image = reader a's category (y), columns = reader b's (x); row-major image
        img = pg.ImageItem(table)
        img.setRect(QtCore.QRectF(-0.5, -0.5, k, k))
        img.setLookupTable(pg.colormap.get("CET-L12").getLookupTable(nPts=256) if hasattr(pg.colormap, "get")
                           else None)
        img.setLevels((0, max(1.0, float(table.max()))))
        pi.addItem(img)
        self.image = img
        peak = float(table.max()) or 1.0
        for i in range(k):
            for j in range(k):
                n = int(table[i, j])
                t = pg.TextItem(str(n), color="w" if n > 0.55 * peak else "#222", anchor=(0.5, 0.5))
                t.setPos(j, i)
                pi.addItem(t)
        labels = [(i, q.label_of(c)) for i, c in enumerate(cats)]
        pi.getAxis("bottom").setTicks([labels])
        pi.getAxis("left").setTicks([labels])
        pi.setLabel("bottom", spec.b_name if spec.scope == "inter" else "re-read")
        pi.setLabel("left", spec.a_name if spec.scope == "inter" else "read 1")
        pi.getViewBox().invertY(True)
        pi.setXRange(-0.5, k - 0.5, padding=0.02)
        pi.setYRange(-0.5, k - 0.5, padding=0.02)
        pi.getViewBox().setAspectLocked(False)

    def export_png(self, path: str, size=FIGURE_SIZE) -> str:
        """Write the plot as a PNG of `size` pixels (pyqtgraph's ImageExporter)."""
        import pyqtgraph.exporters

        exporter = pyqtgraph.exporters.ImageExporter(self.getPlotItem())
        exporter.parameters()["width"] = int(size[0])
        exporter.export(path)
        return path


# ------------------------------------------------------------------------------------------------ flows
def export_package_flow(parent, workspace, session_id: str, *, reader: str | None = None, path: str | None = None,
                        choose_reader=None, make_zip: bool = True):
    """Export one reader's package (`discviewer.reading.package.export_reader_package`) into the new
    folder `path` (asked for when None), with a .zip of it beside; errors (e.g. the study not loaded,
    the folder not empty, an identifying string found) are shown in a message box. Returns the
    `ExportedPackage` (None if cancelled or failed)."""
    from discviewer.reading import package

    session = session_from_workspace(workspace, session_id)
    if reader is None:
        reader = choose_reader(session) if choose_reader is not None else (session.readers[0] if session.readers
                                                                          else None)
    if not reader:
        return None
    if path is None:
        start = os.path.join(os.path.dirname(workspace.path) if workspace.path else os.path.expanduser("~"),
                             safe_name(f"{session.name}_{reader}_package"))
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            parent, f"Export reader package for {reader} (a new folder, and a .zip of it)", start, "Folder (*)")
        if not path:
            return None
    try:
        result = package.export_reader_package(workspace, session, reader, path, make_zip=make_zip)
    except Exception as exc:
        ask(parent, "warning", "Reader package not exported", str(exc))
        return None
    reads = ", ".join(f"read {k}: {len(v)} case(s)" for k, v in sorted(result.reads.items()))
    _status(parent, f"Reader package for {reader} written ({reads}, {result.files} image(s)): "
                    f"{result.zip_path or result.path}")
    return result


def import_answers_flow(parent, workspace, session_id: str, *, path: str | None = None):
    """Import a reader's returned answers file (`discviewer.reading.package.import_reader_answers`):
    answers of another session, of a package this session did not issue, already imported
    (duplicates) or contradicting stored ones are refused with a message box. Returns the
    `ImportResult` (None if cancelled or refused)."""
    from discviewer.reading import package

    if path is None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(parent, "Import reader answers", "",
                                                        "Reader answers (answers-*.json *.json);;All files (*)")
        if not path:
            return None
    try:
        session = session_from_workspace(workspace, session_id)
        result = package.import_reader_answers(workspace, session, path)
    except Exception as exc:
        ask(parent, "warning", "Answers not imported", str(exc))
        return None
    _status(parent, f"Answers of {result.reader} imported from {os.path.basename(path)}: "
                    f"{len(result.added)} new, {len(result.updated)} changed, {len(result.unchanged)} already there")
    return result


def _status(parent, text: str) -> None:
    w = parent.window() if isinstance(parent, QtWidgets.QWidget) else None
    if isinstance(w, QtWidgets.QMainWindow):
        w.statusBar().showMessage(text, 8000)


# ------------------------------------------------------------------------------------------------ panel
class ReadingResultsPanel(QtWidgets.QWidget):
    """See the module docstring. `session` is the shown session (reloaded from the workspace by `refresh`)."""

    answers_imported = QtCore.Signal(str)  # session id
    exported = QtCore.Signal(list)  # paths written

    def __init__(self, workspace, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.session = None
        self.report: list = []
        self.specs: list[PlotSpec] = []

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Session"))
        self.session_combo = QtWidgets.QComboBox()
        self.session_combo.setMinimumWidth(240)
        self.session_combo.currentIndexChanged.connect(self._on_session_chosen)
        top.addWidget(self.session_combo, 1)
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        top.addWidget(self.refresh_button)
        notice = QtWidgets.QLabel(discviewer.RESEARCH_USE_NOTICE)
        notice.setStyleSheet("color: #b00000; font-weight: bold;")
        top.addWidget(notice)
        lay.addLayout(top)

        buttons = QtWidgets.QHBoxLayout()
        self.export_answers_button = QtWidgets.QPushButton("Export answers CSV…")
        self.export_key_button = QtWidgets.QPushButton("Export unblinding key…")
        self.export_key_button.setToolTip("Case code → patient, visit, date, label, level. Keep it apart from "
                                          "the answers until the analysis is unblinded.")
        self.export_agreement_button = QtWidgets.QPushButton("Export agreement CSV + PNG figures…")
        self.export_package_button = QtWidgets.QPushButton("Export reader package…")
        self.import_button = QtWidgets.QPushButton("Import answers…")
        self.export_answers_button.clicked.connect(lambda: self.export_answers())
        self.export_key_button.clicked.connect(lambda: self.export_key())
        self.export_agreement_button.clicked.connect(lambda: self.export_agreement())
        self.export_package_button.clicked.connect(lambda: self.export_package())
        self.import_button.clicked.connect(lambda: self.import_answers())
        for b in (self.export_answers_button, self.export_key_button, self.export_agreement_button,
                  self.export_package_button, self.import_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay.addLayout(buttons)

        split = QtWidgets.QSplitter(Qt.Orientation.Horizontal)
        left = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        self.info_label = QtWidgets.QLabel("")
        self.info_label.setWordWrap(True)
        ll.addWidget(self.info_label)
        ll.addWidget(QtWidgets.QLabel("<b>Progress</b>"))
        self.progress_table = QtWidgets.QTableWidget(0, len(PROGRESS_HEADERS))
        self.progress_table.setHorizontalHeaderLabels(list(PROGRESS_HEADERS))
        self.progress_table.verticalHeader().setVisible(False)
        self.progress_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.progress_table.verticalHeader().setDefaultSectionSize(22)
        ll.addWidget(self.progress_table)
        ll.addWidget(QtWidgets.QLabel("<b>Agreement</b> (inter: first read between readers; intra: first read vs "
                                      "re-read of each reader)"))
        self.agreement_table = QtWidgets.QTableWidget(0, len(AGREEMENT_HEADERS))
        self.agreement_table.setHorizontalHeaderLabels(list(AGREEMENT_HEADERS))
        self.agreement_table.verticalHeader().setVisible(False)
        self.agreement_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.agreement_table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.agreement_table.horizontalHeader().setStretchLastSection(True)
        self.agreement_table.verticalHeader().setDefaultSectionSize(22)
        ll.addWidget(self.agreement_table, 1)
        split.addWidget(left)

        right = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        self.plot_combo = QtWidgets.QComboBox()
        self.plot_combo.setToolTip("Question and reader pair (inter-reader) or reader (intra-reader) to plot")
        self.plot_combo.currentIndexChanged.connect(self._on_plot_chosen)
        rl.addWidget(self.plot_combo)
        self.plot = AgreementPlot()
        rl.addWidget(self.plot, 1)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.splitter = split
        lay.addWidget(split, 1)
        self.agreement_table.itemSelectionChanged.connect(self._on_row_selected)
        self._refresh_timer = QtCore.QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)
        self._refresh_timer.timeout.connect(self.refresh)
        self._unsub = None
        self._watch(workspace)
        self._fill_sessions()

    def _watch(self, workspace) -> None:
        """Refresh (once per event-loop turn) when a reading session of the workspace is stored:
        a submit, an import, a new session."""
        if self._unsub is not None:
            self._unsub()
            self._unsub = None
        changed = getattr(workspace, "changed", None)
        if changed is not None:
            self._unsub = changed.subscribe(self._on_workspace_changed)

    def _on_workspace_changed(self, change) -> None:
        if str(getattr(change, "name", "")).startswith("reading session"):
            try:
                self._refresh_timer.start()
            except RuntimeError:  # the panel was deleted without closing: stop listening
                self._watch(None)

    # ------------------------------------------------------------------ model
    def set_workspace(self, workspace) -> None:
        self.workspace = workspace
        self.session = None
        self._watch(workspace)
        self._fill_sessions()

    def closeEvent(self, ev) -> None:  # noqa: N802 - Qt API
        self._watch(None)
        super().closeEvent(ev)

    def session_ids(self) -> list[str]:
        from discviewer.reading.session import FORMAT

        return [k for k, d in self.workspace.reading.items() if isinstance(d, dict) and d.get("format") == FORMAT]

    def _fill_sessions(self) -> None:
        keep = self.session.id if self.session is not None else None
        combo = self.session_combo
        combo.blockSignals(True)
        combo.clear()
        for sid in self.session_ids():
            d = self.workspace.reading[sid]
            combo.addItem(f"{d.get('name') or 'session'} ({sid[:8]})", sid)
        i = combo.findData(keep) if keep else (0 if combo.count() else -1)
        combo.setCurrentIndex(max(i, 0) if combo.count() else -1)
        combo.blockSignals(False)
        self._on_session_chosen()

    def set_session(self, session_id: str) -> None:
        i = self.session_combo.findData(session_id)
        if i < 0:
            self._fill_sessions()
            i = self.session_combo.findData(session_id)
        if i >= 0:
            if i == self.session_combo.currentIndex():
                self._on_session_chosen()
            else:
                self.session_combo.setCurrentIndex(i)

    def _on_session_chosen(self, *args) -> None:
        sid = self.session_combo.currentData()
        self.session = session_from_workspace(self.workspace, sid) if sid else None
        self._show()

    def refresh(self) -> None:
        """Reload the sessions and the shown session's answers from the workspace."""
        self._fill_sessions()

    # ------------------------------------------------------------------ views
    def _show(self) -> None:
        s = self.session
        has = s is not None
        for b in (self.export_answers_button, self.export_key_button, self.export_agreement_button,
                  self.export_package_button, self.import_button):
            b.setEnabled(has)
        if not has:
            self.info_label.setText("No reading session in this project (Reading → New reading session…).")
            self.report, self.specs = [], []
            self.progress_table.setRowCount(0)
            self.agreement_table.setRowCount(0)
            self._fill_plot_combo()
            return
        o = s.options
        self.info_label.setText(
            f"<b>{s.name}</b> — {len(s.cases)} case(s), {len(s.questions)} question(s), "
            f"{len(s.readers)} reader(s); seed {s.seed}; re-read {len(o.reread_codes)} case(s) after "
            f"{o.washout_days:g} days; answers {'may change' if o.allow_change_after_submit else 'lock'} on submit")
        self._fill_progress()
        from discviewer.reading.agreement import agreement_report

        self.report = agreement_report(s)
        self._fill_agreement()
        self.specs = plot_specs(s)
        self._fill_plot_combo()

    def progress_rows(self) -> list[tuple]:
        """(reader, read-1 done, read-1 total, re-read done, re-read total, opens, last submit) per reader."""
        from discviewer.reading import ReaderProgress

        s = self.session
        p = ReaderProgress(s)
        rows = []
        for r in s.readers:
            d1, t1 = p.progress(r, 1)
            d2, t2 = p.progress(r, 2) if s.reread_codes else (0, 0)
            opens = p.reread_opens_at(r)
            last = max([p.last_submit(r, rd) for rd in (1, 2) if p.last_submit(r, rd) is not None], default=None)
            rows.append((r, d1, t1, d2, t2, opens, last))
        return rows

    def _fill_progress(self) -> None:
        t = self.progress_table
        rows = self.progress_rows()
        t.setRowCount(len(rows))
        for i, (r, d1, t1, d2, t2, opens, last) in enumerate(rows):
            cells = (r, f"{d1}/{t1}", f"{d2}/{t2}" if t2 else "—",
                     opens.date().isoformat() if opens is not None else ("after read 1" if t2 else "—"),
                     last.strftime("%Y-%m-%d %H:%M UTC") if last is not None else "")
            for c, text in enumerate(cells):
                it = QtWidgets.QTableWidgetItem(text)
                if c in (1, 2):
                    done, total = (d1, t1) if c == 1 else (d2, t2)
                    if total and done == total:
                        it.setForeground(QtGui.QColor("#2c7a2c"))
                t.setItem(i, c, it)
        t.resizeColumnsToContents()
        # as tall as its rows (up to 6), so the agreement table gets the room
        t.setFixedHeight(t.horizontalHeader().height() + 22 * max(1, min(len(rows), 6)) + 2 * t.frameWidth() + 2)

    def _fill_agreement(self) -> None:
        t = self.agreement_table
        t.setRowCount(len(self.report))
        for i, row in enumerate(self.report):
            cells = (row.question, row.scope, row.readers, row.statistic, format_value(row.value),
                     format_ci(row.ci_low, row.ci_high), str(row.n), row.band, row.note)
            for c, text in enumerate(cells):
                it = QtWidgets.QTableWidgetItem(text)
                if c in (4, 5, 6):
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 0:
                    it.setData(Qt.ItemDataRole.UserRole, i)
                if c == 8 and text:
                    it.setToolTip(text)
                t.setItem(i, c, it)
        t.resizeColumnsToContents()

    def _fill_plot_combo(self) -> None:
        combo = self.plot_combo
        keep = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        for spec in self.specs:
            combo.addItem(spec.title)
        i = combo.findText(keep)
        combo.setCurrentIndex(i if i >= 0 else (0 if self.specs else -1))
        combo.blockSignals(False)
        self._on_plot_chosen()

    def _on_plot_chosen(self, *args) -> None:
        i = self.plot_combo.currentIndex()
        self.plot.show_spec(self.specs[i] if 0 <= i < len(self.specs) else None)

    def _on_row_selected(self) -> None:
        """Selecting an agreement row shows the matching plot (same question and scope; the pair if named)."""
        rows = self.agreement_table.selectionModel().selectedRows() if self.agreement_table.selectionModel() else []
        if not rows:
            return
        row = self.report[rows[0].row()]
        for i, spec in enumerate(self.specs):
            if spec.question != row.question or spec.scope != row.scope:
                continue
            if spec.scope == "intra" and spec.a_name != row.readers:
                continue
            if spec.scope == "inter" and " vs " in row.readers and row.readers != f"{spec.a_name} vs {spec.b_name}":
                continue
            self.plot_combo.setCurrentIndex(i)
            return

    def select_plot(self, question: str, scope: str, a_name: str, b_name: str | None = None) -> PlotSpec | None:
        for i, spec in enumerate(self.specs):
            if (spec.question, spec.scope, spec.a_name) == (question, scope, a_name) and \
                    (b_name is None or spec.b_name == b_name):
                self.plot_combo.setCurrentIndex(i)
                return spec
        return None

    # ------------------------------------------------------------------ exports
    def _save_path(self, title: str, name: str, filt: str = "CSV (*.csv)") -> str | None:
        start = os.path.join(os.path.dirname(self.workspace.path or os.path.expanduser("~/x")), name)
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, title, start, filt)
        return path or None

    def export_answers(self, path: str | None = None) -> str | None:
        from discviewer.reading.export import answers_csv

        if self.session is None:
            return None
        path = path or self._save_path("Export answers", safe_name(f"{self.session.name}_answers") + ".csv")
        if not path:
            return None
        try:
            answers_csv(self.session, path)
        except Exception as exc:
            ask(self, "warning", "Answers not exported", str(exc))
            return None
        self._log("reading answers exported", path)
        self.exported.emit([path])
        return path

    def export_key(self, path: str | None = None) -> str | None:
        from discviewer.reading.export import unblinding_key_csv

        if self.session is None:
            return None
        path = path or self._save_path("Export unblinding key",
                                       safe_name(f"{self.session.name}_unblinding_key") + ".csv")
        if not path:
            return None
        try:
            unblinding_key_csv(self.session, path)
        except Exception as exc:
            ask(self, "warning", "Unblinding key not exported", str(exc))
            return None
        self._log("reading unblinding key exported", path)
        self.exported.emit([path])
        return path

    def export_agreement(self, folder: str | None = None) -> list[str]:
        """Write `agreement.csv` and one PNG per plot (`<question>_<scope>_<readers>.png`) into `folder`."""
        from discviewer.reading.agreement import agreement_csv

        if self.session is None:
            return []
        if folder is None:
            folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder for the agreement CSV and figures")
            if not folder:
                return []
        written: list[str] = []
        try:
            os.makedirs(folder, exist_ok=True)
            stem = safe_name(self.session.name or "session")
            csv_path = os.path.join(folder, f"{stem}_agreement.csv")
            agreement_csv(self.report, csv_path)
            written.append(csv_path)
            fig = AgreementPlot()
            fig.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)  # laid out, never on screen
            fig.resize(*FIGURE_SIZE)
            fig.show()
            try:
                for spec in self.specs:
                    fig.show_spec(spec)
                    QtWidgets.QApplication.processEvents()
                    written.append(fig.export_png(os.path.join(folder, f"{stem}_{spec.file_stem}.png")))
            finally:
                fig.close()
                fig.deleteLater()
        except Exception as exc:
            ask(self, "warning", "Agreement not exported", str(exc))
            return written
        self._log("reading agreement exported", folder, f"{len(written)} file(s)")
        self.exported.emit(written)
        return written

    def export_package(self, reader: str | None = None, path: str | None = None):
        if self.session is None:
            return None
        result = export_package_flow(self, self.workspace, self.session.id, reader=reader, path=path,
                                     choose_reader=self._choose_reader)
        if result is not None:
            self.refresh()  # the session's register of issued packages changed
        return result

    def _choose_reader(self, session) -> str | None:
        if len(session.readers) <= 1:
            return session.readers[0] if session.readers else None
        text, ok = QtWidgets.QInputDialog.getItem(self, "Export reader package", "Reader:", list(session.readers),
                                                  0, False)
        return text if ok else None

    def import_answers(self, path: str | None = None):
        if self.session is None:
            return None
        result = import_answers_flow(self, self.workspace, self.session.id, path=path)
        if result is not None:
            sid = self.session.id
            self.refresh()
            self.answers_imported.emit(sid)
        return result

    def _log(self, action: str, target: str, new: str = "") -> None:
        ws = self.workspace
        if hasattr(ws, "log"):
            ws.log(action, target, "", new or (self.session.id if self.session is not None else ""))

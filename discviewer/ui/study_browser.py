"""`StudyBrowserPanel`: the review model as a tree — Patient → visits → series entries.

Rows:
- **patient** — "FAMILY, GIVEN (ID)".
- **visit** — one per `Visit`, ordered by date: "<label> · <date> · day +N · <description>"
  (e.g. "3 m · 2019-11-16 · day +96 · MR LUMBAR SPINE"). The label is editable: double-click,
  F2 or the context menu ("Rename visit…") opens an inline editor; empty text restores the
  default label ("Reset label" in the context menu does the same).
- **series** — one per `SeriesEntry` (all echoes of a multi-echo series in one row), columns
  thumbnail + title, role, slices, matrix, TE ("90 ms", or "4–24 ms (5)" for 5 echoes). A guessed
  role is shown in italics with the guess's reason as tooltip. The role is corrected from the
  context menu (the roles of `discviewer.roles.ROLES` plus "Reset to guess") or with an inline
  combo (double-click or F2 on the role cell). Localizers are greyed; series with scan warnings
  carry a warning badge on the thumbnail and list the warnings in the tooltip.
- **Problems (n)** — collapsed, one row per file the scan could not use, with its reason.

Update flow (DESIGN.md §4): edits go to the model (`Visit.set_label`, `SeriesEntry.set_role` /
`reset_role`); the rows change only from the model's `changed` events, so a change made
elsewhere (a script, another panel) shows here too.

Thumbnails: the middle slice of each series' first echo, windowed p1–p99, at most `THUMB_SIZE`
px with its physical aspect ratio. They are made lazily — only for rows scrolled into view — by
one low-priority pool thread (`discviewer.io.load_slice`, one frame each); a result is applied
on the GUI thread and only to rows that still exist. They are cached per candidate (by the file
and frame of the middle slice, so a rescan of the same folder reuses them). Candidates without
header records (e.g. test fakes) get no thumbnail.

Signals: `series_selected(VolumeCandidate)` when a series row becomes current (the entry's first
echo, or the echo asked for by `select_candidate`), and `entry_selected(SeriesEntry)`.
"""
from __future__ import annotations

import datetime as _dt
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from discviewer.roles import ROLES

Qt = QtCore.Qt

ROLE_KIND = Qt.ItemDataRole.UserRole + 1  # "patient" | "visit" | "series" | "problems" | "problem"
ROLE_INDEX = Qt.ItemDataRole.UserRole + 2  # index into the panel's visit / entry / problem list
ROLE_THUMB_ROW = Qt.ItemDataRole.UserRole + 3  # series row sized for a thumbnail (False: none possible)

COLUMNS = ("Series", "Role", "Slices", "Matrix", "TE")
COL_TITLE, COL_ROLE, COL_SLICES, COL_MATRIX, COL_TE = range(len(COLUMNS))

THUMB_SIZE = 48  # px, the square a thumbnail is fitted into
NARROW_WIDTH = 560  # px of tree viewport below which the Slices and Matrix columns are hidden (tooltip keeps them)
THUMB_CACHE_MAX = 4096  # thumbnails kept per panel (48² grey ≈ 2.3 kB each)
RESET_TO_GUESS = "Reset to guess"
RENAME_VISIT = "Rename visit…"
RESET_LABEL = "Reset label"


# ------------------------------------------------------------------------------ text helpers
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


def format_echo_times(tes: list[float | None]) -> str:
    """"90 ms" for one echo; "4–24 ms (5)" for several; "" when no TE is known."""
    known = [t for t in tes if t is not None]
    if not known:
        return "" if len(tes) <= 1 else f"({len(tes)})"
    if len(tes) == 1:
        return f"{format_te(known[0])} ms"
    lo, hi = min(known), max(known)
    span = format_te(lo) if abs(hi - lo) < 0.05 else f"{format_te(lo)}–{format_te(hi)}"
    return f"{span} ms ({len(tes)})"


def format_days(days: int | None) -> str:
    if days is None:
        return ""
    return "day 0" if days == 0 else f"day {days:+d}"


def visit_text(visit: Any) -> str:
    """The visit row's text: "3 m · 2019-11-16 · day +96 · MR LUMBAR SPINE" (parts that are missing are left out)."""
    parts = [visit.label, visit.date.isoformat() if visit.date is not None else "no date"]
    if visit.days is not None:
        parts.append(format_days(visit.days))
    if visit.description:
        parts.append(visit.description)
    return " · ".join(p for p in parts if p)


def candidate_label(c: Any) -> str:
    return c.label or c.info.series_description or f"Series {c.info.series_number or '?'}"


def entry_is_localizer(entry: Any) -> bool:
    return any(getattr(c, "is_localizer", False) for c in entry.echoes)


# ------------------------------------------------------------------------------ thumbnails
def can_thumbnail(candidate: Any) -> bool:
    """True when `discviewer.io.load_slice` can read a slice (the scan kept header records)."""
    private = getattr(candidate, "private", None) or {}
    return bool(private.get("headers") or private.get("nifti")) and candidate.slice_count > 0


def thumbnail_key(candidate: Any) -> tuple:
    """Cache key: file and frame of the middle slice, and the matrix."""
    from discviewer.display import middle_slice

    f = candidate.frames[middle_slice(candidate.slice_count)]
    return (f.path, f.frame, candidate.rows, candidate.columns)


def default_slice_fn(candidate: Any) -> np.ndarray | None:
    """The middle slice of `candidate` as a 2-D array (None when it has no header records)."""
    if not can_thumbnail(candidate):
        return None
    from discviewer.display import middle_slice
    from discviewer.io import load_slice

    vol = load_slice(candidate, middle_slice(candidate.slice_count))
    return np.asarray(vol.array)[0]


def thumbnail_image(array: np.ndarray, spacing=None, size: int = THUMB_SIZE) -> QtGui.QImage:
    """A greyscale QImage of a 2-D slice (rows, columns), windowed p1–p99, fitted into size×size
    keeping the physical aspect ratio (`spacing` = (column, row, …) mm). Safe off the GUI thread."""
    from discviewer.display import auto_window

    a = np.asarray(array, dtype=np.float32)
    center, width = auto_window(a)
    lo = center - width / 2.0
    g = np.clip((np.nan_to_num(a, nan=lo) - lo) * (255.0 / width), 0, 255).astype(np.uint8)
    g = np.ascontiguousarray(g)
    h, w = g.shape
    sx, sy = (float(spacing[0]), float(spacing[1])) if spacing else (1.0, 1.0)
    if not (sx > 0 and sy > 0):
        sx = sy = 1.0
    pw, ph = w * sx, h * sy
    scale = size / max(pw, ph)
    tw, th = max(1, int(round(pw * scale))), max(1, int(round(ph * scale)))
    img = QtGui.QImage(g.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()
    return img.scaled(tw, th, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)


class _ThumbnailSignals(QtCore.QObject):
    ready = QtCore.Signal(object, object)  # (key, QImage | None)


class _ThumbnailTask(QtCore.QRunnable):
    def __init__(self, key, candidate, slice_fn, signals: _ThumbnailSignals, closed: Callable[[], bool]) -> None:
        super().__init__()
        self.key, self.candidate, self.slice_fn = key, candidate, slice_fn
        self.signals, self.closed = signals, closed

    def run(self) -> None:
        image = None
        if not self.closed():
            try:
                arr = self.slice_fn(self.candidate)
                if arr is not None:
                    image = thumbnail_image(arr, self.candidate.spacing)
            except Exception:  # an unreadable slice just has no thumbnail
                image = None
        try:
            self.signals.ready.emit(self.key, image)
        except RuntimeError:  # the panel is gone
            pass


# ------------------------------------------------------------------------------ delegate
class _BrowserDelegate(QtWidgets.QStyledItemDelegate):
    """Small icons outside series rows; inline editors that write to the model, not to the item."""

    def __init__(self, panel: "StudyBrowserPanel") -> None:
        super().__init__(panel.tree)
        self.panel = panel

    def initStyleOption(self, option, index) -> None:  # noqa: N802 (Qt name)
        super().initStyleOption(option, index)
        first = index.siblingAtColumn(0)
        if first.data(ROLE_KIND) != "series" or not first.data(ROLE_THUMB_ROW):
            option.decorationSize = QtCore.QSize(16, 16)

    def createEditor(self, parent, option, index):  # noqa: N802
        target = self.panel._edit_target(index)
        if target is None:
            return None
        kind, obj = target
        if kind == "visit":
            ed = QtWidgets.QLineEdit(parent)
            ed.setObjectName("visit-label-editor")
            ed.setPlaceholderText(f"{obj.default_label} (default)")
            ed.setToolTip(f"Visit label; leave empty for the default ({obj.default_label})")
            return ed
        combo = QtWidgets.QComboBox(parent)
        combo.setObjectName("role-editor")
        for r in ROLES:
            combo.addItem(r + ("  (guess)" if r == obj.guessed_role.value else ""), r)
        combo.insertSeparator(combo.count())
        combo.addItem(RESET_TO_GUESS, RESET_TO_GUESS)

        def commit(_i: int, c=combo) -> None:
            self.commitData.emit(c)
            self.closeEditor.emit(c, QtWidgets.QAbstractItemDelegate.EndEditHint.NoHint)

        combo.activated.connect(commit)
        return combo

    def setEditorData(self, editor, index) -> None:  # noqa: N802
        target = self.panel._edit_target(index)
        if target is None:
            return
        kind, obj = target
        if kind == "visit":
            editor.setText(obj.label)
            editor.selectAll()
        else:
            editor.setCurrentIndex(max(0, editor.findData(obj.role.value)))

    def setModelData(self, editor, model, index) -> None:  # noqa: N802
        target = self.panel._edit_target(index)
        if target is None:
            return
        kind, obj = target
        if kind == "visit":
            self.panel.rename_visit(obj, editor.text())
        else:
            self.panel.choose_role(obj, editor.currentData())

    def updateEditorGeometry(self, editor, option, index) -> None:  # noqa: N802
        rect = QtCore.QRect(option.rect)
        if isinstance(editor, QtWidgets.QLineEdit):
            rect.setWidth(max(rect.width(), 160))
        else:
            rect.setWidth(max(rect.width(), editor.sizeHint().width()))
            rect.setHeight(editor.sizeHint().height())  # may overlap neighbours in compact rows
            rect.moveTop(option.rect.center().y() - rect.height() // 2)
        editor.setGeometry(rect)


# ------------------------------------------------------------------------------ panel
class StudyBrowserPanel(QtWidgets.QWidget):
    """Tree of patients, visits and series entries, plus the scan's problems."""

    series_selected = QtCore.Signal(object)  # VolumeCandidate
    entry_selected = QtCore.Signal(object)  # SeriesEntry
    _model_changed = QtCore.Signal(object)  # events.Change, re-dispatched onto the GUI thread

    def __init__(self, parent: QtWidgets.QWidget | None = None, *,
                 slice_fn: Callable[[Any], np.ndarray | None] | None = None) -> None:
        super().__init__(parent)
        self._study: Any = None
        self._owns_study = False
        self._unsubscribe: Callable[[], None] | None = None
        self._scan_result: Any = None
        self._candidates: list[Any] = []
        self._entries: list[Any] = []
        self._entry_items: list[QtWidgets.QTreeWidgetItem] = []
        self._visits: list[Any] = []
        self._visit_items: list[QtWidgets.QTreeWidgetItem] = []
        self._entry_of_candidate: dict[int, int] = {}  # id(candidate) → entry index
        self._index_of_visit: dict[int, int] = {}
        self._index_of_entry: dict[int, int] = {}
        self._rows_of_thumb: dict[tuple, list[int]] = {}  # thumbnail key → entry indices
        self._problems: list[Any] = []
        self._current_echo: Any = None
        self._pending_echo: Any = None
        self.problems_item: QtWidgets.QTreeWidgetItem | None = None

        # thumbnails
        self.slice_fn = slice_fn or default_slice_fn
        self._thumbs: OrderedDict[tuple, QtGui.QImage | None] = OrderedDict()
        self._inflight: set[tuple] = set()
        self._requested: set[int] = set()  # entry indices whose thumbnail was asked for (this study)
        self._closed = False
        self._pool = QtCore.QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._pool.setThreadPriority(QtCore.QThread.Priority.LowPriority)
        self._thumb_signals = _ThumbnailSignals()
        self._thumb_signals.ready.connect(self._on_thumbnail_ready)
        self._thumb_timer = QtCore.QTimer(self)
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.setInterval(0)
        self._thumb_timer.timeout.connect(self.request_visible_thumbnails)

        self.summary = QtWidgets.QLabel("No folder open")
        self.summary.setWordWrap(True)
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setUniformRowHeights(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setIconSize(QtCore.QSize(THUMB_SIZE, THUMB_SIZE))
        self.tree.setIndentation(14)
        self.tree.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setExpandsOnDoubleClick(False)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.delegate = _BrowserDelegate(self)
        self.tree.setItemDelegate(self.delegate)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_TITLE, QtWidgets.QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setMinimumSectionSize(24)
        self.tree.currentItemChanged.connect(self._on_current_item_changed)
        self.tree.itemDoubleClicked.connect(self._on_item_double_clicked)
        self.tree.customContextMenuRequested.connect(self._on_context_menu_requested)
        self.tree.itemExpanded.connect(lambda *_: self._schedule_thumbnails())
        self.tree.verticalScrollBar().valueChanged.connect(lambda *_: self._schedule_thumbnails())
        self.tree.installEventFilter(self)
        self.tree.viewport().installEventFilter(self)
        self._model_changed.connect(self._on_model_changed)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree)

    # ------------------------------------------------------------------ content
    @property
    def study(self) -> Any:
        """The `discviewer.study.Study` shown (None before a scan)."""
        return self._study

    def clear(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._owns_study and self._study is not None:
            self._study.close()
        self._study, self._owns_study, self._scan_result = None, False, None
        self.tree.blockSignals(True)
        self.tree.clear()
        self.tree.blockSignals(False)
        self._candidates, self._entries, self._entry_items = [], [], []
        self._visits, self._visit_items, self._problems = [], [], []
        self._entry_of_candidate, self._index_of_visit, self._index_of_entry = {}, {}, {}
        self._rows_of_thumb = {}
        self._requested = set()
        self._current_echo = self._pending_echo = None
        self.problems_item = None
        self.summary.setText("No folder open")

    def set_scan_result(self, result: Any) -> None:
        """Show `result` (a `ScanResult`), building its `Study` here (prefer `set_study`)."""
        from discviewer.study import Study

        self.set_study(Study.from_scan(result), result)
        self._owns_study = True

    def set_study(self, study: Any, scan_result: Any = None) -> None:
        """Show `study` (a `discviewer.study.Study`; the caller keeps owning it) and the problems and
        cancelled flag of `scan_result` (the `ScanResult` it was built from; optional)."""
        self.clear()
        self._study, self._scan_result = study, scan_result
        self.tree.blockSignals(True)
        try:
            self._fill(study, scan_result)
        finally:
            self.tree.blockSignals(False)
        self._unsubscribe = study.changed.subscribe(self._relay_change)
        n_visits = len(self._visits)
        text = (f"{len(self._entries)} series in {n_visits} "
                f"{'visit' if n_visits == 1 else 'visits'}")
        if len(self._candidates) != len(self._entries):
            text += f" ({len(self._candidates)} volumes)"
        if self._problems:
            text += f" · {len(self._problems)} problem{'s' if len(self._problems) != 1 else ''}"
        if getattr(scan_result, "cancelled", False):
            text += " · scan cancelled (partial)"
        self.summary.setText(text)
        self._schedule_thumbnails()

    def _fill(self, study: Any, scan_result: Any) -> None:
        bold = QtGui.QFont()
        bold.setBold(True)
        for patient in study.patients:
            name = format_patient_name(patient.name)
            title = f"{name} ({patient.id})" if name and patient.id else (name or patient.id or "(no patient ID)")
            p_item = QtWidgets.QTreeWidgetItem([title])
            p_item.setData(0, ROLE_KIND, "patient")
            p_item.setFont(0, bold)
            p_item.setToolTip(0, f"Patient ID: {patient.id}\nName: {patient.name}\n{len(patient.visits)} visits")
            self.tree.addTopLevelItem(p_item)
            p_item.setFirstColumnSpanned(True)
            for visit in patient.visits:
                self._add_visit(p_item, visit)
            p_item.setExpanded(True)
        self._problems = list(getattr(scan_result, "problems", None) or [])
        if self._problems:
            self._add_problems()

    def _add_visit(self, parent: QtWidgets.QTreeWidgetItem, visit: Any) -> None:
        item = QtWidgets.QTreeWidgetItem()
        item.setData(0, ROLE_KIND, "visit")
        item.setData(0, ROLE_INDEX, len(self._visits))
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        self._index_of_visit[id(visit)] = len(self._visits)
        self._visits.append(visit)
        self._visit_items.append(item)
        parent.addChild(item)
        item.setFirstColumnSpanned(True)
        self._update_visit_item(visit)
        for entry in visit.series:
            self._add_entry(item, entry)
        item.setExpanded(True)

    def _update_visit_item(self, visit: Any) -> None:
        item = self._visit_items[self._index_of_visit[id(visit)]]
        item.setText(0, visit_text(visit))
        label_line = (f"Label: {visit.label} (default)" if visit.label_is_default else
                      f"Label: {visit.label} (default: {visit.default_label})")
        item.setToolTip(0, "\n".join([
            label_line,
            f"Study date: {visit.date.isoformat() if visit.date else 'none'}"
            + (f" ({format_days(visit.days)} from baseline)" if visit.days is not None else ""),
            f"Description: {visit.description or '—'}",
            f"{len(visit.series)} series",
            f"Study UID: {visit.study_uid}",
            "Double-click or F2 to rename",
        ]))

    def _add_entry(self, parent: QtWidgets.QTreeWidgetItem, entry: Any) -> None:
        first = entry.echoes[0]
        item = QtWidgets.QTreeWidgetItem([entry.title, "", str(first.slice_count), f"{first.rows}×{first.columns}",
                                          format_echo_times(entry.echo_times)])
        index = len(self._entries)
        item.setData(0, ROLE_KIND, "series")
        item.setData(0, ROLE_INDEX, index)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        item.setData(0, ROLE_THUMB_ROW, self.slice_fn is not default_slice_fn or can_thumbnail(first))
        for col in (COL_SLICES, COL_TE):
            item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        item.setToolTip(0, self._entry_tooltip(entry))
        if entry_is_localizer(entry):
            grey = QtGui.QBrush(self.palette().color(QtGui.QPalette.ColorRole.PlaceholderText))
            for col in range(len(COLUMNS)):
                item.setForeground(col, grey)
        self._index_of_entry[id(entry)] = index
        self._entries.append(entry)
        self._entry_items.append(item)
        for c in entry.echoes:
            self._entry_of_candidate[id(c)] = index
            self._candidates.append(c)
        try:
            self._rows_of_thumb.setdefault(thumbnail_key(first), []).append(index)
        except (IndexError, AttributeError):
            pass
        parent.addChild(item)
        self._update_entry_item(entry)
        self._apply_thumbnail(index)

    def _entry_tooltip(self, entry: Any) -> str:
        c = entry.echoes[0]
        tip = [entry.title, f"Series number: {c.info.series_number}",
               f"Description: {c.info.series_description or '—'}",
               f"Matrix: {c.rows}×{c.columns}, {c.slice_count} slices"]
        if c.spacing:
            tip.append("Voxel (col × row × slice): " + " × ".join(f"{v:.2f}" for v in c.spacing) + " mm")
        else:
            tip.append("No usable geometry")
        tes = [format_te(t) for t in entry.echo_times if t is not None]
        if tes:
            tip.append(f"TE {', '.join(tes)} ms")
        if c.info.repetition_time is not None:
            tip.append(f"TR {format_te(c.info.repetition_time)} ms")
        warnings = self._entry_warnings(entry)
        if warnings:
            tip.append("Warnings:")
            tip.extend(f"  • {w}" for w in warnings)
        return "\n".join(tip)

    @staticmethod
    def _entry_warnings(entry: Any) -> list[str]:
        seen: dict[str, None] = {}
        for c in entry.echoes:
            for w in c.warnings:
                seen.setdefault(w, None)
        return list(seen)

    def _update_entry_item(self, entry: Any) -> None:
        item = self._entry_items[self._index_of_entry[id(entry)]]
        item.setText(COL_ROLE, entry.role.value)
        font = QtGui.QFont(self.tree.font())
        font.setItalic(entry.role_is_guessed)
        item.setFont(COL_ROLE, font)
        if entry.role_is_guessed:
            tip = f"Guessed role: {entry.role.value}\n{entry.role_reason}"
        else:
            tip = f"Role set by the user: {entry.role.value}\n(guess was {entry.guessed_role.value}: {entry.role_reason})"
        item.setToolTip(COL_ROLE, tip + "\nRight-click, double-click or F2 to change")

    def _add_problems(self) -> None:
        n = len(self._problems)
        top = QtWidgets.QTreeWidgetItem([f"Problems ({n})"])
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

    # ------------------------------------------------------------------ model → view
    def _relay_change(self, change: Any) -> None:
        try:
            self._model_changed.emit(change)
        except RuntimeError:  # the C++ panel is gone: stop listening
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

    def _on_model_changed(self, change: Any) -> None:
        src = change.source
        if change.name == "label" and id(src) in self._index_of_visit and \
                self._visits[self._index_of_visit[id(src)]] is src:
            self._update_visit_item(src)
        elif change.name == "role" and id(src) in self._index_of_entry and \
                self._entries[self._index_of_entry[id(src)]] is src:
            self._update_entry_item(src)

    # ------------------------------------------------------------------ view → model
    def rename_visit(self, visit: Any, text: str | None) -> bool:
        """Set a visit's label (empty/None restores the default). The row follows the model's event."""
        return visit.set_label(text)

    def choose_role(self, entry: Any, role: str | None) -> bool:
        """Set an entry's role (a role text of `ROLES`), or `RESET_TO_GUESS` to go back to the guess."""
        if role is None:
            return False
        if role == RESET_TO_GUESS:
            return entry.reset_role()
        return entry.set_role(role)

    def edit_visit_label(self, visit_or_item: Any) -> None:
        """Open the inline label editor of a visit row."""
        item = visit_or_item if isinstance(visit_or_item, QtWidgets.QTreeWidgetItem) else self.item_for_visit(visit_or_item)
        if item is not None:
            self.tree.scrollToItem(item)
            self.tree.editItem(item, 0)

    def edit_role(self, entry_or_item: Any) -> None:
        """Open the inline role combo of a series row."""
        item = entry_or_item if isinstance(entry_or_item, QtWidgets.QTreeWidgetItem) else self.item_for_entry(entry_or_item)
        if item is not None:
            self.tree.scrollToItem(item)
            self.tree.editItem(item, COL_ROLE)

    def _edit_target(self, index: QtCore.QModelIndex) -> tuple[str, Any] | None:
        item = self.tree.itemFromIndex(index)
        if item is None:
            return None
        kind = item.data(0, ROLE_KIND)
        if kind == "visit" and index.column() == 0:
            return "visit", self._visits[int(item.data(0, ROLE_INDEX))]
        if kind == "series" and index.column() == COL_ROLE:
            return "series", self._entries[int(item.data(0, ROLE_INDEX))]
        return None

    def _on_item_double_clicked(self, item: QtWidgets.QTreeWidgetItem, column: int) -> None:
        kind = item.data(0, ROLE_KIND)
        if kind == "visit":
            self.edit_visit_label(item)
        elif kind == "series" and column == COL_ROLE:
            self.edit_role(item)
        elif kind in ("patient", "problems"):
            item.setExpanded(not item.isExpanded())

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if obj is self.tree and event.type() == QtCore.QEvent.Type.KeyPress and event.key() == Qt.Key.Key_F2:
            item = self.tree.currentItem()
            kind = item.data(0, ROLE_KIND) if item is not None else None
            if kind == "visit":
                self.edit_visit_label(item)
                return True
            if kind == "series":
                self.edit_role(item)
                return True
        elif obj is self.tree.viewport() and event.type() in (QtCore.QEvent.Type.Resize, QtCore.QEvent.Type.Show):
            self._update_column_visibility()
            self._schedule_thumbnails()
        return super().eventFilter(obj, event)

    def _update_column_visibility(self) -> None:
        narrow = self.tree.viewport().width() < NARROW_WIDTH
        for col in (COL_SLICES, COL_MATRIX):
            if self.tree.isColumnHidden(col) != narrow:
                self.tree.setColumnHidden(col, narrow)

    def context_menu_for(self, item: QtWidgets.QTreeWidgetItem | None) -> QtWidgets.QMenu | None:
        """The context menu of a row (visit: rename / reset label; series: roles / reset to guess)."""
        if item is None:
            return None
        kind = item.data(0, ROLE_KIND)
        menu = QtWidgets.QMenu(self)
        menu.setToolTipsVisible(True)
        if kind == "visit":
            visit = self._visits[int(item.data(0, ROLE_INDEX))]
            menu.addAction(RENAME_VISIT, lambda: self.edit_visit_label(visit))
            reset = menu.addAction(RESET_LABEL, lambda: self.rename_visit(visit, None))
            reset.setEnabled(not visit.label_is_default)
            reset.setToolTip(f"Back to {visit.default_label!r}")
            return menu
        if kind == "series":
            entry = self._entries[int(item.data(0, ROLE_INDEX))]
            menu.addSection("Role")
            group = QtGui.QActionGroup(menu)
            for r in ROLES:
                text = r + ("  (guess)" if r == entry.guessed_role.value else "")
                a = menu.addAction(text, lambda r=r: self.choose_role(entry, r))
                a.setData(r)
                a.setCheckable(True)
                a.setChecked(entry.role.value == r)
                group.addAction(a)
            menu.addSeparator()
            reset = menu.addAction(RESET_TO_GUESS, lambda: self.choose_role(entry, RESET_TO_GUESS))
            reset.setData(RESET_TO_GUESS)
            reset.setEnabled(not entry.role_is_guessed)
            reset.setToolTip(f"{entry.guessed_role.value}: {entry.role_reason}")
            return menu
        menu.deleteLater()
        return None

    def _on_context_menu_requested(self, pos: QtCore.QPoint) -> None:
        menu = self.context_menu_for(self.tree.itemAt(pos))
        if menu is not None:
            menu.exec(self.tree.viewport().mapToGlobal(pos))
            menu.deleteLater()

    # ------------------------------------------------------------------ thumbnails
    def _schedule_thumbnails(self) -> None:
        if self._entries and not self._closed:
            self._thumb_timer.start()

    def request_visible_thumbnails(self) -> int:
        """Queue thumbnails of the series rows in (or one screen around) the viewport; returns how many."""
        if self._closed or not self._entries:
            return 0
        vp = self.tree.viewport().rect()
        area = vp.adjusted(0, -vp.height(), 0, vp.height())
        wanted = []
        for i, item in enumerate(self._entry_items):
            if i in self._requested:
                continue
            rect = self.tree.visualItemRect(item)
            if rect.isValid() and rect.intersects(area):
                wanted.append(i)
        return self.request_thumbnails(wanted)

    def request_thumbnails(self, entries: list | None = None) -> int:
        """Queue thumbnails of `entries` (SeriesEntry objects or row indices; None = all rows)."""
        if self._closed:
            return 0
        indices = range(len(self._entries)) if entries is None else [
            e if isinstance(e, int) else self._index_of_entry.get(id(e), -1) for e in entries]
        queued = 0
        for i in indices:
            if not 0 <= i < len(self._entries) or i in self._requested:
                continue
            self._requested.add(i)
            cand = self._entries[i].echoes[0]
            if self.slice_fn is default_slice_fn and not can_thumbnail(cand):
                continue
            try:
                key = thumbnail_key(cand)
            except (IndexError, AttributeError):
                continue
            if key in self._thumbs or key in self._inflight:
                self._apply_thumbnail(i)
                continue
            self._inflight.add(key)
            self._apply_thumbnail(i)  # pending placeholder
            self._pool.start(_ThumbnailTask(key, cand, self.slice_fn, self._thumb_signals, lambda: self._closed))
            queued += 1
        return queued

    def _on_thumbnail_ready(self, key: tuple, image: QtGui.QImage | None) -> None:
        self._inflight.discard(key)
        self._thumbs[key] = image
        self._thumbs.move_to_end(key)
        while len(self._thumbs) > THUMB_CACHE_MAX:
            self._thumbs.popitem(last=False)
        for i in self._rows_of_thumb.get(key, ()):  # only rows that exist now
            self._apply_thumbnail(i)

    def _thumb_state(self, index: int) -> tuple[str, QtGui.QImage | None]:
        cand = self._entries[index].echoes[0]
        try:
            key = thumbnail_key(cand)
        except (IndexError, AttributeError):
            return "none", None
        if key in self._thumbs:
            img = self._thumbs[key]
            return ("ready", img) if img is not None else ("none", None)
        if key in self._inflight:
            return "pending", None
        return "none", None

    def _apply_thumbnail(self, index: int) -> None:
        state, image = self._thumb_state(index)
        entry, item = self._entries[index], self._entry_items[index]
        warn = bool(self._entry_warnings(entry))
        thumb_row = bool(item.data(0, ROLE_THUMB_ROW))
        if thumb_row and state == "none" and index in self._requested:
            item.setData(0, ROLE_THUMB_ROW, False)  # asked for, none came (unreadable): compact row
            thumb_row = False
        if not thumb_row:
            icon = (self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MessageBoxWarning) if warn
                    else QtGui.QIcon())
            item.setIcon(COL_TITLE, icon)
            return
        item.setIcon(COL_TITLE, self._compose_icon(image, pending=state != "ready", warn=warn))

    def _compose_icon(self, image: QtGui.QImage | None, *, pending: bool, warn: bool) -> QtGui.QIcon:
        s = THUMB_SIZE
        dpr = self.devicePixelRatioF() or 1.0
        pm = QtGui.QPixmap(int(s * dpr), int(s * dpr))
        pm.setDevicePixelRatio(dpr)
        pm.fill(Qt.GlobalColor.transparent)
        p = QtGui.QPainter(pm)
        p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform)
        if image is not None:
            p.fillRect(QtCore.QRectF(0, 0, s, s), QtGui.QColor(0, 0, 0))
            x, y = (s - image.width()) / 2.0, (s - image.height()) / 2.0
            p.drawImage(QtCore.QPointF(x, y), image)
        elif pending:
            p.fillRect(QtCore.QRectF(0, 0, s, s), QtGui.QColor(60, 60, 60))
        if warn:
            icon = self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MessageBoxWarning)
            b = 18
            icon.paint(p, QtCore.QRect(s - b, s - b, b, b))
        p.end()
        icon = QtGui.QIcon()
        icon.addPixmap(pm, QtGui.QIcon.Mode.Normal)
        icon.addPixmap(pm, QtGui.QIcon.Mode.Selected)  # no selection tint on the image
        return icon

    def thumbnail_for(self, entry_or_candidate: Any) -> QtGui.QImage | None:
        """The thumbnail image of a series entry (or of the entry holding a candidate); None if none (yet)."""
        i = self._entry_index(entry_or_candidate)
        if i is None:
            return None
        return self._thumb_state(i)[1]

    def thumbnail_state(self, entry_or_candidate: Any) -> str:
        """"ready", "pending" or "none" (not asked for yet, or no thumbnail possible)."""
        i = self._entry_index(entry_or_candidate)
        return "none" if i is None else self._thumb_state(i)[0]

    def thumbnails_pending(self) -> int:
        return len(self._inflight)

    def shutdown(self, wait_ms: int = 2000) -> None:
        """Stop making thumbnails (queued ones are dropped) and wait for the running one."""
        self._closed = True
        self._thumb_timer.stop()
        self._pool.clear()
        self._pool.waitForDone(wait_ms)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def closeEvent(self, event) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    # ------------------------------------------------------------------ queries / selection
    def candidates(self) -> list[Any]:
        """All candidates (every echo of every entry) in tree order: patients, visits by date, entries, echoes by TE."""
        return list(self._candidates)

    def entries(self) -> list[Any]:
        """All series entries in tree order."""
        return list(self._entries)

    def visits(self) -> list[Any]:
        return list(self._visits)

    def problems(self) -> list[Any]:
        return list(self._problems)

    def first_loadable(self) -> Any | None:
        """The first candidate in tree order that is not a localizer (None if there is none)."""
        return next((c for c in self._candidates if not c.is_localizer), None)

    def _entry_index(self, obj: Any) -> int | None:
        i = self._index_of_entry.get(id(obj))
        if i is not None and self._entries[i] is obj:
            return i
        i = self._entry_of_candidate.get(id(obj))
        if i is not None and any(c is obj for c in self._entries[i].echoes):
            return i
        return None

    def entry_for(self, candidate: Any) -> Any | None:
        """The series entry holding `candidate` (any echo), or None."""
        i = self._entry_index(candidate)
        return None if i is None else self._entries[i]

    def item_for(self, candidate: Any) -> QtWidgets.QTreeWidgetItem | None:
        """The series row of `candidate` (any of its entry's echoes) or of a `SeriesEntry`."""
        i = self._entry_index(candidate)
        return None if i is None else self._entry_items[i]

    def item_for_entry(self, entry: Any) -> QtWidgets.QTreeWidgetItem | None:
        return self.item_for(entry)

    def item_for_visit(self, visit: Any) -> QtWidgets.QTreeWidgetItem | None:
        i = self._index_of_visit.get(id(visit))
        if i is None or self._visits[i] is not visit:
            return None
        return self._visit_items[i]

    def select_candidate(self, candidate: Any) -> bool:
        """Make `candidate`'s row current; emits `series_selected(candidate)` (and `entry_selected`)
        unless it is already the current candidate. False if it is not listed."""
        i = self._entry_index(candidate)
        if i is None:
            return False
        item = self._entry_items[i]
        entry = self._entries[i]
        echo = candidate if candidate is not entry else entry.echoes[0]
        if self.tree.currentItem() is item:
            if echo is not self._current_echo:
                self._current_echo = echo
                self.series_selected.emit(echo)
        else:
            self._pending_echo = echo
            try:
                self.tree.setCurrentItem(item)
            finally:
                self._pending_echo = None
        self.tree.scrollToItem(item)
        return True

    def select_entry(self, entry: Any) -> bool:
        return self.select_candidate(entry)

    def current_candidate(self) -> Any | None:
        entry = self.current_entry()
        if entry is None:
            return None
        if self._current_echo is not None and any(c is self._current_echo for c in entry.echoes):
            return self._current_echo
        return entry.echoes[0]

    def current_entry(self) -> Any | None:
        return self._entry_of_item(self.tree.currentItem())

    def _entry_of_item(self, item: QtWidgets.QTreeWidgetItem | None) -> Any | None:
        if item is None or item.data(0, ROLE_KIND) != "series":
            return None
        return self._entries[int(item.data(0, ROLE_INDEX))]

    def _on_current_item_changed(self, current, previous) -> None:
        entry = self._entry_of_item(current)
        if entry is None:
            return
        pending = self._pending_echo
        echo = pending if pending is not None and any(c is pending for c in entry.echoes) else entry.echoes[0]
        self._current_echo = echo
        self.series_selected.emit(echo)
        self.entry_selected.emit(entry)

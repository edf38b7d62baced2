"""`ReviewPanel`: the reading area — a grid of VTK slice viewports, linked across visits.

Owns the viewport grid (one `ViewportFrame` per cell: a `VtkSliceView`, or an empty slot that
says why it is empty), the active viewport (highlighted; keyboard goes there), maximise on
double-click, and the `LinkController` that links slice / zoom-pan / window across visits.
Modes: a single series (one viewport, or the three MPR planes with a shared crosshair) and a
hanging (`discviewer.hanging.Layout`: all visits side by side). Data flow is one way: the main
window decides what to show; the panel builds views and reports user navigation via signals.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from discviewer.ui.link_controller import LinkController

if TYPE_CHECKING:  # VTK is imported with the first viewport, not at start-up (bench_startup.py)
    from discviewer.ui.vtk_slice_view import VtkSliceView

Qt = QtCore.Qt

ACTIVE_STYLE = "ViewportFrame { border: 2px solid #3d8ee6; background: black; }"
IDLE_STYLE = "ViewportFrame { border: 2px solid #202020; background: black; }"


class ViewportFrame(QtWidgets.QFrame):
    """One cell of the grid: a slice view with its visit id, or an empty slot with a reason."""

    activated = QtCore.Signal(object)  # self

    def __init__(self, *, visit_id: str = "", title: str = "", plane: str = "sag", empty_reason: str = "",
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.visit_id = visit_id
        self.title = title
        self.candidate = None
        self.visit = None
        self.empty_reason = empty_reason
        self.setStyleSheet(IDLE_STYLE)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.view: VtkSliceView | None = None
        if empty_reason:
            label = QtWidgets.QLabel(f"{title}\n\n{empty_reason}")
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setStyleSheet("color: #aaaaaa; background: black;")
            label.setWordWrap(True)
            lay.addWidget(label)
            self.empty_label = label
        else:
            from discviewer.ui.vtk_slice_view import VtkSliceView

            self.view = VtkSliceView(self, plane=plane)
            lay.addWidget(self.view)
            self.view.viewport().installEventFilter(self)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt API
        if ev.type() in (QtCore.QEvent.Type.MouseButtonPress, QtCore.QEvent.Type.FocusIn,
                         QtCore.QEvent.Type.Wheel):
            self.activated.emit(self)
        return False

    def set_active(self, on: bool) -> None:
        self.setStyleSheet(ACTIVE_STYLE if on else IDLE_STYLE)

    def shutdown(self) -> None:
        if self.view is not None:
            self.view.shutdown()


class ReviewPanel(QtWidgets.QWidget):
    """The grid of viewports."""

    active_changed = QtCore.Signal(object)  # ViewportFrame
    cursor_moved = QtCore.Signal(object, object, object)  # (frame, lps or None, value or None)
    slice_changed = QtCore.Signal(object, int)  # (frame, index)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.links = LinkController(parent=self)
        self._grid = QtWidgets.QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.frames: list[ViewportFrame] = []
        self.active: ViewportFrame | None = None
        self.maximized: ViewportFrame | None = None
        self.mode = "empty"  # "single" | "mpr" | "hanging"
        self.shape = (0, 0)
        self._hint = QtWidgets.QLabel("Open a folder (File → Open folder…, or drop it here)\n\n"
                                      "Research use only — not for diagnosis")
        self._hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._hint.setStyleSheet("color: #999999; background: black;")
        self._grid.addWidget(self._hint, 0, 0)

    # ------------------------------------------------------------------ building
    def clear(self) -> None:
        self.links.clear()
        for f in self.frames:
            self._grid.removeWidget(f)
            f.shutdown()
            f.hide()
            f.deleteLater()
        self.frames = []
        self.active = None
        self.maximized = None
        self.mode = "empty"
        self._hint.show()

    def build(self, cells, rows: int, cols: int, *, mode: str) -> list[ViewportFrame]:
        """Replace the grid: `cells` are dicts (row, col, visit_id, title, plane, empty_reason)."""
        self.clear()
        self._hint.hide()
        for c in cells:
            frame = ViewportFrame(visit_id=c.get("visit_id", ""), title=c.get("title", ""),
                                  plane=c.get("plane", "sag"), empty_reason=c.get("empty_reason", ""))
            frame.candidate = c.get("candidate")
            frame.visit = c.get("visit")
            frame.activated.connect(self.set_active)
            if frame.view is not None:
                v = frame.view
                v.maximize_requested.connect(lambda f=frame: self.toggle_maximize(f))
                v.cursor_moved.connect(lambda p, val, f=frame: self.cursor_moved.emit(f, p, val))
                v.slice_changed.connect(lambda k, f=frame: self.slice_changed.emit(f, k))
            self._grid.addWidget(frame, c["row"], c["col"])
            self.frames.append(frame)
        for r in range(max(rows, 1, self._grid.rowCount())):  # a previous, larger grid's rows get no stretch
            self._grid.setRowStretch(r, 1 if r < max(rows, 1) else 0)
        for col in range(max(cols, 1, self._grid.columnCount())):
            self._grid.setColumnStretch(col, 1 if col < max(cols, 1) else 0)
        self.shape = (rows, cols)
        self.mode = mode
        first = next((f for f in self.frames if f.view is not None), None)
        if first is not None:
            self.set_active(first)
        return self.frames

    def view_frames(self) -> list[ViewportFrame]:
        return [f for f in self.frames if f.view is not None]

    def link_views(self) -> None:
        """(Re)link all views that show a volume, each with its visit id."""
        self.links.set_views([(f.view, f.visit_id) for f in self.view_frames() if f.view.volume is not None])

    # ------------------------------------------------------------------ active / maximise
    def set_active(self, frame: ViewportFrame) -> None:
        if frame is self.active:
            return
        if self.active is not None and self.active in self.frames:
            self.active.set_active(False)
        self.active = frame
        frame.set_active(True)
        self.active_changed.emit(frame)

    def active_view(self) -> VtkSliceView | None:
        return self.active.view if self.active is not None else None

    def activate_next(self, step: int = 1) -> ViewportFrame | None:
        frames = self.view_frames()
        if not frames:
            return None
        i = frames.index(self.active) if self.active in frames else -1
        nxt = frames[(i + step) % len(frames)]
        self.set_active(nxt)
        nxt.view.setFocus()
        if self.maximized is not None:
            self.toggle_maximize(nxt, force=True)
        return nxt

    def toggle_maximize(self, frame: ViewportFrame, *, force: bool = False) -> None:
        """Double-click: show only this viewport; again: back to the grid."""
        rows, cols = (max(n, 1) for n in self.shape)
        if self.maximized is frame and not force:
            self.maximized = None
            for f in self.frames:
                f.show()
            self._set_stretch(range(rows), range(cols))
        else:
            self.maximized = frame
            for f in self.frames:
                f.setVisible(f is frame)
            r, c, _, _ = self._grid.getItemPosition(self._grid.indexOf(frame))
            self._set_stretch([r], [c])  # the hidden cells take no space: the viewport fills the area
        self.set_active(frame)

    def _set_stretch(self, rows, cols) -> None:
        rows, cols = set(rows), set(cols)
        for r in range(self._grid.rowCount()):
            self._grid.setRowStretch(r, 1 if r in rows else 0)
        for c in range(self._grid.columnCount()):
            self._grid.setColumnStretch(c, 1 if c in cols else 0)

    def shutdown(self) -> None:
        self.clear()

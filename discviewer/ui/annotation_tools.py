"""`AnnotationTools`: drawing, selecting and editing annotations on one `VtkSliceView`.

One `AnnotationTools` per view; `AnnotationToolGroup` keeps the tool mode and the selection of many
views (a hanging protocol's grid, MPR) in step. The tools draw through an `AnnotationLayer` on the
view's renderer and change the model only through `AnnotationSet.add / update / remove` — one call
per finished gesture (a handle drag redraws the layer while it moves and stores one `update` on
release), so the workspace's undo history gets one step per user action. The layer follows the
model (`AnnotationSet.changed`: edits, undo, redo) and the view (`slice_changed`; a render also
re-checks the plane).

Context: `context()` — a callable given at construction — says where new annotations go and what
they belong to: a `ToolContext` (or a tuple in its field order, or a dict): the `AnnotationSet`,
visit id, series uid, series role, echo time (ms), disc level, reader, and optionally the volume
measured (default: the view's) and the vertebra (vb_height). Only annotations of the context's visit
are shown (each visit has its own patient coordinates).

Tools (`set_tool(name)`; the left button belongs to the tool, middle/right/wheel keep pan/zoom/slice):
  none         left-drag is window/level again
  select       click an item or a handle to select it; drag a handle to move that point (an
               ellipse's centre moves it whole), drag the outline to move the item; Delete removes
  point        click                         text         click, then type the text
  ruler        drag, or click – click         angle        3 clicks (vertex second)
  ellipse      drag corner to corner, or click – click
  polygon      click the vertices; double-click, Enter or a click on the first vertex closes
  freehand     press, trace, release
  disc_height  one click inside a disc proposes the 6 endplate points (measure.detect_disc_landmarks);
               drag them, Enter accepts, Esc cancels. The status bar shows the detector's confidence;
               below LOW_CONFIDENCE (0.5) it says "confidence low: check the points" and the proposal's
               handles are drawn in the warning colour; the confidence is stored in
               extra["detection_confidence"]. Shift+click (or no detector) = 6 manual clicks
               in the kinds-table order (upper anterior, middle, posterior, lower a/m/p)
  vb_height    6 clicks (superior endplate a/m/p, inferior a/m/p)
  disc_label   click: the disc level of the context at the disc centre (moves it if the visit has it)
Keys (view focused): Esc cancels what is being drawn, else returns to "none"; Enter/Return closes a
polygon or accepts a proposal; Delete/Backspace removes the selected item.

New annotations carry extra["plane"] (origin + normal of the slice), plane_name, series_role,
echo_time_ms, the context's visit/series/level/reader, a method ("manual ruler", "semi-automatic
6-point (accepted)"/"(adjusted)") and their values from `discviewer.measure.compute_values(annotation,
volume)` (ruler length and angle are computed here when that module is missing).

Signals: `tool_changed(str)`, `selection_changed(str)` (id or ""), `annotation_committed(str)` (id of
an annotation added or edited), `message(str)` (status-bar text).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6 import QtCore, QtWidgets

from discviewer.render.annotation_layer import (
    AnnotationLayer,
    ROI_KINDS,
    WARNING_COLOR,
    angle_deg,
    ellipse_outline,
    item_geometry,
    ruler_length,
)
from discviewer.workspace.data import Annotation

Qt = QtCore.Qt
QEvent = QtCore.QEvent

TOOLS = ("none", "select", "point", "text", "ruler", "angle", "ellipse", "polygon", "freehand",
         "disc_height", "vb_height", "disc_label")
#: suggested shortcuts (the main window owns the actions)
SHORTCUTS = {"select": "S", "point": "P", "ruler": "U", "angle": "A", "text": "T", "ellipse": "G",
             "polygon": "Y", "freehand": "W", "disc_height": "6", "vb_height": "V", "disc_label": "B"}
TOOL_TITLES = {"none": "Window/level", "select": "Select / edit", "point": "Point", "text": "Text",
               "ruler": "Ruler", "angle": "Angle", "ellipse": "Ellipse ROI", "polygon": "Polygon ROI",
               "freehand": "Freehand ROI", "disc_height": "Disc height", "vb_height": "Vertebral body height",
               "disc_label": "Disc level label"}
POINT_COUNT = {"point": 1, "text": 1, "disc_label": 1, "ruler": 2, "angle": 3, "disc_height": 6, "vb_height": 6}
HANDLE_HIT_PX = 7.0
LINE_HIT_PX = 5.0
DRAG_PX = 4.0  # a press-release further apart than this is a drag
FREEHAND_STEP_PX = 2.5
CLOSE_PX = 7.0  # a polygon click this close to its first vertex closes it
SEMI_AUTO = "semi-automatic 6-point"
LOW_CONFIDENCE = 0.5  # a proposal whose detector confidence is below this is flagged (as in measure_ui)


@dataclass
class ToolContext:
    """Where new annotations go and what they belong to (see the module docstring)."""

    annotations: Any = None  # AnnotationSet
    visit_id: str = ""
    series_uid: str = ""
    series_role: str = ""
    echo_time_ms: float | None = None
    level: str = ""
    reader: str = ""
    volume: Any = None  # the volume measured; None: the view's
    vertebra: str = ""
    extra: dict | None = None  # merged into every new annotation's extra (e.g. ROI role, acquisition)
    roi_extra: dict | None = None  # merged into new ROIs (ellipse/polygon/freehand) only, e.g. {"roi_role": "disc"}
    level_for: Any = None  # callable(points) -> level or "": a new measurement's level from where it lies


def as_context(value) -> ToolContext:
    if value is None:
        return ToolContext()
    if isinstance(value, ToolContext):
        return value
    if isinstance(value, dict):
        return ToolContext(**value)
    return ToolContext(*value)


def _measure():
    """`discviewer.measure` or None (it may not be installed in this build yet)."""
    try:
        import discviewer.measure as m  # noqa: PLC0415
    except ImportError:
        return None
    return m


def _finite_json(d: dict) -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, (float, np.floating)):
            if math.isfinite(float(v)):
                out[str(k)] = float(v)
        elif isinstance(v, (np.integer,)):
            out[str(k)] = int(v)
        elif isinstance(v, (list, tuple)):
            out[str(k)] = [float(x) if isinstance(x, (float, np.floating)) else x for x in v
                           if not (isinstance(x, (float, np.floating)) and not math.isfinite(float(x)))]
        else:
            out[str(k)] = v
    return out


def fallback_values(a: Annotation) -> tuple[dict, dict]:
    """Geometric values computed here (ruler length, angle) — used when `discviewer.measure` is missing."""
    if a.kind == "ruler" and len(a.points) >= 2:
        return {"length_mm": ruler_length(a.points[:2])}, {"length_mm": "mm"}
    if a.kind == "angle" and len(a.points) >= 3:
        return {"angle_deg": angle_deg(a.points[:3])}, {"angle_deg": "deg"}
    return {}, {}


def _polygon_area(pts2d: np.ndarray) -> float:
    x, y = pts2d[:, 0], pts2d[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _point_in_polygon(x: float, y: float, poly: np.ndarray) -> bool:
    inside = False
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    d = b - a
    L = float(d @ d)
    t = 0.0 if L == 0 else float(np.clip((p - a) @ d / L, 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * d)))


class AnnotationTools(QtCore.QObject):
    """Annotation tools on one `VtkSliceView` (see the module docstring)."""

    tool_changed = QtCore.Signal(str)
    selection_changed = QtCore.Signal(str)
    annotation_committed = QtCore.Signal(str)
    message = QtCore.Signal(str)

    def __init__(self, view, context: Callable[[], Any] | None = None, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent if parent is not None else view)
        self.view = view
        self.context = context or (lambda: ToolContext())
        self.layer = AnnotationLayer(view.renderer)
        self._tool = "none"
        self._selected = ""
        self._pending: dict | None = None  # an item being drawn: kind, points, press position …
        self._proposal: dict | None = None  # semi-automatic disc height waiting for Enter / Esc
        self._drag: dict | None = None  # select: a handle or an item being moved
        self._cursor_lps: np.ndarray | None = None
        self._subscribed = None  # the AnnotationSet listened to
        self._unsub = None
        self._synced_key = None
        self._closed = False
        self.semi_automatic = True  # disc_height: one click proposes the landmarks (when measure has them)
        self.ask_text: Callable[[], str | None] = self._ask_text_dialog
        view.set_tool_handler(self._on_event)
        view.slice_changed.connect(self._on_slice_changed)
        view.closed.connect(self.close)
        self._render_obs = view.renderer.AddObserver("StartEvent", self._on_render_start, 1.0)
        self.refresh()

    # ------------------------------------------------------------------ context / model
    def ctx(self) -> ToolContext:
        return as_context(self.context())

    def annotations(self):
        return self.ctx().annotations

    def _subscribe(self, aset) -> None:
        if aset is self._subscribed:
            return
        if self._unsub is not None:
            self._unsub()
            self._unsub = None
        self._subscribed = aset
        if aset is not None:
            self._unsub = aset.changed.subscribe(self._on_model_changed)

    def _shown(self, ctx: ToolContext) -> list[Annotation]:
        if ctx.annotations is None:
            return []
        vid = ctx.visit_id
        return [a for a in ctx.annotations if not vid or not a.visit_id or a.visit_id == vid]

    def refresh(self) -> None:
        """Re-read the context and the model and redraw (call after the context changed: other
        visit, other project)."""
        if self._closed:
            return
        ctx = self.ctx()
        self._subscribe(ctx.annotations)
        self._sync_plane()
        self.layer.set_items(self._shown(ctx), selected_id=self._selected or None)
        self.view.request_render()

    def _plane_key(self):
        p = self.view.pipeline
        if p.volume is None:
            return None
        return (id(p.volume), p.plane, p.slice_index(), tuple(np.round(p.plane_origin(), 6)))

    def _sync_plane(self) -> None:
        self._synced_key = self._plane_key()
        self.layer.sync(self.view.pipeline)

    def _on_render_start(self, *args) -> None:
        # safety net: any change of the plane not signalled (clear, set_point on the same index …)
        if self._plane_key() != self._synced_key:
            self._sync_plane()
            self.layer.set_items(self._shown(self.ctx()))

    def _on_slice_changed(self, *_args) -> None:
        # an item is drawn on one slice: a half-drawn one (or a proposal) is dropped when the slice changes
        if self.cancel_drawing():
            self.message.emit("Drawing cancelled: the slice changed")
        self.refresh()

    def _on_model_changed(self, change) -> None:
        if self._closed:
            return
        if self._drag is not None and change.name == self._drag["id"]:
            self._drag = None
            self.layer.clear_overrides()
        if change.new is None and change.name == self._selected:
            self._set_selection("")
        self.refresh()

    # ------------------------------------------------------------------ tool mode
    @property
    def tool(self) -> str:
        return self._tool

    def set_tool(self, name: str) -> None:
        if name not in TOOLS:
            raise ValueError(f"tool must be one of {TOOLS}, got {name!r}")
        self.cancel_drawing()
        if name == self._tool:
            return
        self._tool = name
        self.layer.set_show_all_handles(name == "select")
        w = self.view.vtk_widget
        if name in ("none", "select"):
            w.unsetCursor()
        else:
            w.setCursor(Qt.CursorShape.CrossCursor)
        self.view.request_render()
        self.tool_changed.emit(name)
        if name not in ("none", "select"):
            self.message.emit(self._hint(name))

    def _hint(self, name: str) -> str:
        hints = {
            "point": "Click to place a point", "text": "Click where the text goes",
            "ruler": "Drag (or click twice) to measure a distance", "angle": "Click 3 points, the vertex second",
            "ellipse": "Drag from corner to corner", "polygon": "Click the vertices; double-click or Enter closes",
            "freehand": "Press and trace the outline", "vb_height": "Click the 6 endplate points (superior a/m/p, "
                                                                   "inferior a/m/p)",
            "disc_label": f"Click the disc centre to label {self.ctx().level or '(choose a level)'}",
            "disc_height": ("Click inside the disc (Shift+click: place the 6 points by hand)"
                            if self._semi_auto_available() else
                            "Click the 6 points: upper anterior, middle, posterior, lower a/m/p"),
        }
        return hints.get(name, "")

    # ------------------------------------------------------------------ selection
    @property
    def selected_id(self) -> str:
        return self._selected

    def select(self, annotation_id: str | None) -> None:
        self._set_selection(annotation_id or "")

    def _set_selection(self, annotation_id: str) -> None:
        if annotation_id == self._selected:
            return
        self._selected = annotation_id
        self.layer.set_selected(annotation_id or None)
        self.view.request_render()
        self.selection_changed.emit(annotation_id)

    def delete_selected(self) -> bool:
        """Remove the selected annotation (one `remove`); True if something was removed."""
        aset = self.annotations()
        if not self._selected or aset is None or self._selected not in aset:
            return False
        aid = self._selected
        self._set_selection("")
        aset.remove(aid)
        return True

    # ------------------------------------------------------------------ drawing state
    def is_drawing(self) -> bool:
        return self._pending is not None or self._proposal is not None or self._drag is not None

    def cancel_drawing(self) -> bool:
        """Drop what is being drawn / proposed / dragged (nothing stored); True if there was something."""
        had = self.is_drawing()
        self._pending = None
        self._proposal = None
        if self._drag is not None:
            self._drag = None
            self.layer.clear_overrides()
        self.layer.clear_preview()
        if had:
            self.view.request_render()
        return had

    def cancel(self) -> None:
        """Esc: cancel the drawing, else leave the tool (back to window/level), else deselect."""
        if self.cancel_drawing():
            return
        if self._tool != "none":
            self.set_tool("none")
        else:
            self._set_selection("")

    def accept(self) -> bool:
        """Enter: close the polygon being drawn or store the proposed disc height."""
        if self._proposal is not None:
            return self._accept_proposal()
        if self._pending is not None and self._pending["kind"] == "polygon":
            return self._close_polygon()
        return False

    def proposal_points(self) -> list | None:
        """The semi-automatic disc-height points waiting for Enter (LPS), or None."""
        return None if self._proposal is None else [tuple(map(float, p)) for p in self._proposal["points"]]

    # ------------------------------------------------------------------ coordinates
    def _lps(self, pos) -> np.ndarray:
        return np.asarray(self.view.patient_at(QtCore.QPointF(pos)), float)

    def _px(self, lps) -> np.ndarray:
        q = self.view.widget_point_for_patient(lps)
        return np.array([q.x(), q.y()])

    def _pxs(self, pts) -> np.ndarray:
        return np.array([self._px(p) for p in pts]) if len(pts) else np.zeros((0, 2))

    def _frame(self):
        return self.view.pipeline.frame()

    def _project(self, lps) -> np.ndarray:
        """Onto the current plane."""
        o = self.view.pipeline.plane_origin()
        n = self._frame()[2]
        p = np.asarray(lps, float)
        return p - ((p - o) @ n) * n

    # ------------------------------------------------------------------ events
    def _on_event(self, ev) -> bool:
        if self._closed or self.view.volume is None:
            return False
        t = ev.type()
        if t in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride):
            return self._key(ev, override=t == QEvent.Type.ShortcutOverride)
        if self._tool == "none":
            return False
        if t == QEvent.Type.MouseMove:
            self._move(ev)
            return False  # the view still tracks the cursor (and pans/zooms with the other buttons)
        if ev.button() != Qt.MouseButton.LeftButton:
            return False
        pos = QtCore.QPointF(ev.position())
        shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if t == QEvent.Type.MouseButtonPress:
            self._press(pos, shift)
        elif t == QEvent.Type.MouseButtonRelease:
            self._release(pos)
        elif t == QEvent.Type.MouseButtonDblClick:
            self._double_click(pos, shift)
        return True

    def _key(self, ev, *, override: bool) -> bool:
        key = ev.key()
        if key == Qt.Key.Key_Escape:
            wanted = self.is_drawing() or self._tool != "none" or bool(self._selected)
            if wanted and not override:
                self.cancel()
            return wanted
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            wanted = self._proposal is not None or (self._pending is not None and self._pending["kind"] == "polygon")
            if wanted and not override:
                self.accept()
            return wanted
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            wanted = bool(self._selected) and self._drag is None
            if wanted and not override:
                self.delete_selected()
            return wanted
        return False

    def _press(self, pos, shift: bool) -> None:
        lps = self._lps(pos)
        self._cursor_lps = lps
        tool = self._tool
        if self._proposal is not None:
            i = self._hit_handle(self._proposal["points"], pos)
            if i is not None:
                self._drag = {"proposal": True, "index": i, "id": "", "start": lps, "moved": False}
            else:
                self.message.emit(f"{self._proposal_status()}: drag the points, Enter accepts, Esc cancels")
            return
        if tool == "select":
            self._press_select(pos, lps)
            return
        p = self._pending
        if tool == "freehand":
            self._pending = {"kind": "freehand", "points": [lps], "last_px": np.array([pos.x(), pos.y()])}
        elif tool == "ellipse":
            if p is None:
                self._pending = {"kind": "ellipse", "points": [lps], "press": pos, "click_mode": False}
            else:  # second click of click – click
                self._pending["points"].append(lps)
        elif tool == "polygon":
            if p is None:
                self._pending = {"kind": "polygon", "points": [lps]}
            else:
                pts = p["points"]
                pix = np.array([pos.x(), pos.y()])
                if len(pts) >= 3 and np.linalg.norm(self._px(pts[0]) - pix) <= CLOSE_PX:
                    self._close_polygon()
                    return
                if np.linalg.norm(self._px(pts[-1]) - pix) > 2.0:
                    pts.append(lps)
        elif tool == "disc_height" and p is None and not shift and self._semi_auto_available():
            self._propose_disc(lps)
            return
        elif tool in POINT_COUNT:
            if p is None:
                self._pending = {"kind": tool, "points": [lps], "press": pos}
            else:
                p["points"].append(lps)
                p["press"] = pos
        self._update_preview()

    def _release(self, pos) -> None:
        lps = self._lps(pos)
        if self._drag is not None:
            self._finish_drag(lps)
            return
        p = self._pending
        if p is None:
            return
        kind = p["kind"]
        pix = np.array([pos.x(), pos.y()])
        if kind == "freehand":
            self._finish_freehand()
            return
        if kind == "ellipse":
            pts = p["points"]
            if len(pts) == 1:
                if np.linalg.norm(pix - np.array([p["press"].x(), p["press"].y()])) > DRAG_PX:
                    self._commit_ellipse(pts[0], lps)
                else:
                    p["click_mode"] = True  # the next click gives the opposite corner
            else:
                self._commit_ellipse(pts[0], pts[1])
            return
        if kind in ("ruler", "angle") and "press" in p:
            dragged = np.linalg.norm(pix - np.array([p["press"].x(), p["press"].y()])) > DRAG_PX
            if dragged and len(p["points"]) < POINT_COUNT[kind]:
                p["points"].append(lps)  # drag: the release gives the next point
        need = POINT_COUNT.get(kind)
        if need is not None and len(p["points"]) >= need:
            self._commit_points(kind, p["points"][:need])
        else:
            self._update_preview()

    def _double_click(self, pos, shift: bool) -> None:
        tool = self._tool
        if tool == "polygon" and self._pending is not None:
            self._close_polygon()
        elif tool == "select":
            self._edit_text_at(pos)
        elif tool in ("angle", "disc_height", "vb_height", "ruler", "ellipse") and self._proposal is None:
            self._press(pos, shift)  # a fast second click of a click sequence

    def _move(self, ev) -> None:
        pos = QtCore.QPointF(ev.position())
        lps = self._lps(pos)
        self._cursor_lps = lps
        if self._drag is not None:
            self._drag_to(lps)
            return
        p = self._pending
        if p is None:
            return
        if p["kind"] == "freehand":
            pix = np.array([pos.x(), pos.y()])
            if np.linalg.norm(pix - p["last_px"]) >= FREEHAND_STEP_PX:
                p["points"].append(lps)
                p["last_px"] = pix
        self._update_preview()

    # ------------------------------------------------------------------ preview
    def _update_preview(self) -> None:
        p = self._pending
        if p is None:
            self.layer.clear_preview()
            self.view.request_render()
            return
        kind = p["kind"]
        pts = list(p["points"])
        cur = self._cursor_lps
        label = ""
        closed = False
        if kind == "ellipse":
            corner = pts[1] if len(pts) > 1 else cur
            if corner is not None and np.linalg.norm(corner - pts[0]) > 0:
                pts = self._ellipse_points(pts[0], corner)
                label = f"{self._area(ellipse_outline(pts)):.0f} mm²"
            self.layer.set_preview("ellipse" if len(pts) == 3 else "point", pts, label=label, closed=True)
            self.view.request_render()
            return
        if kind == "freehand":
            closed = False
        elif cur is not None and len(pts) < POINT_COUNT.get(kind, 10 ** 6):
            pts.append(cur)
        if kind == "ruler" and len(pts) == 2:
            label = f"{ruler_length(pts):.1f} mm"
        elif kind == "angle" and len(pts) == 3:
            label = f"{angle_deg(pts):.1f}°"
        elif kind == "polygon" and len(pts) >= 3:
            label = f"{self._area(pts):.0f} mm²"
        self.layer.set_preview(kind, pts, label=label, closed=closed)
        self.view.request_render()

    def _area(self, pts) -> float:
        r, u, _ = self._frame()
        p = np.asarray(pts, float)
        return _polygon_area(np.column_stack([p @ r, p @ u]))

    def _ellipse_points(self, c1, c2) -> list[np.ndarray]:
        """Centre, end of axis a (screen-right), end of axis b (screen-up) of the ellipse inscribed in
        the screen-aligned box with corners c1, c2."""
        r, u, _ = self._frame()
        c1, c2 = np.asarray(c1, float), np.asarray(c2, float)
        centre = (c1 + c2) / 2.0
        d = c2 - c1
        return [centre, centre + abs(d @ r) / 2.0 * r, centre + abs(d @ u) / 2.0 * u]

    # ------------------------------------------------------------------ committing
    def _new_annotation(self, kind: str, points, *, method: str, text: str = "", level: str | None = None,
                        extra: dict | None = None) -> Annotation:
        ctx = self.ctx()
        e = {"plane": self.view.slice_plane(), "plane_name": self.view.plane}
        if ctx.series_role:
            e["series_role"] = str(ctx.series_role)
        if ctx.echo_time_ms is not None:
            e["echo_time_ms"] = float(ctx.echo_time_ms)
        if ctx.extra:
            e.update(ctx.extra)
        if ctx.roi_extra and kind in ("ellipse", "polygon", "freehand"):
            e.update(ctx.roi_extra)
        if extra:
            e.update(extra)
        if level is None:
            level = ctx.level
            if ctx.level_for is not None and kind not in ("disc_label", "text", "point"):
                level = ctx.level_for(points) or level
        return Annotation(id="", kind=kind, level=level, visit_id=ctx.visit_id,
                          series_uid=ctx.series_uid, points=tuple(tuple(float(c) for c in p) for p in points),
                          text=text, reader=ctx.reader, method=method, extra=e)

    def compute(self, a: Annotation) -> Annotation:
        """`a` with its values/units from `discviewer.measure.compute_values` (ruler/angle computed here
        when that is missing or fails)."""
        values, units = {}, {}
        m = _measure()
        if m is not None and hasattr(m, "compute_values"):
            vol = self._volume()
            try:
                values, units = m.compute_values(a, vol)
            except Exception as exc:  # noqa: BLE001 - a measurement error must not lose the drawing
                self.message.emit(f"{a.kind}: values not computed ({exc})")
                values, units = {}, {}
        if not values:
            values, units = fallback_values(a)
        return dataclasses.replace(a, values=_finite_json(dict(values or {})), units=dict(units or {}))

    def _volume(self):
        vol = self.ctx().volume
        return self.view.volume if vol is None else vol

    def _store(self, a: Annotation) -> str:
        aset = self.annotations()
        self._pending = None
        self.layer.clear_preview()
        if aset is None:
            self.message.emit("No project: the annotation was not stored")
            self.view.request_render()
            return ""
        stored = aset.add(self.compute(a))
        self.view.request_render()
        self.annotation_committed.emit(stored.id)
        return stored.id

    def _commit_points(self, kind: str, points) -> str:
        if kind == "text":
            self._pending = None
            self.layer.clear_preview()
            text = self.ask_text()
            if not text:
                self.view.request_render()
                return ""
            return self._store(self._new_annotation("text", points, method="manual text", text=str(text)))
        if kind == "disc_label":
            return self._store_disc_label(points[0])
        if kind == "vb_height":
            ctx = self.ctx()
            return self._store(self._new_annotation(kind, points, method="manual 6-point",
                                                    extra={"vertebra": ctx.vertebra} if ctx.vertebra else None))
        method = {"disc_height": "manual 6-point"}.get(kind, f"manual {kind}")
        return self._store(self._new_annotation(kind, points, method=method))

    def _store_disc_label(self, point) -> str:
        ctx = self.ctx()
        self._pending = None
        self.layer.clear_preview()
        if not ctx.level:
            self.message.emit("Choose a disc level first")
            self.view.request_render()
            return ""
        aset = ctx.annotations
        if aset is not None:
            for a in aset.select(level=ctx.level, visit_id=ctx.visit_id, kind="disc_label"):
                moved = dataclasses.replace(a, points=(tuple(float(c) for c in point),),
                                            extra={**a.extra, "plane": self.view.slice_plane(),
                                                   "plane_name": self.view.plane})
                aset.update(moved)
                self.view.request_render()
                self.annotation_committed.emit(a.id)
                return a.id
        return self._store(self._new_annotation("disc_label", [point], method="manual label"))

    def _commit_ellipse(self, c1, c2) -> str:
        pts = self._ellipse_points(c1, c2)
        if min(np.linalg.norm(pts[1] - pts[0]), np.linalg.norm(pts[2] - pts[0])) < 1e-6:
            self.cancel_drawing()
            return ""
        return self._store(self._new_annotation("ellipse", pts, method="manual ellipse"))

    def _close_polygon(self) -> bool:
        p = self._pending
        if p is None or p["kind"] != "polygon":
            return False
        pts = _dedupe(p["points"])
        if len(pts) < 3 or self._area(pts) <= 0:
            self.message.emit("A polygon needs 3 or more vertices")
            return False
        self._store(self._new_annotation("polygon", pts, method="manual polygon"))
        return True

    def _finish_freehand(self) -> None:
        pts = _dedupe(self._pending["points"])
        if len(pts) < 3 or self._area(pts) <= 0:
            self.cancel_drawing()
            return
        self._store(self._new_annotation("freehand", pts, method="manual freehand"))

    # ------------------------------------------------------------------ semi-automatic disc height
    def _semi_auto_available(self) -> bool:
        m = _measure()
        return self.semi_automatic and m is not None and hasattr(m, "detect_disc_landmarks")

    def _propose_disc(self, seed) -> None:
        m = _measure()
        vol = self._volume()
        lm = None
        try:
            if self.view.plane == "sag":
                lm = m.detect_disc_landmarks(vol, tuple(float(c) for c in seed))
            else:
                lm = m.detect_disc_landmarks(vol, tuple(float(c) for c in seed), plane=self.view.plane)
            pts = None if lm is None else lm.points
            pts = pts() if callable(pts) else pts
            pts = None if pts is None else [np.asarray(p, float) for p in pts]
        except Exception as exc:  # noqa: BLE001 - detection failing falls back to manual placement
            pts = None
            self.message.emit(f"No disc found at the click ({exc}); click the 6 points by hand")
        if pts is None or len(pts) != 6:
            if lm is not None:
                self.message.emit("No disc found at the click; click the 6 points by hand")
            self._pending = {"kind": "disc_height", "points": []}
            self._update_preview()
            return
        extra = {}
        conf = getattr(lm, "confidence", None)
        if isinstance(conf, (int, float)) and not isinstance(conf, bool) and math.isfinite(conf):
            extra["detection_confidence"] = float(conf)
        how = getattr(lm, "method", None)
        if isinstance(how, str) and how:
            extra["detection_method"] = how
        warns = getattr(lm, "warnings", None)
        if warns:
            extra["detection_warnings"] = [str(w) for w in warns]
        self._proposal = {"points": [self._project(p) for p in pts], "adjusted": False, "extra": extra}
        self._show_proposal()
        self.message.emit(f"{self._proposal_status()}: drag to adjust, Enter accepts, Esc cancels")

    def proposal_confidence(self) -> float | None:
        """The detector's confidence (0–1) of the pending proposal; None without one (or unknown)."""
        return None if self._proposal is None else self._proposal["extra"].get("detection_confidence")

    def proposal_low_confidence(self) -> bool:
        c = self.proposal_confidence()
        return c is not None and c < LOW_CONFIDENCE

    def _proposal_status(self) -> str:
        """"Proposed disc height (confidence low: check the points)" — the detector's confidence shown."""
        c = self.proposal_confidence()
        if c is None:
            return "Proposed disc height"
        if c < LOW_CONFIDENCE:
            return "Proposed disc height (confidence low: check the points)"
        return f"Proposed disc height (confidence {c:.2f})"

    def _show_proposal(self) -> None:
        pts = self._proposal["points"]
        dh = [float(np.linalg.norm(pts[i] - pts[i + 3])) for i in range(3)]
        label = f"DHa {dh[0]:.1f} mm\nDHm {dh[1]:.1f} mm\nDHp {dh[2]:.1f} mm  (Enter)"
        low = self.proposal_low_confidence()
        if low:
            label += f"\nconfidence {self.proposal_confidence():.2f}: check"
        # an unsure detection shows its handles in the warning colour until accepted
        self.layer.set_preview("disc_height", pts, label=label, handle_color=WARNING_COLOR if low else None)
        self.view.request_render()

    def _accept_proposal(self) -> bool:
        pr = self._proposal
        if pr is None:
            return False
        self._proposal = None
        state = "adjusted" if pr["adjusted"] else "accepted"
        a = self._new_annotation("disc_height", pr["points"], method=f"{SEMI_AUTO} ({state})", extra=pr["extra"])
        stored = bool(self._store(a))
        if stored:
            c = pr["extra"].get("detection_confidence")
            note = "" if c is None else f"; detector confidence {c:.2f}" + (
                " (low)" if c < LOW_CONFIDENCE and not pr["adjusted"] else "")
            self.message.emit(f"Disc height stored ({state}{note})")
        return stored

    # ------------------------------------------------------------------ select / move
    def _hit_handle(self, points, pos) -> int | None:
        if not len(points):
            return None
        pix = np.array([pos.x(), pos.y()])
        d = np.linalg.norm(self._pxs(points) - pix, axis=1)
        i = int(np.argmin(d))
        return i if d[i] <= HANDLE_HIT_PX else None

    def _hit_body(self, a: Annotation, pos) -> bool:
        pix = np.array([pos.x(), pos.y()])
        g = item_geometry(a.kind, a.points, extra=a.extra)
        for m in g.markers:
            if np.linalg.norm(self._px(m) - pix) <= HANDLE_HIT_PX + 2:
                return True
        for pts, closed in g.lines:
            w = self._pxs(pts)
            segs = list(zip(w[:-1], w[1:])) + ([(w[-1], w[0])] if closed else [])
            if any(_segment_distance(pix, s0, s1) <= LINE_HIT_PX for s0, s1 in segs):
                return True
            if closed and (a.kind in ROI_KINDS or a.kind == "iron") and _point_in_polygon(pix[0], pix[1], w):
                return True
        if a.kind in ("text", "disc_label"):
            q = self._px(a.points[0])
            if 0 <= pix[0] - q[0] <= 10 + 8 * max(len(a.text or a.level), 1) and abs(pix[1] - q[1]) <= 10:
                return True  # on the label
        return False

    def _press_select(self, pos, lps) -> None:
        items = self.layer.visible_items()
        order = sorted(items, key=lambda a: a.id != self._selected)  # the selected item first
        for a in order:
            handles = item_geometry(a.kind, a.points, extra=a.extra).handles
            i = self._hit_handle(handles, pos) if handles else None
            if i is not None:
                self._set_selection(a.id)
                self._drag = {"id": a.id, "index": i, "start": lps, "points": [np.asarray(p, float) for p in a.points],
                              "moved": False, "proposal": False}
                return
        for a in reversed(items):  # the topmost (last drawn) first
            if self._hit_body(a, pos):
                self._set_selection(a.id)
                self._drag = {"id": a.id, "index": None, "start": lps,
                              "points": [np.asarray(p, float) for p in a.points], "moved": False, "proposal": False}
                return
        self._set_selection("")

    def _drag_to(self, lps) -> None:
        d = self._drag
        if d["proposal"]:
            self._proposal["points"][d["index"]] = self._project(lps)
            self._proposal["adjusted"] = True
            d["moved"] = True
            self._show_proposal()
            return
        if np.linalg.norm(lps - d["start"]) == 0 and not d["moved"]:
            return
        d["moved"] = True
        aset = self.annotations()
        if aset is None or d["id"] not in aset:
            return
        a = aset.get(d["id"])
        d["new"] = self._moved_points(a.kind, d["points"], d["index"], d["start"], lps)
        self.layer.set_override(d["id"], d["new"])
        self.view.request_render()

    def _moved_points(self, kind: str, pts, index, start, lps) -> list[np.ndarray]:
        pts = [p.copy() for p in pts]
        if index is None or (kind in ("ellipse",) and index == 0) or \
                (kind == "iron" and index == 0 and len(pts) == 3):
            delta = lps - start
            return [p + delta for p in pts]
        if kind == "ellipse" or (kind == "iron" and len(pts) == 3):
            c = pts[0]
            n = self._frame()[2]
            if index == 1:
                a = lps - c
                a -= (a @ n) * n
                old_b = pts[2] - c
                nb = np.linalg.norm(old_b)
                bdir = np.cross(n, a)
                if np.linalg.norm(bdir) > 0:
                    bdir /= np.linalg.norm(bdir)
                    if bdir @ old_b < 0:
                        bdir = -bdir
                    pts[1], pts[2] = c + a, c + nb * bdir
                return pts
            a = pts[1] - c
            an = a / max(np.linalg.norm(a), 1e-12)
            b = lps - c
            b -= (b @ an) * an
            pts[2] = c + b
            return pts
        pts[index] = lps
        return pts

    def _finish_drag(self, lps) -> None:
        d = self._drag
        self._drag = None
        if d["proposal"]:
            return
        if not d["moved"] or "new" not in d:
            return
        aset = self.annotations()
        if aset is None or d["id"] not in aset:
            self.layer.clear_overrides()
            return
        a = aset.get(d["id"])
        method = a.method
        if method.endswith("(accepted)"):
            method = method[: -len("(accepted)")] + "(adjusted)"
        new = dataclasses.replace(a, points=tuple(tuple(float(c) for c in p) for p in d["new"]), method=method)
        new = self.compute(new)
        self.layer.set_override(d["id"], None)
        if aset.update(new):
            self.annotation_committed.emit(a.id)
        self.view.request_render()

    def _edit_text_at(self, pos) -> None:
        for a in reversed(self.layer.visible_items()):
            if a.kind == "text" and self._hit_body(a, pos):
                text = self.ask_text()
                if text and text != a.text:
                    self.annotations().update(dataclasses.replace(a, text=str(text)))
                    self.annotation_committed.emit(a.id)
                return

    def _ask_text_dialog(self) -> str | None:
        text, ok = QtWidgets.QInputDialog.getText(self.view, "Text annotation", "Text:")
        return text if ok else None

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        """Unsubscribe from the model and the view, take the layer out (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._unsub is not None:
            self._unsub()
            self._unsub = None
        self._subscribed = None
        view = self.view
        if view.tool_handler() == self._on_event:
            view.set_tool_handler(None)
        try:
            view.slice_changed.disconnect(self._on_slice_changed)
            view.closed.disconnect(self.close)
        except (RuntimeError, TypeError):
            pass
        view.renderer.RemoveObserver(self._render_obs)
        self.layer.remove()
        view.request_render()


def _dedupe(points) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for p in points:
        if not out or np.linalg.norm(np.asarray(p) - out[-1]) > 1e-6:
            out.append(np.asarray(p, float))
    if len(out) > 1 and np.linalg.norm(out[0] - out[-1]) <= 1e-6:
        out.pop()
    return out


def install(view, context: Callable[[], Any] | None = None) -> AnnotationTools:
    """Attach annotation tools to `view` (see the module docstring)."""
    return AnnotationTools(view, context)


class AnnotationToolGroup(QtCore.QObject):
    """The tools of many views with one tool mode and one selection.

        group = AnnotationToolGroup(parent=window)
        group.attach(frame.view, lambda f=frame: context_for(f))   # again after a view gets a new volume: no-op
        group.set_tool("ruler")
    Views detach themselves when they shut down."""

    tool_changed = QtCore.Signal(str)
    selection_changed = QtCore.Signal(str)
    annotation_committed = QtCore.Signal(str)
    message = QtCore.Signal(str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.tools: list[AnnotationTools] = []
        self._tool = "none"
        self._selected = ""
        self._syncing = False

    @property
    def tool(self) -> str:
        return self._tool

    @property
    def selected_id(self) -> str:
        return self._selected

    def tools_for(self, view) -> AnnotationTools | None:
        return next((t for t in self.tools if t.view is view), None)

    def attach(self, view, context: Callable[[], Any] | None = None) -> AnnotationTools:
        """Tools on `view` with `context` (an attached view only gets the new context and a refresh)."""
        t = self.tools_for(view)
        if t is not None:
            if context is not None:
                t.context = context
            t.refresh()
            return t
        t = AnnotationTools(view, context, parent=self)
        t.set_tool(self._tool)
        t.select(self._selected)
        t.tool_changed.connect(self._on_tool_changed)
        t.selection_changed.connect(self._on_selection_changed)
        t.annotation_committed.connect(self.annotation_committed)
        t.message.connect(self.message)
        view.closed.connect(lambda t=t: self.detach(t.view))
        self.tools.append(t)
        return t

    def detach(self, view) -> None:
        t = self.tools_for(view)
        if t is not None:
            self.tools.remove(t)
            t.close()
            t.deleteLater()

    def refresh(self) -> None:
        """Re-read every view's context (visit, level, project changed)."""
        for t in list(self.tools):
            t.refresh()

    def set_tool(self, name: str) -> None:
        if name not in TOOLS:
            raise ValueError(f"tool must be one of {TOOLS}, got {name!r}")
        changed = name != self._tool
        self._tool = name
        self._syncing = True
        try:
            for t in self.tools:
                t.set_tool(name)
        finally:
            self._syncing = False
        if changed:
            self.tool_changed.emit(name)

    def select(self, annotation_id: str) -> None:
        self._on_selection_changed(annotation_id or "")

    def cancel(self) -> None:
        for t in self.tools:
            t.cancel_drawing()
        self.set_tool("none")

    def accept(self) -> bool:
        return any([t.accept() for t in self.tools])

    def delete_selected(self) -> bool:
        for t in self.tools:
            if t.selected_id and t.delete_selected():
                return True
        return False

    def _on_tool_changed(self, name: str) -> None:
        if not self._syncing and name != self._tool:
            self.set_tool(name)

    def _on_selection_changed(self, annotation_id: str) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            for t in self.tools:
                t.select(annotation_id)
        finally:
            self._syncing = False
        if annotation_id != self._selected:
            self._selected = annotation_id
            self.selection_changed.emit(annotation_id)

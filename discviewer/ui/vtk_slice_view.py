"""`VtkSliceView`: a Qt widget showing one MPR plane of a `Volume` through VTK (`SlicePipeline`).

Successor of the pyqtgraph `SliceView`, with a compatible public API (set_volume, set_slice,
window/set_window, reset, set_inverted; signals slice_changed, window_changed, cursor_moved) plus
planes (sag / cor / ax reformats), crosshair, view linking and a second mouse scheme.

Mouse, PACS scheme (default; DESIGN.md §6):
  left-drag    window/level: drag right = wider window, drag down = higher level
  middle-drag  pan          right-drag  zoom (drag up = zoom in, about the press point)
  wheel        slice ±1 per notch (wheel down = next slice)   Ctrl+wheel  zoom at the cursor
  double-click `maximize_requested`
"crosshair" scheme: left press/drag places the crosshair and emits `point_picked(lps)`; the rest as PACS.
Keys: Down/Up = next/previous slice, PageDown/PageUp = ±max(1, N/10), Home/End, R = reset view and
auto window, I = invert.

VTK never sees the Qt input events: an event filter on the embedded QVTKRenderWindowInteractor
consumes them (and the interactor style is the do-nothing vtkInteractorStyleUser), so VTK cannot
rotate or spin the camera.

Rendering is coalesced: every change calls `request_render()`, which marks the view dirty and renders
once on the next event-loop turn (QTimer.singleShot(0)), however many changes happened in between.
While the wheel turns or a drag moves, the view shows the interactive level of detail
(`SlicePipeline.set_interactive`: nearest-neighbour magnification, base and overlay) and goes back
to the chosen interpolation `REFINE_MS` after the last event.

Overlay layer: `set_overlay(volume, opacity=, colormap=, window=)` blends a second volume (e.g. the
baseline resampled onto this follow-up's grid) over the shown one; `set_overlay_opacity(a)` is cheap
and coalesced, so a slider can drive it directly.

Signals: `slice_changed(int)`, `window_changed(center, width)`, `cursor_moved(lps | None, value | None)`,
`view_changed()` (zoom/pan, for linking), `point_picked(lps)`, `maximize_requested()`, `closed()` (shutdown).

Tools (annotation drawing, `discviewer.ui.annotation_tools`): `set_tool_handler(fn)` lets one tool see
the mouse, key and shortcut-override events first; `fn(event) -> True` consumes the event (the view then
does nothing with it), False leaves it to the PACS handling above. A tool claims the left button and a
few keys (Esc, Enter, Delete) and leaves middle/right/wheel to pan/zoom/slice. `slice_plane()` is the
shown plane in LPS ({"origin", "normal"}). `set_color_bar(title)` shows a colour scale for the overlay.
"""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleUser
from vtkmodules.vtkRenderingCore import vtkRenderer

from discviewer.display import middle_slice
from discviewer.render.offscreen import capture_rgb
from discviewer.render.slice_pipeline import SlicePipeline

Qt = QtCore.Qt
QEvent = QtCore.QEvent
_TOOL_EVENTS = (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease,
                QEvent.Type.MouseButtonDblClick, QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride)


class VtkSliceView(QtWidgets.QWidget):
    """One MPR plane of a `Volume` rendered by VTK, with PACS mouse/keyboard controls and overlays."""

    slice_changed = QtCore.Signal(int)
    window_changed = QtCore.Signal(float, float)  # (center, width)
    cursor_moved = QtCore.Signal(object, object)  # (lps tuple, value) or (None, None) off the image
    view_changed = QtCore.Signal()
    point_picked = QtCore.Signal(object)  # lps tuple
    maximize_requested = QtCore.Signal()
    closed = QtCore.Signal()  # shutdown() started: tools and layers detach

    WL_PIXELS_PER_RANGE = 500.0  # dragging this many pixels changes W or L by the full data range
    ZOOM_PER_PIXEL = 0.01  # right-drag: factor exp(0.01) per pixel
    WHEEL_ZOOM = 0.85  # Ctrl+wheel: visible range factor per notch
    REFINE_MS = 150  # full-quality render this long after the last interactive event
    SCHEMES = ("pacs", "crosshair")

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, plane: str = "sag") -> None:
        super().__init__(parent)
        self.setMinimumSize(120, 120)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.vtk_widget = QVTKRenderWindowInteractor(self)
        lay.addWidget(self.vtk_widget)
        self.setFocusProxy(self.vtk_widget)
        self.vtk_widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.render_window = self.vtk_widget.GetRenderWindow()
        self.render_window.SetMultiSamples(0)
        self.renderer = vtkRenderer()
        self.render_window.AddRenderer(self.renderer)
        self._interactor = self.render_window.GetInteractor()
        self._interactor.SetInteractorStyle(vtkInteractorStyleUser())
        self.vtk_widget.Initialize()  # enables the interactor so paint events render

        self.pipeline = SlicePipeline(self.renderer, plane=plane)
        self._scheme = "pacs"
        self._drag: dict | None = None
        self._wheel_accum = 0
        self._last_pos: QtCore.QPointF | None = None
        self._last_cursor = None
        self._closed = False
        self._tool_handler = None
        self._color_bar = None

        self.render_count = 0
        self._dirty = False
        self._scheduled = False
        self._interactive = False
        self._refine_timer = QtCore.QTimer(self)
        self._refine_timer.setSingleShot(True)
        self._refine_timer.setInterval(self.REFINE_MS)
        self._refine_timer.timeout.connect(self._refine)
        self.interactive_lod = True

        self.render_window.AddObserver("EndEvent", self._on_render_end)
        self.vtk_widget.installEventFilter(self)

    # ------------------------------------------------------------------ rendering
    def request_render(self) -> None:
        """Render once on the next event-loop turn (coalesces any number of requests)."""
        self._dirty = True
        if not self._scheduled and not self._closed:
            self._scheduled = True
            QtCore.QTimer.singleShot(0, self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._dirty and not self._closed and self.vtk_widget.isVisible():
            self._dirty = False
            self.render_window.Render()

    def render_now(self) -> None:
        """Render synchronously (tests, export)."""
        if not self._closed:
            self._dirty = False
            self.render_window.Render()

    def _on_render_end(self, *args) -> None:
        self.render_count += 1

    def _begin_interaction(self) -> None:
        if self.interactive_lod and not self._interactive:
            self._interactive = True
            self.pipeline.set_interactive(True)
        self._refine_timer.start()

    def _refine(self) -> None:
        if self._interactive:
            self._interactive = False
            self.pipeline.set_interactive(False)
            self.request_render()

    @property
    def interactive(self) -> bool:
        """True while the cheap interactive level of detail is shown."""
        return self._interactive

    def capture(self) -> np.ndarray:
        """What the view shows now as (height, width, 3) uint8 (renders first; vtkWindowToImageFilter)."""
        self.render_now()
        return capture_rgb(self.render_window, render=False)

    # ------------------------------------------------------------------ volume / plane / slice
    @property
    def volume(self):
        return self.pipeline.volume

    @property
    def label(self) -> str:
        return self.pipeline.label

    @property
    def plane(self) -> str:
        return self.pipeline.plane

    @property
    def slice_index(self) -> int:
        return self.pipeline.slice_index()

    @property
    def slice_count(self) -> int:
        return self.pipeline.slice_count()

    def set_volume(self, volume, *, label: str | None = None, slice_index: int | None = None,
                   point=None) -> None:
        """Show `volume`: plane through `point` (else the middle slice, or `slice_index`), auto window,
        view fitted. Emits slice_changed and window_changed."""
        self.pipeline.set_volume(volume, label=label, point=point)
        if point is None:
            n = self.pipeline.slice_count()
            self.pipeline.set_slice(middle_slice(n) if slice_index is None else slice_index)
        self._last_cursor = None
        self.request_render()
        self.slice_changed.emit(self.slice_index)
        self.window_changed.emit(*self.window())
        self.view_changed.emit()
        self._refresh_cursor()

    def clear(self) -> None:
        self.pipeline.clear()
        self.request_render()

    def set_label(self, label: str) -> None:
        self.pipeline.set_label(label)
        self.request_render()

    def set_plane(self, plane: str) -> None:
        before = (self.pipeline.plane, self.slice_index)
        self.pipeline.set_plane(plane)
        self.request_render()
        if (self.pipeline.plane, self.slice_index) != before:
            self.slice_changed.emit(self.slice_index)
            self.view_changed.emit()

    def set_slice(self, index: int) -> None:
        """Show plane `index` (clamped); emits `slice_changed` only on a change."""
        if self.pipeline.set_slice(index):
            self.request_render()
            self.slice_changed.emit(self.slice_index)
            self._refresh_cursor()

    def step_slice(self, delta: int) -> None:
        self.set_slice(self.slice_index + int(delta))

    def set_point(self, lps) -> None:
        """Move the plane through patient point `lps` (e.g. from a linked view's crosshair)."""
        before = self.slice_index
        self.pipeline.set_point(lps)
        self.request_render()
        if self.slice_index != before:
            self.slice_changed.emit(self.slice_index)
            self._refresh_cursor()

    def set_crosshair(self, lps) -> None:
        self.pipeline.set_crosshair(lps)
        self.request_render()

    def _page_step(self) -> int:
        return max(1, self.slice_count // 10)

    # ------------------------------------------------------------------ window / display
    def window(self) -> tuple[float, float]:
        return self.pipeline.window()

    def auto_window_values(self) -> tuple[float, float]:
        return self.pipeline.auto_window_values()

    def set_window(self, center: float, width: float) -> None:
        if self.pipeline.set_window(center, width):
            self.request_render()
            self.window_changed.emit(*self.window())

    def wl_sensitivity(self) -> float:
        lo, hi = self.pipeline.data_range()
        return max(hi - lo, 1e-6) / self.WL_PIXELS_PER_RANGE

    @property
    def inverted(self) -> bool:
        return self.pipeline.inverted

    def set_inverted(self, inverted: bool) -> None:
        self.pipeline.set_inverted(inverted)
        self.request_render()

    def set_interpolation(self, mode: str) -> None:
        self._interactive = False
        self.pipeline.set_interactive(False)
        self.pipeline.set_interpolation(mode)
        self.request_render()

    def overlay_text(self, name: str) -> str:
        return self.pipeline.overlay_text(name)

    # ------------------------------------------------------------------ overlay layer (blend)
    def set_overlay(self, volume, *, opacity: float = 0.5, colormap: str = "hot", window=None) -> None:
        """Blend `volume` over the shown one, cut by the same plane (None removes it); see
        `SlicePipeline.set_overlay`. Best passed already resampled onto this view's volume grid."""
        self.pipeline.set_overlay(volume, opacity=opacity, colormap=colormap, window=window)
        self.request_render()

    def overlay(self):
        return self.pipeline.overlay()

    def overlay_opacity(self) -> float:
        return self.pipeline.overlay_opacity()

    def set_overlay_opacity(self, opacity: float) -> None:
        """Overlay opacity in [0, 1]; renders coalesced (a slider may call this at any rate)."""
        if self.pipeline.set_overlay_opacity(opacity):
            self.request_render()

    def set_overlay_window(self, center: float, width: float) -> None:
        if self.pipeline.set_overlay_window(center, width):
            self.request_render()

    def set_overlay_colormap(self, name: str) -> None:
        self.pipeline.set_overlay_colormap(name)
        self.request_render()

    def orientation_labels(self) -> dict[str, str]:
        return self.pipeline.orientation_labels()

    def set_color_bar(self, title: str | None, *, colormap: str | None = None, vmin: float | None = None,
                      vmax: float | None = None) -> None:
        """Show a colour scale titled `title` (e.g. "R2* (s⁻¹)") for the overlay: its colormap and
        window unless given; None removes it."""
        from discviewer.render.overlays import ColorBar
        from discviewer.render.slice_pipeline import colormap_table

        if title is None:
            if self._color_bar is not None:
                self._color_bar.remove()
                self._color_bar = None
                self.request_render()
            return
        if self._color_bar is None:
            self._color_bar = ColorBar(self.renderer)
        c, w = self.pipeline.overlay_window()
        self._color_bar.set_colormap(colormap_table(colormap or self.pipeline.overlay_colormap()))
        self._color_bar.set_range(c - w / 2 if vmin is None else vmin, c + w / 2 if vmax is None else vmax)
        self._color_bar.set_title(title)
        self.request_render()

    def color_bar(self):
        """The `ColorBar` shown (None when none)."""
        return self._color_bar

    # ------------------------------------------------------------------ view
    def reset_view(self) -> None:
        self.pipeline.reset_camera()
        self.request_render()
        self.view_changed.emit()

    def reset(self) -> None:
        """`R`: fit the view and restore the automatic window."""
        self.reset_view()
        self.set_window(*self.auto_window_values())

    def view_state(self):
        return self.pipeline.view_state()

    def set_view_state(self, state) -> None:
        """Apply a linked view's (focal u, focal v, scale) without emitting `view_changed`."""
        self.pipeline.set_view_state(state)
        self.request_render()

    def zoom(self, factor: float, center: QtCore.QPointF | None = None) -> None:
        self.pipeline.zoom(factor, None if center is None else self._to_display(center))
        self.request_render()
        self.view_changed.emit()

    # ------------------------------------------------------------------ coordinates
    def viewport(self) -> QtWidgets.QWidget:
        """The widget that receives mouse events (the embedded VTK widget) — as QGraphicsView.viewport()."""
        return self.vtk_widget

    def _dpr(self) -> float:
        return float(self.vtk_widget.devicePixelRatioF())

    def _to_display(self, pos: QtCore.QPointF) -> tuple[float, float]:
        """Widget position (logical px, y down) → VTK display pixels (y up)."""
        s = self._dpr()
        return pos.x() * s, (self.vtk_widget.height() - pos.y()) * s

    def patient_at(self, pos: QtCore.QPointF):
        """LPS on the current plane under widget position `pos`."""
        return self.pipeline.display_to_patient(*self._to_display(pos))

    def slice_plane(self) -> dict | None:
        """The shown plane in LPS: {"origin": [x, y, z], "normal": [x, y, z]} (normal towards the viewer;
        origin = the volume centre moved onto the plane), or None without a volume."""
        if self.volume is None:
            return None
        return {"origin": [float(v) for v in self.pipeline.plane_origin()],
                "normal": [float(v) for v in self.pipeline.frame()[2]]}

    def set_tool_handler(self, handler) -> None:
        """`handler(event) -> bool` sees mouse presses/moves/releases/double-clicks, key presses and
        shortcut overrides before the view (after the view got focus on a press); True consumes the
        event. None removes it."""
        self._tool_handler = handler

    def tool_handler(self):
        return self._tool_handler

    def widget_point_for_patient(self, lps) -> QtCore.QPointF:
        """Widget position (logical px, y down) where patient point `lps` (projected on the plane) shows."""
        x, y = self.pipeline.patient_to_display(lps)
        s = self._dpr()
        return QtCore.QPointF(x / s, self.vtk_widget.height() - y / s)

    def set_mouse_scheme(self, scheme: str) -> None:
        if scheme not in self.SCHEMES:
            raise ValueError(f"mouse scheme must be one of {self.SCHEMES}, got {scheme!r}")
        self._scheme = scheme

    @property
    def mouse_scheme(self) -> str:
        return self._scheme

    def _refresh_cursor(self) -> None:
        if self._last_pos is None or self.volume is None:
            return
        lps = self.patient_at(self._last_pos)
        value = self.pipeline.value_at(lps)
        sample = (None, None) if value is None else (tuple(float(v) for v in lps), value)
        if sample != self._last_cursor:
            self._last_cursor = sample
            self.cursor_moved.emit(*sample)

    # ------------------------------------------------------------------ events
    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt API
        if obj is not self.vtk_widget:
            return False
        t = ev.type()
        if self._tool_handler is not None and t in _TOOL_EVENTS:
            if t == QEvent.Type.MouseButtonPress:
                self.vtk_widget.setFocus(Qt.FocusReason.MouseFocusReason)
            if self._tool_handler(ev):
                ev.accept()
                return True
        if t == QEvent.Type.MouseButtonPress:
            self._mouse_press(ev)
        elif t == QEvent.Type.MouseMove:
            self._mouse_move(ev)
        elif t == QEvent.Type.MouseButtonRelease:
            if self._drag is not None and ev.button() == self._drag["button"]:
                self._drag = None
        elif t == QEvent.Type.MouseButtonDblClick:
            if ev.button() == Qt.MouseButton.LeftButton:
                self.maximize_requested.emit()
        elif t == QEvent.Type.Wheel:
            self._wheel(ev)
        elif t == QEvent.Type.KeyPress:
            return self._key(ev)
        elif t == QEvent.Type.KeyRelease:
            pass
        elif t == QEvent.Type.Leave:
            self._last_pos = None
            if self._last_cursor not in (None, (None, None)):
                self._last_cursor = (None, None)
                self.cursor_moved.emit(None, None)
        elif t in (QEvent.Type.Enter, QEvent.Type.ContextMenu):
            pass
        else:
            return False  # paint, resize, show …: QVTKRenderWindowInteractor handles them
        ev.accept()
        return True

    def _mouse_press(self, ev) -> None:
        self.vtk_widget.setFocus(Qt.FocusReason.MouseFocusReason)
        if self.volume is None or self._drag is not None:
            return
        pos = QtCore.QPointF(ev.position())
        self._drag = {"button": ev.button(), "start": pos, "last": pos, "window": self.window(),
                      "anchor": self._to_display(pos)}
        if ev.button() == Qt.MouseButton.LeftButton and self._scheme == "crosshair":
            self._pick(pos)

    def _pick(self, pos: QtCore.QPointF) -> None:
        lps = tuple(float(v) for v in self.patient_at(pos))
        self.pipeline.set_crosshair(lps)
        self.request_render()
        self.point_picked.emit(lps)

    def _mouse_move(self, ev) -> None:
        pos = QtCore.QPointF(ev.position())
        self._last_pos = pos
        d = self._drag
        if d is not None:
            button = d["button"]
            if button == Qt.MouseButton.LeftButton:
                if self._scheme == "crosshair":
                    self._pick(pos)
                else:
                    dx, dy = pos.x() - d["start"].x(), pos.y() - d["start"].y()
                    s = self.wl_sensitivity()
                    c0, w0 = d["window"]
                    self._begin_interaction()
                    self.set_window(c0 + dy * s, w0 + dx * s)
            elif button == Qt.MouseButton.MiddleButton:
                s = self._dpr()
                self._begin_interaction()
                self.pipeline.pan((pos.x() - d["last"].x()) * s, -(pos.y() - d["last"].y()) * s)
                self.request_render()
                self.view_changed.emit()
            elif button == Qt.MouseButton.RightButton:
                f = float(np.exp(-(pos.y() - d["last"].y()) * self.ZOOM_PER_PIXEL))
                self._begin_interaction()
                self.pipeline.zoom(f, d["anchor"])
                self.request_render()
                self.view_changed.emit()
            d["last"] = pos
        self._refresh_cursor()

    def _wheel(self, ev) -> None:
        if self.volume is None:
            return
        self._wheel_accum += ev.angleDelta().y()
        notches = int(self._wheel_accum / 120)
        if notches == 0:
            return
        self._wheel_accum -= notches * 120
        self._begin_interaction()
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom(1.0 / (self.WHEEL_ZOOM ** notches), QtCore.QPointF(ev.position()))
        else:
            self.step_slice(-notches)  # wheel down (negative delta) = next slice

    def _key(self, ev) -> bool:
        key = ev.key()
        steps = {Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1,
                 Qt.Key.Key_PageDown: self._page_step(), Qt.Key.Key_PageUp: -self._page_step()}
        if key in steps:
            self._begin_interaction()
            self.step_slice(steps[key])
        elif key == Qt.Key.Key_Home:
            self.set_slice(0)
        elif key == Qt.Key.Key_End:
            self.set_slice(self.slice_count - 1)
        elif key == Qt.Key.Key_R:
            self.reset()
        elif key == Qt.Key.Key_I:
            self.set_inverted(not self.inverted)
        else:
            return False
        ev.accept()
        return True

    # ------------------------------------------------------------------ teardown
    def closeEvent(self, ev) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(ev)

    def shutdown(self) -> None:
        """Stop timers and release the GL context (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.closed.emit()
        self._tool_handler = None
        self._refine_timer.stop()
        self.vtk_widget.removeEventFilter(self)
        self.pipeline.close()
        self.render_window.Finalize()

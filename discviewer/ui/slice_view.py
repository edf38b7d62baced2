"""`SliceView`: one 2-D slice of a `Volume` on pyqtgraph, in physical millimetres.

Shows `volume.array[k]` (row 0 at the top, column 0 on the left) with the image rectangle
scaled to millimetres (columns × column spacing by rows × row spacing) and the aspect locked
at 1 mm : 1 mm, so anisotropic pixels are never squashed.

PACS mouse scheme (DESIGN.md §6), handled here rather than by pyqtgraph's defaults (its
context menu is never shown):
  left-drag    window/level: drag right = wider window (less contrast), drag down = higher
               level (darker); sensitivity = data range / `WL_PIXELS_PER_RANGE` per pixel
  middle-drag  pan          right-drag  zoom (drag up = zoom in)
  wheel        slice ±1 per notch (wheel down = next slice)     Ctrl+wheel  zoom at the cursor
Keys: Down/Up = next/previous slice, PageDown/PageUp = ±max(1, N/10) slices, Home/End =
first/last slice, R = reset view and auto window (1st–99th percentile of the volume), I = invert.

Overlays are screen-fixed text items parented to the ViewBox: series label and "Slice k/N"
(top-left), W/L (top-right), orientation letters on each edge (from the affine), a scale bar
(bottom-left) and the permanent research-use notice (bottom-right).

Signals: `slice_changed(int)`, `window_changed(center, width)`, `cursor_moved(CursorSample | None)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from discviewer import RESEARCH_USE_NOTICE
from discviewer.ui.pgsetup import pg
from discviewer.display import (
    auto_window,
    data_range,
    edge_letters,
    format_number,
    middle_slice,
    scale_bar_length,
)

Qt = QtCore.Qt


@dataclass(frozen=True)
class CursorSample:
    """What is under the mouse: voxel index, its centre in patient LPS mm, and its value."""

    column: int
    row: int
    slice: int
    patient: tuple[float, float, float]
    value: float


class OverlayText(QtWidgets.QGraphicsSimpleTextItem):
    """Screen-fixed overlay text with a translucent dark backing for legibility on any image."""

    def __init__(self, text: str = "", parent: QtWidgets.QGraphicsItem | None = None,
                 color: QtGui.QColor | None = None, point_size: float = 10.0, bold: bool = False) -> None:
        super().__init__(text, parent)
        font = QtGui.QFont()
        font.setPointSizeF(point_size)
        font.setBold(bold)
        self.setFont(font)
        self.setBrush(QtGui.QBrush(color or QtGui.QColor(235, 235, 235)))
        self.setZValue(1000)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def paint(self, painter, option, widget=None) -> None:  # noqa: D401 - Qt API
        if self.text():
            painter.fillRect(self.boundingRect().adjusted(-3, -1, 3, 1), QtGui.QColor(0, 0, 0, 140))
        super().paint(painter, option, widget)


class SliceView(pg.GraphicsView):
    """2-D slice viewer of a `Volume` with PACS mouse/keyboard controls and overlays."""

    slice_changed = QtCore.Signal(int)
    window_changed = QtCore.Signal(float, float)  # (center, width)
    cursor_moved = QtCore.Signal(object)  # CursorSample, or None when off the image

    WL_PIXELS_PER_RANGE = 500.0  # dragging this many pixels changes W or L by the full data range
    ZOOM_PER_PIXEL = 0.01  # right-drag: scale factor exp(±0.01) per pixel
    WHEEL_ZOOM = 0.85  # Ctrl+wheel: range factor per notch
    MARGIN = 6  # px between overlays and the view edge

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, background="k")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setMinimumSize(200, 200)

        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False, enableMouse=False,
                             defaultPadding=0.02)
        self.vb.setMenuEnabled(False)
        self.vb.setMouseEnabled(False, False)
        self.setCentralItem(self.vb)

        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image_item)

        self._volume = None
        self._label = ""
        self._slice = 0
        self._center = 0.5
        self._width = 1.0
        self._auto = (0.5, 1.0)
        self._range = (0.0, 1.0)
        self._inverted = False
        self._edges = {"left": "", "right": "", "top": "", "bottom": ""}
        self._drag: dict | None = None
        self._wheel_accum = 0
        self._last_mouse_scene: QtCore.QPointF | None = None
        self._last_sample: CursorSample | None = None

        self._build_overlays()
        self.vb.sigResized.connect(self._layout_overlays)
        self.vb.sigRangeChanged.connect(self._layout_overlays)
        self._update_overlays()

    # ------------------------------------------------------------------ overlays
    def _build_overlays(self) -> None:
        self.overlays: dict[str, OverlayText] = {}
        for name in ("series", "slice", "window", "left", "right", "top", "bottom", "scale"):
            item = OverlayText("", bold=name in ("left", "right", "top", "bottom"))
            item.setParentItem(self.vb)
            self.overlays[name] = item
        notice = OverlayText(RESEARCH_USE_NOTICE, color=QtGui.QColor(255, 200, 80), point_size=9.0)
        notice.setParentItem(self.vb)
        self.overlays["notice"] = notice
        self.overlays["hint"] = OverlayText("Open a folder (File → Open folder…) or drop it here",
                                            color=QtGui.QColor(170, 170, 170), point_size=11.0)
        self.overlays["hint"].setParentItem(self.vb)
        self.scale_bar = QtWidgets.QGraphicsPathItem(self.vb)
        pen = QtGui.QPen(QtGui.QColor(235, 235, 235))
        pen.setWidth(2)
        pen.setCosmetic(True)
        self.scale_bar.setPen(pen)
        self.scale_bar.setZValue(1000)

    def _update_overlays(self) -> None:
        if self.overlays is None:  # closed
            return
        has = self._volume is not None
        o = self.overlays
        o["series"].setText(self._label if has else "")
        o["slice"].setText(f"Slice {self._slice + 1}/{self.slice_count}" if has else "")
        if has:
            text = f"W {format_number(self._width)}  L {format_number(self._center)}"
            o["window"].setText(text + ("  INV" if self._inverted else ""))
        else:
            o["window"].setText("")
        for edge in ("left", "right", "top", "bottom"):
            o[edge].setText(self._edges[edge] if has else "")
        o["hint"].setVisible(not has)
        self._layout_overlays()

    def _layout_overlays(self, *args) -> None:
        if self.overlays is None:  # closed
            return
        r = self.vb.rect()
        w, h, m = r.width(), r.height(), self.MARGIN
        o = self.overlays

        def size(item):
            b = item.boundingRect()
            return b.width(), b.height()

        sw, sh = size(o["series"])
        o["series"].setPos(m, m)
        o["slice"].setPos(m, m + (sh + 2 if o["series"].text() else 0))
        ww, _ = size(o["window"])
        o["window"].setPos(w - m - ww, m)
        nw, nh = size(o["notice"])
        o["notice"].setPos(w - m - nw, h - m - nh)
        hw, hh = size(o["hint"])
        o["hint"].setPos((w - hw) / 2, (h - hh) / 2)
        lw, lh = size(o["left"])
        o["left"].setPos(m, (h - lh) / 2)
        rw, rh = size(o["right"])
        o["right"].setPos(w - m - rw, (h - rh) / 2)
        tw, th = size(o["top"])
        o["top"].setPos((w - tw) / 2, m)
        bw, bh = size(o["bottom"])
        o["bottom"].setPos((w - bw) / 2, h - m - bh)
        self._layout_scale_bar(w, h)

    def _layout_scale_bar(self, w: float, h: float) -> None:
        path = QtGui.QPainterPath()
        if self._volume is None or w <= 0:
            self.scale_bar.setPath(path)
            self.overlays["scale"].setText("")
            return
        mm_per_px = self.vb.viewPixelSize()[0]
        if not np.isfinite(mm_per_px) or mm_per_px <= 0:
            return
        length_mm = scale_bar_length(0.25 * w * mm_per_px)
        length_px = length_mm / mm_per_px
        label = self.overlays["scale"]
        label.setText(f"{format_number(length_mm)} mm")
        lw, lh = label.boundingRect().width(), label.boundingRect().height()
        x0 = self.MARGIN + 4
        y = h - self.MARGIN - lh - 6
        path.moveTo(x0, y - 5)
        path.lineTo(x0, y)
        path.lineTo(x0 + length_px, y)
        path.lineTo(x0 + length_px, y - 5)
        self.scale_bar.setPath(path)
        label.setPos(x0 + (length_px - lw) / 2, y + 2)
        self.scale_bar_mm = length_mm
        self.scale_bar_px = length_px

    def overlay_text(self, name: str) -> str:
        """Current text of an overlay: series, slice, window, left, right, top, bottom, scale, notice."""
        return self.overlays[name].text()

    def orientation_labels(self) -> dict[str, str]:
        """Edge letters currently shown: {'left', 'right', 'top', 'bottom'}."""
        return dict(self._edges)

    # ------------------------------------------------------------------ volume / slice
    @property
    def volume(self):
        return self._volume

    @property
    def slice_index(self) -> int:
        return self._slice

    @property
    def slice_count(self) -> int:
        return 0 if self._volume is None else int(self._volume.array.shape[0])

    @property
    def label(self) -> str:
        return self._label

    def set_volume(self, volume, *, label: str | None = None, slice_index: int | None = None) -> None:
        """Show `volume` (middle slice unless `slice_index`), auto window, view fitted to the image."""
        self._volume = volume
        self._label = label if label is not None else (
            getattr(volume.info, "series_description", "") or "")
        self._auto = auto_window(volume.array)
        self._range = data_range(volume.array)
        self._center, self._width = self._auto
        self._edges = edge_letters(volume.affine).as_dict()
        k = middle_slice(self.slice_count) if slice_index is None else slice_index
        self._slice = int(np.clip(k, 0, self.slice_count - 1))
        self._show_slice()
        # after setImage: ImageItem.setRect scales by the *current* image's size
        col_mm, row_mm, _ = volume.spacing
        rows, cols = volume.array.shape[1:]
        self.image_item.setRect(QtCore.QRectF(0.0, 0.0, cols * col_mm, rows * row_mm))
        self.reset_view()
        self._update_overlays()
        self.slice_changed.emit(self._slice)
        self.window_changed.emit(self._center, self._width)
        self._last_sample = None
        self._refresh_cursor()

    def clear(self) -> None:
        """Show nothing (the research notice and the open hint stay)."""
        self._volume = None
        self._label = ""
        self._slice = 0
        self.image_item.clear()
        self._update_overlays()

    def set_slice(self, index: int) -> None:
        """Show slice `index` (clamped to the volume); emits `slice_changed` only on a change."""
        if self._volume is None:
            return
        k = int(np.clip(int(index), 0, self.slice_count - 1))
        if k == self._slice:
            return
        self._slice = k
        self._show_slice()
        self._update_overlays()
        self.slice_changed.emit(k)
        self._refresh_cursor()

    def step_slice(self, delta: int) -> None:
        self.set_slice(self._slice + int(delta))

    def _page_step(self) -> int:
        return max(1, self.slice_count // 10)

    def _show_slice(self) -> None:
        img = self._volume.array[self._slice]
        if img.dtype.kind not in "uif" or not img.dtype.isnative:
            img = img.astype(np.float32)
        self.image_item.setImage(np.ascontiguousarray(img), autoLevels=False, levels=self._levels())
        self._apply_lut()

    # ------------------------------------------------------------------ window / level
    def window(self) -> tuple[float, float]:
        """(center, width) of the display window."""
        return self._center, self._width

    def auto_window_values(self) -> tuple[float, float]:
        """(center, width) of the automatic window: 1st–99th percentile of the whole volume."""
        return self._auto

    def set_window(self, center: float, width: float) -> None:
        """Set the display window; width is kept positive. Emits `window_changed` on a change."""
        width = max(float(width), self._min_width())
        center = float(center)
        if (center, width) == (self._center, self._width):
            return
        self._center, self._width = center, width
        if self._volume is not None:
            self.image_item.setLevels(self._levels())
        self._update_overlays()
        self.window_changed.emit(center, width)

    def _min_width(self) -> float:
        lo, hi = self._range
        return max((hi - lo) * 1e-4, 1e-6)

    def _levels(self) -> tuple[float, float]:
        return self._center - self._width / 2.0, self._center + self._width / 2.0

    @property
    def inverted(self) -> bool:
        return self._inverted

    def set_inverted(self, inverted: bool) -> None:
        self._inverted = bool(inverted)
        self._apply_lut()
        self._update_overlays()

    def _apply_lut(self) -> None:
        if self._inverted:
            self.image_item.setLookupTable(np.arange(255, -1, -1, dtype=np.uint8))
        else:
            self.image_item.setLookupTable(None)

    def wl_sensitivity(self) -> float:
        """Window/level change per pixel of left-drag."""
        lo, hi = self._range
        return max(hi - lo, 1e-6) / self.WL_PIXELS_PER_RANGE

    # ------------------------------------------------------------------ view
    def reset_view(self) -> None:
        """Fit the whole slice in the view."""
        if self._volume is not None:
            self.vb.autoRange(items=[self.image_item], padding=0.02)
        self._layout_overlays()

    def reset(self) -> None:
        """`R`: reset the view and the automatic window."""
        self.reset_view()
        self.set_window(*self._auto)

    def image_rect_mm(self) -> QtCore.QRectF:
        """The image rectangle in view coordinates (mm from the first voxel's outer corner)."""
        return self.image_item.mapRectToParent(self.image_item.boundingRect())

    def view_point_for_voxel(self, column: float, row: float) -> QtCore.QPointF:
        """Viewport (widget) position of the centre of voxel (column, row) of the current slice."""
        col_mm, row_mm, _ = self._volume.spacing
        view_pt = QtCore.QPointF((column + 0.5) * col_mm, (row + 0.5) * row_mm)
        scene_pt = self.vb.mapViewToScene(view_pt)
        return self.viewportTransform().map(scene_pt)  # QPointF (mapFromScene would round)

    def sample_at_scene(self, scene_pos: QtCore.QPointF) -> CursorSample | None:
        """The voxel of the current slice under a scene position, or None off the image."""
        if self._volume is None:
            return None
        p = self.vb.mapSceneToView(scene_pos)
        col_mm, row_mm, _ = self._volume.spacing
        rows, cols = self._volume.array.shape[1:]
        c = int(np.floor(p.x() / col_mm))
        r = int(np.floor(p.y() / row_mm))
        if not (0 <= c < cols and 0 <= r < rows):
            return None
        xyz = self._volume.index_to_patient(np.array([c, r, self._slice], dtype=np.float64))
        value = float(self._volume.array[self._slice, r, c])
        return CursorSample(c, r, self._slice, (float(xyz[0]), float(xyz[1]), float(xyz[2])), value)

    def _refresh_cursor(self) -> None:
        if self._last_mouse_scene is None:
            return
        sample = self.sample_at_scene(self._last_mouse_scene)
        if sample != self._last_sample:
            self._last_sample = sample
            self.cursor_moved.emit(sample)

    # ------------------------------------------------------------------ mouse
    def _to_scene(self, viewport_pos: QtCore.QPointF) -> QtCore.QPointF:
        """Viewport position → scene position without rounding to whole pixels."""
        inverse, _ = self.viewportTransform().inverted()
        return inverse.map(QtCore.QPointF(viewport_pos))

    def mousePressEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt API
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if self._volume is None or self._drag is not None:
            ev.accept()
            return
        pos = ev.position()
        self._drag = {
            "button": ev.button(),
            "start": QtCore.QPointF(pos),
            "last": QtCore.QPointF(pos),
            "window": (self._center, self._width),
            "anchor": self.vb.mapSceneToView(self._to_scene(pos)),
        }
        ev.accept()

    def mouseMoveEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt API
        pos = ev.position()
        self._last_mouse_scene = self._to_scene(pos)
        d = self._drag
        if d is not None:
            button = d["button"]
            if button == Qt.MouseButton.LeftButton:
                dx = pos.x() - d["start"].x()
                dy = pos.y() - d["start"].y()
                s = self.wl_sensitivity()
                c0, w0 = d["window"]
                self.set_window(c0 + dy * s, w0 + dx * s)
            elif button == Qt.MouseButton.MiddleButton:
                a = self.vb.mapSceneToView(self._to_scene(d["last"]))
                b = self.vb.mapSceneToView(self._to_scene(pos))
                self.vb.translateBy(x=a.x() - b.x(), y=a.y() - b.y())
            elif button == Qt.MouseButton.RightButton:
                dy = pos.y() - d["last"].y()
                f = float(np.exp(dy * self.ZOOM_PER_PIXEL))
                self.vb.scaleBy((f, f), center=d["anchor"])
            d["last"] = QtCore.QPointF(pos)
        self._refresh_cursor()
        ev.accept()

    def mouseReleaseEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._drag is not None and ev.button() == self._drag["button"]:
            self._drag = None
        ev.accept()

    def mouseDoubleClickEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt API
        ev.accept()

    def leaveEvent(self, ev) -> None:  # noqa: N802 - Qt API
        self._last_mouse_scene = None
        if self._last_sample is not None:
            self._last_sample = None
            self.cursor_moved.emit(None)
        super().leaveEvent(ev)

    def contextMenuEvent(self, ev) -> None:  # noqa: N802 - no pyqtgraph menus
        ev.accept()

    def wheelEvent(self, ev: QtGui.QWheelEvent) -> None:  # noqa: N802 - Qt API
        ev.accept()
        if self._volume is None:
            return
        self._wheel_accum += ev.angleDelta().y()
        notches = int(self._wheel_accum / 120)
        if notches == 0:
            return
        self._wheel_accum -= notches * 120
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            center = self.vb.mapSceneToView(self._to_scene(ev.position()))
            f = self.WHEEL_ZOOM ** notches
            self.vb.scaleBy((f, f), center=center)
        else:
            self.step_slice(-notches)  # wheel down (negative delta) = next slice

    # ------------------------------------------------------------------ keys
    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt API
        key = ev.key()
        steps = {
            Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1,
            Qt.Key.Key_PageDown: self._page_step(), Qt.Key.Key_PageUp: -self._page_step(),
        }
        if key in steps:
            self.step_slice(steps[key])
        elif key == Qt.Key.Key_Home:
            self.set_slice(0)
        elif key == Qt.Key.Key_End:
            self.set_slice(self.slice_count - 1)
        elif key == Qt.Key.Key_R:
            self.reset()
        elif key == Qt.Key.Key_I:
            self.set_inverted(not self._inverted)
        else:
            super().keyPressEvent(ev)
            return
        ev.accept()

    def resizeEvent(self, ev) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(ev)
        if getattr(self, "overlays", None) is not None:  # pyqtgraph resizes during __init__
            self._layout_overlays()

    def close(self) -> bool:
        """Detach overlays before pyqtgraph's close() clears the scene (its items die there)."""
        if getattr(self, "overlays", None) is not None:
            for sig in (self.vb.sigResized, self.vb.sigRangeChanged):
                try:
                    sig.disconnect(self._layout_overlays)
                except (RuntimeError, TypeError):
                    pass
            self.overlays = None
            self.scale_bar = None
        return super().close()

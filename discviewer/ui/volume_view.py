"""`VolumeView`: the 3-D view of the review workstation (VTK in Qt), around `VolumePipeline`.

Mouse (trackball camera, VTK's vtkInteractorStyleTrackballCamera): left-drag rotate, middle-drag
pan, right-drag or wheel zoom, Shift+left pan, Ctrl+left spin. While a drag (or a wheel step) is
in progress the pipeline renders its coarse level of detail; on release one full-quality render
follows (coalesced on the event loop).

Controls (top row): preset (MR soft tissue / MIP / MinIP), window low/high sliders (data values,
slider span = the volume's data range; presets set them from percentiles), "Clip" (a clip box,
initially the middle third of the volume left–right — the mid-sagittal slab — adjustable with the
box widget's handles), "Planes" (outlines of the three slice planes through `set_point`), "Reset"
(camera from the patient's left). Overlays: the research-use notice (bottom right) and an
orientation cube (L/R/A/P/S/I faces in patient space, bottom left).

Capture with `grab_image()` (vtkWindowToImageFilter) — `QWidget.grab()` returns garbage for the
VTK widget (DESIGN.md §5). Runs under X11/Xvfb; not under QT_QPA_PLATFORM=offscreen.

Signals: `lod_changed(bool)` (True while interacting), `preset_changed(str)`,
`window_changed(float, float)`.
"""
from __future__ import annotations

import sys

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkInteractionWidgets import vtkBoxRepresentation, vtkBoxWidget2, vtkOrientationMarkerWidget
from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor
from vtkmodules.vtkRenderingCore import vtkRenderer, vtkTextActor, vtkWindowToImageFilter

import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text rendering)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401

from discviewer import RESEARCH_USE_NOTICE
from discviewer.render.volume_pipeline import DEFAULT_PRESET, PRESETS, VolumePipeline
from discviewer.volume import Volume

Qt = QtCore.Qt
SLIDER_STEPS = 1000


def _render_window_for_platform():
    """An explicit X11 GL window under xcb, so a VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow set for
    headless rendering elsewhere in the process cannot give the Qt widget a window it cannot embed."""
    app = QtGui.QGuiApplication.instance()
    if sys.platform.startswith("linux") and app is not None and app.platformName() == "xcb":
        from vtkmodules.vtkRenderingOpenGL2 import vtkXOpenGLRenderWindow

        return vtkXOpenGLRenderWindow()
    return None


class VolumeView(QtWidgets.QWidget):
    lod_changed = QtCore.Signal(bool)
    preset_changed = QtCore.Signal(str)
    window_changed = QtCore.Signal(float, float)

    def __init__(self, parent: QtWidgets.QWidget | None = None, mapper: str = "auto") -> None:
        super().__init__(parent)
        self.volume: Volume | None = None
        self._point: tuple[float, float, float] | None = None
        self._range = (0.0, 1.0)
        self._render_pending = False
        self._closed = False

        # --- controls
        self.preset_combo = QtWidgets.QComboBox()
        self.preset_combo.addItems(list(PRESETS))
        self.preset_combo.setCurrentText(DEFAULT_PRESET)
        self.preset_combo.setToolTip("Rendering preset (window and opacity from the volume's percentiles)")
        self.low_slider = QtWidgets.QSlider(Qt.Orientation.Horizontal)
        self.high_slider = QtWidgets.QSlider(Qt.Orientation.Horizontal)
        for s, tip in ((self.low_slider, "Window low: values below are dark/transparent"),
                       (self.high_slider, "Window high: values above are white/opaque")):
            s.setRange(0, SLIDER_STEPS)
            s.setToolTip(tip)
            s.setMinimumWidth(90)
        self.window_label = QtWidgets.QLabel("")
        self.window_label.setMinimumWidth(90)
        self.clip_check = QtWidgets.QCheckBox("Clip")
        self.clip_check.setToolTip("Clip box (drag its handles); starts as the mid-sagittal third")
        self.planes_check = QtWidgets.QCheckBox("Planes")
        self.planes_check.setToolTip("Show the three slice planes through the current point")
        self.reset_button = QtWidgets.QPushButton("Reset")
        self.reset_button.setToolTip("Reset the camera (view from the patient's left)")

        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(2, 2, 2, 2)
        bar.addWidget(self.preset_combo)
        bar.addWidget(QtWidgets.QLabel("W"))
        bar.addWidget(self.low_slider, 1)
        bar.addWidget(self.high_slider, 1)
        bar.addWidget(self.window_label)
        bar.addWidget(self.clip_check)
        bar.addWidget(self.planes_check)
        bar.addWidget(self.reset_button)

        # --- VTK
        rw = _render_window_for_platform()
        self.vtk_widget = QVTKRenderWindowInteractor(self, rw=rw) if rw is not None else QVTKRenderWindowInteractor(self)
        self.render_window = self.vtk_widget.GetRenderWindow()
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.render_window.AddRenderer(self.renderer)
        self.interactor = self.render_window.GetInteractor()
        self.style = vtkInteractorStyleTrackballCamera()
        self.interactor.SetInteractorStyle(self.style)
        self.style.AddObserver("StartInteractionEvent", self._on_interaction_started)
        self.style.AddObserver("EndInteractionEvent", self._on_interaction_finished)
        self.pipeline = VolumePipeline(self.renderer, mapper=mapper)

        self.notice = vtkTextActor()
        self.notice.SetInput(RESEARCH_USE_NOTICE)
        tp = self.notice.GetTextProperty()
        tp.SetFontSize(13)
        tp.SetColor(1.0, 0.85, 0.3)
        tp.SetJustificationToRight()
        tp.SetVerticalJustificationToBottom()
        self.notice.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        self.notice.GetPositionCoordinate().SetValue(0.99, 0.01)
        self.renderer.AddViewProp(self.notice)

        cube = vtkAnnotatedCubeActor()
        for face, text in (("XPlus", "L"), ("XMinus", "R"), ("YPlus", "P"), ("YMinus", "A"),
                           ("ZPlus", "S"), ("ZMinus", "I")):
            getattr(cube, f"Set{face}FaceText")(text)
        cube.SetFaceTextScale(0.6)
        cube.GetCubeProperty().SetColor(0.25, 0.3, 0.4)
        cube.GetTextEdgesProperty().SetColor(0.8, 0.8, 0.8)
        cube.GetTextEdgesProperty().SetLineWidth(1.0)
        for prop in (cube.GetXPlusFaceProperty(), cube.GetXMinusFaceProperty()):
            prop.SetColor(0.93, 0.84, 0.27)
        for prop in (cube.GetYPlusFaceProperty(), cube.GetYMinusFaceProperty()):
            prop.SetColor(0.43, 0.69, 0.38)
        for prop in (cube.GetZPlusFaceProperty(), cube.GetZMinusFaceProperty()):
            prop.SetColor(0.95, 0.33, 0.31)
        self.orientation_cube = cube
        self.orientation_widget = vtkOrientationMarkerWidget()
        self.orientation_widget.SetOrientationMarker(cube)
        self.orientation_widget.SetInteractor(self.interactor)
        self.orientation_widget.SetViewport(0.0, 0.0, 0.16, 0.16)

        self.box_rep = vtkBoxRepresentation()
        self.box_rep.SetPlaceFactor(1.0)
        self.box_rep.GetOutlineProperty().SetColor(0.3, 0.8, 1.0)
        self.box_widget = vtkBoxWidget2()
        self.box_widget.SetInteractor(self.interactor)
        self.box_widget.SetRepresentation(self.box_rep)
        self.box_widget.RotationEnabledOff()
        self.box_widget.AddObserver("InteractionEvent", self._on_box_moved)
        self.box_widget.AddObserver("EndInteractionEvent", self._on_box_moved)

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(bar)
        lay.addWidget(self.vtk_widget, 1)

        self.preset_combo.currentTextChanged.connect(self._on_preset_chosen)
        self.low_slider.valueChanged.connect(self._on_slider_changed)
        self.high_slider.valueChanged.connect(self._on_slider_changed)
        self.clip_check.toggled.connect(self._on_clip_toggled)
        self.planes_check.toggled.connect(self._on_planes_toggled)
        self.reset_button.clicked.connect(self.reset_camera)
        self._set_controls_enabled(False)
        self.interactor.Initialize()
        self.orientation_widget.SetEnabled(1)
        self.orientation_widget.InteractiveOff()

    # ------------------------------------------------------------------------------ public API
    def set_volume(self, volume: Volume | None) -> None:
        """Show `volume` in 3-D (None clears) with the current preset; camera reset to the left view."""
        self.volume = volume
        if volume is None:
            self.pipeline.set_volume(None)
            self.box_widget.Off()
            self._set_controls_enabled(False)
            self.request_render()
            return
        self.pipeline.set_volume(volume, preset=self.preset_combo.currentText())
        self._range = (self.pipeline.percentile(0.0), self.pipeline.percentile(100.0))
        if self._range[1] <= self._range[0]:
            self._range = (self._range[0], self._range[0] + 1.0)
        self._set_controls_enabled(True)
        self._sync_sliders()
        if self.clip_check.isChecked():
            self._on_clip_toggled(True)
        if self.planes_check.isChecked():
            self._on_planes_toggled(True)
        self.request_render()

    def set_point(self, lps) -> None:
        """The cursor point (LPS mm) the slice planes pass through (shown when "Planes" is on)."""
        self._point = None if lps is None else tuple(float(v) for v in lps)
        if self.planes_check.isChecked():
            self.pipeline.set_planes(self._point if self._point is not None else self.pipeline.centre())
            self.request_render()

    def set_preset(self, name: str) -> None:
        self.preset_combo.setCurrentText(name)  # → _on_preset_chosen

    def set_window(self, lo: float, hi: float) -> None:
        self.pipeline.set_window(lo, hi)
        self._sync_sliders()
        self.window_changed.emit(*self.pipeline.window)
        self.request_render()

    def set_clip_box(self, bounds_lps) -> None:
        """Clip to (xmin, xmax, ymin, ymax, zmin, zmax) LPS mm, or None; ticks/unticks "Clip"."""
        if bounds_lps is None:
            self.clip_check.setChecked(False)
            return
        self.pipeline.set_clip_box(bounds_lps)
        self.pipeline.clip_outline_actor.SetVisibility(False)  # the box widget draws it
        self.box_rep.PlaceWidget(list(bounds_lps))
        with QtCore.QSignalBlocker(self.clip_check):
            self.clip_check.setChecked(True)
        self.box_widget.On()
        self.request_render()

    def reset_camera(self) -> None:
        self.pipeline.reset_camera("left")
        self.request_render()

    @property
    def lod_active(self) -> bool:
        return self.pipeline.interactive

    def grab_image(self) -> np.ndarray:
        """The rendered 3-D view as (rows, cols, 3) uint8, row 0 at the top (renders first)."""
        self.render_now()
        w = vtkWindowToImageFilter()
        w.SetInput(self.render_window)
        w.ReadFrontBufferOff()
        w.Update()
        im = w.GetOutput()
        nx, ny, _ = im.GetDimensions()
        return vtk_to_numpy(im.GetPointData().GetScalars()).reshape(ny, nx, -1)[::-1, :, :3].copy()

    def request_render(self) -> None:
        """Render once on the next event-loop turn (coalesces bursts of changes)."""
        if self._render_pending or self._closed:
            return
        self._render_pending = True
        QtCore.QTimer.singleShot(0, self.render_now)

    def render_now(self) -> None:
        self._render_pending = False
        if not self._closed:
            self.render_window.Render()

    def shutdown(self) -> None:
        """Release the GL context (call before the widget is destroyed; closeEvent does)."""
        if self._closed:
            return
        self._closed = True
        self.box_widget.Off()
        self.orientation_widget.SetEnabled(0)
        self.pipeline.close()
        self.vtk_widget.Finalize()

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(ev)

    # ------------------------------------------------------------------------------ handlers
    def _on_interaction_started(self, *_):
        if not self.pipeline.interactive:
            self.pipeline.set_interactive(True)
            self.lod_changed.emit(True)

    def _on_interaction_finished(self, *_):
        if self.pipeline.interactive:
            self.pipeline.set_interactive(False)
            self.lod_changed.emit(False)
            self.request_render()

    def _on_preset_chosen(self, name: str) -> None:
        if name not in PRESETS:
            return
        if self.volume is not None:
            self.pipeline.set_preset(name)
            self._sync_sliders()
            self.request_render()
        else:
            self.pipeline.preset = PRESETS[name]
        self.preset_changed.emit(name)

    def _value(self, pos: int) -> float:
        lo, hi = self._range
        return lo + (hi - lo) * pos / SLIDER_STEPS

    def _pos(self, value: float) -> int:
        lo, hi = self._range
        return int(round(np.clip((value - lo) / (hi - lo), 0.0, 1.0) * SLIDER_STEPS))

    def _sync_sliders(self) -> None:
        lo, hi = self.pipeline.window
        with QtCore.QSignalBlocker(self.low_slider), QtCore.QSignalBlocker(self.high_slider):
            self.low_slider.setValue(self._pos(lo))
            self.high_slider.setValue(self._pos(hi))
        self.window_label.setText(f"{lo:.0f}–{hi:.0f}")

    def _on_slider_changed(self, _=None) -> None:
        if self.volume is None:
            return
        a, b = self.low_slider.value(), self.high_slider.value()
        if b <= a:  # keep low < high: push the other slider
            if self.sender() is self.low_slider:
                b = min(SLIDER_STEPS, a + 1)
                a = b - 1
            else:
                a = max(0, b - 1)
                b = a + 1
            with QtCore.QSignalBlocker(self.low_slider), QtCore.QSignalBlocker(self.high_slider):
                self.low_slider.setValue(a)
                self.high_slider.setValue(b)
        self.pipeline.set_window(self._value(a), self._value(b))
        lo, hi = self.pipeline.window
        self.window_label.setText(f"{lo:.0f}–{hi:.0f}")
        self.window_changed.emit(lo, hi)
        self.request_render()

    def _default_clip_box(self) -> tuple[float, ...]:
        b = self.pipeline.bounds()
        third = (b[1] - b[0]) / 3.0
        return (b[0] + third, b[1] - third, b[2], b[3], b[4], b[5])

    def _on_clip_toggled(self, on: bool) -> None:
        if self.volume is None:
            return
        if on:
            box = self.pipeline.clip_box or self._default_clip_box()
            self.set_clip_box(box)
        else:
            self.box_widget.Off()
            self.pipeline.set_clip_box(None)
            self.request_render()

    def _on_box_moved(self, *_):
        b = self.box_rep.GetBounds()
        if all(b[2 * i] < b[2 * i + 1] for i in range(3)):
            self.pipeline.set_clip_box(b)
            self.pipeline.clip_outline_actor.SetVisibility(False)

    def _on_planes_toggled(self, on: bool) -> None:
        if self.volume is None:
            return
        self.pipeline.set_planes((self._point if self._point is not None else self.pipeline.centre()) if on else None)
        self.request_render()

    def _set_controls_enabled(self, on: bool) -> None:
        for w in (self.low_slider, self.high_slider, self.clip_check, self.planes_check, self.reset_button):
            w.setEnabled(on)


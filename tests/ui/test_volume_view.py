"""VolumeView under Xvfb: open a volume, presets, sliders, clip/planes toggles, a mouse-drag rotation
with the level of detail switched on during the drag and off after it."""
from __future__ import annotations

import numpy as np
import pytest

from discviewer.render.volume_pipeline import PRESETS


@pytest.fixture(scope="module")
def gre_visit():
    from discviewer.phantom import generate_study

    return generate_study(size="small").patients[0].visits[1]


@pytest.fixture
def view(qtbot):
    from discviewer.ui.volume_view import VolumeView

    v = VolumeView()
    qtbot.addWidget(v)
    v.resize(520, 480)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.shutdown()


def send_mouse(widget, kind, pos, button, buttons):
    from PySide6 import QtCore, QtGui, QtWidgets

    types = {"press": QtCore.QEvent.Type.MouseButtonPress, "move": QtCore.QEvent.Type.MouseMove,
             "release": QtCore.QEvent.Type.MouseButtonRelease}
    local = QtCore.QPointF(pos)
    ev = QtGui.QMouseEvent(types[kind], local, QtCore.QPointF(widget.mapToGlobal(local.toPoint())), button, buttons,
                           QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(widget, ev)


def drag(widget, start, end, button, steps=6, on_move=None):
    from PySide6 import QtCore

    Qt = QtCore.Qt
    start, end = QtCore.QPointF(*start), QtCore.QPointF(*end)
    send_mouse(widget, "press", start, button, button)
    for i in range(1, steps + 1):
        send_mouse(widget, "move", start + (end - start) * (i / steps), Qt.MouseButton.NoButton, button)
        if on_move is not None:
            on_move()
    send_mouse(widget, "release", end, button, Qt.MouseButton.NoButton)


def test_open_volume_and_switch_presets(view, qtbot, gre_visit):
    vol = gre_visit.series[2].volume(4)
    assert not view.low_slider.isEnabled()
    view.set_volume(vol)
    assert view.low_slider.isEnabled()
    assert view.pipeline.mapper_kind in ("cpu", "gpu")
    images = {}
    for name in reversed(list(PRESETS)):  # the default preset last, so every choice is a change
        with qtbot.waitSignal(view.preset_changed):
            view.preset_combo.setCurrentText(name)
        assert view.pipeline.preset.name == name
        img = view.grab_image()
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert (img.mean(axis=2) > 20).mean() > 0.05, name
        images[name] = img
    names = list(images)
    assert np.abs(images[names[0]].astype(int) - images[names[1]]).mean() > 1
    # sliders follow the preset's window
    lo, hi = view.pipeline.window
    assert view.low_slider.value() < view.high_slider.value()
    assert view._value(view.low_slider.value()) == pytest.approx(lo, abs=(hi - lo) * 0.01 + 1)


def test_sliders_set_the_window(view, gre_visit):
    view.set_volume(gre_visit.series[0].volume(0))
    before = view.grab_image()
    seen = []
    view.window_changed.connect(lambda lo, hi: seen.append((lo, hi)))
    view.high_slider.setValue(view.high_slider.value() // 2)
    assert seen and seen[-1] == pytest.approx(view.pipeline.window)
    view.low_slider.setValue(view.high_slider.value() + 10)  # pushes the high slider up, never crosses
    assert view.low_slider.value() < view.high_slider.value()
    assert np.abs(view.grab_image().astype(int) - before).mean() > 0.5


def test_drag_rotates_with_lod_during_the_drag(view, qtbot, gre_visit):
    from PySide6 import QtCore

    view.set_volume(gre_visit.series[2].volume(4))
    view.grab_image()
    cam = view.renderer.GetActiveCamera()
    pos0 = np.array(cam.GetPosition())
    lod_events = []
    view.lod_changed.connect(lod_events.append)
    during = []
    # what the renders during the drag really used: flag and input of the active mapper
    obs = view.render_window.AddObserver(
        "StartEvent", lambda *_: during.append((view.lod_active, view.pipeline.active_input.GetDimensions())))
    w = view.vtk_widget
    cx, cy = w.width() / 2, w.height() / 2
    drag(w, (cx, cy), (cx + 120, cy + 30), QtCore.Qt.MouseButton.LeftButton)
    view.render_window.RemoveObserver(obs)
    assert np.linalg.norm(np.array(cam.GetPosition()) - pos0) > 1.0  # the camera rotated
    assert lod_events[:2] == [True, False]
    assert not view.lod_active
    coarse_dims = view.pipeline.coarse_mapper.GetInput().GetDimensions()
    assert any(flag and dims == coarse_dims for flag, dims in during), during
    qtbot.waitUntil(lambda: not view._render_pending, timeout=2000)
    assert view.pipeline.active_input.GetDimensions() == view.pipeline.full_mapper.GetInput().GetDimensions()


def test_middle_pan_and_right_zoom_change_the_camera(view, gre_visit):
    from PySide6 import QtCore

    view.set_volume(gre_visit.series[0].volume(0))
    view.grab_image()
    cam = view.renderer.GetActiveCamera()
    w = view.vtk_widget
    cx, cy = w.width() / 2, w.height() / 2
    focal0 = np.array(cam.GetFocalPoint())
    drag(w, (cx, cy), (cx + 60, cy), QtCore.Qt.MouseButton.MiddleButton)
    assert np.linalg.norm(np.array(cam.GetFocalPoint()) - focal0) > 1.0
    dist0 = cam.GetDistance()
    drag(w, (cx, cy), (cx, cy - 80), QtCore.Qt.MouseButton.RightButton)
    assert cam.GetDistance() != pytest.approx(dist0)


def test_clip_and_planes_toggles(view, gre_visit):
    visit = gre_visit
    view.set_volume(visit.series[2].volume(4))
    plain = view.grab_image()
    view.clip_check.setChecked(True)
    assert view.pipeline.clip_box is not None
    assert view.box_widget.GetEnabled()
    clipped = view.grab_image()
    assert np.abs(clipped.astype(int) - plain).mean() > 1
    view.clip_check.setChecked(False)
    assert view.pipeline.clip_box is None
    assert not view.box_widget.GetEnabled()

    view.set_point(visit.truth["discs"]["L4/L5"]["iron"]["centre"])
    assert not any(a.GetVisibility() for a in view.pipeline.plane_actors)
    view.planes_check.setChecked(True)
    assert all(a.GetVisibility() for a in view.pipeline.plane_actors)
    assert view.pipeline.plane_point == pytest.approx(tuple(visit.truth["discs"]["L4/L5"]["iron"]["centre"]))
    view.planes_check.setChecked(False)
    assert not any(a.GetVisibility() for a in view.pipeline.plane_actors)


def test_overlays_present(view, gre_visit):
    from discviewer import RESEARCH_USE_NOTICE

    view.set_volume(gre_visit.series[0].volume(0))
    assert view.notice.GetInput() == RESEARCH_USE_NOTICE
    assert view.renderer.HasViewProp(view.notice)
    assert view.orientation_widget.GetEnabled()
    faces = {view.orientation_cube.GetXPlusFaceText(), view.orientation_cube.GetXMinusFaceText(),
             view.orientation_cube.GetYPlusFaceText(), view.orientation_cube.GetYMinusFaceText(),
             view.orientation_cube.GetZPlusFaceText(), view.orientation_cube.GetZMinusFaceText()}
    assert faces == set("LRAPSI")
    assert view.orientation_cube.GetXPlusFaceText() == "L"  # LPS: +x is the patient's left
    view.set_volume(None)
    assert not view.low_slider.isEnabled()
    assert view.renderer.GetVolumes().GetNumberOfItems() == 0

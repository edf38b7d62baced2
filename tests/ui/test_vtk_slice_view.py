"""VtkSliceView under Xvfb: PACS mouse/keys, cursor, signals, coalesced rendering, pixel capture."""
import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from discviewer import RESEARCH_USE_NOTICE
from discviewer.display import auto_window
from discviewer.ui.vtk_slice_view import VtkSliceView

Qt = QtCore.Qt


@pytest.fixture
def view(qtbot, volume_factory):
    v = VtkSliceView(plane="sag")
    qtbot.addWidget(v)
    v.resize(640, 520)
    v.show()
    qtbot.waitExposed(v)
    v.set_volume(volume_factory(), label="T2 sag test")
    QtWidgets.QApplication.processEvents()
    yield v
    v.shutdown()


def test_shows_middle_slice_with_overlays(view):
    assert view.slice_index == 2 and view.slice_count == 5
    assert view.overlay_text("slice") == "Sagittal 3/5"
    assert view.overlay_text("series") == "T2 sag test"
    assert view.overlay_text("notice") == RESEARCH_USE_NOTICE
    assert view.orientation_labels() == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert view.window() == pytest.approx(auto_window(view.volume.array))
    rgb = view.capture()
    assert rgb.shape == (520, 640, 3) and rgb.std() > 10


def test_wheel_changes_slice_and_clamps(view, events):
    seen = []
    view.slice_changed.connect(seen.append)
    events.wheel(view, -1)  # wheel down = next
    assert view.slice_index == 3
    events.wheel(view, +1)
    assert view.slice_index == 2
    for _ in range(5):
        events.wheel(view, -1)
    assert view.slice_index == 4
    assert seen == [3, 2, 3, 4]
    assert view.overlay_text("slice") == "Sagittal 5/5"


def test_keys_change_slice_reset_invert(view, qtbot):
    w = view.vtk_widget
    w.setFocus()
    qtbot.keyClick(w, Qt.Key.Key_Down)
    assert view.slice_index == 3
    qtbot.keyClick(w, Qt.Key.Key_Home)
    assert view.slice_index == 0
    qtbot.keyClick(w, Qt.Key.Key_End)
    assert view.slice_index == 4
    qtbot.keyClick(w, Qt.Key.Key_PageUp)
    assert view.slice_index == 3
    before = view.capture()
    qtbot.keyClick(w, Qt.Key.Key_I)
    assert view.inverted
    after = view.capture()
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 30


def test_left_drag_window_level_and_r_resets(view, qtbot, events):
    c0, w0 = view.window()
    s = view.wl_sensitivity()
    seen = []
    view.window_changed.connect(lambda c, w: seen.append((c, w)))
    img0 = view.capture()
    s0 = view.pipeline.mm_per_pixel()
    events.drag(view, QtCore.QPointF(300, 250), QtCore.QPointF(340, 270), Qt.MouseButton.LeftButton)
    c1, w1 = view.window()
    assert c1 == pytest.approx(c0 + 20 * s) and w1 == pytest.approx(w0 + 40 * s)
    assert seen and seen[-1] == pytest.approx((c1, w1))
    assert view.slice_index == 2  # VTK did not get the drag (no camera spin, no slice change)
    assert np.abs(view.capture().astype(int) - img0.astype(int)).mean() > 1
    events.drag(view, QtCore.QPointF(300, 250), QtCore.QPointF(300, 200), Qt.MouseButton.RightButton)
    zoomed = view.pipeline.mm_per_pixel()
    assert zoomed == pytest.approx(s0 * np.exp(-50 * VtkSliceView.ZOOM_PER_PIXEL))  # drag up = zoom in
    view.vtk_widget.setFocus()
    qtbot.keyClick(view.vtk_widget, Qt.Key.Key_R)
    assert view.window() == pytest.approx(view.auto_window_values())
    assert view.pipeline.mm_per_pixel() == pytest.approx(s0)
    qtbot.waitUntil(lambda: not view.interactive, timeout=2000)  # back to full quality
    assert np.array_equal(view.capture(), img0)


def test_middle_drag_pans_and_ctrl_wheel_zooms(view, events):
    views = []
    view.view_changed.connect(lambda: views.append(view.view_state()))
    p = view.patient_at(QtCore.QPointF(320, 260))
    events.drag(view, QtCore.QPointF(320, 260), QtCore.QPointF(360, 240), Qt.MouseButton.MiddleButton)
    q = view.widget_point_for_patient(p)
    assert (q.x(), q.y()) == pytest.approx((360, 240), abs=1e-6)
    s0 = view.pipeline.mm_per_pixel()
    events.wheel(view, 1, pos=QtCore.QPointF(200, 200), modifiers=Qt.KeyboardModifier.ControlModifier)
    assert view.pipeline.mm_per_pixel() == pytest.approx(s0 * VtkSliceView.WHEEL_ZOOM)
    assert view.slice_index == 2 and len(views) >= 2


def test_cursor_reports_lps_and_value(view, events):
    got = []
    view.cursor_moved.connect(lambda lps, value: got.append((lps, value)))
    vol = view.volume
    c, r, k = 17, 9, view.slice_index
    lps = vol.index_to_patient(np.array([c, r, k], float))
    pos = view.widget_point_for_patient(lps)
    events.mouse(view, "move", pos)
    assert got, "no cursor_moved"
    p, value = got[-1]
    assert np.allclose(p, lps, atol=0.3)
    assert value == float(vol.array[k, r, c])
    events.mouse(view, "move", QtCore.QPointF(2, 2))  # outside the image (margin)
    assert got[-1] == (None, None)


def test_double_click_requests_maximize(view, qtbot):
    w = view.vtk_widget
    with qtbot.waitSignal(view.maximize_requested, timeout=1000):
        qtbot.mouseDClick(w, Qt.MouseButton.LeftButton, pos=QtCore.QPoint(300, 250))


def test_crosshair_scheme_picks_points(view, events):
    c0 = view.window()
    picked = []
    view.point_picked.connect(picked.append)
    with pytest.raises(ValueError):
        view.set_mouse_scheme("rotate")
    view.set_mouse_scheme("crosshair")
    lps = view.volume.index_to_patient(np.array([30, 20, 2], float))
    pos = view.widget_point_for_patient(lps)
    events.drag(view, pos, pos + QtCore.QPointF(10, 0), Qt.MouseButton.LeftButton, steps=2)
    assert view.window() == c0  # no W/L in this scheme
    assert np.allclose(picked[0], lps, atol=1e-6)
    assert np.allclose(view.pipeline.crosshair(), picked[-1])
    view.set_mouse_scheme("pacs")
    n = len(picked)
    events.drag(view, pos, pos + QtCore.QPointF(10, 0), Qt.MouseButton.LeftButton, steps=2)
    assert len(picked) == n and view.window() != c0


def test_renders_are_coalesced(view, qtbot):
    QtWidgets.QApplication.processEvents()
    n0 = view.render_count
    for k in (0, 1, 2, 3, 4, 3):
        view.set_slice(k)
    view.set_window(100.0, 50.0)
    assert view.render_count == n0  # nothing rendered synchronously
    qtbot.waitUntil(lambda: view.render_count > n0, timeout=1000)
    QtWidgets.QApplication.processEvents()
    assert view.render_count == n0 + 1


def test_interactive_lod_refines(view, qtbot, events):
    assert view.pipeline.interpolation == "linear"
    events.wheel(view, -1)
    assert view.interactive
    assert view.pipeline.image_property.GetInterpolationType() == 0  # nearest while scrolling
    qtbot.waitUntil(lambda: not view.interactive, timeout=2000)
    assert view.pipeline.image_property.GetInterpolationType() == 1


def test_planes_reformat(view):
    view.set_plane("ax")
    assert view.orientation_labels() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert view.slice_count == 40  # rows of the sagittal volume
    view.set_plane("cor")
    assert view.slice_count == 60
    assert view.capture().std() > 5


def test_overlay_blend_and_coalesced_opacity(view, qtbot):
    vol = view.volume
    base_rgb = view.capture()
    arr = np.zeros(vol.array.shape, np.float32)
    arr[view.slice_index, 10:30, 20:40] = 1000.0
    from discviewer.volume import Volume

    over = Volume(arr, vol.affine)
    view.set_overlay(over, opacity=1.0, colormap="green", window=(500.0, 1000.0))
    assert view.overlay() is over and view.overlay_opacity() == 1.0
    centre = vol.index_to_patient(np.array([29.5, 19.5, view.slice_index]))
    pt = view.widget_point_for_patient(centre)
    x, y = int(pt.x() * view._dpr()), int(pt.y() * view._dpr())
    rgb = view.capture()
    assert tuple(rgb[y, x]) == (0, 255, 0)
    # opacity changes render coalesced: many slider moves, one render
    QtWidgets.QApplication.processEvents()
    n0 = view.render_count
    for a in (0.9, 0.7, 0.5):
        view.set_overlay_opacity(a)
    assert view.render_count == n0
    qtbot.waitUntil(lambda: view.render_count > n0, timeout=1000)
    QtWidgets.QApplication.processEvents()
    assert view.render_count == n0 + 1
    half = view.capture()[y, x].astype(int)
    assert half[1] > half[0] + 60 and half[1] > half[2] + 60  # green-tinted blend
    # scrolling moves the overlay with the base: the next slice has no square
    view.step_slice(1)
    assert not (view.capture()[y, x].astype(int)[1] > 200)
    view.step_slice(-1)
    view.set_overlay(None)
    assert view.overlay() is None
    assert np.array_equal(view.capture(), base_rgb)

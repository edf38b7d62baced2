"""SliceView behaviour with a synthetic 5×40×60 volume (0.5 mm columns, 1.0 mm rows, 3 mm slices)."""
import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

import discviewer
from discviewer.ui.slice_view import SliceView
from discviewer.display import auto_window

Qt = QtCore.Qt


@pytest.fixture
def view(qtbot, volume_factory):
    v = SliceView()
    qtbot.addWidget(v)
    v.resize(640, 520)
    v.show()
    qtbot.waitExposed(v)
    v.set_volume(volume_factory(), label="T2 sag test")
    QtWidgets.QApplication.processEvents()
    return v


def test_shows_middle_slice_with_overlays(view):
    vol = view.volume
    assert view.slice_index == 2
    np.testing.assert_array_equal(view.image_item.image, vol.array[2])
    assert view.overlay_text("slice") == "Slice 3/5"
    assert view.overlay_text("series") == "T2 sag test"
    c, w = view.window()
    assert view.overlay_text("window").startswith("W ") and " L " in view.overlay_text("window")
    assert (c, w) == pytest.approx(auto_window(vol.array))


def test_wheel_changes_slice_and_clamps(view, qtbot, events):
    seen = []
    view.slice_changed.connect(seen.append)
    events.wheel(view, -1)  # wheel down = next
    assert view.slice_index == 3
    events.wheel(view, +1)
    assert view.slice_index == 2
    for _ in range(10):
        events.wheel(view, -1)
    assert view.slice_index == 4
    for _ in range(10):
        events.wheel(view, +1)
    assert view.slice_index == 0
    assert seen == [3, 2, 3, 4, 3, 2, 1, 0]  # emitted only on real changes (none while clamped)
    np.testing.assert_array_equal(view.image_item.image, view.volume.array[0])
    assert view.overlay_text("slice") == "Slice 1/5"


def test_keys_change_slice_and_clamp(view, qtbot):
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.slice_index == 3
    qtbot.keyClick(view, Qt.Key.Key_Up)
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.slice_index == 1
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert view.slice_index == 4
    qtbot.keyClick(view, Qt.Key.Key_Down)
    qtbot.keyClick(view, Qt.Key.Key_PageDown)
    assert view.slice_index == 4
    qtbot.keyClick(view, Qt.Key.Key_PageUp)
    assert view.slice_index == 3
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert view.slice_index == 0
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.slice_index == 0


def test_left_drag_window_level_direction_and_reset(view, qtbot, events):
    c0, w0 = view.window()
    s = view.wl_sensitivity()
    lo, hi = float(view.volume.array.min()), float(view.volume.array.max())
    assert s == pytest.approx((hi - lo) / SliceView.WL_PIXELS_PER_RANGE)
    seen = []
    view.window_changed.connect(lambda c, w: seen.append((c, w)))
    mid = QtCore.QPointF(320, 260)
    events.drag(view, mid, mid + QtCore.QPointF(100, 0), Qt.MouseButton.LeftButton)  # right: wider
    c1, w1 = view.window()
    assert w1 == pytest.approx(w0 + 100 * s)
    assert c1 == pytest.approx(c0)
    events.drag(view, mid, mid + QtCore.QPointF(0, 40), Qt.MouseButton.LeftButton)  # down: higher level
    c2, w2 = view.window()
    assert c2 == pytest.approx(c0 + 40 * s)
    assert w2 == pytest.approx(w1)
    assert seen and seen[-1] == pytest.approx((c2, w2))
    lo_l, hi_l = view.image_item.levels
    assert (lo_l, hi_l) == pytest.approx((c2 - w2 / 2, c2 + w2 / 2))
    events.drag(view, mid, mid + QtCore.QPointF(-5000, 0), Qt.MouseButton.LeftButton)  # width stays > 0
    assert view.window()[1] > 0
    # zoom in, then R resets both the window and the view
    events.drag(view, mid, mid + QtCore.QPointF(0, -100), Qt.MouseButton.RightButton)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert view.window() == pytest.approx(auto_window(view.volume.array))
    assert view.window() == pytest.approx((c0, w0))
    rect = view.image_rect_mm()
    (x0, x1), (y0, y1) = view.vb.viewRange()
    assert x0 <= rect.left() and x1 >= rect.right() and y0 <= rect.top() and y1 >= rect.bottom()


def test_pan_and_zoom(view, events):
    mid = QtCore.QPointF(320, 260)
    (x0, x1), (y0, y1) = view.vb.viewRange()
    events.drag(view, mid, mid + QtCore.QPointF(0, -80), Qt.MouseButton.RightButton)  # up = zoom in
    (a0, a1), (b0, b1) = view.vb.viewRange()
    assert (a1 - a0) < 0.8 * (x1 - x0)
    events.drag(view, mid, mid + QtCore.QPointF(50, 0), Qt.MouseButton.MiddleButton)  # image follows mouse
    (p0, p1), _ = view.vb.viewRange()
    assert p0 < a0 and p1 - p0 == pytest.approx(a1 - a0)
    events.wheel(view, +2, pos=mid, modifiers=Qt.KeyboardModifier.ControlModifier)  # ctrl+wheel zooms, not slices
    (q0, q1), _ = view.vb.viewRange()
    assert (q1 - q0) < (p1 - p0)
    assert view.slice_index == 2


def test_invert_toggles(view, qtbot):
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_I)
    assert view.inverted and "INV" in view.overlay_text("window")
    qtbot.keyClick(view, Qt.Key.Key_I)
    assert not view.inverted


def test_physical_aspect(view):
    rect = view.image_rect_mm()
    assert rect.width() == pytest.approx(60 * 0.5)
    assert rect.height() == pytest.approx(40 * 1.0)
    dev = view.vb.mapViewToDevice(rect).boundingRect()  # on-screen pixels
    assert dev.width() / dev.height() == pytest.approx(30.0 / 40.0, rel=0.02)
    assert view.vb.state["aspectLocked"] == 1


def test_row_zero_is_at_the_top(view):
    top = view.view_point_for_voxel(0, 0)
    bottom = view.view_point_for_voxel(0, 39)
    right = view.view_point_for_voxel(59, 0)
    assert top.y() < bottom.y() and top.x() < right.x()


@pytest.mark.parametrize("orientation, expected", [
    ("sagittal", ("A", "P", "S", "I")), ("axial", ("R", "L", "A", "P")), ("coronal", ("R", "L", "S", "I"))])
def test_orientation_letters_on_edges(view, volume_factory, orientation, expected):
    view.set_volume(volume_factory(orientation=orientation))
    got = tuple(view.overlay_text(e) for e in ("left", "right", "top", "bottom"))
    assert got == expected
    # the letters sit on their edges
    vr = view.vb.rect()
    left, right = view.overlays["left"].pos(), view.overlays["right"].pos()
    top, bottom = view.overlays["top"].pos(), view.overlays["bottom"].pos()
    assert left.x() < vr.width() * 0.1 and right.x() > vr.width() * 0.8
    assert top.y() < vr.height() * 0.1 and bottom.y() > vr.height() * 0.8


def test_cursor_reports_voxel_and_patient_position(view, qtbot, events):
    vol = view.volume
    got = []
    view.cursor_moved.connect(got.append)
    pos = view.view_point_for_voxel(10, 20)
    events.mouse(view, "move", pos)
    sample = got[-1]
    assert (sample.column, sample.row, sample.slice) == (10, 20, 2)
    assert sample.value == vol.array[2, 20, 10]
    np.testing.assert_allclose(sample.patient, vol.index_to_patient([10, 20, 2]))
    events.wheel(view, -1, pos=pos)  # same place, next slice: the sample follows
    assert got[-1].slice == 3 and got[-1].value == vol.array[3, 20, 10]
    events.mouse(view, "move", QtCore.QPointF(2, 2))  # off the image
    assert got[-1] is None


def test_research_notice_and_scale_bar_visible(view):
    notice = view.overlays["notice"]
    assert notice.text() == discviewer.RESEARCH_USE_NOTICE
    assert notice.isVisible()
    visible = QtCore.QRectF(view.viewport().rect())
    assert visible.contains(view.mapFromScene(notice.sceneBoundingRect()).boundingRect().toRectF())
    assert view.overlay_text("scale").endswith(" mm")
    mm = float(view.overlay_text("scale").split()[0])
    assert mm == pytest.approx(view.scale_bar_mm)
    assert view.scale_bar_px * view.vb.viewPixelSize()[0] == pytest.approx(mm)
    view.clear()
    assert notice.isVisible() and view.overlays["hint"].isVisible()


def test_renders_pixels_and_no_context_menu(view, qtbot, events):
    img = view.grab().toImage()
    c = view.view_point_for_voxel(30, 20).toPoint()
    assert QtGui.QColor(img.pixel(c)).value() > 0  # image drawn, not blank
    events.drag(view, QtCore.QPointF(300, 250), QtCore.QPointF(300, 250), Qt.MouseButton.RightButton, steps=1)
    QtWidgets.QApplication.processEvents()
    assert not [w for w in QtWidgets.QApplication.topLevelWidgets() if isinstance(w, QtWidgets.QMenu) and w.isVisible()]

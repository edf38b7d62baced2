"""The review workstation end to end on the phantom demo study, through the real widgets:
open, hang all visits, wheel/drag with linked views, flicker/difference, 3-D view, orientation."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6 import QtCore

from discviewer.ui.main_window import MainWindow

Qt = QtCore.Qt


@pytest.fixture
def window(demo_window):
    return demo_window


def truth(demo):
    return json.loads((demo / "truth.json").read_text())["patients"][0]


def hang(window, qtbot):
    with qtbot.waitSignal(window.controller.all_loaded, timeout=30000):
        window.actions_by_name["hang"].trigger()
    frames = window.review.view_frames()
    for f in frames:
        f.view.render_now()
    return frames


def off_plane_distance(view, point):
    """Distance (mm) of `point` from the plane the view shows, along the plane normal."""
    pipe = view.pipeline
    normal = pipe.frame()[2]
    return abs(float(np.dot(np.asarray(point) - pipe.point(), normal)))


def test_hang_all_visits_in_date_order(window, qtbot, demo):
    frames = hang(window, qtbot)
    assert window.review.mode == "hanging" and window.review.shape == (2, 3)
    labels = [f.title.split(" · ")[0] for f in frames]
    assert labels == ["baseline", "3 m (day 96)", "6 m (day 193)", "12 m (day 363)", "24 m (day 719)"]
    assert all("T2 TSE SAG" in f.title for f in frames)
    assert all(f.view.volume is not None and f.view.volume.shape[0] == 9 for f in frames)
    assert all(f.view.capture().std() > 5 for f in frames)  # every viewport really shows an image


def test_wheel_moves_every_linked_view_to_the_same_anatomy(window, qtbot, demo, events):
    frames = hang(window, qtbot)
    # give the link the phantom's true visit → baseline transforms (what registration will provide)
    t = truth(demo)
    ctrl = window.controller
    for f, tv in zip(frames, t["visits"]):
        if f is not frames[0]:
            ctrl.transforms.set(f.visit_id, np.array(tv["visit_to_baseline"]), "phantom truth")
    src = frames[0].view
    window.review.set_active(frames[0])
    before = src.slice_index
    events.wheel(src, -2)
    qtbot.wait(50)
    assert src.slice_index != before
    p_base = src.pipeline.point()
    for f in frames[1:]:
        target = ctrl.transforms.to_visit(p_base, f.visit_id)
        spacing = f.view.pipeline.slice_spacing()
        assert off_plane_distance(f.view, target) <= spacing / 2 + 1e-6, f.title
    # with identity transforms the same patient position is reached instead
    for f in frames[1:]:
        ctrl.transforms.reset(f.visit_id)
    events.wheel(src, 1)
    qtbot.wait(50)
    p = src.pipeline.point()
    for f in frames[1:]:
        assert off_plane_distance(f.view, p) <= f.view.pipeline.slice_spacing() / 2 + 1e-6


def test_drag_window_level_changes_values_and_follows_in_relative_units(window, qtbot, events):
    frames = hang(window, qtbot)
    src, other = frames[0].view, frames[3].view
    w0_src, w0_other = src.window(), other.window()
    vp = src.viewport()
    start = QtCore.QPointF(vp.width() / 2, vp.height() / 2)
    events.drag(src, start, start + QtCore.QPointF(80, 40), Qt.MouseButton.LeftButton)
    qtbot.wait(50)
    assert src.window() != w0_src
    assert other.window() != w0_other
    n_src = window.review.links._member(src).normalizer
    n_other = window.review.links._member(other).normalizer
    np.testing.assert_allclose(n_src.to_relative(*src.window()), n_other.to_relative(*other.window()), rtol=1e-6)
    # unlink: the other view stays put
    window.actions_by_name["link_all"].trigger()
    assert not window.review.links.all_enabled()
    w_other = other.window()
    events.drag(src, start, start + QtCore.QPointF(-60, 0), Qt.MouseButton.LeftButton)
    qtbot.wait(50)
    assert other.window() == w_other


def test_flicker_and_difference_against_baseline(window, qtbot):
    frames = hang(window, qtbot)
    follow = frames[1]
    own = follow.view.volume
    window.actions_by_name["flicker"].trigger()
    assert window.controller.mode == "flicker" and window.mode_label.text() == "FLICKER"
    assert follow.view.volume is not own and follow.view.volume.shape == own.shape
    assert follow.view.overlay_text("series").startswith("BASELINE on 3 m")
    assert frames[0].view.overlay_text("series").startswith("baseline")  # baseline itself unchanged
    window.actions_by_name["flicker"].trigger()
    assert follow.view.volume is own
    window.actions_by_name["difference"].trigger()
    diff = follow.view.volume
    assert window.controller.mode == "difference" and diff is not own
    assert follow.view.window() == pytest.approx((0.0, 1.0))
    assert abs(float(np.median(diff.array))) < 0.1  # mostly unchanged tissue → near zero
    window.actions_by_name["difference"].trigger()
    assert window.controller.mode == "normal" and follow.view.volume is own


def test_plane_switch_mpr_and_echo(window, qtbot):
    view = window.slice_view
    window.actions_by_name["plane_ax"].trigger()
    assert view.plane == "ax" and view.orientation_labels()["left"] == "R"
    assert "ax reformat" in view.overlay_text("series")
    with qtbot.waitSignal(window.controller.all_loaded, timeout=20000):
        window.actions_by_name["mpr"].trigger()
    planes = [f.view.plane for f in window.review.view_frames()]
    assert planes == ["sag", "cor", "ax"]
    # pick the GRE and step through echoes
    gre = next(c for c in window.browser.candidates() if "GRE" in c.label and c.echo_time == 4.0)
    with qtbot.waitSignal(window.controller.all_loaded, timeout=20000):
        window.show_candidate(gre)
    assert window.echo_combo.isEnabled() and window.echo_combo.count() == 5
    with qtbot.waitSignal(window.controller.all_loaded, timeout=20000):
        window.controller.set_echo(4)
    assert window.slice_view.volume is not None
    assert window.review.active.candidate.echo_time == 24.0
    assert "TE 24 ms" in window.slice_view.overlay_text("series")


def test_next_visit_keeps_the_anatomy(window, qtbot):
    first = window.current_candidate
    with qtbot.waitSignal(window.controller.all_loaded, timeout=20000):
        window.actions_by_name["next_visit"].trigger()
    cand = window.review.active.candidate
    assert cand is not first and cand.info.study_uid != first.info.study_uid
    assert window.slice_view.overlay_text("series").startswith("3 m")


def test_open_3d_view(window, qtbot):
    window.actions_by_name["volume3d"].trigger()
    assert window.volume_dock is not None and window.volume_dock.isVisible()
    qtbot.wait(200)
    img = window.volume_view.grab_image()
    assert img.std() > 3


def test_screenshot_orientation_anterior_is_where_a_says(window, qtbot, demo, tmp_path):
    view = window.slice_view
    view.render_now()
    assert view.orientation_labels()["left"] == "A" and view.orientation_labels()["top"] == "S"
    discs = truth(demo)["visits"][0]["discs"]
    healthy = next(d for d in discs.values() if not d["degenerated"] and not d["injected"])
    lm = healthy["landmarks"]
    # the disc's anterior landmarks are drawn left of its posterior ones, superior above inferior
    ant = view.widget_point_for_patient(lm["upper_anterior"])
    post = view.widget_point_for_patient(lm["upper_posterior"])
    low = view.widget_point_for_patient(lm["lower_middle"])
    up = view.widget_point_for_patient(lm["upper_middle"])
    assert ant.x() < post.x() and up.y() < low.y()
    # and the pixels agree: the bright nucleus is where the truth says, the mirrored spot is not
    view.set_point(healthy["centre"])
    view.render_now()
    rgb = view.capture().astype(float).mean(axis=2)
    h, w = rgb.shape
    scale = h / view.vtk_widget.height()
    c = view.widget_point_for_patient(healthy["centre"])
    x, y = int(c.x() * scale), int(c.y() * scale)
    nucleus = rgb[y - 1:y + 2, x - 1:x + 2].mean()
    mirrored = rgb[y - 1:y + 2, w - x - 2:w - x + 1].mean()
    assert nucleus > 120 and nucleus > mirrored + 40
    # the composed window screenshot is not blank where the view is
    img = window.grab_with_views()
    path = tmp_path / "window.png"
    assert img.save(str(path))
    assert path.stat().st_size > 20000


def test_keyboard_shortcuts_work_while_a_view_has_focus(window, qtbot):
    frames = hang(window, qtbot)
    view = frames[0].view
    window.activateWindow()
    qtbot.waitActive(window, timeout=3000)
    view.vtk_widget.setFocus()
    qtbot.waitUntil(lambda: view.vtk_widget.hasFocus(), timeout=2000)
    qtbot.keyClick(view.vtk_widget, Qt.Key.Key_F)
    assert window.controller.mode == "flicker"
    qtbot.keyClick(view.vtk_widget, Qt.Key.Key_L)
    assert not window.review.links.all_enabled()
    qtbot.keyClick(view.vtk_widget, Qt.Key.Key_BracketRight)
    assert window.review.active is frames[1]
    # the view's own keys still reach it
    before = frames[1].view.slice_index
    qtbot.keyClick(frames[1].view.vtk_widget, Qt.Key.Key_Up)
    assert frames[1].view.slice_index != before


def test_double_click_maximises_and_restores(window, qtbot):
    frames = hang(window, qtbot)
    target = frames[2]
    grid_size = target.size()
    area = window.review.size()
    target.view.maximize_requested.emit()
    assert all(f.isHidden() for f in frames if f is not target) and target.isVisible()
    qtbot.waitUntil(lambda: target.width() > 0.9 * area.width() and target.height() > 0.9 * area.height(),
                    timeout=3000)  # it fills the image area, not its old grid cell
    target.view.maximize_requested.emit()
    assert all(f.isVisible() for f in frames)
    qtbot.waitUntil(lambda: abs(target.width() - grid_size.width()) <= 2
                    and abs(target.height() - grid_size.height()) <= 2, timeout=3000)


def test_all_echoes_side_by_side_share_an_absolute_window(window, qtbot, events):
    gre = next(c for c in window.browser.candidates() if "GRE" in c.label and c.echo_time == 4.0)
    with qtbot.waitSignal(window.controller.all_loaded, timeout=20000):
        window.show_candidate(gre)
    with qtbot.waitSignal(window.controller.all_loaded, timeout=20000):
        window.actions_by_name["echoes"].trigger()
    frames = window.review.view_frames()
    assert [f.candidate.echo_time for f in frames] == [4.0, 9.0, 14.0, 19.0, 24.0]
    assert window.review.mode == "echoes"
    src = frames[0].view
    vp = src.viewport()
    start = QtCore.QPointF(vp.width() / 2, vp.height() / 2)
    events.drag(src, start, start + QtCore.QPointF(50, 30), Qt.MouseButton.LeftButton)
    qtbot.wait(50)
    assert all(f.view.window() == pytest.approx(src.window()) for f in frames)
    # the late echo is darker on the same window: signal decays with TE
    assert frames[-1].view.volume.array.mean() < frames[0].view.volume.array.mean()


def test_first_slice_appears_before_the_series_has_loaded(qtbot, demo, tmp_path):
    import threading

    from discviewer.io import load

    gate = threading.Event()

    def slow_load(candidate, *, progress=None):
        gate.wait(10)
        return load(candidate, progress=progress)

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, load_fn=slow_load)
    qtbot.addWidget(w)
    w.show()
    try:
        with qtbot.waitSignal(w.scan_finished, timeout=30000):
            w.open_path(demo)
        qtbot.waitUntil(lambda: w.slice_view is not None and w.slice_view.volume is not None, timeout=5000)
        preview = w.slice_view.volume
        assert preview.shape[0] == 1 and "loading" in w.slice_view.overlay_text("series")
        cand = w.review.active.candidate
        middle = cand.slice_count // 2
        # the preview sits exactly where the middle slice of the full series will be
        np.testing.assert_allclose(preview.affine[:3, 3], cand.affine[:3, :3] @ [0, 0, middle] + cand.affine[:3, 3])
        with qtbot.waitSignal(w.volume_shown, timeout=20000):
            gate.set()
        assert w.slice_view.volume.shape[0] == cand.slice_count
        assert w.slice_view.slice_index == middle
    finally:
        gate.set()
        w.shutdown()


def test_overlay_follow_up_over_baseline_with_opacity(window, qtbot):
    frames = hang(window, qtbot)
    follow = frames[2]
    own = follow.view.volume
    plain = follow.view.capture().astype(int)
    window.actions_by_name["overlay"].trigger()
    assert window.controller.mode == "overlay" and window.mode_label.text() == "OVERLAY"
    assert follow.view.overlay() is own and follow.view.volume is not own  # base = baseline on its grid
    assert frames[0].view.overlay() is None  # nothing to overlay on the baseline itself
    follow.view.render_now()
    half = follow.view.capture().astype(int)
    window.opacity_slider.setValue(100)
    assert follow.view.overlay_opacity() == pytest.approx(1.0)
    follow.view.render_now()
    full = follow.view.capture().astype(int)
    assert np.abs(half - full).mean() > 1 and np.abs(half - plain).mean() > 1
    # hot colours: red dominates where the follow-up is drawn fully opaque
    assert full[..., 0].mean() > full[..., 2].mean() + 10
    window.actions_by_name["overlay"].trigger()
    assert window.controller.mode == "normal" and follow.view.overlay() is None and follow.view.volume is own


def test_renaming_a_visit_retitles_its_viewport(window, qtbot):
    frames = hang(window, qtbot)
    visit = frames[1].visit
    visit.set_label("3 months")
    assert frames[1].view.overlay_text("series").startswith("3 months")
    visit.set_label(None)
    assert frames[1].view.overlay_text("series").startswith("3 m (day 96)")


def test_crosshair_off_removes_its_lines_from_every_view(window, qtbot):
    """X on: a point picked in one visit shows the crosshair in every linked visit; X off: gone everywhere."""
    frames = hang(window, qtbot)
    act = window.actions_by_name["crosshair"]
    act.trigger()  # on
    assert act.isChecked()
    src = frames[0].view
    src.point_picked.emit(np.asarray(src.pipeline.point(), float))
    assert all(f.view.pipeline.crosshair() is not None for f in frames)
    assert all(f.view.pipeline.crosshair_actor.GetVisibility() for f in frames)
    act.trigger()  # off
    assert not act.isChecked()
    assert all(f.view.pipeline.crosshair() is None for f in frames)
    assert not any(f.view.pipeline.crosshair_actor.GetVisibility() for f in frames)

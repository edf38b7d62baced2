"""Register visits from the app: the transforms reach the linked views; QA modes; nudge; reset."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6 import QtCore


Qt = QtCore.Qt


@pytest.fixture
def window(demo_window, qtbot):
    """The demo study with all visits hung."""
    with qtbot.waitSignal(demo_window.controller.all_loaded, timeout=30000):
        demo_window.actions_by_name["hang"].trigger()
    return demo_window


def register(window, qtbot):
    with qtbot.waitSignal(window.controller.registration_finished, timeout=120000) as blocker:
        window.actions_by_name["register"].trigger()
    return blocker.args[0]


def roi_tre(m, expected, centre):
    corners = np.asarray(centre) + np.array([[sx, sy, sz] for sx in (-15, 15) for sy in (-25, 25) for sz in (-25, 25)])
    a = corners @ m[:3, :3].T + m[:3, 3]
    b = corners @ expected[:3, :3].T + expected[:3, 3]
    return float(np.sqrt((np.linalg.norm(a - b, axis=1) ** 2).mean()))


def test_register_visits_sets_transforms_the_views_follow(window, qtbot, demo):
    results = register(window, qtbot)
    truth = json.loads((demo / "truth.json").read_text())["patients"][0]["visits"]
    assert len(results) == 4
    ts = window.controller.transforms
    centre = truth[0]["discs"]["L4/L5"]["centre"]
    frames = window.review.view_frames()
    for vr, tv, f in zip(results, truth[1:], frames[1:]):
        assert vr.result.final_metric > vr.result.initial_metric
        m = ts.get(vr.visit_id)  # visit → baseline
        assert ts.provenance(vr.visit_id).method == "registration"
        assert ts.provenance(vr.visit_id).details["metric"] == vr.result.metric
        assert roi_tre(np.linalg.inv(m), np.array(tv["baseline_to_visit"]), centre) < 1.0
        # the linked view now shows the registered anatomy
        p = ts.to_visit(frames[0].view.pipeline.point(), f.visit_id)
        normal = f.view.pipeline.frame()[2]
        assert abs(float(np.dot(p - f.view.pipeline.point(), normal))) <= f.view.pipeline.slice_spacing() / 2 + 1e-6
    panel = window.registration_panel
    assert panel.table.rowCount() == 4
    assert "→" in panel.table.item(0, 3).text() and panel.table.item(0, 5).text().startswith("registration")


def test_checkerboard_and_fusion(window, qtbot):
    register(window, qtbot)
    follow = window.review.view_frames()[1]
    own = follow.view.volume
    window.actions_by_name["checkerboard"].trigger()
    cb = follow.view.volume
    assert window.controller.mode == "checkerboard" and cb is not own and cb.shape == own.shape
    assert follow.view.overlay_text("series").startswith("CHECKERBOARD")
    window.actions_by_name["fusion"].trigger()
    assert window.controller.mode == "fusion" and follow.view.overlay() is own
    follow.view.render_now()
    rgb = follow.view.capture().astype(int)
    assert (rgb[..., 0] + rgb[..., 2] - 2 * rgb[..., 1]).mean() > 5  # magenta tint present
    window.actions_by_name["fusion"].trigger()
    assert window.controller.mode == "normal" and follow.view.volume is own


def test_nudge_and_reset(window, qtbot):
    frames = window.review.view_frames()
    follow = frames[2]
    window.review.set_active(follow)
    ts = window.controller.transforms
    before = ts.get(follow.visit_id).copy()
    window.actions_by_name["nudge_right"].trigger()
    after = ts.get(follow.visit_id)
    R = np.asarray(follow.view.pipeline.frame()[0], float)
    np.testing.assert_allclose(after[:3, 3] - before[:3, 3], 0.5 * R / np.linalg.norm(R), atol=1e-9)
    assert "manual" in ts.provenance(follow.visit_id).method
    assert ts.provenance(follow.visit_id).details["manual_edits"] == 1
    window.actions_by_name["rotate_ccw"].trigger()
    r = ts.get(follow.visit_id)[:3, :3]
    assert np.degrees(np.arccos((np.trace(r) - 1) / 2)) == pytest.approx(0.5, abs=1e-6)
    # the baseline itself cannot be nudged
    window.review.set_active(frames[0])
    assert not window.controller.nudge(du=1.0)
    window.controller.reset_transform(follow.visit_id)
    np.testing.assert_array_equal(ts.get(follow.visit_id), np.eye(4))


def test_register_here_uses_a_disc_level_box(window, qtbot, demo):
    truth = json.loads((demo / "truth.json").read_text())["patients"][0]["visits"]
    centre = np.array(truth[0]["discs"]["L4/L5"]["centre"])
    base = window.review.view_frames()[0]
    window.review.set_active(base)
    register(window, qtbot)  # whole volume first; the disc-level box refines it
    base.view.set_point(centre)
    whole = {vid: window.controller.transforms.get(vid).copy() for vid in window.controller.transforms.visit_ids()}
    with qtbot.waitSignal(window.controller.registration_finished, timeout=120000) as blocker:
        window.register_here(level="L4/L5")
    results = blocker.args[0]
    assert len(results) == 4
    ctrl = window.controller
    assert list(ctrl.transform_sets) == ["whole volume", "L4/L5"] and ctrl.link_level == "L4/L5"
    assert window.level_combo.currentText() == "L4/L5" and window.level_combo.count() == 2
    ts = ctrl.transforms
    assert ts is ctrl.transform_sets["L4/L5"] and window.review.links.transforms is ts
    # the whole-volume set is untouched; switching back links through it again
    for vid, m in whole.items():
        np.testing.assert_array_equal(ctrl.transform_sets["whole volume"].get(vid), m)
    ctrl.set_link_level("whole volume")
    assert window.review.links.transforms is ctrl.transform_sets["whole volume"]
    ctrl.set_link_level("L4/L5")
    for vr, tv in zip(results, truth[1:]):
        prov = ts.provenance(vr.visit_id)
        assert prov.details["mode"] == "ROI" and prov.details["roi"] is not None
        x0, y0, z0, x1, y1, z1 = prov.details["roi"]
        assert x0 < centre[0] < x1 and y0 < centre[1] < y1 and z0 < centre[2] < z1
        # the "small" phantom has ~2 mm pixels and 4 mm slices: a disc-level box holds few voxels, so the
        # bound here is 0.6 mm (≈ ¼ voxel); the < 0.5 mm accuracy goal is tested in tests/core/test_registration.py
        assert roi_tre(np.linalg.inv(ts.get(vr.visit_id)), np.array(tv["baseline_to_visit"]), centre) < 0.6

"""Measure ▸ "Label discs from this one" (Ctrl+B) on the phantom demo study: from one disc label the
others are found along the spine and labelled in order, in one undo step; a label the reader placed
near a found disc is updated, one placed elsewhere for a found level is kept."""
from __future__ import annotations

import json

import numpy as np
from PySide6 import QtCore, QtWidgets

from discviewer.levels import labels_of

Qt = QtCore.Qt
LEFT = Qt.MouseButton.LeftButton


def truth(demo):
    return json.loads((demo / "truth.json").read_text())["patients"][0]


def click(events, view, lps):
    pos = view.widget_point_for_patient(lps)
    events.mouse(view, "press", pos, LEFT, LEFT)
    events.mouse(view, "release", pos, LEFT, None)


def go_to(view, lps):
    view.set_point(np.asarray(lps, float))
    QtWidgets.QApplication.processEvents()


def in_plane_error(p, q, normal) -> float:
    d = np.subtract(p, q)
    return float(np.linalg.norm(d - (d @ normal) * normal))


def test_label_discs_from_one_click_and_undo(demo_window, qtbot, demo, events):
    w = demo_window
    ws = w.project.workspace
    view = w.slice_view
    visit = w.review.active.visit_id
    discs = truth(demo)["visits"][0]["discs"]
    action = w.actions_by_name["label_all"]
    assert action.shortcut().toString() == "Ctrl+B" and "Ctrl+B" in action.toolTip()
    assert action in w.measure.menu.actions() and action in w.measure.toolbar.actions()
    # the reader labels L4/L5 (a click), then asks for the rest
    go_to(view, discs["L4/L5"]["centre"])
    w.measure.set_level("L4/L5")
    w.actions_by_name["tool_disc_label"].trigger()
    click(events, view, discs["L4/L5"]["centre"])
    clicked = labels_of(ws.annotations, visit)
    assert list(clicked) == ["L4/L5"]
    steps = len(ws.history.steps())
    action.trigger()
    labels = labels_of(ws.annotations, visit)
    normal = np.array([1.0, 0.0, 0.0])  # sagittal slices
    assert set(discs) <= set(labels), sorted(labels)  # T12/L1 … L5/S1 (and T11/T12 on this field of view)
    for level, p in labels.items():
        if level in discs:
            assert in_plane_error(p, discs[level]["centre"], normal) < 2.5, level
    assert labels["L4/L5"] == clicked["L4/L5"]  # the reader's own click stays where it is
    recs = [a for a in ws.annotations if a.kind == "disc_label" and a.visit_id == visit]
    assert len(recs) == len(labels)  # one label per level
    assert all(a.method.startswith("found along the spine") and 0 <= a.extra["confidence"] <= 1
               for a in recs if a.level != "L4/L5")
    assert len(ws.history.steps()) == steps + 1  # one undo step
    assert "Labelled" in w.statusBar().currentMessage()
    w.undo_action.trigger()
    assert list(labels_of(ws.annotations, visit)) == ["L4/L5"]


def test_existing_labels_are_updated_near_and_kept_elsewhere(demo_window, qtbot, demo, events):
    from discviewer.levels import disc_label_annotation

    w = demo_window
    ws = w.project.workspace
    view = w.slice_view
    visit = w.review.active.visit_id
    discs = truth(demo)["visits"][0]["discs"]
    go_to(view, discs["L5/S1"]["centre"])
    uid = w.current_candidate.info.series_uid
    # the reader's L5/S1 (the anchor), an L2/L3 label 3 mm off the disc (mis-named "L1/L2"), and an
    # "L3/L4" far from any disc
    anchor = ws.annotations.add(disc_label_annotation("L5/S1", discs["L5/S1"]["centre"], visit, series_uid=uid))
    near = ws.annotations.add(disc_label_annotation("L1/L2", np.add(discs["L2/L3"]["centre"], [0, 0, 3.0]), visit,
                                                    series_uid=uid))
    far_point = tuple(np.add(discs["L3/L4"]["centre"], [0, -60.0, 0]))
    far = ws.annotations.add(disc_label_annotation("L3/L4", far_point, visit, series_uid=uid))
    w.measure.tools.select(anchor.id)
    steps = len(ws.history.steps())
    written = w.measure.label_discs_from_one()
    assert len(ws.history.steps()) == steps + 1
    labels = labels_of(ws.annotations, visit)
    assert ws.annotations.get(near.id).level == "L2/L3"  # updated: it is the L2/L3 disc
    assert np.linalg.norm(np.subtract(labels["L2/L3"], discs["L2/L3"]["centre"])) < 2.5
    assert ws.annotations.get(far.id).points[0] == far_point and labels["L3/L4"] == far_point  # kept
    assert "L3/L4" not in written and "kept your own L3/L4" in w.statusBar().currentMessage()
    assert labels["L5/S1"] == tuple(anchor.points[0])
    for level in ("T12/L1", "L1/L2", "L4/L5"):
        assert np.linalg.norm(np.subtract(labels[level], discs[level]["centre"])) < 2.5, level
    w.undo_action.trigger()
    assert ws.annotations.get(near.id).level == "L1/L2"
    assert set(labels_of(ws.annotations, visit)) == {"L5/S1", "L1/L2", "L3/L4"}


def test_no_disc_at_the_view_point_says_so(demo_window, qtbot, demo):
    w = demo_window
    ws = w.project.workspace
    view = w.slice_view
    d = truth(demo)["visits"][0]["discs"]["L3/L4"]
    go_to(view, np.add(d["centre"], [0, -70.0, 0]))  # in front of the spine
    n = len(ws.annotations)
    assert w.measure.label_discs_from_one() == {}
    assert len(ws.annotations) == n and "Label discs" in w.statusBar().currentMessage()

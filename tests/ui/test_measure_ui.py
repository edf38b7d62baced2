"""Measuring in the main window on the phantom demo study: tools from the Measure toolbar with real
mouse clicks, the Measurements table and trend following edits and undo, disc labels in order and
propagated, an annotation copied to every visit, iron in a disc ROI, the R2* overlay."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from discviewer.workspace.data import Annotation

Qt = QtCore.Qt
LEFT = Qt.MouseButton.LeftButton


def click(events, view, lps):
    pos = view.widget_point_for_patient(lps)
    events.mouse(view, "press", pos, LEFT, LEFT)
    events.mouse(view, "release", pos, LEFT, None)


def truth(demo):
    return json.loads((demo / "truth.json").read_text())["patients"][0]


def go_to(view, lps):
    view.set_point(np.asarray(lps, float))
    QtWidgets.QApplication.processEvents()


def test_ruler_and_disc_labels_from_the_toolbar(demo_window, qtbot, demo, events):
    w = demo_window
    ws = w.project.workspace
    view = w.slice_view
    discs = truth(demo)["visits"][0]["discs"]
    go_to(view, discs["L4/L5"]["centre"])
    # a ruler across L4/L5 from its upper to its lower middle landmark
    w.actions_by_name["tool_ruler"].trigger()
    assert w.measure.tools.tool == "ruler" and w.measure.measurements_dock.isVisible()
    up, lo = discs["L4/L5"]["landmarks"]["upper_middle"], discs["L4/L5"]["landmarks"]["lower_middle"]
    click(events, view, up)
    click(events, view, lo)
    rulers = ws.annotations.select(kind="ruler")
    assert len(rulers) == 1
    r = rulers[0]
    expected = float(np.linalg.norm(np.subtract(lo, up)))
    # clicks land on voxel-free screen positions: within half a pixel of the true distance
    assert r.values["length_mm"] == pytest.approx(expected, abs=1.5)
    assert r.level == "L4/L5" and r.visit_id == view_visit(w) and r.reader == ws.user
    assert r.extra["series_role"] == "T2 sag" and r.extra["plane_name"] == "sag"
    table = w.measure.measurement_panel
    qtbot.waitUntil(lambda: table_has(table, "length_mm"), timeout=3000)
    w.undo_action.trigger()
    assert not ws.annotations.select(kind="ruler")
    qtbot.waitUntil(lambda: not table_has(table, "length_mm"), timeout=3000)

    # disc labels: click the discs top to bottom; the Level box follows
    w.measure.set_level("L1/L2")
    w.actions_by_name["tool_disc_label"].trigger()
    for level in ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"):
        assert w.measure.level == level
        go_to(view, discs[level]["centre"])
        click(events, view, discs[level]["centre"])
    from discviewer.levels import labels_of

    labels = labels_of(ws.annotations, view_visit(w))
    # with the discs labelled, a measurement takes the level of the disc it is drawn on
    w.measure.set_level("L1/L2")
    w.actions_by_name["tool_ruler"].trigger()
    go_to(view, discs["L3/L4"]["centre"])
    click(events, view, discs["L3/L4"]["landmarks"]["upper_middle"])
    click(events, view, discs["L3/L4"]["landmarks"]["lower_middle"])
    assert ws.annotations.select(kind="ruler")[-1].level == "L3/L4"
    assert list(labels) == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    for level, p in labels.items():
        assert np.linalg.norm(np.subtract(p, discs[level]["centre"])) < 2.0
    # propagate through the (identity, unregistered) transforms to every visit: one undo step
    n_steps = len(ws.history.steps())
    assert w.measure.propagate_labels() == 4
    assert len(ws.history.steps()) == n_steps + 1
    for v in w.study.patients[0].visits[1:]:
        assert list(labels_of(ws.annotations, v.id)) == list(labels)


def view_visit(w):
    return w.review.active.visit_id


def table_has(panel, measure: str) -> bool:
    t = panel.view
    for r in range(t.rowCount()):
        for c in range(t.columnCount()):
            item = t.item(r, c)
            if item is not None and measure in item.text():
                return True
    return False


def test_copy_to_all_visits_measures_each_visit(demo_window, qtbot, demo):
    w = demo_window
    ws = w.project.workspace
    view = w.slice_view
    d = truth(demo)["visits"][0]["discs"]["L4/L5"]
    go_to(view, d["centre"])
    c = np.asarray(d["centre"], float)
    plane = view.slice_plane()
    roi = ws.annotations.add(Annotation(
        id="", kind="ellipse", level="L4/L5", visit_id=view_visit(w), series_uid=w.current_candidate.info.series_uid,
        points=(tuple(c), tuple(c + [0, 8, 0]), tuple(c + [0, 0, 2.5])), reader=ws.user,
        extra={"plane": plane, "plane_name": "sag", "series_role": "T2 sag", "roi_role": "disc"}))
    w.measure.tools.select(roi.id)
    steps = len(ws.history.steps())
    made = w.measure.carry_selected()
    assert len(made) == 4 and len(ws.history.steps()) == steps + 1
    for a in made:
        assert a.kind == "ellipse" and a.values["n_voxels"] > 0 and a.values["area_mm2"] > 0
        assert a.extra["carried_from"]["annotation"] == roi.id
    w.undo_action.trigger()
    assert all(a.id not in ws.annotations for a in made)


def injected_visit(demo):
    p = truth(demo)
    level = p["injected_levels"][0]
    for i, v in enumerate(p["visits"]):
        if v["discs"][level]["iron"]["present"]:
            return i, level, v
    pytest.skip("the demo phantom has no visit with iron")


def show_gre(w, qtbot, visit_index, te_index=2):
    entry = w.study.patients[0].visits[visit_index].entries("multi-echo GRE")[0]
    with qtbot.waitSignal(w.volume_shown, timeout=30000):
        w.show_candidate(entry.candidate(te_index))
    return entry


def test_iron_in_a_disc_roi_against_its_reference(demo_window, qtbot, demo):
    w = demo_window
    ws = w.project.workspace
    i, level, tv = injected_visit(demo)
    entry = show_gre(w, qtbot, i)
    view = w.slice_view
    iron = tv["discs"][level]["iron"]
    centre = np.asarray(iron["centre"] or tv["discs"][level]["centre"], float)
    go_to(view, centre)
    plane = view.slice_plane()
    te = entry.candidate(2).info.echo_time
    common = dict(level=level, visit_id=view_visit(w), series_uid=entry.series_uid, reader=ws.user)
    extra = {"plane": plane, "plane_name": "sag", "series_role": "multi-echo GRE", "echo_time_ms": te}
    disc = ws.annotations.add(Annotation(id="", kind="ellipse", points=(
        tuple(centre), tuple(centre + [0, 14, 0]), tuple(centre + [0, 0, 3.0])),
        extra={**extra, "roi_role": "disc"}, **common))
    ref_c = centre + [0, 10, 0]  # surrounding disc tissue, anterior of the deposit
    ws.annotations.add(Annotation(id="", kind="ellipse", points=(
        tuple(ref_c), tuple(ref_c + [0, 3.0, 0]), tuple(ref_c + [0, 0, 1.5])),
        extra={**extra, "roi_role": "reference"}, **common))
    w.measure.tools.select(disc.id)
    a = w.measure.measure_iron()
    assert a is not None and a.kind == "iron" and a.level == level
    assert a.values["void_volume_mm3"] > 0 and -1 < a.values["contrast_ratio"] < 0  # (void − ref) / ref
    assert a.extra["echo_time_ms"] == te and a.extra["field_strength_t"] and len(a.extra["voxel_mm"]) == 3
    assert "50 %" in a.method
    assert view.overlay() is not None


def test_r2star_overlay_with_colour_bar(demo_window, qtbot, demo):
    w = demo_window
    ws = w.project.workspace
    entry = show_gre(w, qtbot, 0, te_index=0)
    view = w.slice_view
    d = truth(demo)["visits"][0]["discs"]["L3/L4"]
    go_to(view, d["centre"])
    c = np.asarray(d["centre"], float)
    roi = ws.annotations.add(Annotation(
        id="", kind="ellipse", level="L3/L4", visit_id=view_visit(w), series_uid=entry.series_uid,
        points=(tuple(c), tuple(c + [0, 5, 0]), tuple(c + [0, 0, 1.5])), reader=ws.user,
        extra={"plane": view.slice_plane(), "plane_name": "sag", "series_role": "multi-echo GRE", "roi_role": "disc",
               "echo_time_ms": entry.echo_times[0]}))
    vol = w.measure.toggle_r2star()
    stored = ws.annotations.get(roi.id)
    assert stored.units["r2star_mean_per_s"] == "s⁻¹" and stored.values["r2star_mean_per_s"] > 0
    assert "fit of 5 echoes" in stored.extra["r2star_method"]
    w.undo_action.trigger()  # one step
    assert "r2star_mean_per_s" not in ws.annotations.get(roi.id).values
    assert vol is not None and vol.array.shape == w.slice_view.volume.array.shape
    tissue = truth(demo)["visits"][0]["discs"]["L4/L5"]["iron"]["tissue_r2s_per_s"]
    assert np.nanmedian(vol.array[vol.array > 0]) == pytest.approx(tissue, rel=0.6)  # a plausible map
    assert w.slice_view.overlay() is not None and w.slice_view.color_bar() is not None
    w.measure.toggle_r2star()
    assert w.slice_view.overlay() is None and w.slice_view.color_bar() is None

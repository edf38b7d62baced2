"""MeasurementPanel + TrendPlot: the table follows the AnnotationSet (add / edit / remove / undo), a click
selects an annotation, iron acquisition warnings, trend curves and SDC bands, the ROI histogram."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6 import QtCore

from discviewer.measure_table import SDC_FACTOR
from discviewer.study import Study
from discviewer.ui.measurement_panel import FIXED_COLUMNS, MeasurementPanel
from discviewer.workspace.data import Annotation
from discviewer.workspace.project import Workspace
from tests.core.test_study import cand
from tests.synthetic import make_volume

Qt = QtCore.Qt


def three_visit_study() -> Study:
    return Study.from_scan([cand(study="1.1", series="1.1.1", date="20200101"),
                            cand(study="1.2", series="1.2.1", date="20200401"),   # 91 d, "3 m"
                            cand(study="1.3", series="1.3.1", date="20200701")])  # 182 d, "6 m"


@pytest.fixture
def ws():
    w = Workspace(user="r1")
    w.attach_study(three_visit_study())
    yield w
    w.close()


@pytest.fixture
def visits(ws):
    return [v.id for v in ws.study.visits()]


@pytest.fixture
def panel(qtbot, ws):
    p = MeasurementPanel()
    qtbot.addWidget(p)
    p.resize(1300, 850)
    p.set_workspace(ws)
    p.show()
    qtbot.waitExposed(p)
    return p


def heights(visit, a, m, p, *, level="L4/L5", reader="r1"):
    return Annotation(id="", kind="disc_height", level=level, visit_id=visit, reader=reader, method="6-point",
                      values={"DHa": a, "DHm": m, "DHp": p}, units={"DHa": "mm", "DHm": "mm", "DHp": "mm"})


def grid(panel) -> dict[tuple[str, str], list[str]]:
    """(level, measure) → visit cell texts (first line), level cells filled down."""
    out = {}
    level = ""
    for r in range(panel.view.rowCount()):
        level = panel.view.item(r, 0).text() or level
        measure = panel.view.item(r, 1).text()
        cells = [panel.view.item(r, c).text().split("\n")[0]
                 for c in range(len(FIXED_COLUMNS), panel.view.columnCount() - 1)]
        out[(level, measure)] = cells
    return out


def test_table_follows_add_edit_remove_and_undo(qtbot, ws, visits, panel):
    assert panel.view.rowCount() == 0
    headers = [panel.view.horizontalHeaderItem(c).text() for c in range(panel.view.columnCount())]
    assert headers == ["Level", "Measure", "Unit", "baseline\n0 d", "3 m\n91 d", "6 m\n182 d", "SDC95"]
    a = ws.annotations.add(heights(visits[0], 10.0, 9.0, 8.0))
    qtbot.waitUntil(lambda: panel.view.rowCount() > 0)
    assert grid(panel)[("L4/L5", "DHm")] == ["9.00", "", ""]
    b = ws.annotations.add(heights(visits[1], 9.5, 8.1, 7.6))
    qtbot.waitUntil(lambda: grid(panel)[("L4/L5", "DHm")] == ["9.00", "8.10", ""])
    assert grid(panel)[("L4/L5", "DHm_pct_baseline")] == ["100.0", "90.00", ""]

    ws.annotations.update(dataclasses.replace(ws.annotations.get(b.id), values={"DHa": 9.5, "DHm": 8.4, "DHp": 7.6}))
    qtbot.waitUntil(lambda: grid(panel)[("L4/L5", "DHm")][1] == "8.40")
    ws.annotations.remove(a.id)
    qtbot.waitUntil(lambda: grid(panel)[("L4/L5", "DHm")] == ["", "8.40", ""])
    assert ("L4/L5", "DHm_pct_baseline") not in grid(panel)  # no baseline any more

    ws.undo()  # the removal
    qtbot.waitUntil(lambda: grid(panel)[("L4/L5", "DHm")] == ["9.00", "8.40", ""])
    ws.undo()  # the edit
    qtbot.waitUntil(lambda: grid(panel)[("L4/L5", "DHm")] == ["9.00", "8.10", ""])
    ws.undo()
    ws.undo()
    qtbot.waitUntil(lambda: panel.view.rowCount() == 0)
    ws.redo()
    qtbot.waitUntil(lambda: grid(panel).get(("L4/L5", "DHm")) == ["9.00", "", ""])


def test_many_changes_coalesce_into_one_rebuild(qtbot, ws, visits, panel, monkeypatch):
    calls = []
    original = panel.refresh
    monkeypatch.setattr(panel, "refresh", lambda: (calls.append(1), original()))
    with ws.history.group("Measure"):
        for i, v in enumerate(visits):
            ws.annotations.add(heights(v, 10 - i, 9 - i, 8 - i))
            ws.annotations.add(heights(v, 11 - i, 10 - i, 9 - i, level="L3/L4"))
    qtbot.waitUntil(lambda: panel.view.rowCount() == 12)
    assert len(calls) == 1
    assert [panel.view.item(r, 0).text() for r in range(panel.view.rowCount())][::6] == ["L3/L4", "L4/L5"]


def test_clicking_a_cell_selects_its_annotation(qtbot, ws, visits, panel):
    a0 = ws.annotations.add(heights(visits[0], 10.0, 9.0, 8.0))
    a1 = ws.annotations.add(heights(visits[1], 9.5, 8.1, 7.6))
    panel.refresh()
    row = next(r for r in range(panel.view.rowCount()) if panel.view.item(r, 1).text() == "DHm")
    col = panel.visit_columns[visits[1]]
    rect = panel.view.visualItemRect(panel.view.item(row, col))
    with qtbot.waitSignal(panel.annotation_selected) as sig:
        qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert sig.args == [a1.id]
    # the measure column selects the row's first value
    rect = panel.view.visualItemRect(panel.view.item(row, 1))
    with qtbot.waitSignal(panel.annotation_selected) as sig:
        qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert sig.args == [a0.id]
    # the viewer → table direction does not echo
    with qtbot.assertNotEmitted(panel.annotation_selected):
        assert panel.select_annotation(a1.id)
    assert panel.current_annotation_id() == a1.id
    # the selection survives a rebuild
    ws.annotations.add(heights(visits[2], 9.0, 7.9, 7.0))
    qtbot.waitUntil(lambda: grid(panel)[("L4/L5", "DHm")][2] == "7.90")
    assert panel.current_annotation_id() == a1.id


def test_reader_filter(qtbot, ws, visits, panel):
    ws.annotations.add(heights(visits[0], 10.0, 9.0, 8.0, reader="r1"))
    ws.annotations.add(heights(visits[0], 10.4, 9.4, 8.4, reader="r2"))
    qtbot.waitUntil(lambda: panel.reader_combo.count() == 3)
    assert [panel.reader_combo.itemText(i) for i in range(3)] == ["All readers", "r1", "r2"]
    assert grid(panel)[("L4/L5", "DHm")][0] == "9.20 (n=2)"
    panel.reader_combo.setCurrentIndex(2)
    assert grid(panel)[("L4/L5", "DHm")][0] == "9.40"
    assert panel.trend.curves["DHm"].getData()[1].tolist() == [9.4]


def iron(visit, te, volume):
    return Annotation(id="", kind="iron", level="L4/L5", visit_id=visit, reader="r1",
                      points=((0, 0, 10), (0, 4, 10), (0, 0, 13)),
                      values={"void_volume_mm3": volume}, units={"void_volume_mm3": "mm³"},
                      extra={"roi_kind": "ellipse", "echo_time_ms": te, "field_strength_t": 3.0,
                             "voxel_mm": [0.5, 0.5, 3.0]})


def test_iron_values_show_acquisition_and_warn(qtbot, ws, visits, panel, tmp_path):
    ws.annotations.add(iron(visits[0], 14.0, 210.0))
    ws.annotations.add(iron(visits[1], 14.0, 160.0))
    qtbot.waitUntil(lambda: panel.view.rowCount() == 1)
    assert panel.warning.isHidden()
    cell = panel.view.item(0, panel.visit_columns[visits[0]]).text()
    assert cell == "210.0\nTE 14 ms · 3 T · 0.5×0.5×3 mm"
    ws.annotations.add(iron(visits[2], 19.0, 190.0))
    qtbot.waitUntil(lambda: panel.warning.isVisible())
    assert "iron values not comparable: TE 14 ms vs 19 ms" in panel.warning.text()
    odd = panel.view.item(0, panel.visit_columns[visits[2]])
    same = panel.view.item(0, panel.visit_columns[visits[1]])
    assert odd.background().color().name() == "#ffe8b0" and "not comparable" in odd.toolTip()
    assert same.background().style() == Qt.BrushStyle.NoBrush
    ws.undo()
    qtbot.waitUntil(lambda: panel.warning.isHidden())


def test_trend_curves_and_sdc_band(qtbot, ws, visits, panel):
    ws.annotations.add(heights(visits[0], 10.0, 9.0, 8.0))
    ws.annotations.add(heights(visits[1], 9.5, 8.1, 7.6))
    ws.annotations.add(heights(visits[2], 9.0, 7.2, 7.0))
    qtbot.waitUntil(lambda: panel.view.rowCount() > 0)
    trend = panel.trend
    assert trend.level == "L4/L5"
    assert set(trend.curves) == {"DHa", "DHm", "DHp"}  # the mm measures, one line each
    x, y = trend.curves["DHm"].getData()
    assert x.tolist() == [0, 91, 182] and y.tolist() == pytest.approx([9.0, 8.1, 7.2])
    assert trend.bands == {}  # no repeats yet
    legend = [label.text for _, label in trend.legend.items]
    assert legend == ["DHa", "DHm", "DHp"]

    # a repeated baseline measurement (9.0 and 9.6): SEM √0.18 → SDC95 = 2.7719·0.4243
    ws.annotations.add(heights(visits[0], 10.0, 9.6, 8.0))
    qtbot.waitUntil(lambda: "DHm" in panel.trend.bands)
    sdc = trend.sdc["DHm"].sdc95
    assert sdc == pytest.approx(SDC_FACTOR * np.sqrt(0.18))
    lo, hi = trend.bands["DHm"].curves
    assert lo.yData.tolist() == pytest.approx([9.3 - sdc] * 2) and hi.yData.tolist() == pytest.approx([9.3 + sdc] * 2)
    assert trend.curves["DHm"].getData()[1][0] == pytest.approx(9.3)
    assert f"DHm  (band ± SDC95 {sdc:.3g})" in [label.text for _, label in trend.legend.items]

    # choosing measures in the list; % of baseline
    trend.set_measures(["DHm"])
    assert set(trend.curves) == {"DHm"}
    trend.percent_box.setChecked(True)
    assert trend.curves["DHm"].getData()[1].tolist() == pytest.approx([100.0, 8.1 / 9.3 * 100, 7.2 / 9.3 * 100])
    assert trend.bands["DHm"].curves[1].yData[0] == pytest.approx(100 + 100 * sdc / 9.3)


def test_trend_level_follows_the_selected_row(qtbot, ws, visits, panel):
    ws.annotations.add(heights(visits[0], 10.0, 9.0, 8.0, level="L3/L4"))
    ws.annotations.add(heights(visits[0], 11.0, 10.0, 9.0, level="L5/S1"))
    qtbot.waitUntil(lambda: panel.view.rowCount() == 12)
    assert panel.trend.level == "L3/L4"
    row = next(r for r in range(panel.view.rowCount()) if panel.view.item(r, 0).text() == "L5/S1")
    with qtbot.waitSignal(panel.level_selected) as sig:
        panel.view.setCurrentCell(row + 1, panel.visit_columns[visits[0]])
    assert sig.args == ["L5/S1"] and panel.trend.level == "L5/S1"
    assert panel.trend.curves["DHm"].getData()[1].tolist() == [10.0]


def roi(visit):
    return Annotation(id="", kind="ellipse", level="L4/L5", visit_id=visit, reader="r1",
                      points=((0, 10, 20), (0, 14, 20), (0, 10, 22)), values={"mean": 820.0},
                      extra={"roi_role": "disc"})


def test_histogram_of_the_selected_roi(qtbot, ws, visits, panel):
    from discviewer.measure import plane_roi_of, roi_stats

    vol = make_volume()  # slice 0 lies at x = −20 mm (sagittal), 0.5 × 1 mm pixels
    a = ws.annotations.add(dataclasses.replace(
        roi(visits[0]), points=((-20.0, -40.0, 60.0), (-20.0, -36.0, 60.0), (-20.0, -40.0, 62.0)),
        extra={"roi_role": "disc", "plane": {"origin": [-20.0, -40.0, 60.0], "normal": [1.0, 0.0, 0.0]}}))
    qtbot.waitUntil(lambda: panel.view.rowCount() == 1)
    # no volume callback yet: the histogram says why
    panel.view.setCurrentCell(0, panel.visit_columns[visits[0]])
    assert "not loaded" in panel.histogram.info.text() and panel.histogram.counts is None
    panel.set_volume_for(lambda ann: vol)
    panel.view.setCurrentCell(0, 1)
    panel.view.setCurrentCell(0, panel.visit_columns[visits[0]])
    expected = roi_stats(vol, plane_roi_of(a))
    assert expected.n_voxels > 10
    assert panel.histogram.counts.sum() == expected.n_voxels
    np.testing.assert_array_equal(panel.histogram.edges, expected.histogram_edges)
    assert f"n = {expected.n_voxels}" in panel.histogram.info.text()
    x, y = panel.histogram.curve.getData()
    assert len(x) == len(y) + 1  # step mode
    # removing the ROI clears its histogram
    ws.annotations.remove(a.id)
    qtbot.waitUntil(lambda: panel.view.rowCount() == 0)
    assert panel.histogram.annotation_id == ""


def test_signal_ratio_row(qtbot, ws, visits, panel):
    plane = {"origin": [0.0, 0.0, 0.0], "normal": [1.0, 0.0, 0.0]}
    ws.annotations.add(dataclasses.replace(roi(visits[0]), extra={"roi_role": "disc", "plane": plane}))
    ws.annotations.add(Annotation(id="", kind="ellipse", level="L4/L5", visit_id=visits[0], reader="r1",
                                  points=((0, 30, 20), (0, 33, 20), (0, 30, 22)), values={"mean": 1000.0},
                                  extra={"roi_role": "reference", "tissue": "csf", "plane": plane}))
    qtbot.waitUntil(lambda: ("L4/L5", "signal_ratio_csf") in grid(panel))
    assert grid(panel)[("L4/L5", "signal_ratio_csf")][0] == "0.82"


def test_screenshot(qtbot, ws, visits, panel, tmp_path, monkeypatch):
    panel.set_volume_for(lambda a: make_volume())
    for i, v in enumerate(visits):
        ws.annotations.add(heights(v, 10 - 0.4 * i, 9 - 0.5 * i, 8 - 0.3 * i))
        ws.annotations.add(iron(v, 14.0 if i < 2 else 19.0, 200.0 - 40 * i))
        ws.annotations.add(roi(v))
    ws.annotations.add(heights(visits[0], 10.3, 9.3, 8.2))
    qtbot.waitUntil(lambda: panel.view.rowCount() > 5)
    panel.view.setCurrentCell(panel.view.rowCount() - 1, panel.visit_columns[visits[1]])
    path = tmp_path / "measurement_panel.png"
    assert panel.grab().save(str(path))
    assert path.stat().st_size > 20_000


def test_visit_label_rename_updates_headers(qtbot, ws, visits, panel):
    ws.annotations.add(heights(visits[1], 9.5, 8.1, 7.6))
    ws.study.patients[0].visits[1].set_label("3 months")
    qtbot.waitUntil(lambda: panel.view.horizontalHeaderItem(4).text() == "3 months\n91 d")
    ws.undo()
    qtbot.waitUntil(lambda: panel.view.horizontalHeaderItem(4).text() == "3 m\n91 d")


def test_a_deleted_panel_never_breaks_model_edits(qtbot, ws, visits):
    from discviewer.ui.scores_panel import ScoresPanel

    p, s = MeasurementPanel(), ScoresPanel()
    p.set_workspace(ws)
    s.set_context(ws.annotations, visits[0], "L4/L5", "r1")
    import shiboken6

    shiboken6.delete(p)
    shiboken6.delete(s)
    a = ws.annotations.add(heights(visits[0], 10.0, 9.0, 8.0))  # must not raise
    ws.annotations.add(Annotation(id="", kind="score", level="L4/L5", visit_id=visits[0], reader="r1",
                                  values={"pfirrmann": 2}))
    ws.annotations.remove(a.id)
    qtbot.wait(20)  # a pending deferred refresh must not touch the deleted widget

"""measure_table: long rows, pivot, trend, SDC, derived ratios and iron comparability — hand-computed numbers."""
from __future__ import annotations

import math

import pytest

from discviewer.annotations import AnnotationSet
from discviewer.measure_table import (LONG_COLUMNS, SDC_FACTOR, Acquisition, MeasureTable, VisitInfo,
                                      iron_comparability, smallest_detectable_change, visit_infos)
from discviewer.study import Study
from discviewer.workspace.data import Annotation
from tests.core.test_study import cand


def three_visit_study() -> Study:
    return Study.from_scan([cand(study="1.1", series="1.1.1", date="20200101"),
                            cand(study="1.2", series="1.2.1", date="20200401"),   # 91 days: "3 m"
                            cand(study="1.3", series="1.3.1", date="20200701")])  # 182 days: "6 m"


V0, V1, V2 = "1.1", "1.2", "1.3"
SAG = {"origin": [0.0, 0.0, 0.0], "normal": [1.0, 0.0, 0.0]}


def ann(kind, level, visit, values, *, reader="r1", units=None, extra=None, points=(), method="", series="s"):
    return Annotation(id="", kind=kind, level=level, visit_id=visit, values=values, units=units or {},
                      reader=reader, method=method, extra=extra or {}, points=points, series_uid=series)


def heights(visit, a, m, p, reader="r1"):
    return ann("disc_height", "L4/L5", visit, {"DHa": a, "DHm": m, "DHp": p},
               units={"DHa": "mm", "DHm": "mm", "DHp": "mm"}, reader=reader, method="6-point")


def test_visit_infos_from_a_study():
    vis = visit_infos(three_visit_study())
    assert [(v.id, v.label, v.days, v.patient) for v in vis] == [(V0, "baseline", 0, "P1"), (V1, "3 m", 91, "P1"),
                                                                 (V2, "6 m", 182, "P1")]


def test_long_rows():
    s = AnnotationSet()
    r = s.add(ann("ruler", "L4/L5", V1, {"length_mm": 9.5}, units={"length_mm": "mm"}, method="2-point"))
    s.add(ann("score", "L4/L5", V0, {"pfirrmann": 3, "hiz": True, "note": "text", "bad": None}))
    s.add(ann("disc_label", "L4/L5", V0, {}, points=((0, 0, 0),)))
    t = MeasureTable(s, three_visit_study())
    ruler = [x for x in t.rows if x.kind == "ruler"]
    assert len(ruler) == 1
    row = ruler[0].as_dict()
    assert list(row) == list(LONG_COLUMNS)
    assert row == {"patient": "P1", "visit_id": V1, "visit_label": "3 m", "days": 91, "level": "L4/L5",
                   "reader": "r1", "measure": "length_mm", "value": 9.5, "unit": "mm", "method": "2-point",
                   "annotation_id": r.id, "time": r.modified}
    score = {x.measure: x.value for x in t.rows if x.kind == "score"}
    assert score == {"pfirrmann": 3.0, "hiz": 1.0}  # text/None values are not measures
    # an annotation of an unknown visit still gets a row, labelled by its id
    s.add(ann("ruler", "L3/L4", "9.9", {"length_mm": 1.0}))
    t = MeasureTable(s, three_visit_study())
    assert [(x.visit_label, x.days) for x in t.select(level="L3/L4")] == [("9.9", None)]


def test_measure_names_of_roi_roles_and_series():
    s = AnnotationSet()
    s.add(ann("ellipse", "L4/L5", V0, {"mean": 300.0}, extra={"roi_role": "disc", "series_role": "T2 sag"}))
    s.add(ann("ellipse", "L4/L5", V0, {"mean": 600.0}, extra={"roi_role": "reference", "tissue": "csf"}))
    s.add(ann("polygon", "L4/L5", V0, {"sd": 20.0}, extra={"roi_role": "background"}))
    t = MeasureTable(s, three_visit_study(), derived=False)
    assert t.measures() == ["mean (T2 sag)", "reference_csf_mean", "background_sd"]


def test_pivot_trend_and_percent_of_baseline():
    s = AnnotationSet()
    s.add(heights(V0, 10.0, 9.0, 8.0))
    s.add(heights(V1, 9.0, 8.1, 7.2))
    s.add(heights(V2, 8.0, 7.2, 6.0))
    s.add(heights(V0, 10.4, 9.4, 8.4, reader="r2"))
    t = MeasureTable(s, three_visit_study())
    assert t.readers() == ["r1", "r2"] and t.levels() == ["L4/L5"]

    p = t.pivot("r1")
    assert [v.label for v in p.visits] == ["baseline", "3 m", "6 m"]
    assert p.keys[:3] == [("L4/L5", "DHa"), ("L4/L5", "DHm"), ("L4/L5", "DHp")]
    assert p.cell("L4/L5", "DHm", V1).values == [8.1] and p.units["DHm"] == "mm"
    both = t.pivot(None).cell("L4/L5", "DHm", V0)
    assert both.values == [9.0, 9.4] and both.mean == pytest.approx(9.2) and both.n == 2

    assert t.trend("L4/L5", "DHm", "r1") == [(0, 9.0), (91, 8.1), (182, 7.2)]
    assert t.trend("L4/L5", "DHm") == [(0, pytest.approx(9.2)), (91, 8.1), (182, 7.2)]
    assert t.trend("L4/L5", "DHm", "r2") == [(0, 9.4)]
    assert t.trend("L5/S1", "DHm") == []

    # % of baseline per reader: 8.1/9 = 90 %, 7.2/9 = 80 %; DHp 6.0/8.0 = 75 %
    assert t.trend("L4/L5", "DHm_pct_baseline", "r1") == [(0, pytest.approx(100.0)), (91, pytest.approx(90.0)),
                                                          (182, pytest.approx(80.0))]
    assert t.trend("L4/L5", "DHp_pct_baseline", "r1")[-1] == (182, pytest.approx(75.0))
    pct = t.select(measure="DHm_pct_baseline", reader="r1", visit_id=V1)[0]
    assert pct.unit == "%" and pct.derived and pct.method.startswith("derived")


def test_smallest_detectable_change_formula():
    # pairs: group variances 2 and 0.5 → pooled 1.25 → SEM 1.118034, SDC = 1.96·√2·SEM = 3.0990321
    r = smallest_detectable_change([[10, 12], [8, 9]])
    assert r.sem == pytest.approx(math.sqrt(1.25)) and r.sdc95 == pytest.approx(3.0990321, abs=1e-6)
    assert (r.n_groups, r.n_values, r.df) == (2, 4, 2)
    assert SDC_FACTOR == pytest.approx(2.7718585)
    # unequal groups: SS 2 (1, 2, 3) + 2 (5, 7) over df 2 + 1 → SEM = √(4/3)
    assert smallest_detectable_change([[1, 2, 3], [5, 7], [4]]).sem == pytest.approx(math.sqrt(4 / 3))
    assert smallest_detectable_change([[1], []]) is None


def test_sdc_from_repeated_measurements_in_the_table():
    s = AnnotationSet()
    s.add(heights(V0, 10.0, 9.0, 8.0))
    s.add(heights(V0, 10.0, 9.6, 8.0))  # r1 repeats baseline
    s.add(heights(V1, 9.0, 8.0, 7.0))
    s.add(heights(V1, 9.0, 8.2, 7.0))  # r1 repeats 3 m
    s.add(heights(V1, 9.0, 8.8, 7.0, reader="r2"))
    t = MeasureTable(s, three_visit_study())
    assert t.repeat_groups("DHm", reader="r1") == [[9.0, 9.6], [8.0, 8.2]]
    intra = t.sdc("DHm", reader="r1")  # variances 0.18 and 0.02 → SEM √0.1
    assert intra.sem == pytest.approx(math.sqrt(0.1)) and intra.sdc95 == pytest.approx(SDC_FACTOR * math.sqrt(0.1))
    inter = t.sdc("DHm")  # 3 m group (8.0, 8.2, 8.8): SS 0.3467; baseline SS 0.18 → √(0.52667/3)
    assert inter.sem == pytest.approx(math.sqrt((0.18 + 0.346666667) / 3))
    assert t.sdc("DHa", reader="r1").sem == 0.0
    assert t.sdc("DHm", reader="r2") is None
    assert t.baseline_value("L4/L5", "DHm", "r1") == pytest.approx(9.3)


def test_signal_ratio_and_snr_on_the_same_slice():
    s = AnnotationSet()
    ring = ((0.0, 0.0, 10.0), (0.0, 5.0, 10.0), (0.0, 0.0, 14.0))  # in the plane x = 0
    d = s.add(ann("ellipse", "L4/L5", V0, {"mean": 300.0}, extra={"roi_role": "disc", "plane": SAG}, points=ring))
    s.add(ann("ellipse", "L4/L5", V0, {"mean": 600.0},
              extra={"roi_role": "reference", "tissue": "csf",
                     "plane": {"origin": [0.4, 9.0, 9.0], "normal": [-1.0, 0.0, 0.0]}},
              points=((0.4, 20, 10), (0.4, 22, 10), (0.4, 20, 12))))
    # another CSF ROI on the same slice but farther away: the nearest one is used
    s.add(ann("ellipse", "L4/L5", V0, {"mean": 900.0}, extra={"roi_role": "reference", "tissue": "csf", "plane": SAG},
              points=((0, 80, 10), (0, 82, 10), (0, 80, 12))))
    # a CSF ROI on another slice (x = 5) is not paired
    s.add(ann("ellipse", "L4/L5", V0, {"mean": 100.0}, extra={"roi_role": "reference", "tissue": "csf",
                                                               "plane": {"origin": [5, 0, 0], "normal": [1, 0, 0]}},
              points=((5, 1, 10), (5, 2, 10), (5, 1, 12))))
    # fat reference without a stored plane: its points' plane (x = 0.2) is the slice
    s.add(ann("polygon", "L4/L5", V0, {"mean": 1200.0}, extra={"roi_role": "reference", "tissue": "fat"},
              points=((0.2, -30, 0), (0.2, -25, 0), (0.2, -25, 5), (0.2, -30, 5))))
    # background noise SD 20
    s.add(ann("ellipse", "L4/L5", V0, {"mean": 15.0, "sd": 20.0}, extra={"roi_role": "background", "plane": SAG},
              points=((0, 100, 100), (0, 102, 100), (0, 100, 102))))
    # another reader's reference is not paired with r1's disc
    s.add(ann("ellipse", "L4/L5", V0, {"mean": 50.0}, reader="r2", extra={"roi_role": "reference", "plane": SAG},
              points=ring))
    t = MeasureTable(s, three_visit_study())
    got = {r.measure: r.value for r in t.rows if r.derived}
    assert got == {"signal_ratio_csf": pytest.approx(0.5), "signal_ratio_fat": pytest.approx(0.25),
                   "snr": pytest.approx(15.0)}
    ratio = t.select(measure="signal_ratio_csf")[0]
    assert ratio.annotation_id == d.id and ratio.level == "L4/L5" and ratio.reader == "r1" and d.id in ratio.sources
    t2 = MeasureTable(s, three_visit_study(), rayleigh_factor=0.655)
    assert t2.select(measure="snr")[0].value == pytest.approx(300.0 / (20.0 / 0.655))


def iron(visit, te, b0=3.0, voxel=(0.5, 0.5, 3.0), level="L4/L5", volume=120.0):
    extra = {"roi_kind": "ellipse"}
    if te is not None:
        extra["echo_time_ms"] = te
    if b0 is not None:
        extra["field_strength_t"] = b0
    if voxel is not None:
        extra["voxel_mm"] = list(voxel)
    return ann("iron", level, visit, {"void_volume_mm3": volume, "contrast_ratio": -0.6},
               units={"void_volume_mm3": "mm³"}, extra=extra)


def test_iron_comparability_warnings():
    s = AnnotationSet()
    s.add(iron(V0, 14.0))
    s.add(iron(V1, 19.0))
    s.add(iron(V2, 14.2))  # within tolerance of 14
    t = MeasureTable(s, three_visit_study())
    assert t.rows[0].acquisition == Acquisition(14.0, 3.0, (0.5, 0.5, 3.0))
    assert t.rows[0].acquisition.text() == "TE 14 ms · 3 T · 0.5×0.5×3 mm"
    issues = iron_comparability(t.rows)
    assert [i.text for i in issues] == ["iron values not comparable: TE 14 ms vs 19 ms (L4/L5: baseline vs 3 m)"]
    assert issues[0].values == (("baseline", "14 ms"), ("3 m", "19 ms"), ("6 m", "14.2 ms"))

    s2 = AnnotationSet()
    s2.add(iron(V0, 14.0, b0=1.5, voxel=(0.5, 0.5, 3.0)))
    s2.add(iron(V1, 14.0, b0=3.0, voxel=(0.7, 0.7, 4.0)))
    s2.add(iron(V0, 14.0, level="L5/S1"))
    s2.add(iron(V1, None, level="L5/S1"))  # TE unknown at 3 m
    texts = [i.text for i in iron_comparability(MeasureTable(s2, three_visit_study()).rows)]
    assert texts == ["iron values not comparable: field strength 1.5 T vs 3 T (L4/L5: baseline vs 3 m)",
                     "iron values not comparable: voxel size 0.5×0.5×3 mm vs 0.7×0.7×4 mm (L4/L5: baseline vs 3 m)",
                     "iron values: TE unknown for 3 m (L5/S1) — cannot check that the visits are comparable"]


def test_acquisition_callback_completes_what_extra_lacks():
    s = AnnotationSet()
    s.add(iron(V0, 14.0, b0=None, voxel=None))

    class Vol:  # duck-typed Volume
        spacing = (0.5, 0.5, 3.0)

        class info:
            echo_time = 99.0  # ignored: the annotation says 14
            field_strength = 1.5

    t = MeasureTable(s, three_visit_study(), acquisition_for=lambda a: Vol())
    assert t.rows[0].acquisition == Acquisition(14.0, 1.5, (0.5, 0.5, 3.0))
    t = MeasureTable(s, [VisitInfo(V0, "b", 0, "P1")], acquisition_for=lambda a: {"field_strength_t": 3})
    assert t.rows[0].acquisition.field_t == 3.0


def test_disc_height_indices_with_and_without_neighbouring_bodies():
    s = AnnotationSet()
    s.add(ann("disc_height", "L4/L5", V0, {"DHa": 12.0, "DHm": 10.0, "DHp": 8.0, "depth_mm": 40.0}))
    s.add(ann("disc_height", "L4/L5", V1, {"DHa": 9.0, "DHm": 8.0, "DHp": 7.0, "depth_mm": 40.0}))
    t = MeasureTable(s, three_visit_study())
    got = {(r.visit_id, r.measure): r.value for r in t.rows if r.derived}
    assert got[(V0, "dh_mean")] == pytest.approx(10.0)
    assert got[(V0, "dhi_farfan")] == pytest.approx((12 + 8) / 40)
    assert (V0, "dhi_adjacent") not in got  # no vertebral bodies measured
    assert got[(V1, "dhi_farfan_pct_baseline")] == pytest.approx(100 * (16 / 40) / (20 / 40))
    # with L4 (above) and L5 (below) on visit V0: DHI = 10 / mean(24, 26), Masuda-type = 2·30 / (72 + 78)
    s.add(ann("vb_height", "L4/L5", V0, {"VBHa": 25.0, "VBHm": 23.0, "VBHp": 24.0}, extra={"vertebra": "L4"}))
    s.add(ann("vb_height", "L4/L5", V0, {"VBHa": 27.0, "VBHm": 25.0, "VBHp": 26.0}, extra={"vertebra": "L5"}))
    t = MeasureTable(s, three_visit_study())
    rows = {(r.visit_id, r.measure): r for r in t.rows if r.derived}
    assert rows[(V0, "dhi_adjacent")].value == pytest.approx(10.0 / 25.0)
    assert rows[(V0, "dhi_masuda")].value == pytest.approx(60.0 / 150.0)
    assert rows[(V0, "dhi_adjacent")].method.startswith("derived: DHI = DH /")
    assert len(rows[(V0, "dhi_adjacent")].sources) == 3
    assert (V1, "dhi_adjacent") not in rows  # the bodies were measured on V0 only

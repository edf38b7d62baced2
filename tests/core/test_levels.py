"""levels: names in spinal order, labelling by order from an anchor, propagation across visits, disc_label records."""
from __future__ import annotations

import numpy as np
import pytest

from discviewer.annotations import AnnotationSet
from discviewer.levels import (DISC_LEVELS, disc_label_records, label_by_order, labels_of, level_at, propagate,
                               sort_levels, store_disc_labels, to_baseline)
from discviewer.linking import TransformRegistry, TransformSet
from discviewer.workspace.project import Workspace

# five lumbar disc centres (LPS mm) with a little lordosis: higher z = more superior
DISCS = {"L1/L2": (0.0, 10.0, 120.0), "L2/L3": (0.0, 6.0, 85.0), "L3/L4": (0.0, 3.0, 50.0),
         "L4/L5": (0.0, 4.0, 15.0), "L5/S1": (0.0, 12.0, -18.0)}


def rigid_z(deg, t):
    """Rotation about z by `deg` then translation `t` (a 4×4 visit → baseline)."""
    r = np.radians(deg)
    m = np.eye(4)
    m[:3, :3] = [[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]]
    m[:3, 3] = t
    return m


def test_levels_are_cranial_to_caudal_and_sortable():
    assert DISC_LEVELS[0] == "T11/T12" and DISC_LEVELS[1] == "T12/L1" and DISC_LEVELS[-1] == "L5/S1"
    assert sort_levels(["L5/S1", "", "custom", "L1/L2", "T12/L1", "L1/L2"]) == ["T12/L1", "L1/L2", "L5/S1",
                                                                               "custom", ""]


def test_label_by_order_from_the_lowest_disc_in_any_input_order():
    order = ["L3/L4", "L5/S1", "L1/L2", "L4/L5", "L2/L3"]  # shuffled
    pts = [DISCS[k] for k in order]
    assert label_by_order(pts, 1, "L5/S1") == order
    # anchored in the middle: above gets the levels above, below those below
    assert label_by_order(pts, 0, "L3/L4") == order
    # a different anchor label shifts every name
    assert label_by_order(pts, 1, "L4/L5") == ["L2/L3", "L4/L5", "T12/L1", "L3/L4", "L1/L2"]
    # negative anchor index counts from the end
    assert label_by_order(pts, -1, "L2/L3") == order


def test_label_by_order_other_axis_and_errors():
    pts = [DISCS[k] for k in DISCS]
    # with the axis pointing inferior the order flips
    assert label_by_order(pts, 0, "L5/S1", axis=(0, 0, -1)) == ["L5/S1", "L4/L5", "L3/L4", "L2/L3", "L1/L2"]
    with pytest.raises(ValueError, match="above L1/L2"):
        label_by_order(pts, 1, "L1/L2", levels=DISC_LEVELS[2:])  # one disc above L1/L2, the list starts there
    with pytest.raises(ValueError, match="below L2/L3"):
        label_by_order(pts, 0, "L2/L3")  # four discs below L2/L3, only three levels
    with pytest.raises(ValueError, match="unknown disc level"):
        label_by_order(pts, 0, "L6/S1")
    with pytest.raises(ValueError, match="ambiguous"):
        label_by_order([(0, 0, 10.0), (5, 0, 10.4)], 0, "L4/L5")
    with pytest.raises(ValueError, match="out of range"):
        label_by_order(pts, 5, "L4/L5")
    assert label_by_order([], 0, "L4/L5") == []


def test_propagate_through_a_rigid_transform_and_back():
    m = rigid_z(10.0, (3.0, -2.0, 5.0))  # visit → baseline
    ts = TransformSet("base")
    ts.set("fu", m)
    moved = propagate(DISCS, ts, "fu")
    inv = np.linalg.inv(m)
    for level, p in DISCS.items():
        expected = inv[:3, :3] @ np.array(p) + inv[:3, 3]
        np.testing.assert_allclose(moved[level], expected, atol=1e-9)
        # mapping the visit's point with visit_to_baseline gives the baseline point back
        np.testing.assert_allclose(m[:3, :3] @ np.array(moved[level]) + m[:3, 3], p, atol=1e-9)
    np.testing.assert_allclose(to_baseline(moved, ts, "fu")["L4/L5"], DISCS["L4/L5"], atol=1e-9)
    # hand-checked single value: pure translation
    ts.set("fu2", rigid_z(0.0, (1.0, 2.0, 3.0)))
    assert propagate({"L4/L5": (0, 0, 0)}, ts, "fu2") == {"L4/L5": (-1.0, -2.0, -3.0)}
    # the baseline (no transform) maps by identity
    assert propagate(DISCS, ts, "base") == DISCS


def test_propagate_uses_a_levels_own_transform_set():
    reg = TransformRegistry("base")
    reg.whole.set("fu", rigid_z(0.0, (0.0, 0.0, 10.0)))
    lvl = reg.add("L4/L5")
    lvl.set("fu", rigid_z(0.0, (0.0, 0.0, 4.0)))
    out = propagate({"L4/L5": (0, 0, 0), "L3/L4": (0, 0, 0)}, reg, "fu")
    assert out == {"L4/L5": (0.0, 0.0, -4.0), "L3/L4": (0.0, 0.0, -10.0)}


def test_disc_label_records_add_then_update_and_undo():
    ws = Workspace(user="r1")
    ann = ws.annotations
    other = ann.add(disc_label_records({"L4/L5": (9, 9, 9)}, "other")[0])
    recs = disc_label_records({"L4/L5": DISCS["L4/L5"], "L5/S1": DISCS["L5/S1"]}, "v1", ann, reader="r1")
    assert [r.level for r in recs] == ["L4/L5", "L5/S1"] and all(r.id == "" for r in recs)
    assert all(r.kind == "disc_label" and r.visit_id == "v1" and r.reader == "r1" for r in recs)
    with ws.history.group("Label discs"):
        stored = store_disc_labels(ann, recs)
    assert labels_of(ann, "v1") == {"L4/L5": DISCS["L4/L5"], "L5/S1": DISCS["L5/S1"]}
    assert labels_of(ann, "other") == {"L4/L5": (9.0, 9.0, 9.0)}
    # moving one label edits the same record
    recs2 = disc_label_records({"L4/L5": (1.0, 2.0, 3.0)}, "v1", ann)
    assert recs2[0].id == stored[0].id and recs2[0].reader == "r1"
    store_disc_labels(ann, recs2)
    assert len(ann.select(kind="disc_label", visit_id="v1")) == 2
    assert labels_of(ann, "v1")["L4/L5"] == (1.0, 2.0, 3.0)
    ws.undo()
    assert labels_of(ann, "v1")["L4/L5"] == DISCS["L4/L5"]
    ws.undo()  # the grouped step removes both labels at once
    assert labels_of(ann, "v1") == {} and other.id in ann


def test_level_at_nearest_disc():
    assert level_at((0, 5, 18), DISCS) == "L4/L5"
    assert level_at((0, 5, 33), DISCS) == "L3/L4"  # 17 mm from L3/L4, 18 from L4/L5
    assert level_at((0, 0, 0), {}) == ""
    assert level_at((0, 0, 300), DISCS, max_distance_mm=20) == ""
    # equidistant: the cranial level wins
    assert level_at((0, 0, 5), {"L5/S1": (0, 0, 0), "L4/L5": (0, 0, 10)}) == "L4/L5"
    ann = AnnotationSet()
    store_disc_labels(ann, disc_label_records(DISCS, "v"))
    assert level_at((0, 11, -15), labels_of(ann, "v")) == "L5/S1"

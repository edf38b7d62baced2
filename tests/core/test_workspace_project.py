"""workspace.project / history: every stored edit is undoable, audited, and survives to_data/from_data."""
from __future__ import annotations

import numpy as np
import pytest

from discviewer.annotations import AnnotationSet
from discviewer.linking import WHOLE_VOLUME, Provenance, TransformRegistry
from discviewer.study import Study
from discviewer.workspace.data import Annotation
from discviewer.workspace.history import EditHistory
from discviewer.workspace.project import Workspace, jsonable
from tests.core.test_study import cand


def two_visit_study() -> Study:
    cands = [cand(study="1.1", series="1.1.1", date="20200101"),
             cand(study="1.1", series="1.1.2", date="20200101", desc="T1 TSE SAG", tr=500.0, te=10.0, number=2),
             cand(study="1.2", series="1.2.1", date="20200401"),
             cand(study="1.2", series="1.2.2", date="20200401", desc="T1 TSE SAG", tr=500.0, te=10.0, number=2)]
    return Study.from_scan(cands)


def shift(x=0.0, y=0.0, z=0.0):
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


@pytest.fixture
def ws():
    w = Workspace(user="reader1", name="trial")
    w.attach_study(two_visit_study())
    return w


def test_every_edit_is_undoable_and_redoable(ws):
    study = ws.study
    base, fu = study.patients[0].visits
    entry = fu.series[1]
    assert ws.transforms.whole.baseline_id == base.id
    assert not ws.is_dirty

    fu.set_label("3 months")
    entry.set_role("T2 sag")
    ws.transforms.whole.set(fu.id, shift(2, 0, 0), Provenance("registration", {"metric": "MI"}))
    lvl = ws.transforms.add("L4/L5")
    lvl.set(fu.id, shift(3, 1, 0), "manual")
    a = ws.annotations.add(Annotation(id="", kind="ruler", level="L4/L5", visit_id=fu.id,
                                      points=((0.0, 0.0, 0.0), (0.0, 0.0, 9.5)), values={"length": 9.5}))
    ws.annotations.update(Annotation(**{**a.__dict__, "values": {"length": 9.7}}))
    ws.annotations.remove(a.id)
    assert ws.is_dirty
    assert len(ws.history.steps()) == 8

    # undo everything, newest first, checking each value goes back
    ws.undo()
    assert a.id in ws.annotations and ws.annotations.get(a.id).values == {"length": 9.7}
    ws.undo()
    assert ws.annotations.get(a.id).values == {"length": 9.5}
    ws.undo()
    assert a.id not in ws.annotations
    ws.undo()  # the level set started as a copy of the whole-volume set
    np.testing.assert_array_equal(lvl.get(fu.id), shift(2, 0, 0))
    assert lvl.provenance(fu.id).method == "registration"
    ws.undo()
    assert "L4/L5" not in ws.transforms
    ws.undo()
    np.testing.assert_array_equal(ws.transforms.whole.get(fu.id), np.eye(4))
    assert ws.transforms.whole.provenance(fu.id).method == "identity"
    ws.undo()
    assert entry.role_is_guessed
    ws.undo()
    assert fu.label == "3 m" and fu.label_is_default
    assert not ws.history.can_undo() and not ws.is_dirty  # back at the saved (empty) state

    # redo everything: the same final state, including provenance and the same level set object
    while ws.history.can_redo():
        ws.redo()
    assert fu.label == "3 months" and entry.role.value == "T2 sag"
    np.testing.assert_array_equal(ws.transforms.whole.get(fu.id), shift(2, 0, 0))
    assert ws.transforms.whole.provenance(fu.id) == Provenance("registration", {"metric": "MI"})
    assert ws.transforms["L4/L5"] is lvl and np.array_equal(lvl.get(fu.id), shift(3, 1, 0))
    assert a.id not in ws.annotations

    # the audit log has every edit, undo and redo, with who and old → new
    actions = [e.action for e in ws.audit]
    assert actions[:8] == ["visit label", "series role", "transform", "transform set added", "transform",
                           "annotation added", "annotation edited", "annotation removed"]
    assert actions[8:16] == ["undo " + x for x in reversed(actions[:8])]
    assert actions[16:] == ["redo " + x for x in actions[:8]]
    first = ws.audit[0]
    assert (first.user, first.target, first.old, first.new) == ("reader1", fu.id, "3 m", "3 months")
    assert ws.audit[2].target == f"{WHOLE_VOLUME}/{fu.id}" and "registration" in ws.audit[2].new
    assert ws.audit[0].time.endswith("Z")


def test_new_edit_after_undo_drops_redo_and_groups_are_one_step(ws):
    base, fu = ws.study.patients[0].visits
    with ws.history.group("Register visits"):
        ws.transforms.whole.set(fu.id, shift(1), "registration")
        ws.transforms.whole.set(fu.id, shift(2), "registration + manual")  # merged: first old, last new
        fu.set_label("FU1")
    assert ws.history.steps() == ["Register visits"]
    ws.undo()
    np.testing.assert_array_equal(ws.transforms.whole.get(fu.id), np.eye(4))
    assert fu.label == "3 m"
    ws.redo()
    np.testing.assert_array_equal(ws.transforms.whole.get(fu.id), shift(2))
    assert ws.transforms.whole.provenance(fu.id).method == "registration + manual"
    ws.undo()
    fu.set_label("other")
    assert not ws.history.can_redo()


def test_clean_state_follows_save_position(ws):
    _, fu = ws.study.patients[0].visits
    fu.set_label("A")
    ws.mark_saved()
    assert not ws.is_dirty
    fu.set_label("B")
    assert ws.is_dirty
    ws.undo()
    assert not ws.is_dirty  # back at the saved label
    ws.undo()
    assert ws.is_dirty  # before the save
    ws.mark_modified("reading")
    ws.redo()
    assert ws.is_dirty  # a change outside the history stays unsaved until saved


def test_round_trip_through_data_keeps_user_values_only(ws):
    base, fu = ws.study.patients[0].visits
    fu.set_label("3 months")
    fu.series[1].set_role("T2 sag")
    ws.transforms.whole.set(fu.id, shift(1, 2, 3), Provenance("registration", {"roi": (1.0, np.float64(2.5)),
                                                                                "n": np.int64(3)}))
    ws.transforms.add("L5/S1").set(fu.id, shift(0, 0, 1), "manual")
    ws.annotations.add(Annotation(id="a1", kind="point", points=((1.0, 2.0, 3.0),)))
    ws.reading["s1"] = {"cases": [1, 2]}
    ws.settings["link_level"] = "L5/S1"
    data = ws.to_data()
    assert data.visit_labels == {fu.id: "3 months"}  # the baseline's default label is not stored
    assert data.roles == {fu.series[1].key: "T2 sag"}
    assert [s.name for s in data.transform_sets] == [WHOLE_VOLUME, "L5/S1"]
    assert data.transform_sets[0].transforms[0].details == {"roi": [1.0, 2.5], "n": 3}
    data.validate()
    assert [p.id for p in data.patients] == ["P1"] and data.patients[0].visits[1].label == "3 months"

    # a new workspace from the data, attached to a freshly scanned study, restores everything silently
    ws2 = Workspace.from_data(data, user="reader2")
    study2 = two_visit_study()
    ws2.attach_study(study2)
    fu2 = study2.patients[0].visits[1]
    assert fu2.label == "3 months" and fu2.series[1].role.value == "T2 sag"
    np.testing.assert_array_equal(ws2.transforms.whole.get(fu2.id), shift(1, 2, 3))
    np.testing.assert_array_equal(ws2.transforms["L5/S1"].get(fu2.id), shift(0, 0, 1))
    assert ws2.annotations.get("a1").points == ((1.0, 2.0, 3.0),)
    assert ws2.reading == {"s1": {"cases": [1, 2]}} and ws2.settings == {"link_level": "L5/S1"}
    assert not ws2.is_dirty and not ws2.history.can_undo()
    assert len(ws2.audit) == len(ws.audit)  # loading adds nothing to the log


def test_values_for_missing_sources_are_kept(ws):
    _, fu = ws.study.patients[0].visits
    fu.set_label("FU")
    data = ws.to_data()
    ws2 = Workspace.from_data(data)
    ws2.attach_study(Study.from_scan([cand(study="1.1", series="1.1.1", date="20200101")]))  # visit 2 offline
    assert ws2.to_data().visit_labels == {fu.id: "FU"}
    assert ws2.to_data().patients[0].visits[0].id == "1.1"


def test_history_limit_and_standalone_models():
    reg = TransformRegistry("V0")
    notes = AnnotationSet()
    applied = []
    h = EditHistory(lambda c, fwd: applied.append((c.name, fwd)), limit=3)
    reg.changed.subscribe(h.record)
    notes.changed.subscribe(h.record)
    for i in range(5):
        reg.whole.set("V1", shift(i + 1), "manual")
    assert len(h.steps()) == 3
    h.undo()
    assert applied == [("V1", False)]
    with pytest.raises(ValueError, match="whole-volume"):
        reg.remove(WHOLE_VOLUME)


def test_jsonable_converts_numpy_and_drops_nan():
    assert jsonable({"a": np.float32(1.5), "b": np.arange(3), "c": (1, float("nan"))}) == \
        {"a": 1.5, "b": [0, 1, 2], "c": [1, None]}

"""hanging: protocol files (validation with file + field in errors), layouts, apply to patients."""
from __future__ import annotations

import json

import numpy as np
import pytest

from discviewer.hanging import (ProtocolError, apply, apply_layout, block_shape, builtin_protocols, load_protocol,
                                protocol_from_dict)
from discviewer.io.types import FrameRef, VolumeCandidate
from discviewer.resources import resources_dir
from discviewer.roles import Role
from discviewer.study import Study
from discviewer.volume import SeriesInfo
from tests.core.phantom_cache import phantom_scan

SAG = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
AX = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    _, result = phantom_scan(tmp_path_factory)
    return Study.from_scan(result).patients[0]


def proto(**kw):
    data = {"name": "p", "rows": [{"role": "T2 sag"}]}
    data.update(kw)
    return protocol_from_dict(data, "test.json")


def test_resources_dir_is_the_repo_folder_and_env_override(monkeypatch, tmp_path):
    d = resources_dir()
    assert (d / "hanging" / "default.json").is_file()
    monkeypatch.setenv("DISCVIEWER_RESOURCES", str(tmp_path))
    assert resources_dir() == tmp_path
    monkeypatch.setenv("DISCVIEWER_RESOURCES", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="missing"):
        resources_dir()


def test_builtin_protocols_load_default_first():
    protos = builtin_protocols()
    names = [p.name for p in protos]
    assert names[0] == "T2 sag across visits"
    assert "T2 and gradient echo" in names and len(names) >= 2
    t2gre = next(p for p in protos if p.name == "T2 and gradient echo")
    assert [s.role for s in t2gre.rows] == [Role.T2_SAG, Role.MULTI_ECHO_GRE]
    assert t2gre.rows[1].fallback == (Role.T2STAR_GRE,) and t2gre.rows[1].echo == "last"
    assert t2gre.path.endswith("t2_and_gre.json")


@pytest.mark.parametrize("data, field", [
    ({"rows": [{"role": "T2 sag"}]}, "name"),
    ({"name": "x", "rows": []}, "rows"),
    ({"name": "x", "rows": [{"role": "T2 sag", "plane": "axial"}]}, "rows[0].plane"),
    ({"name": "x", "rows": [{"role": "T2 sag"}, {"role": "T3 sag"}]}, "rows[1].role"),
    ({"name": "x", "rows": [{"role": "T2 sag", "fallback": ["T1 sag", "PD"]}]}, "rows[0].fallback[1]"),
    ({"name": "x", "rows": [{"role": "T2 sag", "echo": "middle"}]}, "rows[0].echo"),
    ({"name": "x", "rows": [{"plane": "sag"}]}, "rows[0].role"),
    ({"name": "x", "rows": [{"role": "T2 sag", "colour": "red"}]}, "rows[0].colour"),
    ({"name": "x", "layout": "3x3", "rows": [{"role": "T2 sag"}]}, "layout"),
    ({"name": "x", "layout": {"rows": 0, "cols": 3}, "rows": [{"role": "T2 sag"}]}, "layout.rows"),
    ({"name": "x", "visits": [], "rows": [{"role": "T2 sag"}]}, "visits"),
    ({"name": "x", "visits": ["baseline", 3], "rows": [{"role": "T2 sag"}]}, "visits[1]"),
    ({"name": "x", "version": 2, "rows": [{"role": "T2 sag"}]}, "version"),
    ({"name": "x", "rows": [{"role": "T2 sag"}], "extra": 1}, "extra"),
])
def test_validation_errors_name_file_and_field(tmp_path, data, field):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(data))
    with pytest.raises(ProtocolError) as exc:
        load_protocol(f)
    msg = str(exc.value)
    assert msg.startswith(f"{f}: {field}: "), msg


def test_unreadable_and_invalid_json(tmp_path):
    f = tmp_path / "broken.json"
    f.write_text('{"name": "x",\n  "rows": [}')
    with pytest.raises(ProtocolError, match=r"broken.json: not valid JSON \(line 2"):
        load_protocol(f)
    with pytest.raises(ProtocolError, match="nothere.json: cannot read"):
        load_protocol(tmp_path / "nothere.json")


@pytest.mark.parametrize("n, shape", [(1, (1, 1)), (3, (1, 3)), (4, (2, 3)), (6, (2, 3)), (7, (3, 3)), (10, (4, 3))])
def test_auto_block_shape(n, shape):
    assert block_shape(proto(), n) == shape


def test_default_protocol_on_phantom(patient):
    default = builtin_protocols()[0]
    layout = apply_layout(default, patient)
    assert (layout.rows, layout.cols) == (2, 3)
    vps = apply(default, patient)
    assert [(v.row, v.col) for v in vps] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert [v.visit.label for v in vps] == ["baseline", "3 m", "6 m", "12 m", "24 m"]
    for vp, visit in zip(vps, patient.visits):
        assert not vp.is_empty and vp.role is Role.T2_SAG and vp.plane == "sag"
        assert vp.entry is visit.series[0] and vp.candidate is visit.series[0].echoes[0]
        assert vp.title == f"{visit.label} · T2 sag"


def test_t2_and_gre_blocks_and_last_echo(patient):
    p = next(p for p in builtin_protocols() if p.name == "T2 and gradient echo")
    layout = apply_layout(p, patient)
    assert (layout.rows, layout.cols) == (4, 3) and not layout.left_out
    gre = [v for v in layout.viewports if v.spec_index == 1]
    assert [(v.row, v.col) for v in gre] == [(2, 0), (2, 1), (2, 2), (3, 0), (3, 1)]
    assert all(v.role is Role.MULTI_ECHO_GRE and v.echo_time == 24.0 for v in gre)
    assert gre[0].title == "baseline · GRE · TE 24 ms"
    assert all(v.note == "" for v in layout.viewports)  # same TE everywhere: no warning


def test_visit_selection_fallback_and_empty_slots(patient):
    # drop the T2 of the 6 m visit: fallback to T1 there; a role nobody has gives empty slots with reasons
    v6 = patient.visit("6 m")
    v6.series[0].set_role("other")
    try:
        p = proto(visits=["first", "6 m", "last", "30 m"],
                  rows=[{"role": "T2 sag", "fallback": ["T1 sag"]}, {"role": "STIR sag"}])
        vps = apply(p, patient)
        assert [(v.row, v.col) for v in vps] == [(0, c) for c in range(3)] + [(1, 0)] + \
            [(2, c) for c in range(3)] + [(3, 0)]
        t2row = vps[:4]
        assert [v.visit.label if v.visit else None for v in t2row] == ["baseline", "6 m", "24 m", None]
        assert t2row[1].role is Role.T1_SAG and t2row[1].entry is v6.series[1]
        assert t2row[1].title == "6 m · T1 sag (no T2 sag)" and "fallback" in t2row[1].note
        assert t2row[3].is_empty and t2row[3].reason == "no visit labelled '30 m'"
        stir = vps[4:]
        assert all(v.is_empty and v.candidate is None for v in stir)
        assert stir[1].reason == "no STIR sag in 6 m"
    finally:
        v6.series[0].reset_role()
    assert apply(proto(visits=["6 m"]), patient)[0].role is Role.T2_SAG


def test_explicit_layout_leaves_out_what_does_not_fit(patient):
    p = proto(layout={"rows": 1, "cols": 2}, rows=[{"role": "T2 sag"}, {"role": "T1 sag"}])
    layout = apply_layout(p, patient)
    assert (layout.rows, layout.cols) == (1, 2)
    assert [v.visit.label for v in layout.viewports] == ["baseline", "3 m"]
    assert len(layout.left_out) == 8


def test_echo_index_clamped_and_te_mismatch_noted():
    def c(study, date, te, series):
        info = SeriesInfo(patient_id="P", study_uid=study, study_date=date, series_uid=series, series_number=5,
                          series_description="ME-GRE", sequence_name="*fl2d", repetition_time=700.0, echo_time=te)
        return VolumeCandidate(info=info, frames=[FrameRef("f")], rows=4, columns=4, spacing=(1, 1, 1),
                               affine=np.eye(4), orientation=SAG)

    cands = [c("1.1", "20200101", te, "1.1.5") for te in (5.0, 10.0, 15.0)] + \
            [c("1.2", "20200701", te, "1.2.5") for te in (5.0, 12.0)]
    patient = Study.from_scan(cands).patients[0]
    vps = apply(proto(rows=[{"role": "multi-echo GRE", "echo": 2}]), patient)
    assert [v.echo_time for v in vps] == [15.0, 12.0]
    assert "echo 2 not acquired" in vps[1].note and "showing echo 1" in vps[1].note
    assert all("TE differs between visits (12, 15 ms)" in v.note for v in vps)
    assert [v.echo_index for v in apply(proto(rows=[{"role": "multi-echo GRE", "echo": -2}]), patient)] == [1, 0]


def test_plane_preference_and_repeated_series():
    def c(series, number, ori, te):
        info = SeriesInfo(patient_id="P", study_uid="1.1", study_date="20200101", series_uid=series,
                          series_number=number, series_description="ME-GRE", sequence_name="*fl2d",
                          repetition_time=700.0, echo_time=te)
        return VolumeCandidate(info=info, frames=[FrameRef("f")], rows=4, columns=4, spacing=(1, 1, 1),
                               affine=np.eye(4), orientation=ori)

    cands = [c(s, n, o, te) for s, n, o in (("a", 3, SAG), ("b", 4, AX), ("c", 2, SAG)) for te in (5.0, 10.0)]
    patient = Study.from_scan(cands).patients[0]
    sag = apply(proto(rows=[{"role": "multi-echo GRE", "plane": "sag"}]), patient)[0]
    ax = apply(proto(rows=[{"role": "multi-echo GRE", "plane": "ax"}]), patient)[0]
    cor = apply(proto(rows=[{"role": "multi-echo GRE", "plane": "cor"}]), patient)[0]
    assert sag.entry.series_uid == "a"  # sagittal ones preferred, the repeat (higher number) wins
    assert ax.entry.series_uid == "b"
    assert cor.entry.series_uid == "b" and cor.plane == "cor"  # none acquired coronal: highest number overall

"""study: Study → Patient → Visit → SeriesEntry from a ScanResult (phantom, handcrafted, real)."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from discviewer.events import Change
from discviewer.io.types import FrameRef, ScanResult, VolumeCandidate
from discviewer.roles import Role
from discviewer.study import Study, default_visit_label
from discviewer.volume import SeriesInfo
from tests.core.phantom_cache import phantom_scan

SAG = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
COR = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
AX = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def cand(study="1.2.3", series="1.2.3.1", date="20200101", pid="P1", desc="T2 TSE SAG", seq="*tse2d1_17",
         tr=4000.0, te=100.0, number=1, ori=SAG, part="MAGNITUDE", localizer=False, n=3):
    info = SeriesInfo(patient_id=pid, study_uid=study, study_date=date, series_uid=series, series_number=number,
                      series_description=desc, sequence_name=seq, repetition_time=tr, echo_time=te,
                      complex_part=part, modality="MR")
    return VolumeCandidate(info=info, frames=[FrameRef(f"/x/{series}/{te}/{i}") for i in range(n)], rows=8,
                           columns=8, spacing=(1.0, 1.0, 4.0), affine=np.eye(4), orientation=ori,
                           is_localizer=localizer)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    folder, result = phantom_scan(tmp_path_factory)
    truth = json.loads((folder / "truth.json").read_text())
    return result, truth


def test_phantom_visits_days_labels_and_roles(phantom):
    result, truth = phantom
    study = Study.from_scan(result)
    assert len(study.patients) == 1
    patient = study.patients[0]
    tv = truth["patients"][0]["visits"]
    assert [v.label for v in patient.visits] == [v["label"] for v in tv] == ["baseline", "3 m", "6 m", "12 m", "24 m"]
    assert [v.days for v in patient.visits] == [v["days_since_baseline"] for v in tv]
    assert [v.id for v in patient.visits] == [v["study_uid"] for v in tv]
    assert all(v.label_is_default for v in patient.visits)
    for visit in patient.visits:
        assert [e.role for e in visit.series] == [Role.T2_SAG, Role.T1_SAG, Role.MULTI_ECHO_GRE], visit.label
        assert all(e.role_is_guessed and e.plane == "sag" for e in visit.series)
        gre = visit.series[2]
        assert gre.n_echoes == 5 and gre.echo_times == [4.0, 9.0, 14.0, 19.0, 24.0]
        assert gre.candidate().info.echo_time == 4.0 and gre.candidate(-1).info.echo_time == 24.0
        assert gre.candidate(2).info.echo_time == 14.0
        with pytest.raises(IndexError, match="5 echo"):
            gre.candidate(5)
        assert {c.info.series_uid for c in gre.echoes} == {gre.series_uid}
        assert visit.entries("T2 sag") == [visit.series[0]]


def test_candidate_order_does_not_matter(phantom):
    result, _ = phantom
    shuffled = list(result.series)
    random.Random(3).shuffle(shuffled)
    a, b = Study.from_scan(result), Study.from_scan(ScanResult(series=shuffled))
    for va, vb in zip(a.patients[0].visits, b.patients[0].visits):
        assert va.id == vb.id and va.label == vb.label
        assert [(e.key, e.echo_times, e.role) for e in va.series] == [(e.key, e.echo_times, e.role) for e in vb.series]


@pytest.mark.parametrize("days, label", [
    (0, "baseline"), (3, "day 3"), (45, "day 45"), (59, "day 59"), (75, "2 m"), (76, "3 m"), (90, "3 m"),
    (104, "3 m"), (150, "5 m"), (153, "6 m"), (193, "6 m"), (207, "6 m"), (300, "10 m"), (330, "12 m"),
    (363, "12 m"), (419, "12 m"), (421, "14 m"), (548, "18 m"), (719, "24 m"), (839, "24 m"),
    (900, "30 m"), (1000, "36 m"), (None, ""),
])
def test_default_visit_label(days, label):
    assert default_visit_label(days) == label


def test_same_day_studies_are_separate_visits_with_unique_labels():
    cands = [cand(study="1.2.10", series="1.2.10.1"), cand(study="1.2.9", series="1.2.9.1"),
             cand(study="1.2.11", series="1.2.11.1", date="20200401"),
             cand(study="1.2.12", series="1.2.12.1", date="")]
    p = Study.from_scan(ScanResult(series=cands)).patients[0]
    # same date: ordered by UID compared as numbers (9 < 10), undated last
    assert [v.id for v in p.visits] == ["1.2.9", "1.2.10", "1.2.11", "1.2.12"]
    assert [v.days for v in p.visits] == [0, 0, 91, None]
    assert [v.label for v in p.visits] == ["baseline", "baseline (2)", "3 m", "visit 4"]
    assert p.baseline is p.visits[0]
    assert p.visit("3 M") is p.visits[2] and p.visit("1.2.10") is p.visits[1]


def test_patients_are_separate_and_sorted():
    cands = [cand(pid="B", study="2.1", series="2.1.1"), cand(pid="A", study="1.1", series="1.1.1", date="20210101")]
    study = Study.from_scan(ScanResult(series=cands))
    assert [p.id for p in study.patients] == ["A", "B"]
    assert all(p.visits[0].label == "baseline" for p in study.patients)


def test_entry_grouping_echoes_parts_planes_and_repeats():
    cands = [
        cand(series="s.gre", desc="ME-GRE", seq="*fl2d3", tr=700, te=te, number=3) for te in (14.0, 4.0, 9.0)
    ] + [
        cand(series="s.gre", desc="ME-GRE", seq="*fl2d3", tr=700, te=te, number=3, part="PHASE") for te in (4.0, 9.0)
    ] + [
        cand(series="s.loc", desc="localizer", seq="*fl2d1", tr=8, te=4, number=1, ori=o, localizer=True)
        for o in (SAG, COR, AX)
    ] + [
        cand(series="s.t2", number=2), cand(series="s.t2", number=2),  # same TE twice (split acquisitions)
    ]
    visit = Study.from_scan(cands).patients[0].visits[0]
    gre = [e for e in visit.series if e.series_uid == "s.gre"]
    assert len(gre) == 2
    mag = next(e for e in gre if e.info.complex_part == "MAGNITUDE")
    assert mag.echo_times == [4.0, 9.0, 14.0] and mag.role is Role.MULTI_ECHO_GRE
    assert next(e for e in gre if e.info.complex_part == "PHASE").echo_times == [4.0, 9.0]
    loc = [e for e in visit.series if e.series_uid == "s.loc"]
    assert sorted(e.plane for e in loc) == ["ax", "cor", "sag"]
    assert all(e.role is Role.LOCALIZER for e in loc)
    t2 = [e for e in visit.series if e.series_uid == "s.t2"]
    assert len(t2) == 2 and all(e.n_echoes == 1 and e.role is Role.T2_SAG for e in t2)
    assert len({e.key for e in visit.series}) == len(visit.series)
    # series-number order
    assert [e.series_number for e in visit.series] == sorted(e.series_number for e in visit.series)


def test_label_edit_emits_only_on_change_and_study_relays():
    study = Study.from_scan([cand(), cand(study="1.2.4", series="1.2.4.1", date="20200701")])
    visit = study.patients[0].visits[1]
    assert visit.label == "6 m"
    seen, relayed = [], []
    visit.changed.subscribe(seen.append)
    study.changed.subscribe(relayed.append)
    assert visit.set_label("  follow-up 1 ") is True
    assert visit.label == "follow-up 1" and not visit.label_is_default
    assert visit.set_label("follow-up 1") is False
    assert visit.set_label(None) is True
    assert visit.label == "6 m" and visit.label_is_default
    assert visit.set_label("") is False
    assert seen == [Change(visit, "label", "6 m", "follow-up 1"), Change(visit, "label", "follow-up 1", "6 m")]
    assert relayed == seen
    study.close()
    visit.set_label("x")
    assert len(relayed) == 2 and len(seen) == 3


def test_role_correction_emits_only_on_change():
    study = Study.from_scan([cand(desc="sag", seq="", tr=None, te=None)])
    entry = study.patients[0].visits[0].series[0]
    assert entry.role is Role.OTHER and entry.role_reason
    got = []
    study.changed.subscribe(got.append)
    assert entry.set_role("stir sag") is True
    assert entry.role is Role.STIR_SAG and not entry.role_is_guessed
    assert entry.set_role(Role.STIR_SAG) is False
    with pytest.raises(ValueError, match="unknown role"):
        entry.set_role("T2 cor")
    assert entry.role is Role.STIR_SAG
    assert entry.reset_role() is True and entry.role_is_guessed
    assert got == [Change(entry, "role", Role.OTHER, Role.STIR_SAG), Change(entry, "role", Role.STIR_SAG, Role.OTHER)]


@pytest.mark.realdata
def test_real_decubitus_three_same_day_studies(real_data):
    from discviewer.io import scan

    study = Study.from_scan(scan(real_data / "dcm_qa_decubitus"))
    assert len(study.patients) == 1
    visits = study.patients[0].visits
    assert [v.label for v in visits] == ["baseline", "baseline (2)", "baseline (3)"]
    assert [v.days for v in visits] == [0, 0, 0]
    for v in visits:
        assert len(v.series) == 1
        e = v.series[0]
        assert e.plane == "sag" and e.role is Role.T1_SAG, e.role_reason
        assert e.candidate().slice_count == 35

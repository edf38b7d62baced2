"""Phantom → DICOM → scan → load gives back the generator's arrays and affines exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest

from discviewer.io import load, scan
from discviewer.phantom import generate_study, write_study


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    path = write_study(out, patients=1, seed=7, size="small")
    return path, generate_study(patients=1, seed=7, size="small")


def test_round_trip_arrays_and_affines(written):
    path, study = written
    result = scan(path)
    assert [p.path.rsplit("/", 1)[-1] for p in result.problems] == ["truth.json"]  # reported, not an image
    by_series: dict[str, list] = {}
    for c in result.series:
        by_series.setdefault(c.info.series_uid, []).append(c)
    n = 0
    for patient in study.patients:
        for visit in patient.visits:
            for series in visit.series:
                cands = sorted(by_series[series.uid], key=lambda c: c.echo_time)
                assert len(cands) == len(series.arrays), series.description
                for cand, expected in zip(cands, series.arrays):
                    assert not cand.warnings, cand.warnings
                    v = load(cand)
                    assert v.array.dtype == expected.dtype
                    assert np.array_equal(v.array, expected), (visit.label, series.description, cand.echo_time)
                    np.testing.assert_allclose(v.affine, series.affine, rtol=0, atol=1e-9)
                    assert cand.info.study_uid == visit.study_uid
                    assert cand.info.frame_of_reference_uid == visit.frame_uid
                    n += 1
    assert n >= 5 * (2 + 4)  # 5 visits × (T2 + T1 + ≥ 4 echoes)


def test_visits_group_as_one_patient_with_five_studies(written):
    path, study = written
    (patient,) = scan(path).patients
    assert len(patient.studies) == 5
    dates = [s.date for s in patient.studies]
    assert dates == sorted(dates) and len(set(dates)) == 5


def test_truth_json_matches_memory(written):
    path, study = written
    truth = json.loads((path / "truth.json").read_text())
    assert "not clinical" in json.dumps(truth).lower() or "synthetic" in json.dumps(truth).lower()
    (tp,) = truth["patients"]
    for tv, visit in zip(tp["visits"], study.patients[0].visits):
        np.testing.assert_allclose(np.array(tv["visit_to_baseline"]), visit.visit_to_baseline, atol=1e-9)

"""Rigid registration (discviewer.registration): phantom visits, real MR with a known transform,
metrics, errors, cancel/progress. Timings and TREs are printed (see them with `pytest -s`)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from discviewer.registration import (RegistrationCancelled, RegistrationError, choose_metric, euler_matrix,
                                     register_rigid)
from discviewer.reslice import resample_volume
from discviewer.volume import Volume

FOLLOW_UPS = (1, 2)


@pytest.fixture(scope="module")
def patient():
    from discviewer.phantom import generate_study

    return generate_study(size="small", seed=0).patients[0]


def _box_corners(box) -> np.ndarray:
    x0, y0, z0, x1, y1, z1 = box
    return np.array([[x, y, z, 1.0] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)]).T


def tre(matrix: np.ndarray, truth: np.ndarray, box) -> float:
    """RMS over the 8 box corners of ||matrix @ p − truth @ p|| (mm)."""
    c = _box_corners(box)
    return float(np.sqrt(((((matrix - truth) @ c)[:3]) ** 2).sum(0).mean()))


def disc_roi(visit, level: str = "L4/L5") -> tuple[float, ...]:
    c = np.asarray(visit.truth["discs"][level]["centre"], float)
    half = np.array([20.0, 25.0, 25.0])  # ± 20 mm left-right, ± 25 mm in the sagittal plane
    return (*(c - half), *(c + half))


def _report(label: str, res, err: float) -> None:
    print(f"\n[registration] {label}: metric={res.metric} TRE={err:.3f} mm time={res.seconds:.2f} s "
          f"iterations={res.iterations} evaluations={[lv['evaluations'] for lv in res.levels]} "
          f"metric {res.initial_metric:.3f} -> {res.final_metric:.3f}")


# ---------------------------------------------------------------- phantom: follow-up → baseline

@pytest.mark.parametrize("k", FOLLOW_UPS)
def test_phantom_disc_roi_registration(patient, k):
    base, visit = patient.visits[0], patient.visits[k]
    fixed, moving = base.series[0].volume(0), visit.series[0].volume(0)
    truth = np.linalg.inv(np.asarray(visit.visit_to_baseline))  # baseline → visit
    roi = disc_roi(base)
    assert tre(np.eye(4), truth, roi) > 2.0  # the visits really are misaligned
    for metric in ("ncc", "mi"):
        res = register_rigid(fixed, moving, roi=roi, metric=metric)
        err = tre(res.matrix, truth, roi)
        _report(f"phantom V{k + 1}→baseline L4/L5 ROI", res, err)
        assert err < 0.5
        assert res.roi == roi and res.metric == metric
        assert res.final_metric > res.initial_metric
        np.testing.assert_allclose(res.moving_to_fixed, np.linalg.inv(res.matrix))


@pytest.mark.parametrize("k", FOLLOW_UPS)
def test_phantom_whole_volume_registration(patient, k):
    # The degenerated discs lose < 0.1 mm of height by these visits, so the rigid truth holds to
    # well below the tolerance over the whole spine; the error is measured on the L4/L5 box.
    base, visit = patient.visits[0], patient.visits[k]
    fixed, moving = base.series[0].volume(0), visit.series[0].volume(0)
    truth = np.linalg.inv(np.asarray(visit.visit_to_baseline))
    res = register_rigid(fixed, moving)  # metric="auto": same sequence → NCC
    err = tre(res.matrix, truth, disc_roi(base))
    _report(f"phantom V{k + 1}→baseline whole volume", res, err)
    assert res.metric == "ncc" and res.roi is None
    assert err < 0.5


def test_phantom_cross_sequence_mi(patient):
    """T1 follow-up onto the T2 baseline: MI (the 'auto' choice) handles a different contrast."""
    base, visit = patient.visits[0], patient.visits[1]
    fixed = base.series[0].volume(0)  # T2
    moving = visit.series[1].volume(0)  # T1
    assert choose_metric(fixed, moving) == "mi"
    truth = np.linalg.inv(np.asarray(visit.visit_to_baseline))
    roi = disc_roi(base)
    res = register_rigid(fixed, moving, roi=roi)
    err = tre(res.matrix, truth, roi)
    _report("phantom V2 T1→baseline T2 L4/L5 ROI", res, err)
    assert res.metric == "mi"
    assert err < 0.5


# ---------------------------------------------------------------- real MR, known transform

def _real_pair(real_data, *, gain: float, noise: float, axis, translation, seed: int = 1):
    from discviewer.io import load, scan

    fixed = load(scan(real_data / "dcm_qa_decubitus" / "HFS").series[0])
    centre = fixed.index_to_patient((np.array(fixed.shape[::-1]) - 1) / 2.0)
    ax = np.asarray(axis, float) / np.linalg.norm(axis)
    # rotation of 3° about `ax` (Rodrigues) through the volume centre, translation of 4 mm
    k = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    th = np.radians(3.0)
    r = np.eye(3) + np.sin(th) * k + (1 - np.cos(th)) * k @ k
    t = np.asarray(translation, float)
    t = 4.0 * t / np.linalg.norm(t)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = centre + t - r @ centre
    # moving(x) = fixed(m x): the fixed point y is found at x = inv(m) y in the moving volume
    moved = resample_volume(fixed, fixed.affine, fixed.shape, transform=m)
    rng = np.random.default_rng(seed)
    arr = np.clip(moved.array * gain + rng.normal(0.0, noise, moved.shape), 0, None).astype(np.float32)
    moving = Volume(arr, moved.affine, info=dataclasses.replace(fixed.info, series_description="moved copy"))
    box = (*(centre - [40.0, 60.0, 60.0]), *(centre + [40.0, 60.0, 60.0]))
    return fixed, moving, np.linalg.inv(m), box


@pytest.mark.realdata
def test_real_known_transform_recovered_with_mi(real_data):
    fixed, moving, truth, box = _real_pair(real_data, gain=1.7, noise=20.0, axis=(1, 0.4, 0.3),
                                           translation=(1.5, 3, -2.2))
    assert tre(np.eye(4), truth, box) > 4.0
    res = register_rigid(fixed, moving, metric="mi")
    err = tre(res.matrix, truth, box)
    _report("real HFS T1 moved 3°/4 mm, gain 1.7 + noise", res, err)
    assert err < 0.5


@pytest.mark.realdata
def test_real_same_sequence_ncc_and_mi_both_work(real_data):
    fixed, moving, truth, box = _real_pair(real_data, gain=1.0, noise=10.0, axis=(1, 0, 0),
                                           translation=(0, 3, -2.6), seed=2)
    for metric in ("ncc", "mi"):
        res = register_rigid(fixed, moving, metric=metric)
        err = tre(res.matrix, truth, box)
        _report(f"real HFS T1 moved in-plane, same sequence, {metric}", res, err)
        assert res.metric == metric
        assert err < 0.5


# ---------------------------------------------------------------- API behaviour

def test_choose_metric_rule(patient):
    v = patient.visits
    assert choose_metric(v[0].series[0].volume(0), v[1].series[0].volume(0)) == "ncc"  # T2 / T2
    assert choose_metric(v[0].series[0].volume(0), v[1].series[1].volume(0)) == "mi"  # T2 / T1


def test_euler_matrix_is_a_rotation():
    r = euler_matrix(0.1, -0.2, 0.3)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(r), 1.0)


def test_no_overlap_raises_naming_both_series(patient):
    fixed = patient.visits[0].series[0].volume(0)
    far = fixed.affine.copy()
    far[:3, 3] += [0.0, 1000.0, 0.0]
    moving = Volume(fixed.array, far, info=dataclasses.replace(fixed.info, series_description="FAR AWAY"))
    with pytest.raises(RegistrationError) as exc:
        register_rigid(fixed, moving)
    msg = str(exc.value)
    assert "overlap" in msg and "FAR AWAY" in msg and fixed.info.series_description in msg


def test_roi_outside_fixed_raises(patient):
    fixed = patient.visits[0].series[0].volume(0)
    with pytest.raises(RegistrationError):
        register_rigid(fixed, fixed, roi=(900, 900, 900, 950, 950, 950))


def test_cancel_raises_and_progress_is_reported(patient):
    fixed, moving = patient.visits[0].series[0].volume(0), patient.visits[1].series[0].volume(0)
    roi = disc_roi(patient.visits[0])
    calls: list[tuple[int, int]] = []
    res = register_rigid(fixed, moving, roi=roi, progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1]
    done = [d for d, _ in calls]
    assert done == sorted(done)

    polls = [0]

    def cancel():
        polls[0] += 1
        return polls[0] > 20

    with pytest.raises(RegistrationCancelled):
        register_rigid(fixed, moving, roi=roi, cancel=cancel)
    assert polls[0] == 21
    assert res.iterations > 0 and res.settings["metric"] == "ncc"


def test_max_seconds_keeps_best_so_far(patient):
    fixed, moving = patient.visits[0].series[0].volume(0), patient.visits[1].series[0].volume(0)
    res = register_rigid(fixed, moving, max_seconds=0.0)
    assert res.stopped == "max_seconds"
    assert res.matrix.shape == (4, 4)
    np.testing.assert_allclose(res.matrix[:3, :3] @ res.matrix[:3, :3].T, np.eye(3), atol=1e-9)

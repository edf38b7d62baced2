"""linking: per-visit transforms, cursor → slice mapping, gain-independent window/level."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from discviewer.events import Change
from discviewer.io.types import FrameRef, VolumeCandidate
from discviewer.linking import (IntensityNormalizer, Provenance, TransformSet, contains, index_to_patient,
                                map_cursor, nearest_slice, patient_to_index, plane_axis)
from discviewer.volume import SeriesInfo, Volume
from tests.core.phantom_cache import phantom_scan
from tests.synthetic import make_affine


def rigid(rx_deg, ry_deg, rz_deg, t):
    rx, ry, rz = np.radians([rx_deg, ry_deg, rz_deg])
    Rx = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    Ry = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    Rz = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = Rz @ Ry @ Rx
    m[:3, 3] = t
    return m


# anatomy in BASELINE space: three blobs of different brightness (LPS mm)
BLOBS = [((2.0, -10.0, 30.0), 1000.0), ((-8.0, 5.0, 10.0), 700.0), ((6.0, 12.0, -5.0), 400.0)]
SIGMA = 3.0


def anatomy(points_baseline):
    out = np.zeros(points_baseline.shape[:-1])
    for c, amp in BLOBS:
        d2 = np.sum((points_baseline - np.asarray(c)) ** 2, axis=-1)
        out += amp * np.exp(-d2 / (2 * SIGMA ** 2))
    return out


def sample_volume(affine, shape, visit_to_baseline):
    """A visit volume: each voxel shows the anatomy at visit_to_baseline · (its LPS position)."""
    k, r, c = np.indices(shape)
    ijk = np.stack([c, r, k], axis=-1).astype(float)
    lps_visit = index_to_patient(affine, ijk)
    lps_base = lps_visit @ visit_to_baseline[:3, :3].T + visit_to_baseline[:3, 3]
    return Volume(anatomy(lps_base).astype(np.float32), affine)


@pytest.fixture(scope="module")
def two_visits():
    T = rigid(8.0, -5.0, 12.0, (4.0, -7.5, 3.0))  # visit → baseline
    base = sample_volume(make_affine("sagittal", (1.0, 1.0, 2.0), (20.0, -40.0, 50.0)), (22, 90, 70), np.eye(4))
    # the follow-up was acquired differently: axial, other spacing and origin
    visit = sample_volume(make_affine("axial", (1.2, 1.1, 1.5), (-30.0, -45.0, -30.0)), (60, 70, 60), T)
    ts = TransformSet(baseline_id="V0")
    ts.set("V1", T, Provenance("synthetic", {"note": "known rigid"}))
    return base, visit, ts, T


def value_at(vol, point):
    ijk = patient_to_index(vol, point)
    return float(map_coordinates(vol.array, [[ijk[2]], [ijk[1]], [ijk[0]]], order=3)[0])


def test_identity_by_default():
    ts = TransformSet()
    p = np.array([1.0, 2.0, 3.0])
    assert np.array_equal(ts.to_visit(p, "any"), p) and np.array_equal(ts.to_baseline(p, "any"), p)
    assert np.array_equal(ts.get("any"), np.eye(4)) and not ts.is_set("any")
    assert ts.provenance("any").method == "identity"


def test_point_at_baseline_maps_to_the_same_anatomy(two_visits):
    base, visit, ts, T = two_visits
    for centre, amp in BLOBS:
        assert value_at(base, centre) == pytest.approx(amp, rel=0.03)
        p = ts.to_visit(centre, "V1")
        assert value_at(visit, p) == pytest.approx(amp, rel=0.03)
        # the blob's intensity-weighted centroid in the visit volume is where the cursor lands
        ijk = patient_to_index(visit, p)
        lo = np.maximum(np.floor(ijk).astype(int) - 4, 0)
        hi = np.floor(ijk).astype(int) + 5
        sub = visit.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]].astype(float)
        k, r, c = np.indices(sub.shape)
        centroid = np.array([(c * sub).sum(), (r * sub).sum(), (k * sub).sum()]) / sub.sum() + lo
        np.testing.assert_allclose(index_to_patient(visit, centroid), p, atol=0.6)
        # and back again
        np.testing.assert_allclose(ts.to_baseline(p, "V1"), centre, atol=1e-9)
    # the wrong direction lands elsewhere (this test can fail)
    wrong = ts.to_baseline(BLOBS[0][0], "V1")
    assert value_at(visit, wrong) < 0.5 * BLOBS[0][1]


def test_map_cursor_gives_the_slice_with_the_blob(two_visits):
    base, visit, ts, _ = two_visits
    centre = BLOBS[0][0]
    for plane in ("sag", "cor", "ax"):
        target = map_cursor(centre, ts, "V1", visit, plane)
        assert target.inside
        axis = target.axis
        # the slice along this axis holding the brightest voxel of the blob
        ijk0 = np.round(target.index).astype(int)
        line = [visit.array[tuple(np.r_[ijk0[:axis], j, ijk0[axis + 1:]][::-1])] for j in
                range(max(ijk0[axis] - 4, 0), ijk0[axis] + 5)]
        assert abs(target.slice_index - (max(ijk0[axis] - 4, 0) + int(np.argmax(line)))) <= 1
    # axial visit volume: "ax" runs along its slices
    assert map_cursor(centre, ts, "V1", visit, "ax").axis == 2
    assert map_cursor(centre, ts, "V0", base, "sag").axis == 2


def test_plane_axis_nearest_slice_and_contains():
    vol = Volume(np.zeros((10, 20, 30), np.float32), make_affine("sagittal", (0.5, 1.0, 3.0), (-20.0, -50.0, 80.0)))
    assert [plane_axis(vol, p) for p in ("sag", "cor", "ax")] == [2, 0, 1]
    # slices step −3 mm in L from x = −20
    assert nearest_slice(vol, (-20.0 - 3 * 4.4, 0, 0), "sag") == 4
    assert nearest_slice(vol, (-20.0 - 3 * 4.6, 0, 0), "sag") == 5
    assert nearest_slice(vol, (100.0, 0, 0), "sag") == 0
    assert nearest_slice(vol, (-500.0, 0, 0), "sag") == 9
    assert nearest_slice(vol, (-500.0, 0, 0), "sag", clip=False) > 9
    assert nearest_slice(vol, (0, -50.0 + 0.5 * 7, 0), "cor") == 7  # columns run along P
    assert contains(vol, (-20.0, -50.0, 80.0)) and not contains(vol, (-20.0, -50.0, 81.0))
    with pytest.raises(ValueError, match="plane"):
        plane_axis(vol, "oblique")
    # a VolumeCandidate (headers only) works too
    cand = VolumeCandidate(info=SeriesInfo(), frames=[FrameRef("f")] * 10, rows=20, columns=30,
                           spacing=(0.5, 1.0, 3.0), affine=vol.affine)
    assert nearest_slice(cand, (-500.0, 0, 0), "sag") == 9


def test_transform_set_validates_and_notifies():
    ts = TransformSet(baseline_id="V0")
    got = []
    ts.changed.subscribe(got.append)
    m = rigid(0, 0, 10, (1, 2, 3))
    assert ts.set("V1", m, "manual") is True
    assert ts.set("V1", m.copy(), "manual") is False
    assert len(got) == 1 and isinstance(got[0], Change) and got[0].name == "V1"
    np.testing.assert_array_equal(got[0].old, np.eye(4))
    assert ts.provenance("V1") == Provenance("manual")
    ts.set("V1", m, {"method": "registration", "metric": "MI", "roi": "L4/L5"})
    assert ts.provenance("V1").method == "registration" and ts.provenance("V1").details["metric"] == "MI"
    np.testing.assert_allclose(ts.between("V1", "V0"), m)
    np.testing.assert_allclose(ts.between("V0", "V1") @ m, np.eye(4), atol=1e-12)
    with pytest.raises(ValueError, match="4×4"):
        ts.set("V2", np.eye(3))
    with pytest.raises(ValueError, match="singular"):
        ts.set("V2", np.diag([1.0, 0.0, 1.0, 1.0]))
    bad = np.eye(4)
    bad[3, 0] = 1
    with pytest.raises(ValueError, match="last row"):
        ts.set("V2", bad)
    with pytest.raises(ValueError, match="baseline"):
        ts.set("V0", m)
    assert ts.set("V0", np.eye(4)) is False
    assert ts.reset("V1") is True and ts.reset("V1") is False
    assert len(got) == 2 and np.array_equal(got[1].new, np.eye(4)) and np.array_equal(ts.get("V1"), np.eye(4))


def test_phantom_truth_transforms_map_disc_centres(tmp_path_factory):
    folder, _ = phantom_scan(tmp_path_factory)
    visits = json.loads((folder / "truth.json").read_text())["patients"][0]["visits"]
    ts = TransformSet(baseline_id=visits[0]["study_uid"])
    for v in visits[1:]:
        ts.set(v["study_uid"], v["visit_to_baseline"], "phantom truth")
    worst_identity = 0.0
    for v in visits[1:]:
        for level, disc in visits[0]["discs"].items():
            mapped = ts.to_visit(disc["centre"], v["study_uid"])
            # the discs also slowly degenerate (height changes by < 1 mm): allow 1 mm
            assert np.linalg.norm(mapped - v["discs"][level]["centre"]) < 1.0, (v["label"], level)
            worst_identity = max(worst_identity, float(np.linalg.norm(np.subtract(disc["centre"],
                                                                                  v["discs"][level]["centre"]))))
    assert worst_identity > 2.0  # without the transforms the centres would not match


def test_window_level_round_trip_and_gain_independence():
    rng = np.random.default_rng(1)
    a = rng.gamma(2.0, 200.0, size=(8, 64, 64))
    n1 = IntensityNormalizer.from_array(a)
    c, w = 800.0, 1200.0
    rc, rw = n1.to_relative(c, w)
    assert n1.from_relative(rc, rw) == pytest.approx((c, w))
    # receiver gain ×2 (and an offset): the same relative window
    n2 = IntensityNormalizer.from_array(2.0 * a + 50.0)
    assert n2.to_relative(2.0 * c + 50.0, 2.0 * w) == pytest.approx((rc, rw))
    assert n1.transfer(c, w, n2) == pytest.approx((2.0 * c + 50.0, 2.0 * w))
    # a different volume (another visit) gets a different absolute window
    assert n1.transfer(c, w, IntensityNormalizer.from_array(a[:, :32] * 0.5)) != pytest.approx((c, w))


def test_normalizer_robust_masked_and_degenerate():
    a = np.full((4, 10, 10), 100.0)
    a[:, :, 5:] = 300.0
    n = IntensityNormalizer.from_array(a)
    assert (n.lo, n.hi) == (100.0, 300.0)
    hot = a.copy()
    hot[0, 0, 0] = 1e6  # one hot pixel does not move the reference levels
    assert IntensityNormalizer.from_array(hot).hi == 300.0
    mask = np.zeros(a.shape, bool)
    mask[:, :, :5] = True
    mask[0, 0, 5] = True
    nm = IntensityNormalizer.from_array(a, mask, percentiles=(0, 100))
    assert (nm.lo, nm.hi) == (100.0, 300.0)
    assert IntensityNormalizer.from_array(a, mask).hi == 100.0  # 200 of the 201 masked voxels are 100
    const = IntensityNormalizer.from_array(np.ones((2, 3, 3)))
    assert const.from_relative(*const.to_relative(1.0, 0.0)) == (1.0, 0.0)
    with pytest.raises(ValueError, match="mask"):
        IntensityNormalizer.from_array(a, np.zeros((1, 2, 2), bool))
    with pytest.raises(ValueError, match="no voxel"):
        IntensityNormalizer.from_array(a, np.zeros(a.shape, bool))
    vol = Volume(a.astype(np.float32), np.eye(4))
    assert IntensityNormalizer.from_array(vol).hi == 300.0  # a Volume is accepted


def test_transform_set_copy_is_independent():
    from discviewer.linking import TransformSet

    ts = TransformSet("base")
    m = np.eye(4)
    m[:3, 3] = [1.0, 2.0, 3.0]
    ts.set("v1", m, "registration")
    cp = ts.copy()
    assert cp.visit_ids() == ["v1"] and np.array_equal(cp.get("v1"), m)
    assert cp.provenance("v1").method == "registration"
    cp.reset("v1")
    assert np.array_equal(ts.get("v1"), m) and np.array_equal(cp.get("v1"), np.eye(4))

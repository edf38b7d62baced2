"""Plane sampling in patient space, through transforms, against known synthetic volumes."""
from __future__ import annotations

import numpy as np
import pytest

from discviewer.reslice import PlaneGrid, checkerboard, sample_plane
from discviewer.volume import Volume


def linear_volume(affine):
    """Voxel value = LPS x + 10·y + 100·z at the voxel centre — so a sample tells where it came from."""
    shape = (6, 20, 30)
    k, r, c = np.indices(shape)
    ijk = np.stack([c, r, k], -1).reshape(-1, 3).astype(float)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    vals = (xyz[:, 0] + 10 * xyz[:, 1] + 100 * xyz[:, 2]).reshape(shape)
    return Volume(vals, affine)


def sag_affine():
    a = np.eye(4)
    a[:3, 0] = [0, 0.8, 0]   # columns along +y
    a[:3, 1] = [0, 0, -0.5]  # rows along −z
    a[:3, 2] = [-4.0, 0, 0]  # slices along −x (anisotropic: 4 mm)
    a[:3, 3] = [10.0, -5.0, 8.0]
    return a


def f(p):
    return p[0] + 10 * p[1] + 100 * p[2]


def test_sample_matches_the_field_at_grid_points():
    vol = linear_volume(sag_affine())
    center = vol.index_to_patient([15, 10, 2.5])  # between slices: linear along x too
    for plane in ("sag", "cor", "ax"):
        g = PlaneGrid.centered(center, plane, (6.0, 4.0), 0.5)
        out = sample_plane(vol, g)
        pts = g.points()
        ok = ~np.isnan(out)
        assert ok.sum() > 10, plane
        np.testing.assert_allclose(out[ok], f(pts[ok].T), atol=1e-6)


def test_outside_is_fill_and_grid_orientation():
    vol = linear_volume(sag_affine())
    g = PlaneGrid.centered([100.0, 0, 0], "sag", 10.0, 1.0)
    assert np.isnan(sample_plane(vol, g)).all()
    g = PlaneGrid.centered([0.0, 0, 0], "sag", (4.0, 2.0), 1.0)
    assert g.shape == (2, 4)
    # columns go posterior (+y), rows go inferior (−z)
    assert g.point(1, 0)[1] - g.point(0, 0)[1] == pytest.approx(1.0)
    assert g.point(0, 1)[2] - g.point(0, 0)[2] == pytest.approx(-1.0)


def test_transform_maps_grid_space_into_volume_space():
    vol = linear_volume(sag_affine())
    # the volume's visit is shifted by +2 mm in y relative to the grid's (baseline) space
    t = np.eye(4)
    t[1, 3] = 2.0
    center = vol.index_to_patient([15, 10, 2])
    g = PlaneGrid.centered(center - [0, 2.0, 0], "sag", 4.0, 0.5)
    out = sample_plane(vol, g, transform=t)
    pts = g.points() + [0, 2.0, 0]
    ok = ~np.isnan(out)
    np.testing.assert_allclose(out[ok], f(pts[ok].T), atol=1e-6)


def test_nearest_order_returns_stored_values():
    vol = linear_volume(sag_affine())
    g = PlaneGrid.centered(vol.index_to_patient([15, 10, 2]), "sag", 8.0, 0.3)
    out = sample_plane(vol, g, order=0)
    ok = ~np.isnan(out)
    assert set(np.unique(out[ok])) <= set(np.unique(vol.array))


def test_checkerboard_alternates():
    a, b = np.zeros((8, 8)), np.ones((8, 8))
    cb = checkerboard(a, b, tiles=2)
    assert cb[0, 0] == 0 and cb[0, 7] == 1 and cb[7, 0] == 1 and cb[7, 7] == 0
    with pytest.raises(ValueError):
        checkerboard(a, np.ones((4, 4)))


def test_resample_volume_through_a_transform():
    from discviewer.reslice import resample_volume

    src = linear_volume(sag_affine())
    # target grid: an axial grid covering part of the source; target space shifted by t
    tgt_aff = np.eye(4)
    tgt_aff[:3, :3] = np.diag([0.7, 0.7, 1.3])
    tgt_aff[:3, 3] = [-2.0, -3.0, 0.0]
    t = np.eye(4)
    t[:3, 3] = [1.0, 2.0, -1.0]  # target point + t = source point
    out = resample_volume(src, tgt_aff, (4, 6, 5), transform=t, fill=np.nan)
    assert out.shape == (4, 6, 5) and np.allclose(out.affine, tgt_aff)
    k, r, c = np.indices(out.shape)
    pts = np.stack([c, r, k], -1).reshape(-1, 3) @ tgt_aff[:3, :3].T + tgt_aff[:3, 3] + t[:3, 3]
    vals = out.array.reshape(-1)
    ok = ~np.isnan(vals)
    assert ok.sum() > 20
    np.testing.assert_allclose(vals[ok], f(pts[ok].T), rtol=1e-5, atol=1e-3)


def test_resample_to_fixed_puts_the_follow_up_on_the_baseline_grid():
    from discviewer.registration import resample_to_fixed

    fixed = linear_volume(sag_affine())
    # the follow-up's patient space is the baseline's shifted by (1, −2, 0.5) mm
    shift = np.eye(4)
    shift[:3, 3] = [1.0, -2.0, 0.5]  # fixed → moving
    moving_aff = shift @ sag_affine()
    moving = linear_volume(moving_aff)
    # a voxel of the moving volume at moving point q holds f(q); seen from baseline point p = q − shift
    out = resample_to_fixed(moving, fixed, shift)
    assert out.shape == fixed.shape and np.allclose(out.affine, fixed.affine)
    k, r, c = 3, 10, 15
    p = fixed.index_to_patient([c, r, k])
    assert out.array[k, r, c] == pytest.approx(f(p + shift[:3, 3]), abs=1e-3)

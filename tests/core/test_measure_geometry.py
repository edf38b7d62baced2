"""discviewer.measure on analytic cases: heights and indices, rulers and angles on anisotropic
oblique grids, ROI masks/areas/statistics, signal ratios, iron voids and R2* fits with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from discviewer.measure import (INDICES, DiscLandmarks, IronRule, PlaneROI, RoiStats, angle_deg, cnr, compute_values,
                                dhi_adjacent, dhi_farfan, dhi_masuda, disc_height, hypointense_region,
                                percent_of_baseline, r2star_map, rician_mean, roi_mask, roi_stats, ruler_length_mm,
                                signal_ratio, snr, suggested_iron_score, vertebral_body_height)
from discviewer.measure.roi import plane_frame
from discviewer.volume import Volume
from discviewer.workspace.data import Annotation


def oblique_affine(spacing=(0.7, 1.3, 3.1), angles=(12.0, -20.0, 33.0), origin=(5.0, -40.0, 12.0)) -> np.ndarray:
    """index → LPS with anisotropic spacing and a rotation about all three axes."""
    from discviewer.phantom.geometry import rotation_matrix

    a = np.eye(4)
    a[:3, :3] = rotation_matrix(*angles) @ np.diag(spacing)
    a[:3, 3] = origin
    return a


def const_volume(shape=(12, 80, 90), value=100.0, affine=None) -> Volume:
    return Volume(np.full(shape, value, np.float32), oblique_affine() if affine is None else affine)


# ---- heights and indices -------------------------------------------------------------------------------
def test_disc_height_corresponding_points_and_depth():
    up = np.array([[0, -20, 10.0], [0, 0, 12.0], [0, 20, 8.0]])
    lo = np.array([[0, -20, 0.0], [0, 0, 0.0], [0, 20, 1.0]])
    h = disc_height(np.vstack([up, lo]))
    assert (h.DHa, h.DHm, h.DHp) == pytest.approx((10.0, 12.0, 7.0))
    assert h.mean_mm == pytest.approx(29 / 3)
    assert h.depth_mm == pytest.approx((np.hypot(40, 2) + np.hypot(40, 1)) / 2)
    lm = DiscLandmarks.from_points(np.vstack([up, lo]))
    assert disc_height(lm) == h and disc_height(lm.as_dict()) == h
    with pytest.raises(ValueError):
        disc_height(np.zeros((5, 3)))


def test_indices_formulas():
    d = disc_height(np.array([[0, -20, 10.0], [0, 0, 12.0], [0, 20, 8.0], [0, -20, 0.0], [0, 0, 0.0], [0, 20, 0.0]]))
    vb1 = vertebral_body_height(np.array([[0, -20, 50.0], [0, 0, 49.0], [0, 20, 50.0], [0, -20, 24.0], [0, 0, 25.0],
                                          [0, 20, 24.0]]))
    vb2 = vertebral_body_height(np.array([[0, -20, 0.0], [0, 0, -1.0], [0, 20, 0.0], [0, -20, -28.0],
                                          [0, 0, -27.0], [0, 20, -28.0]]))
    assert (vb1.VBHa, vb1.VBHm, vb1.VBHp) == pytest.approx((26.0, 24.0, 26.0))
    assert (vb2.VBHa, vb2.VBHm, vb2.VBHp) == pytest.approx((28.0, 26.0, 28.0))
    assert dhi_adjacent(d, vb1, vb2) == pytest.approx(10.0 / ((76 / 3 + 82 / 3) / 2))
    assert dhi_adjacent(d, 25.0, 27.0) == pytest.approx(10.0 / 26.0)
    assert d.depth_mm == pytest.approx((np.hypot(40, 2) + 40) / 2)
    assert dhi_farfan(d) == pytest.approx((10 + 8) / d.depth_mm)
    assert dhi_farfan(d, 36.0) == pytest.approx(0.5)
    assert dhi_masuda(d, vb1, vb2) == pytest.approx(2 * 30 / (76 + 82))
    assert percent_of_baseline(9.0, 12.0) == pytest.approx(75.0)
    with pytest.raises(ValueError):
        percent_of_baseline(1.0, 0.0)
    for name, idx in INDICES.items():
        assert idx.name == name and idx.formula and idx.reference and idx.title


def test_ruler_and_angle_in_mm_on_anisotropic_oblique_grid():
    aff = oblique_affine()
    vol = const_volume(affine=aff)
    i0, i1 = np.array([3.0, 7.0, 2.0]), np.array([40.0, 51.0, 9.0])
    p0, p1 = vol.index_to_patient(i0), vol.index_to_patient(i1)
    expected = math.sqrt(sum(((i1 - i0) * np.array([0.7, 1.3, 3.1])) ** 2))
    assert ruler_length_mm(p0, p1) == pytest.approx(expected, rel=1e-12)
    ann = Annotation(id="r", kind="ruler", points=(tuple(p0), tuple(p1)))
    assert compute_values(ann, vol) == ({"length_mm": pytest.approx(expected)}, {"length_mm": "mm"})
    # a 3-4-5 right angle and a 60° angle, built in index space and mapped to LPS
    v = vol.index_to_patient(np.array([10.0, 10.0, 5.0]))
    a = v + aff[:3, 0] / 0.7 * 3.0
    b = v + aff[:3, 1] / 1.3 * 4.0
    assert angle_deg(a, v, b) == pytest.approx(90.0)
    c = v + (aff[:3, 0] / 0.7 * 0.5 + aff[:3, 1] / 1.3 * math.sqrt(3) / 2) * 7.0
    ann = Annotation(id="a", kind="angle", points=(tuple(a), tuple(v), tuple(c)))
    assert compute_values(ann)[0]["angle_deg"] == pytest.approx(60.0)
    with pytest.raises(ValueError):
        compute_values(Annotation(id="b", kind="ruler", points=(tuple(a),)))


# ---- ROI geometry -------------------------------------------------------------------------------------------
def _slice_plane(vol: Volume, k: float):
    aff = vol.affine
    n = np.cross(aff[:3, 0], aff[:3, 1])
    n /= np.linalg.norm(n)
    return aff[:3, :3] @ np.array([0.0, 0.0, k]) + aff[:3, 3], n


def test_rectangle_area_and_mask_on_anisotropic_oblique_slice():
    vol = const_volume()
    aff = vol.affine
    origin, n = _slice_plane(vol, 5)
    # a rectangle 10.5 × 15.7 mm along the in-slice axes, corners between pixel centres
    ex, ey = aff[:3, 0] / 0.7, aff[:3, 1] / 1.3
    c0 = vol.index_to_patient(np.array([20.0, 20.0, 5.0])) + ex * 0.35 + ey * 0.65  # a pixel-boundary corner
    w, h = 15 * 0.7, 12 * 1.3
    pts = [c0, c0 + ex * w, c0 + ex * w + ey * h, c0 + ey * h]
    roi = PlaneROI("polygon", [tuple(p) for p in pts], tuple(origin), tuple(n))
    assert roi.area_mm2() == pytest.approx(w * h)
    m = roi_mask(vol, roi)
    assert m.sum() == 15 * 12 and m[5].sum() == 15 * 12  # exactly the pixels whose centres lie inside
    st = roi_stats(vol, roi)
    assert st.area_mm2 == pytest.approx(w * h) and st.pixel_area_mm2 == pytest.approx(15 * 12 * 0.7 * 1.3)
    assert st.volume_mm3 == pytest.approx(15 * 12 * 0.7 * 1.3 * 3.1)
    assert st.per_slice[0].slice_index == 5 and st.per_slice[0].pixel_area_mm2 == pytest.approx(w * h)
    # the plane lifted off the slice by less than half the slice step still selects that slice only
    roi2 = PlaneROI("polygon", [tuple(p + n * 1.4) for p in pts], tuple(origin + n * 1.4), tuple(n))
    assert np.array_equal(roi_mask(vol, roi2), m)
    # a slab of ±3.1 mm takes the neighbouring slices too
    roi3 = PlaneROI("polygon", roi.points, roi.plane_origin, roi.plane_normal, slab_mm=3.1)
    m3 = roi_mask(vol, roi3)
    assert [int(m3[k].sum()) for k in (3, 4, 5, 6, 7)] == [0, 180, 180, 180, 0]
    assert roi_stats(vol, roi3).pixel_area_mm2 == pytest.approx(w * h)


@pytest.mark.parametrize("a,b", [(9.0, 4.0), (20.0, 13.0)])
def test_ellipse_area_formula_and_pixel_count_converge(a, b):
    aff = oblique_affine(spacing=(0.25, 0.4, 2.0))
    vol = Volume(np.zeros((5, 140, 180), np.float32), aff)
    origin, n = _slice_plane(vol, 2)
    ex, ey = aff[:3, 0] / 0.25, aff[:3, 1] / 0.4
    ang = np.deg2rad(25)
    ua = np.cos(ang) * ex + np.sin(ang) * ey
    ub = -np.sin(ang) * ex + np.cos(ang) * ey
    c = vol.index_to_patient(np.array([90.3, 70.1, 2.0]))
    roi = PlaneROI("ellipse", [tuple(c), tuple(c + ua * a), tuple(c + ub * b * 1.0 + ua * 2.0)], tuple(origin),
                   tuple(n))  # axis b drawn skewed: its orthogonal part is used
    assert roi.area_mm2() == pytest.approx(np.pi * a * b)
    st = roi_stats(vol, roi)
    assert st.pixel_area_mm2 == pytest.approx(np.pi * a * b, rel=0.02)
    assert st.area_mm2 == pytest.approx(np.pi * a * b)


def test_freehand_polygon_stats_and_histogram():
    aff = oblique_affine(spacing=(0.5, 0.5, 3.0), angles=(0, 0, 0))
    arr = np.zeros((3, 60, 60), np.float32)
    arr[1, 10:30, 10:30] = np.arange(400, dtype=np.float32).reshape(20, 20)
    vol = Volume(arr, aff)
    origin, n = _slice_plane(vol, 1)
    corners = [vol.index_to_patient(np.array(p)) for p in ([9.5, 9.5, 1], [29.5, 9.5, 1], [29.5, 29.5, 1],
                                                           [9.5, 29.5, 1])]
    roi = PlaneROI("freehand", [tuple(p) for p in corners], tuple(origin), tuple(n))
    st = roi_stats(vol, roi, bins=4)
    assert st.n_voxels == 400 and st.mean == pytest.approx(199.5) and st.median == pytest.approx(199.5)
    assert st.min == 0 and st.max == 399 and st.sd == pytest.approx(np.arange(400).std(ddof=1))
    assert sum(st.histogram_counts) == 400 and len(st.histogram_edges) == 5
    assert st.area_mm2 == pytest.approx(100.0)
    vals, units = compute_values(Annotation(id="f", kind="freehand", points=roi.points,
                                            extra={"plane": {"origin": list(origin), "normal": list(n)}}), vol)
    assert vals["n_voxels"] == 400 and vals["area_mm2"] == pytest.approx(100.0) and units["area_mm2"] == "mm²"
    # without a stored plane the best-fit plane of the points is used
    assert compute_values(Annotation(id="g", kind="polygon", points=roi.points), vol)[0]["n_voxels"] == 400
    with pytest.raises(ValueError):
        PlaneROI("ellipse", roi.points, tuple(origin), tuple(n))
    with pytest.raises(ValueError):
        roi_stats(vol, PlaneROI("polygon", [tuple(p + n * 50) for p in corners], tuple(origin + n * 50), tuple(n)))


def test_plane_frame_is_orthonormal():
    for normal in ([1, 0, 0], [0.2, -0.3, 0.9], [0, 0, -2]):
        n, e1, e2 = plane_frame(normal)
        assert np.allclose([n @ e1, n @ e2, e1 @ e2], 0) and np.allclose(np.cross(e1, e2), n)


# ---- signal, SNR, CNR --------------------------------------------------------------------------------------
def test_signal_ratio_snr_cnr():
    a = RoiStats.from_values(np.array([100.0, 110, 90, 100]))
    b = RoiStats.from_values(np.array([50.0, 50, 50, 50]))
    r = signal_ratio(a, b)
    assert r.ratio == pytest.approx(2.0) and r.se == pytest.approx(2.0 * (a.sd / 100) / 2)
    bg = RoiStats.from_values(np.array([1.0, 3.0, 1.0, 3.0]))
    assert snr(a, bg) == pytest.approx(100 / bg.sd)
    assert snr(a, bg, rayleigh_factor=0.655) == pytest.approx(100 * 0.655 / bg.sd)
    assert cnr(a, b, 5.0) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        signal_ratio(a, RoiStats.from_values(np.zeros(3)))


# ---- iron -----------------------------------------------------------------------------------------------------
def _iron_volume(spacing, r2s_in=300.0, r0=2.5, te_ms=20.0, tissue=800.0, sigma=0.0, seed=0):
    """Homogeneous tissue with a deposit: ΔR2* = r2s_in inside r0, r2s_in·(r0/r)³ outside."""
    shape = (int(40 / spacing[2]), int(40 / spacing[1]), int(40 / spacing[0]))
    aff = oblique_affine(spacing=spacing, angles=(5.0, 10.0, -7.0), origin=(0.0, 0.0, 0.0))
    vol0 = Volume(np.zeros(shape, np.float32), aff)
    centre = vol0.index_to_patient((np.array(shape[::-1]) - 1) / 2.0) + np.array([0.13, -0.21, 0.07])
    kk, rr, cc = np.indices(shape)
    x = vol0.index_to_patient(np.stack([cc, rr, kk], -1).astype(float))
    r = np.linalg.norm(x - centre, axis=-1)
    dr = np.where(r <= r0, r2s_in, r2s_in * (r0 / np.maximum(r, 1e-9)) ** 3)
    s = tissue * np.exp(-te_ms / 1000 * dr)
    if sigma:
        rng = np.random.default_rng(seed)
        s = np.hypot(s + sigma * rng.standard_normal(s.shape), sigma * rng.standard_normal(s.shape))
    x_void = r2s_in * te_ms / 1000 / np.log(2)
    return Volume(s.astype(np.float32), aff), centre, 4 / 3 * np.pi * r0 ** 3 * x_void, dr


def test_iron_void_volume_matches_analytic_sphere():
    vol, centre, v_true, dr = _iron_volume((0.4, 0.4, 0.5), sigma=8.0)
    n = vol.affine[:3, 2] / np.linalg.norm(vol.affine[:3, 2])
    e1, e2 = plane_frame(n)[1:]
    big = [tuple(centre + 15 * (np.cos(t) * e1 + np.sin(t) * e2))
           for t in np.linspace(0, 2 * np.pi, 24, endpoint=False)]
    search = PlaneROI("polygon", big, tuple(centre), tuple(n), slab_mm=12.0)
    ref = RoiStats.from_values(np.full(50, 800.0))  # the iron-free tissue
    bg = RoiStats.from_values(np.full(10, 8.0) * np.array([0.5, 1.5] * 5))
    res = hypointense_region(vol, search, ref, IronRule("percent_of_reference", 50.0), background_stats=bg)
    assert res.volume_mm3 == pytest.approx(v_true, rel=0.05)
    assert res.volume_mm3 == pytest.approx(sum(a for _, a in res.area_mm2_per_slice) * 0.5, rel=1e-9)
    assert -1 < res.contrast_ratio < -0.5 and res.cnr > 10 and res.threshold == 400.0
    assert res.values()["void_volume_mm3"] == res.volume_mm3
    assert "50" in res.rule and res.acquisition["voxel_mm"] == pytest.approx((0.4, 0.4, 0.5))
    assert suggested_iron_score(res) == 3 and suggested_iron_score(0.0) == 0 and suggested_iron_score(5.0) == 1
    # the mean − k·SD rule and the seed option
    ref2 = RoiStats(800.0, 50.0, 800.0, 700.0, 900.0, float("nan"), float("nan"), 100, float("nan"))
    res2 = hypointense_region(vol, search, ref2, IronRule("mean_minus_k_sd", k=8.0), seed=centre)
    assert res2.threshold == 400.0 and res2.volume_mm3 == pytest.approx(res.volume_mm3, rel=0.01)
    with pytest.raises(ValueError):
        IronRule("percent_of_reference", 150.0)


def test_iron_compute_values_needs_reference():
    vol, centre, v_true, _ = _iron_volume((0.5, 0.5, 1.0))
    n = vol.affine[:3, 2] / np.linalg.norm(vol.affine[:3, 2])
    e1, e2 = plane_frame(n)[1:]
    pts = [tuple(centre + 14 * (np.cos(t) * e1 + np.sin(t) * e2))
           for t in np.linspace(0, 2 * np.pi, 16, endpoint=False)]
    ann = Annotation(id="i", kind="iron", points=tuple(pts),
                     extra={"roi_kind": "polygon", "plane": {"origin": list(centre), "normal": list(n)},
                            "slab_mm": 12.0})
    with pytest.raises(ValueError):
        compute_values(ann, vol)
    vals, units = compute_values(ann, vol, reference=RoiStats.from_values(np.full(5, 800.0)))
    assert vals["void_volume_mm3"] == pytest.approx(v_true, rel=0.05) and units["void_volume_mm3"] == "mm³"
    assert "cnr" not in vals


# ---- R2* ----------------------------------------------------------------------------------------------------
TES = (4.0, 9.0, 14.0, 19.0, 24.0)


def _echoes(r2s, s0=1000.0, sigma=0.0, shape=(9, 160, 160), seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for te in TES:
        a = s0 * np.exp(-np.asarray(r2s) * te / 1000.0) * np.ones(shape)
        if sigma:
            a = np.hypot(a + sigma * rng.standard_normal(shape), sigma * rng.standard_normal(shape))
        out.append(a.astype(np.float32))
    return out


def test_r2star_exact_without_noise():
    """(speed: benchmarks/bench_r2star.py)"""
    r = np.linspace(5, 300, 160)[None, None, :] * np.ones((9, 160, 160))
    echoes = _echoes(r)
    m = r2star_map(echoes, TES)
    np.testing.assert_allclose(m.r2s_per_s, r, rtol=1e-5)
    np.testing.assert_allclose(m.s0, 1000.0, rtol=1e-4)
    assert m.method == "loglinear" and np.nanmax(m.rmse) < 1e-2
    mask = np.zeros(r.shape, bool)
    mask[4, 10:20, 10:20] = True
    mm = r2star_map(np.stack(echoes), TES, mask=mask)
    assert np.isnan(mm.r2s_per_s[0, 0, 0]) and np.allclose(mm.r2s_per_s[mask], r[mask], rtol=1e-5)
    with pytest.raises(ValueError):
        r2star_map(echoes, TES[:3])
    with pytest.raises(ValueError):
        r2star_map(echoes, TES, method="rician")


def test_rician_mean_limits():
    assert rician_mean(0.0, 2.0) == pytest.approx(2.0 * math.sqrt(math.pi / 2))
    assert rician_mean(1000.0, 10.0) == pytest.approx(1000.0 + 100.0 / 2000.0, rel=1e-6)
    rng = np.random.default_rng(0)
    a = 15.0
    m = np.hypot(a + 10 * rng.standard_normal(400000), 10 * rng.standard_normal(400000))
    assert rician_mean(a, 10.0) == pytest.approx(m.mean(), rel=0.005)


def test_r2star_noise_floor_handling_in_dark_voxels():
    """R2* = 150 s⁻¹ at S0 = 300, σ = 20: the last echoes sit on the floor. A plain log-linear fit
    underestimates R2*; excluding floor echoes or the Rician model recovers it."""
    shape = (4, 60, 60)
    echoes = _echoes(150.0, s0=300.0, sigma=20.0, shape=shape)
    plain = np.nanmean(r2star_map(echoes, TES, method="loglinear").r2s_per_s)
    excl = np.nanmean(r2star_map(echoes, TES, method="loglinear", noise_sigma=20.0).r2s_per_s)
    rice = r2star_map(echoes, TES, noise_sigma=20.0)
    assert rice.method == "rician"
    assert plain < 0.85 * 150
    assert excl == pytest.approx(150, rel=0.12)
    assert np.nanmedian(rice.r2s_per_s) == pytest.approx(150, rel=0.05)
    assert np.nanmean(rice.r2s_per_s) == pytest.approx(150, rel=0.10)  # single voxels at SNR 15 scatter
    # high SNR tissue: within 1 %
    hi = r2star_map(_echoes(40.0, s0=1500.0, sigma=10.0, shape=shape), TES, noise_sigma=10.0)
    assert np.nanmean(hi.r2s_per_s) == pytest.approx(40.0, rel=0.01)


# ---- compute_values for every kind of the annotation table -------------------------------------------------
def test_compute_values_all_kinds():
    vol = const_volume(shape=(6, 40, 40), affine=oblique_affine(spacing=(1.0, 1.0, 2.0), angles=(0, 0, 0)))
    six = ((0, -20, 10.0), (0, 0, 12.0), (0, 20, 8.0), (0, -20, 0.0), (0, 0, 0.0), (0, 20, 1.0))
    v, u = compute_values(Annotation(id="d", kind="disc_height", points=six))
    assert v == {"DHa": pytest.approx(10.0), "DHm": pytest.approx(12.0), "DHp": pytest.approx(7.0),
                 "depth_mm": pytest.approx((np.hypot(40, 2) + np.hypot(40, 1)) / 2)} and set(u.values()) == {"mm"}
    v, u = compute_values(Annotation(id="v", kind="vb_height", points=six, extra={"vertebra": "L4"}))
    assert set(v) == {"VBHa", "VBHm", "VBHp"} and v["VBHm"] == pytest.approx(12.0)
    for kind in ("point", "text", "disc_label", "score"):
        assert compute_values(Annotation(id=kind, kind=kind, points=((0, 0, 0),)), vol) == ({}, {})
    c = vol.index_to_patient(np.array([20.0, 20.0, 3.0]))
    o, n = _slice_plane(vol, 3)
    ell = Annotation(id="e", kind="ellipse", points=(tuple(c), tuple(c + [5.0, 0, 0]), tuple(c + [0, 3.0, 0])),
                     extra={"plane": {"origin": list(o), "normal": list(n)}})
    v, u = compute_values(ell, vol)
    assert v["mean"] == 100.0 and v["sd"] == 0.0 and v["area_mm2"] == pytest.approx(np.pi * 15)
    assert set(v) == {"mean", "sd", "median", "min", "max", "area_mm2", "n_voxels"}
    with pytest.raises(ValueError):
        compute_values(Annotation(id="x", kind="nonsense"), vol)
    with pytest.raises(ValueError):
        compute_values(ell)  # an ROI needs its volume

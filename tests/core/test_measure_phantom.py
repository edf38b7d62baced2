"""discviewer.measure against the synthetic phantom's ground truth (small 1.875 mm and full 0.586 mm
pixels; both generated in memory once per session, full ≈ 35 s, small ≈ 3 s).

The acceptance targets are asserted on the full phantom: every disc height within 0.2 mm, the iron
void by the 50 % rule within 5 % (voids of ≥ 150 voxels), R2* and the nucleus/CSF ratio within 2 %.
The small phantom is a smoke check with its own, looser bounds (its 1.875 mm pixels do not resolve a
1 mm cortical endplate). Accuracy summaries are printed (pytest -s)."""
from __future__ import annotations

import numpy as np
import pytest

from discviewer.measure import (IronRule, PlaneROI, RoiStats, detect_disc_landmarks, disc_height, dhi_adjacent,
                                hypointense_region, r2star_map, roi_mask, roi_stats, signal_ratio,
                                vertebral_body_height)
from tests.core.phantom_cache import phantom_study


@pytest.fixture(scope="module")
def small():
    return phantom_study("small")


@pytest.fixture(scope="module")
def full():
    return phantom_study("full")


def _normal(aff):
    return aff[:3, 2] / np.linalg.norm(aff[:3, 2])


def _landmark_errors(study):
    p = study.patients[0]
    errs, dets = [], []
    for v in p.visits:
        vol = v.series_by_key("t2").volume(0)
        for level, d in v.truth["discs"].items():
            det = detect_disc_landmarks(vol, d["centre"])
            h = disc_height(det)
            errs.append([h.DHa - d["DHa"], h.DHm - d["DHm"], h.DHp - d["DHp"]])
            dets.append(det)
    return np.array(errs), dets


# ---- landmarks ---------------------------------------------------------------------------------------------
def test_landmarks_full_phantom_every_level_and_visit(full):
    """0.586 mm pixels, 6 levels × 5 visits × DHa/DHm/DHp: every height within 0.2 mm of the truth
    (the truth is computed on the painted geometry; the phantom averages each voxel over its extent)."""
    errs, dets = _landmark_errors(full)
    a = np.abs(errs)
    print(f"\nfull phantom landmark errors (mm): max DHa/DHm/DHp {a.max(0).round(3)}, RMS "
          f"{np.sqrt((errs ** 2).mean(0)).round(3)}, median {np.median(a):.3f}, "
          f"within 0.2 mm {100 * (a <= 0.2).mean():.0f} %")
    assert errs.shape == (30, 3)
    assert np.all(a.max(axis=0) <= 0.2), a.max(axis=0)
    assert all(d.method.startswith("auto: endplate band fit") for d in dets)
    assert not any(d.warnings for d in dets)
    assert np.median([d.confidence for d in dets]) > 0.5


def test_landmarks_small_phantom_are_coarse_and_flagged(small):
    """Smoke check. 1.875 mm pixels with a 1.4 mm PSF do not resolve the 1 mm cortical endplate: the
    dark-line fallback is used, flagged, and errs by one to three pixels (0.2 mm is out of reach;
    measured max 5.6 mm, RMS 2.0–2.5 mm, the surfaces biased ~1 pixel outward)."""
    errs, dets = _landmark_errors(small)
    a = np.abs(errs)
    print(f"\nsmall phantom landmark errors (mm): max {a.max(0).round(2)}, RMS "
          f"{np.sqrt((errs ** 2).mean(0)).round(2)}, within 0.2 mm {100 * (a <= 0.2).mean():.0f} %")
    assert np.all(np.isfinite(errs)) and a.max() <= 6.5 and np.sqrt((errs ** 2).mean()) <= 3.0
    assert all(any("coarse pixels" in w for w in d.warnings) for d in dets)
    assert all(d.confidence <= 0.2 for d in dets)


def test_detection_rejects_a_seed_outside_any_disc(small):
    v = small.patients[0].visits[0]
    vol = v.series_by_key("t2").volume(0)
    far = vol.index_to_patient(np.array([2.0, 2.0, 0.0]))  # a corner of the field of view (air)
    with pytest.raises(ValueError):
        detect_disc_landmarks(vol, far)


def test_vertebral_truth_and_dhi(small):
    """The truth's vertebral-body landmarks give its heights through `vertebral_body_height`, and a
    DHI from them (a consistency check of the truth fields added for the indices)."""
    v = small.patients[0].visits[0]
    vb = v.truth["vertebrae"]
    for name, t in vb.items():
        h = vertebral_body_height(t["landmarks"])
        assert (h.VBHa, h.VBHm, h.VBHp) == pytest.approx((t["VBHa"], t["VBHm"], t["VBHp"]), abs=1e-5)
        assert 18 < h.VBHm < 32
    d = disc_height(v.truth["discs"]["L4/L5"]["landmarks"])
    dhi = dhi_adjacent(d, vertebral_body_height(vb["L4"]["landmarks"]), vertebral_body_height(vb["L5"]["landmarks"]))
    assert 0.2 < dhi < 0.6


# ---- signal ratio ----------------------------------------------------------------------------------------------
def _ratios(study):
    p = study.patients[0]
    out = []
    for v in p.visits:
        vol = v.series_by_key("t2").volume(0)
        n = _normal(vol.affine)
        for level, d in v.truth["discs"].items():
            rois = d.get("signal_rois_t2", {})
            if "csf" not in rois or (d.get("iron") or {}).get("present"):
                continue  # no CSF ROI above the conus; an iron void in the nucleus sits on the noise floor
            st = {}
            for k in ("nucleus", "csf"):
                r = rois[k]
                st[k] = roi_stats(vol, PlaneROI("ellipse", r["points"], r["points"][0], n))
                assert st[k].n_voxels == r["n_voxels"]  # same voxel-centre rule as the truth
            sr = signal_ratio(st["nucleus"], st["csf"])
            truth = rois["nucleus"]["signal_t2"] / rois["csf"]["signal_t2"]
            out.append((sr.ratio / truth - 1, sr.se / sr.ratio, d["degenerated"]))
    return np.array(out)


def test_signal_ratio_nucleus_csf_within_2_percent_full(full):
    r = _ratios(full)
    print(f"\nfull phantom nucleus/CSF ratio error: max {100 * np.abs(r[:, 0]).max():.2f} % over {len(r)} discs")
    assert len(r) >= 15 and np.abs(r[:, 0]).max() <= 0.02


def test_signal_ratio_small_within_2_percent_or_noise(small):
    r = _ratios(small)
    healthy = r[r[:, 2] == 0]
    print(f"\nsmall phantom nucleus/CSF ratio error: healthy max {100 * np.abs(healthy[:, 0]).max():.2f} %, "
          f"all max {100 * np.abs(r[:, 0]).max():.2f} % (≤ 3 SE)")
    assert np.abs(healthy[:, 0]).max() <= 0.02
    assert np.all(np.abs(r[:, 0]) <= np.maximum(0.02, 3 * r[:, 1]))


# ---- iron -----------------------------------------------------------------------------------------------------
IRON_MIN_VOXELS = 150  # ≈ 206 mm³ at 0.586 × 0.586 × 4 mm: smaller voids are not measurable to 5 % (see below)


def _iron_rows(study):
    """(visit, TE, measured mm³, noise-free rule truth mm³, expected-with-noise mm³, noise SD mm³, truth voxels)
    for every injected disc, visit and echo: hypointense_region with IronRule 50 % in the truth's search
    ROI against the mean of the truth's reference ROIs, both drawn from truth.json's geometry."""
    p = study.patients[0]
    rows = []
    for level in p.injected:
        for v in p.visits:
            iron = v.truth["discs"][level]["iron"]
            rule = iron["rule50"]
            gre = v.series_by_key("gre")
            s = rule["search_roi"]
            search = PlaneROI(s["kind"], s["points"], s["plane_origin"], s["plane_normal"], s["slab_mm"])
            r = rule["reference_roi"]
            refs = [PlaneROI(r["kind"], r["points"], q["plane_origin"], q["plane_normal"], q["slab_mm"])
                    for q in r["planes"]]
            for e, te in enumerate(gre.echo_times):
                vol = gre.volume(e)
                ref_mask = np.any([roi_mask(vol, q) for q in refs], axis=0)
                assert ref_mask.sum() == rule["reference_voxels"]  # the same voxels as the truth
                res = hypointense_region(vol, search, RoiStats.from_values(np.asarray(vol.array)[ref_mask]),
                                         IronRule("percent_of_reference", 50.0))
                k = str(te)
                rows.append((v.label, te, res.volume_mm3, iron["void_volume_rule50_mm3_by_te"][k],
                             rule["expected_with_noise_mm3_by_te"][k], rule["noise_sd_mm3_by_te"][k],
                             rule["void_voxels_by_te"][k]))
    return rows


def test_iron_rule_void_volume_full(full):
    """(b) The void by the tool's rule (50 % of the reference mean) against the phantom's truth for that
    rule. The truth is computed on the noise-free GRE; thresholding the noisy image moves voxels that
    sit near the threshold (thick 4 mm slices cut the void's rim tangentially, and at short TE the whole
    void is shallow), which the truth quantifies as the rule's expectation and SD on this visit's
    Rician magnitude. Asserted for every void of ≥ IRON_MIN_VOXELS voxels: within 5 % of the noise
    expectation; within 5 % of the noise-free volume where noise shifts the expectation by ≤ 2 %; and
    every void (any size) within its noise shift + 3 SD of the noise-free volume. Below 150 voxels the
    truth's own noise SD of the count is 3–8 % (5 % < 2 SD), so 5 % is not a fair bound there."""
    rows = _iron_rows(full)
    print("\nfull phantom iron void by the 50 % rule (visit, TE ms, measured, noise-free truth, expected with "
          "noise ± SD (mm³), truth voxels, error vs noise-free / vs expected %):")
    checked = 0
    for label, te, meas, truth, expected, sd, n in rows:
        if truth == 0:
            assert meas <= 5.0  # no iron (baseline) or no void at this TE: at most a few noise voxels
            continue
        err_nf, err_exp = meas / truth - 1, meas / expected - 1
        print(f"  {label:8s} {te:4.0f} {meas:8.1f} {truth:8.1f} {expected:8.1f} ± {sd:5.1f} {n:5d}   "
              f"{100 * err_nf:+5.1f} {100 * err_exp:+5.1f}")
        assert abs(meas - truth) <= abs(expected - truth) + 3 * sd + 1e-6
        if n >= IRON_MIN_VOXELS:
            checked += 1
            assert abs(err_exp) <= 0.05
            if abs(expected / truth - 1) <= 0.02:
                assert abs(err_nf) <= 0.05
    assert checked >= 6


def test_iron_truth_void_grows_with_te_and_fades(full):
    """The truth's rule void (noise-free) is one connected region inside the disc ROI, grows with TE and
    fades over the follow-up; the reference ellipses are only slightly darkened by the deposit."""
    p = full.patients[0]
    level = p.injected[0]
    late = []
    for v in p.visits:
        iron = v.truth["discs"][level]["iron"]
        rule = iron["rule50"]
        vols = [iron["void_volume_rule50_mm3_by_te"][str(te)] for te in v.series_by_key("gre").echo_times]
        assert vols == sorted(vols)
        assert all(c <= 1 for c in rule["void_components_by_te"].values())
        assert all(a >= 0.85 for a in rule["reference_iron_attenuation_by_te"].values())
        late.append(vols[-1])
    assert late[0] == 0 and late[1] > late[2] > late[3] > 0 and late[4] < late[3]


# ---- R2* ----------------------------------------------------------------------------------------------------
def _vb_roi(vt, name, n):
    lm = {k: np.array(p) for k, p in vt["vertebrae"][name]["landmarks"].items()}
    c = np.mean(list(lm.values()), axis=0)
    a = lm["upper_anterior"] - lm["upper_posterior"]
    b = lm["upper_middle"] - lm["lower_middle"]
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return PlaneROI("ellipse", [c, c + a * 8.0, c + b * 6.0], c, n, slab_mm=2.0)


@pytest.mark.parametrize("size", ["small", "full"])
def test_r2star_tissue_within_2_percent(size, small, full):
    study = small if size == "small" else full
    truth = study.truth["r2s_per_s_by_tissue"]
    worst = {}
    mean_marrow = []
    for v in study.patients[0].visits[::2]:
        gre = v.series_by_key("gre")
        vol0 = gre.volume(0)
        n = _normal(vol0.affine)
        rois = {f"marrow {name}": (_vb_roi(v.truth, name, n), truth["marrow"])
                for name in ("L1", "L2", "L3", "L4", "L5")}
        if size == "full":
            for level, d in v.truth["discs"].items():
                if d["degenerated"] and not (d.get("iron") or {}).get("present"):
                    r = d["signal_rois_t2"]["nucleus"]
                    rois[f"nucleus {level}"] = (PlaneROI("ellipse", r["points"], r["points"][0], n),
                                                truth["nucleus_degenerated"])
        masks = {k: roi_mask(vol0, roi) for k, (roi, _) in rois.items()}
        union = np.any(list(masks.values()), axis=0)
        m = r2star_map(gre.arrays, gre.echo_times, mask=union, noise_sigma=v.noise_sigma)
        marrow = []
        for k, (roi, t) in rois.items():
            val = float(np.nanmean(m.r2s_per_s[masks[k]]))
            err = val / t - 1
            worst[k.split()[0]] = max(worst.get(k.split()[0], 0.0), abs(err))
            if k.startswith("marrow"):
                marrow.append(val)
        mean_marrow.append(abs(np.mean(marrow) / truth["marrow"] - 1))
    print(f"\n{size} phantom R2* worst ROI error: " + ", ".join(f"{k} {100 * e:.2f} %" for k, e in worst.items())
          + f"; worst mean of the five marrow ROIs {100 * max(mean_marrow):.2f} %")
    if size == "full":
        assert all(e <= 0.02 for e in worst.values())
    else:  # ~85 voxels per ROI at SNR ≈ 12 on the last echo: single ROIs scatter by ≈ 1.5 %
        assert all(e <= 0.03 for e in worst.values())
    assert max(mean_marrow) <= 0.02


def test_r2star_map_whole_series_small_phantom(small):
    """Both fits run over a whole multi-echo series (speed: benchmarks/bench_r2star.py)."""
    v = small.patients[0].visits[1]
    gre = v.series_by_key("gre")
    for kw in ({}, {"noise_sigma": v.noise_sigma}):
        m = r2star_map(gre.arrays, gre.echo_times, **kw)
        assert m.r2s_per_s.shape == gre.array.shape
        assert np.isfinite(m.r2s_per_s).mean() > 0.5

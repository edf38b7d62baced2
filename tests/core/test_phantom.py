"""Tests of the synthetic lumbar-spine phantom (discviewer.phantom): DICOM, geometry, truth, physics."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from discviewer.phantom import anatomy as A
from discviewer.phantom import generate_study, write_study
from discviewer.phantom.dicomwrite import write_visit
from discviewer.phantom.geometry import format_ds, quantise, rotation_angle_deg
from discviewer.volume import affine_from_dicom

SEED = int(os.environ.get("DISCVIEWER_PHANTOM_TEST_SEED", "0"))


@pytest.fixture(scope="module")
def study():
    return generate_study(patients=1, seed=SEED, size="small")


@pytest.fixture(scope="module")
def patient(study):
    return study.patients[0]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    calls = []
    path = write_study(out, patients=1, seed=SEED, size="small", progress=lambda d, t: calls.append((d, t)))
    return path, calls


def _read_series(folder: Path):
    """{echo number: [datasets sorted along the slice normal]} for one series folder."""
    by_echo: dict[int, list] = {}
    for f in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        by_echo.setdefault(int(ds.EchoNumbers), []).append(ds)
    for e, lst in by_echo.items():
        iop = np.array(lst[0].ImageOrientationPatient, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        lst.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=float))))
    return by_echo


def _index(affine, pt):
    inv = np.linalg.inv(affine)
    return inv[:3, :3] @ np.asarray(pt, dtype=float) + inv[:3, 3]  # column, row, slice


# ---- package hygiene --------------------------------------------------------------------------------
def test_phantom_imports_without_gui_libraries():
    code = ("import sys\n"
            "for m in ('PySide6', 'pyqtgraph', 'vtk', 'vtkmodules'): sys.modules[m] = None\n"
            "import discviewer.phantom, discviewer.phantom.anatomy, discviewer.phantom.signal\n"
            "import discviewer.phantom.dicomwrite, discviewer.phantom.geometry, discviewer.phantom.study\n"
            "import discviewer.phantom.sampling\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_format_ds_is_exact_and_short():
    for v in (-149.70703125, 0.5859375, 1.875, -16.831969123, 123456.123456789, 0.0, -0.0000004, 4.0):
        s = format_ds(v)
        assert len(s) <= 16
        assert float(s) == quantise(v)
        assert abs(float(s) - v) <= 5e-7


# ---- determinism --------------------------------------------------------------------------------------
def test_same_seed_same_study_different_seed_differs(study):
    again = generate_study(patients=1, seed=SEED, size="small")
    assert json.dumps(again.truth, sort_keys=True) == json.dumps(study.truth, sort_keys=True)
    for va, vb in zip(again.patients[0].visits, study.patients[0].visits):
        for sa, sb in zip(va.series, vb.series):
            for a, b in zip(sa.arrays, sb.arrays):
                assert np.array_equal(a, b)
            assert np.array_equal(sa.affine, sb.affine)
    other = generate_study(patients=1, seed=SEED + 1, size="small")
    assert other.truth != study.truth
    assert not np.array_equal(other.patients[0].visits[0].series[0].array, study.patients[0].visits[0].series[0].array)
    assert other.patients[0].visits[0].study_uid != study.patients[0].visits[0].study_uid


def test_written_files_are_byte_identical_to_a_rewrite(written, study, tmp_path):
    out, _ = written
    patient = study.patients[0]
    visit = patient.visits[1]
    write_visit(tmp_path, patient, visit, SEED, "small")
    files = sorted((out / visit.series[2].folder).glob("*.dcm"))
    assert files
    for f in files:
        assert f.read_bytes() == (tmp_path / visit.series[2].folder / f.name).read_bytes()


# ---- DICOM content ------------------------------------------------------------------------------------
REQUIRED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
            "StudyTime", "StudyDescription", "AccessionNumber", "SeriesInstanceUID", "SeriesNumber",
            "SeriesDescription", "Modality", "FrameOfReferenceUID", "ImagePositionPatient",
            "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "SpacingBetweenSlices", "InstanceNumber",
            "SliceLocation", "EchoTime", "EchoNumbers", "RepetitionTime", "MagneticFieldStrength", "SequenceName",
            "ScanningSequence", "ImageType", "Manufacturer", "BodyPartExamined", "PatientPosition", "Rows",
            "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
            "PhotometricInterpretation", "WindowCenter", "WindowWidth", "SOPInstanceUID", "SOPClassUID", "PixelData")


def test_written_layout_tags_pixels_and_geometry(written, patient):
    out, calls = written
    assert (out / "truth.json").is_file()
    assert calls[-1] == (10, 10) and [c[0] for c in calls] == list(range(1, 11))
    sop_uids = set()
    for visit in patient.visits:
        for series in visit.series:
            folder = out / series.folder
            assert folder.parent.parent.name == patient.folder
            by_echo = _read_series(folder)
            n_echo = len(series.echo_times)
            assert sorted(by_echo) == list(range(1, n_echo + 1))
            assert len(list(folder.glob("IM_*.dcm"))) == n_echo * series.geometry.n_slices
            for e, lst in by_echo.items():
                first = lst[0]
                for ds in lst:
                    for tag in REQUIRED:
                        assert tag in ds, tag
                    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
                    assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
                    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
                    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
                    assert ds.Modality == "MR" and ds.Manufacturer == "discviewer phantom"
                    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "M", "ND"]
                    assert ds.BodyPartExamined == "LSPINE" and ds.PatientPosition == "HFS"
                    assert ds.SeriesInstanceUID == series.uid and ds.StudyInstanceUID == visit.study_uid
                    assert ds.FrameOfReferenceUID == visit.frame_uid
                    assert float(ds.EchoTime) == series.echo_times[e - 1]
                    assert float(ds.RepetitionTime) == series.repetition_time
                    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 0)
                    assert ds.PhotometricInterpretation == "MONOCHROME2"
                    assert all(len(str(v)) <= 16 for v in ds["ImagePositionPatient"].value)
                    sop_uids.add(ds.SOPInstanceUID)
                stack = np.stack([np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns)
                                  for ds in lst])
                assert np.array_equal(stack, series.arrays[e - 1])
                assert np.array_equal(lst[0].pixel_array, series.arrays[e - 1][0])
                step = np.array(lst[1].ImagePositionPatient, float) - np.array(first.ImagePositionPatient, float)
                aff = affine_from_dicom(first.ImagePositionPatient, first.ImageOrientationPatient,
                                        first.PixelSpacing, step)
                np.testing.assert_allclose(aff, series.affine, rtol=0, atol=1e-9)
                steps = np.diff([np.array(d.ImagePositionPatient, float) for d in lst], axis=0)
                np.testing.assert_allclose(steps, np.broadcast_to(step, steps.shape), atol=1e-9)
    assert len(sop_uids) == sum(len(s.echo_times) * s.geometry.n_slices for v in patient.visits for s in v.series)


def test_truth_json_matches_memory(written, study):
    out, _ = written
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    assert truth == json.loads(json.dumps(study.truth))
    assert truth["generator"] == {"name": "discviewer.phantom", "version": truth["generator"]["version"],
                                  "seed": SEED, "size": "small"}
    assert "not clinical data" in truth["disclaimer"]


def test_gre_is_one_series_with_all_echoes(patient):
    gre = patient.visits[0].series_by_key("gre")
    assert len(gre.echo_times) >= 4 and list(gre.echo_times) == sorted(gre.echo_times)
    assert all(a.shape == gre.array.shape and a.dtype == np.uint16 for a in gre.arrays)
    vol = gre.volume(2, visit=patient.visits[0], patient=patient)
    assert vol.info.echo_number == 3 and vol.info.echo_time == gre.echo_times[2]
    assert vol.spacing == pytest.approx((1.875, 1.875, 4.0))


# ---- visits and repositioning -----------------------------------------------------------------------
def test_five_visits_with_own_study_and_frame(patient):
    visits = patient.visits
    assert [v.label for v in visits] == ["baseline", "3 m", "6 m", "12 m", "24 m"]
    assert len({v.study_uid for v in visits}) == 5 and len({v.frame_uid for v in visits}) == 5
    dates = [v.study_date for v in visits]
    assert dates == sorted(dates) and len(set(dates)) == 5
    days = [v.days for v in visits]
    assert days[0] == 0
    for d, nominal in zip(days[1:], (90, 180, 365, 730)):
        assert abs(d - nominal) <= 14


def test_transforms_are_rigid_inverse_and_small(patient):
    for v in patient.visits:
        m, inv = v.visit_to_baseline, v.baseline_to_visit
        np.testing.assert_allclose(m @ inv, np.eye(4), atol=1e-12)
        np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
        assert rotation_angle_deg(m) <= 3.0 + 1e-9
        assert np.linalg.norm(m[:3, 3]) <= 10.0 + 1e-9
        t = v.truth
        np.testing.assert_allclose(np.array(t["visit_to_baseline"]) @ np.array(t["baseline_to_visit"]),
                                   np.eye(4), atol=1e-6)
    assert np.array_equal(patient.visits[0].visit_to_baseline, np.eye(4))
    assert any(rotation_angle_deg(v.visit_to_baseline) > 0.3 for v in patient.visits[1:])


def test_transform_maps_landmarks_between_visits(patient):
    """A healthy disc's landmarks in a follow-up map onto the baseline ones (anatomy is fixed there)."""
    base = patient.visits[0].truth["discs"]
    levels = list(A.DISC_LEVELS)
    for v in patient.visits[1:]:
        for i, level in enumerate(levels):
            if level in patient.degenerated:
                continue
            # degenerated discs below this level slowly lose height and let the spine above settle
            settle = sum(np.mean([base[lv][k] - v.truth["discs"][lv][k] for k in ("DHa", "DHm", "DHp")])
                         for lv in levels[i + 1:] if lv in patient.degenerated)
            for name, p in v.truth["discs"][level]["landmarks"].items():
                q = v.visit_to_baseline[:3, :3] @ np.array(p) + v.visit_to_baseline[:3, 3]
                assert np.linalg.norm(q - np.array(base[level]["landmarks"][name])) < 1.3 * settle + 0.05


# ---- anatomy / truth consistency --------------------------------------------------------------------------
def test_disc_heights_realistic_and_degenerated_lower(patient):
    for v in patient.visits:
        discs = v.truth["discs"]
        for level, d in discs.items():
            for k in ("DHa", "DHm", "DHp"):
                assert 4.0 <= d[k] <= 16.0, (level, k, d[k])
        levels = list(A.DISC_LEVELS)
        for level in patient.degenerated:
            i = levels.index(level)
            healthy = [j for j, lv in enumerate(levels) if lv not in patient.degenerated]
            above = [levels[j] for j in healthy if j < i][-1:]
            below = [levels[j] for j in healthy if j > i][:1]
            neighbours = above + below  # nearest healthy level on each side
            assert neighbours
            mean_deg = np.mean([discs[level][k] for k in ("DHa", "DHm", "DHp")])
            for n in neighbours:
                assert mean_deg < np.mean([discs[n][k] for k in ("DHa", "DHm", "DHp")])
        assert discs["L5/S1"]["DHa"] > discs["L5/S1"]["DHp"]  # wedge: taller anteriorly
    for level in patient.degenerated:  # progressive loss
        dhm = [v.truth["discs"][level]["DHm"] for v in patient.visits]
        assert dhm == sorted(dhm, reverse=True) and dhm[0] > dhm[-1]


def test_injected_default_level(patient):
    assert "L4/L5" in patient.injected
    assert set(patient.injected) <= set(patient.degenerated) and 1 <= len(patient.degenerated) <= 2


def test_landmarks_consistent_with_image(patient):
    for v in patient.visits[:2]:
        t2 = v.series_by_key("t2")
        marrow = t2.array[(v.labels >= A.VERTEBRA_BASE) & (v.labels < A.VERTEBRA_BASE + len(A.VERTEBRAE))]
        for level, d in v.truth["discs"].items():
            k = A.DISCS.index(level)
            lm = {n: np.array(p) for n, p in d["landmarks"].items()}
            for pos in ("anterior", "middle", "posterior"):
                mid = (lm[f"upper_{pos}"] + lm[f"lower_{pos}"]) / 2
                c, r, s = np.rint(_index(t2.affine, mid)).astype(int)
                assert v.labels[s, r, c] in (A.ANNULUS_BASE + k, A.NUCLEUS_BASE + k), (level, pos)
                # 3 mm beyond each endplate, perpendicular to it, lies bone of the neighbouring vertebra
                for which, sign in (("upper", 1.0), ("lower", -1.0)):
                    along = lm[f"{which}_anterior"] - lm[f"{which}_posterior"]
                    height = lm["upper_middle"] - lm["lower_middle"]
                    out = height - along * np.dot(height, along) / np.dot(along, along)
                    p = lm[f"{which}_{pos}"] + sign * 3.0 * out / np.linalg.norm(out)
                    c2, r2, s2 = np.rint(_index(t2.affine, p)).astype(int)
                    lab = v.labels[s2, r2, c2]
                    assert lab == A.CORTEX or A.VERTEBRA_BASE <= lab < A.VERTEBRA_BASE + len(A.VERTEBRAE)
            # the nucleus at the disc centre: disc-like on T2 (bright when healthy)
            c, r, s = np.rint(_index(t2.affine, d["centre"])).astype(int)
            patch = t2.array[s, r, c - 1:c + 2].astype(float).mean()  # 3 pixels along the disc
            if not d["degenerated"]:
                assert patch > 1.2 * np.median(marrow), level
            assert d["mid_sagittal_slice"] == s


def test_degenerated_nucleus_darker_on_t2(patient):
    for v in patient.visits:
        t2 = v.series_by_key("t2").array
        img_mean = {}
        for level, d in v.truth["discs"].items():
            mask = v.labels == A.NUCLEUS_BASE + A.DISCS.index(level)
            img_mean[level] = float(t2[mask].mean())
        healthy = [lv for lv in A.DISC_LEVELS if lv not in patient.degenerated]
        for level in patient.degenerated:
            assert max(v.truth["discs"][level]["nucleus_signal_t2"], img_mean[level]) < \
                0.6 * min(min(v.truth["discs"][h]["nucleus_signal_t2"] for h in healthy),
                          min(img_mean[h] for h in healthy))


# ---- noise --------------------------------------------------------------------------------------
def test_background_noise_is_rayleigh_with_known_sigma(patient):
    for v in patient.visits:
        air = (v.labels == A.AIR)
        # stay clear of the body edge (blur) by eroding the air mask in-plane
        from scipy import ndimage
        air = ndimage.binary_erosion(air, structure=np.ones((1, 7, 7), bool))
        assert air.sum() > 2000
        for s in v.series:
            vals = s.arrays[-1][air].astype(float)
            sigma = v.truth["noise_sigma"]
            assert vals.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.15)
            assert vals.std() == pytest.approx(sigma * np.sqrt(2 - np.pi / 2), rel=0.15)


def test_gain_differs_between_visits(patient):
    gains = [v.gain for v in patient.visits]
    assert len(set(gains)) == 5 and max(gains) / min(gains) > 1.05


# ---- iron --------------------------------------------------------------------------------------
def _iron(v, level="L4/L5"):
    return v.truth["discs"][level]["iron"]


def _region(series, centre, radius_mm, echo):
    c, r, s = _index(series.affine, centre)
    s = int(np.rint(s))
    rr, cc = np.mgrid[0:series.geometry.rows, 0:series.geometry.columns]
    ps = series.geometry.pixel_spacing[0]
    m = ((rr - r) ** 2 + (cc - c) ** 2) * ps * ps <= radius_mm**2
    return series.arrays[echo][s][m].astype(float)


def test_iron_absent_at_baseline_and_fades(patient):
    it = [_iron(v) for v in patient.visits]
    assert not it[0]["present"] and it[0]["volume_mm3"] == 0 and it[0]["centre"] is None
    assert all(i["present"] for i in it[1:])
    r2s = [i["r2s_per_s"] for i in it]
    assert r2s[0] == pytest.approx(it[0]["tissue_r2s_per_s"])
    assert r2s[1] > r2s[2] > r2s[3] > r2s[4] > r2s[0]
    for i in it[1:]:
        voids = [i["void_volume_mm3_by_te"][k] for k in sorted(i["void_volume_mm3_by_te"], key=float)]
        assert voids == sorted(voids)
        assert i["volume_mm3"] > 0


def test_iron_signal_drops_more_at_long_te(patient):
    base, v3 = patient.visits[0], patient.visits[1]
    centre_v3 = np.array(_iron(v3)["centre"])
    m = v3.visit_to_baseline
    centre_b = m[:3, :3] @ centre_v3 + m[:3, 3]
    g3, g0 = v3.series_by_key("gre"), base.series_by_key("gre")
    drop = []
    for e in (0, len(g3.echo_times) - 1):
        drop.append(_region(g3, centre_v3, 4.0, e).mean() / _region(g0, centre_b, 4.0, e).mean())
    assert drop[1] < 0.75 * drop[0]
    # also visibly dark on T2 FSE compared with baseline (ratio against a healthy nucleus)
    t3, t0 = v3.series_by_key("t2"), base.series_by_key("t2")
    healthy = next(lv for lv in A.DISC_LEVELS if lv not in patient.degenerated)
    ref3 = np.array(v3.truth["discs"][healthy]["centre"])
    ref0 = np.array(base.truth["discs"][healthy]["centre"])
    r3 = _region(t3, centre_v3, 2.5, 0).mean() / _region(t3, ref3, 2.5, 0).mean()
    r0 = _region(t0, centre_b, 2.5, 0).mean() / _region(t0, ref0, 2.5, 0).mean()
    assert r3 < 0.9 * r0


def _void_volume_mm3(v, echo, centre, level="L4/L5"):
    """Volume (mm³) of the disc's voxels within 12 mm of `centre` darker than half of the disc's median
    signal farther than 12 mm away (same slice), summed over slices."""
    g = v.series_by_key("gre")
    c, r, s0 = _index(g.affine, centre)
    ps = g.geometry.pixel_spacing[0]
    step = g.geometry.slice_spacing
    rr, cc = np.mgrid[0:g.geometry.rows, 0:g.geometry.columns]
    k = A.DISCS.index(level)
    total = 0.0
    for s in range(g.geometry.n_slices):
        dz = (s - s0) * step
        if abs(dz) >= 12.0:
            continue
        img = g.arrays[echo][s].astype(float)
        d2 = ((rr - r) ** 2 + (cc - c) ** 2) * ps * ps
        disc = (v.labels[s] == A.ANNULUS_BASE + k) | (v.labels[s] == A.NUCLEUS_BASE + k)
        ref = np.median(img[disc & (d2 > 144.0)])
        total += ((img < 0.5 * ref) & (d2 + dz * dz < 144.0) & disc).sum() * ps * ps * step
    return float(total)


def test_void_grows_with_te_and_shrinks_over_follow_up(patient):
    n_echo = len(patient.visits[1].series_by_key("gre").echo_times)
    c3 = np.array(_iron(patient.visits[1])["centre"])
    m = patient.visits[1].visit_to_baseline
    centre_b = m[:3, :3] @ c3 + m[:3, 3]  # where the deposit will be, in baseline space
    areas = {}
    for v in patient.visits:
        centre = centre_b if v.index == 0 else np.array(_iron(v)["centre"])
        areas[v.label] = [_void_volume_mm3(v, e, centre) for e in range(n_echo)]
    assert areas["baseline"][-1] <= 4.0  # nothing void-like before the injection
    a3 = areas["3 m"]
    assert a3[-1] > a3[0] and a3[-1] >= max(a3[:2])
    late = [areas[k][-1] for k in ("3 m", "6 m", "12 m", "24 m")]
    assert late[0] > late[1] > late[2] >= late[3]


# ---- truth = painted geometry; partial volume ------------------------------------------------------------
def _paint_points(anat, spine, pts):
    """Tissue labels (and nucleus weights) of the phantom at anatomical points (N, 3)."""
    from discviewer.phantom.sampling import PointGrid

    pts = np.asarray(pts, dtype=np.float64)
    order = np.argsort(pts[:, 1], kind="stable")
    g = PointGrid(np.eye(4), pts[order].T, np.floor(pts[order, 1]).astype(np.int64))
    A.paint(g, anat, spine)
    lab, w = np.empty_like(g.labels), np.empty_like(g.w)
    lab[order], w[order] = g.labels, g.w
    return lab, w, g, order


def test_landmark_truth_lies_on_the_painted_endplates(patient):
    """Each truth landmark sits on the painted disc/bone boundary (to 0.01 mm), and each endplate corner
    is where the painted endplate surface meets the painted wall: the truth is the painted geometry."""
    anat = patient.anatomy
    spine = A.build_spine(anat, 0.0)  # baseline: anatomical = patient coordinates
    v = patient.visits[0]
    eps = 0.01
    for level, d in v.truth["discs"].items():
        k = A.DISCS.index(level)
        lm = {n: np.array(p) for n, p in d["landmarks"].items()}
        for which, other in (("upper", "lower"), ("lower", "upper")):
            for pos in ("anterior", "middle", "posterior"):
                p = lm[f"{which}_{pos}"]
                inward = lm[f"{other}_{pos}"] - p
                inward /= np.linalg.norm(inward)
                (lab_in, lab_out), _, _, _ = _paint_points(anat, spine, [p + eps * inward, p - eps * inward])
                assert lab_in == A.ANNULUS_BASE + k, (level, which, pos, lab_in)
                assert lab_out == A.CORTEX, (level, which, pos, lab_out)
        for which, vname, side in (("upper", A.VERTEBRAE[k], "inferior"), ("lower", A.VERTEBRAE[k + 1], "superior")):
            vert = spine.vertebrae[vname]
            _, u_m, n_m = vert.mid
            plane = vert.bottom if side == "inferior" else vert.top
            corners = A.endplate_corners(vert, side)
            away = n_m if which == "upper" else -n_m  # from the endplate into the body
            for pos, sgn in (("anterior", 1.0), ("posterior", -1.0)):
                c = np.array(d["endplate_corners"][f"{which}_{pos}"])
                # 3 mm up the wall from the corner: cortex just inside the wall line, no bone just outside
                p = c + 3.0 * away
                (lab_in, lab_out), _, _, _ = _paint_points(anat, spine, [p - sgn * eps * u_m, p + sgn * eps * u_m])
                assert lab_in == A.CORTEX and lab_out != A.CORTEX, (level, which, pos, lab_in, lab_out)
                # 3 mm along the endplate from the corner: cortex just inside the endplate, disc just outside
                q = A.endplate_point(plane, corners["a_" + pos] - sgn * 3.0, side == "superior")
                (lab_in, lab_out), _, _, _ = _paint_points(anat, spine, [q + eps * away, q - eps * away])
                assert lab_in == A.CORTEX and lab_out == A.ANNULUS_BASE + k, (level, which, pos)


NB = 8  # brute-force points per voxel edge


def test_voxels_average_the_signal_model_over_their_extent(patient):
    """Partial volume: the noise-free image (before texture, coil shading and PSF) is the mean of the
    signal model over each voxel's extent in-plane and through-plane — checked against brute force
    (8 × 8 × 8 points) on 40 boundary voxels and 16 voxels near the deposit of a small-phantom visit
    (GRE, longest TE). The renderer's 23-point lattice errs by ≤ ~0.1 of the voxel's contrast (RMS
    ~0.03), like the area-fraction error of the lattice itself."""
    from discviewer.phantom import signal as S
    from discviewer.phantom import study as St

    v = patient.visits[1]
    anat = patient.anatomy
    spine = A.build_spine(anat, float(v.days))
    params = {d: dict(radius=patient.truth["iron_deposit_radius_mm"][d], r2s_peak=1.0, tau_days=1.0,
                      offset=(0.0, 0.0, 0.0)) for d in patient.injected}
    deposits = St._deposits_at(spine, anat, v.days, patient.truth["injection_day"], params)
    deposits = {d: S.IronDeposit(dep.centre, dep.radius_mm, 400.0) for d, dep in deposits.items()}
    geom = v.series[0].geometry
    cfg = dict(St.SIZES["small"], psf_px=0.0)
    flat = S.Texture(np.random.default_rng(0))
    flat.amp[:] = 0.0
    images, labels = St._render(anat, spine, deposits, geom, v.visit_to_baseline, cfg, flat, 1.0)
    aff = geom.affine
    lut, dlut = S.signal_luts(S.tissue_tables(anat), St.PROTOCOL[2].sequence)[-1]
    te = St.PROTOCOL[2].sequence.te_ms[-1] / 1000.0
    rng = np.random.default_rng(1)
    # boundary voxels (the centre label differs from a neighbour's) and voxels near the deposit
    lab = labels[3:6]
    edge = np.zeros_like(lab, bool)
    edge[:, 1:-1, 1:-1] = (lab[:, 1:-1, 1:-1] != lab[:, :-2, 1:-1]) | (lab[:, 1:-1, 1:-1] != lab[:, 1:-1, :-2])
    kk, rr, cc = np.nonzero(edge)
    picks = [(kk[i] + 3, rr[i], cc[i]) for i in rng.choice(kk.size, 40, replace=False)]
    dep = next(iter(deposits.values()))
    centre_v = v.baseline_to_visit[:3, :3] @ np.array(dep.centre) + v.baseline_to_visit[:3, 3]
    cd, rd, kd = np.rint(np.linalg.inv(aff)[:3, :3] @ centre_v + np.linalg.inv(aff)[:3, 3]).astype(int)
    picks += [(kd + dk, rd + dr, cd + dc) for dk in (-1, 0) for dr in (-3, -2, 2, 3) for dc in (-2, 2)]
    g = (np.arange(NB) + 0.5) / NB - 0.5
    sub = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)  # column, row, slice offsets
    errs = []
    for k, r, c in picks:
        pts_v = (np.array([c, r, k], float) + sub) @ aff[:3, :3].T + aff[:3, 3]
        pts_a = pts_v @ v.visit_to_baseline[:3, :3].T + v.visit_to_baseline[:3, 3]
        lab_p, w_p, _, _ = _paint_points(anat, spine, pts_a)
        tissue = lut[lab_p] + w_p * dlut[lab_p]  # without iron
        s = tissue * np.exp(-te * sum(d.delta_r2s(*pts_a.T) for d in deposits.values()))
        centre = np.array([c, r, k], float) @ aff[:3, :3].T + aff[:3, 3]
        coil = float(S.coil_shading(np.float32(centre[1]), np.float32(centre[2])))
        got = float(images["gre"][-1][k, r, c]) / coil
        scale = max(float(tissue.max() - tissue.min()), 0.2 * float(tissue.mean()), 1e-6)
        errs.append((got - float(s.mean())) / scale)
    errs = np.abs(errs)
    print(f"\npartial volume vs brute force ({errs.size} voxels): max {errs.max():.3f}, "
          f"RMS {np.sqrt((errs ** 2).mean()):.3f} of the voxel's tissue contrast (≥ 20 % of its tissue signal)")
    assert errs.max() <= 0.15 and np.sqrt((errs ** 2).mean()) <= 0.05

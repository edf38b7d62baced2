"""DICOM scan and load on real MR data (../shared/data/real; skipped cleanly when absent)."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from discviewer.io import LoadError, load, scan
from discviewer.volume import Volume

pytestmark = pytest.mark.realdata


def test_transfer_syntaxes_decode_to_identical_pixels(real_data):
    folder = real_data / "dcm_qa_ts"
    result = scan(folder)
    cands = sorted(result.series, key=lambda c: c.files[0])
    assert [c.files[0].rsplit("/", 1)[-1] for c in cands] == [f"{i}.dcm" for i in range(1, 10)]
    syntaxes = {c.private["headers"][0].transfer_syntax for c in cands}
    assert len(syntaxes) >= 7  # explicit/implicit LE, BE, RLE, JPEG lossless, JPEG-LS, J2K
    vols = [load(c) for c in cands]
    ref = vols[0].array
    assert ref.shape == (1, 384, 384) and ref.std() > 0
    for c, v in zip(cands, vols):
        assert np.array_equal(v.array, ref), c.files[0]
        assert np.array_equal(v.affine, vols[0].affine)
    # and equal to what pydicom itself decodes from the uncompressed file
    assert np.array_equal(pydicom.dcmread(folder / "1.dcm").pixel_array, ref[0])


def test_philips_classic_and_enhanced_give_identical_volumes(real_data):
    result = scan(real_data / "dcm_qa_philips_enh_fieldmap")
    classic = {(c.echo_time, c.info.complex_part): c for c in result.series if not c.is_multiframe}
    enhanced = {(c.echo_time, c.info.complex_part): c for c in result.series if c.is_multiframe}
    assert set(classic) == set(enhanced) == {(2.3, "MAGNITUDE"), (2.3, "PHASE"), (4.6, "MAGNITUDE"), (4.6, "PHASE")}
    for key in classic:
        a, b = load(classic[key]), load(enhanced[key])
        assert a.shape == b.shape == (53, 80, 80)
        assert np.array_equal(a.array, b.array), key
        # the two files spell one position with one digit less: identical to the source's precision
        np.testing.assert_allclose(a.affine, b.affine, rtol=0, atol=1e-9)
        assert classic[key].echo_time == enhanced[key].echo_time
    # rescale applied: Philips slope ≠ 1 → float values
    mag = load(classic[(2.3, "MAGNITUDE")])
    raw = pydicom.dcmread(classic[(2.3, "MAGNITUDE")].files[0])
    k = 0
    expected = raw.pixel_array * float(raw.RescaleSlope) + float(raw.RescaleIntercept)
    np.testing.assert_allclose(mag.array[k], expected, rtol=1e-6)


def test_decubitus_affines_put_every_voxel_at_its_ipp(real_data):
    result = scan(real_data / "dcm_qa_decubitus")
    assert len(result.series) == 3
    frames_of_ref = set()
    for c in result.series:
        v = load(c)
        assert v.shape == (35, 256, 256)
        np.testing.assert_allclose(v.spacing, (1.015625, 1.015625, 4.8), atol=1e-4)
        frames_of_ref.add(c.info.frame_of_reference_uid)
        for k, f in enumerate(c.frames):
            ds = pydicom.dcmread(f.path)
            ipp = np.array([float(x) for x in ds.ImagePositionPatient])
            iop = np.array([float(x) for x in ds.ImageOrientationPatient])
            rs, cs = (float(x) for x in ds.PixelSpacing)
            # first voxel, last voxel of the first row, last voxel of the first column
            np.testing.assert_allclose(v.index_to_patient([0, 0, k]), ipp, atol=1e-4)
            np.testing.assert_allclose(v.index_to_patient([255, 0, k]), ipp + 255 * cs * iop[:3], atol=1e-4)
            np.testing.assert_allclose(v.index_to_patient([0, 255, k]), ipp + 255 * rs * iop[3:], atol=1e-4)
            assert np.array_equal(v.array[k], ds.pixel_array)
        assert not c.warnings
    assert len(frames_of_ref) == 3


def test_broken_files_are_problems_and_the_rest_still_loads(real_data):
    folder = real_data / "pydicom_testfiles"
    result = scan(folder)
    reasons = {p.path.rsplit("/", 1)[-1]: p.reason for p in result.problems}
    broken = {
        "MR_truncated.dcm": "truncated",
        "no_meta.dcm": "not a DICOM file",
        "meta_missing_tsyntax.dcm": "Transfer Syntax",
        "emri_small_jpeg_2k_lossless_too_short.dcm": "cut short",
        "badVR.dcm": "not an image",
        "no_meta_group_length.dcm": "",
        "ExplVR_BigEndNoMeta.dcm": "",
        "ExplVR_LitEndNoMeta.dcm": "",
        "README.txt": "not a DICOM file",
    }
    for name, words in broken.items():
        assert name in reasons, f"{name} should be reported as a problem"
        assert words in reasons[name]
        assert len(reasons[name]) > 10 and "\n" not in reasons[name]
    # every other image in the same folders still loads
    loaded = 0
    for c in result.series:
        v = load(c)
        assert isinstance(v, Volume) and v.array.size > 0
        loaded += 1
    names = {f.rsplit("/", 1)[-1] for c in result.series for f in c.files}
    for ok in ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
               "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "emri_small.dcm",
               "emri_small_jpeg_ls_lossless.dcm", "image_dfl.dcm", "MR2_J2KR.dcm", "examples_overlay.dcm"):
        assert ok in names
    assert loaded == len(result.series) >= 20


def test_mr_small_variants_and_enhanced_without_geometry(real_data):
    base = real_data / "pydicom_testfiles"
    r = scan(base / "pydicom-3.0.2")
    small = [c for c in r.series if c.files[0].rsplit("/", 1)[-1].startswith("MR_small")]
    arrays = [load(c).array for c in small]
    assert len(arrays) == 8
    for a in arrays:
        assert np.array_equal(a, arrays[0])
    r2 = scan(base / "pydicom-data-1.0.0" / "emri_small.dcm")
    (c,) = r2.series
    assert c.slice_count == 10 and c.is_multiframe
    assert any("without per-frame geometry" in w for w in c.warnings)
    v = load(c)
    assert np.array_equal(v.array, pydicom.dcmread(c.files[0]).pixel_array)
    for other in ("emri_small_RLE.dcm", "emri_small_big_endian.dcm", "emri_small_jpeg_2k_lossless.dcm",
                  "emri_small_jpeg_ls_lossless.dcm"):
        (c2,) = scan(base / "pydicom-data-1.0.0" / other).series
        assert np.array_equal(load(c2).array, v.array), other


def test_dicomdir_lists_patients_and_studies(real_data):
    result = scan(real_data / "pydicom_testfiles" / "pydicom-3.0.2" / "dicomdirtests" / "DICOMDIR")
    pats = {p.patient_id: p for p in result.patients}
    assert set(pats) == {"77654033", "98890234"}
    assert len(pats["77654033"].studies) == 2
    assert len(pats["98890234"].studies) >= 3
    descriptions = {c.info.series_description for p in result.patients for s in p.studies for c in s.series}
    assert "FAST LOCALIZER" in descriptions
    modalities = {c.info.modality for c in result.series}
    assert {"MR", "CT", "CR"} <= modalities
    assert result.files_seen == 31


def test_echoes_split_with_echo_times(real_data):
    result = scan(real_data / "dcm_qa_fmap_siemens")
    assert [c.echo_time for c in result.series] == [5.19, 7.65]
    assert all(c.slice_count == 36 for c in result.series)
    assert all("TE" in c.label for c in result.series)
    a, b = (load(c) for c in result.series)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-6)
    assert not np.array_equal(a.array, b.array)


def test_nifti_loads_in_lps(real_data):
    import nibabel as nib

    from discviewer.io import load_nifti

    path = real_data / "sct_testing_data_nifti" / "t2" / "t2.nii.gz"
    v = load_nifti(path)
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)
    assert v.shape == (data.shape[2], data.shape[1], data.shape[0])
    i, j, k = 10, 20, 30
    assert v.array[k, j, i] == data[i, j, k]
    ras = img.affine @ [i, j, k, 1]
    lps = v.index_to_patient([i, j, k])
    np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-6)
    # reached through scan too
    (c,) = scan(path).series
    assert np.array_equal(load(c).array, v.array)


def test_scan_progress_and_cancel(real_data):
    calls = []
    result = scan(real_data / "dcm_qa_decubitus", progress=lambda d, t: calls.append((d, t)))
    total = calls[-1][1]
    assert calls[-1] == (total, total) and [d for d, _ in calls] == list(range(1, total + 1))
    n = {"k": 0}

    def cancel():
        n["k"] += 1
        return n["k"] > 5

    partial = scan(real_data / "dcm_qa_decubitus", cancel=cancel)
    assert partial.cancelled and partial.files_seen == 5
    assert sum(c.slice_count for c in partial.series) + len(partial.problems) == 5  # LICENSE is one
    assert sum(c.slice_count for c in result.series) == 105


def test_source_files_untouched_by_scan_and_load(real_data):
    import hashlib

    folder = real_data / "dcm_qa_decubitus" / "HFS"
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}
    for c in scan(folder).series:
        load(c)
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}
    assert before == after


def test_load_error_names_the_file(real_data, tmp_path):
    import shutil

    src = real_data / "dcm_qa_decubitus" / "HFS"
    dst = tmp_path / "series"
    shutil.copytree(src, dst)
    (c,) = scan(dst).series
    victim = c.frames[3].path
    # the file disappears after the scan: that slice is reported, the others load
    import os
    os.remove(victim)
    v = load(c)
    assert v.shape[0] == 35
    assert any(victim in w and "slice 4" in w for w in v.warnings)
    for f in c.frames:
        if os.path.exists(f.path):
            os.remove(f.path)
    with pytest.raises(LoadError, match="moved or deleted"):
        load(c)


def test_missing_codec_gives_a_clear_load_error(real_data, monkeypatch):
    from discviewer.io import codecs

    real = codecs.importlib.util.find_spec
    monkeypatch.setattr(codecs.importlib.util, "find_spec", lambda n: None if n == "openjpeg" else real(n))
    (c,) = scan(real_data / "dcm_qa_ts" / "9.dcm").series
    with pytest.raises(LoadError) as exc:
        load(c)
    msg = str(exc.value)
    assert "9.dcm" in msg and "JPEG 2000" in msg and "pip install pylibjpeg-openjpeg" in msg

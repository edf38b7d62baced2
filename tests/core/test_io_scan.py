"""Scan grouping, warnings and load geometry on small DICOM files written by the test."""
from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import generate_uid

from discviewer.io import load, scan
from tests.core.dicom_factory import write_slice, write_stack


def test_sorted_by_position_not_by_file_order(tmp_path):
    xs = [8.0, 0.0, 12.0, 4.0, 16.0]
    arrays = write_stack(tmp_path, xs)
    (c,) = scan(tmp_path).series
    v = load(c)
    # the slice normal is row cosine × column cosine = (0,1,0) × (0,0,−1) = (−1,0,0):
    # slices are sorted by distance along it, so slice 0 is the rightmost-left (largest x)
    order = np.argsort(xs)[::-1]
    for k, i in enumerate(order):
        assert np.array_equal(v.array[k], arrays[i])
    # sagittal: columns run along +y (row cosine), rows along −z, slices along −x
    np.testing.assert_allclose(v.affine[:3, 0], [0, 0.8, 0])
    np.testing.assert_allclose(v.affine[:3, 1], [0, 0, -0.5])
    np.testing.assert_allclose(v.affine[:3, 2], [-4.0, 0, 0])
    np.testing.assert_allclose(v.affine[:3, 3], [16.0, -100.0, 50.0])
    assert np.linalg.det(v.affine[:3, :3]) > 0
    assert v.spacing == pytest.approx((0.8, 0.5, 4.0))
    assert not c.warnings and "sag" in c.label


def test_spacing_from_positions_not_slice_thickness(tmp_path):
    write_stack(tmp_path, [0.0, 4.4, 8.8, 13.2])  # SliceThickness says 4
    (c,) = scan(tmp_path).series
    assert c.spacing[2] == pytest.approx(4.4)


def test_uneven_spacing_warning_names_both_files(tmp_path):
    write_stack(tmp_path, [0.0, 4.0, 8.0, 13.0, 17.0, 21.0])
    (c,) = scan(tmp_path).series
    (w,) = [w for w in c.warnings if "uneven" in w]
    assert "IM0002.dcm" in w and "IM0003.dcm" in w and "5.00 mm" in w


def test_missing_slice_warning(tmp_path):
    write_stack(tmp_path, [0.0, 4.0, 8.0, 16.0, 20.0])
    (c,) = scan(tmp_path).series
    (w,) = [w for w in c.warnings if "missing slice" in w]
    assert "IM0002.dcm" in w and "IM0003.dcm" in w and "about 1 slice missing" in w


def test_gantry_tilt_warning_and_exact_geometry(tmp_path):
    uid = generate_uid()
    rng = np.random.default_rng(1)
    for i in range(4):
        write_slice(tmp_path / f"t{i}.dcm", pixels=rng.integers(0, 100, (8, 8), dtype=np.uint16),
                    ipp=(4.0 * i, 0.7 * i, 0.0), series_uid=uid, instance=i + 1)
    (c,) = scan(tmp_path).series
    assert any("sheared" in w for w in c.warnings)
    v = load(c)
    np.testing.assert_allclose(v.index_to_patient([0, 0, 0]), [12.0, 2.1, 0.0], atol=1e-6)
    np.testing.assert_allclose(v.index_to_patient([0, 0, 3]), [0.0, 0.0, 0.0], atol=1e-6)


def test_echoes_split_into_volumes_with_te(tmp_path):
    uid = generate_uid()
    for e, te in enumerate((5.0, 10.0, 15.0, 20.0), start=1):
        write_stack(tmp_path / f"e{e}", [0.0, 4.0, 8.0], series_uid=uid, te=te, echo=e, seed=e)
    cands = scan(tmp_path).series
    assert [c.echo_time for c in cands] == [5.0, 10.0, 15.0, 20.0]
    assert all(c.slice_count == 3 for c in cands)
    assert all(f"TE {te:g} ms" in c.label for c, te in zip(cands, (5, 10, 15, 20)))


def test_magnitude_and_phase_split(tmp_path):
    uid = generate_uid()
    write_stack(tmp_path / "m", [0.0, 4.0], series_uid=uid, image_type=("ORIGINAL", "PRIMARY", "M", "ND"))
    write_stack(tmp_path / "p", [0.0, 4.0], series_uid=uid, image_type=("ORIGINAL", "PRIMARY", "P", "ND"), seed=3)
    cands = scan(tmp_path).series
    assert sorted(c.info.complex_part for c in cands) == ["MAGNITUDE", "PHASE"]


def test_orientations_split_and_localizer_marked(tmp_path):
    uid = generate_uid()
    px = np.zeros((8, 8), np.uint16)
    loc = ("ORIGINAL", "PRIMARY", "LOCALIZER")
    write_slice(tmp_path / "sag.dcm", pixels=px, ipp=(0, 0, 0), iop=(0, 1, 0, 0, 0, -1), series_uid=uid,
                image_type=loc)
    write_slice(tmp_path / "cor.dcm", pixels=px, ipp=(0, 0, 0), iop=(1, 0, 0, 0, 0, -1), series_uid=uid,
                image_type=loc)
    write_slice(tmp_path / "ax.dcm", pixels=px, ipp=(0, 0, 0), iop=(1, 0, 0, 0, 1, 0), series_uid=uid,
                image_type=loc)
    cands = scan(tmp_path).series
    assert len(cands) == 3 and all(c.is_localizer for c in cands)
    assert sorted(c.label.split(" · ")[1] for c in cands) == ["ax", "cor", "sag"]


def test_overlapping_acquisitions_split(tmp_path):
    uid = generate_uid()
    write_stack(tmp_path / "a1", [0.0, 4.0, 8.0], series_uid=uid, acq=1)
    write_stack(tmp_path / "a2", [0.0, 4.0, 8.0], series_uid=uid, acq=2, seed=9)
    cands = scan(tmp_path).series
    assert len(cands) == 2 and all(c.slice_count == 3 for c in cands)
    assert {"acq 1", "acq 2"} == {c.label.split(" · ")[-1] for c in cands}


def test_non_image_and_non_dicom_files_are_problems(tmp_path):
    write_stack(tmp_path / "ok", [0.0, 4.0])
    sr = "1.2.840.10008.5.1.4.1.1.88.22"
    write_slice(tmp_path / "sr.dcm", pixels=np.zeros((2, 2), np.uint16), ipp=(0, 0, 0), series_uid=generate_uid(),
                sop_class=sr)
    (tmp_path / "notes.txt").write_text("hello, not DICOM\n" * 20)
    (tmp_path / "empty.dcm").write_bytes(b"")
    r = scan(tmp_path)
    reasons = {p.path.rsplit("/", 1)[-1]: p.reason for p in r.problems}
    assert "structured report" in reasons["sr.dcm"]
    assert "not a DICOM file" in reasons["notes.txt"]
    assert "empty.dcm" in reasons
    assert len(r.series) == 1 and r.series[0].slice_count == 2


def test_missing_geometry_warns_and_still_loads(tmp_path):
    uid = generate_uid()
    arrays = []
    for i in (2, 1, 3):
        a = np.full((4, 5), i, np.uint16)
        arrays.append(a)
        write_slice(tmp_path / f"g{i}.dcm", pixels=a, ipp=None, series_uid=uid, instance=i, geometry=False)
    (c,) = scan(tmp_path).series
    assert any("missing geometry" in w for w in c.warnings)
    v = load(c)
    assert [int(v.array[k, 0, 0]) for k in range(3)] == [1, 2, 3]  # instance order


def test_rescale_applied_per_slice(tmp_path):
    uid = generate_uid()
    a = np.arange(20, dtype=np.uint16).reshape(4, 5)
    write_slice(tmp_path / "a.dcm", pixels=a, ipp=(0, 0, 0), series_uid=uid, instance=1, slope=2.0, intercept=-5)
    write_slice(tmp_path / "b.dcm", pixels=a, ipp=(4, 0, 0), series_uid=uid, instance=2, slope=0.5, intercept=1)
    v = load(scan(tmp_path).series[0])
    assert v.array.dtype == np.float32
    # sorted along the normal (−x): b (x = 4) is slice 0
    np.testing.assert_allclose(v.array[1], a * 2.0 - 5)
    np.testing.assert_allclose(v.array[0], a * 0.5 + 1)


def test_file_changed_after_scan_is_reread(tmp_path):
    arrays = write_stack(tmp_path, [0.0, 4.0])
    (c,) = scan(tmp_path).series
    new = np.full_like(arrays[0], 7)
    # rewrite slice 0 with a different header length: the stored offset would now be wrong
    write_slice(tmp_path / "IM0000.dcm", pixels=new, ipp=(0.0, -100.0, 50.0), series_uid=c.info.series_uid,
                instance=1, te=123.456789)
    v = load(c)
    assert np.array_equal(v.array[1], new)  # x = 0 is slice 1 (normal −x)
    assert np.array_equal(v.array[0], arrays[1])


def test_missing_codec_message_names_the_package(monkeypatch):
    from discviewer.io import codecs

    real = codecs.importlib.util.find_spec
    monkeypatch.setattr(codecs.importlib.util, "find_spec", lambda n: None if n == "openjpeg" else real(n))
    msg = codecs.decoder_message("1.2.840.10008.1.2.4.90", "/x/y.dcm")
    assert msg and "/x/y.dcm" in msg and "pip install pylibjpeg-openjpeg" in msg and "JPEG 2000" in msg
    assert codecs.decoder_message("1.2.840.10008.1.2.4.80", "/x/y.dcm") is None


def test_scan_json_round_trip(tmp_path):
    import json

    write_stack(tmp_path, [0.0, 4.0, 8.0])
    data = json.loads(json.dumps(scan(tmp_path).to_json()))
    (s,) = data["series"]
    assert s["shape"] == [3, 12, 10] and s["echo_time_ms"] == 90.0
    assert s["spacing_mm"] == pytest.approx([0.8, 0.5, 4.0])
    assert len(s["affine"]) == 4 and s["warnings"] == []


def test_load_slice_reads_one_frame_at_its_true_position(tmp_path):
    from discviewer.io import load_slice

    write_stack(tmp_path, [0.0, 4.0, 8.0, 12.0])
    (c,) = scan(tmp_path).series
    full = load(c)
    for k in range(4):
        one = load_slice(c, k)
        assert one.shape == (1, 12, 10)
        assert np.array_equal(one.array[0], full.array[k])
        np.testing.assert_allclose(one.index_to_patient([3, 5, 0]), full.index_to_patient([3, 5, k]))
    with pytest.raises(IndexError):
        load_slice(c, 4)


def _candidate_signature(c):
    return c.to_json(), c.frames


def test_scan_files_of_a_scanned_folder_gives_the_same_candidates(tmp_path_factory):
    from discviewer.io import Problem, scan_files
    from tests.core.phantom_cache import phantom_scan

    folder, res = phantom_scan(tmp_path_factory)
    files = [f for c in res.series for f in c.files]
    gone = str(folder / "P01" / "gone.dcm")
    seen = []
    # reversed order, one file listed twice and one missing: same candidates, one problem
    again = scan_files(list(reversed(files)) + [files[0], gone], progress=lambda d, t: seen.append((d, t)))
    assert [_candidate_signature(c) for c in again.series] == [_candidate_signature(c) for c in res.series]
    assert again.problems == [Problem(gone, "file is missing")]
    assert again.files_seen == len(files) and seen[-1] == (len(files), len(files))
    assert all(f.sop_uid for c in again.series for f in c.frames)
    assert len({f.sop_uid for c in again.series for f in c.frames}) == len(files)  # single-frame files


def test_scan_files_does_not_walk_folders_and_can_be_cancelled(tmp_path):
    from discviewer.io import scan_files

    write_stack(tmp_path, [0.0, 4.0, 8.0, 12.0])
    res = scan_files([tmp_path])
    assert res.series == [] and [p.reason for p in res.problems] == ["is a folder, not a file"]
    files = sorted(str(p) for p in tmp_path.iterdir())
    calls = []
    res = scan_files(files, cancel=lambda: len(calls) >= 2, progress=lambda d, t: calls.append(d))
    assert res.cancelled and res.files_seen == 2 and res.series[0].slice_count == 2

"""discviewer.export.dicom_sr: TID 1500 measurement reports and Secondary Capture images of the phantom
workspace, read back with pydicom and highdicom — values, UCUM units, codes, time points, references to
the source images — de-identified by default (pseudonym, no dates, UIDs remapped consistently with
`discviewer.deid`), identifying only when asked."""
from __future__ import annotations

import dataclasses
import math
import uuid
from types import SimpleNamespace

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import SecondaryCaptureImageStorage

from discviewer.annotations import AnnotationSet
from discviewer.deid import Deidentifier, deidentify_file, find_identifying_strings, hashed_uid
from discviewer.export import RESEARCH_USE_NOTICE, policy_for
from discviewer.export.dicom_sr import (PRIVATE_SCHEME, measure_code, measurement_report, read_measurement_report,
                                        secondary_capture, source_headers, ucum_unit, write_secondary_capture,
                                        write_sr_dir)
from tests.core.test_export_tables import export_workspace, forbidden_strings, numeric_values

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
EXPECTED_UCUM = {"DHa": "mm", "DHm": "mm", "DHp": "mm", "depth_mm": "mm", "mean": "[arb'U]", "sd": "[arb'U]",
                 "median": "[arb'U]", "min": "[arb'U]", "max": "[arb'U]", "area_mm2": "mm2", "n_voxels": "{voxels}",
                 "void_volume_mm3": "mm3", "void_area_mm2": "mm2", "contrast_ratio": "{ratio}", "pfirrmann": "{score}",
                 "hiz": "{score}", "dh_mean": "mm", "dhi_farfan": "{ratio}"}


@pytest.fixture(scope="module")
def ws_policy(tmp_path_factory):
    folder, result, ws = export_workspace(tmp_path_factory)
    return folder, ws, policy_for(ws)


def _visit_files(visit) -> dict[str, str]:
    """SOPInstanceUID → path of every file of a visit."""
    return {f.sop_uid: f.path for e in visit.series for c in e.echoes for f in c.frames}


def _walk(ds):
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item)


def test_codes_and_ucum_units():
    assert ucum_unit("mm").value == "mm" and ucum_unit("mm²").value == "mm2" and ucum_unit("mm³").value == "mm3"
    assert ucum_unit("s⁻¹").value == "/s" and ucum_unit("1/s").value == "/s" and ucum_unit("%").value == "%"
    assert ucum_unit("", "contrast_ratio").value == "{ratio}" and ucum_unit("", "signal_ratio_csf").value == "{ratio}"
    assert ucum_unit("", "pfirrmann").value == "{score}" and ucum_unit("", "whatever").value == "1"
    assert all(ucum_unit(u).scheme_designator == "UCUM" for u in ("mm", "", "a.u."))
    dh = measure_code("DHa")
    assert (dh.concept.value, dh.concept.scheme_designator, dh.modifier.value) == ("121207", "DCM", "255549009")
    mean = measure_code("mean (T2 sag)", "a.u.")
    assert (mean.concept.value, mean.derivation.value) == ("110852", "373098007")
    assert measure_code("mean", "/s").concept.value == "126395"  # an ROI on an R2* map
    assert measure_code("area_mm2").concept.value == "42798000"
    private = measure_code("void_volume_mm3").concept
    assert private.scheme_designator == PRIVATE_SCHEME and len(private.value) <= 16
    other = measure_code("something_new")
    assert other.concept == measure_code("something_new").concept and other.concept.meaning == "something_new"


def test_sr_round_trip_deidentified(ws_policy, tmp_path):
    folder, ws, policy = ws_policy
    patient = ws.study.patients[0]
    visit = patient.visits[1]  # "3 m": one reader
    sr = measurement_report(ws, patient, visit, policy)
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == COMPREHENSIVE_3D_SR and ds.Modality == "SR"
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "126000"  # Imaging Measurement Report
    parsed = hd.sr.Comprehensive3DSR.from_dataset(ds)
    groups = [*parsed.content.get_image_measurement_groups(), *parsed.content.get_planar_roi_measurement_groups()]
    mine = [a for a in ws.annotations if a.visit_id == visit.id and numeric_values(a)]
    assert len(groups) == len(mine)
    assert {str(g.tracking_identifier) for g in groups} == {f"{a.level} {a.id}" for a in mine}

    rows = read_measurement_report(ds)
    got = {(r["annotation_id"], r["key"]): r for r in rows}
    for a in mine:
        for key, value in numeric_values(a).items():
            r = got[(a.id, key)]
            assert r["value"] == value  # float64 kept (Floating Point Value)
            assert r["unit"] == EXPECTED_UCUM[key]
            assert (r["time_point"], r["days"], r["time_point_order"]) == ("3 m", 96.0, 2)
    # derived values ride in their annotation's group; % of baseline does not
    heights = [a for a in mine if a.kind == "disc_height"]
    assert all((a.id, "dh_mean") in got and got[(a.id, "dh_mean")]["unit"] == "mm" for a in heights)
    assert not any(k.endswith("_pct_baseline") for _, k in got)
    # coding: disc heights with finding site L4/L5 disc and modifiers; ROI statistics with derivations
    l45 = next(a for a in heights if a.level == "L4/L5")
    assert got[(l45.id, "DHa")]["concept"] == ("121207", "DCM") and got[(l45.id, "DHa")]["finding_site"] == "84020006"
    assert got[(l45.id, "DHp")]["modifier"] == "255551008"
    roi = next(a for a in mine if a.kind == "ellipse" and a.extra.get("roi_role") == "disc")
    assert got[(roi.id, "sd")]["derivation"] == "386136009"
    ref = next(a for a in mine if a.kind == "ellipse" and a.extra.get("roi_role") == "reference")
    assert got[(ref.id, "mean")]["finding_site"] == "65216001"  # CSF
    # references: the source images, remapped with the policy's salt …
    files = _visit_files(visit)
    mapped = {hashed_uid(uid, policy.uid_salt): uid for uid in files}
    refs = {u for r in rows for u in r["referenced_sop_uids"]}
    assert refs and refs <= set(mapped)
    roi_refs = got[(roi.id, "mean")]["referenced_sop_uids"]
    assert len(roi_refs) == 1  # the one slice the ellipse lies on
    src = pydicom.dcmread(files[mapped[roi_refs[0]]], stop_before_pixels=True)
    assert src.SeriesInstanceUID == roi.series_uid
    assert abs(float(src.ImagePositionPatient[0]) - roi.points[0][0]) < 2.0  # sagittal slices 4 mm apart
    gre_roi = next(a for a in mine if a.kind == "ellipse" and a.extra.get("echo_time_ms") is not None
                   and a.extra.get("roi_role") == "disc")
    gre_src = pydicom.dcmread(files[mapped[got[(gre_roi.id, "mean")]["referenced_sop_uids"][0]]],
                              stop_before_pixels=True)
    assert float(gre_src.EchoTime) == pytest.approx(gre_roi.extra["echo_time_ms"])  # the echo measured on
    evidence = {item.ReferencedSOPInstanceUID for study in ds.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}
    assert refs <= evidence
    # … so they resolve among the images of a de-identified export made with the same salt
    deid = Deidentifier(policy.uid_salt)
    out = tmp_path / "deid"
    new = {deidentify_file(files[mapped[u]], out / f"{i}.dcm", deid, patient_code="P01").sop_instance_uid
           for i, u in enumerate(sorted(refs))}
    assert new == refs
    assert pydicom.dcmread(next(out.iterdir())).StudyInstanceUID == ds.StudyInstanceUID \
        == hashed_uid(visit.id, policy.uid_salt)
    # the patient and study modules
    assert str(ds.PatientName) == "P01" and ds.PatientID == "P01" and ds.PatientIdentityRemoved == "YES"
    assert ds.PatientBirthDate == "" and ds.StudyDate == "" and ds.AccessionNumber == ""
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert ds.SeriesDescription.startswith("RESEARCH USE ONLY")
    assert ds.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == PRIVATE_SCHEME
    # fresh UIDs for the new object on every export
    again = measurement_report(ws, patient, visit, policy)
    assert again.SOPInstanceUID != ds.SOPInstanceUID and again.SeriesInstanceUID != ds.SeriesInstanceUID
    assert again.StudyInstanceUID == ds.StudyInstanceUID


def test_sr_identifying_only_when_asked(ws_policy):
    folder, ws, policy = ws_policy
    patient = ws.study.patients[0]
    visit = patient.visits[0]
    with pytest.raises(ValueError, match="several readers"):
        measurement_report(ws, patient, visit, policy)
    ident = policy_for(ws, identifying=True)
    headers = source_headers(visit, [visit.entries("T2 sag")[0].series_uid])
    ds = measurement_report(ws, patient.id, visit.label, ident, reader="r2", source_datasets=headers)
    src = headers[0]
    assert (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate, ds.StudyDate) == (
        str(src.PatientName), src.PatientID, src.PatientBirthDate, src.StudyDate)
    assert ds.StudyInstanceUID == visit.id and "PatientIdentityRemoved" not in ds
    rows = read_measurement_report(ds)
    assert {r["key"] for r in rows} >= {"DHa", "DHm", "DHp", "depth_mm", "dh_mean", "dhi_farfan"}
    assert {u for r in rows for u in r["referenced_sop_uids"]} <= set(_visit_files(visit))
    r2 = next(a for a in ws.annotations if a.reader == "r2")
    assert {r["value"] for r in rows if r["key"] == "DHm"} == {r2.values["DHm"]}


def test_sr_dir_and_sc_are_deidentified(ws_policy, tmp_path):
    folder, ws, policy = ws_policy
    patient = ws.study.patients[0]
    out = tmp_path / "dicom"
    paths = write_sr_dir(ws, out, policy)
    rel = sorted(p.relative_to(out).as_posix() for p in paths)
    assert rel == ["P01/3_m/SR_r1.dcm", "P01/baseline/SR_r1.dcm", "P01/baseline/SR_r2.dcm"]
    rgb = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    sc_path = write_secondary_capture(out / "P01" / "3_m" / "SC_montage.dcm", rgb, ws, patient, patient.visits[1],
                                      policy, description="L4/L5 montage, all visits")
    forbidden = forbidden_strings(folder)
    assert find_identifying_strings(out, forbidden) == []
    dates = {f for f in forbidden if f.isdigit() and len(f) == 8}
    for p in [*paths, sc_path]:
        ds = pydicom.dcmread(p)
        assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert ds.SeriesDescription.startswith("RESEARCH USE ONLY")
        for elem in _walk(ds):
            if elem.VR in ("DA", "DT") and elem.value:
                assert str(elem.value)[:8] not in dates, elem
    # positive control: the identifying SR names the patient and carries the study date
    ident_dir = tmp_path / "ident"
    write_sr_dir(ws, ident_dir, policy_for(ws, identifying=True), readers=["r2"])
    hits = {f.string for f in find_identifying_strings(ident_dir, forbidden)}
    assert {"DVPH0-01", "PHANTOM^S0P01", "20190812"} <= hits


def test_secondary_capture_pixels_and_study(ws_policy, tmp_path):
    folder, ws, policy = ws_policy
    patient = ws.study.patients[0]
    visit = patient.visits[1]
    rgb = np.zeros((30, 50, 3), dtype=np.uint8)
    rgb[..., 0] = np.arange(50, dtype=np.uint8)
    rgb[..., 1] = np.arange(30, dtype=np.uint8)[:, None] * 3
    rgb[5:9, 10:20, 2] = 255
    sc = secondary_capture(rgb, ws, patient, visit, policy, description="T2 sag L4/L5")
    sc.save_as(tmp_path / "sc.dcm", enforce_file_format=True)
    ds = pydicom.dcmread(tmp_path / "sc.dcm")
    assert ds.SOPClassUID == SecondaryCaptureImageStorage and ds.PhotometricInterpretation == "RGB"
    np.testing.assert_array_equal(ds.pixel_array, rgb)
    assert ds.StudyInstanceUID == hashed_uid(visit.id, policy.uid_salt)  # the remapped study
    assert str(ds.PatientName) == "P01" and ds.PatientID == "P01" and ds.StudyDate == ""
    assert RESEARCH_USE_NOTICE in ds.ImageComments and ds.BurnedInAnnotation == "NO"
    ident = secondary_capture(rgb, ws, patient, visit, policy_for(ws, identifying=True), description="T2 sag",
                              patient_orientation=("P", "F"))
    assert ident.StudyInstanceUID == visit.id and ident.PatientID == patient.id
    assert list(ident.PatientOrientation) == ["P", "F"] and "PatientIdentityRemoved" not in ident
    with pytest.raises(ValueError):
        secondary_capture(rgb[..., 0], ws, patient, visit, policy, description="grey")


# ------------------------------------------------------------------------------------------ spatial coordinates
def _with_extra_kinds(ws, visit):
    """A view of the workspace whose annotations add a polygon, a closed freehand outline, a ruler and an
    angle (the phantom has ellipses, an iron ROI and disc heights only) on the plane of the visit's disc
    ellipse — the shared workspace itself is left alone."""
    disc = next(a for a in ws.annotations if a.visit_id == visit.id and a.kind == "ellipse"
                and a.extra.get("roi_role") == "disc" and a.extra.get("echo_time_ms") is None)
    c, pa, pb = np.asarray(disc.points, dtype=np.float64)
    u, v = (pa - c) / np.linalg.norm(pa - c), (pb - c) / np.linalg.norm(pb - c)
    square = [c + 3.0 * u, c + 3.0 * v, c - 3.0 * u + 0.5 * v, c - 3.0 * v]
    freehand = [c + 2.0 * u, c + 1.0 * u + 2.0 * v, c - 2.0 * u, c - 1.5 * v, c + 2.0 * u]  # closed already
    ruler, angle = [c, pa], [pa, c, pb]

    def make(kind, pts, values, units):
        return dataclasses.replace(disc, id=uuid.uuid4().hex, kind=kind, points=tuple(map(tuple, pts)),
                                   values=values, units=units,
                                   extra={k: disc.extra[k] for k in ("series_role",) if k in disc.extra})
    extra = [make("polygon", square, {"mean": 100.0, "area_mm2": 30.0}, {"mean": "a.u.", "area_mm2": "mm2"}),
             make("freehand", freehand, {"mean": 90.0}, {"mean": "a.u."}),
             make("ruler", ruler, {"length_mm": float(np.linalg.norm(pa - c))}, {"length_mm": "mm"}),
             make("angle", angle, {"angle_deg": 90.0}, {"angle_deg": "deg"})]
    view = SimpleNamespace(study=ws.study, patients=ws.patients,
                           annotations=AnnotationSet([*ws.annotations, *extra]))
    return view, {a.id: a for a in extra}


def _as_stored(points) -> np.ndarray:
    """Coordinates as an SR can hold them: Graphic Data of SCOORD3D is FL (32-bit float, ~2e-6 mm at
    40 mm from the origin), so the points must equal the float64 ones rounded to float32 (to 1e-6 mm)."""
    return np.asarray(points, dtype=np.float64).astype(np.float32).astype(np.float64)


F32_MM = 1e-4  # float32 rounding of LPS mm coordinates (|x| < 500 mm): for values derived from stored points


def _check_coordinates(ds, annotations, for_of_source):
    """Every ROI group has its outline as image region, every length / angle its points, all in the Frame
    of Reference `for_of_source(referenced SOP Instance UID)` says; returns the kinds checked."""
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)  # highdicom reads the file …
    planar = sr.content.get_planar_roi_measurement_groups()
    for g in planar:  # … and its TID 1410 groups: an image region in 3D, SCOORD3D
        assert isinstance(g.roi, hd.sr.ImageRegion3D) and g.roi.ValueType == "SCOORD3D"
    rows = read_measurement_report(ds)
    by_ann = {}
    for r in rows:
        by_ann.setdefault(r["annotation_id"], []).append(r)
    checked = set()
    for ann_id, rs in by_ann.items():
        a = annotations[ann_id]
        pts = np.asarray(a.points, dtype=np.float64)
        if not len(pts):  # scores: no place, no coordinates
            assert all(r["region"] is None and r["coordinates"] == [] for r in rs)
            continue
        refs = {u for r in rs for u in r["referenced_sop_uids"]}
        assert refs
        expected_for = {for_of_source(u) for u in refs}
        assert len(expected_for) == 1
        roi_kind = a.extra.get("roi_kind", "polygon") if a.kind == "iron" else a.kind
        if roi_kind in ("ellipse", "polygon", "freehand"):
            regions = {(r["region"][0], r["region"][1].tobytes()) for r in rs}
            assert len(regions) == 1  # one group, one region
            gtype, data = rs[0]["region"]
            assert {r["frame_of_reference_uid"] for r in rs} == expected_for
            if roi_kind == "ellipse":  # centre C, axis ends A, B → the end pairs of both axes, major first
                assert gtype == "ELLIPSE" and data.shape == (4, 3)
                c, pa, pb = pts
                np.testing.assert_allclose(data[:2].mean(axis=0), c, atol=F32_MM)
                np.testing.assert_allclose(data[2:].mean(axis=0), c, atol=F32_MM)
                half = [np.linalg.norm(data[0] - data[1]) / 2, np.linalg.norm(data[2] - data[3]) / 2]
                assert half[0] >= half[1]
                ax_a = pa - c
                b_perp = (pb - c) - ax_a * np.dot(pb - c, ax_a) / np.dot(ax_a, ax_a)
                # as documented: A, 2C − A, C + b⊥, C − b⊥ (b⊥: the part of B − C orthogonal to A − C)
                want = np.array([pa, 2 * c - pa, c + b_perp, c - b_perp])
                if np.linalg.norm(b_perp) > np.linalg.norm(ax_a):
                    want = want[[2, 3, 0, 1]]
                np.testing.assert_allclose(data, _as_stored(want), atol=1e-6)
                np.testing.assert_allclose(sorted([np.linalg.norm(ax_a), np.linalg.norm(b_perp)]),
                                           sorted(half), atol=F32_MM)
                u0, u1 = data[0] - data[1], data[2] - data[3]
                assert abs(np.dot(u0, u1)) / (np.linalg.norm(u0) * np.linalg.norm(u1)) < 1e-5  # perpendicular
                if "area_mm2" in a.values:
                    assert math.pi * half[0] * half[1] == pytest.approx(a.values["area_mm2"], rel=1e-5)
            else:  # the outline, closed by repeating the first point once
                assert gtype == "POLYGON"
                closed = pts if np.array_equal(pts[0], pts[-1]) else np.vstack([pts, pts[:1]])
                assert data.shape == closed.shape
                np.testing.assert_allclose(data, _as_stored(closed), atol=1e-6)
            assert all(r["coordinates"] == [] for r in rs)
            checked.add(a.kind)
            continue
        assert all(r["region"] is None for r in rs)
        lines = {"DHa": [(0, 3)], "DHm": [(1, 4)], "DHp": [(2, 5)], "depth_mm": [(0, 2), (3, 5)],
                 "length_mm": [(0, 1)], "angle_deg": [(0, 1, 2)]}
        for r in rs:
            if r["key"] not in lines:  # derived values (dh_mean, indices) were measured along nothing
                assert r["coordinates"] == [] and r["frame_of_reference_uid"] is None
                continue
            want = lines[r["key"]]
            assert [g for g, _ in r["coordinates"]] == ["POLYLINE"] * len(want)
            for (_, data), idx in zip(r["coordinates"], want):
                np.testing.assert_allclose(data, _as_stored(pts[list(idx)]), atol=1e-6)
            assert r["frame_of_reference_uid"] in expected_for
            if r["key"] in ("DHa", "DHm", "DHp", "length_mm"):  # the two endpoints give the value
                ends = r["coordinates"][0][1]
                assert np.linalg.norm(ends[0] - ends[1]) == pytest.approx(r["value"], abs=F32_MM)
            checked.add(a.kind)
    return checked


def test_sr_spatial_coordinates_deidentified(ws_policy, tmp_path):
    folder, ws, policy = ws_policy
    patient = ws.study.patients[0]
    visit = patient.visits[1]
    view, added = _with_extra_kinds(ws, visit)
    sr = measurement_report(view, patient, visit, policy)
    sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    ds = pydicom.dcmread(tmp_path / "sr.dcm")
    files = _visit_files(visit)
    mapped = {hashed_uid(uid, policy.uid_salt): uid for uid in files}

    def remapped_for(sop_uid):  # the source's Frame of Reference, remapped with the policy's salt
        src = pydicom.dcmread(files[mapped[sop_uid]], stop_before_pixels=True)
        assert hashed_uid(src.FrameOfReferenceUID, policy.uid_salt) != src.FrameOfReferenceUID
        return hashed_uid(src.FrameOfReferenceUID, policy.uid_salt)

    anns = {a.id: a for a in view.annotations}
    checked = _check_coordinates(ds, anns, remapped_for)
    assert checked == {"ellipse", "iron", "disc_height", "polygon", "freehand", "ruler", "angle"}
    # the same Frame of Reference as the images of a de-identified export with that salt
    some = next(r for r in read_measurement_report(ds) if r["region"] is not None)
    deidentify_file(files[mapped[some["referenced_sop_uids"][0]]], tmp_path / "im.dcm",
                    Deidentifier(policy.uid_salt), patient_code="P01")
    image = pydicom.dcmread(tmp_path / "im.dcm", stop_before_pixels=True)
    assert image.FrameOfReferenceUID == some["frame_of_reference_uid"]
    # no identifying Frame of Reference UID anywhere in the report
    source_fors = {str(pydicom.dcmread(f, stop_before_pixels=True).FrameOfReferenceUID) for f in files.values()}
    assert not {str(e.value) for e in _walk(ds) if e.keyword == "ReferencedFrameOfReferenceUID"} & source_fors
    n_planar = len(hd.sr.Comprehensive3DSR.from_dataset(ds).content.get_planar_roi_measurement_groups())
    assert n_planar == sum(1 for a in anns.values() if a.visit_id == visit.id
                           and a.kind in ("ellipse", "polygon", "freehand", "iron"))


def test_sr_spatial_coordinates_identifying(ws_policy):
    folder, ws, policy = ws_policy
    patient = ws.study.patients[0]
    visit = patient.visits[0]
    ident = policy_for(ws, identifying=True)
    files = _visit_files(visit)
    ds = measurement_report(ws, patient, visit, ident, reader="r1")

    def source_for(sop_uid):
        return str(pydicom.dcmread(files[sop_uid], stop_before_pixels=True).FrameOfReferenceUID)

    checked = _check_coordinates(ds, {a.id: a for a in ws.annotations}, source_for)
    assert checked == {"ellipse", "iron", "disc_height"}

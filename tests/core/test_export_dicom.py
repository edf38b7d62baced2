"""discviewer.export.dicom_sr: TID 1500 measurement reports and Secondary Capture images of the phantom
workspace, read back with pydicom and highdicom — values, UCUM units, codes, time points, references to
the source images — de-identified by default (pseudonym, no dates, UIDs remapped consistently with
`discviewer.deid`), identifying only when asked."""
from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import SecondaryCaptureImageStorage

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
    groups = parsed.content.get_image_measurement_groups()
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

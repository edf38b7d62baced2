"""discviewer.deid: PS3.15 Basic Profile de-identification and the identifying-string check.

Phantom (always) and real MR data (../shared/data/real; skipped when absent unless
DISCVIEWER_REQUIRE_REAL_DATA=1): no identifying string survives anywhere, UIDs map consistently,
pixels and geometry are unchanged, volumes load equal, and the sources stay byte-identical."""
from __future__ import annotations

import hashlib
import json
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, UID_dictionary

from discviewer.deid import (BASIC_PROFILE, BurnedInAnnotationError, DeidentificationError, Deidentifier,
                             date_variants, deidentify_file, find_identifying_strings, hashed_uid)
from discviewer.io import load, scan
from tests.core.phantom_cache import phantom_scan

SALT = "test-salt-7"

# Header attributes whose values identify someone (collected from the originals as forbidden strings)
_IDENT_KEYWORDS = ("PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
                   "PatientMotherBirthName", "PatientAddress", "AccessionNumber", "InstitutionName",
                   "InstitutionAddress", "InstitutionalDepartmentName", "ReferringPhysicianName",
                   "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "OperatorsName",
                   "PhysiciansOfRecord", "RequestingPhysician", "StationName", "DeviceSerialNumber",
                   "StudyDescription", "StudyID", "RequestedProcedureID", "PerformedProcedureStepID",
                   "ResponsiblePerson", "ResponsibleOrganization")
_DEFINITION_SUFFIXES = ("ClassUID", "TransferSyntaxUID", "CodingSchemeUID", "MappingResourceUID", "ContextUID")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _walk(ds: Dataset):
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _walk(item)


def forbidden_strings(files, *, with_names=True) -> list[str]:
    """Identifying strings of the originals: names/IDs/institution …, every date (all spellings),
    every instance UID and the original file names."""
    out: set[str] = set()
    kept: set[str] = set()
    for f in files:
        ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        meta = getattr(ds, "file_meta", Dataset())
        for elem in list(_walk(ds)) + list(_walk(meta)):
            if elem.tag.is_private:
                continue
            kw = elem.keyword or ""
            vals = elem.value if elem.VM > 1 else [elem.value]
            vals = [str(v).strip() for v in vals if v not in (None, "")]
            if kw in _IDENT_KEYWORDS:
                out.update(v for v in vals if len(v) >= 4)
            elif elem.VR in ("DA", "DT"):
                for v in vals:
                    if len(v) >= 8 and v[:8].isdigit() and v[:8] != "19000101":
                        out.update(date_variants(v[:8]))
            elif elem.VR == "UI" and not kw.endswith(_DEFINITION_SUFFIXES) and kw != "ImplementationClassUID":
                out.update(v for v in vals if v not in UID_dictionary and len(v) >= 10)
        if with_names and len(Path(f).stem) >= 6:
            out.add(Path(f).stem)
        # the profile keeps the manufacturer and model (only device *identity* goes): a site whose
        # institution name is its scanner's maker (pydicom's MR_small: "TOSHIBA") is not a leak
        kept.update(str(ds.get(k, "")).strip().lower() for k in ("Manufacturer", "ManufacturerModelName"))
    return sorted(s for s in out if not any(s.lower() in k for k in kept if k))


def _new_name(i: int) -> str:
    return f"{i + 1:04d}.dcm"


def deidentify_tree(files_by_series: dict, out: Path, deid: Deidentifier, code: str) -> dict:
    """De-identify each series into out/<code>/sNN/NNNN.dcm; returns {original file: new file}."""
    mapping = {}
    for k, (key, files) in enumerate(sorted(files_by_series.items())):
        for i, f in enumerate(sorted(files)):
            dst = out / code / f"s{k + 1:02d}" / _new_name(i)
            deidentify_file(f, dst, deid, patient_code=code, series_description=f"series {k + 1}")
            mapping[str(f)] = dst
    return mapping


# ---------------------------------------------------------------------------------------------
# the table and the UID hash

def test_table_holds_the_profile_with_known_actions():
    assert len(BASIC_PROFILE) > 500
    expected = {
        (0x0010, 0x0010): "Z", (0x0010, 0x0020): "Z/D", (0x0010, 0x0030): "Z", (0x0008, 0x0020): "Z",
        (0x0008, 0x0050): "Z", (0x0008, 0x0080): "X/Z/D", (0x0008, 0x0090): "Z", (0x0008, 0x0018): "U",
        (0x0020, 0x000D): "U", (0x0020, 0x000E): "U", (0x0020, 0x0052): "U", (0x0008, 0x1155): "U",
        (0x0002, 0x0003): "U", (0x0008, 0x103E): "X", (0x0008, 0x1030): "X", (0x0008, 0x0021): "X/D",
        (0x0008, 0x0022): "X/Z", (0x0008, 0x0023): "Z/D", (0x0010, 0x1010): "X", (0x0018, 0x1030): "X/D",
        (0x0008, 0x1140): "X/Z/U*", (0x0018, 0x9074): "D", (0x0008, 0x1010): "X/Z/D", (0x0018, 0x1000): "X/Z/D",
    }
    for (g, e), action in expected.items():
        assert BASIC_PROFILE[(g << 16) | e][0] == action, hex((g << 16) | e)
    assert {a for a, _ in BASIC_PROFILE.values()} <= {"D", "Z", "X", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
    # nothing the app needs is touched by the table
    for kw_tag in (0x00200032, 0x00200037, 0x00280030, 0x00180050, 0x00180081, 0x00180080, 0x00180087,
                   0x00080060, 0x00200011, 0x00200013, 0x7FE00010):
        assert kw_tag not in BASIC_PROFILE


def test_hashed_uid_is_deterministic_valid_and_salted():
    uid = "1.3.12.2.1107.5.2.43.67060.2022040715254391096768546"
    a, b = hashed_uid(uid, "s1"), hashed_uid(uid, "s1")
    assert a == b and a.startswith("2.25.") and len(a) <= 64 and UID(a).is_valid
    assert int(a[5:]) < 2 ** 128
    assert hashed_uid(uid, "s2") != a
    assert hashed_uid(uid + "1", "s1") != a
    d = Deidentifier("s1")
    assert d.map_uid(uid) == a and d.uid_map == {uid: a}
    with pytest.raises(ValueError):
        Deidentifier("")


# ---------------------------------------------------------------------------------------------
# a synthetic dataset with everything awkward in it

def _awkward_dataset() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.9.1"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = "1.2.826.0.1.9.99"
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITAL_AE"
    ds.preamble = b"SECRET-PREAMBLE-Doe".ljust(128, b"\x00")
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = "1.2.826.0.1.9.1"
    ds.StudyInstanceUID = "1.2.826.0.1.9.100"
    ds.SeriesInstanceUID = "1.2.826.0.1.9.200"
    ds.FrameOfReferenceUID = "1.2.826.0.1.9.300"
    ds.PatientName = "Doe^Johnathan^Q"
    ds.PatientID = "MRN-5551234"
    ds.PatientBirthDate = "19610315"
    ds.PatientSex = "M"
    ds.PatientAge = "059Y"
    ds.PatientWeight = "81"
    ds.OtherPatientIDsSequence = Sequence([Dataset()])
    ds.OtherPatientIDsSequence[0].PatientID = "OTHER-ID-99"
    ds.StudyDate = "20200809"
    ds.SeriesDate = "20200809"
    ds.AcquisitionDateTime = "20200809101500.000"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC778899"
    ds.InstitutionName = "St Elsewhere Hospital"
    ds.InstitutionAddress = "1 Elm Street, Springfield"
    ds.ReferringPhysicianName = "House^Gregory"
    ds.OperatorsName = ["Tech^Alice", "Tech^Bob"]
    ds.StationName = "MRSCANNER01"
    ds.DeviceSerialNumber = "SN-445566"
    ds.StudyDescription = "LSPINE Doe follow-up"
    ds.SeriesDescription = "t2_tse_sag Doe"
    ds.ProtocolName = "Johnathan protocol"
    ds.ImageComments = "patient Doe moved"
    ds.Modality = "MR"
    ds.SeriesNumber = 3
    ds.InstanceNumber = 7
    ds.EchoTime = "100"
    ds.RepetitionTime = "4000"
    ds.MagneticFieldStrength = "1.5"
    ds.ImagePositionPatient = [1.5, -2.25, 3.0]
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.PixelSpacing = [0.5, 0.75]
    ds.SliceThickness = "4"
    # references: the localizer this image was planned on, its source, and a referenced series
    ref = Dataset()
    ref.ReferencedSOPClassUID = MRImageStorage
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.9.2"
    ds.ReferencedImageSequence = Sequence([ref])
    src = Dataset()
    src.ReferencedSOPClassUID = MRImageStorage
    src.ReferencedSOPInstanceUID = "1.2.826.0.1.9.1"
    ds.SourceImageSequence = Sequence([src])
    rs = Dataset()
    rs.SeriesInstanceUID = "1.2.826.0.1.9.200"
    rs.ReferencedInstanceSequence = Sequence([Dataset()])
    rs.ReferencedInstanceSequence[0].ReferencedSOPClassUID = MRImageStorage
    rs.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID = "1.2.826.0.1.9.2"
    rs.EvaluatorName = "Grey^Meredith"  # a PN not in the table, nested
    rs.SeriesDate = "20200809"
    ds.ReferencedSeriesSequence = Sequence([rs])
    ds.RequestAttributesSequence = Sequence([Dataset()])
    ds.RequestAttributesSequence[0].RequestedProcedureID = "RP-4242"
    # private block, overlay and curve groups
    block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    block.add_new(0x10, "OB", b"PatientName Doe^Johnathan")
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 8)
    ds.add_new(0x60004000, "LT", "overlay by Doe")
    ds.add_new(0x50000030, "SH", "curve Doe")
    ds.Rows = 4
    ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.arange(16, dtype="<u2").tobytes()
    return ds


AWKWARD_FORBIDDEN = ["Doe", "Johnathan", "MRN-5551234", "OTHER-ID-99", "ACC778899", "St Elsewhere", "Elm Street",
                     "House", "Gregory", "Alice", "MRSCANNER01", "SN-445566", "Grey", "Meredith", "RP-4242",
                     "HOSPITAL_AE", "SECRET-PREAMBLE", "1.2.826.0.1.9", "059Y", *date_variants("20200809"),
                     *date_variants("19610315")]


@pytest.fixture
def awkward_file(tmp_path) -> Path:
    p = tmp_path / "src" / "Doe_Johnathan_20200809.dcm"
    p.parent.mkdir()
    _awkward_dataset().save_as(p, enforce_file_format=True)
    return p


def test_awkward_dataset_is_cleaned(awkward_file, tmp_path):
    # the check sees everything in the original (positive control)
    hits = find_identifying_strings(awkward_file.parent, AWKWARD_FORBIDDEN)
    found = {h.string for h in hits}
    assert {"Doe", "MRN-5551234", "OTHER-ID-99", "HOSPITAL_AE", "SECRET-PREAMBLE", "Grey", "RP-4242",
            "20200809", "19610315"} <= found
    assert any(h.where == "file name" for h in hits)
    before = _sha(awkward_file)

    deid = Deidentifier(SALT)
    out = tmp_path / "out" / "C017" / "s01" / "0001.dcm"
    res = deidentify_file(awkward_file, out, deid, patient_code="C017", series_description="T2 sagittal")
    assert _sha(awkward_file) == before
    assert find_identifying_strings(tmp_path / "out", AWKWARD_FORBIDDEN) == []

    ds = pydicom.dcmread(out)
    assert str(ds.PatientName) == "C017" and ds.PatientID == "C017"
    assert ds.SeriesDescription == "T2 sagittal"
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    codes = [(c.CodeValue, c.CodingSchemeDesignator) for c in ds.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM")]
    assert ds.DeidentificationMethod
    # Type 2 emptied, the rest removed
    for kw in ("StudyDate", "StudyTime", "PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName"):
        assert kw in ds and not ds[kw].value, kw
    for kw in ("SeriesDate", "AcquisitionDateTime", "PatientAge", "PatientWeight", "InstitutionName",
               "InstitutionAddress", "OperatorsName", "StationName", "DeviceSerialNumber", "StudyDescription",
               "ProtocolName", "ImageComments", "OtherPatientIDsSequence", "RequestAttributesSequence"):
        assert kw not in ds, kw
    assert not any(e.tag.is_private for e in _walk(ds))
    assert not any(0x5000 <= e.tag.group <= 0x60FF for e in ds)
    assert not any(e.VR in ("DA", "DT", "TM") and e.value for e in _walk(ds))
    assert not any(e.VR == "PN" and e.value and e.tag != 0x00100010 for e in _walk(ds))
    # UIDs: remapped consistently, references follow their targets
    new_self = hashed_uid("1.2.826.0.1.9.1", SALT)
    new_loc = hashed_uid("1.2.826.0.1.9.2", SALT)
    assert ds.SOPInstanceUID == new_self == ds.file_meta.MediaStorageSOPInstanceUID == res.sop_instance_uid
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == new_self
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_loc
    assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == MRImageStorage
    rs = ds.ReferencedSeriesSequence[0]
    assert rs.SeriesInstanceUID == ds.SeriesInstanceUID == hashed_uid("1.2.826.0.1.9.200", SALT)
    assert rs.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == new_loc
    assert "SeriesDate" not in rs and not rs.EvaluatorName
    assert ds.FrameOfReferenceUID == hashed_uid("1.2.826.0.1.9.300", SALT)
    assert ds.file_meta.ImplementationClassUID != "1.2.826.0.1.9.99"
    assert "SourceApplicationEntityTitle" not in ds.file_meta
    assert ds.preamble == b"\x00" * 128
    # kept: what the app needs
    assert [float(x) for x in ds.ImagePositionPatient] == [1.5, -2.25, 3.0]
    assert [float(x) for x in ds.ImageOrientationPatient] == [0, 1, 0, 0, 0, -1]
    assert [float(x) for x in ds.PixelSpacing] == [0.5, 0.75]
    assert float(ds.SliceThickness) == 4 and float(ds.EchoTime) == 100 and float(ds.RepetitionTime) == 4000
    assert float(ds.MagneticFieldStrength) == 1.5 and ds.Modality == "MR"
    assert ds.SeriesNumber == 3 and ds.InstanceNumber == 7
    assert ds.PixelData == np.arange(16, dtype="<u2").tobytes()


def test_keep_private_keeps_them_and_says_so(awkward_file, tmp_path):
    deid = Deidentifier(SALT, keep_private=True)
    out = tmp_path / "o.dcm"
    deidentify_file(awkward_file, out, deid, patient_code="C001")
    ds = pydicom.dcmread(out)
    assert any(e.tag.is_private for e in ds)
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113111"]
    assert "SeriesDescription" not in ds  # no neutral text given → removed (X)


def test_burned_in_annotation_is_refused_unless_allowed(tmp_path):
    ds = _awkward_dataset()
    ds.BurnedInAnnotation = "YES"
    src = tmp_path / "b.dcm"
    ds.save_as(src, enforce_file_format=True)
    with pytest.raises(BurnedInAnnotationError, match="Burned In Annotation"):
        deidentify_file(src, tmp_path / "o.dcm", Deidentifier(SALT), patient_code="C001")
    assert not (tmp_path / "o.dcm").exists()
    res = deidentify_file(src, tmp_path / "o.dcm", Deidentifier(SALT, allow_burned_in=True), patient_code="C001")
    assert res.burned_in_annotation


def test_refuses_non_dicom_and_overwriting_the_source(tmp_path, awkward_file):
    bad = tmp_path / "x.dcm"
    bad.write_text("not dicom")
    with pytest.raises(DeidentificationError, match="x.dcm"):
        deidentify_file(bad, tmp_path / "o.dcm", Deidentifier(SALT), patient_code="C001")
    with pytest.raises(DeidentificationError, match="overwrite"):
        deidentify_file(awkward_file, awkward_file, Deidentifier(SALT), patient_code="C001")
    with pytest.raises(ValueError):
        deidentify_file(awkward_file, tmp_path / "o.dcm", Deidentifier(SALT), patient_code="")


# ---------------------------------------------------------------------------------------------
# the check itself

def test_date_variants():
    v = date_variants("20200809")
    assert {"20200809", "2020-08-09", "2020/08/09", "09.08.2020", "09/08/2020", "08/09/2020"} <= set(v)
    assert date_variants("2020-08-09") == v
    import datetime
    assert date_variants(datetime.date(2020, 8, 9)) == v
    assert date_variants("") == []
    with pytest.raises(ValueError):
        date_variants("2020")


def test_find_identifying_strings_in_text_json_csv_zip_and_names(tmp_path):
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("nothing here\nseen on 2020-08-09\n")
    (root / "answers.json").write_text(json.dumps({"reader": "r1", "who": "JOHN DOE"}), encoding="utf-8")
    (root / "esc.json").write_text(json.dumps({"who": "Jos\u00e9 Smith"}), encoding="utf-8")  # \u00e9 escaped
    (root / "table.csv").write_text("case,value\nC001,crlab\n")
    (root / "sub" / "MRN123_file.bin").write_bytes(b"\x00\x01")
    with zipfile.ZipFile(root / "a.zip", "w") as zf:
        zf.writestr("inner/crlab.txt", "x")
        zf.writestr("inner/data.txt", "hello DVPH0-01, signed john doe")
    forbidden = ["Doe^John", "José^Smith", "crlab", "MRN123", "DVPH0-01", *date_variants("20200809")]
    hits = find_identifying_strings(root, forbidden)
    where = {(Path(h.file.split("!")[0]).name, h.string) for h in hits}
    assert ("notes.txt", "2020-08-09") in where  # the YYYY-MM-DD spelling
    assert ("answers.json", "Doe^John") in where  # spoken order, any case
    assert ("esc.json", "José^Smith") in where
    assert ("table.csv", "crlab") in where
    assert ("MRN123_file.bin", "MRN123") in where
    assert ("a.zip", "Doe^John") in where and ("a.zip", "DVPH0-01") in where
    assert any(h.where == "member name" and h.string == "crlab" for h in hits)
    assert find_identifying_strings(root, []) == []
    assert find_identifying_strings(root, ["nowhere-string"]) == []


# ---------------------------------------------------------------------------------------------
# the phantom: every visit of one patient

@pytest.fixture(scope="module")
def phantom_deid(tmp_path_factory):
    folder, result = phantom_scan(tmp_path_factory)
    files = sorted(folder.rglob("*.dcm"))
    hashes = {f: _sha(f) for f in files}
    by_series = defaultdict(list)
    for f in files:
        by_series[f.parent.relative_to(folder).as_posix()].append(f)
    out = tmp_path_factory.mktemp("phantom_deid")
    deid = Deidentifier(SALT)
    mapping = deidentify_tree(by_series, out, deid, "C017")
    return folder, result, files, hashes, mapping, out, deid


def test_phantom_no_identifying_string_remains(phantom_deid):
    folder, result, files, hashes, mapping, out, deid = phantom_deid
    forbidden = forbidden_strings(files)
    visit_folders = sorted({p.name for p in folder.glob("*/*") if p.is_dir()})
    forbidden += visit_folders + ["baseline", "P01"]
    ds0 = pydicom.dcmread(files[0])
    assert str(ds0.PatientName) in forbidden and ds0.PatientID in forbidden and "IM_0001" in forbidden
    assert set(date_variants(ds0.StudyDate)) <= set(forbidden)
    # positive control: the originals are full of them
    assert find_identifying_strings(files[0].parent, forbidden)
    assert find_identifying_strings(out, forbidden) == []
    for new in mapping.values():
        ds = pydicom.dcmread(new)
        assert not any(e.VR in ("DA", "DT", "TM") and e.value for e in _walk(ds))
        assert str(ds.PatientName) == "C017" and ds.PatientIdentityRemoved == "YES"
    # the sources were only read
    assert all(_sha(f) == h for f, h in hashes.items())


def test_phantom_uids_stay_consistent(phantom_deid):
    folder, result, files, hashes, mapping, out, deid = phantom_deid
    orig_by_series, new_by_series = defaultdict(set), defaultdict(set)
    for_by_study, new_for_by_study = defaultdict(set), defaultdict(set)
    sops = set()
    for f in files:
        o = pydicom.dcmread(f, stop_before_pixels=True)
        n = pydicom.dcmread(mapping[str(f)], stop_before_pixels=True)
        assert n.SOPInstanceUID == hashed_uid(o.SOPInstanceUID, SALT) == n.file_meta.MediaStorageSOPInstanceUID
        assert n.SeriesInstanceUID == hashed_uid(o.SeriesInstanceUID, SALT)
        assert n.StudyInstanceUID == hashed_uid(o.StudyInstanceUID, SALT)
        assert n.FrameOfReferenceUID == hashed_uid(o.FrameOfReferenceUID, SALT)
        orig_by_series[o.SeriesInstanceUID].add(n.SeriesInstanceUID)
        for_by_study[o.StudyInstanceUID].add(o.FrameOfReferenceUID)
        new_for_by_study[n.StudyInstanceUID].add(n.FrameOfReferenceUID)
        sops.add(n.SOPInstanceUID)
    assert len(sops) == len(files)
    assert all(len(v) == 1 for v in orig_by_series.values())  # one series → one new series UID
    # a frame of reference shared by the series of a visit stays shared; visits stay distinct
    assert sorted(len(v) for v in for_by_study.values()) == sorted(len(v) for v in new_for_by_study.values())
    assert len(set().union(*new_for_by_study.values())) == len(set().union(*for_by_study.values()))
    # same salt → byte-identical output; another salt → unlinkable UIDs
    f = files[0]
    again = out.parent / "again.dcm"
    deidentify_file(f, again, Deidentifier(SALT), patient_code="C017", series_description="series 1")
    first = sorted(mapping.items())[0]
    deidentify_file(first[0], again, Deidentifier(SALT), patient_code="C017", series_description="series 1")
    assert again.read_bytes() == Path(first[1]).read_bytes()
    other = out.parent / "other.dcm"
    deidentify_file(first[0], other, Deidentifier("another salt"), patient_code="C017")
    assert pydicom.dcmread(other).SOPInstanceUID != pydicom.dcmread(first[1]).SOPInstanceUID


def test_phantom_volumes_load_equal(phantom_deid):
    folder, result, files, hashes, mapping, out, deid = phantom_deid
    new_result = scan(out)
    assert len(new_result.series) == len(result.series) and not new_result.problems
    new_by_sops = {frozenset(fr.sop_uid for fr in c.frames): c for c in new_result.series}
    for c in result.series:
        key = frozenset(deid.map_uid(fr.sop_uid) for fr in c.frames)
        nc = new_by_sops[key]
        a, b = load(c), load(nc)
        assert a.array.dtype == b.array.dtype and np.array_equal(a.array, b.array)
        assert np.array_equal(a.affine, b.affine)
        assert nc.info.echo_time == c.info.echo_time and nc.info.repetition_time == c.info.repetition_time
        assert nc.info.field_strength == c.info.field_strength
        assert nc.info.patient_id == "C017" and nc.info.study_date == ""
    # and per file: pixel bytes and geometry identical
    for f in files[:40]:
        o, n = pydicom.dcmread(f), pydicom.dcmread(mapping[str(f)])
        assert o.PixelData == n.PixelData
        for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows",
                   "Columns", "EchoTime", "RepetitionTime", "MagneticFieldStrength", "SeriesNumber", "InstanceNumber"):
            assert o[kw].value == n[kw].value, kw


# ---------------------------------------------------------------------------------------------
# real MR data

REAL_SETS = {
    "decubitus": ("dcm_qa_decubitus", "*.dcm"),
    "philips": ("dcm_qa_philips_enh_fieldmap", "*.dcm"),
    "siemens_fmap": ("dcm_qa_fmap_siemens", "*.dcm"),
    "transfer_syntaxes": ("dcm_qa_ts", "*.dcm"),
    "agfa": ("dcm_qa_agfa", "*.img"),
    "mr_small": ("pydicom_testfiles/pydicom-3.0.2", "MR_small*.dcm"),
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(REAL_SETS))
def test_real_data_is_deidentified_and_loads_equal(real_data, tmp_path, name):
    sub, pattern = REAL_SETS[name]
    root = real_data / sub
    files = sorted(root.rglob(pattern))
    assert files, f"no files for {name}"
    hashes = {f: _sha(f) for f in files}
    by_series = defaultdict(list)
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        by_series[(ds.SeriesInstanceUID, f.parent.name)].append(f)
    deid = Deidentifier(SALT)
    out = tmp_path / "out"
    mapping = deidentify_tree(by_series, out, deid, "C001")
    assert all(_sha(f) == h for f, h in hashes.items())

    forbidden = forbidden_strings(files)
    assert forbidden
    leaks = find_identifying_strings(out, forbidden)
    assert leaks == [], leaks[:10]
    for src, new in mapping.items():
        ds = pydicom.dcmread(new, stop_before_pixels=True)
        elems = list(_walk(ds))
        assert not any(e.tag.is_private for e in elems)
        assert not any(e.VR in ("DA", "DT", "TM") and e.value and e.value[:8] != "19000101" for e in elems)
        src_ts = pydicom.dcmread(src, stop_before_pixels=True).file_meta.TransferSyntaxUID
        assert ds.file_meta.TransferSyntaxUID == src_ts

    # volumes equal, paired through the remapped SOP Instance UIDs
    orig, new = scan(root), scan(out)
    orig_series = [c for c in orig.series if all(Path(p) in hashes for p in c.files)]
    assert orig_series and len(new.series) == len(orig_series)
    new_by_sops = {frozenset((fr.sop_uid, fr.frame) for fr in c.frames): c for c in new.series}
    for c in orig_series:
        nc = new_by_sops[frozenset((deid.map_uid(fr.sop_uid), fr.frame) for fr in c.frames)]
        a, b = load(c), load(nc)
        assert np.array_equal(a.array, b.array), c.label
        assert np.array_equal(a.affine, b.affine), c.label
        assert nc.info.frame_of_reference_uid == (deid.map_uid(c.info.frame_of_reference_uid)
                                                  if c.info.frame_of_reference_uid else "")
    if name == "decubitus":
        fors = {c.info.frame_of_reference_uid for c in new.series}
        assert len(fors) == 3  # three positions, three frames of reference, still distinct

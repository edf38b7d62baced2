"""DICOM writing for the phantom: one MR Image Storage file per slice (per echo), plus truth.json.

Owns the tag set, file layout (outdir/<patient>/<visit>/<series>/IM_0001.dcm …), deterministic UIDs
and file meta, and `write_study`. Same seed → byte-identical files. Core module: pydicom only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from .geometry import format_ds
from .study import (FIELD_STRENGTH_T, GENERATOR_VERSION, MANUFACTURER, SIZES, VISITS, PhantomPatient,
                    PhantomSeries, PhantomVisit, _iter_patients, _uid, study_truth)

IMPLEMENTATION_CLASS_UID = "2.25.149862204374436530931392640718917264961"  # fixed: files stay byte-identical
IMPLEMENTATION_VERSION = "DISCVIEWER_PH" + GENERATOR_VERSION.replace(".", "")


def _ds_list(values):
    return [format_ds(v) for v in values]


def series_datasets(patient: PhantomPatient, visit: PhantomVisit, series: PhantomSeries, seed: int, size: str):
    """Yield (file name, Dataset) for every image of a series, in InstanceNumber order.

    Multi-echo series interleave echoes per slice: instance = slice·n_echoes + echo + 1."""
    g = series.geometry
    seq = series.protocol.sequence
    n_echo = len(seq.te_ms)
    normal_x = -1.0  # slice normal = row × column cosines = −x for this orientation
    for s in range(g.n_slices):
        for e in range(n_echo):
            inst = s * n_echo + e + 1
            ds = Dataset()
            fm = FileMetaDataset()
            sop_uid = _uid(seed, size, patient.patient_id, "sop", visit.index, series.key, inst)
            fm.MediaStorageSOPClassUID = MRImageStorage
            fm.MediaStorageSOPInstanceUID = sop_uid
            fm.TransferSyntaxUID = ExplicitVRLittleEndian
            fm.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
            fm.ImplementationVersionName = IMPLEMENTATION_VERSION
            ds.file_meta = fm
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = sop_uid
            ds.StudyDate = visit.study_date
            ds.SeriesDate = visit.study_date
            ds.AcquisitionDate = visit.study_date
            ds.ContentDate = visit.study_date
            ds.StudyTime = visit.study_time
            ds.SeriesTime = series.series_time
            ds.AcquisitionTime = series.series_time
            ds.ContentTime = series.series_time
            ds.AccessionNumber = visit.accession
            ds.Modality = "MR"
            ds.Manufacturer = MANUFACTURER
            ds.InstitutionName = "discviewer synthetic phantom"
            ds.ReferringPhysicianName = ""
            ds.StudyDescription = visit.study_description
            ds.SeriesDescription = series.description
            ds.ManufacturerModelName = "phantom " + GENERATOR_VERSION
            ds.PatientName = patient.patient_name
            ds.PatientID = patient.patient_id
            ds.PatientBirthDate = patient.birth_date
            ds.PatientSex = patient.sex
            ds.BodyPartExamined = "LSPINE"
            ds.ScanningSequence = series.protocol.scanning_sequence
            ds.SequenceVariant = series.protocol.sequence_variant.split("\\")
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "2D"
            ds.SequenceName = series.protocol.sequence_name
            ds.SliceThickness = format_ds(g.slice_thickness)
            ds.RepetitionTime = format_ds(seq.tr_ms)
            ds.EchoTime = format_ds(seq.te_ms[e])
            ds.NumberOfAverages = "1"
            ds.ImagingFrequency = "63.87"
            ds.ImagedNucleus = "1H"
            ds.EchoNumbers = str(e + 1)
            ds.MagneticFieldStrength = format_ds(FIELD_STRENGTH_T)
            ds.SpacingBetweenSlices = format_ds(g.slice_spacing)
            ds.EchoTrainLength = str(series.protocol.echo_train_length)
            ds.ProtocolName = series.description
            ds.ReceiveCoilName = "SPINE"
            ds.TransmitCoilName = "BODY"
            ds.InPlanePhaseEncodingDirection = "ROW"
            ds.FlipAngle = format_ds(seq.flip_deg)
            ds.PatientPosition = "HFS"
            ds.StudyInstanceUID = visit.study_uid
            ds.SeriesInstanceUID = series.uid
            ds.StudyID = f"{visit.index + 1}"
            ds.SeriesNumber = str(series.number)
            ds.AcquisitionNumber = "1"
            ds.InstanceNumber = str(inst)
            ds.ImagePositionPatient = _ds_list(g.positions[s])
            ds.ImageOrientationPatient = _ds_list(g.iop)
            ds.FrameOfReferenceUID = visit.frame_uid
            ds.PositionReferenceIndicator = ""
            ds.SliceLocation = format_ds(g.positions[s][0] * -normal_x)
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = g.rows
            ds.Columns = g.columns
            ds.PixelSpacing = _ds_list(g.pixel_spacing)
            ds.BitsAllocated = 16
            ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 0
            wc, ww = series.windows[e]
            ds.WindowCenter = format_ds(wc)
            ds.WindowWidth = format_ds(ww)
            ds.ComplexImageComponent = "MAGNITUDE"
            ds.PixelData = series.arrays[e][s].astype("<u2", copy=False).tobytes()
            yield f"IM_{inst:04d}.dcm", ds


def dumps_truth(truth: dict) -> str:
    """JSON text of the truth dict: indented, but lists of numbers kept on one line."""

    def enc(obj, ind):
        pad, pad1 = " " * ind, " " * (ind + 1)
        if isinstance(obj, dict):
            if not obj:
                return "{}"
            items = [f"{pad1}{json.dumps(str(k), ensure_ascii=False)}: {enc(v, ind + 1)}" for k, v in obj.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(obj, (list, tuple)):
            if all(not isinstance(x, (dict, list, tuple)) for x in obj):
                return "[" + ", ".join(json.dumps(x, ensure_ascii=False) for x in obj) + "]"
            if all(isinstance(x, (list, tuple)) and all(not isinstance(y, (dict, list, tuple)) for y in x)
                   for x in obj):
                return "[" + ", ".join(enc(x, ind + 1) for x in obj) + "]"
            return "[\n" + ",\n".join(pad1 + enc(x, ind + 1) for x in obj) + "\n" + pad + "]"
        return json.dumps(obj, ensure_ascii=False)

    return enc(truth, 0) + "\n"


def write_visit(outdir: Path, patient: PhantomPatient, visit: PhantomVisit, seed: int, size: str) -> int:
    n = 0
    for series in visit.series:
        folder = outdir / series.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name, ds in series_datasets(patient, visit, series, seed, size):
            ds.save_as(folder / name, enforce_file_format=True)
            n += 1
    return n


def write_study(outdir, *, patients: int = 1, seed: int = 0, size: str = "small",
                progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate the phantom and write it as DICOM under `outdir` plus `outdir/truth.json`.

    `progress(done, total)` is called after each visit is generated and after it is written
    (total = 2 × patients × visits). Patients are generated one at a time to bound memory.
    Returns the output folder."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    if patients < 1:
        raise ValueError("patients must be ≥ 1")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    total = 2 * patients * len(VISITS)
    state = {"done": 0}

    def _gen_progress(_d, _t):
        state["done"] += 1
        if progress is not None:
            progress(state["done"], total)

    truths = []
    for patient in _iter_patients(patients, seed, size, _gen_progress):
        for visit in patient.visits:
            write_visit(out, patient, visit, seed, size)
            state["done"] += 1
            if progress is not None:
                progress(state["done"], total)
        truths.append(patient.truth)
        patient.visits.clear()  # free the pixel data before the next patient
    truth = study_truth(seed, size, truths)
    tmp = out / "truth.json.tmp"
    tmp.write_text(dumps_truth(truth), encoding="utf-8")
    os.replace(tmp, out / "truth.json")
    return out

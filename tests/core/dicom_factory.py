"""Write small, fully controlled DICOM files for scan/load tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR = "1.2.840.10008.5.1.4.1.1.4"


def write_slice(path: Path, *, pixels: np.ndarray, ipp, iop=(0, 1, 0, 0, 0, -1), spacing=(0.5, 0.8),
                series_uid: str, study_uid: str = "1.2.3.4", instance: int = 1, te: float | None = 90.0,
                echo: int | None = 1, image_type=("ORIGINAL", "PRIMARY", "M", "ND"), sop_class: str = MR,
                acq: int | None = 1, slope: float | None = None, intercept: float | None = None,
                geometry: bool = True, patient_id: str = "P1", series_number: int = 3) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient_id
    ds.PatientName = "Test^Patient"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = "20260101"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = "T2 sag"
    ds.Modality = "MR"
    ds.FrameOfReferenceUID = study_uid + ".9"
    ds.InstanceNumber = instance
    ds.ImageType = list(image_type)
    if acq is not None:
        ds.AcquisitionNumber = acq
    if te is not None:
        ds.EchoTime = te
    if echo is not None:
        ds.EchoNumbers = echo
    if geometry:
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
        ds.ImageOrientationPatient = list(iop)
        ds.PixelSpacing = list(spacing)
        ds.SliceThickness = 4
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_stack(folder: Path, positions_x, *, rows=12, cols=10, series_uid=None, seed=0, **kw) -> list[np.ndarray]:
    """A sagittal stack: one file per x position; returns the pixel arrays written (file order)."""
    series_uid = series_uid or generate_uid()
    rng = np.random.default_rng(seed)
    arrays = []
    for i, x in enumerate(positions_x):
        a = rng.integers(0, 4000, size=(rows, cols), dtype=np.uint16)
        arrays.append(a)
        write_slice(folder / f"IM{i:04d}.dcm", pixels=a, ipp=(x, -100.0, 50.0), series_uid=series_uid,
                    instance=i + 1, **kw)
    return arrays

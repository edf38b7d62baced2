"""The `Volume`: a voxel array with its exact patient-space geometry and series metadata.

Owns the one convention every other module relies on:
`array` is shaped (slices, rows, columns) and `affine` (4×4, float64) maps homogeneous
(column, row, slice) indices to DICOM patient coordinates (LPS, millimetres).
Core module: no Qt, no VTK.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SeriesInfo:
    """Header facts about the series a volume came from (plain values, never a pydicom Dataset)."""

    patient_id: str = ""
    patient_name: str = ""
    study_uid: str = ""
    study_date: str = ""  # DICOM DA, "YYYYMMDD" or ""
    study_description: str = ""
    series_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    modality: str = ""
    frame_of_reference_uid: str = ""
    sequence_name: str = ""
    echo_time: float | None = None  # ms
    echo_number: int | None = None
    repetition_time: float | None = None  # ms
    inversion_time: float | None = None  # ms
    scanning_sequence: str = ""  # e.g. "SE", "GR", "SE\\IR"
    field_strength: float | None = None  # tesla
    image_type: tuple[str, ...] = ()
    complex_part: str = ""  # "MAGNITUDE", "PHASE", "REAL", "IMAGINARY" or ""
    source: str = "dicom"  # "dicom" or "nifti"
    source_path: str = ""  # folder or file it came from


@dataclass
class Volume:
    """A 3-D image: `array[slice, row, column]` and `affine` (index → LPS mm)."""

    array: np.ndarray
    affine: np.ndarray
    info: SeriesInfo = field(default_factory=SeriesInfo)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume.array must be 3-D (slices, rows, columns), got shape {self.array.shape}")
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"Volume.affine must be 4×4, got {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along (column, row, slice) — the lengths of the affine's columns."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    def index_to_patient(self, ijk: np.ndarray) -> np.ndarray:
        """(…, 3) array of (column, row, slice) indices → (…, 3) LPS mm."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def patient_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """(…, 3) LPS mm → (…, 3) fractional (column, row, slice) indices."""
        xyz = np.asarray(xyz, dtype=np.float64)
        inv = np.linalg.inv(self.affine)
        return xyz @ inv[:3, :3].T + inv[:3, 3]


def affine_from_dicom(ipp_first, iop, pixel_spacing, slice_step) -> np.ndarray:
    """Build the index→LPS affine from DICOM geometry.

    ipp_first: ImagePositionPatient of the first slice (centre of its first voxel);
    iop: ImageOrientationPatient (row cosine then column cosine);
    pixel_spacing: PixelSpacing (row spacing, column spacing) — note the order;
    slice_step: 3-vector from one slice's IPP to the next (from IPP, never SliceThickness).
    """
    iop = np.asarray(iop, dtype=np.float64)
    row_cos, col_cos = iop[:3], iop[3:6]
    a = np.eye(4)
    a[:3, 0] = row_cos * float(pixel_spacing[1])  # moving along a row = next column
    a[:3, 1] = col_cos * float(pixel_spacing[0])  # moving down a column = next row
    a[:3, 2] = np.asarray(slice_step, dtype=np.float64)
    a[:3, 3] = np.asarray(ipp_first, dtype=np.float64)
    return a

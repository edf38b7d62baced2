"""Phantom geometry helpers: rigid transforms, DICOM-exact number quantisation and the sagittal slab.

Owns how a visit's slab (ImagePositionPatient / ImageOrientationPatient / PixelSpacing) is planned and
how those numbers are quantised so that the written DS strings and the in-memory affine agree exactly.
Core module: numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Sagittal orientation: rows run posterior (+y), columns run inferior (-z). Normal = row x col = -x.
SAGITTAL_IOP = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def format_ds(value: float) -> str:
    """Format a float as a DICOM DS string (≤ 16 characters) after rounding to 6 decimals.

    `float(format_ds(v))` is the exact number a reader gets back; build geometry from that.
    """
    v = round(float(value), 6)
    if v == 0:
        return "0"
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    if len(s) > 16:
        s = f"{v:.10g}"
    if len(s) > 16:  # pragma: no cover - only for absurd magnitudes
        raise ValueError(f"{value!r} does not fit a DICOM DS")
    return s


def quantise(value: float) -> float:
    """The float a DICOM reader gets back from `format_ds(value)`."""
    return float(format_ds(value))


def rotation_matrix(rx_deg: float, ry_deg: float, rz_deg: float) -> np.ndarray:
    """R = Rz @ Ry @ Rx, rotations in degrees about the patient x (L), y (P), z (S) axes."""
    rx, ry, rz = np.deg2rad([rx_deg, ry_deg, rz_deg])
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def rigid_matrix(rotation_deg, translation_mm) -> np.ndarray:
    """4×4 homogeneous matrix x' = R·x + t (R from `rotation_matrix`)."""
    m = np.eye(4)
    m[:3, :3] = rotation_matrix(*rotation_deg)
    m[:3, 3] = np.asarray(translation_mm, dtype=np.float64)
    return m


def rigid_inverse(m: np.ndarray) -> np.ndarray:
    """Exact-form inverse of a rigid 4×4 matrix."""
    inv = np.eye(4)
    inv[:3, :3] = m[:3, :3].T
    inv[:3, 3] = -m[:3, :3].T @ m[:3, 3]
    return inv


def rotation_angle_deg(m: np.ndarray) -> float:
    """Total rotation angle (axis-angle magnitude) of a rigid matrix, degrees."""
    c = (np.trace(m[:3, :3]) - 1.0) / 2.0
    return float(np.rad2deg(np.arccos(np.clip(c, -1.0, 1.0))))


def apply(m: np.ndarray, pts) -> np.ndarray:
    """Apply a 4×4 matrix to (…, 3) points."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:3, :3].T + m[:3, 3]


@dataclass(frozen=True)
class SlabGeometry:
    """One sagittal acquisition slab, with every number already DS-quantised."""

    rows: int
    columns: int
    n_slices: int
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing), mm
    iop: tuple[float, ...]
    positions: tuple[tuple[float, float, float], ...]  # IPP per slice (quantised)
    slice_thickness: float
    slice_spacing: float

    @property
    def affine(self) -> np.ndarray:
        """Index (column, row, slice) → patient LPS mm, built exactly as a DICOM reader would."""
        iop = np.asarray(self.iop, dtype=np.float64)
        a = np.eye(4)
        a[:3, 0] = iop[:3] * self.pixel_spacing[1]
        a[:3, 1] = iop[3:6] * self.pixel_spacing[0]
        p0 = np.asarray(self.positions[0], dtype=np.float64)
        if self.n_slices > 1:
            a[:3, 2] = np.asarray(self.positions[1], dtype=np.float64) - p0
        else:
            a[:3, 2] = np.cross(iop[:3], iop[3:6]) * self.slice_spacing
        a[:3, 3] = p0
        return a

    def plane_affine(self, n_sub: int) -> np.ndarray:
        """Affine of the through-plane supersampling grid: index (column, row, k) with
        k = slice·n_sub + j sampling slice `slice` at offsets spread over its thickness."""
        a = self.affine.copy()
        step = a[:3, 2].copy()
        thick_dir = step / np.linalg.norm(step) * self.slice_thickness
        a[:3, 2] = step / n_sub if n_sub > 1 else step
        # sample j of slice s sits at s*step + (j + 0.5)/n_sub * thickness - thickness/2
        a[:3, 3] = a[:3, 3] - thick_dir / 2 + thick_dir / (2 * n_sub)
        return a


def plan_slab(*, rows: int, columns: int, n_slices: int, pixel_mm: float, slice_mm: float,
              centre_lps, step_sign: int = -1) -> SlabGeometry:
    """Plan a sagittal slab centred on `centre_lps`, slices stepping along `step_sign`·x.

    The default (−x) steps along the slice normal (row × column cosine), so slice index, InstanceNumber
    and the position along the normal all increase together and the affine is right-handed.

    Positions are quantised to DS-exact values; the slice step is the quantised `slice_mm`, and every
    slice position is computed from quantised numbers so IPP differences are the same for all pairs.
    """
    ps = quantise(pixel_mm)
    step = quantise(slice_mm)
    cx, cy, cz = (float(v) for v in centre_lps)
    row_cos = np.array(SAGITTAL_IOP[:3])
    col_cos = np.array(SAGITTAL_IOP[3:])
    # centre of voxel (0, 0) of the middle slice
    first = np.array([0.0, cy, cz]) - row_cos * ps * (columns - 1) / 2 - col_cos * ps * (rows - 1) / 2
    y0, z0 = quantise(first[1]), quantise(first[2])
    x0 = quantise(cx - step_sign * step * (n_slices - 1) / 2)
    positions = []
    for k in range(n_slices):
        x = quantise(x0 + step_sign * step * k)
        positions.append((x, y0, z0))
    return SlabGeometry(rows=rows, columns=columns, n_slices=n_slices, pixel_spacing=(ps, ps),
                        iop=SAGITTAL_IOP, positions=tuple(positions), slice_thickness=step,
                        slice_spacing=step)

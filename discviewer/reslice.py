"""Sampling a volume on an arbitrary plane in patient space (numpy/scipy, no VTK).

Owns `PlaneGrid` (a 2-D grid of points in LPS mm: origin + column/row axes) and
`sample_plane`, which samples a `Volume` on that grid, optionally through a 4×4 transform
from the grid's patient space into the volume's patient space (e.g. baseline → follow-up visit).
Used by overlay/flicker/difference display, checkerboards and figure export, so two visits
can be compared pixel by pixel on the same grid. Core module: no Qt, no VTK.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from discviewer.volume import Volume

# screen axes per plane in LPS, radiological convention (the row axis points down the screen):
# sagittal: columns run anterior→posterior (+y), rows superior→inferior (−z)
# coronal:  columns run right→left (+x),        rows superior→inferior (−z)
# axial:    columns run right→left (+x),        rows anterior→posterior (+y)
PLANE_AXES = {
    "sag": (np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])),
    "cor": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])),
    "ax": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])),
}


@dataclass(frozen=True)
class PlaneGrid:
    """Grid point (i, j) — column i, row j — sits at origin + i·col_axis·spacing + j·row_axis·spacing."""

    origin: np.ndarray  # LPS of pixel (0, 0)
    col_axis: np.ndarray  # unit vector along increasing column
    row_axis: np.ndarray  # unit vector along increasing row
    spacing: float  # mm per pixel (square pixels)
    shape: tuple[int, int]  # (rows, columns)

    @classmethod
    def centered(cls, center, plane: str, extent_mm: float | tuple[float, float], spacing: float) -> "PlaneGrid":
        """A grid of `extent_mm` (width, height) centred on `center` in one of the standard planes."""
        if plane not in PLANE_AXES:
            raise ValueError(f"unknown plane {plane!r}; use one of {sorted(PLANE_AXES)}")
        u, v = PLANE_AXES[plane]
        w, h = (extent_mm, extent_mm) if np.isscalar(extent_mm) else extent_mm
        cols, rows = max(1, int(round(w / spacing))), max(1, int(round(h / spacing)))
        origin = np.asarray(center, float) - u * spacing * (cols - 1) / 2 - v * spacing * (rows - 1) / 2
        return cls(origin, u, v, float(spacing), (rows, cols))

    def points(self) -> np.ndarray:
        """(rows, cols, 3) LPS coordinates of every grid pixel."""
        rows, cols = self.shape
        j, i = np.mgrid[0:rows, 0:cols]
        return (self.origin + i[..., None] * self.col_axis * self.spacing
                + j[..., None] * self.row_axis * self.spacing)

    def point(self, i: float, j: float) -> np.ndarray:
        return self.origin + i * self.col_axis * self.spacing + j * self.row_axis * self.spacing


def sample_plane(volume: Volume, grid: PlaneGrid, *, transform: np.ndarray | None = None, order: int = 1,
                 fill: float = np.nan) -> np.ndarray:
    """Sample `volume` at the grid points (float64, shape grid.shape); outside the volume → `fill`.

    `transform` (4×4) maps a point of the grid's patient space into the volume's patient
    space (for a follow-up shown on the baseline's grid: baseline → visit). `order`: 0 nearest,
    1 linear, 3 cubic.
    """
    pts = grid.points().reshape(-1, 3)
    if transform is not None:
        t = np.asarray(transform, float)
        pts = pts @ t[:3, :3].T + t[:3, 3]
    ijk = volume.patient_to_index(pts)  # (column, row, slice)
    coords = np.stack([ijk[:, 2], ijk[:, 1], ijk[:, 0]])  # array axes (slice, row, column)
    shape = np.array(volume.array.shape)[:, None]
    # a thin (single-slice) axis keeps values within half a voxel of its centre
    inside = np.all((coords > -0.5) & (coords < shape - 0.5), axis=0)
    coords = np.clip(coords, 0, shape - 1)
    from scipy import ndimage  # lazily: scipy.ndimage costs ~0.3 s at start-up

    out = ndimage.map_coordinates(np.asarray(volume.array, dtype=np.float64), coords, order=order,
                                  mode="nearest", prefilter=order > 1)
    out[~inside] = fill
    return out.reshape(grid.shape)


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Alternate tiles of `a` and `b` (same shape) — the classic registration check."""
    if a.shape != b.shape:
        raise ValueError(f"checkerboard needs equal shapes, got {a.shape} and {b.shape}")
    rows, cols = a.shape
    j, i = np.mgrid[0:rows, 0:cols]
    mask = ((i * tiles // max(cols, 1)) + (j * tiles // max(rows, 1))) % 2 == 0
    return np.where(mask, a, b)


def resample_volume(source: Volume, target_affine: np.ndarray, target_shape: tuple[int, int, int], *,
                    transform: np.ndarray | None = None, order: int = 1, fill: float = 0.0) -> Volume:
    """`source` resampled onto another voxel grid (float32).

    `target_affine`/`target_shape` describe the grid (index → LPS, (slices, rows, columns));
    `transform` (4×4) maps a point of the target's patient space into the source's patient space
    (e.g. a follow-up grid with visit → baseline, to show the baseline on the follow-up's slices).
    Points outside the source get `fill`. Processed slice by slice to bound memory.
    """
    target_affine = np.asarray(target_affine, float)
    m = target_affine if transform is None else np.asarray(transform, float) @ target_affine
    to_src = np.linalg.inv(source.affine) @ m  # target index → source index
    ns, nr, nc = (int(v) for v in target_shape)
    out = np.empty((ns, nr, nc), dtype=np.float32)
    src = np.asarray(source.array, dtype=np.float32)
    from scipy import ndimage

    r, c = np.mgrid[0:nr, 0:nc]
    base = np.stack([c.ravel(), r.ravel(), np.zeros(r.size), np.ones(r.size)]).astype(np.float64)
    for k in range(ns):
        base[2] = k
        ijk = to_src[:3] @ base  # (column, row, slice) in the source
        coords = np.stack([ijk[2], ijk[1], ijk[0]])
        out[k] = ndimage.map_coordinates(src, coords, order=order, mode="constant", cval=fill,
                                         prefilter=order > 1).reshape(nr, nc)
    return Volume(out, target_affine.copy(), info=source.info, warnings=list(source.warnings))

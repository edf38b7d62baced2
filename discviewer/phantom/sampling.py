"""Sample grids for the phantom: which anatomical points a slab's voxels (and sub-samples) cover.

Owns `SampleGrid`: an index → anatomical-space affine over a (planes, rows, columns) block, and
bounding-box culling so that each anatomical structure is evaluated only on the sub-block that can
touch it. Core module: numpy only.
"""
from __future__ import annotations

import numpy as np


class SampleGrid:
    """Points p = A·(column, row, plane, 1) for plane in [plane0, plane0+n_planes).

    `A` maps grid indices straight to anatomical (baseline patient) coordinates, i.e. it already
    includes the visit's repositioning. `labels` and `w` are painted in place by the anatomy.
    """

    def __init__(self, affine: np.ndarray, shape: tuple[int, int, int], plane0: int = 0):
        self.affine = np.asarray(affine, dtype=np.float64)
        self.inv = np.linalg.inv(self.affine)
        self.shape = shape  # (planes, rows, columns)
        self.plane0 = plane0
        self.labels = np.zeros(shape, dtype=np.uint8)
        self.w = np.zeros(shape, dtype=np.float32)

    def block(self, lo, hi):
        """Sub-block that may hold points inside the anatomical box [lo, hi].

        Returns (slices, X, Y, Z) with X/Y/Z float32 arrays of the block's anatomical coordinates,
        or None when the box misses the grid.
        """
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])])
        idx = corners @ self.inv[:3, :3].T + self.inv[:3, 3]  # (8, 3): column, row, plane
        imin = np.floor(idx.min(axis=0)).astype(int)
        imax = np.ceil(idx.max(axis=0)).astype(int) + 1
        np_, nr, nc = self.shape
        c0, c1 = max(imin[0], 0), min(imax[0], nc)
        r0, r1 = max(imin[1], 0), min(imax[1], nr)
        p0, p1 = max(imin[2] - self.plane0, 0), min(imax[2] - self.plane0, np_)
        if c0 >= c1 or r0 >= r1 or p0 >= p1:
            return None
        return self._points((slice(p0, p1), slice(r0, r1), slice(c0, c1)))

    def all(self):
        return self._points(tuple(slice(0, n) for n in self.shape))

    def _points(self, sl):
        a = self.affine
        c = np.arange(sl[2].start, sl[2].stop, dtype=np.float64)[None, None, :]
        r = np.arange(sl[1].start, sl[1].stop, dtype=np.float64)[None, :, None]
        p = np.arange(sl[0].start, sl[0].stop, dtype=np.float64)[:, None, None] + self.plane0
        out = []
        for k in range(3):
            out.append((a[k, 0] * c + a[k, 1] * r + a[k, 2] * p + a[k, 3]).astype(np.float32))
        return sl, out[0], out[1], out[2]

    def paint(self, sl, mask, label: int, w=None) -> None:
        """Set `label` (and nucleus weight `w`, 0 where not given) where mask is true."""
        lab = self.labels[sl]
        lab[mask] = label
        ww = self.w[sl]
        ww[mask] = 0.0 if w is None else w[mask]


class PointGrid:
    """Scattered sample points (the sub-voxel points of the voxels that need them), painted through the
    same interface as `SampleGrid`: `block` culls by the points' continuous grid indices, the `sl` it
    returns is an index array into the point list, and `paint` writes through it.

    `affine` maps grid indices (column, row, plane) to anatomical coordinates; `index` is (3, N), the
    points' continuous indices; the points must be sorted by `index[1]`'s integer part (row), which
    `block` uses to find a row range by bisection."""

    def __init__(self, affine: np.ndarray, index: np.ndarray, row_key: np.ndarray):
        self.affine = np.asarray(affine, dtype=np.float64)
        self.inv = np.linalg.inv(self.affine)
        self.index = np.asarray(index, dtype=np.float32)
        self.row_key = np.asarray(row_key)
        n = self.index.shape[1]
        self.shape = (n,)
        a = self.affine.astype(np.float32)
        ci, ri, pi = self.index
        self.X, self.Y, self.Z = (a[k, 0] * ci + a[k, 1] * ri + a[k, 2] * pi + a[k, 3] for k in range(3))
        self.labels = np.zeros(n, dtype=np.uint8)
        self.w = np.zeros(n, dtype=np.float32)
        self.pmin = float(self.index[2].min()) if n else 0.0
        self.pmax = float(self.index[2].max()) if n else 0.0

    def block(self, lo, hi):
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])])
        idx = corners @ self.inv[:3, :3].T + self.inv[:3, 3]
        imin, imax = idx.min(axis=0), idx.max(axis=0)
        key = self.row_key.dtype.type
        i0 = int(np.searchsorted(self.row_key, key(np.floor(imin[1]) - 1), side="left"))
        i1 = int(np.searchsorted(self.row_key, key(np.ceil(imax[1]) + 1), side="right"))
        if i1 <= i0:
            return None
        # rows are bracketed by the bisection (±1 row); columns decide; the points of one slice rarely
        # straddle a plane bound, so planes are checked only when the box cuts through them
        ci = self.index[0, i0:i1]
        m = (ci >= imin[0]) & (ci <= imax[0])
        if imin[2] > self.pmin or imax[2] < self.pmax:
            pi = self.index[2, i0:i1]
            m &= (pi >= imin[2]) & (pi <= imax[2])
        sel = np.flatnonzero(m) + i0
        if sel.size == 0:
            return None
        return sel, self.X[sel], self.Y[sel], self.Z[sel]

    def all(self):
        return slice(None), self.X, self.Y, self.Z

    def paint(self, sl, mask, label: int, w=None) -> None:
        idx = sl[mask] if isinstance(sl, np.ndarray) else np.flatnonzero(mask)
        self.labels[idx] = label
        self.w[idx] = 0.0 if w is None else w[mask]

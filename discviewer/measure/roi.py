"""Regions of interest drawn on a plane: which voxels they cover, their statistics and areas.

**Geometry.** A `PlaneROI` is an ellipse, polygon or freehand outline drawn on a plane (origin,
unit normal n; LPS mm) with an optional slab half-thickness `slab_mm` (the ROI then covers the
slices within ±slab of its plane). Its points are projected onto the plane along n; the plane gets
an in-plane orthonormal frame (e1, e2), and the outline lives in those 2-D mm coordinates:
- ellipse: points = (centre C, end of axis a A, end of axis b B); semi-axes â = (A − C)/|A − C|,
  a = |A − C|; b = the part of B − C orthogonal to â (so a slightly skewed drag still gives an
  ellipse). Inside: ((q − C)·â / a)² + ((q − C)·b̂ / b)² ≤ 1.
- polygon / freehand: the closed outline through the points (≥ 3); inside by the even–odd rule.

**Voxel-centre rule** (`roi_mask`). A voxel belongs to the ROI when its *centre* x satisfies both
    −(slab_mm + h) ≤ (x − origin)·n < slab_mm + h   (h = ½·Σ_k |a_k·n|, half the voxel's extent along n,
                                      a_k the affine's column vectors — so a plane lying in a slice
                                      selects exactly that slice; the upper bound is exclusive so a
                                      plane midway between two slices takes one, not both)
    and the projection of x onto the plane lies inside the outline (boundary included).
Partial voxels are not weighted: a voxel is in or out.

**Areas are geometry, never bare pixel counts.** `RoiStats.area_mm2` is the outline's exact area
on its plane (π·a·b for an ellipse, the shoelace formula for a polygon). `pixel_area_mm2` is the
voxel count of one slice of the selection times the voxel's cross-section on the plane
(|det A| / (2h): voxel volume over its extent along n — the PixelSpacing product for a plane in a
slice), averaged over the slices of a slab; `volume_mm3` = n_voxels · |det A|.

**Statistics** are over the selected voxels' stored values: mean, sd (sample, ddof = 1), median,
min, max, a histogram (`bins` equal-width bins between min and max) and per-slice summaries along
the volume's slice axis.

Core module: numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from discviewer.volume import Volume

__all__ = ["PlaneROI", "RoiStats", "SliceStats", "roi_mask", "roi_stats", "roi_area_mm2", "plane_frame",
           "ROI_KINDS"]

ROI_KINDS = ("ellipse", "polygon", "freehand")


def plane_frame(normal) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, e1, e2): the unit normal and a right-handed in-plane orthonormal pair (e1 × e2 = n).
    e1 is the projection of the patient axis least aligned with n (deterministic)."""
    n = np.asarray(normal, dtype=np.float64)
    nn = np.linalg.norm(n)
    if not np.isfinite(nn) or nn < 1e-12:
        raise ValueError("the plane normal must be a non-zero vector")
    n = n / nn
    axis = np.eye(3)[int(np.argmin(np.abs(n)))]
    e1 = axis - n * np.dot(axis, n)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    return n, e1, e2


@dataclass(frozen=True)
class PlaneROI:
    """An outline on a plane: `kind` "ellipse" | "polygon" | "freehand"; `points` (N, 3) LPS mm;
    `plane_origin`, `plane_normal` (LPS); `slab_mm` ≥ 0 extends it to the slices within ±slab."""

    kind: str
    points: tuple[tuple[float, float, float], ...]
    plane_origin: tuple[float, float, float]
    plane_normal: tuple[float, float, float]
    slab_mm: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ROI_KINDS:
            raise ValueError(f"ROI kind must be one of {ROI_KINDS}, got {self.kind!r}")
        pts = np.asarray(self.points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"ROI points must be (N, 3), got shape {pts.shape}")
        if pts.shape[0] < 3:
            raise ValueError(f"a {self.kind} ROI needs at least 3 points")
        if self.kind == "ellipse" and pts.shape[0] != 3:
            raise ValueError("an ellipse ROI has exactly 3 points: centre, end of axis a, end of axis b")
        if self.slab_mm < 0:
            raise ValueError("slab_mm must be ≥ 0")
        object.__setattr__(self, "points", tuple(tuple(float(v) for v in p) for p in pts))
        object.__setattr__(self, "plane_origin", tuple(float(v) for v in np.asarray(self.plane_origin, float)))
        object.__setattr__(self, "plane_normal", tuple(float(v) for v in np.asarray(self.plane_normal, float)))
        plane_frame(self.plane_normal)  # validates the normal

    @classmethod
    def from_points(cls, kind: str, points, *, normal=None, origin=None, slab_mm: float = 0.0) -> "PlaneROI":
        """ROI on the plane through its points: `normal` given, or the best-fit plane of the points
        (smallest principal axis; for an ellipse the normal of its two axes); `origin` the first point."""
        pts = np.asarray(points, dtype=np.float64)
        if normal is None:
            if kind == "ellipse":
                normal = np.cross(pts[1] - pts[0], pts[2] - pts[0])
            else:
                centred = pts - pts.mean(axis=0)
                normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
        return cls(kind, tuple(map(tuple, pts)), tuple(pts[0] if origin is None else origin),
                   tuple(normal), slab_mm)

    # -- 2-D geometry on the plane ------------------------------------------------------------------
    def frame(self):
        return plane_frame(self.plane_normal)

    def points_2d(self) -> np.ndarray:
        """(N, 2) outline points in the plane frame (mm), projected along the normal."""
        n, e1, e2 = self.frame()
        d = np.asarray(self.points) - np.asarray(self.plane_origin)
        return np.stack([d @ e1, d @ e2], axis=1)

    def ellipse_axes(self) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, float]:
        """(centre, â, a, b̂, b) of an ellipse ROI in plane coordinates."""
        c, pa, pb = self.points_2d()
        va = pa - c
        a = float(np.linalg.norm(va))
        if a <= 0:
            raise ValueError("ellipse axis a has zero length")
        ah = va / a
        vb = pb - c
        vb = vb - ah * np.dot(vb, ah)
        b = float(np.linalg.norm(vb))
        if b <= 0:
            raise ValueError("ellipse axis b has zero length (or is parallel to axis a)")
        return c, ah, a, vb / b, b

    def contains_2d(self, q: np.ndarray) -> np.ndarray:
        """Inside test for (…, 2) plane points (boundary counts as inside)."""
        q = np.asarray(q, dtype=np.float64)
        if self.kind == "ellipse":
            c, ah, a, bh, b = self.ellipse_axes()
            d = q - c
            return ((d @ ah) / a) ** 2 + ((d @ bh) / b) ** 2 <= 1.0 + 1e-12
        return _in_polygon(q, self.points_2d())

    def area_mm2(self) -> float:
        """Exact area of the outline on its plane (mm²): π·a·b, or the shoelace formula."""
        if self.kind == "ellipse":
            _, _, a, _, b = self.ellipse_axes()
            return float(np.pi * a * b)
        p = self.points_2d()
        x, y = p[:, 0], p[:, 1]
        return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _in_polygon(q: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even–odd rule, vectorised over points; points on an edge count as inside."""
    shape = q.shape[:-1]
    qx = q[..., 0].ravel()
    qy = q[..., 1].ravel()
    inside = np.zeros(qx.size, dtype=bool)
    on_edge = np.zeros(qx.size, dtype=bool)
    n = poly.shape[0]
    for i in range(n):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % n]
        crosses = (y0 > qy) != (y1 > qy)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x0 + (qy - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (qx < xint)
        # on-edge: collinear and within the segment's box
        cross = (x1 - x0) * (qy - y0) - (y1 - y0) * (qx - x0)
        seg = max(np.hypot(x1 - x0, y1 - y0), 1e-12)
        on_edge |= (np.abs(cross) / seg <= 1e-9) & (qx >= min(x0, x1) - 1e-9) & (qx <= max(x0, x1) + 1e-9) & \
            (qy >= min(y0, y1) - 1e-9) & (qy <= max(y0, y1) + 1e-9)
    return (inside | on_edge).reshape(shape)


def _half_extent(affine: np.ndarray, n: np.ndarray) -> float:
    """h = ½·Σ_k |a_k·n|: half the voxel's extent along the unit normal n."""
    return 0.5 * float(np.sum(np.abs(affine[:3, :3].T @ n)))


def roi_mask(volume: Volume, roi: PlaneROI) -> np.ndarray:
    """Boolean (slices, rows, columns) mask by the voxel-centre rule (module doc)."""
    n, e1, e2 = roi.frame()
    o = np.asarray(roi.plane_origin)
    aff = volume.affine
    h = _half_extent(aff, n)
    lim = roi.slab_mm + h
    # candidate box: the outline's 2-D bounding box, thickened by the slab, in index space
    p2 = roi.points_2d()
    if roi.kind == "ellipse":
        c, ah, a, bh, b = roi.ellipse_axes()
        r = np.abs(ah) * a + np.abs(bh) * b
        lo2, hi2 = c - r, c + r
    else:
        lo2, hi2 = p2.min(axis=0), p2.max(axis=0)
    corners = [o + e1 * x + e2 * y + n * z for x in (lo2[0], hi2[0]) for y in (lo2[1], hi2[1]) for z in (-lim, lim)]
    idx = volume.patient_to_index(np.array(corners))  # (8, 3) column, row, slice
    shape = volume.shape
    lo_i = np.maximum(np.floor(idx.min(axis=0)).astype(int) - 1, 0)
    hi_i = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 2, [shape[2], shape[1], shape[0]])
    mask = np.zeros(shape, dtype=bool)
    if np.any(hi_i <= lo_i):
        return mask
    kk, rr, cc = np.meshgrid(np.arange(lo_i[2], hi_i[2]), np.arange(lo_i[1], hi_i[1]),
                             np.arange(lo_i[0], hi_i[0]), indexing="ij")
    ijk = np.stack([cc, rr, kk], axis=-1).astype(np.float64)
    x = volume.index_to_patient(ijk) - o
    d = x @ n
    tol = 1e-9 * max(1.0, lim)
    in_slab = (d >= -lim - tol) & (d < lim - tol)
    q = np.stack([x @ e1, x @ e2], axis=-1)
    inside = in_slab & roi.contains_2d(q)
    mask[lo_i[2]:hi_i[2], lo_i[1]:hi_i[1], lo_i[0]:hi_i[0]] = inside
    return mask


@dataclass(frozen=True)
class SliceStats:
    """Summary of the ROI's voxels in one slice of the volume (index along the slice axis)."""

    slice_index: int
    n_voxels: int
    mean: float
    pixel_area_mm2: float  # n_voxels × in-slice pixel area (column × row spacing)


@dataclass(frozen=True)
class RoiStats:
    """Statistics of a ROI's voxels. Intensities in the volume's stored units; see the module doc."""

    mean: float
    sd: float
    median: float
    min: float
    max: float
    area_mm2: float  # exact outline area on the ROI plane
    pixel_area_mm2: float  # voxel count per slice of the selection × the voxel cross-section on the plane
    n_voxels: int
    volume_mm3: float
    histogram_counts: tuple[int, ...] = ()
    histogram_edges: tuple[float, ...] = ()
    per_slice: tuple[SliceStats, ...] = field(default=())

    def values(self) -> dict[str, float]:
        """The annotation values of an ROI kind (`discviewer.annotations`)."""
        return {"mean": self.mean, "sd": self.sd, "median": self.median, "min": self.min, "max": self.max,
                "area_mm2": self.area_mm2, "n_voxels": self.n_voxels}

    @staticmethod
    def units(intensity_unit: str = "a.u.") -> dict[str, str]:
        u = intensity_unit
        return {"mean": u, "sd": u, "median": u, "min": u, "max": u, "area_mm2": "mm²", "n_voxels": ""}

    @classmethod
    def from_values(cls, values, *, area_mm2: float = float("nan")) -> "RoiStats":
        """Statistics of an arbitrary set of values (e.g. a reference stored elsewhere)."""
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size == 0:
            raise ValueError("no values")
        sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
        return cls(float(v.mean()), sd, float(np.median(v)), float(v.min()), float(v.max()), area_mm2,
                   float("nan"), int(v.size), float("nan"))


def roi_area_mm2(roi: PlaneROI) -> float:
    """Exact outline area on the ROI plane (mm²)."""
    return roi.area_mm2()


def roi_stats(volume: Volume, roi: PlaneROI, *, bins: int = 32, mask: np.ndarray | None = None) -> RoiStats:
    """Statistics of the voxels of `roi` in `volume` (`mask` may pass a precomputed `roi_mask`).
    Raises ValueError when the ROI covers no voxel centre."""
    m = roi_mask(volume, roi) if mask is None else np.asarray(mask, bool)
    v = np.asarray(volume.array)[m].astype(np.float64)
    if v.size == 0:
        raise ValueError("the ROI contains no voxel centre")
    n, _, _ = roi.frame()
    aff = volume.affine
    det = abs(float(np.linalg.det(aff[:3, :3])))
    h = _half_extent(aff, n)
    cross_section = det / (2.0 * h)
    # voxels of one slice of the selection: the selection's thickness along n holds ≈ (2·slab + 2h)/(2h)
    # layers of voxels; pixel area = count / layers × cross-section
    layers = max((2.0 * roi.slab_mm + 2.0 * h) / (2.0 * h), 1.0)
    pixel_area = v.size / layers * cross_section
    counts, edges = np.histogram(v, bins=bins)
    col, row = np.linalg.norm(aff[:3, 0]), np.linalg.norm(aff[:3, 1])
    per = []
    for k in np.flatnonzero(m.any(axis=(1, 2))):
        vk = np.asarray(volume.array[k])[m[k]].astype(np.float64)
        per.append(SliceStats(int(k), int(vk.size), float(vk.mean()), float(vk.size * col * row)))
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return RoiStats(float(v.mean()), sd, float(np.median(v)), float(v.min()), float(v.max()), roi.area_mm2(),
                    float(pixel_area), int(v.size), float(v.size * det), tuple(int(c) for c in counts),
                    tuple(float(e) for e in edges), tuple(per))

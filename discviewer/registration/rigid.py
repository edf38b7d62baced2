"""Intensity-based rigid registration: multi-resolution, NCC or Mattes-style mutual information.

How it works
------------
* The fixed image is never resampled: at each pyramid level the metric is evaluated at a strided
  (and, when there are many, randomly thinned) subset of the fixed volume's own voxel centres inside
  the ROI, on its native — possibly strongly anisotropic — grid. The moving image is sampled at
  those points mapped through the current transform, in the moving volume's index space, with
  `scipy.ndimage.map_coordinates` (linear).
* Pyramid: in-plane shrink factors 4/2/1 (only along the fine axes; thick slices are never
  subsampled), each level Gaussian-smoothed with sigma = factor/2 in-plane voxels (none at 1).
* Transform: rotation (Euler Z·Y·X) about the centre of the fixed ROI (or of the fixed volume) plus a
  translation, composed after an initial transform (identity in patient space = the scanners'
  geometry, or that plus a centre-of-mass shift with ``init="moments"``).
* Optimiser: `scipy.optimize.minimize(method="Powell")` per level, bounded, with the rotations
  scaled to millimetres at the sample cloud's RMS radius so all six parameters are comparable.
  Bounded by evaluations per level and by `max_seconds` (the best transform so far is kept).
* Metrics: "ncc" (normalised correlation, for the same sequence; gain/offset invariant) and "mi"
  (mutual information on a 32-bin joint histogram with linear — first-order B-spline Parzen —
  binning of both intensities; for gain changes and different sequences). "auto" picks "ncc"
  when both series are the same sequence (same non-empty series description and TR/TE within
  10 % where both are known) and "mi" otherwise.

Reported metric values (`initial_metric`, `final_metric`) are "higher is better": the correlation
coefficient for NCC, the mutual information in nats for MI, both on the finest level's samples.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import ndimage, optimize

from ..volume import Volume

Box = tuple[float, float, float, float, float, float]


class RegistrationError(RuntimeError):
    """The registration cannot run (no overlap, empty ROI, bad input)."""


class RegistrationCancelled(Exception):
    """`cancel()` returned True during a registration."""


@dataclass
class RegistrationResult:
    """Outcome of `register_rigid`. `matrix`: fixed patient space → moving patient space (4×4)."""

    matrix: np.ndarray
    initial_metric: float
    final_metric: float
    iterations: int
    seconds: float
    metric: str
    roi: Box | None
    settings: dict = field(default_factory=dict)
    parameters: tuple[float, ...] = ()  # rx, ry, rz (degrees), tx, ty, tz (mm) about `centre`
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    levels: list[dict] = field(default_factory=list)  # per-level diagnostics
    stopped: str = "converged"  # "converged", "max_evaluations" or "max_seconds"

    @property
    def fixed_to_moving(self) -> np.ndarray:
        return self.matrix

    @property
    def moving_to_fixed(self) -> np.ndarray:
        return np.linalg.inv(self.matrix)


class _Stop(Exception):
    pass


def euler_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """3×3 rotation R = Rz·Ry·Rx (radians)."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rxm = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rym = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rzm = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rzm @ rym @ rxm


def _rigid(params: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """4×4: x ↦ R(x − c) + c + t; params = (rx, ry, rz [rad], tx, ty, tz [mm])."""
    m = np.eye(4)
    r = euler_matrix(*params[:3])
    m[:3, :3] = r
    m[:3, 3] = centre + params[3:6] - r @ centre
    return m


def _series_name(v: Volume) -> str:
    i = v.info
    name = i.series_description or "(no description)"
    if i.series_number is not None:
        name += f" #{i.series_number}"
    if i.study_date:
        name += f" [{i.study_date}]"
    if i.source_path:
        name += f" ({i.source_path})"
    return name


def _close(a, b) -> bool:
    if a is None or b is None:
        return True
    return abs(a - b) <= 0.1 * max(abs(a), abs(b), 1e-9)


def choose_metric(fixed: Volume, moving: Volume) -> str:
    """'ncc' when both volumes are the same sequence, else 'mi' (the rule behind metric='auto')."""
    a, b = fixed.info, moving.info
    same = (a.series_description != "" and a.series_description.strip().lower() == b.series_description.strip().lower()
            and _close(a.repetition_time, b.repetition_time) and _close(a.echo_time, b.echo_time))
    return "ncc" if same else "mi"


def _inplane_axes(v: Volume) -> np.ndarray:
    """Boolean per array axis (slice, row, column): True where the axis is a fine (in-plane) axis."""
    sp = np.array(v.spacing)[::-1]  # (slice, row, column) order
    return sp <= 1.5 * sp.min()


def _smooth(arr: np.ndarray, v: Volume, sigma_mm: float) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float32)
    if sigma_mm <= 0:
        return a
    sp = np.array(v.spacing)[::-1]
    sig = sigma_mm / sp
    sig[sig < 0.3] = 0.0
    if not np.any(sig):
        return a
    return ndimage.gaussian_filter(a, sig, mode="nearest", truncate=3.0)


def _roi_index_bounds(v: Volume, roi: Box | None) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive (slice, row, column) integer bounds of the fixed voxels that can lie in `roi`."""
    shape = np.array(v.shape)
    if roi is None:
        return np.zeros(3, int), shape - 1
    x0, y0, z0, x1, y1, z1 = roi
    corners = np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], float)
    ijk = v.patient_to_index(corners)[:, ::-1]  # → (slice, row, column)
    lo = np.clip(np.floor(ijk.min(0)).astype(int), 0, shape - 1)
    hi = np.clip(np.ceil(ijk.max(0)).astype(int), 0, shape - 1)
    return lo, hi


def _fixed_samples(fixed: Volume, roi: Box | None, factor: int, max_samples: int,
                   rng: np.random.Generator) -> np.ndarray:
    """(N, 3) integer (slice, row, column) voxel indices of the fixed samples at one level."""
    lo, hi = _roi_index_bounds(fixed, roi)
    fine = _inplane_axes(fixed)
    axes = []
    for ax in range(3):
        step = factor if fine[ax] else 1
        start = lo[ax] + (step // 2 if hi[ax] - lo[ax] >= step else 0)
        axes.append(np.arange(start, hi[ax] + 1, step))
    g = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    if roi is not None and len(g):
        x0, y0, z0, x1, y1, z1 = roi
        p = fixed.index_to_patient(g[:, ::-1].astype(float))
        lo_b = np.minimum([x0, y0, z0], [x1, y1, z1])
        hi_b = np.maximum([x0, y0, z0], [x1, y1, z1])
        g = g[np.all((p >= lo_b - 1e-6) & (p <= hi_b + 1e-6), axis=1)]
    if len(g) > max_samples:
        g = g[np.sort(rng.choice(len(g), max_samples, replace=False))]
    return g


class _Level:
    """Everything the metric needs at one pyramid level."""

    def __init__(self, fixed: Volume, moving: Volume, roi, factor: int, metric: str, bins: int,
                 max_samples: int, rng: np.random.Generator):
        self.factor = factor
        self.metric = metric
        self.bins = bins
        sigma_f = 0.5 * factor * min(fixed.spacing) if factor > 1 else 0.0
        sigma_m = 0.5 * factor * min(moving.spacing) if factor > 1 else 0.0
        idx = _fixed_samples(fixed, roi, factor, max_samples, rng)
        self.n_total = len(idx)
        if self.n_total == 0:
            raise RegistrationError(f"the ROI {roi} contains no voxel of the fixed series {_series_name(fixed)}")
        fa = _smooth(fixed.array, fixed, sigma_f)
        # jitter the samples off the fixed grid (±½ voxel on every axis): with both images sampled at
        # grid-aligned points, linear interpolation biases the metric's optimum towards grid shifts
        pos = idx.astype(float)
        jitter = rng.uniform(-0.5, 0.5, size=pos.shape)
        pos = np.clip(pos + jitter, 0, np.array(fixed.shape) - 1)
        self.fvals = ndimage.map_coordinates(np.asarray(fa, dtype=np.float64), pos.T, order=1, mode="nearest",
                                             prefilter=False)
        self.points_h = np.c_[fixed.index_to_patient(pos[:, ::-1]), np.ones(len(idx))].T  # (4, N)
        self.moving = _smooth(moving.array, moving, sigma_m)
        self.inv_moving = np.linalg.inv(moving.affine)
        self.mshape = np.array(moving.shape, float)
        if metric == "mi":
            lo, hi = np.percentile(self.fvals, [0.5, 99.5])
            self.f_lo, self.f_scale = lo, (bins - 1) / max(hi - lo, 1e-9)
            sub = self.moving.ravel()[:: max(1, self.moving.size // 200_000)]
            lo, hi = np.percentile(sub, [0.5, 99.5])
            self.m_lo, self.m_scale = lo, (bins - 1) / max(hi - lo, 1e-9)
            fb = np.clip((self.fvals - self.f_lo) * self.f_scale, 0, bins - 1 - 1e-9)
            self.f_i = np.floor(fb).astype(np.int64)
            self.f_w = fb - self.f_i

    def sample(self, fixed_to_moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(moving values, inside mask) at the fixed samples mapped by the 4×4 transform."""
        ijk = (self.inv_moving @ fixed_to_moving @ self.points_h)[:3]  # (column, row, slice)
        coords = ijk[::-1]  # (slice, row, column)
        inside = np.all((coords >= -0.5) & (coords <= self.mshape[:, None] - 0.5), axis=0)
        vals = ndimage.map_coordinates(self.moving, coords[:, inside], order=1, mode="nearest", prefilter=False)
        return vals.astype(np.float64), inside

    def value(self, fixed_to_moving: np.ndarray) -> tuple[float, int]:
        """(metric value, higher = better; number of samples inside the moving volume)."""
        m, inside = self.sample(fixed_to_moving)
        n = int(inside.sum())
        if n < 16:
            return float("nan"), n
        if self.metric == "ncc":
            f = self.fvals[inside]
            f = f - f.mean()
            m = m - m.mean()
            den = np.sqrt((f * f).sum() * (m * m).sum())
            return (float((f * m).sum() / den) if den > 0 else 0.0), n
        b = self.bins
        mb = np.clip((m - self.m_lo) * self.m_scale, 0, b - 1 - 1e-9)
        mi_ = np.floor(mb).astype(np.int64)
        mw = mb - mi_
        fi, fw = self.f_i[inside], self.f_w[inside]
        base = fi * b + mi_
        h = (np.bincount(base, (1 - fw) * (1 - mw), b * b) + np.bincount(base + 1, (1 - fw) * mw, b * b)
             + np.bincount(base + b, fw * (1 - mw), b * b) + np.bincount(base + b + 1, fw * mw, b * b))
        p = h.reshape(b, b) / n
        pf = p.sum(1, keepdims=True)
        pm = p.sum(0, keepdims=True)
        nz = p > 0
        return float((p[nz] * np.log(p[nz] / (pf @ pm)[nz])).sum()), n


def _moments_shift(fixed: Volume, moving: Volume, roi: Box | None, init: np.ndarray) -> np.ndarray:
    """Translation (mm, in moving space) aligning intensity centres of mass (ROI mapped by `init`)."""
    def com(v: Volume, box):
        lo, hi = _roi_index_bounds(v, box)
        sl = tuple(slice(a, b + 1) for a, b in zip(lo, hi))
        a = np.asarray(v.array[sl], np.float64)
        a = np.clip(a - np.percentile(a, 10), 0, None)
        if a.sum() <= 0:
            return None
        g = np.indices(a.shape).reshape(3, -1).T + lo
        c = (g * a.reshape(-1, 1)).sum(0) / a.sum()
        return v.index_to_patient(c[::-1])

    cf = com(fixed, roi)
    if roi is not None:
        pts = np.array([[x, y, z, 1.0] for x in roi[0::3] for y in roi[1::3] for z in roi[2::3]])
        mp = (init @ pts.T)[:3].T
        mbox = (*mp.min(0), *mp.max(0))
    else:
        mbox = None
    cm = com(moving, mbox)
    if cf is None or cm is None:
        return np.zeros(3)
    return cm - (init[:3, :3] @ cf + init[:3, 3])


def register_rigid(fixed: Volume, moving: Volume, *, roi: Box | None = None, metric: str = "auto",
                   progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None, max_seconds: float = 60.0,
                   initial: np.ndarray | None = None, init: str = "geometry",
                   factors: tuple[int, ...] = (4, 2, 1), bins: int = 32, max_samples: int = 30_000,
                   max_evaluations: int = 600, max_rotation_deg: float = 30.0,
                   max_translation_mm: float = 60.0, trust_mm: float | None = None, seed: int = 0) -> RegistrationResult:
    """Rigidly register `moving` to `fixed`; see the module docstring.

    roi: (x0, y0, z0, x1, y1, z1) box in the fixed volume's patient coordinates (LPS mm) that
    restricts the fixed samples (e.g. one disc level); the rotation centre is its centre.
    initial: optional 4×4 starting fixed→moving transform (default identity in patient space);
    init="moments" adds a shift of the intensity centres of mass. progress(done, total) is
    called after every optimiser iteration; cancel() is polled at every metric evaluation.
    trust_mm: how far (mm, at the coarsest level; halved per finer level) the search may move from
    where the level starts. Default 40 for a whole volume — real repositioning (supine vs prone)
    moves the anatomy by tens of mm — and 16 with an ROI, which is normally refined from a
    whole-volume result and must not jump to a neighbouring, similar-looking disc level.
    """
    t_start = time.perf_counter()
    if trust_mm is None:
        trust_mm = 40.0 if roi is None else 16.0
    metric = metric.lower()
    if metric == "auto":
        metric = choose_metric(fixed, moving)
    if metric not in ("ncc", "mi"):
        raise ValueError(f"unknown metric {metric!r} (use 'ncc', 'mi' or 'auto')")
    if roi is not None:
        roi = tuple(float(v) for v in roi)  # type: ignore[assignment]
        if len(roi) != 6:
            raise ValueError("roi must be (x0, y0, z0, x1, y1, z1)")
    rng = np.random.default_rng(seed)
    m0 = np.eye(4) if initial is None else np.asarray(initial, float)
    if init == "moments":
        m0 = m0.copy()
        m0[:3, 3] += _moments_shift(fixed, moving, roi, m0)
    elif init != "geometry":
        raise ValueError(f"unknown init {init!r} (use 'geometry' or 'moments')")

    levels = [_Level(fixed, moving, roi, f, metric, bins, max(2000, max_samples // f), rng) for f in factors]
    finest = levels[-1]
    pts = finest.points_h[:3]
    centre = pts.mean(axis=1) if roi is None else 0.5 * (np.array(roi[:3]) + np.array(roi[3:]))
    radius = float(np.sqrt(((pts - centre[:, None]) ** 2).sum(0).mean())) or 1.0
    scale = np.array([radius] * 3 + [1.0] * 3)  # optimiser units: mm at the RMS radius

    def matrix_of(params: np.ndarray) -> np.ndarray:
        return _rigid(params, centre) @ m0

    initial_metric, n0 = finest.value(m0)
    if n0 < max(16, int(0.01 * finest.n_total)):
        raise RegistrationError(
            f"the series do not overlap: {n0} of {finest.n_total} samples of the fixed series "
            f"{_series_name(fixed)} fall inside the moving series {_series_name(moving)}")

    bounds = ([(-np.radians(max_rotation_deg) * radius, np.radians(max_rotation_deg) * radius)] * 3
              + [(-max_translation_mm, max_translation_mm)] * 3)
    x = np.zeros(6)
    total = 100 * len(levels)
    iterations = 0
    stopped = "converged"
    level_info: list[dict] = []
    for li, lev in enumerate(levels):
        best = {"cost": np.inf, "x": x.copy()}
        it = [0]
        _, n_start = lev.value(matrix_of(x / scale))
        min_inside = max(16, int(0.5 * n_start))  # never trade overlap for a spurious match
        span = trust_mm * lev.factor / max(factors)  # trust region around this level's start (mm)
        lev_bounds = [(max(lo, xi - span), min(hi, xi + span)) for (lo, hi), xi in zip(bounds, x)]

        def cost(xs: np.ndarray, lev=lev, best=best, min_inside=min_inside) -> float:
            if cancel is not None and cancel():
                raise RegistrationCancelled("registration cancelled")
            if time.perf_counter() - t_start > max_seconds:
                raise _Stop("max_seconds")
            v, n = lev.value(matrix_of(xs / scale))
            c = 1e3 if (n < min_inside or not np.isfinite(v)) else -v
            if c < best["cost"]:
                best["cost"], best["x"] = c, xs.copy()
            return c

        def callback(xk, li=li, it=it):
            it[0] += 1
            if progress is not None:
                progress(min(100 * li + 10 * it[0], 100 * li + 99), total)

        # Powell's tolerances: line-search step relative to the level's voxel size.
        xtol = 0.01 * lev.factor
        try:
            res = optimize.minimize(cost, x, method="Powell", bounds=lev_bounds, callback=callback,
                                    options={"xtol": xtol, "ftol": 1e-7, "maxfev": max_evaluations})
            x = best["x"] if best["cost"] <= res.fun else res.x
            nfev = int(res.nfev)
            if not res.success:
                stopped = "max_evaluations"
        except _Stop:
            x = best["x"]
            nfev = -1
            stopped = "max_seconds"
        iterations += it[0]
        level_info.append({"factor": lev.factor, "samples": lev.n_total, "iterations": it[0],
                           "evaluations": nfev, "cost": float(best["cost"])})
        if progress is not None:
            progress(100 * (li + 1), total)
        if stopped == "max_seconds":
            break

    matrix = matrix_of(x / scale)
    final_metric, _ = finest.value(matrix)
    p = x / scale
    return RegistrationResult(
        matrix=matrix, initial_metric=float(initial_metric), final_metric=float(final_metric),
        iterations=iterations, seconds=time.perf_counter() - t_start, metric=metric, roi=roi,
        settings={"metric": metric, "factors": tuple(factors), "bins": bins, "max_samples": max_samples,
                  "max_evaluations": max_evaluations, "max_seconds": max_seconds, "init": init,
                  "optimizer": "Powell", "trust_mm": trust_mm, "interpolation": "linear", "seed": seed,
                  "rotation_centre": tuple(float(c) for c in centre), "rotation_scale_mm": radius},
        parameters=tuple(float(v) for v in (*np.degrees(p[:3]), *p[3:])),
        centre=tuple(float(c) for c in centre), levels=level_info, stopped=stopped)

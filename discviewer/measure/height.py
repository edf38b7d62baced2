"""Disc and vertebral-body heights from six landmarks, and the named height indices.

**Landmarks** (`DiscLandmarks`, LPS mm): three points on the upper endplate (the inferior endplate
of the vertebra above) and three on the lower endplate (the superior endplate of the vertebra below),
each ordered anterior, middle, posterior — the order of a `disc_height` annotation's points
(`discviewer.annotations`). The anterior/posterior points sit a little inside the rounded corners
(the phantom and `detect_disc_landmarks` use 2.0 mm), the middle points at the endplate centres.
The same six-point layout serves a vertebral body (`vb_height`): its superior endplate a/m/p, then
its inferior endplate a/m/p.

**Heights** (`disc_height`), "corresponding points" method:

    DHa = |U_a − L_a|,   DHm = |U_m − L_m|,   DHp = |U_p − L_p|            (mm)
    depth_mm = (|U_a − U_p| + |L_a − L_p|) / 2                            (mm, anteroposterior)
    mean_mm  = (DHa + DHm + DHp) / 3                                        (mm)

where U/L are the upper/lower endplate points. Because the points are 3-D (patient space), the
distances are true millimetres whatever the voxel spacing or slice obliquity. `depth_mm` is the
mean of the two endplate chords between the anterior and posterior landmarks (a landmark-based
disc depth; add 2 × the inset to get corner-to-corner depth — the `dhi_farfan` index uses it as is,
so store the method with the value).

**Indices** (`INDICES`, each a named, documented formula; DOMAIN.md §2 — the literature disagrees
by millimetres between methods, so a value is stored with its method):
- `dh_mean`      DH = (DHa + DHm + DHp) / 3
- `dhi_adjacent` DHI = DH / mean(VBH of the vertebral bodies above and below), VBH = each body's
  mean of (VBHa, VBHm, VBHp) (a Hurxthal-type disc height index).
- `dhi_farfan`   (DHa + DHp) / depth (Farfan-type; depth = anteroposterior disc diameter).
- `dhi_masuda`   2·(DHa + DHm + DHp) / (VBHa+VBHm+VBHp of the body above + the same of the body
  below) — Masuda-type *(verify)*, reported as % of baseline.
- `percent_of_baseline(value, baseline)` = 100 · value / baseline (%).

Core module: numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DiscLandmarks", "DiscHeight", "VertebralBodyHeight", "HeightIndex", "INDICES", "disc_height",
           "vertebral_body_height", "dh_mean", "dhi_adjacent", "dhi_farfan", "dhi_masuda",
           "percent_of_baseline", "LANDMARK_NAMES"]

LANDMARK_NAMES = ("upper_anterior", "upper_middle", "upper_posterior",
                  "lower_anterior", "lower_middle", "lower_posterior")


@dataclass(frozen=True)
class DiscLandmarks:
    """Six endplate points (LPS mm, each a length-3 tuple), in the `disc_height` annotation order.

    `confidence` (0–1) and `method` are filled by automatic detection; hand-placed landmarks keep
    the defaults. `warnings` lists anything the detector found doubtful."""

    upper_anterior: tuple[float, float, float]
    upper_middle: tuple[float, float, float]
    upper_posterior: tuple[float, float, float]
    lower_anterior: tuple[float, float, float]
    lower_middle: tuple[float, float, float]
    lower_posterior: tuple[float, float, float]
    confidence: float = 1.0
    method: str = "manual"
    height_se_mm: tuple[float, float, float] | None = None  # standard error of DHa/DHm/DHp (detection)
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_points(cls, points, **kw) -> "DiscLandmarks":
        """From six points in annotation order (upper a/m/p, lower a/m/p)."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.shape != (6, 3):
            raise ValueError(f"six 3-D points are needed (upper a/m/p, lower a/m/p), got shape {pts.shape}")
        return cls(*(tuple(float(v) for v in p) for p in pts), **kw)

    @classmethod
    def from_dict(cls, d: dict, **kw) -> "DiscLandmarks":
        """From a {name: point} mapping with `LANDMARK_NAMES` keys (the phantom truth's layout)."""
        return cls.from_points([d[k] for k in LANDMARK_NAMES], **kw)

    def points(self) -> np.ndarray:
        """(6, 3) array in annotation order."""
        return np.array([getattr(self, k) for k in LANDMARK_NAMES], dtype=np.float64)

    def as_dict(self) -> dict[str, list[float]]:
        return {k: list(getattr(self, k)) for k in LANDMARK_NAMES}


@dataclass(frozen=True)
class DiscHeight:
    """Disc heights (mm) by the corresponding-points method (see module doc)."""

    DHa: float
    DHm: float
    DHp: float
    depth_mm: float
    mean_mm: float

    def values(self) -> dict[str, float]:
        return {"DHa": self.DHa, "DHm": self.DHm, "DHp": self.DHp, "depth_mm": self.depth_mm}

    units = {"DHa": "mm", "DHm": "mm", "DHp": "mm", "depth_mm": "mm", "mean_mm": "mm"}


@dataclass(frozen=True)
class VertebralBodyHeight:
    """Vertebral body heights (mm) between its superior and inferior endplate points."""

    VBHa: float
    VBHm: float
    VBHp: float
    depth_mm: float
    mean_mm: float

    def values(self) -> dict[str, float]:
        return {"VBHa": self.VBHa, "VBHm": self.VBHm, "VBHp": self.VBHp}

    units = {"VBHa": "mm", "VBHm": "mm", "VBHp": "mm", "depth_mm": "mm", "mean_mm": "mm"}


def _six(landmarks) -> np.ndarray:
    if isinstance(landmarks, DiscLandmarks):
        return landmarks.points()
    if isinstance(landmarks, dict):
        return np.array([landmarks[k] for k in LANDMARK_NAMES], dtype=np.float64)
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (6, 3):
        raise ValueError(f"six 3-D points are needed, got shape {pts.shape}")
    return pts


def _heights(pts: np.ndarray) -> tuple[float, float, float, float, float]:
    h = np.linalg.norm(pts[:3] - pts[3:], axis=1)
    depth = (np.linalg.norm(pts[0] - pts[2]) + np.linalg.norm(pts[3] - pts[5])) / 2.0
    return float(h[0]), float(h[1]), float(h[2]), float(depth), float(h.mean())


def disc_height(landmarks) -> DiscHeight:
    """Disc heights from six landmarks (a `DiscLandmarks`, a {name: point} dict or a (6, 3) array,
    order upper a/m/p then lower a/m/p; LPS mm).

    DHa = |U_a − L_a|, DHm = |U_m − L_m|, DHp = |U_p − L_p|; depth_mm = (|U_a − U_p| + |L_a − L_p|)/2;
    mean_mm = (DHa + DHm + DHp)/3. All mm."""
    return DiscHeight(*_heights(_six(landmarks)))


def vertebral_body_height(landmarks) -> VertebralBodyHeight:
    """Vertebral body heights from six points: superior endplate a/m/p, inferior endplate a/m/p (LPS mm).

    VBHa = |S_a − I_a|, VBHm = |S_m − I_m|, VBHp = |S_p − I_p|; depth_mm = mean of the two endplate
    chords (a→p); mean_mm = (VBHa + VBHm + VBHp)/3. All mm."""
    return VertebralBodyHeight(*_heights(_six(landmarks)))


# ---- indices ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeightIndex:
    """A named disc-height index: machine `name`, display `title`, `formula` text, `reference`, `units`."""

    name: str
    title: str
    formula: str
    reference: str
    units: str = ""


def _mean_vb(vb) -> float:
    if isinstance(vb, VertebralBodyHeight):
        return vb.mean_mm
    return float(vb)


def dh_mean(disc: DiscHeight) -> float:
    """DH = (DHa + DHm + DHp) / 3 (mm)."""
    return (disc.DHa + disc.DHm + disc.DHp) / 3.0


def dhi_adjacent(disc: DiscHeight, vb_above, vb_below) -> float:
    """DHI = DH / ((VBH_above + VBH_below) / 2), DH = (DHa + DHm + DHp)/3, VBH = a body's mean of its
    anterior, middle and posterior heights (`VertebralBodyHeight` or a number in mm). Unitless."""
    ref = (_mean_vb(vb_above) + _mean_vb(vb_below)) / 2.0
    if ref <= 0:
        raise ValueError("vertebral body heights must be positive")
    return dh_mean(disc) / ref


def dhi_farfan(disc: DiscHeight, depth_mm: float | None = None) -> float:
    """Farfan-type index (DHa + DHp) / depth, depth = the disc's anteroposterior diameter
    (default `disc.depth_mm`, the landmark chord mean). Unitless."""
    depth = disc.depth_mm if depth_mm is None else float(depth_mm)
    if depth <= 0:
        raise ValueError("disc depth must be positive")
    return (disc.DHa + disc.DHp) / depth


def dhi_masuda(disc: DiscHeight, vb_above: VertebralBodyHeight, vb_below: VertebralBodyHeight) -> float:
    """Masuda-type index *(verify)*: 2·(DHa + DHm + DHp) / (Σ VBH a/m/p above + Σ VBH a/m/p below).
    Unitless; usually reported as % of the same disc at baseline."""
    ref = (vb_above.VBHa + vb_above.VBHm + vb_above.VBHp + vb_below.VBHa + vb_below.VBHm + vb_below.VBHp)
    if ref <= 0:
        raise ValueError("vertebral body heights must be positive")
    return 2.0 * (disc.DHa + disc.DHm + disc.DHp) / ref


def percent_of_baseline(value: float, baseline_value: float) -> float:
    """100 · value / baseline_value (%). Raises on a zero baseline."""
    if baseline_value == 0:
        raise ValueError("baseline value is zero")
    return 100.0 * float(value) / float(baseline_value)


INDICES: dict[str, HeightIndex] = {i.name: i for i in (
    HeightIndex("dh_mean", "Mean disc height", "DH = (DHa + DHm + DHp) / 3",
                "DOMAIN.md §2; corresponding-points 6-landmark method", "mm"),
    HeightIndex("dhi_adjacent", "Disc height index (adjacent vertebrae)",
                "DHI = DH / ((VBH_above + VBH_below) / 2), VBH = (VBHa + VBHm + VBHp) / 3",
                "Hurxthal-type index; DOMAIN.md §2", ""),
    HeightIndex("dhi_farfan", "Farfan disc height index", "(DHa + DHp) / depth",
                "Farfan et al. (Farfan-type ratio); DOMAIN.md §2", ""),
    HeightIndex("dhi_masuda", "Masuda disc height index (verify)",
                "2·(DHa + DHm + DHp) / (VBHa+VBHm+VBHp above + VBHa+VBHm+VBHp below)",
                "Masuda et al., animal models (verify); DOMAIN.md §2", ""),
    HeightIndex("percent_of_baseline", "Percent of baseline", "100 · value / value_baseline",
                "DOMAIN.md §2", "%"),
)}

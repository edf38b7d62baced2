"""Values of an annotation: one entry point for every kind of the table in `discviewer.annotations`.

`compute_values(annotation, volume, *, reference=None, background=None) -> (values, units)`:

| kind | values (units) | formula |
|---|---|---|
| ruler | length_mm (mm) | |P1 − P0| (points in LPS mm, so true mm on any spacing or obliquity) |
| angle | angle_deg (deg) | arccos(u·v / (|u||v|)), u = P0 − P1, v = P2 − P1 (vertex P1) |
| ellipse / polygon / freehand | mean, sd, median, min, max (a.u.), area_mm2 (mm²), n_voxels | `roi_stats` |
| disc_height | DHa, DHm, DHp, depth_mm (mm) | `disc_height` (six points) |
| vb_height | VBHa, VBHm, VBHp (mm) | `vertebral_body_height` |
| iron | void_volume_mm3 (mm³), void_area_mm2 (mm², largest slice), contrast_ratio, cnr | `hypointense_region` |
| point, text, disc_label, score | — | nothing to compute (score values are the reader's) |

The ROI plane is `extra["plane"] = {"origin", "normal"}` (else the best-fit plane of the points),
the slab `extra["slab_mm"]` (default 0). For `iron`, the search outline's kind is
`extra["roi_kind"]` (default "polygon"), the rule `extra["iron_rule"]` (a dict of `IronRule` fields,
default 50 % of the reference) and `reference` the `RoiStats` of the surrounding-tissue ROI
(`background`: a background ROI's `RoiStats` for the CNR, with `extra["rayleigh_factor"]` if any).
`compute_iron` returns the whole `IronResult` (per-slice areas for `extra`, the mask).

Core module: numpy + scipy.
"""
from __future__ import annotations

import numpy as np

from discviewer.volume import Volume

from .height import disc_height, vertebral_body_height
from .iron import IronResult, IronRule, hypointense_region
from .roi import ROI_KINDS, PlaneROI, RoiStats, roi_stats

__all__ = ["compute_values", "compute_iron", "plane_roi_of", "ruler_length_mm", "angle_deg", "NO_VALUE_KINDS"]

NO_VALUE_KINDS = ("point", "text", "disc_label", "score")


def ruler_length_mm(p0, p1) -> float:
    """|P1 − P0| in mm (LPS points)."""
    return float(np.linalg.norm(np.asarray(p1, float) - np.asarray(p0, float)))


def angle_deg(p0, vertex, p2) -> float:
    """Angle at `vertex` between the rays to p0 and p2, degrees in [0, 180]."""
    u = np.asarray(p0, float) - np.asarray(vertex, float)
    v = np.asarray(p2, float) - np.asarray(vertex, float)
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        raise ValueError("an angle needs two non-zero arms")
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0))))


def plane_roi_of(annotation, kind: str | None = None) -> PlaneROI:
    """The `PlaneROI` of an ROI-kind annotation (its plane and slab from `extra`)."""
    kind = kind or annotation.kind
    extra = annotation.extra or {}
    plane = extra.get("plane") or {}
    slab = float(extra.get("slab_mm", 0.0) or 0.0)
    if plane.get("origin") is not None and plane.get("normal") is not None:
        return PlaneROI(kind, tuple(map(tuple, annotation.points)), tuple(plane["origin"]),
                        tuple(plane["normal"]), slab)
    return PlaneROI.from_points(kind, annotation.points, slab_mm=slab)


def _need(annotation, n: int, exact: bool = True) -> np.ndarray:
    pts = np.asarray(annotation.points, dtype=np.float64).reshape(-1, 3) if annotation.points else np.zeros((0, 3))
    if (exact and len(pts) != n) or (not exact and len(pts) < n):
        raise ValueError(f"a {annotation.kind} annotation needs {'' if exact else 'at least '}{n} points, "
                         f"got {len(pts)}")
    return pts


def compute_iron(annotation, volume: Volume, reference: RoiStats, *, background: RoiStats | None = None
                 ) -> IronResult:
    """The `IronResult` of an `iron` annotation (see the module doc)."""
    extra = annotation.extra or {}
    roi = plane_roi_of(annotation, extra.get("roi_kind", "polygon"))
    rule = IronRule(**(extra.get("iron_rule") or {}))
    seed = extra.get("seed")
    return hypointense_region(volume, roi, reference, rule, background_stats=background,
                              rayleigh_factor=extra.get("rayleigh_factor"), seed=seed)


def compute_values(annotation, volume: Volume | None = None, *, reference: RoiStats | None = None,
                   background: RoiStats | None = None) -> tuple[dict, dict]:
    """(values, units) of an annotation (module doc). `volume` is needed by ROI kinds and `iron`."""
    kind = annotation.kind
    if kind in NO_VALUE_KINDS:
        return {}, {}
    if kind == "ruler":
        p = _need(annotation, 2)
        return {"length_mm": ruler_length_mm(p[0], p[1])}, {"length_mm": "mm"}
    if kind == "angle":
        p = _need(annotation, 3)
        return {"angle_deg": angle_deg(p[0], p[1], p[2])}, {"angle_deg": "deg"}
    if kind == "disc_height":
        h = disc_height(_need(annotation, 6))
        return h.values(), {k: "mm" for k in h.values()}
    if kind == "vb_height":
        h = vertebral_body_height(_need(annotation, 6))
        return h.values(), {k: "mm" for k in h.values()}
    if kind in ROI_KINDS:
        if volume is None:
            raise ValueError(f"a {kind} ROI needs the volume it was drawn on")
        _need(annotation, 3, exact=(kind == "ellipse"))
        st = roi_stats(volume, plane_roi_of(annotation))
        return st.values(), RoiStats.units()
    if kind == "iron":
        if volume is None or reference is None:
            raise ValueError("an iron ROI needs the volume and the reference (surrounding tissue) RoiStats")
        res = compute_iron(annotation, volume, reference, background=background)
        vals = res.values()
        return vals, {k: IronResult.units[k] for k in vals}
    raise ValueError(f"unknown annotation kind {kind!r}")

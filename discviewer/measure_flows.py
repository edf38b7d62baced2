r"""Measurement workflows that combine annotations: iron in a disc ROI against a reference ROI, an R2*
map as a `Volume`, and carrying an annotation to every visit with its values recomputed there.

These are what the app's Measure menu runs; they take and return plain records (`Annotation`,
`Volume`), so scripts and tests use them the same way.

- **ROI roles.** An ROI's `extra["roi_role"]` says what it is for: "disc" (the measured region),
  "reference" (surrounding tissue / CSF / vertebral body the signal is compared with) or
  "background" (air, for the noise of the CNR). `find_roi` finds the ROI of a role that belongs
  with another one: same visit, series and echo, and a plane within half a slice of it (the same
  slice), the most recently modified first.
- **Iron.** `iron_annotation(disc_roi, volume, reference_roi, rule, background_roi)` segments the
  hypointense region inside the disc ROI by the stated rule (`discviewer.measure.IronRule`:
  ≤ p % of the reference mean, or ≤ reference mean − k·SD) and returns an `iron` annotation —
  void volume over slices (slice spacing from the geometry), largest slice area, contrast ratio,
  CNR — that carries the acquisition (TE, field strength, voxel size) beside its values, because
  the void grows with TE and field strength, and the rule, reference and ROI ids for provenance.
- **R2\*.** `r2star_volume(echo_volumes)` fits the echoes of a multi-echo series voxel by voxel
  (`discviewer.measure.r2star_map`, noise-floor aware) and returns R2* (s⁻¹) as a `Volume` on the
  echoes' grid, for display as a colour overlay and for ROI statistics.

Core module: no Qt, no VTK.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from discviewer.volume import SeriesInfo, Volume
from discviewer.workspace.data import Annotation

ROI_KINDS = ("ellipse", "polygon", "freehand")
ROI_ROLES = ("disc", "reference", "background")


def roi_role(a: Annotation) -> str:
    return str((a.extra or {}).get("roi_role", "disc")) if a.kind in ROI_KINDS else ""


def _plane(a: Annotation):
    p = (a.extra or {}).get("plane") or {}
    if p.get("origin") is None or p.get("normal") is None:
        return None
    return np.asarray(p["origin"], float), np.asarray(p["normal"], float)


def same_slice(a: Annotation, b: Annotation, tolerance_mm: float) -> bool:
    """Whether two annotations were drawn on the same slice (parallel planes ≤ tolerance apart)."""
    pa, pb = _plane(a), _plane(b)
    if pa is None or pb is None:
        return False
    na, nb = pa[1] / np.linalg.norm(pa[1]), pb[1] / np.linalg.norm(pb[1])
    if abs(float(na @ nb)) < np.cos(np.deg2rad(3.0)):
        return False
    return abs(float((pb[0] - pa[0]) @ na)) <= tolerance_mm


def find_roi(annotations, like: Annotation, role: str, *, tolerance_mm: float = 1.0) -> Annotation | None:
    """The ROI of `role` that belongs with `like` (module docstring), or None."""
    te = (like.extra or {}).get("echo_time_ms")
    found = [a for a in annotations if a.kind in ROI_KINDS and a.id != like.id and roi_role(a) == role
             and a.visit_id == like.visit_id and a.series_uid == like.series_uid
             and (te is None or (a.extra or {}).get("echo_time_ms") in (None, te))
             and same_slice(a, like, tolerance_mm)]
    found.sort(key=lambda a: a.modified or a.created, reverse=True)
    return found[0] if found else None


def acquisition_of(volume: Volume) -> dict:
    """TE, field strength and voxel size (column, row, slice mm) of the image a value came from."""
    info = volume.info
    sp = [float(np.linalg.norm(volume.affine[:3, i])) for i in range(3)]
    return {"echo_time_ms": info.echo_time, "field_strength_t": info.field_strength, "voxel_mm": sp}


def iron_annotation(disc_roi: Annotation, volume: Volume, reference_roi: Annotation, rule=None, *,
                    background_roi: Annotation | None = None, reader: str | None = None):
    """(`iron` Annotation, `IronResult`) for the disc ROI (module docstring). The annotation is new
    (empty id): the caller adds it to the project's `AnnotationSet`."""
    from discviewer.measure import IronRule, compute_iron, roi_stats
    from discviewer.measure.compute import plane_roi_of

    rule = rule or IronRule()
    if disc_roi.kind not in ROI_KINDS:
        raise ValueError(f"iron needs a disc ROI (ellipse, polygon or freehand), not a {disc_roi.kind}")
    ref_stats = roi_stats(volume, plane_roi_of(reference_roi))
    bg_stats = roi_stats(volume, plane_roi_of(background_roi)) if background_roi is not None else None
    acq = acquisition_of(volume)
    extra = {k: v for k, v in (disc_roi.extra or {}).items() if k != "roi_role"}
    extra.update({"roi_kind": disc_roi.kind, "iron_rule": dataclasses.asdict(rule), "rule_text": rule.text(),
                  "disc_roi_id": disc_roi.id, "reference_id": reference_roi.id,
                  "background_id": background_roi.id if background_roi is not None else "",
                  "reference_mean": float(ref_stats.mean), "reference_sd": float(ref_stats.sd), **acq})
    a = Annotation(id="", kind="iron", level=disc_roi.level, visit_id=disc_roi.visit_id,
                   series_uid=disc_roi.series_uid, points=disc_roi.points,
                   reader=disc_roi.reader if reader is None else reader, method=f"iron segmentation: {rule.text()}",
                   extra=extra)
    res = compute_iron(a, volume, ref_stats, background=bg_stats)
    vals = res.values()
    from discviewer.measure.iron import IronResult

    extra["area_mm2_per_slice"] = [[int(k), float(v)] for k, v in res.area_mm2_per_slice]
    extra["threshold"] = float(res.threshold)
    a = dataclasses.replace(a, values={k: float(v) for k, v in vals.items()},
                            units={k: IronResult.units[k] for k in vals}, extra=extra)
    return a, res


def mask_volume(mask: np.ndarray, like: Volume, label: str = "iron void") -> Volume:
    """A 0/1 float volume of a mask on `like`'s grid (for an overlay)."""
    return Volume(mask.astype(np.float32), like.affine.copy(),
                  SeriesInfo(series_uid=like.info.series_uid, series_description=label, source="derived"))


def r2star_volume(echo_volumes: list[Volume], *, mask=None, noise_sigma: float | None = None):
    """(R2* `Volume` in s⁻¹ on the first echo's grid, the `R2StarMap`) from the echoes of one series."""
    from discviewer.measure import r2star_map

    if len(echo_volumes) < 2:
        raise ValueError("an R2* map needs at least two echoes")
    tes = [v.info.echo_time for v in echo_volumes]
    if any(t is None for t in tes):
        raise ValueError("every echo needs its echo time (TE) for an R2* fit")
    first = echo_volumes[0]
    for v in echo_volumes[1:]:
        if v.array.shape != first.array.shape or not np.allclose(v.affine, first.affine, atol=1e-3):
            raise ValueError("the echoes of an R2* fit must share one grid")
    fit = r2star_map([v.array for v in echo_volumes], tes, mask=mask, noise_sigma=noise_sigma)
    r2s = np.nan_to_num(np.asarray(fit.r2s_per_s, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    info = dataclasses.replace(first.info, series_description=f"R2* map ({first.info.series_description})",
                               echo_time=None, source="derived")
    return Volume(r2s, first.affine.copy(), info), fit

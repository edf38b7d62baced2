"""Carrying an annotation (ROI, disc height, label …) from one visit to another through registration.

Each visit has a `visit_to_baseline` matrix (`discviewer.linking.TransformSet`). A point drawn in
visit A maps to visit B by  x_B = inv(M_B) · M_A · x_A  (`TransformSet.between(A, B)`). An
annotation's points and its plane (origin and normal) go through that matrix; the plane normal
through its rotation part. The copy is a new annotation (new id, same kind, level and tool
settings) tied to the target visit and series, with `extra["carried_from"]` naming the source
annotation and the transform set used, and `method` saying "carried by registration" — its
values are recomputed on the target image, never copied. Which transform set is used matters: a
disc-level set (e.g. "L4/L5") aligns that disc better than the whole-volume one, so the caller
passes the set of the annotation's level when there is one.

Core module: no Qt, no VTK.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from discviewer.annotations import new_annotation_id
from discviewer.linking import TransformSet, apply_affine
from discviewer.workspace.data import Annotation, now_iso


def carry_annotation(annotation: Annotation, transforms: TransformSet, to_visit: str, *,
                     series_uid: str = "", set_name: str = "", reader: str | None = None) -> Annotation:
    """A copy of `annotation` mapped into visit `to_visit` (see the module docstring); values cleared."""
    if not annotation.visit_id:
        raise ValueError(f"annotation {annotation.id} has no visit: it cannot be carried")
    m = transforms.between(annotation.visit_id, to_visit)
    points = tuple(tuple(float(c) for c in p) for p in apply_affine(m, np.asarray(annotation.points, float)
                                                                   .reshape(-1, 3))) if annotation.points else ()
    extra = dict(annotation.extra)
    plane = extra.get("plane")
    if isinstance(plane, dict) and "origin" in plane and "normal" in plane:
        origin = apply_affine(m, np.asarray(plane["origin"], float))
        normal = m[:3, :3] @ np.asarray(plane["normal"], float)
        normal = normal / (np.linalg.norm(normal) or 1.0)
        extra["plane"] = {"origin": [float(v) for v in origin], "normal": [float(v) for v in normal]}
    extra["carried_from"] = {"annotation": annotation.id, "visit": annotation.visit_id,
                             "transform_set": set_name, "method": transforms.provenance(to_visit).method}
    stamp = now_iso()
    return dataclasses.replace(annotation, id=new_annotation_id(), visit_id=to_visit,
                               series_uid=series_uid or annotation.series_uid, points=points, values={},
                               units={}, reader=annotation.reader if reader is None else reader,
                               method=f"{annotation.method or annotation.kind}, carried by registration",
                               created=stamp, modified=stamp, extra=extra)

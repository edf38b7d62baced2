"""Disc levels: their names and order, labelling discs along the spine, and carrying labels across visits.

**Names.** `DISC_LEVELS` lists the intervertebral discs from cranial to caudal, "T11/T12" … "L5/S1"
(the lumbar study reads T12/L1 … L5/S1; T11/T12 is there for a high field of view). `level_sort_key`
orders any level names in spinal order (unknown names after the known ones, alphabetically), so
tables and menus list levels the way the spine runs.

**Labelling by order.** A reader clicks the disc centres on a sagittal slice and names one of them
(usually L5/S1, found from the sacrum). `label_by_order(points, anchor_index, anchor_label)` names the
others by their order along the spine's long axis: the discs above the anchor get the levels above,
those below the levels below. The order is the projection on `axis` (default superior, +z in LPS);
in a lumbar sagittal image the discs are well separated along z even with lordosis. Running off
the list of names (e.g. three discs above T12/L1 when the list starts at T11/T12) is an error, as are
two discs at the same height.

**Across visits.** Disc labels are drawn once, in the baseline visit's patient space; `propagate`
maps them into another visit's space through that visit's `visit_to_baseline` transform (inverted)
— with a `TransformRegistry`, each level through its own disc-level transform set when it has one,
else the whole-volume set.

**Annotations.** A disc label is stored as a `disc_label` annotation (one point, the disc centre;
`level` is the label; one per level and visit — see `discviewer.annotations`). `disc_label_records`
builds the records for a visit: new records (empty id → `AnnotationSet.add`) for levels without a
label yet and edited copies (same id → `AnnotationSet.update`) for the others; `store_disc_labels`
applies them, so every change goes through the `AnnotationSet` and is undoable. `labels_of` reads a
visit's labels back, and `level_at` gives a new measurement the level of the nearest labelled disc.

Core module: stdlib and numpy only.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from discviewer.workspace.data import Annotation

#: disc levels from cranial to caudal
DISC_LEVELS: tuple[str, ...] = ("T11/T12", "T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")
#: the lumbar levels the study reads
LUMBAR_LEVELS: tuple[str, ...] = DISC_LEVELS[1:]
#: superior in DICOM patient space (LPS: x → left, y → posterior, z → superior)
SUPERIOR = (0.0, 0.0, 1.0)
#: the `kind` of a disc-label annotation
DISC_LABEL_KIND = "disc_label"
#: discs closer than this along the axis are "at the same height" (mm)
MIN_SEPARATION_MM = 1.0

Point = tuple[float, float, float]


def level_index(level: str, levels: Sequence[str] = DISC_LEVELS) -> int:
    """Position of `level` in the cranio-caudal list; ValueError if it is not a known level."""
    try:
        return list(levels).index(level)
    except ValueError:
        raise ValueError(f"unknown disc level {level!r}; known: {', '.join(levels)}") from None


def level_sort_key(level: str) -> tuple:
    """Sort key: known levels cranial → caudal, then other names alphabetically, "" last."""
    if level in DISC_LEVELS:
        return (0, DISC_LEVELS.index(level), "")
    return (1 if level else 2, 0, level)


def sort_levels(levels: Iterable[str]) -> list[str]:
    """Distinct level names in spinal order (see `level_sort_key`)."""
    return sorted(set(levels), key=level_sort_key)


def _point(p) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"a point must be 3 finite coordinates, got {p!r}")
    return a


def _as_tuple(p) -> Point:
    a = _point(p)
    return (float(a[0]), float(a[1]), float(a[2]))


def label_by_order(points: Sequence, anchor_index: int, anchor_label: str, *,
                   axis: Sequence[float] = SUPERIOR, levels: Sequence[str] = DISC_LEVELS,
                   min_separation_mm: float = MIN_SEPARATION_MM) -> list[str]:
    """Level names of the disc centres `points` (LPS mm), in the order given.

    `points[anchor_index]` is `anchor_label`; the others are named by their rank along `axis`
    (default superior): the k-th disc above the anchor gets the k-th level above it in `levels`
    (cranial → caudal), the k-th below the k-th level below. ValueError when the names run out,
    when the anchor label or index is unknown, or when two discs lie within `min_separation_mm`
    of each other along the axis (their order would be a guess).
    """
    n = len(points)
    if n == 0:
        return []
    if not -n <= anchor_index < n:
        raise ValueError(f"anchor index {anchor_index} out of range for {n} point(s)")
    anchor_index %= n
    levels = list(levels)
    a_pos = level_index(anchor_label, levels)
    ax = _point(axis)
    norm = float(np.linalg.norm(ax))
    if norm == 0:
        raise ValueError("the spine axis must not be zero")
    ax = ax / norm
    heights = np.array([_point(p) @ ax for p in points])
    order = sorted(range(n), key=lambda i: -heights[i])  # cranial first
    for a, b in zip(order, order[1:]):
        if heights[a] - heights[b] < min_separation_mm:
            raise ValueError(f"discs {a} and {b} lie within {min_separation_mm:g} mm of each other along the "
                             "spine axis: their order is ambiguous")
    rank_of_anchor = order.index(anchor_index)
    labels = [""] * n
    for rank, i in enumerate(order):
        pos = a_pos + (rank - rank_of_anchor)
        if pos < 0:
            raise ValueError(f"{rank_of_anchor - rank} disc(s) above {anchor_label} but only {a_pos} "
                             f"level(s) above it in the list ({levels[0]} is the highest)")
        if pos >= len(levels):
            raise ValueError(f"{rank - rank_of_anchor} disc(s) below {anchor_label} but only "
                             f"{len(levels) - 1 - a_pos} level(s) below it in the list "
                             f"({levels[-1]} is the lowest)")
        labels[i] = levels[pos]
    return labels


def _set_for(transforms, level: str):
    """The TransformSet to use for `level`: a registry's disc-level set if it has one, else its
    whole-volume set; a plain TransformSet as is."""
    if hasattr(transforms, "whole"):
        return transforms[level] if level in transforms else transforms.whole
    return transforms


def propagate(labels: Mapping[str, Sequence[float]], transforms, visit_id: str) -> dict[str, Point]:
    """Baseline-space disc centres → the same discs in `visit_id`'s patient space.

    `transforms` is a `TransformSet` (one visit_to_baseline per visit) or a `TransformRegistry`
    (each level through its own set when registered per level, else the whole-volume set).
    A visit without a transform maps by identity (as everywhere in linking)."""
    out: dict[str, Point] = {}
    for level, p in labels.items():
        ts = _set_for(transforms, level)
        out[level] = _as_tuple(ts.to_visit(_point(p), visit_id))
    return out


def to_baseline(labels: Mapping[str, Sequence[float]], transforms, visit_id: str) -> dict[str, Point]:
    """The inverse of `propagate`: a visit's disc centres → baseline space."""
    out: dict[str, Point] = {}
    for level, p in labels.items():
        ts = _set_for(transforms, level)
        out[level] = _as_tuple(ts.to_baseline(_point(p), visit_id))
    return out


def labels_of(annotations: Iterable[Annotation], visit_id: str) -> dict[str, Point]:
    """level → disc centre of the visit's `disc_label` annotations (spinal order; the newest record
    wins if a level was labelled twice)."""
    found: dict[str, tuple[str, Point]] = {}
    for a in annotations:
        if a.kind != DISC_LABEL_KIND or a.visit_id != visit_id or not a.level or not a.points:
            continue
        stamp = a.modified or a.created
        if a.level not in found or stamp >= found[a.level][0]:
            found[a.level] = (stamp, _as_tuple(a.points[0]))
    return {lvl: found[lvl][1] for lvl in sort_levels(found)}


def disc_label_annotation(level: str, point: Sequence[float], visit_id: str, *, series_uid: str = "",
                          reader: str = "", method: str = "manual", extra: dict | None = None) -> Annotation:
    """A new `disc_label` record (empty id: `AnnotationSet.add` assigns one)."""
    return Annotation(id="", kind=DISC_LABEL_KIND, level=level, visit_id=visit_id, series_uid=series_uid,
                      points=(_as_tuple(point),), reader=reader, method=method, extra=dict(extra or {}))


def disc_label_records(points: Mapping[str, Sequence[float]], visit_id: str, existing: Iterable[Annotation] = (),
                       *, series_uid: str = "", reader: str = "", method: str = "manual") -> list[Annotation]:
    """Records that make the visit's disc labels equal `points` (level → disc centre).

    A level that already has a `disc_label` annotation in this visit gets an edited copy (same id,
    new point, series and method — pass it to `AnnotationSet.update`); the others a new record with
    an empty id (pass it to `AnnotationSet.add`). Levels not in `points` are left alone. Records
    come in spinal order."""
    current: dict[str, Annotation] = {}
    for a in existing:
        if a.kind == DISC_LABEL_KIND and a.visit_id == visit_id and a.level:
            if a.level not in current or (a.modified or a.created) >= (current[a.level].modified
                                                                       or current[a.level].created):
                current[a.level] = a
    out = []
    for level in sort_levels(points):
        p = points[level]
        if level in current:
            old = current[level]
            out.append(dataclasses.replace(old, points=(_as_tuple(p),), series_uid=series_uid or old.series_uid,
                                           method=method, reader=reader or old.reader))
        else:
            out.append(disc_label_annotation(level, p, visit_id, series_uid=series_uid, reader=reader, method=method))
    return out


def store_disc_labels(annotations, records: Iterable[Annotation]) -> list[Annotation]:
    """Add (empty or unknown id) or update (known id) each record in an `AnnotationSet`; returns the
    stored records. Wrap the call in `Workspace.history.group("Label discs")` for one undo step."""
    stored = []
    for r in records:
        if r.id and r.id in annotations:
            annotations.update(r)
            stored.append(annotations.get(r.id))
        else:
            stored.append(annotations.add(r))
    return stored


def level_at(point: Sequence[float], labels: Mapping[str, Sequence[float]], *,
             max_distance_mm: float | None = None) -> str:
    """The level of the labelled disc centre nearest to `point` ("" when there are no labels or the
    nearest is farther than `max_distance_mm`). Ties go to the cranial level."""
    if not labels:
        return ""
    p = _point(point)
    best = None
    for level in sort_levels(labels):
        d = float(np.linalg.norm(_point(labels[level]) - p))
        if best is None or d < best[0]:
            best = (d, level)
    if max_distance_mm is not None and best[0] > max_distance_mm:
        return ""
    return best[1]


__all__ = ["DISC_LEVELS", "LUMBAR_LEVELS", "SUPERIOR", "DISC_LABEL_KIND", "level_index", "level_sort_key",
           "sort_levels", "label_by_order", "propagate", "to_baseline", "labels_of", "disc_label_annotation",
           "disc_label_records", "store_disc_labels", "level_at"]

"""The annotations and measurements of a project: an observable set of `Annotation` records.

An `Annotation` (defined with the other stored records in `discviewer.workspace.data`) is
immutable: editing one replaces it by a new record with the same id (`dataclasses.replace`).
`AnnotationSet.changed` emits `Change(self, id, old, new)` — `old` None for an addition, `new`
None for a removal — only when something really changed, so the workspace history can undo any
edit by putting `old` back. Records are kept in insertion order.

**Kinds (the contract between tools, measurements, storage and export).** Points are LPS mm.
Tools drawn on a slice store that slice's plane in `extra["plane"] = {"origin": [x, y, z],
"normal": [x, y, z]}` and the view's plane name in `extra["plane_name"]` ("sag"/"cor"/"ax");
`extra["slab_mm"]` (default 0) extends an ROI to the slices within ±slab of its plane. The image
an annotation was measured on is named by `visit_id`, `series_uid` and `extra["echo_time_ms"]`
(for multi-echo series) and `extra["series_role"]`.

| kind | points | values (units) |
|---|---|---|
| point | 1 | — |
| text | 1 (anchor) | — (`text`) |
| ruler | 2 | length_mm (mm) |
| angle | 3 (vertex in the middle) | angle_deg (deg) |
| ellipse | 3: centre, end of axis a, end of axis b (in plane) | ROI statistics (below) |
| polygon / freehand | ≥ 3, closed | ROI statistics |
| disc_height | 6: upper anterior, middle, posterior, lower anterior, middle, posterior | DHa, DHm, DHp, depth_mm (mm) |
| vb_height | 6: superior endplate a/m/p, inferior endplate a/m/p of `extra["vertebra"]` ("L4") | VBHa, VBHm, VBHp (mm) |
| disc_label | 1 (disc centre) | — (`level` is the label; one per level and visit) |
| iron | the ROI's points (kind of `extra["roi_kind"]`) | void_volume_mm3, void_area_mm2 (per-slice list in `extra`), contrast_ratio, cnr |
| score | none | pfirrmann (1–5), modic_upper / modic_lower (0–3), hiz (0/1), iron_score (0–3), iron_confidence (1–4); `text` = comment |

ROI statistics: mean, sd, median, min, max (stored units), area_mm2 (mm²), n_voxels.

A disc_height proposed by the detector (`discviewer.measure.detect_disc_landmarks`) and accepted
(method "semi-automatic 6-point (accepted)" / "(adjusted)") keeps what the detector said:
`extra["detection_confidence"]` (0–1; below 0.5 the tools flag the proposal as low confidence),
`extra["detection_method"]` and `extra["detection_warnings"]` (a list of strings).

**Only finite numbers are stored.** A value that is not defined (NaN or ±inf: the contrast ratio of
an empty iron void, the SD of a one-voxel ROI) is left out of `values` (and its unit dropped) when a
record enters the set, and non-finite numbers in `extra` become None, so every record can be saved
(JSON has no NaN) and a missing value reads as "not measured", never as a number.
`discviewer.measure.compute_values(annotation, volume)` computes `values`/`units` for a kind.

Core module: no Qt, no VTK.
"""
from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Iterable, Iterator

from discviewer.events import Change, Signal
from discviewer.workspace.data import Annotation, now_iso

__all__ = ["Annotation", "AnnotationSet", "new_annotation_id"]


def new_annotation_id() -> str:
    return uuid.uuid4().hex


def _plain(value):
    """`value` as plain JSON data: numpy scalars/arrays → Python numbers/lists, non-finite → None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def finite_record(a: Annotation) -> Annotation:
    """`a` with undefined values dropped and `extra` made plain JSON (see the module doc)."""
    values, units = {}, dict(a.units or {})
    for k, v in (a.values or {}).items():
        if isinstance(v, (bool, int, str)) or v is None:
            values[k] = v
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            values[k] = _plain(v)
            continue
        if math.isfinite(f):
            values[k] = f
        else:
            units.pop(k, None)
    extra = _plain(dict(a.extra or {}))
    if values == a.values and units == (a.units or {}) and extra == (a.extra or {}):
        return a
    return dataclasses.replace(a, values=values, units=units, extra=extra)


class AnnotationSet:
    """id → `Annotation`, observable."""

    def __init__(self, annotations: Iterable[Annotation] = ()) -> None:
        self._items: dict[str, Annotation] = {}
        for a in annotations:
            a = finite_record(a)
            if a.id in self._items:
                raise ValueError(f"duplicate annotation id {a.id!r}")
            self._items[a.id] = a
        self.changed = Signal()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Annotation]:
        return iter(list(self._items.values()))

    def __contains__(self, annotation_id: str) -> bool:
        return annotation_id in self._items

    def get(self, annotation_id: str) -> Annotation:
        try:
            return self._items[annotation_id]
        except KeyError:
            raise KeyError(f"no annotation {annotation_id!r}") from None

    def select(self, *, level: str | None = None, visit_id: str | None = None,
               kind: str | None = None) -> list[Annotation]:
        return [a for a in self._items.values()
                if (level is None or a.level == level) and (visit_id is None or a.visit_id == visit_id)
                and (kind is None or a.kind == kind)]

    def add(self, annotation: Annotation) -> Annotation:
        """Add a new record (a missing id or time stamp is filled in); returns the stored record."""
        stamp = now_iso()
        a = dataclasses.replace(finite_record(annotation), id=annotation.id or new_annotation_id(),
                                created=annotation.created or stamp, modified=annotation.modified or stamp)
        if a.id in self._items:
            raise ValueError(f"annotation {a.id!r} exists already; use update()")
        self._items[a.id] = a
        self.changed.emit(Change(self, a.id, None, a))
        return a

    def update(self, annotation: Annotation, *, touch: bool = True) -> bool:
        """Replace the record with the same id; True (and emitted) if it changed."""
        old = self.get(annotation.id)
        annotation = finite_record(annotation)
        new = dataclasses.replace(annotation, modified=now_iso()) if touch else annotation
        if dataclasses.replace(new, modified=old.modified) == old:
            return False
        self._items[new.id] = new
        self.changed.emit(Change(self, new.id, old, new))
        return True

    def remove(self, annotation_id: str) -> Annotation | None:
        old = self._items.pop(annotation_id, None)
        if old is not None:
            self.changed.emit(Change(self, annotation_id, old, None))
        return old

    def put(self, annotation_id: str, record: Annotation | None) -> None:
        """Set the stored record of an id exactly (None removes it) — how undo/redo restores a state."""
        old = self._items.get(annotation_id)
        if old == record:
            return
        if record is None:
            del self._items[annotation_id]
        else:
            self._items[annotation_id] = record
        self.changed.emit(Change(self, annotation_id, old, record))

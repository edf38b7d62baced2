"""Linked navigation across visits: shared cursor, slice and window/level — pure numpy.

**Cursor.** The shared cursor lives in the *baseline* visit's patient space (LPS, mm). Each visit
has a 4×4 `visit_to_baseline` matrix (x_baseline = M · x_visit, homogeneous); `TransformSet`
holds them (identity until registration or the user supplies one, with provenance) and maps
the cursor into each viewport's own visit space (`to_visit`) and back (`to_baseline`). Series of
one visit share its frame of reference, so one matrix per visit is enough.

**Slice.** `patient_to_index` turns a point into fractional (column, row, slice) indices of a
volume; `plane_axis` finds which index axis runs along a display plane's normal ("sag" → L/R,
"cor" → A/P, "ax" → S/I); `nearest_slice` rounds along it. `map_cursor` does the whole chain
for one viewport.

**Window/level.** Raw MR intensities change between visits with coil, receiver gain and scaling,
so a window is shared in *relative* units. `IntensityNormalizer` takes two robust reference levels
of each volume, by default the 1st and 99th percentiles (`lo`, `hi`; of a mask/ROI when given),
and maps
    rel_center = (center − lo) / (hi − lo),   rel_width = width / (hi − lo).
A gain g and offset b (I' = g·I + b) scale and shift both percentiles the same way, so the relative
window is unchanged and `from_relative` gives each volume the window that shows the same tissue
contrast. Percentiles, not min/max, so a few hot pixels or a dark void do not move the window; 1/99
rather than 0.5/99.5 since the spine field of view is largely dark background and the bright end
(fat, CSF) needs a stable top. Large volumes are subsampled deterministically (≤ `max_samples`
voxels) for speed. A constant volume gets a unit scale (no division by zero).
Core module: numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np

from discviewer.events import Change, Signal

PLANE_NORMALS = {"sag": np.array([1.0, 0.0, 0.0]), "cor": np.array([0.0, 1.0, 0.0]),
                 "ax": np.array([0.0, 0.0, 1.0])}


# -------------------------------------------------------------------------------------------------
# transforms


@dataclass(frozen=True)
class Provenance:
    """Where a transform came from: method ("identity", "manual", "registration", "phantom truth", …)."""

    method: str = "identity"
    details: dict = field(default_factory=dict)  # metric, ROI, moving/fixed series, timestamp, …


def _as_matrix(matrix) -> np.ndarray:
    m = np.array(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"a transform must be 4×4, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("a transform must be finite")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise ValueError(f"the last row of a transform must be [0, 0, 0, 1], got {m[3].tolist()}")
    if abs(np.linalg.det(m[:3, :3])) < 1e-9:
        raise ValueError("the transform is singular (not invertible)")
    return m


def apply_affine(matrix: np.ndarray, points) -> np.ndarray:
    """(…, 3) points through a 4×4 matrix."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1] != 3:
        raise ValueError(f"points must have 3 coordinates in the last axis, got shape {p.shape}")
    return p @ matrix[:3, :3].T + matrix[:3, 3]


@dataclass(frozen=True)
class TransformChange(Change):
    """A `Change` of one visit's matrix that also carries the provenance before and after, so an
    undo restores both."""

    old_provenance: Provenance = Provenance("identity")
    new_provenance: Provenance = Provenance("identity")


class TransformSet:
    """visit id → 4×4 `visit_to_baseline` (identity by default), with provenance.

    `changed` emits `TransformChange(self, visit_id, old_matrix, new_matrix, old_prov, new_prov)`
    when a visit's matrix changes.
    """

    def __init__(self, baseline_id: str | None = None) -> None:
        self.baseline_id = baseline_id
        self._m: dict[str, np.ndarray] = {}
        self._inv: dict[str, np.ndarray] = {}
        self._prov: dict[str, Provenance] = {}
        self.changed = Signal()

    def set(self, visit_id: str, matrix, provenance: Provenance | str | dict | None = None) -> bool:
        """Set a visit's visit_to_baseline; returns True (and emits) if the matrix changed."""
        if visit_id == self.baseline_id and not np.allclose(_as_matrix(matrix), np.eye(4), atol=1e-12):
            raise ValueError(f"the baseline visit {visit_id!r} maps to itself: its transform must be the identity")
        m = _as_matrix(matrix)
        if isinstance(provenance, str):
            provenance = Provenance(provenance)
        elif isinstance(provenance, dict):
            provenance = Provenance(str(provenance.get("method", "manual")),
                                    {k: v for k, v in provenance.items() if k != "method"})
        elif provenance is None:
            provenance = Provenance("manual")
        old = self.get(visit_id)
        old_prov = self.provenance(visit_id)
        self._prov[visit_id] = provenance
        if np.array_equal(old, m):
            return False
        self._m[visit_id] = m
        self._inv[visit_id] = np.linalg.inv(m)
        self.changed.emit(TransformChange(self, visit_id, old, m.copy(), old_prov, provenance))
        return True

    def visit_ids(self) -> list[str]:
        """Visits with a transform set explicitly (the others map by identity)."""
        return list(self._m)

    def copy(self) -> "TransformSet":
        """An independent set with the same transforms and provenance (e.g. to start a disc level's
        own set from the whole-volume registration)."""
        other = TransformSet(self.baseline_id)
        for vid in self._m:
            other.set(vid, self._m[vid], self.provenance(vid))
        return other

    def reset(self, visit_id: str) -> bool:
        """Back to identity (provenance "identity")."""
        old = self.get(visit_id)
        old_prov = self.provenance(visit_id)
        self._m.pop(visit_id, None)
        self._inv.pop(visit_id, None)
        self._prov.pop(visit_id, None)
        if np.array_equal(old, np.eye(4)):
            return False
        self.changed.emit(TransformChange(self, visit_id, old, np.eye(4), old_prov, Provenance("identity")))
        return True

    def get(self, visit_id: str) -> np.ndarray:
        """A copy of the visit's visit_to_baseline (identity when none was set)."""
        return self._m[visit_id].copy() if visit_id in self._m else np.eye(4)

    def inverse(self, visit_id: str) -> np.ndarray:
        return self._inv[visit_id].copy() if visit_id in self._inv else np.eye(4)

    def provenance(self, visit_id: str) -> Provenance:
        return self._prov.get(visit_id, Provenance("identity"))

    def is_set(self, visit_id: str) -> bool:
        return visit_id in self._m

    def to_baseline(self, point_visit, visit_id: str) -> np.ndarray:
        """Point(s) (…, 3) in the visit's patient space → baseline patient space."""
        return apply_affine(self._m[visit_id], point_visit) if visit_id in self._m else \
            np.array(point_visit, dtype=np.float64)

    def to_visit(self, point_baseline, visit_id: str) -> np.ndarray:
        """Point(s) (…, 3) in baseline patient space → the visit's patient space."""
        return apply_affine(self._inv[visit_id], point_baseline) if visit_id in self._inv else \
            np.array(point_baseline, dtype=np.float64)

    def between(self, from_visit: str, to_visit: str) -> np.ndarray:
        """4×4 mapping points of `from_visit`'s space into `to_visit`'s space."""
        return self.inverse(to_visit) @ self.get(from_visit)


# -------------------------------------------------------------------------------------------------
# slices


WHOLE_VOLUME = "whole volume"  # the name of the visit-level transform set


class TransformRegistry:
    """The named transform sets of a project: "whole volume" (always present) and one per disc
    level registered separately (e.g. "L4/L5"), each a `TransformSet`.

    `changed` relays every `TransformChange` of its sets and emits `Change(self, "level", None,
    (name, set))` when a set is added and `Change(self, "level", (name, set), None)` when one is
    removed (the set object travels with the change, so an undo/redo puts back the same set).
    """

    def __init__(self, baseline_id: str | None = None) -> None:
        self.changed = Signal()
        self._sets: dict[str, TransformSet] = {}
        self._unsubs: dict[str, object] = {}
        self._attach(WHOLE_VOLUME, TransformSet(baseline_id))

    def _attach(self, name: str, ts: TransformSet) -> None:
        self._sets[name] = ts
        self._unsubs[name] = ts.changed.subscribe(self.changed.emit)

    @property
    def whole(self) -> TransformSet:
        return self._sets[WHOLE_VOLUME]

    def names(self) -> list[str]:
        return list(self._sets)

    def __contains__(self, name: str) -> bool:
        return name in self._sets

    def __getitem__(self, name: str) -> TransformSet:
        return self._sets[name]

    def __iter__(self):
        return iter(self._sets)

    def items(self):
        return self._sets.items()

    def add(self, name: str, ts: TransformSet | None = None) -> TransformSet:
        """The set `name`; created (as a copy of the whole-volume set, so visits not yet registered
        at this level fall back to their whole-volume transform) when missing."""
        if name in self._sets:
            return self._sets[name]
        self._attach(name, ts if ts is not None else self.whole.copy())
        self.changed.emit(Change(self, "level", None, (name, self._sets[name])))
        return self._sets[name]

    def remove(self, name: str) -> TransformSet | None:
        if name == WHOLE_VOLUME:
            raise ValueError("the whole-volume transform set cannot be removed")
        if name not in self._sets:
            return None
        self._unsubs.pop(name)()
        ts = self._sets.pop(name)
        self.changed.emit(Change(self, "level", (name, ts), None))
        return ts


def _affine_of(volume) -> np.ndarray:
    a = getattr(volume, "affine", volume)
    if a is None:
        raise ValueError("the volume has no geometry (affine is None)")
    return np.asarray(a, dtype=np.float64)


def _shape_of(volume) -> tuple[int, int, int]:
    """(slices, rows, columns) of a Volume, a VolumeCandidate or an array."""
    if hasattr(volume, "shape") and not isinstance(volume, np.ndarray) and len(volume.shape) == 3:
        return tuple(int(v) for v in volume.shape)  # type: ignore[return-value]
    if hasattr(volume, "slice_count"):
        return int(volume.slice_count), int(volume.rows), int(volume.columns)
    arr = getattr(volume, "array", volume)
    return tuple(int(v) for v in np.shape(arr))  # type: ignore[return-value]


def patient_to_index(affine, point_lps) -> np.ndarray:
    """(…, 3) LPS mm → (…, 3) fractional (column, row, slice) indices."""
    a = _affine_of(affine)
    return apply_affine(np.linalg.inv(a), point_lps)


def index_to_patient(affine, ijk) -> np.ndarray:
    """(…, 3) (column, row, slice) indices → (…, 3) LPS mm."""
    return apply_affine(_affine_of(affine), ijk)


def plane_axis(volume, plane: str) -> int:
    """The index axis (0 column, 1 row, 2 slice) most aligned with the normal of display `plane`."""
    if plane not in PLANE_NORMALS:
        raise ValueError(f"plane must be one of {', '.join(PLANE_NORMALS)}, got {plane!r}")
    a = _affine_of(volume)[:3, :3]
    dirs = a / np.linalg.norm(a, axis=0)
    return int(np.argmax(np.abs(PLANE_NORMALS[plane] @ dirs)))


def axis_length(volume, axis: int) -> int:
    s, r, c = _shape_of(volume)
    return (c, r, s)[axis]


def nearest_slice(volume, point_lps, plane: str, *, clip: bool = True) -> int:
    """Index, along `plane_axis(volume, plane)`, of the slice nearest to the point.

    With `clip` the index is clamped into the volume; without it, it may lie outside [0, n)."""
    axis = plane_axis(volume, plane)
    idx = int(np.floor(patient_to_index(volume, point_lps)[..., axis] + 0.5))
    if clip:
        idx = min(max(idx, 0), axis_length(volume, axis) - 1)
    return idx


def contains(volume, point_lps, *, margin: float = 0.5) -> bool:
    """True if the point lies inside the voxel grid (± `margin` voxels, default: the voxels' own extent)."""
    ijk = patient_to_index(volume, point_lps)
    s, r, c = _shape_of(volume)
    n = np.array([c, r, s], dtype=np.float64)
    return bool(np.all(ijk >= -margin) and np.all(ijk <= n - 1 + margin))


@dataclass(frozen=True)
class CursorTarget:
    """Where the shared cursor falls in one viewport."""

    point_visit: np.ndarray  # LPS mm in the viewport's visit space
    index: np.ndarray  # fractional (column, row, slice)
    axis: int  # index axis along the display plane's normal
    slice_index: int  # nearest slice along `axis`, clamped into the volume
    inside: bool  # the point lies inside the volume


def map_cursor(point_baseline, transforms: TransformSet, visit_id: str, volume, plane: str) -> CursorTarget:
    """Baseline-space cursor → the viewport's visit space, indices and slice to show."""
    p = transforms.to_visit(point_baseline, visit_id)
    ijk = patient_to_index(volume, p)
    axis = plane_axis(volume, plane)
    n = axis_length(volume, axis)
    sl = min(max(int(np.floor(ijk[axis] + 0.5)), 0), n - 1)
    return CursorTarget(point_visit=p, index=ijk, axis=axis, slice_index=sl, inside=contains(volume, p))


# -------------------------------------------------------------------------------------------------
# window / level


class IntensityNormalizer:
    """Relative window/level units for one volume (see the module docstring)."""

    def __init__(self, lo: float, hi: float, percentiles: tuple[float, float] = (1.0, 99.0)) -> None:
        self.lo = float(lo)
        self.hi = float(hi)
        self.percentiles = percentiles
        span = self.hi - self.lo
        self.scale = span if np.isfinite(span) and span > 0 else 1.0

    @classmethod
    def from_array(cls, array, mask=None, *, percentiles: tuple[float, float] = (1.0, 99.0),
                   max_samples: int = 1_000_000) -> "IntensityNormalizer":
        """Reference levels from the array's percentiles, inside `mask` (same shape, bool) when given."""
        a = np.asarray(getattr(array, "array", array))
        if mask is not None:
            m = np.asarray(mask, dtype=bool)
            if m.shape != a.shape:
                raise ValueError(f"mask shape {m.shape} differs from the volume's {a.shape}")
            vals = a[m]
            if vals.size == 0:
                raise ValueError("the mask selects no voxel")
        else:
            vals = a.reshape(-1)
        if vals.size > max_samples:
            step = int(np.ceil(vals.size / max_samples))
            vals = vals[::step]
        vals = vals.astype(np.float64, copy=False)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            return cls(0.0, 1.0, percentiles)
        lo, hi = np.percentile(vals, percentiles)
        return cls(float(lo), float(hi), percentiles)

    def to_relative(self, center: float, width: float) -> tuple[float, float]:
        return (float(center) - self.lo) / self.scale, float(width) / self.scale

    def from_relative(self, rel_center: float, rel_width: float) -> tuple[float, float]:
        return self.lo + float(rel_center) * self.scale, float(rel_width) * self.scale

    def transfer(self, center: float, width: float, other: "IntensityNormalizer") -> tuple[float, float]:
        """This volume's window → the window with the same relative meaning in `other`."""
        return other.from_relative(*self.to_relative(center, width))

    def __repr__(self) -> str:
        return f"IntensityNormalizer(lo={self.lo:g}, hi={self.hi:g}, percentiles={self.percentiles})"

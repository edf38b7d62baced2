"""The plain records a workspace file holds — values only, no behaviour, no HDF5.

`WorkspaceData` is what `discviewer.workspace.store` writes to and reads from a `.dvw` file and what
`discviewer.workspace.project.Workspace` produces (`to_data`) and restores (`from_data`). Keeping
the stored shape here, apart from both, lets the file format and the live model change independently
and makes round-trip tests simple: `load(save(data)) == data`.

Conventions
- Times are ISO 8601 strings in UTC with a "Z" suffix (`now_iso()`); never local time.
- Points are patient coordinates (DICOM LPS, mm). Matrices are 4×4 float64 (visit → baseline).
- Every free-form dict (`details`, `values`, `extra`, reading documents, `settings`) must be JSON
  serialisable (str / int / float / bool / None / list / dict); `check_json` says which key is not.
- Only what the user decided is stored for labels and roles: a visit label or series role equal to
  the app's default/guess is not stored, so better guesses of a later version still apply.

Core module: stdlib and numpy only.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field

import numpy as np

#: the schema this app writes; see `discviewer.workspace.migrate` for the history
SCHEMA_VERSION = 2

#: file extension of a workspace
EXTENSION = ".dvw"


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds and "Z"."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_json(value, where: str = "value") -> None:
    """Raise ValueError naming the offending key if `value` is not plain JSON data (finite numbers only)."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number (JSON has no NaN/inf)")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_json(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: key {k!r} is not a string")
            check_json(v, f"{where}.{k}")
        return
    raise ValueError(f"{where}: {type(value).__name__} {value!r} is not JSON data")


def json_text(value) -> str:
    """Canonical JSON text (sorted keys, no NaN) of plain data."""
    check_json(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class SourceFile:
    """One indexed source file. The file itself is never modified; `sha256` is its content hash
    at indexing time, `size`/`mtime_ns` a quick first check."""

    path: str  # absolute
    size: int
    mtime_ns: int
    sha256: str  # hex; "" if not hashed
    sop_uid: str = ""  # first SOPInstanceUID in the file ("" for NIfTI)
    series_uid: str = ""


@dataclass(frozen=True)
class SeriesRecord:
    """Descriptive snapshot of one series entry, so a project can list its series even when the
    sources are missing (and the blinded-reading code can map entries without re-scanning)."""

    key: str  # SeriesEntry.key
    series_uid: str
    description: str = ""
    plane: str = ""
    role: str = ""  # the role at save time (guessed or user-set)
    n_echoes: int = 1


@dataclass(frozen=True)
class VisitRecord:
    id: str  # StudyInstanceUID
    date: str = ""  # ISO date "YYYY-MM-DD" or ""
    days: int | None = None
    label: str = ""  # the label at save time
    series: tuple[SeriesRecord, ...] = ()


@dataclass(frozen=True)
class PatientRecord:
    id: str
    name: str = ""
    visits: tuple[VisitRecord, ...] = ()


@dataclass(frozen=True)
class TransformRecord:
    """One visit's visit → baseline matrix in one transform set, with provenance."""

    visit_id: str
    matrix: np.ndarray  # 4×4 float64
    method: str = "manual"
    details: dict = field(default_factory=dict)

    def __eq__(self, other) -> bool:
        return (isinstance(other, TransformRecord) and self.visit_id == other.visit_id
                and np.array_equal(self.matrix, other.matrix) and self.method == other.method
                and self.details == other.details)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class TransformSetRecord:
    """A named transform set ("whole volume" or a disc level such as "L4/L5")."""

    name: str
    baseline_id: str | None
    transforms: tuple[TransformRecord, ...] = ()


@dataclass(frozen=True)
class Annotation:
    """One annotation or measurement, in patient coordinates.

    `kind` names the tool ("point", "ruler", "angle", "text", "ellipse", "polygon", "freehand",
    "disc_height", "score", …); `values` holds computed numbers by machine name (units in
    `units`); `extra` anything tool-specific (plain JSON).
    """

    id: str
    kind: str
    level: str = ""  # disc level, e.g. "L4/L5"; "" when not tied to one
    visit_id: str = ""
    series_uid: str = ""
    points: tuple[tuple[float, float, float], ...] = ()  # LPS mm
    text: str = ""
    values: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)
    reader: str = ""
    method: str = ""
    created: str = ""
    modified: str = ""
    extra: dict = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.id, self.kind, self.modified))


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit log: who did what, when, and old → new (as text)."""

    time: str
    user: str
    action: str  # e.g. "label", "role", "transform", "annotation", "undo", "save", "open"
    target: str = ""  # e.g. visit id, "whole volume/<visit id>", annotation id
    old: str = ""
    new: str = ""


@dataclass
class WorkspaceData:
    """Everything a workspace file stores (voxel caches live beside it, not here)."""

    schema_version: int = SCHEMA_VERSION
    app_version: str = ""
    created: str = ""
    saved: str = ""
    generation: int = 0  # +1 on every save; lets tests and recovery tell states apart
    name: str = ""
    sources: list[SourceFile] = field(default_factory=list)
    patients: list[PatientRecord] = field(default_factory=list)
    visit_labels: dict[str, str] = field(default_factory=dict)  # visit id → user label
    roles: dict[str, str] = field(default_factory=dict)  # series entry key → user role value
    transform_sets: list[TransformSetRecord] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    reading: dict[str, dict] = field(default_factory=dict)  # reading-session id → JSON document
    audit: list[AuditEntry] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # view state etc. (JSON)

    def validate(self) -> None:
        """Raise ValueError naming the first field that cannot be stored."""
        for a in self.annotations:
            check_json(a.values, f"annotation {a.id} values")
            check_json(a.units, f"annotation {a.id} units")
            check_json(a.extra, f"annotation {a.id} extra")
            for p in a.points:
                if len(p) != 3 or not all(math.isfinite(float(c)) for c in p):
                    raise ValueError(f"annotation {a.id}: point {p!r} is not 3 finite coordinates")
        ids = [a.id for a in self.annotations]
        if len(set(ids)) != len(ids):
            raise ValueError("annotation ids are not unique")
        for ts in self.transform_sets:
            for t in ts.transforms:
                m = np.asarray(t.matrix, dtype=np.float64)
                if m.shape != (4, 4) or not np.all(np.isfinite(m)):
                    raise ValueError(f"transform {ts.name}/{t.visit_id}: not a finite 4×4 matrix")
                check_json(t.details, f"transform {ts.name}/{t.visit_id} details")
        for k, doc in self.reading.items():
            check_json(doc, f"reading session {k}")
        check_json(self.settings, "settings")

"""The live project: `Workspace` ties the review model to what the workspace file stores.

A `Workspace` owns
- `sources` (the `SourceFile` index) and, once the sources are scanned, the `study`
  (patients → visits → series, from `discviewer.study`); the user's visit labels and series roles
  live on the study objects and are stored as overrides of the defaults;
- `transforms` — a `TransformRegistry` ("whole volume" and per-disc-level `TransformSet`s);
- `annotations` — an `AnnotationSet`;
- `reading` — reading-session documents (plain JSON, owned by the blinded-reading code);
- `settings` — view state (plain JSON);
- `audit` — the append-only audit log (`AuditEntry`: who, when, what, old → new);
- `history` — undo/redo (`EditHistory`).

**One flow for every stored edit.** Code edits the models directly (`visit.set_label`,
`entry.set_role`, `transform_set.set`, `annotations.add`, …). Each model emits a `Change`; the
workspace records it in the history (undoable), appends an audit entry, and re-emits it on
`changed` — which is what marks the project unsaved and triggers an autosave in the app. Undo and
redo restore values through the same models, so views update the same way, and the audit log says
"undo …"/"redo …". Loading a file applies stored values silently (no history, no audit).

`to_data()` / `Workspace.from_data()` convert to and from `WorkspaceData` (what
`discviewer.workspace.store` writes). Values the study cannot take yet (labels/roles of visits
and series whose sources are missing) are kept and written back unchanged, so a save never drops
work because a drive was not mounted.

Core module: no Qt, no VTK.
"""
from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Iterator

import numpy as np

import discviewer
from discviewer.annotations import AnnotationSet
from discviewer.events import Change, Signal
from discviewer.linking import WHOLE_VOLUME, Provenance, TransformRegistry, TransformSet
from discviewer.study import SeriesEntry, Study, Visit
from discviewer.workspace.data import (SCHEMA_VERSION, AuditEntry, PatientRecord, SeriesRecord,
                                       SourceFile, TransformRecord, TransformSetRecord, VisitRecord,
                                       WorkspaceData, now_iso)
from discviewer.workspace.history import EditHistory


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers)
        return ""


def jsonable(value):
    """Plain JSON data from values that registration/measurement code produces (numpy scalars and
    arrays, tuples); non-finite floats become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _matrix_text(m, prov: Provenance | None) -> str:
    text = json.dumps(np.round(np.asarray(m, float), 6).tolist())
    return f"{prov.method}: {text}" if prov is not None else text


def _annotation_text(a) -> str:
    if a is None:
        return ""
    d = {"kind": a.kind, "level": a.level, "visit": a.visit_id, "points": [list(p) for p in a.points]}
    if a.text:
        d["text"] = a.text
    if a.values:
        d["values"] = a.values
    return json.dumps(d, ensure_ascii=False, sort_keys=True)


class Workspace:
    """The project in memory (see the module docstring)."""

    def __init__(self, *, path: str | None = None, name: str = "", user: str | None = None) -> None:
        self.path = path
        self.name = name
        self.user = current_user() if user is None else user
        self.created = now_iso()
        self.generation = 0
        self.app_version = discviewer.__version__  # of the app that wrote the file we came from
        self.read_only = False
        self.read_only_reason = ""
        self.sources: list[SourceFile] = []
        self.study: Study | None = None
        self.patients: list[PatientRecord] = []  # snapshot from the file (used while no study)
        self.transforms = TransformRegistry()
        self.annotations = AnnotationSet()
        self.reading: dict[str, dict] = {}
        self.settings: dict = {}
        self.audit: list[AuditEntry] = []
        self.history = EditHistory(self._restore)
        self.changed = Signal()  # Change of anything stored (edits, undo/redo, mark_modified)
        self._pending_labels: dict[str, str] = {}
        self._pending_roles: dict[str, str] = {}
        self._silent = 0
        self._modified = False
        self._study_unsub = None
        self._unsubs = [self.transforms.changed.subscribe(self._on_change),
                        self.annotations.changed.subscribe(self._on_change)]

    # ------------------------------------------------------------------ state
    @property
    def is_dirty(self) -> bool:
        """Unsaved changes: the history moved away from the saved position, or something outside the
        history (reading answers, relinked sources, a recovered autosave) changed."""
        return self._modified or not self.history.is_clean

    def mark_modified(self, what: str = "") -> None:
        """Something stored changed outside the undo history (e.g. `reading`, `settings`, `sources`)."""
        self._modified = True
        self.changed.emit(Change(self, what or "modified", None, None))

    def mark_saved(self) -> None:
        self._modified = False
        self.history.mark_clean()

    @contextlib.contextmanager
    def silently(self) -> Iterator[None]:
        """Apply values without history or audit (loading, re-attaching a study)."""
        self._silent += 1
        try:
            yield
        finally:
            self._silent -= 1

    def log(self, action: str, target: str = "", old: str = "", new: str = "") -> AuditEntry:
        """Append one audit entry (events that are not model edits: open, save, recover, register…)."""
        entry = AuditEntry(now_iso(), self.user, action, target, str(old), str(new))
        self.audit.append(entry)
        return entry

    # ------------------------------------------------------------------ study
    def attach_study(self, study: Study | None) -> None:
        """Use `study` (built from the sources) and apply the stored labels and roles to it."""
        if self._study_unsub is not None:
            self._pending_labels.update(self._labels_of(self.study))
            self._pending_roles.update(self._roles_of(self.study))
            self._study_unsub()
            self._study_unsub = None
        self.study = study
        if study is None:
            return
        with self.silently():
            for v in study.visits():
                if v.id in self._pending_labels:
                    v.set_label(self._pending_labels.pop(v.id))
                for e in v.series:
                    if e.key in self._pending_roles:
                        try:
                            e.set_role(self._pending_roles.pop(e.key))
                        except ValueError:  # a role this version does not know: keep it stored
                            pass
            baseline = study.patients[0].baseline.id if study.patients and study.patients[0].baseline else None
            for _, ts in self.transforms.items():
                if ts.baseline_id is None:
                    ts.baseline_id = baseline
        self._study_unsub = study.changed.subscribe(self._on_change)

    @staticmethod
    def _labels_of(study: Study | None) -> dict[str, str]:
        if study is None:
            return {}
        return {v.id: v.label for v in study.visits() if not v.label_is_default}

    @staticmethod
    def _roles_of(study: Study | None) -> dict[str, str]:
        if study is None:
            return {}
        return {e.key: e.role.value for v in study.visits() for e in v.series if not e.role_is_guessed}

    def transform_set_name(self, ts: TransformSet) -> str:
        for name, s in self.transforms.items():
            if s is ts:
                return name
        return "?"

    # ------------------------------------------------------------------ change flow
    def _on_change(self, change: Change) -> None:
        if self._silent:
            return
        direction = self.history.applying
        self.history.record(change)
        self._audit_change(change, direction)
        self.changed.emit(change)

    def _audit_change(self, change: Change, direction: str) -> None:
        src = change.source
        prefix = f"{direction} " if direction else ""
        if isinstance(src, Visit):
            self.log(prefix + "visit label", src.id, change.old, change.new)
        elif isinstance(src, SeriesEntry):
            self.log(prefix + "series role", src.key, getattr(change.old, "value", change.old),
                     getattr(change.new, "value", change.new))
        elif isinstance(src, TransformSet):
            old_p = getattr(change, "old_provenance", None)
            new_p = getattr(change, "new_provenance", None)
            self.log(prefix + "transform", f"{self.transform_set_name(src)}/{change.name}",
                     _matrix_text(change.old, old_p), _matrix_text(change.new, new_p))
        elif isinstance(src, TransformRegistry):
            name = (change.new or change.old)[0]
            added = (change.new is not None) != (direction == "undo")  # an undo names the edit it undoes
            self.log(prefix + ("transform set added" if added else "transform set removed"), name)
        elif isinstance(src, AnnotationSet):
            before, after = (change.new, change.old) if direction == "undo" else (change.old, change.new)
            what = "added" if before is None else "removed" if after is None else "edited"
            self.log(prefix + f"annotation {what}", change.name, _annotation_text(change.old),
                     _annotation_text(change.new))
        else:
            self.log(prefix + change.name, type(src).__name__, change.old, change.new)

    def _restore(self, change: Change, forward: bool) -> None:
        """Put one side of a recorded change back through its model (undo: old; redo: new)."""
        src = change.source
        value = change.new if forward else change.old
        if isinstance(src, Visit):
            src.set_label(value)
        elif isinstance(src, SeriesEntry):
            src.set_role(value)
        elif isinstance(src, TransformSet):
            prov = getattr(change, "new_provenance" if forward else "old_provenance", None)
            if (prov is None or prov.method == "identity") and np.array_equal(value, np.eye(4)):
                src.reset(change.name)
            else:
                src.set(change.name, value, prov)
        elif isinstance(src, TransformRegistry):
            if value is None:
                src.remove((change.old if forward else change.new)[0])
            else:
                src.add(value[0], value[1])
        elif isinstance(src, AnnotationSet):
            src.put(change.name, value)
        else:
            raise TypeError(f"cannot undo a change of {type(src).__name__}")

    def undo(self):
        return self.history.undo()

    def redo(self):
        return self.history.redo()

    # ------------------------------------------------------------------ to / from stored data
    def to_data(self) -> WorkspaceData:
        labels = dict(self._pending_labels)
        labels.update(self._labels_of(self.study))
        roles = dict(self._pending_roles)
        roles.update(self._roles_of(self.study))
        sets = []
        for name, ts in self.transforms.items():
            recs = []
            for vid in ts.visit_ids():
                prov = ts.provenance(vid)
                recs.append(TransformRecord(vid, ts.get(vid), prov.method, jsonable(dict(prov.details))))
            sets.append(TransformSetRecord(name, ts.baseline_id, tuple(recs)))
        return WorkspaceData(
            schema_version=SCHEMA_VERSION, app_version=discviewer.__version__, created=self.created,
            saved="", generation=self.generation, name=self.name, sources=list(self.sources),
            patients=self.patient_records(), visit_labels=labels, roles=roles, transform_sets=sets,
            annotations=list(self.annotations), reading=jsonable(self.reading), audit=list(self.audit),
            settings=jsonable(self.settings))

    def patient_records(self) -> list[PatientRecord]:
        if self.study is None:
            return list(self.patients)
        out = []
        for p in self.study.patients:
            visits = []
            for v in p.visits:
                series = tuple(SeriesRecord(e.key, e.series_uid, e.description, e.plane, e.role.value, e.n_echoes)
                               for e in v.series)
                visits.append(VisitRecord(v.id, v.date.isoformat() if v.date else "", v.days, v.label, series))
            out.append(PatientRecord(p.id, p.name, tuple(visits)))
        return out

    @classmethod
    def from_data(cls, data: WorkspaceData, *, path: str | None = None, user: str | None = None) -> "Workspace":
        ws = cls(path=path, name=data.name, user=user)
        ws.created = data.created or ws.created
        ws.generation = data.generation
        ws.app_version = data.app_version
        ws.sources = list(data.sources)
        ws.patients = list(data.patients)
        ws._pending_labels = dict(data.visit_labels)
        ws._pending_roles = dict(data.roles)
        ws.reading = json.loads(json.dumps(data.reading))
        ws.settings = json.loads(json.dumps(data.settings))
        ws.audit = list(data.audit)
        with ws.silently():
            for rec in data.transform_sets:
                ts = ws.transforms.whole if rec.name == WHOLE_VOLUME else TransformSet(rec.baseline_id)
                ts.baseline_id = rec.baseline_id
                for t in rec.transforms:
                    ts.set(t.visit_id, np.asarray(t.matrix, dtype=np.float64), Provenance(t.method, dict(t.details)))
                if rec.name != WHOLE_VOLUME:
                    ws.transforms.add(rec.name, ts)
            for a in data.annotations:
                ws.annotations.put(a.id, a)
        ws.history.clear()
        return ws

    def close(self) -> None:
        self.attach_study(None)
        for u in self._unsubs:
            u()
        self._unsubs = []


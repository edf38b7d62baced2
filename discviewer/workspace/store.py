"""The `.dvw` workspace file: HDF5 layout, atomic saves with a backup, clear errors on open.

Owns reading and writing `WorkspaceData` (see `discviewer.workspace.data`) to one HDF5 file, and
nothing else: no locking (see `lock`), no live model (see `project`), no voxels (see `voxels`).

Layout (schema 2; older schemas are upgraded by `discviewer.workspace.migrate`)
-------------------------------------------------------------------------------
Every text is a UTF-8 variable-length string (`h5py.string_dtype()`); every integer int64; every
coordinate or matrix float64. User strings are never HDF5 names: lists are stored as groups or
datasets named by their index "0", "1", … (in order, no gaps), the user's name in an attribute.
"JSON text" means `data.json_text` (sorted keys, UTF-8, no NaN).

    /                    attrs format="discviewer workspace", schema_version, app_version (of the
                         app that wrote the file), created, saved (UTC ISO 8601), generation, name
    /sources/            parallel columns, one row per source file:
                         path, sop_uid, series_uid, sha256 (text); size, mtime_ns (int64)
    /study/patients/<i>/             attrs id, name
        visits/<j>/                  attrs id, date, label; days (int64, absent when unknown)
            series/                  columns key, series_uid, description, plane, role (text),
                                     n_echoes (int64)
    /visit_labels/       columns visit_id, label          (only labels the user set)
    /roles/              columns key, role                (only roles the user set)
    /transforms/<i>/     one transform set: attrs name (e.g. "whole volume", "L4/L5") and
                         baseline_id (absent when no baseline is chosen: None ≠ "")
        <j>              4×4 float64 dataset, visit → baseline patient space (LPS mm);
                         attrs visit_id, method, details (JSON text)
    /annotations/<i>/    attrs id, kind, level, visit_id, series_uid, text, reader, method,
                         created, modified; values, units, extra (JSON text)
        points           (N, 3) float64, patient coordinates (LPS mm); N may be 0
    /reading/            columns id, document (JSON text): one row per reading session
    /audit/              columns time, user, action, target, old, new; chunked with an unlimited
                         length, so tools may append rows; the app only ever appends entries
    /settings            scalar JSON text

Empty lists are zero-length datasets or empty groups; every group and column above is always
present. Strings with NUL characters or lone surrogates cannot be stored (HDF5/UTF-8): `save`
refuses them with the field's name before touching the disk.

Saving (`save`) — the previous file is valid at every instant
-------------------------------------------------------------
1. `data.validate()` and encode everything in memory (errors here touch no file).
2. Write the whole file to `.<name>.tmp-<pid>-<host tag>-<random>` in the SAME folder, close it,
   give it the old file's permission bits, `fsync` it, re-open it read-only and check the root
   attributes and every count against what was meant to be written.
3. If `keep_backup` and the current file is a readable workspace: hard-link it to a temp name
   (copy when the file system has no hard links).
4. `os.replace(temp, path)` publishes the new file atomically; then the link is renamed to
   `<path>.bak`, and the folder is `fsync`ed. A current file that does not read as a workspace
   never replaces a good backup.
5. On ANY failure before publishing, the temp files are removed, `path` and `<path>.bak` are
   untouched and `WorkspaceSaveError` says which file, what went wrong in plain words and that
   the work is still in memory. Failing to rotate the backup after publishing is not an error
   (the new data is safe); it is reported in `SaveInfo.warning`.
A writer killed mid-save leaves only a stale `.tmp-` file: harmless, never read, and removed by
the next successful save in that folder (temp files of this host whose process is gone).
A symlinked `path` is followed: the link's target is replaced, the link is kept.

`save` never changes the caller's data. It stamps the file with `saved` = now and the app's
version, writes `generation` exactly as given (the caller increments it per save), and returns
`SaveInfo`; `info.applied_to(data)` is the data as it now reads back from the file.

Opening (`load`)
----------------
missing → `WorkspaceNotFoundError`; unreadable (permission) → `WorkspaceReadError`; not HDF5,
truncated, empty, wrong `format`, missing groups/attributes → `WorkspaceCorruptError`, which
offers `<path>.bak` when it exists and itself loads; schema older → upgraded in memory (the file is
untouched until saved, the next save writes the current schema); schema newer → what is understood
is loaded, `read_only=True`, and `save` refuses that data (it would drop what this app does not know).
HDF5 files are opened with `locking=False` (HDF5's own locking fails on some network file systems;
the workspace has its own lock file).

Core module: h5py, numpy and stdlib only.
"""
from __future__ import annotations

import dataclasses
import errno as _errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from discviewer import __version__
from discviewer.workspace import migrate
from discviewer.workspace.data import (
    SCHEMA_VERSION, Annotation, AuditEntry, PatientRecord, SeriesRecord, SourceFile, TransformRecord,
    TransformSetRecord, VisitRecord, WorkspaceData, json_text, now_iso,
)

__all__ = [
    "FORMAT", "SaveInfo", "LoadResult", "WorkspaceError", "WorkspaceNotFoundError", "WorkspaceReadError",
    "WorkspaceCorruptError", "WorkspaceSaveError", "save", "load", "read_meta", "backup_path",
]

#: value of the root attribute `format`
FORMAT = "discviewer workspace"

_STR = h5py.string_dtype("utf-8")
_HOST_TAG = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[0-9a-f]{8}(\.bak)?$")
_TOP_GROUPS = ("sources", "study", "visit_labels", "roles", "transforms", "annotations", "reading", "audit")
_AUDIT_COLUMNS = ("time", "user", "action", "target", "old", "new")
_SOURCE_TEXT = ("path", "sop_uid", "series_uid", "sha256")
_SERIES_TEXT = ("key", "series_uid", "description", "plane", "role")
_ANNOTATION_TEXT = ("id", "kind", "level", "visit_id", "series_uid", "text", "reader", "method", "created",
                    "modified")


# ---------------------------------------------------------------------------------------------- errors

class WorkspaceError(Exception):
    """Base of every workspace file error; `path` is the file concerned."""

    def __init__(self, path, message: str):
        super().__init__(message)
        self.path = Path(path)
        self.message = message


class WorkspaceNotFoundError(WorkspaceError):
    def __init__(self, path):
        super().__init__(path, f"The workspace {path} does not exist (moved, renamed or deleted?).")


class WorkspaceReadError(WorkspaceError):
    """The file exists but cannot be read (permission, I/O error) — not a damaged file."""

    def __init__(self, path, reason: str):
        super().__init__(path, f"The workspace {path} cannot be read: {reason}.")
        self.reason = reason


class WorkspaceCorruptError(WorkspaceError):
    """The file is not a readable workspace. `backup` is `<path>.bak` when that exists and loads."""

    def __init__(self, path, detail: str, backup: Path | None = None):
        msg = f"The workspace {path} is damaged or is not a workspace file: {detail}."
        if backup is not None:
            msg += f" Its backup {backup} is intact and can be opened instead."
        else:
            msg += " No usable backup was found."
        super().__init__(path, msg)
        self.detail = detail
        self.backup = backup


class WorkspaceSaveError(WorkspaceError):
    """Saving failed; nothing on disk changed and the caller's data is intact. `reason` is plain words,
    `errno` the OS error number when there was one."""

    def __init__(self, path, reason: str, errno: int | None = None):
        super().__init__(path, f"Could not save the workspace {path}: {reason}. Your work is still in memory "
                               "(nothing was lost); the file on disk and its backup are unchanged.")
        self.reason = reason
        self.errno = errno


class _Corrupt(Exception):
    """Internal: the file read but its content is not a valid workspace (detail in args[0])."""


# ---------------------------------------------------------------------------------------------- results

@dataclass(frozen=True)
class SaveInfo:
    """What `save` wrote. `backup` is the backup path when it was rotated this time."""

    path: Path
    generation: int
    saved: str
    app_version: str
    size: int
    backup: Path | None = None
    warning: str = ""

    def applied_to(self, data: WorkspaceData) -> WorkspaceData:
        """A copy of `data` as it reads back from the file just written."""
        return dataclasses.replace(data, saved=self.saved, app_version=self.app_version,
                                   schema_version=SCHEMA_VERSION)


@dataclass(frozen=True)
class LoadResult:
    data: WorkspaceData
    read_only: bool
    message: str  # "" when the file was current and complete
    path: Path
    file_schema_version: int = SCHEMA_VERSION  # as found in the file (data.schema_version after upgrade)


def backup_path(path) -> Path:
    """`<path>.bak` — where `save` keeps the previous version."""
    p = Path(path)
    return p.with_name(p.name + ".bak")


# ---------------------------------------------------------------------------------------------- h5py

def _open(path, mode: str) -> h5py.File:
    """h5py.File without HDF5 file locking where this HDF5 supports switching it off."""
    try:
        return h5py.File(path, mode, locking=False)
    except (TypeError, ValueError) as e:  # HDF5 too old for the locking switch
        if "lock" not in str(e).lower():
            raise
        return h5py.File(path, mode)


# Raw form shared with `migrate`: a group is {"attrs": {}, "groups": {name: group},
# "datasets": {name: {"data": value, "attrs": {}}}}; dataset values are `str` (scalar text),
# `list[str]` (text column) or `np.ndarray` (numbers). {"appendable": True} marks a resizable column.

def _group(attrs: dict | None = None) -> dict:
    return {"attrs": dict(attrs or {}), "groups": {}, "datasets": {}}


def _write_node(g, node: dict) -> None:
    for k, v in node["attrs"].items():
        g.attrs[k] = np.int64(v) if isinstance(v, int) else v
    for name, ds in node["datasets"].items():
        d = ds["data"]
        if isinstance(d, str):
            obj = g.create_dataset(name, data=d, dtype=_STR)
        elif isinstance(d, list):
            arr = np.array(d, dtype=object).reshape(len(d))
            if ds.get("appendable"):
                obj = g.create_dataset(name, shape=(len(d),), maxshape=(None,), chunks=(256,), dtype=_STR)
                if d:
                    obj[...] = arr
            else:
                obj = g.create_dataset(name, data=arr, dtype=_STR)
        else:
            obj = g.create_dataset(name, data=np.asarray(d))
        for k, v in ds.get("attrs", {}).items():
            obj.attrs[k] = np.int64(v) if isinstance(v, int) else v
    for name, sub in node["groups"].items():
        _write_node(g.create_group(name), sub)


def _py(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def _read_node(g) -> dict:
    node = _group({k: _py(v) for k, v in g.attrs.items()})
    for name in g:
        obj = g[name]
        if isinstance(obj, h5py.Group):
            node["groups"][name] = _read_node(obj)
        elif isinstance(obj, h5py.Dataset):
            if h5py.check_string_dtype(obj.dtype) is not None:
                v = obj.asstr()[()]
                data = v if isinstance(v, str) else [str(s) for s in np.ravel(v)]
            else:
                data = obj[()]
            node["datasets"][name] = {"data": data, "attrs": {k: _py(v) for k, v in obj.attrs.items()}}
    return node


# ---------------------------------------------------------------------------------------------- encode

def _t(value, where: str) -> str:
    """A text value that HDF5 can store as UTF-8, or ValueError naming the field."""
    if not isinstance(value, str):
        raise ValueError(f"{where}: {type(value).__name__} {value!r} is not text")
    if "\x00" in value:
        raise ValueError(f"{where}: contains a NUL character, which HDF5 text cannot hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: {value!r} is not valid Unicode text") from None
    return value


def _j(value, where: str) -> str:
    try:
        return _t(json_text(value), where)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _i(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{where}: {value!r} is not an integer")
    v = int(value)
    if not -(2 ** 63) <= v < 2 ** 63:
        raise ValueError(f"{where}: {v} does not fit in 64 bits")
    return v


def _columns(rows, names, where, ints=()) -> dict:
    out = {}
    for n in names:
        out[n] = {"data": [_t(getattr(r, n), f"{where} {n}") for r in rows], "attrs": {}}
    for n in ints:
        out[n] = {"data": np.array([_i(getattr(r, n), f"{where} {n}") for r in rows], dtype=np.int64),
                  "attrs": {}}
    return out


def _encode(data: WorkspaceData, saved: str, app_version: str) -> dict:
    root = _group({
        "format": FORMAT, "schema_version": SCHEMA_VERSION, "app_version": _t(app_version, "app_version"),
        "created": _t(data.created, "created"), "saved": saved,
        "generation": _i(data.generation, "generation"), "name": _t(data.name, "name"),
    })
    G = root["groups"]
    G["sources"] = src = _group()
    src["datasets"] = _columns(data.sources, _SOURCE_TEXT, "source", ints=("size", "mtime_ns"))

    G["study"] = study = _group()
    study["groups"]["patients"] = pats = _group()
    for i, p in enumerate(data.patients):
        pg = _group({"id": _t(p.id, f"patient {i} id"), "name": _t(p.name, f"patient {p.id} name")})
        pats["groups"][str(i)] = pg
        pg["groups"]["visits"] = vs = _group()
        for j, v in enumerate(p.visits):
            where = f"visit {v.id}"
            va = {"id": _t(v.id, f"visit {j} id"), "date": _t(v.date, f"{where} date"),
                  "label": _t(v.label, f"{where} label")}
            if v.days is not None:
                va["days"] = _i(v.days, f"{where} days")
            vg = vs["groups"][str(j)] = _group(va)
            vg["groups"]["series"] = sg = _group()
            sg["datasets"] = _columns(v.series, _SERIES_TEXT, f"{where} series", ints=("n_echoes",))

    G["visit_labels"] = vl = _group()
    vl["datasets"] = {
        "visit_id": {"data": [_t(k, "visit label key") for k in data.visit_labels], "attrs": {}},
        "label": {"data": [_t(v, f"visit label of {k}") for k, v in data.visit_labels.items()], "attrs": {}}}
    G["roles"] = rl = _group()
    rl["datasets"] = {
        "key": {"data": [_t(k, "role key") for k in data.roles], "attrs": {}},
        "role": {"data": [_t(v, f"role of {k}") for k, v in data.roles.items()], "attrs": {}}}

    G["transforms"] = tr = _group()
    for i, ts in enumerate(data.transform_sets):
        where = f"transform set {ts.name!r}"
        ta = {"name": _t(ts.name, f"transform set {i} name")}
        if ts.baseline_id is not None:
            ta["baseline_id"] = _t(ts.baseline_id, f"{where} baseline")
        tg = tr["groups"][str(i)] = _group(ta)
        for j, t in enumerate(ts.transforms):
            m = np.array(t.matrix, dtype=np.float64)
            if m.shape != (4, 4):
                raise ValueError(f"{where} visit {t.visit_id}: matrix shape {m.shape} is not 4×4")
            tg["datasets"][str(j)] = {"data": m, "attrs": {
                "visit_id": _t(t.visit_id, f"{where} visit id"), "method": _t(t.method, f"{where} method"),
                "details": _j(t.details, f"{where}/{t.visit_id} details")}}

    G["annotations"] = an = _group()
    for i, a in enumerate(data.annotations):
        where = f"annotation {a.id!r}"
        attrs = {n: _t(getattr(a, n), f"{where} {n}") for n in _ANNOTATION_TEXT}
        for n in ("values", "units", "extra"):
            attrs[n] = _j(getattr(a, n), f"{where} {n}")
        ag = an["groups"][str(i)] = _group(attrs)
        pts = np.array(a.points, dtype=np.float64).reshape(-1, 3) if len(a.points) else np.zeros((0, 3))
        ag["datasets"]["points"] = {"data": pts, "attrs": {}}

    G["reading"] = rd = _group()
    rd["datasets"] = {
        "id": {"data": [_t(k, "reading session id") for k in data.reading], "attrs": {}},
        "document": {"data": [_j(v, f"reading session {k}") for k, v in data.reading.items()], "attrs": {}}}

    G["audit"] = au = _group()
    au["datasets"] = _columns(data.audit, _AUDIT_COLUMNS, "audit entry")
    for c in au["datasets"].values():
        c["appendable"] = True

    root["datasets"]["settings"] = {"data": _j(data.settings, "settings"), "attrs": {}}
    return root


# ---------------------------------------------------------------------------------------------- decode

class _Decoder:
    """Raw form → WorkspaceData. strict: anything missing is `_Corrupt`; lenient (newer schema): defaults."""

    def __init__(self, strict: bool):
        self.strict = strict

    def _missing(self, what: str, default):
        if self.strict:
            raise _Corrupt(f"{what} is missing")
        return default

    def group(self, node, name, where):
        g = node["groups"].get(name)
        return g if g is not None else self._missing(f"group {where}/{name}", _group())

    def text(self, attrs, key, where, default=""):
        if key not in attrs:
            return self._missing(f"attribute {key!r} of {where}", default)
        v = attrs[key]
        if not isinstance(v, str):
            raise _Corrupt(f"attribute {key!r} of {where} is {type(v).__name__}, not text")
        return v

    def integer(self, attrs, key, where, default=0):
        if key not in attrs:
            return self._missing(f"attribute {key!r} of {where}", default)
        v = attrs[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Corrupt(f"attribute {key!r} of {where} is {v!r}, not an integer")
        return v

    def json(self, text, where):
        try:
            return json.loads(text)
        except ValueError as e:
            raise _Corrupt(f"{where} is not valid JSON ({e})") from None

    def indexed(self, node, where, datasets=False):
        """Children "0".."n-1" in order (groups or datasets)."""
        kids = node["datasets"] if datasets else node["groups"]
        names = set(kids)
        n = len(names)
        if names != {str(i) for i in range(n)}:
            raise _Corrupt(f"{where} has entries {sorted(names)[:5]}…, expected 0..{n - 1}")
        return [kids[str(i)] for i in range(n)]

    def columns(self, node, text, ints, where):
        cols = {}
        for n in text + ints:
            ds = node["datasets"].get(n)
            if ds is None:
                cols[n] = self._missing(f"column {where}/{n}", None)
                continue
            d = ds["data"]
            if n in text:
                if not isinstance(d, list):
                    raise _Corrupt(f"column {where}/{n} is not a text column")
                cols[n] = d
            else:
                arr = np.asarray(d)
                if arr.ndim != 1 or arr.dtype.kind not in "iu":
                    raise _Corrupt(f"column {where}/{n} is not an integer column")
                cols[n] = [int(x) for x in arr]
        lengths = {len(c) for c in cols.values() if c is not None}
        if len(lengths) > 1:
            raise _Corrupt(f"columns of {where} have different lengths {sorted(lengths)}")
        n_rows = lengths.pop() if lengths else 0
        for n in text + ints:
            if cols[n] is None:
                cols[n] = [""] * n_rows if n in text else [0] * n_rows
        return [{n: cols[n][i] for n in cols} for i in range(n_rows)]

    def decode(self, root: dict) -> WorkspaceData:
        a = root["attrs"]
        d = WorkspaceData(
            schema_version=self.integer(a, "schema_version", "/"),
            app_version=self.text(a, "app_version", "/"), created=self.text(a, "created", "/"),
            saved=self.text(a, "saved", "/"), generation=self.integer(a, "generation", "/"),
            name=self.text(a, "name", "/"))
        d.sources = [SourceFile(**r) for r in self.columns(
            self.group(root, "sources", ""), _SOURCE_TEXT, ("size", "mtime_ns"), "/sources")]

        pats = self.group(self.group(root, "study", ""), "patients", "/study")
        for i, pg in enumerate(self.indexed(pats, "/study/patients")):
            w = f"/study/patients/{i}"
            visits = []
            for j, vg in enumerate(self.indexed(self.group(pg, "visits", w), f"{w}/visits")):
                vw = f"{w}/visits/{j}"
                days = vg["attrs"].get("days")
                if days is not None and (isinstance(days, bool) or not isinstance(days, int)):
                    raise _Corrupt(f"attribute 'days' of {vw} is {days!r}, not an integer")
                series = tuple(SeriesRecord(**r) for r in self.columns(
                    self.group(vg, "series", vw), _SERIES_TEXT, ("n_echoes",), f"{vw}/series"))
                visits.append(VisitRecord(id=self.text(vg["attrs"], "id", vw), date=self.text(vg["attrs"], "date", vw),
                                          days=days, label=self.text(vg["attrs"], "label", vw), series=series))
            d.patients.append(PatientRecord(id=self.text(pg["attrs"], "id", w),
                                            name=self.text(pg["attrs"], "name", w), visits=tuple(visits)))

        d.visit_labels = {r["visit_id"]: r["label"] for r in self.columns(
            self.group(root, "visit_labels", ""), ("visit_id", "label"), (), "/visit_labels")}
        d.roles = {r["key"]: r["role"] for r in self.columns(
            self.group(root, "roles", ""), ("key", "role"), (), "/roles")}

        for i, tg in enumerate(self.indexed(self.group(root, "transforms", ""), "/transforms")):
            w = f"/transforms/{i}"
            ta = tg["attrs"]
            base = ta.get("baseline_id")
            if base is not None and not isinstance(base, str):
                raise _Corrupt(f"attribute 'baseline_id' of {w} is not text")
            records = []
            for j, ds in enumerate(self.indexed(tg, w, datasets=True)):
                m = np.asarray(ds["data"])
                if m.shape != (4, 4) or m.dtype.kind != "f":
                    raise _Corrupt(f"{w}/{j} is not a 4×4 float matrix")
                da = ds["attrs"]
                records.append(TransformRecord(
                    visit_id=self.text(da, "visit_id", f"{w}/{j}"), matrix=m.astype(np.float64),
                    method=self.text(da, "method", f"{w}/{j}", "manual"),
                    details=self.json(self.text(da, "details", f"{w}/{j}", "{}"), f"{w}/{j} details")))
            d.transform_sets.append(TransformSetRecord(name=self.text(ta, "name", w), baseline_id=base,
                                                       transforms=tuple(records)))

        for i, ag in enumerate(self.indexed(self.group(root, "annotations", ""), "/annotations")):
            w = f"/annotations/{i}"
            aa = ag["attrs"]
            kw = {n: self.text(aa, n, w) for n in _ANNOTATION_TEXT}
            for n in ("values", "units", "extra"):
                kw[n] = self.json(self.text(aa, n, w, "{}"), f"{w} {n}")
            ds = ag["datasets"].get("points")
            pts = np.zeros((0, 3)) if ds is None else np.asarray(ds["data"])
            if ds is None:
                self._missing(f"dataset {w}/points", None)
            if pts.ndim != 2 or pts.shape[1] != 3 or pts.dtype.kind not in "fiu":
                raise _Corrupt(f"{w}/points is not an (N, 3) array")
            kw["points"] = tuple(tuple(float(c) for c in row) for row in pts.astype(np.float64))
            d.annotations.append(Annotation(**kw))

        rows = self.columns(self.group(root, "reading", ""), ("id", "document"), (), "/reading")
        d.reading = {r["id"]: self.json(r["document"], f"/reading {r['id']}") for r in rows}
        d.audit = [AuditEntry(**r) for r in self.columns(self.group(root, "audit", ""), _AUDIT_COLUMNS, (),
                                                         "/audit")]
        s = root["datasets"].get("settings")
        if s is None:
            d.settings = self._missing("dataset /settings", {})
        elif not isinstance(s["data"], str):
            raise _Corrupt("/settings is not JSON text")
        else:
            d.settings = self.json(s["data"], "/settings")
        if not isinstance(d.settings, dict):
            raise _Corrupt("/settings is not a JSON object")
        return d


# ---------------------------------------------------------------------------------------------- errno

def _errno_of(exc: BaseException) -> int | None:
    """The OS error number of an exception, also when h5py only put it in the message text."""
    en = getattr(exc, "errno", None)
    if isinstance(en, int):
        return en
    m = re.search(r"errno\s*=\s*(\d+)", str(exc))
    if m:
        return int(m.group(1))
    if isinstance(exc, PermissionError):
        return _errno.EACCES
    return None


_ANOTHER = " — choose another folder with Save As"
_REASONS = {
    _errno.ENOSPC: "the disk is full",
    _errno.EACCES: "permission denied" + _ANOTHER,
    _errno.EPERM: "permission denied" + _ANOTHER,
    _errno.EROFS: "the folder is on a read-only file system" + _ANOTHER,
    _errno.ENOENT: "the folder does not exist (was a drive or network share disconnected?)",
    _errno.EIO: "an input/output error occurred (the disk or network share may be failing)",
    _errno.EFBIG: "the file is too large for this file system",
    _errno.ENAMETOOLONG: "the file name is too long",
}
if hasattr(_errno, "EDQUOT"):
    _REASONS[_errno.EDQUOT] = "the disk quota is exceeded"


def _reason(exc: BaseException) -> str:
    r = _REASONS.get(_errno_of(exc))
    return r if r else f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------------- save

def _temp_name(target_name: str) -> str:
    return f".{target_name}.tmp-{os.getpid()}-{_HOST_TAG}-{secrets.token_hex(4)}"


def _remove(p: Path | None) -> None:
    if p is None:
        return
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass
    except OSError:
        pass  # nothing more can be done; the next save's cleanup will try again


def _fsync_path(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows; NTFS journals renames
        return
    try:
        _fsync_path(folder)
    except OSError as e:
        if e.errno not in (_errno.EINVAL, _errno.ENOTSUP, _errno.EBADF, _errno.EACCES):
            raise


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _clean_stale_temps(folder: Path) -> list[Path]:
    """Remove save temp files in `folder` left by dead processes of this host. Returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP_RE.match(e.name)
        if not m or m["host"] != _HOST_TAG:
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or _pid_alive(pid):
            continue
        _remove(Path(e.path))
        removed.append(Path(e.path))
    return removed


def _write_file(tmp: Path, tree: dict) -> None:
    with _open(tmp, "x") as f:  # "x": never overwrite anything
        _write_node(f, tree)


def _verify(tmp: Path, tree: dict) -> None:
    """Re-open the written file and check the root attributes and every count."""
    def bad(what):
        return OSError(_errno.EIO, f"the file written could not be read back correctly ({what})")

    with _open(tmp, "r") as f:
        attrs = {k: _py(v) for k, v in f.attrs.items()}
        if attrs != tree["attrs"]:
            raise bad("root attributes differ")
        for gname, gnode in tree["groups"].items():
            g = f[gname]
            if set(g.keys()) != set(gnode["groups"]) | set(gnode["datasets"]):
                raise bad(f"/{gname} entries differ")
            for dname, ds in gnode["datasets"].items():
                if g[dname].shape[:1] != np.shape(ds["data"])[:1]:
                    raise bad(f"/{gname}/{dname} length differs")
        if f["settings"].asstr()[()] != tree["datasets"]["settings"]["data"]:
            raise bad("/settings differs")


def _readable_workspace(p: Path) -> bool:
    try:
        return read_meta(p)["format"] == FORMAT
    except Exception:
        return False


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # no hard links here (FAT, some network shares): a full copy
        shutil.copy2(src, dst)
        _fsync_path(dst)


def save(data: WorkspaceData, path, *, keep_backup: bool = True) -> SaveInfo:
    """Write `data` to `path` atomically (see the module docstring); keep the previous file as
    `<path>.bak` when `keep_backup`. Never changes `data`. Raises `WorkspaceSaveError` on any failure,
    with `path` and its backup untouched and no temp file left behind."""
    target = Path(os.path.realpath(os.fspath(path)))
    try:
        if data.schema_version > SCHEMA_VERSION:
            raise ValueError(f"it was opened from a newer discviewer's file (schema {data.schema_version}, "
                             f"this app {SCHEMA_VERSION}); saving would drop what this app does not understand")
        data.validate()
        saved = now_iso()
        tree = _encode(data, saved=saved, app_version=__version__)
    except (ValueError, TypeError) as e:
        raise WorkspaceSaveError(target, f"the data cannot be stored ({e})") from e

    folder = target.parent
    tmp = folder / _temp_name(target.name)
    tmp_bak: Path | None = None
    try:
        _write_file(tmp, tree)
        try:
            st = os.stat(target)
        except FileNotFoundError:
            pass
        else:
            os.chmod(tmp, st.st_mode & 0o7777)
        _fsync_path(tmp)
        _verify(tmp, tree)
        if keep_backup and target.is_file() and _readable_workspace(target):
            tmp_bak = folder / (_temp_name(target.name) + ".bak")
            _link_or_copy(target, tmp_bak)
        size = os.stat(tmp).st_size
        os.replace(tmp, target)
    except BaseException as e:
        _remove(tmp)
        _remove(tmp_bak)
        if isinstance(e, Exception):
            raise WorkspaceSaveError(target, _reason(e), _errno_of(e)) from e
        raise

    # published: from here on the new data is safe; problems are warnings, not errors
    warnings = []
    backup = None
    if tmp_bak is not None:
        try:
            os.replace(tmp_bak, backup_path(target))
            backup = backup_path(target)
        except OSError as e:
            _remove(tmp_bak)
            warnings.append(f"the backup {backup_path(target)} could not be updated: {_reason(e)}")
    try:
        _fsync_dir(folder)
    except OSError as e:
        warnings.append(f"the folder could not be flushed to disk: {_reason(e)}")
    _clean_stale_temps(folder)
    return SaveInfo(path=target, generation=int(data.generation), saved=saved, app_version=__version__,
                    size=size, backup=backup, warning="; ".join(warnings))


# ---------------------------------------------------------------------------------------------- load

def _h5_detail(exc: BaseException, p: Path) -> str:
    msg = str(exc)
    try:
        if os.path.getsize(p) == 0:
            return "the file is empty (0 bytes)"
    except OSError:
        pass
    if "signature" in msg:
        return "it is not an HDF5 file, or its beginning is damaged"
    if "truncated" in msg:
        return "the file is truncated (shorter than its own header says — an interrupted copy or a full disk?)"
    return f"HDF5 could not read it ({msg})"


def _read_tree(p: Path, meta_only: bool = False) -> dict:
    """The raw form of the file (root attributes only if `meta_only`). Raises WorkspaceNotFoundError,
    WorkspaceReadError or _Corrupt."""
    if not p.exists():
        raise WorkspaceNotFoundError(p)
    if p.is_dir():
        raise _Corrupt("it is a folder, not a file")
    try:
        os.close(os.open(p, os.O_RDONLY))
    except FileNotFoundError:
        raise WorkspaceNotFoundError(p) from None
    except OSError as e:
        raise WorkspaceReadError(p, _reason(e).replace(_ANOTHER, "")) from e
    try:
        f = _open(p, "r")
    except Exception as e:
        raise _Corrupt(_h5_detail(e, p)) from e
    try:
        with f:
            if meta_only:
                return _group({k: _py(v) for k, v in f.attrs.items()})
            return _read_node(f)
    except Exception as e:
        raise _Corrupt(f"part of it cannot be read ({type(e).__name__}: {e})") from e


def _check_header(attrs: dict) -> int:
    fmt = attrs.get("format")
    if fmt is None:
        raise _Corrupt("it is an HDF5 file but not a discviewer workspace (no 'format' attribute)")
    if fmt != FORMAT:
        raise _Corrupt(f"it is an HDF5 file but not a discviewer workspace (format {fmt!r})")
    v = attrs.get("schema_version")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise _Corrupt(f"its schema_version {v!r} is not a positive integer")
    return v


def _load(p: Path) -> LoadResult:
    tree = _read_tree(p)
    v = _check_header(tree["attrs"])
    message = ""
    if v < SCHEMA_VERSION:
        try:
            tree = migrate.upgrade(tree, v)
        except Exception as e:
            raise _Corrupt(f"upgrading it from schema {v} failed ({e})") from e
        message = (f"{p.name} was made by an older discviewer (schema {v}); it was upgraded to schema "
                   f"{SCHEMA_VERSION} in memory — the file itself is unchanged until you save")
    try:
        data = _Decoder(strict=v <= SCHEMA_VERSION).decode(tree)
    except _Corrupt:
        raise
    except Exception as e:
        raise _Corrupt(f"its content is inconsistent ({type(e).__name__}: {e})") from e
    read_only = v > SCHEMA_VERSION
    if read_only:
        data.schema_version = v
        message = (f"{p.name} was made by a newer discviewer (schema {v}, this app {SCHEMA_VERSION}) — "
                   "opened read-only")
    return LoadResult(data=data, read_only=read_only, message=message, path=p, file_schema_version=v)


def _usable_backup(p: Path, meta_only: bool = False) -> Path | None:
    b = backup_path(p)
    if not b.is_file():
        return None
    try:
        if meta_only:
            _check_header(_read_tree(b, meta_only=True)["attrs"])
        else:
            _load(b)
    except Exception:
        return None
    return b


def load(path) -> LoadResult:
    """Read a workspace file (see the module docstring for what each problem raises)."""
    p = Path(path)
    try:
        return _load(p)
    except _Corrupt as e:
        raise WorkspaceCorruptError(p, str(e), backup=_usable_backup(p)) from e


def read_meta(path) -> dict:
    """The root attributes only — format, schema_version, generation, saved, created, name, app_version —
    without reading the rest (for autosave recovery and listings). Raises like `load`."""
    p = Path(path)
    try:
        a = _read_tree(p, meta_only=True)["attrs"]
        v = _check_header(a)
        gen = a.get("generation", 0)
        if isinstance(gen, bool) or not isinstance(gen, int):
            raise _Corrupt(f"its generation {gen!r} is not an integer")
    except _Corrupt as e:
        raise WorkspaceCorruptError(p, str(e), backup=_usable_backup(p, meta_only=True)) from e

    def text(k):
        x = a.get(k, "")
        return x if isinstance(x, str) else str(x)

    return {"format": FORMAT, "schema_version": v, "generation": gen, "saved": text("saved"),
            "created": text("created"), "name": text("name"), "app_version": text("app_version")}

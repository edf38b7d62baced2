"""Local cache of retrieved series: complete series only, with an index of what is there.

Layout: `<root>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm` plus `.series.json`
(the `CachedSeries` record) in each series folder. A retrieve writes into a staging folder
`<root>/.partial/<pid>-<random>/` and `Staging.commit` renames it into place (`os.replace`, atomic on
one file system) only when every expected instance arrived; otherwise the staging folder is deleted
and `IncompleteSeriesError` says how many of how many came. So a series folder exists only when
complete, and the index (the `.series.json` files, read by `SeriesCache.entries`) cannot disagree
with the folders. Staging folders left by a dead process are removed when a cache is opened.

Core module: stdlib only (+ discviewer.pacs.errors).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .errors import IncompleteSeriesError
from .records import SeriesRecord

SERIES_JSON = ".series.json"  # hidden: discviewer.io.scan skips dot files, so the folder scans clean
PARTIAL = ".partial"


def default_cache_root() -> Path:
    """$DISCVIEWER_PACS_CACHE, else <$DISCVIEWER_CACHE or $XDG_CACHE_HOME or ~/.cache>/discviewer/pacs."""
    env = os.environ.get("DISCVIEWER_PACS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("DISCVIEWER_CACHE") or os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "discviewer" / "pacs"


def _safe(uid: str) -> str:
    """A UID as a folder/file name (UIDs are digits and dots; anything else is replaced)."""
    s = "".join(c if c.isalnum() or c in ".-_" else "_" for c in uid.strip())
    if not s or s in (".", ".."):
        raise ValueError(f"unusable UID {uid!r}")
    return s


@dataclass(frozen=True)
class CachedSeries:
    """One complete series in the cache."""

    study_uid: str
    series_uid: str
    path: str  # the series folder: open it like any local folder
    n_instances: int
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_description: str = ""
    modality: str = ""
    series_number: int | None = None
    description: str = ""
    source: str = ""  # the node it came from
    retrieved_at: str = ""  # ISO time (UTC)

    @classmethod
    def from_dict(cls, d: dict) -> "CachedSeries":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Staging:
    """A series being received: files go to a private folder until `commit` or `discard`.

    `write` may be called from a network thread (pynetdicom's C-STORE handler)."""

    def __init__(self, cache: "SeriesCache", series: SeriesRecord, source: str):
        self.cache, self.series, self.source = cache, series, source
        cache.partial_dir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=cache.partial_dir))
        self._lock = threading.Lock()
        self._uids: set[str] = set()
        self.done = False

    @property
    def received(self) -> set[str]:
        with self._lock:
            return set(self._uids)

    def write(self, sop_uid: str, data: bytes) -> Path:
        """Store one instance (a complete DICOM file's bytes) under its SOP Instance UID."""
        if self.done:
            raise RuntimeError("this staging folder is already committed or discarded")
        path = self.dir / f"{_safe(sop_uid)}.dcm"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        with self._lock:
            self._uids.add(sop_uid)
        return path

    def write_dataset(self, ds) -> Path:
        """Store a pydicom Dataset with file meta (DICOMweb)."""
        from io import BytesIO

        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return self.write(str(ds.SOPInstanceUID), buf.getvalue())

    def discard(self) -> None:
        if not self.done:
            self.done = True
            shutil.rmtree(self.dir, ignore_errors=True)

    def commit(self, expected_uids=None, expected_count: int | None = None) -> CachedSeries:
        """Move the series into the cache if complete, else discard it and raise IncompleteSeriesError.

        Complete = every UID of `expected_uids` arrived (and at least `expected_count` files)."""
        got = self.received
        missing = set(expected_uids or ()) - got
        want = max(len(set(expected_uids or ())), expected_count or 0)
        s = self.series
        if missing or len(got) < want or not got:
            self.discard()
            n_ok = len(got & set(expected_uids)) if expected_uids else len(got)
            raise IncompleteSeriesError(
                f"Series {s.label()} of patient {s.patient_id or '?'} arrived incomplete: {n_ok} of {want} "
                f"instances came from {self.source or 'the PACS'}. Nothing of it was kept in the cache; "
                "retrieve it again.", series_uid=s.series_uid, received=n_ok, expected=want,
                incomplete=[(s.series_uid, n_ok, want)])
        entry = CachedSeries(
            study_uid=s.study_uid, series_uid=s.series_uid, path="", n_instances=len(got), patient_id=s.patient_id,
            patient_name=s.patient_name, study_date=s.study_date, study_description=s.study_description,
            modality=s.modality, series_number=s.series_number, description=s.description, source=self.source,
            retrieved_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        d = asdict(entry)
        d.pop("path")
        (self.dir / SERIES_JSON).write_text(json.dumps(d, indent=1), encoding="utf-8")
        final = self.cache.series_dir(s.study_uid, s.series_uid)
        final.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if final.exists():  # a forced re-retrieve: swap, then remove the old copy
            old = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-old-", dir=self.cache.partial_dir))
            os.replace(final, old / "series")
        os.replace(self.dir, final)
        self.done = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return CachedSeries(**{**asdict(entry), "path": str(final)})


class SeriesCache:
    """The cache folder (see the module docstring)."""

    def __init__(self, root=None):
        self.root = Path(root) if root is not None else default_cache_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self._clean_partials()

    @property
    def partial_dir(self) -> Path:
        return self.root / PARTIAL

    def _clean_partials(self) -> None:
        if not self.partial_dir.is_dir():
            return
        for d in self.partial_dir.iterdir():
            pid = d.name.split("-", 1)[0]
            if not pid.isdigit() or not _pid_alive(int(pid)):
                shutil.rmtree(d, ignore_errors=True)

    def series_dir(self, study_uid: str, series_uid: str) -> Path:
        return self.root / _safe(study_uid) / _safe(series_uid)

    def entries(self) -> list[CachedSeries]:
        """Every complete series, sorted by patient, study date, series number."""
        out = []
        for js in self.root.glob(f"*/*/{SERIES_JSON}"):
            if js.parts[-3] == PARTIAL:
                continue
            try:
                d = json.loads(js.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            out.append(CachedSeries.from_dict({**d, "path": str(js.parent)}))
        return sorted(out, key=lambda e: (e.patient_id, e.study_date, e.study_uid, e.series_number or 0))

    def get(self, study_uid: str, series_uid: str) -> CachedSeries | None:
        js = self.series_dir(study_uid, series_uid) / SERIES_JSON
        if not js.is_file():
            return None
        d = json.loads(js.read_text(encoding="utf-8"))
        return CachedSeries.from_dict({**d, "path": str(js.parent)})

    def has_series(self, study_uid: str, series_uid: str) -> bool:
        return (self.series_dir(study_uid, series_uid) / SERIES_JSON).is_file()

    def study_series(self, study_uid: str) -> list[CachedSeries]:
        return [e for e in self.entries() if e.study_uid == study_uid]

    def begin(self, series: SeriesRecord, source: str = "") -> Staging:
        return Staging(self, series, source)

    def remove_series(self, study_uid: str, series_uid: str) -> bool:
        d = self.series_dir(study_uid, series_uid)
        if not d.exists():
            return False
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        trash = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-rm-", dir=self.partial_dir))
        os.replace(d, trash / "series")  # disappears from the index at once
        shutil.rmtree(trash, ignore_errors=True)
        try:
            d.parent.rmdir()
        except OSError:
            pass
        return True

    def partial_count(self) -> int:
        """Staging folders present now (0 when no retrieve is running)."""
        return sum(1 for _ in self.partial_dir.iterdir()) if self.partial_dir.is_dir() else 0

"""Transport-independent PACS operations: test, query, retrieve into the cache, send results back.

- `echo(node)` — C-ECHO (DIMSE) or a one-result QIDO-RS search (DICOMweb); seconds.
- `find(node, level, flt)` — patient / study / series records.
- `retrieve(node, items, cache)` — items are `PatientRecord`s, `StudyRecord`s or `SeriesRecord`s
  (mixed). Phase 1 (one query association): expand to series, drop those already in the cache
  (unless `force=True`), ask each remaining series' instance list (the count check's reference).
  Phase 2: `progress(0, total)`, then C-GET / C-MOVE / WADO-RS series by series into staging folders;
  each series is committed into the cache as soon as its final response came and every instance is
  there. Connection-level failures (unreachable, rejected, timeout, lost connection) and cancel stop
  the run at once — series finished before stay, the running one is discarded. Incomplete series do
  not stop the run: after it, `IncompleteSeriesError` lists them (how many of how many), with the
  `RetrieveResult` as `err.result`.
- `retrieve_patient(node, patient_id, cache)` — every study (visit) of one patient.
- `send(node, paths)` — C-STORE / STOW-RS result files (DICOM SR, Secondary Capture) into the
  patient's study. With `check_study=True` (default) each file's study must already be on the PACS
  under the same Patient ID, so a de-identified export (new UIDs, pseudonym) is refused with a clear
  message instead of starting a stray study.

`progress(done, total)` is called on the calling thread; `cancel()` → True stops at the next response.
Core module: no Qt, no VTK.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from pydicom import dcmread

from . import dicomweb, dimse
from .cache import CachedSeries, SeriesCache
from .dimse import FetchJob, FetchSink, StoreResult
from .errors import IncompleteSeriesError, PacsError
from .nodes import RemoteNode
from .records import PatientRecord, QueryFilter, SeriesRecord, StudyRecord

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


def _transport(node: RemoteNode):
    return dicomweb if node.transport == "dicomweb" else dimse


def echo(node: RemoteNode) -> float:
    """Test the node: C-ECHO (DIMSE) or a QIDO-RS search (DICOMweb). Seconds; raises PacsError."""
    return _transport(node.validated()).echo(node)


def find(node: RemoteNode, level: str, flt: QueryFilter | None = None, *, cancel: Cancel | None = None) -> list:
    return _transport(node.validated()).find(node, level, flt, cancel=cancel)


@dataclass
class RetrieveResult:
    retrieved: list[CachedSeries] = field(default_factory=list)
    skipped: list[CachedSeries] = field(default_factory=list)  # already in the cache
    incomplete: list[tuple[SeriesRecord, int, int]] = field(default_factory=list)  # (series, received, expected)
    empty: list[SeriesRecord] = field(default_factory=list)  # the PACS lists no instances
    notes: dict[str, str] = field(default_factory=dict)  # series UID → what the PACS said about a failed series

    @property
    def series(self) -> list[CachedSeries]:
        return self.retrieved + self.skipped

    @property
    def paths(self) -> list[str]:
        """The series folders to open (retrieved and skipped)."""
        return [s.path for s in self.series]


class _Sink(FetchSink):
    def __init__(self, result: RetrieveResult, total: int, progress: Progress | None):
        self.result, self.total, self.progress = result, total, progress
        self._done = 0
        self._lock = threading.Lock()

    def stored(self) -> None:
        with self._lock:
            self._done += 1

    def tick(self) -> None:
        if self.progress:
            with self._lock:
                done = self._done
            self.progress(min(done, self.total), self.total)

    def series_done(self, job: FetchJob) -> None:
        expected = [r.sop_uid for r in job.instances] if job.instances is not None else None
        try:
            entry = job.staging.commit(expected, job.series.n_instances if expected is None else None)
        except IncompleteSeriesError as exc:
            self.result.incomplete.append((job.series, exc.received, exc.expected))
            status = job.outcome.get("status")
            if status not in (None, 0):
                self.result.notes[job.series.series_uid] = f"the PACS answered {job.outcome.get('text')}"
            return
        self.result.retrieved.append(entry)


def _expand(q, items: Iterable) -> list[SeriesRecord]:
    out: list[SeriesRecord] = []
    seen: set[str] = set()

    def add(rs):
        for r in rs:
            if r.series_uid not in seen:
                seen.add(r.series_uid)
                out.append(r)

    for it in items:
        if isinstance(it, SeriesRecord):
            add([it])
        elif isinstance(it, StudyRecord):
            add(q.find("series", QueryFilter(study_uid=it.study_uid, patient_id=it.patient_id)))
        elif isinstance(it, PatientRecord):
            if not it.patient_id:
                raise PacsError("A patient without a Patient ID cannot be retrieved as a whole.")
            for st in q.find("study", QueryFilter(patient_id=it.patient_id)):
                add(q.find("series", QueryFilter(study_uid=st.study_uid, patient_id=st.patient_id)))
        else:
            raise TypeError(f"cannot retrieve {type(it).__name__}: pass patient, study or series records")
    return out


def retrieve(node: RemoteNode, items: Sequence, cache: SeriesCache, *, method: str | None = None,
             force: bool = False, progress: Progress | None = None, cancel: Cancel | None = None) -> RetrieveResult:
    """Bring `items` into `cache` (module docstring). `method`: "get" | "move" (DIMSE; default
    `node.retrieve`)."""
    node = node.validated()
    t = _transport(node)
    result = RetrieveResult()
    jobs: list[FetchJob] = []
    with t.QuerySession(node, cancel) as q:
        for s in _expand(q, items):
            cached = cache.get(s.study_uid, s.series_uid)
            if cached is not None and not force:
                result.skipped.append(cached)
                continue
            inst = q.instances(s)
            if inst is not None and not inst:
                result.empty.append(s)
                continue
            jobs.append(FetchJob(s, inst, None))
    total = sum(len(j.instances) if j.instances is not None else (j.series.n_instances or 0) for j in jobs)
    sink = _Sink(result, total, progress)
    if progress:
        progress(0, total)
    if jobs:
        for j in jobs:
            j.staging = cache.begin(j.series, node.name)
        try:
            t.fetch(node, jobs, sink, method=method or node.retrieve, cancel=cancel)
        except PacsError as err:
            err.result = result
            raise
        finally:
            for j in jobs:  # no-op for committed ones
                j.staging.discard()
    if result.incomplete:
        parts = [f"{s.label()}: {got} of {want}" + (f", {result.notes[s.series_uid]}" if s.series_uid in result.notes
                                                     else "") for s, got, want in result.incomplete]
        first_s, first_got, first_want = result.incomplete[0]
        err = IncompleteSeriesError(
            f"{len(result.incomplete)} series arrived incomplete from {node.name!r} ({'; '.join(parts)} instances). "
            f"Nothing of them was kept in the cache; {len(result.retrieved)} other series were retrieved. "
            "Retrieve again.", series_uid=first_s.series_uid, received=first_got, expected=first_want,
            incomplete=[(s.series_uid, g, w) for s, g, w in result.incomplete])
        err.result = result
        raise err
    return result


def retrieve_patient(node: RemoteNode, patient_id: str, cache: SeriesCache, **kw) -> RetrieveResult:
    """Every study (visit) of the patient with this exact Patient ID; keywords as in `retrieve`."""
    if not patient_id or not patient_id.strip():
        raise PacsError("No Patient ID given: cannot retrieve all visits.")
    return retrieve(node, [PatientRecord(patient_id.strip())], cache, **kw)


def send(node: RemoteNode, paths: Sequence, *, check_study: bool = True, progress: Progress | None = None,
         cancel: Cancel | None = None) -> StoreResult:
    """Send result files (SR, Secondary Capture, …) back; see the module docstring for `check_study`."""
    node = node.validated()
    paths = [str(p) for p in paths]
    t = _transport(node)
    if check_study and paths:
        studies: dict[str, tuple[str, str]] = {}
        for p in paths:
            try:
                ds = dcmread(p, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "PatientID"])
            except (OSError, ValueError) as exc:
                raise PacsError(f"Cannot read {p}: {exc}") from exc
            studies.setdefault(str(ds.get("StudyInstanceUID", "")), (str(ds.get("PatientID", "")), p))
        with t.QuerySession(node, cancel) as q:
            for study_uid, (pid, p) in studies.items():
                found = q.find("study", QueryFilter(study_uid=study_uid)) if study_uid else []
                if not found:
                    raise PacsError(
                        f"{p} belongs to a study that is not on PACS {node.name!r} (Study Instance UID "
                        f"{study_uid or 'missing'}); sending it would start a new study. A de-identified export "
                        "cannot go back into the patient's study: export with identifying data to send results.")
                if found[0].patient_id and pid != found[0].patient_id:
                    raise PacsError(f"{p} has Patient ID {pid!r} but its study on PACS {node.name!r} belongs to "
                                    f"{found[0].patient_id!r}; nothing was sent.")
    return t.store(node, paths, progress=progress, cancel=cancel)

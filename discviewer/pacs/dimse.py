"""DIMSE transport (pynetdicom): C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE against one `RemoteNode`.

- `echo(node)` → round-trip seconds.
- `QuerySession(node)` (a context manager holding one association): `find(level, QueryFilter)` at
  patient / study / series level (→ `PatientRecord` / `StudyRecord` / `SeriesRecord`), and
  `instances(series)` (IMAGE level: the SOP instance UIDs and classes a retrieve must bring).
  A series-level query without a study UID asks for the matching studies first, then their series
  (hierarchical query, what every PACS supports). `find(node, level, flt)` is the one-shot form.
- `fetch(node, jobs, sink, method=...)` — C-GET (we negotiate the SCP role for the storage SOP
  classes the image-level query found) or C-MOVE (a storage SCP of ours on `node.move_port`, AE
  title `node.calling_ae`, which the PACS must know), one request per series over one association.
  Received files go, as sent, into the series' `cache.Staging`; the caller commits them.
- `store(node, paths)` — C-STORE files (their SOP classes and transfer syntaxes proposed).

Failures are `discviewer.pacs.errors` exceptions: no TCP connection → `UnreachableError` (with the
OS reason), A-ASSOCIATE-RJ → `RejectedError` (both AE titles and the reason), no answer within
`node.timeout` → `PacsTimeoutError`, a lost connection or a failure status → `PacsError` /
`OperationError`. pynetdicom reports a DIMSE timeout and an aborted connection alike (an empty
status), so the two are told apart by the time waited.

Core module: stdlib + pydicom + pynetdicom.
"""
from __future__ import annotations

import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                         DeflatedExplicitVRLittleEndian)

from .errors import (CancelledError, OperationError, PacsError, PacsTimeoutError, RejectedError,
                     UnreachableError)
from .nodes import RemoteNode
from .records import (InstanceRecord, PatientRecord, QueryFilter, SeriesRecord, StudyRecord, contains)

Cancel = Callable[[], bool]

VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
# offered for C-GET storage sub-operations: uncompressed first, then the lossless and lossy codecs we read
RECEIVE_SYNTAXES = UNCOMPRESSED + [
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
]
# storage SOP classes proposed for C-GET when the PACS does not answer IMAGE-level queries
DEFAULT_STORAGE_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.128",  # PET
    "1.2.840.10008.5.1.4.1.1.1",  # CR
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray (presentation)
]
MAX_CONTEXTS = 128


def _ae(node: RemoteNode):
    from pynetdicom import AE

    ae = AE(ae_title=node.calling_ae)
    t = float(node.timeout)
    ae.acse_timeout = t
    ae.dimse_timeout = t
    ae.network_timeout = t
    ae.connection_timeout = t
    ae.maximum_associations = 4
    return ae


def _nodelay(event) -> None:
    """EVT_CONN_OPEN handler: switch Nagle's algorithm off. DIMSE is request/response with small PDUs;
    with Nagle and delayed ACKs every C-STORE waits ~40 ms (measured: 88 → 8 ms per instance)."""
    try:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass


def _guard_responses(assoc) -> None:
    """Work around a race in pynetdicom (issue pydicom/pynetdicom#875, seen here under CPU load):
    `send_c_*` pauses the association's reactor thread by watching a flag the reactor sets just before
    it blocks, so a reactor that already passed that point can still take the peer's *response* off
    the DIMSE queue, log "Received unexpected C-FIND service message" and drop it — a C-FIND then
    silently misses a match. We put such a response back at the head of the queue (where it was), once
    per message; a genuinely unexpected response is still dropped the second time."""
    original = assoc._serve_request

    def serve(msg, context_id):
        if not getattr(msg, "is_valid_request", True) and not getattr(msg, "_discviewer_requeued", False) \
                and not getattr(assoc, "_sent_release", False):
            msg._discviewer_requeued = True
            q = assoc.dimse.msg_queue
            with q.mutex:
                q.queue.appendleft((context_id, msg))
                q.unfinished_tasks += 1
                q.not_empty.notify()
            return
        original(msg, context_id)

    assoc._serve_request = serve


def _connect_reason(host: str, port: int, timeout: float) -> str:
    """Why a TCP connection to host:port fails (None-like '' if it now succeeds)."""
    try:
        s = socket.create_connection((host, port), timeout=min(timeout, 5.0))
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror or exc})"
    except ConnectionRefusedError:
        return "connection refused (nothing listens on that port)"
    except (socket.timeout, TimeoutError):
        return f"no answer to the connection within {min(timeout, 5.0):g} s"
    except OSError as exc:
        return exc.strerror or str(exc)
    s.close()
    return ""


def _rejected(node: RemoteNode, assoc, purpose: str) -> RejectedError:
    p = assoc.acceptor.primitive
    reason = getattr(p, "reason_str", "") or "no reason given"
    source = getattr(p, "source_str", "") or ""
    result = getattr(p, "result_str", "") or ""
    detail = reason + (f" ({result.lower()}, from the {source.lower()})" if result or source else "")
    return RejectedError(
        f"PACS {node.name!r} at {node.host}:{node.port} rejected the association for {purpose}: {detail}. "
        f"We asked for called AE title {node.called_ae!r} as calling AE title {node.calling_ae!r}: check "
        "that the PACS has this AE title and knows ours.",
        called_ae=node.called_ae, calling_ae=node.calling_ae, reason=reason)


@contextmanager
def associate(node: RemoteNode, contexts: Sequence[tuple[str, Sequence[str]]], *, purpose: str,
              ext_neg=None, evt_handlers=None):
    """An established pynetdicom Association to `node` proposing `contexts` [(abstract, [ts…])],
    released (or aborted) on exit; failures raise the PacsError subclasses of the module docstring."""
    node = node.validated()
    if len(contexts) > MAX_CONTEXTS:
        raise PacsError(f"too many SOP classes for one association ({len(contexts)} > {MAX_CONTEXTS})")
    ae = _ae(node)
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, list(syntaxes))
    from pynetdicom import evt

    opened: list[bool] = []
    def on_open(event):
        opened.append(True)
        _nodelay(event)

    handlers = [(evt.EVT_CONN_OPEN, on_open)] + list(evt_handlers or [])
    t0 = time.monotonic()
    assoc = ae.associate(node.host, node.port, ae_title=node.called_ae, ext_neg=ext_neg, evt_handlers=handlers)
    waited = time.monotonic() - t0
    if not assoc.is_established:
        if assoc.is_rejected:
            raise _rejected(node, assoc, purpose)
        if not opened:
            raise UnreachableError(node.host, node.port,
                                   _connect_reason(node.host, node.port, node.timeout) or "the connection failed",
                                   node.name)
        p = assoc.acceptor.primitive
        if p is not None and getattr(p, "result", None) == 0:
            raise RejectedError(
                f"PACS {node.name!r} ({node.called_ae}@{node.host}:{node.port}) accepted the association but "
                f"none of the services needed for {purpose}.", called_ae=node.called_ae,
                calling_ae=node.calling_ae, reason="no presentation context accepted")
        if waited >= 0.8 * node.timeout:
            raise PacsTimeoutError(
                f"PACS {node.name!r} at {node.host}:{node.port} accepted the connection but did not answer the "
                f"association request ({node.calling_ae} → {node.called_ae}) within {node.timeout:g} s.")
        raise PacsError(f"PACS {node.name!r} at {node.host}:{node.port} closed the connection during the "
                        f"association request ({node.calling_ae} → {node.called_ae}).")
    _guard_responses(assoc)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            try:
                assoc.release()
            except Exception:  # noqa: BLE001 — best effort
                assoc.abort()
        ae.shutdown()


class _Responses:
    """Iterate a pynetdicom response generator, turning an empty status into a timeout / lost-connection
    error and honouring `cancel` between responses (the association is aborted)."""

    def __init__(self, node: RemoteNode, assoc, what: str, cancel: Cancel | None):
        self.node, self.assoc, self.what, self.cancel = node, assoc, what, cancel

    def __call__(self, gen):
        last = time.monotonic()
        for status, identifier in gen:
            if status is None or "Status" not in status:
                if time.monotonic() - last >= 0.8 * self.node.timeout:
                    raise PacsTimeoutError(
                        f"PACS {self.node.name!r} at {self.node.host}:{self.node.port} stopped answering during "
                        f"{self.what}: no response within {self.node.timeout:g} s.")
                raise PacsError(f"The connection to PACS {self.node.name!r} at {self.node.host}:{self.node.port} "
                                f"was lost during {self.what} (aborted or closed by the PACS).")
            last = time.monotonic()
            yield status, identifier
            if self.cancel is not None and self.cancel():
                self.assoc.abort()
                raise CancelledError(f"{self.what[0].upper()}{self.what[1:]} cancelled.")


def _status_text(status: Dataset) -> str:
    code = int(status.Status)
    comment = str(status.get("ErrorComment", "") or "").strip()
    return f"status 0x{code:04X}" + (f" ({comment})" if comment else "")


# ------------------------------------------------------------------------------------------ echo
def echo(node: RemoteNode) -> float:
    """C-ECHO; the round trip in seconds (association included)."""
    t0 = time.monotonic()
    with associate(node, [(VERIFICATION, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])],
                   purpose="verification (C-ECHO)") as assoc:
        status = assoc.send_c_echo()
        if status is None or "Status" not in status:
            raise PacsTimeoutError(f"PACS {node.name!r} did not answer the C-ECHO within {node.timeout:g} s.")
        if int(status.Status) != 0:
            raise OperationError(f"PACS {node.name!r} answered the C-ECHO with {_status_text(status)}.",
                                 status=int(status.Status))
    return time.monotonic() - t0


# ------------------------------------------------------------------------------------------ find
def _identifier(level: str, flt: QueryFilter) -> Dataset:
    f = flt.normalised()
    ds = Dataset()
    ds.QueryRetrieveLevel = {"patient": "PATIENT", "study": "STUDY", "series": "SERIES", "image": "IMAGE"}[level]
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientID = f.patient_id
    ds.PatientName = contains(f.patient_name)
    if level == "patient":
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.NumberOfPatientRelatedStudies = None
        return ds
    ds.StudyInstanceUID = f.study_uid
    if level == "study":
        ds.StudyDate = f.date_range
        ds.StudyTime = ""
        ds.StudyDescription = contains(f.description)
        ds.AccessionNumber = ""
        ds.ModalitiesInStudy = f.modality
        ds.NumberOfStudyRelatedSeries = None
        ds.NumberOfStudyRelatedInstances = None
        return ds
    ds.SeriesInstanceUID = f.series_uid
    if level == "series":
        ds.StudyDate = ""
        ds.Modality = f.modality
        ds.SeriesNumber = None
        ds.SeriesDescription = contains(f.description)
        ds.NumberOfSeriesRelatedInstances = None
        return ds
    ds.SOPInstanceUID = ""
    ds.SOPClassUID = ""
    ds.InstanceNumber = None
    return ds


class QuerySession:
    """One association for a run of C-FINDs (context manager)."""

    def __init__(self, node: RemoteNode, cancel: Cancel | None = None):
        self.node = node.validated()
        self.cancel = cancel
        self._cm = None
        self.assoc = None

    def __enter__(self) -> "QuerySession":
        syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        self._cm = associate(self.node, [(PATIENT_ROOT_FIND, syntaxes), (STUDY_ROOT_FIND, syntaxes)],
                             purpose="queries (C-FIND)")
        self.assoc = self._cm.__enter__()
        return self

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)

    def _c_find(self, identifier: Dataset, model: str, what: str) -> list[Dataset]:
        accepted = {cx.abstract_syntax for cx in self.assoc.accepted_contexts}
        if model not in accepted:
            raise OperationError(f"PACS {self.node.name!r} does not offer {what} "
                                 f"({'patient' if model == PATIENT_ROOT_FIND else 'study'} root C-FIND).")
        out = []
        for status, ds in _Responses(self.node, self.assoc, what, self.cancel)(
                self.assoc.send_c_find(identifier, model)):
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                if ds is not None:
                    out.append(ds)
            elif code != 0:
                raise OperationError(f"PACS {self.node.name!r} answered {what} with {_status_text(status)}.",
                                     status=code)
        return out

    def find(self, level: str, flt: QueryFilter | None = None) -> list:
        """Records at `level` ("patient", "study", "series") matching `flt`."""
        flt = (flt or QueryFilter()).normalised()
        if level == "patient":
            if flt.patient_only and PATIENT_ROOT_FIND in {cx.abstract_syntax for cx in self.assoc.accepted_contexts}:
                rows = self._c_find(_identifier("patient", flt), PATIENT_ROOT_FIND, "the patient query")
                return sorted({PatientRecord.from_dataset(d) for d in rows},
                              key=lambda r: (r.patient_name, r.patient_id))
            return _patients_of(self.find("study", flt))
        if level == "study":
            rows = self._c_find(_identifier("study", flt), STUDY_ROOT_FIND, "the study query")
            return sorted({StudyRecord.from_dataset(d) for d in rows},
                          key=lambda r: (r.patient_id, r.study_date, r.study_time, r.study_uid))
        if level == "series":
            if flt.study_uid:
                # the study record fills patient, date and study description into the series records
                studies = (self.find("study", QueryFilter(study_uid=flt.study_uid, patient_id=flt.patient_id))
                           or [StudyRecord(flt.study_uid, flt.patient_id)])
            else:
                studies = self.find("study", QueryFilter(patient_id=flt.patient_id, patient_name=flt.patient_name,
                                                         date_from=flt.date_from, date_to=flt.date_to))
            out = []
            for st in studies:
                sflt = QueryFilter(study_uid=st.study_uid, series_uid=flt.series_uid, modality=flt.modality,
                                   description=flt.description)
                rows = self._c_find(_identifier("series", sflt), STUDY_ROOT_FIND, "the series query")
                out += [SeriesRecord.from_dataset(d, st) for d in rows]
            return sorted(set(out), key=lambda r: (r.patient_id, r.study_date, r.study_uid, r.series_number or 0))
        raise ValueError(f"level must be one of patient, study, series, not {level!r}")

    def instances(self, series: SeriesRecord) -> list[InstanceRecord] | None:
        """The SOP instances of a series (IMAGE level); None if the PACS refuses IMAGE-level queries."""
        try:
            rows = self._c_find(_identifier("image", QueryFilter(study_uid=series.study_uid,
                                                                 series_uid=series.series_uid)),
                                STUDY_ROOT_FIND, "the instance query")
        except OperationError:
            return None
        recs = {InstanceRecord.from_dataset(d) for d in rows}
        return sorted((r for r in recs if r.sop_uid), key=lambda r: (r.instance_number or 0, r.sop_uid))


def _patients_of(studies: Iterable[StudyRecord]) -> list[PatientRecord]:
    by: dict[str, list[StudyRecord]] = {}
    for s in studies:
        by.setdefault(s.patient_id, []).append(s)
    return sorted((PatientRecord(pid, ss[0].patient_name, n_studies=len(ss)) for pid, ss in by.items()),
                  key=lambda r: (r.patient_name, r.patient_id))


def find(node: RemoteNode, level: str, flt: QueryFilter | None = None, *, cancel: Cancel | None = None) -> list:
    """One-shot `QuerySession.find`."""
    with QuerySession(node, cancel) as q:
        return q.find(level, flt)


# ------------------------------------------------------------------------------------------ retrieve
@dataclass
class FetchJob:
    """One series to bring: what the PACS said it holds, and where its files go."""

    series: SeriesRecord
    instances: list[InstanceRecord] | None  # None: unknown (count from NumberOfSeriesRelatedInstances)
    staging: object  # cache.Staging
    outcome: dict = field(default_factory=dict)  # completed / failed / warning sub-operations, status text


class FetchSink:
    """What `fetch` reports to: `stored()` per received instance (any thread), `tick()` on the calling
    thread after each PACS response, `series_done(job)` after each series' final response."""

    def stored(self) -> None: ...

    def tick(self) -> None: ...

    def series_done(self, job: FetchJob) -> None: ...


def _store_handler(jobs_by_series: dict, current: dict, sink: FetchSink, node: RemoteNode):
    def handle(event):
        try:
            ds = event.dataset
            series_uid = str(ds.get("SeriesInstanceUID", ""))
            job = jobs_by_series.get(series_uid) or current.get("job")
            if job is None or series_uid != job.series.series_uid:
                return 0xA900  # not a series we asked for: "dataset does not match SOP class" is the closest
            job.staging.write(str(event.request.AffectedSOPInstanceUID or ds.SOPInstanceUID),
                              event.encoded_dataset())
            sink.stored()
            return 0x0000
        except Exception:  # noqa: BLE001 — answer the PACS, don't kill the association thread
            return 0xA700  # out of resources (e.g. disk full)
    return handle


def _counts(status: Dataset) -> dict:
    return {"completed": int(status.get("NumberOfCompletedSuboperations", 0) or 0),
            "failed": int(status.get("NumberOfFailedSuboperations", 0) or 0),
            "warning": int(status.get("NumberOfWarningSuboperations", 0) or 0),
            "remaining": int(status.get("NumberOfRemainingSuboperations", 0) or 0)}


def _retrieve_identifier(series: SeriesRecord) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = series.study_uid
    ds.SeriesInstanceUID = series.series_uid
    return ds


def _move_bind_address(node: RemoteNode) -> str:
    return "127.0.0.1" if node.host in ("127.0.0.1", "localhost", "::1") else ""


def fetch(node: RemoteNode, jobs: Sequence[FetchJob], sink: FetchSink, *, method: str = "get",
          cancel: Cancel | None = None) -> None:
    """Retrieve every job's series into its staging folder with C-GET or C-MOVE (module docstring).

    Raises on connection-level failures; a series the PACS reports as failed, or that arrives short,
    is left to the caller's count check (`job.outcome` holds the sub-operation counts)."""
    node = node.validated()
    if not jobs:
        return
    if method not in ("get", "move"):
        raise ValueError(f"method must be 'get' or 'move', not {method!r}")
    jobs_by_series = {j.series.series_uid: j for j in jobs}
    current: dict = {}
    from pynetdicom import build_role, evt

    handler = _store_handler(jobs_by_series, current, sink, node)
    syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    server = None
    if method == "get":
        classes: list[str] = []
        for j in jobs:
            for r in j.instances or []:
                if r.sop_class_uid and r.sop_class_uid not in classes:
                    classes.append(r.sop_class_uid)
        if any(j.instances is None for j in jobs) or not classes:
            classes += [c for c in DEFAULT_STORAGE_CLASSES if c not in classes]
        classes = classes[:MAX_CONTEXTS - 1]
        contexts = [(STUDY_ROOT_GET, syntaxes)] + [(c, RECEIVE_SYNTAXES) for c in classes]
        roles = [build_role(c, scp_role=True) for c in classes]
        cm = associate(node, contexts, purpose="retrieve (C-GET)", ext_neg=roles,
                       evt_handlers=[(evt.EVT_C_STORE, handler)])
        model, what = STUDY_ROOT_GET, "C-GET"
    else:
        from pynetdicom import AE, AllStoragePresentationContexts

        scp = AE(ae_title=node.calling_ae)
        for cx in AllStoragePresentationContexts:
            scp.add_supported_context(cx.abstract_syntax, RECEIVE_SYNTAXES)
        scp.acse_timeout = scp.dimse_timeout = scp.network_timeout = float(node.timeout)
        scp.require_called_aet = True
        try:
            server = scp.start_server((_move_bind_address(node), node.move_port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, handler), (evt.EVT_CONN_OPEN, _nodelay)])
        except OSError as exc:
            raise PacsError(f"Cannot receive C-MOVE: port {node.move_port} is not free on this machine "
                            f"({exc.strerror or exc}). Choose another port, or use C-GET.") from exc
        cm = associate(node, [(STUDY_ROOT_MOVE, syntaxes)], purpose="retrieve (C-MOVE)")
        model, what = STUDY_ROOT_MOVE, "C-MOVE"
    try:
        with cm as assoc:
            for job in jobs:
                current["job"] = job
                desc = f"the {what} of series {job.series.label()}"
                if method == "get":
                    gen = assoc.send_c_get(_retrieve_identifier(job.series), model)
                else:
                    gen = assoc.send_c_move(_retrieve_identifier(job.series), node.calling_ae, model)
                final = None
                for status, _ident in _Responses(node, assoc, desc, cancel)(gen):
                    sink.tick()
                    final = status
                    if int(status.Status) not in (0xFF00, 0xFF01):
                        break
                code = int(final.Status) if final is not None else -1
                job.outcome = {**(_counts(final) if final is not None else {}), "status": code,
                               "text": _status_text(final) if final is not None else "no answer"}
                nothing = job.outcome.get("completed", 0) == 0 and not job.staging.received
                if method == "move" and (code == 0xA801 or (nothing and code not in (0x0000, 0xB000))):
                    known = "does not know" if code == 0xA801 else "could not send to"
                    raise OperationError(
                        f"PACS {node.name!r} {known} the C-MOVE destination {node.calling_ae!r} "
                        f"({_status_text(final)}): the PACS must list this AE title with this computer's address "
                        f"and port {node.move_port}; or use C-GET.", status=code)
                if code == 0xFE00:
                    raise CancelledError(f"The PACS cancelled {desc}.")
                # any other status (success, warning, failure) is judged by the caller's count check
                current.pop("job", None)
                sink.series_done(job)
    finally:
        if server is not None:
            server.shutdown()


# ------------------------------------------------------------------------------------------ store
@dataclass
class StoreResult:
    stored: list[str] = field(default_factory=list)  # SOP Instance UIDs
    warnings: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def _file_classes(paths: Sequence[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in paths:
        ds = dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        sop = str(ds.file_meta.get("MediaStorageSOPClassUID", "") or ds.get("SOPClassUID", ""))
        ts = str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
        if not sop:
            raise PacsError(f"{p} is not a DICOM file with a SOP class; nothing was sent.")
        out.setdefault(sop, set()).add(ts)
    return out


def store(node: RemoteNode, paths: Sequence, *, progress: Callable[[int, int], None] | None = None,
          cancel: Cancel | None = None) -> StoreResult:
    """C-STORE `paths` (DICOM files) to `node`; raises OperationError listing what failed, with the
    partial `StoreResult` as `err.result`."""
    node = node.validated()
    paths = [str(p) for p in paths]
    if not paths:
        return StoreResult()
    try:
        classes = _file_classes(paths)
    except (OSError, ValueError) as exc:
        raise PacsError(f"Cannot read the files to send: {exc}") from exc
    contexts = []
    for sop, tss in classes.items():
        ts = sorted(tss) + [t for t in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) if t not in tss]
        contexts.append((sop, ts))
    result = StoreResult()
    if progress:
        progress(0, len(paths))
    with associate(node, contexts, purpose="sending (C-STORE)") as assoc:
        for i, p in enumerate(paths):
            if cancel is not None and cancel():
                assoc.abort()
                err = CancelledError(f"Sending cancelled after {len(result.stored)} of {len(paths)} files.")
                err.result = result
                raise err
            t0 = time.monotonic()
            try:
                status = assoc.send_c_store(p)
            except ValueError as exc:  # no accepted context for this SOP class / syntax
                result.failed.append((p, str(exc)))
                continue
            if status is None or "Status" not in status:
                err = (PacsTimeoutError(f"PACS {node.name!r} did not answer the C-STORE of {p} within "
                                        f"{node.timeout:g} s.") if time.monotonic() - t0 >= 0.8 * node.timeout
                       else PacsError(f"The connection to PACS {node.name!r} was lost while sending {p}."))
                err.result = result
                raise err
            code = int(status.Status)
            sop = str(dcmread(p, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
            if code == 0:
                result.stored.append(sop)
            elif code in (0xB000, 0xB007, 0xB006):
                result.stored.append(sop)
                result.warnings.append(f"{p}: {_status_text(status)}")
            else:
                result.failed.append((p, _status_text(status)))
            if progress:
                progress(i + 1, len(paths))
    if result.failed:
        err = OperationError(f"PACS {node.name!r} did not store {len(result.failed)} of {len(paths)} files: "
                             + "; ".join(f"{p}: {r}" for p, r in result.failed[:3])
                             + (" …" if len(result.failed) > 3 else ""))
        err.result = result
        raise err
    return result

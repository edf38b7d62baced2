"""DICOMweb transport: QIDO-RS search, WADO-RS retrieve and STOW-RS store against one `RemoteNode`
(`transport="dicomweb"`, `url` = the DICOMweb root, e.g. http://pacs:8042/dicom-web).

Same surface as `discviewer.pacs.dimse` so `discviewer.pacs.client` can use either: `echo`,
`QuerySession` (`find`, `instances`), `fetch(node, jobs, sink)`, `store(node, paths)`.
WADO-RS and STOW-RS go through **dicomweb-client** (ImagingDataCommons, the authors of highdicom): it
does the multipart/related encoding and decoding; QIDO-RS is a plain `requests` GET (see `qido`); we add the
timeouts, turn its `requests` exceptions into `discviewer.pacs.errors` (refused / DNS → unreachable,
401/403 → rejected, read timeout → timeout, other HTTP errors → OperationError) and switch its
automatic retries off (a user waiting at a dialog wants the error, not five silent retries).

QIDO-RS has no patient level: patients are the distinct patients of the matching studies.
WADO-RS asks for the stored transfer syntax (`transfer-syntax=*`), so pixel data arrive as stored.

Core module: stdlib + pydicom + dicomweb-client (requests).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Sequence
from urllib.parse import urlparse

from pydicom import dcmread
from pydicom.dataset import Dataset

from .dimse import FetchJob, FetchSink, StoreResult, _patients_of
from .errors import (CancelledError, OperationError, PacsError, PacsTimeoutError, RejectedError,
                     UnreachableError)
from .nodes import RemoteNode
from .records import InstanceRecord, QueryFilter, SeriesRecord, StudyRecord, contains

Cancel = Callable[[], bool]
STOW_BATCH = 16  # instances per STOW-RS request (progress and cancel between batches)

_STUDY_FIELDS = ["PatientID", "PatientName", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber",
                 "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"]
_SERIES_FIELDS = ["Modality", "SeriesNumber", "SeriesDescription", "NumberOfSeriesRelatedInstances",
                  "StudyDate", "PatientID", "PatientName"]


def _host_port(node: RemoteNode) -> tuple[str, int]:
    u = urlparse(node.url)
    return u.hostname or "", u.port or (443 if u.scheme == "https" else 80)


def client(node: RemoteNode):
    """A dicomweb_client.DICOMwebClient for the node (timeouts set, retries off)."""
    from dicomweb_client import DICOMwebClient

    node = node.validated()
    c = DICOMwebClient(url=node.url, timeout=float(node.timeout))
    c.set_http_retry_params(retry=False)
    return c


@contextmanager
def _http(node: RemoteNode, what: str):
    """Map requests / dicomweb-client failures to PacsError subclasses."""
    import requests

    host, port = _host_port(node)
    try:
        yield
    except requests.exceptions.ConnectTimeout as exc:
        raise UnreachableError(host, port, f"no answer to the connection within {node.timeout:g} s",
                               node.name) from exc
    except requests.exceptions.ReadTimeout as exc:
        raise PacsTimeoutError(f"DICOMweb server {node.name!r} ({node.url}) stopped answering during {what}: "
                               f"no response within {node.timeout:g} s.") from exc
    except requests.exceptions.ConnectionError as exc:
        text = str(exc)
        reason = ("connection refused (nothing listens on that port)" if "refused" in text.lower()
                  else "unknown host" if "resolve" in text.lower() or "Name or service" in text
                  else "the connection failed or was lost")
        if "RemoteDisconnected" in text or "reset" in text.lower() or "IncompleteRead" in text:
            raise PacsError(f"The connection to DICOMweb server {node.name!r} ({node.url}) was lost during "
                            f"{what}.") from exc
        raise UnreachableError(host, port, reason, node.name) from exc
    except requests.exceptions.HTTPError as exc:
        r = exc.response
        code = r.status_code if r is not None else None
        if code in (401, 403):
            raise RejectedError(f"DICOMweb server {node.name!r} ({node.url}) refused {what}: HTTP {code} "
                                f"{r.reason if r is not None else ''}: check the user name and password or the "
                                "server's access rules.", reason=f"HTTP {code}") from exc
        raise OperationError(f"DICOMweb server {node.name!r} ({node.url}) answered {what} with HTTP {code} "
                             f"{r.reason if r is not None else ''}.", status=code) from exc
    except requests.exceptions.RequestException as exc:
        raise PacsError(f"DICOMweb request to {node.name!r} ({node.url}) failed during {what}: {exc}") from exc


def qido(node: RemoteNode, path: str, params: dict, what: str) -> list[Dataset]:
    """GET a QIDO-RS resource (`studies`, `studies/{uid}/series`, …) with `params`; the JSON results as
    Datasets. Done here rather than by dicomweb-client because `requests` percent-encodes the `*` of
    wildcard matching and Orthanc's DICOMweb plugin (1.7) then matches a literal "%2A"; `*` is legal
    unescaped in a query string, so we send it as is."""
    import requests
    from urllib.parse import urlencode

    query = urlencode([(k, v) for k, v in params.items() if v not in ("", None)], doseq=True, safe="*,")
    url = f"{node.url}/{path}" + (f"?{query}" if query else "")
    with _http(node, what):
        r = requests.get(url, headers={"Accept": "application/dicom+json"}, timeout=float(node.timeout))
        r.raise_for_status()
        if r.status_code == 204 or not r.content.strip():
            return []
        return _datasets(r.json())


def _datasets(items) -> list[Dataset]:
    return [Dataset.from_json(d) for d in items or []]


def echo(node: RemoteNode) -> float:
    """A one-result QIDO-RS study search: proves the server answers DICOMweb; seconds taken."""
    t0 = time.monotonic()
    qido(node.validated(), "studies", {"limit": 1}, "a test query")
    return time.monotonic() - t0


class QuerySession:
    """QIDO-RS queries (context manager for symmetry with the DIMSE session)."""

    def __init__(self, node: RemoteNode, cancel: Cancel | None = None):
        self.node = node.validated()
        self.cancel = cancel

    def __enter__(self) -> "QuerySession":
        return self

    def __exit__(self, *exc):
        return False

    def _check_cancel(self, what: str) -> None:
        if self.cancel is not None and self.cancel():
            raise CancelledError(f"{what} cancelled.")

    def find(self, level: str, flt: QueryFilter | None = None) -> list:
        flt = (flt or QueryFilter()).normalised()
        if level == "patient":
            return _patients_of(self.find("study", flt))
        if level == "study":
            params = {"PatientID": flt.patient_id, "PatientName": contains(flt.patient_name),
                      "StudyDate": flt.date_range, "ModalitiesInStudy": flt.modality,
                      "StudyDescription": contains(flt.description), "StudyInstanceUID": flt.study_uid,
                      "includefield": _STUDY_FIELDS}
            rows = qido(self.node, "studies", params, "the study search (QIDO-RS)")
            self._check_cancel("The search")
            return sorted({StudyRecord.from_dataset(d) for d in rows},
                          key=lambda r: (r.patient_id, r.study_date, r.study_time, r.study_uid))
        if level == "series":
            if flt.study_uid:
                studies = self.find("study", QueryFilter(study_uid=flt.study_uid)) or [StudyRecord(flt.study_uid)]
            else:
                studies = self.find("study", QueryFilter(patient_id=flt.patient_id, patient_name=flt.patient_name,
                                                         date_from=flt.date_from, date_to=flt.date_to))
            out = []
            for st in studies:
                params = {"Modality": flt.modality, "SeriesDescription": contains(flt.description),
                          "SeriesInstanceUID": flt.series_uid, "includefield": _SERIES_FIELDS}
                rows = qido(self.node, f"studies/{st.study_uid}/series", params, "the series search (QIDO-RS)")
                self._check_cancel("The search")
                out += [SeriesRecord.from_dataset(d, st) for d in rows]
            return sorted(set(out), key=lambda r: (r.patient_id, r.study_date, r.study_uid, r.series_number or 0))
        raise ValueError(f"level must be one of patient, study, series, not {level!r}")

    def instances(self, series: SeriesRecord) -> list[InstanceRecord] | None:
        rows = qido(self.node, f"studies/{series.study_uid}/series/{series.series_uid}/instances",
                    {"includefield": ["SOPClassUID", "InstanceNumber"]}, "the instance search (QIDO-RS)")
        recs = {InstanceRecord.from_dataset(d) for d in rows}
        return sorted((r for r in recs if r.sop_uid), key=lambda r: (r.instance_number or 0, r.sop_uid))


def find(node: RemoteNode, level: str, flt: QueryFilter | None = None, *, cancel: Cancel | None = None) -> list:
    with QuerySession(node, cancel) as q:
        return q.find(level, flt)


def fetch(node: RemoteNode, jobs: Sequence[FetchJob], sink: FetchSink, *, method: str = "get",
          cancel: Cancel | None = None) -> None:
    """WADO-RS each job's series into its staging folder (`method` is ignored: there is one way)."""
    node = node.validated()
    c = client(node)
    for job in jobs:
        what = f"the retrieve (WADO-RS) of series {job.series.label()}"
        n = 0
        with _http(node, what):
            try:
                try:
                    it = c.iter_series(job.series.study_uid, job.series.series_uid,
                                       media_types=(("application/dicom", "*"),))
                except Exception as exc:  # noqa: BLE001 — some servers refuse "any transfer syntax" (406)
                    code = getattr(getattr(exc, "response", None), "status_code", None)
                    if code not in (400, 406):
                        raise
                    it = c.iter_series(job.series.study_uid, job.series.series_uid)  # explicit VR little endian
                for ds in it:
                    job.staging.write_dataset(ds)
                    n += 1
                    sink.stored()
                    sink.tick()
                    if cancel is not None and cancel():
                        raise CancelledError("Retrieve cancelled.")
            except (ValueError, EOFError) as exc:  # a multipart stream cut off half-way
                job.outcome = {"completed": n, "status": -1, "text": f"the stream broke off: {exc}"}
                sink.series_done(job)
                continue
        job.outcome = {"completed": n, "status": 0, "text": "HTTP 200"}
        sink.series_done(job)


def store(node: RemoteNode, paths: Sequence, *, progress: Callable[[int, int], None] | None = None,
          cancel: Cancel | None = None) -> StoreResult:
    """STOW-RS `paths` in batches; raises OperationError listing failures (partial result as err.result)."""
    node = node.validated()
    paths = [str(p) for p in paths]
    result = StoreResult()
    c = client(node)
    if progress:
        progress(0, len(paths))
    for i in range(0, len(paths), STOW_BATCH):
        if cancel is not None and cancel():
            err = CancelledError(f"Sending cancelled after {len(result.stored)} of {len(paths)} files.")
            err.result = result
            raise err
        batch = paths[i:i + STOW_BATCH]
        try:
            datasets = [dcmread(p) for p in batch]
        except (OSError, ValueError) as exc:
            raise PacsError(f"Cannot read the files to send: {exc}") from exc
        try:
            with _http(node, "sending (STOW-RS)"):
                rsp = c.store_instances(datasets)
        except PacsError as err:
            err.result = result
            raise
        failed = {str(it.get("ReferencedSOPInstanceUID", "")): int(it.get("FailureReason", 0) or 0)
                  for it in (rsp.get("FailedSOPSequence", []) if rsp is not None else [])}
        for p, ds in zip(batch, datasets):
            uid = str(ds.SOPInstanceUID)
            if uid in failed:
                result.failed.append((p, f"failure reason 0x{failed[uid]:04X}"))
            else:
                result.stored.append(uid)
        if progress:
            progress(min(i + STOW_BATCH, len(paths)), len(paths))
    if result.failed:
        err = OperationError(f"DICOMweb server {node.name!r} did not store {len(result.failed)} of {len(paths)} "
                             "files: " + "; ".join(f"{p}: {r}" for p, r in result.failed[:3]))
        err.result = result
        raise err
    return result

"""Background jobs (scan, load) on QThreads, with throttled progress and cooperative cancel.

A `Job` runs `fn(progress, cancel)` off the GUI thread. `progress(done, total)` is forwarded
as the `progressed(request_id, done, total)` signal (throttled, so a scan of 10 000 files does
not flood the event loop); `cancel()` returns True once `Job.cancel()` was called. Exactly one
of `succeeded(request_id, result)`, `failed(request_id, message)` or `cancelled(request_id)`
is emitted at the end. Signals reach GUI-thread receivers
through queued connections, so results are applied on the GUI thread; the receiver decides
whether a result is still current by comparing `Job.request_id` with its latest request
(stale results are dropped, never applied).

An `Exception` raised by `fn` is expected (a broken file, a missing codec …): it becomes `failed`.
Anything else escaping `run` — a `BaseException` that is not an `Exception` raised by `fn`, or an
error in the job's own bookkeeping — is a bug: the job still ends with `failed` (so no receiver waits
for ever) and the exception goes to the crash handler (`crash_ui.report_unhandled` →
`sys.excepthook`), which handles it on the GUI thread.

The default scan/load functions import `discviewer.io` lazily, so the UI can be built and
tested with injected fakes while the io layer is absent.
"""
from __future__ import annotations

import itertools
import threading
import time
import traceback
from typing import Any, Callable, Sequence

from PySide6 import QtCore

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]
ScanFn = Callable[..., Any]  # scan(path, *, progress=None, cancel=None) -> ScanResult
LoadFn = Callable[..., Any]  # load(candidate, *, progress=None) -> Volume

_request_ids = itertools.count(1)


def default_scan(path, *, progress=None, cancel=None):
    """`discviewer.io.scan`, imported on first use."""
    from discviewer.io import scan

    return scan(path, progress=progress, cancel=cancel)


def default_load(candidate, *, progress=None):
    """`discviewer.io.load`, imported on first use."""
    from discviewer.io import load

    return load(candidate, progress=progress)


class Job(QtCore.QThread):
    """Run `fn(progress, cancel)` in a thread; report progress and exactly one outcome."""

    progressed = QtCore.Signal(int, int, int)  # (request_id, done, total)
    succeeded = QtCore.Signal(int, object)  # (request_id, result)
    failed = QtCore.Signal(int, str)  # (request_id, message)
    cancelled = QtCore.Signal(int)  # (request_id)
    item_ready = QtCore.Signal(int, object, object)  # (request_id, key, result) — multi-item jobs

    PROGRESS_INTERVAL_S = 0.05

    def __init__(self, fn: Callable[[ProgressFn, CancelFn], Any], *, kind: str = "job",
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.request_id = next(_request_ids)
        self.kind = kind
        self._fn = fn
        self._cancel_event = threading.Event()
        self._last_emit = 0.0
        self.outcome: str | None = None  # "succeeded" | "failed" | "cancelled" once done

    # -- called from any thread -------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the job to stop; the function sees it through its `cancel()` callback."""
        self._cancel_event.set()

    def is_cancelled(self) -> bool:
        return self._cancel_event.is_set()

    # -- worker thread ------------------------------------------------------------------------
    def _report(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last_emit >= self.PROGRESS_INTERVAL_S:
            self._last_emit = now
            self.progressed.emit(self.request_id, int(done), int(total))

    def run(self) -> None:  # noqa: D401 - QThread API
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - not expected: to the crash handler, never into Qt
            exc_info = (type(exc), exc, exc.__traceback__)
            if self.outcome is None:
                self.outcome = "failed"
                try:
                    self.failed.emit(self.request_id, f"unexpected error: {type(exc).__name__}: {exc}")
                except Exception:
                    pass
            from discviewer.ui.crash_ui import report_unhandled

            report_unhandled(exc_info)

    def _run(self) -> None:
        try:
            result = self._fn(self._report, self.is_cancelled)
        except Exception as exc:  # reported to the GUI, never raised into Qt
            if self.is_cancelled():
                self.outcome = "cancelled"
                self.cancelled.emit(self.request_id)
                return
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.outcome = "failed"
            self.failed.emit(self.request_id, detail + "\n\n" + traceback.format_exc())
            return
        if self.is_cancelled() and (result is None or getattr(result, "cancelled", True)):
            self.outcome = "cancelled"
            self.cancelled.emit(self.request_id)
            return
        self.outcome = "succeeded"
        self.succeeded.emit(self.request_id, result)


def merge_scan_results(results: Sequence[Any]):
    """One `ScanResult` from several (used when more than one path is opened at once)."""
    if len(results) == 1:
        return results[0]
    from discviewer.io.types import ScanResult

    merged = ScanResult()
    for r in results:
        merged.series.extend(r.series)
        merged.problems.extend(r.problems)
        merged.files_seen += getattr(r, "files_seen", 0)
        merged.cancelled = merged.cancelled or getattr(r, "cancelled", False)
    return merged


def make_scan_job(paths: Sequence[str], scan_fn: ScanFn | None = None,
                  parent: QtCore.QObject | None = None) -> Job:
    """A job that scans each path in turn and returns one merged `ScanResult`."""
    scan = scan_fn or default_scan
    paths = [str(p) for p in paths]

    def fn(progress: ProgressFn, cancel: CancelFn):
        results = []
        for p in paths:
            if cancel():
                break
            results.append(scan(p, progress=progress, cancel=cancel))
        if not results:
            return None
        merged = merge_scan_results(results)
        if cancel():
            try:
                merged.cancelled = True
            except AttributeError:
                pass
        return merged

    job = Job(fn, kind="scan", parent=parent)
    job.paths = paths
    return job


def make_load_job(candidate: Any, load_fn: LoadFn | None = None,
                  parent: QtCore.QObject | None = None) -> Job:
    """A job that loads one `VolumeCandidate` into a `Volume`.

    Loading has no cancel hook in the io API; cancelling only marks the result stale.
    """
    load = load_fn or default_load

    def fn(progress: ProgressFn, cancel: CancelFn):
        return load(candidate, progress=progress)

    job = Job(fn, kind="load", parent=parent)
    job.candidate = candidate
    return job


def make_multi_load_job(candidates: Sequence[Any], load_fn: LoadFn | None = None, *, cache: Any = None,
                        parent: QtCore.QObject | None = None) -> Job:
    """A job that loads several candidates in turn, emitting `item_ready(request_id, candidate, volume)`
    as each one is ready (so every viewport fills as soon as its own series is loaded).

    `cache` (a `discviewer.volume_cache.VolumeCache`) is consulted first and filled. A candidate that
    fails is emitted with its error message (a `str`) instead of a volume; the others still load.
    Returns {index: volume or message}.
    """
    load = load_fn or default_load
    todo = list(candidates)
    job: Job

    def fn(progress: ProgressFn, cancel: CancelFn):
        out = {}
        for i, cand in enumerate(todo):
            if cancel():
                break
            try:
                vol = cache.get(cand) if cache is not None else None
                if vol is None:
                    vol = load(cand, progress=None)
                    if cache is not None:
                        cache.put(cand, vol)
            except Exception as exc:  # one broken series never stops the others
                vol = f"{type(exc).__name__}: {exc}"
            out[i] = vol
            job.item_ready.emit(job.request_id, cand, vol)
            progress(i + 1, len(todo))
        return out

    job = Job(fn, kind="multi-load", parent=parent)
    job.candidates = todo
    return job

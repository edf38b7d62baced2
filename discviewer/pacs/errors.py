"""Errors of PACS communication: one `PacsError` family whose messages a user can act on.

Every failure of `discviewer.pacs` is raised as a `PacsError` subclass with a complete, one-paragraph
message naming what was tried (node, host:port, AE titles, URL) and what went wrong:

- `UnreachableError` — nothing answers at host:port (refused, DNS, no route, connect timeout).
- `RejectedError` — the PACS refused the association (called/calling AE titles and the reason) or,
  for DICOMweb, answered 401/403.
- `PacsTimeoutError` — connected, but the PACS stopped answering within the timeout.
- `IncompleteSeriesError` — a series arrived only in part (received of expected); nothing of it
  was kept in the cache.
- `CancelledError` — the user cancelled; completed series stay in the cache, the running one does not.
- `OperationError` — the PACS answered with a failure status (C-FIND/C-GET/C-MOVE/C-STORE or HTTP).

Core module: stdlib only.
"""
from __future__ import annotations


class PacsError(Exception):
    """Base class: a PACS operation failed; `str(err)` is a message for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.result = None  # the partial result of a retrieve / store, where one exists


class UnreachableError(PacsError):
    """Nothing answers at `host:port`."""

    def __init__(self, host: str, port: int, reason: str, node: str = ""):
        who = f"PACS {node!r} at " if node else ""
        super().__init__(f"Cannot reach {who}{host}:{port}: {reason}. "
                         "Check that the server is running and the host name and port are right.")
        self.host, self.port, self.reason = host, port, reason


class RejectedError(PacsError):
    """The PACS refused the association (or the HTTP request)."""

    def __init__(self, message: str, *, called_ae: str = "", calling_ae: str = "", reason: str = ""):
        super().__init__(message)
        self.called_ae, self.calling_ae, self.reason = called_ae, calling_ae, reason


class PacsTimeoutError(PacsError):
    """Connected, but no answer within the timeout."""


class IncompleteSeriesError(PacsError):
    """A series arrived only in part; nothing of it was left in the cache."""

    def __init__(self, message: str, *, series_uid: str = "", received: int = 0, expected: int = 0,
                 incomplete: list | None = None):
        super().__init__(message)
        self.series_uid, self.received, self.expected = series_uid, received, expected
        self.incomplete = incomplete or []  # [(series_uid, received, expected), …] of every failed series


class CancelledError(PacsError):
    """The operation was cancelled by the user."""


class OperationError(PacsError):
    """The PACS answered with a failure status."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status

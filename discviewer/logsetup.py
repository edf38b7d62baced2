"""Logging and crash reports (core, stdlib only).

- `setup_logging(verbose=False)`: a rotating log file `discviewer.log` (5 files × 2 MB) in
  `log_dir()` = `$DISCVIEWER_LOG_DIR`, else `$XDG_DATA_HOME/discviewer/logs` (default
  `~/.local/share/discviewer/logs`; `%LOCALAPPDATA%\\discviewer\\logs` on Windows,
  `~/Library/Application Support/discviewer/logs` on macOS) at INFO; `verbose` logs DEBUG and
  copies every record to stderr (otherwise stderr gets warnings and errors only). Idempotent: a second call only adjusts the levels. If the folder
  cannot be written the app still runs (stderr only).
- `write_crash_report(exc_info, context) -> Path`: `crash-<UTC time>-<pid>.txt` in `crash_dir()`
  (`crashes/` inside the log folder) with the traceback, the app version, the platform and the
  Python / Qt / VTK / numpy / pydicom versions, plus the caller's small `context` (e.g. the autosave
  path). No patient data is collected: no workspace content and no local variables. Texts listed
  in `redact` (the open study's patient names, IDs, birth dates) are replaced by "[redacted]"
  wherever they occur — a file path in an exception message could carry a name.

Versions of Qt and VTK are read from `sys.modules` only when already imported (a crash report never
imports a GUI toolkit, so it runs in core scripts too) and otherwise from the installed package
metadata.
"""
from __future__ import annotations

import datetime as _dt
import logging
import logging.handlers
import os
import platform
import sys
import traceback
from pathlib import Path

LOGGER_NAME = "discviewer"
LOG_FILE = "discviewer.log"
MAX_BYTES = 2 * 1024 * 1024
BACKUP_COUNT = 4  # discviewer.log + .1 … .4 = 5 files
FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d:%(threadName)s] %(message)s"
REDACTED = "[redacted]"

log = logging.getLogger(LOGGER_NAME)
_state: dict = {"file_handler": None, "stderr_handler": None, "path": None}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of the record (test runners replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def data_dir() -> Path:
    """The user's data folder for discviewer (the same base as the autosaves)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
    elif sys.platform == "darwin" and not os.environ.get("XDG_DATA_HOME"):
        base = os.path.join(os.path.expanduser("~"), "Library", "Application Support")
    else:
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "discviewer"


def log_dir() -> Path:
    env = os.environ.get("DISCVIEWER_LOG_DIR")
    return Path(env) if env else data_dir() / "logs"


def crash_dir() -> Path:
    return log_dir() / "crashes"


def log_path() -> Path:
    """The current log file (where `setup_logging` writes, or would write)."""
    return Path(_state["path"]) if _state["path"] else log_dir() / LOG_FILE


def is_configured() -> bool:
    return _state["stderr_handler"] is not None


def setup_logging(verbose: bool = False, *, directory: str | os.PathLike | None = None,
                  max_bytes: int = MAX_BYTES, backup_count: int = BACKUP_COUNT) -> Path | None:
    """Log the "discviewer" logger to a rotating file (and, when `verbose`, DEBUG to stderr).
    Returns the log file's path, or None when it cannot be written (then stderr gets warnings)."""
    level = logging.DEBUG if verbose else logging.INFO
    log.setLevel(level)  # records still propagate to the root logger (no handlers there in the app; pytest's caplog)
    folder = Path(directory) if directory is not None else log_dir()
    path = folder / LOG_FILE
    fh = _state["file_handler"]
    if fh is not None and Path(fh.baseFilename) != path.resolve():
        log.removeHandler(fh)
        fh.close()
        fh = _state["file_handler"] = None
        _state["path"] = None
    if fh is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fh = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backup_count,
                                                      encoding="utf-8", delay=True)
        except OSError as exc:
            fh = None
            print(f"discviewer: cannot write the log file in {folder}: {exc}", file=sys.stderr)
        else:
            fh.setFormatter(logging.Formatter(FORMAT))
            log.addHandler(fh)
            _state["file_handler"], _state["path"] = fh, str(path)
    else:
        fh.maxBytes, fh.backupCount = max_bytes, backup_count
    if fh is not None:
        fh.setLevel(level)
    sh = _state["stderr_handler"]
    if sh is None:
        sh = _StderrHandler()
        sh.setFormatter(logging.Formatter("discviewer %(levelname)s %(name)s: %(message)s"))
        log.addHandler(sh)
        _state["stderr_handler"] = sh
    sh.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.debug("logging to %s (verbose=%s)", path if fh is not None else "stderr only", verbose)
    log.info("discviewer %s, python %s, pid %d", _app_version(), sys.version.split()[0], os.getpid())
    return path if fh is not None else None


def _app_version() -> str:
    import discviewer

    return discviewer.__version__


def shutdown_logging() -> None:
    """Remove the handlers `setup_logging` installed (tests; a clean exit)."""
    for key in ("file_handler", "stderr_handler"):
        h = _state[key]
        if h is not None:
            log.removeHandler(h)
            h.close()
            _state[key] = None
    _state["path"] = None
    log.setLevel(logging.NOTSET)


# ---------------------------------------------------------------------------------------------
# crash reports

def _version_of(module: str, dist: str | None = None) -> str:
    """The version of an already imported module, else of the installed distribution (never imports it)."""
    mod = sys.modules.get(module)
    v = getattr(mod, "__version__", None) if mod is not None else None
    if v is None and module == "vtkmodules":
        vc = sys.modules.get("vtkmodules.vtkCommonCore")
        if vc is not None:
            v = vc.vtkVersion.GetVTKVersion()
    if v is None:
        try:
            from importlib.metadata import version

            v = version(dist or module) + " (installed)"
        except Exception:
            v = "not installed"
    return str(v)


def environment_lines() -> list[str]:
    import discviewer

    qt = _version_of("PySide6", "PySide6-Essentials")
    core = sys.modules.get("PySide6.QtCore")
    if core is not None and "Qt " not in qt:
        qt += f" (Qt {core.qVersion()})"
    return [
        f"discviewer {discviewer.__version__}",
        f"platform {platform.platform()} ({platform.machine()})",
        f"python {sys.version.split()[0]} ({platform.python_implementation()})",
        f"PySide6 {qt}",
        f"VTK {_version_of('vtkmodules', 'vtk')}",
        f"numpy {_version_of('numpy')}",
        f"pydicom {_version_of('pydicom')}",
    ]


def redact_text(text: str, redact=()) -> str:
    for s in sorted({str(r) for r in redact if r and len(str(r).strip()) >= 2}, key=len, reverse=True):
        text = text.replace(s, REDACTED)
    return text


def format_crash_report(exc_info, context: dict | None = None, *, redact=()) -> str:
    etype, value, tb = exc_info
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = ["discviewer crash report", f"time {when} (UTC)", f"pid {os.getpid()}", *environment_lines(),
             f"log {log_path()}", ""]
    for k, v in (context or {}).items():
        lines.append(f"{k}: {v}")
    lines += ["", "traceback (most recent call last):",
              "".join(traceback.format_exception(etype, value, tb)).rstrip(), ""]
    return redact_text("\n".join(lines), redact)


def write_crash_report(exc_info, context: dict | None = None, *, redact=(),
                       directory: str | os.PathLike | None = None) -> Path:
    """Write a crash report (see the module notes) and return its path."""
    folder = Path(directory) if directory is not None else crash_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"crash-{stamp}-{os.getpid()}.txt"
    text = format_crash_report(exc_info, context, redact=redact)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path

"""Autosave files and crash recovery.

Autosaves never overwrite the user's project file: they go to the user's data folder,
`$XDG_DATA_HOME/discviewer/autosave/` (default `~/.local/share/discviewer/autosave/`), one file per
project — `<project stem>-<hash of its absolute path>.dvw`, or `untitled-<id>.dvw` for a project
never saved — written with the same atomic save as the project (no backup). Each carries, in its
`settings["autosave"]`, the project path, the writer's host and pid and the time, so that:

- a clean save or a clean close deletes the project's autosave (`discard`);
- after a crash, the autosave is still there and its writer process is gone: `recoverable()` lists
  it (newest first) when it is newer than the project file, and the app offers to open it; the
  recovered state then counts as unsaved work of the original project;
- an autosave whose writer is still running (another app instance) is never offered.

Core module: no Qt, no VTK.
"""
from __future__ import annotations

import hashlib
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from discviewer.workspace.data import WorkspaceData, now_iso

KEY = "autosave"


def autosave_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "discviewer" / "autosave"


def new_untitled_id() -> str:
    return uuid.uuid4().hex[:12]


def autosave_path(project_path: str | os.PathLike | None, untitled_id: str) -> Path:
    """Where the autosave of a project (or of an untitled one) goes."""
    if project_path:
        absolute = os.path.abspath(os.fspath(project_path))
        digest = hashlib.sha1(absolute.encode("utf-8")).hexdigest()[:10]
        return autosave_dir() / f"{Path(absolute).stem}-{digest}.dvw"
    return autosave_dir() / f"untitled-{untitled_id}.dvw"


def write_autosave(data: WorkspaceData, project_path: str | None, untitled_id: str) -> Path:
    """Write `data` (not modified) atomically as the autosave of the project; returns its path."""
    from discviewer.workspace import store

    target = autosave_path(project_path, untitled_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamped = WorkspaceData(**{**data.__dict__, "settings": {
        **data.settings, KEY: {"project": os.path.abspath(project_path) if project_path else "",
                               "untitled_id": untitled_id, "host": socket.gethostname(), "pid": os.getpid(),
                               "time": now_iso()}}})
    store.save(stamped, target, keep_backup=False)
    return target


def discard(project_path: str | None, untitled_id: str) -> None:
    try:
        os.remove(autosave_path(project_path, untitled_id))
    except FileNotFoundError:
        pass


def strip_marker(data: WorkspaceData) -> WorkspaceData:
    """The data of a recovered autosave, without the autosave marker."""
    settings = {k: v for k, v in data.settings.items() if k != KEY}
    return WorkspaceData(**{**data.__dict__, "settings": settings})


@dataclass(frozen=True)
class AutosaveInfo:
    path: Path
    project: str  # "" for an untitled project
    untitled_id: str
    time: str  # when it was written (UTC ISO)
    host: str
    pid: int
    name: str

    @property
    def title(self) -> str:
        return self.project or f"untitled project {self.name or self.untitled_id}"


def _alive(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return False  # another machine's autosave in a shared home: its writer is not ours to wait for
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def list_autosaves() -> list[AutosaveInfo]:
    """Every readable autosave, newest first (unreadable ones are skipped)."""
    from discviewer.workspace import store

    out = []
    folder = autosave_dir()
    if not folder.is_dir():
        return out
    for path in folder.glob("*.dvw"):
        try:
            data = store.load(path).data
        except Exception:
            continue
        mark = data.settings.get(KEY) or {}
        out.append(AutosaveInfo(path, str(mark.get("project", "")), str(mark.get("untitled_id", "")),
                                str(mark.get("time", "")), str(mark.get("host", "")), int(mark.get("pid", 0) or 0),
                                data.name))
    out.sort(key=lambda a: a.time, reverse=True)
    return out


def recoverable(project_path: str | os.PathLike | None = None) -> list[AutosaveInfo]:
    """Autosaves left by a crashed (no longer running) app, newest first. With `project_path`,
    only that project's autosave, and only if it is newer than the project file's last save."""
    from discviewer.workspace import store

    items = [a for a in list_autosaves() if not _alive(a.host, a.pid)]
    if project_path is None:
        return items
    absolute = os.path.abspath(os.fspath(project_path))
    items = [a for a in items if a.project == absolute]
    if items and os.path.exists(absolute):
        try:
            saved = str(store.read_meta(absolute).get("saved", ""))
        except Exception:
            saved = ""
        items = [a for a in items if a.time > saved]
    return items

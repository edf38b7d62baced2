"""One writer per workspace: the `<workspace>.lock` file with owner, host and pid.

Owns `WorkspaceLock.acquire(path)` (also the module function `acquire`), `read_owner(path)`, the
stale-lock rules and `WorkspaceLockedError`, whose message tells the user who holds the workspace
and that it opens read-only.

Rules
- The lock file is created atomically (`O_CREAT | O_EXCL`), holds JSON {user, host, pid, started,
  app, token} and is fsync'ed. `token` (random) makes every lock's content unique, so `release`
  and `refresh` can tell "still ours" from "replaced by someone else".
- A lock is stale when: its owner is on this host and its pid is not alive (or the pid was reused by
  a process started after the lock); or it is from another host and its file was not modified for
  `STALE_AFTER_S` (the owner refreshes it — `refresh()`, a touch — from the app's autosave timer);
  or it cannot be read / parsed and is older than `WRITE_GRACE_S` (younger garbage may be a lock
  being written right now, so it is re-read until the grace period ends).
- A stale lock is replaced atomically (a complete temporary file, then `os.replace`) and the old
  owner reported in `lock.replaced_stale_owner`. Two processes replacing the same stale lock at the
  same moment are resolved by reading it back: the one whose content is not there raises.
- `release()` removes the file only if it still holds our content; it is idempotent.
- Clocks: "another host" staleness compares the lock file's mtime (set by the file server for a
  network share) with this machine's clock; a few minutes of skew are absorbed by the 15 min limit.

Core module: stdlib only.
"""
from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass

from discviewer.workspace.data import now_iso

#: a lock from another host whose file was not touched for this long is stale (seconds)
STALE_AFTER_S = 15 * 60
#: how often the owner should call `refresh()` (the app's autosave timer is fine)
REFRESH_EVERY_S = 60
#: an unreadable lock file younger than this may be one being written: re-read, don't replace
WRITE_GRACE_S = 2.0

LOCK_SUFFIX = ".lock"


def lock_path(path) -> str:
    """The lock file of a workspace: `<path>.lock` beside it."""
    return os.fspath(path) + LOCK_SUFFIX


def _app_version() -> str:
    try:
        from discviewer import __version__
        return str(__version__)
    except Exception:  # pragma: no cover - partial installs
        return ""


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers, services)
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or held) a lock, as read from the lock file."""

    user: str = ""
    host: str = ""
    pid: int = 0
    started: str = ""  # ISO 8601 UTC
    app: str = ""
    token: str = ""

    def describe(self) -> str:
        since = self.started.replace("T", " ").rstrip("Z").split(".")[0] + " UTC" if self.started else "an unknown time"
        who = self.user or "an unknown user"
        return f"{who} on host {self.host or '?'} (pid {self.pid}) since {since}"

    def to_json(self) -> dict:
        return {"user": self.user, "host": self.host, "pid": self.pid, "started": self.started,
                "app": self.app, "token": self.token}

    @classmethod
    def from_json(cls, d) -> LockOwner:
        if not isinstance(d, dict):
            raise ValueError("lock content is not an object")
        pid = d.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise ValueError("lock has no pid")
        return cls(user=str(d.get("user", "")), host=str(d.get("host", "")), pid=pid,
                   started=str(d.get("started", "")), app=str(d.get("app", "")), token=str(d.get("token", "")))


class WorkspaceLockedError(Exception):
    """The workspace is in use by a live owner; the app should open it read-only."""

    def __init__(self, path: str, owner: LockOwner) -> None:
        self.path = path
        self.owner = owner
        super().__init__(
            f"{os.path.basename(path)} is in use by {owner.describe()}. It opens read-only: your changes "
            f"cannot be saved into it. Close it there first — a lock left by a crash on another computer "
            f"expires {STALE_AFTER_S // 60} minutes after its last refresh.")


# ---------------------------------------------------------------------------------------------
# process liveness

def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process on Windows
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def _pid_alive_windows(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes
    k32 = ctypes.windll.kernel32
    h = k32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not h:
        return k32.GetLastError() == 5  # ERROR_ACCESS_DENIED: exists
    try:
        code = ctypes.c_ulong()
        if not k32.GetExitCodeProcess(h, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        k32.CloseHandle(h)


def _process_start_time(pid: int) -> float | None:
    """Start time (epoch seconds) of a process from /proc (Linux); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        fields = stat[stat.rindex(")") + 2:].split()
        ticks = int(fields[19])  # field 22 overall: starttime in clock ticks since boot
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f.read().decode().splitlines() if line.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except Exception:
        return None


def _iso_to_epoch(s: str) -> float | None:
    import datetime as _dt
    try:
        return _dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------

def _read_raw(lp: str) -> bytes | None:
    try:
        with open(lp, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _parse(raw: bytes | None) -> LockOwner | None:
    if raw is None:
        return None
    try:
        return LockOwner.from_json(json.loads(raw.decode("utf-8")))
    except Exception:
        return None


def read_owner(path) -> LockOwner | None:
    """The owner recorded in a workspace's lock file; None if there is none or it is unreadable."""
    try:
        return _parse(_read_raw(lock_path(path)))
    except OSError:
        return None


def _stale_reason(owner: LockOwner | None, lp: str, *, now: float | None = None) -> str:
    """Why the lock is stale ("" if it is live)."""
    now = time.time() if now is None else now
    try:
        age = now - os.stat(lp).st_mtime
    except OSError:
        return "lock file vanished"
    if owner is None:
        return "lock file is unreadable" if age >= WRITE_GRACE_S else ""
    if owner.host == socket.gethostname():
        if not _pid_alive(owner.pid):
            return f"process {owner.pid} is no longer running"
        started = _iso_to_epoch(owner.started)
        proc = _process_start_time(owner.pid)
        if started is not None and proc is not None and proc > started + 2.0:
            return f"process {owner.pid} is a different program started after the lock"
        return ""
    if age > STALE_AFTER_S:
        return f"not refreshed for {age / 60:.0f} minutes (host {owner.host})"
    return ""


def _fsync_dir(d: str) -> None:
    if sys.platform == "win32":  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        fd = os.open(d or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class WorkspaceLock:
    """A held lock on one workspace. Use `WorkspaceLock.acquire(path)` (or `acquire(path)`)."""

    def __init__(self, path: str, owner: LockOwner, content: bytes,
                 replaced_stale_owner: LockOwner | None = None, stale_reason: str = "") -> None:
        self.path = path
        self.lock_path = lock_path(path)
        self.owner = owner
        self._content = content
        self.replaced_stale_owner = replaced_stale_owner  # the owner of a stale lock we replaced
        self.stale_reason = stale_reason  # why it was stale ("" if there was none)
        self.released = False

    # -- acquiring ------------------------------------------------------------------------------

    @classmethod
    def acquire(cls, path, *, user: str | None = None) -> WorkspaceLock:
        """Take the lock of the workspace at `path`, replacing a stale one.

        Raises `WorkspaceLockedError` if a live owner holds it (the caller opens read-only) and
        `OSError` if the lock file cannot be created (e.g. a read-only folder: also read-only)."""
        path = os.path.abspath(os.fspath(path))
        lp = lock_path(path)
        owner = LockOwner(user=user if user is not None else _user(), host=socket.gethostname(), pid=os.getpid(),
                          started=now_iso(), app=_app_version(), token=uuid.uuid4().hex)
        content = (json.dumps(owner.to_json(), indent=1, ensure_ascii=False) + "\n").encode("utf-8")
        deadline = time.monotonic() + WRITE_GRACE_S + 1.0
        while True:
            if cls._create_exclusive(lp, content):
                return cls(path, owner, content)
            raw = _read_raw(lp)
            if raw is None:  # released between our attempt and the read: try again
                continue
            old = _parse(raw)
            reason = _stale_reason(old, lp)
            if not reason:
                if old is None:  # young garbage: a lock being written — wait for it
                    if time.monotonic() < deadline:
                        time.sleep(0.05)
                        continue
                    reason = "lock file is unreadable"
                else:
                    raise WorkspaceLockedError(path, old)
            if cls._replace(lp, raw, content):
                return cls(path, owner, content, replaced_stale_owner=old or LockOwner(), stale_reason=reason)
            if time.monotonic() > deadline:  # pragma: no cover - lost repeated races
                cur = _parse(_read_raw(lp))
                raise WorkspaceLockedError(path, cur or LockOwner())

    @staticmethod
    def _create_exclusive(lp: str, content: bytes) -> bool:
        try:
            fd = os.open(lp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, content)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.remove(lp)
            raise
        os.close(fd)
        _fsync_dir(os.path.dirname(lp))
        return True

    @staticmethod
    def _replace(lp: str, stale_raw: bytes, content: bytes) -> bool:
        """Replace the stale lock whose bytes were `stale_raw`; True if the lock is now ours."""
        tmp = f"{lp}.{uuid.uuid4().hex[:12]}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        try:
            try:
                os.write(fd, content)
                os.fsync(fd)
            finally:
                os.close(fd)
            if _read_raw(lp) != stale_raw:  # someone else replaced or released it meanwhile
                return False
            os.replace(tmp, lp)
        finally:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        _fsync_dir(os.path.dirname(lp))
        time.sleep(0.01)  # let a concurrent replacer finish, then see whose content is there
        return _read_raw(lp) == content

    # -- holding --------------------------------------------------------------------------------

    def is_ours(self) -> bool:
        """True while the lock file still holds our content."""
        try:
            return _read_raw(self.lock_path) == self._content
        except OSError:
            return False

    def refresh(self) -> bool:
        """Touch the lock file (call from the autosave timer). False if it is no longer ours — then
        another session took the workspace over and this one must stop saving."""
        if self.released or not self.is_ours():
            return False
        try:
            os.utime(self.lock_path)
        except OSError:
            return False
        return True

    def release(self) -> None:
        """Remove the lock file if it is still ours; idempotent."""
        if self.released:
            return
        self.released = True
        if self.is_ours():
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.lock_path)

    def __enter__(self) -> WorkspaceLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self.released else "held"
        return f"WorkspaceLock({self.path!r}, {state}, {self.owner.describe()})"


acquire = WorkspaceLock.acquire

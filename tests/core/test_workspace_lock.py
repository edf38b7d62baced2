"""The workspace lock: exclusive, stale detection (dead pid, old foreign lock, garbage), safe release."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from discviewer.workspace import lock as lockmod
from discviewer.workspace.lock import (
    STALE_AFTER_S,
    WorkspaceLock,
    WorkspaceLockedError,
    acquire,
    lock_path,
    read_owner,
)

REPO = Path(__file__).resolve().parents[2]


def _write_foreign(ws: Path, *, host="other-host.example", pid=4242, age_s=0.0, content=None) -> Path:
    lp = Path(lock_path(ws))
    if content is None:
        content = json.dumps({"user": "bob", "host": host, "pid": pid, "started": "2026-01-02T03:04:05.000Z",
                              "app": "0.0.1", "token": "t"})
    lp.write_text(content, encoding="utf-8")
    t = time.time() - age_s
    os.utime(lp, (t, t))
    return lp


def test_second_acquisition_in_one_process_raises(tmp_path):
    ws = tmp_path / "study.dvw"
    with acquire(ws, user="alice") as lk:
        assert Path(lk.lock_path).exists() and lk.replaced_stale_owner is None
        owner = read_owner(ws)
        assert owner.user == "alice" and owner.pid == os.getpid() and owner.host == socket.gethostname()
        assert owner.app and owner.started.endswith("Z")
        with pytest.raises(WorkspaceLockedError) as ei:
            WorkspaceLock.acquire(ws, user="alice")
        msg = str(ei.value)
        assert socket.gethostname() in msg and f"pid {os.getpid()}" in msg and "alice" in msg
        assert "read-only" in msg and "study.dvw" in msg
        assert ei.value.owner == owner
        assert lk.refresh()
    assert not Path(lock_path(ws)).exists()
    lk.release()  # idempotent
    with acquire(ws):  # free again
        pass


def test_lock_of_a_killed_process_is_replaced(tmp_path):
    ws = tmp_path / "study.dvw"
    code = ("import sys, time\n"
            "from discviewer.workspace.lock import acquire\n"
            f"lk = acquire({str(ws)!r}, user='child')\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=str(REPO))
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(WorkspaceLockedError) as ei:  # alive: locked
            acquire(ws)
        assert f"pid {child.pid}" in str(ei.value)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert read_owner(ws).pid == child.pid  # the crash left the lock behind
    lk = acquire(ws, user="me")
    assert lk.replaced_stale_owner.pid == child.pid and lk.replaced_stale_owner.user == "child"
    assert "no longer running" in lk.stale_reason
    assert read_owner(ws).user == "me"
    lk.release()
    assert not Path(lock_path(ws)).exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_foreign_host_old_lock_is_stale(tmp_path):
    ws = tmp_path / "study.dvw"
    _write_foreign(ws, age_s=STALE_AFTER_S + 60)
    with acquire(ws) as lk:
        assert lk.replaced_stale_owner.host == "other-host.example"
        assert "not refreshed" in lk.stale_reason
        assert read_owner(ws).pid == os.getpid()


def test_foreign_host_fresh_lock_is_live(tmp_path):
    ws = tmp_path / "study.dvw"
    lp = _write_foreign(ws, age_s=STALE_AFTER_S - 60)
    before = lp.read_bytes()
    with pytest.raises(WorkspaceLockedError) as ei:
        acquire(ws)
    msg = str(ei.value)
    assert "other-host.example" in msg and "pid 4242" in msg and "bob" in msg and "2026-01-02 03:04:05 UTC" in msg
    assert lp.read_bytes() == before


def test_same_host_dead_pid_is_stale(tmp_path):
    ws = tmp_path / "study.dvw"
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    _write_foreign(ws, host=socket.gethostname(), pid=p.pid)
    with acquire(ws) as lk:
        assert lk.replaced_stale_owner.pid == p.pid


def test_garbage_lock_is_stale_once_old_enough(tmp_path, monkeypatch):
    ws = tmp_path / "study.dvw"
    _write_foreign(ws, content="{not json", age_s=60)
    assert read_owner(ws) is None
    with acquire(ws) as lk:
        assert lk.replaced_stale_owner is not None and "unreadable" in lk.stale_reason
    # an empty, brand-new lock file may be one being written: waited for, then treated as stale
    monkeypatch.setattr(lockmod, "WRITE_GRACE_S", 0.3)
    _write_foreign(ws, content="")
    t0 = time.monotonic()
    with acquire(ws) as lk:
        assert lk.replaced_stale_owner is not None
    assert time.monotonic() - t0 >= 0.25


def test_release_keeps_someone_elses_lock(tmp_path):
    ws = tmp_path / "study.dvw"
    lk = acquire(ws)
    # our lock was judged stale elsewhere and replaced by another session
    lp = _write_foreign(ws)
    other = lp.read_bytes()
    assert not lk.is_ours() and not lk.refresh()
    lk.release()
    assert lp.exists() and lp.read_bytes() == other


def test_refresh_touches_the_lock(tmp_path):
    ws = tmp_path / "study.dvw"
    with acquire(ws) as lk:
        old = time.time() - 3600
        os.utime(lk.lock_path, (old, old))
        assert lk.refresh()
        assert time.time() - os.stat(lk.lock_path).st_mtime < 60

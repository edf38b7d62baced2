"""Atomic file writes: readers see the old file or the new one, never half a file.

`atomic_path(path)` yields a temporary path in the destination's folder (so the final rename stays
on one file system); when the block ends normally the temporary file is flushed to disk and
`os.replace`d onto `path`; when it raises, the temporary file is removed and `path` is untouched.
Use it for writers that want a file name (h5py, pydicom's `save_as`, zipfile). `atomic_write(path,
mode, …)` opens that temporary file for the block (text or binary), for writers that take a file
object (json, csv).

The workspace file has its own, stricter protocol (read-back verification, backup, folder fsync:
`discviewer.workspace.store`); this module is for exports, packages and small settings files.

Core module: stdlib only.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write"]


def _fsync_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a read-only descriptor; the rename still holds
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """A temporary path beside `path`, moved onto it when the block succeeds (module doc)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8",
                 newline: str | None = None, fsync: bool = True):
    """`open()` a temporary file beside `path` for the block; moved onto `path` when it succeeds."""
    binary = "b" in mode
    with atomic_path(path, fsync=fsync) as tmp:
        with open(tmp, mode, encoding=None if binary else encoding, newline=None if binary else newline) as fh:
            yield fh

"""discviewer.atomic: the destination holds the old content or the new one, never a part."""
from __future__ import annotations

import pytest

from discviewer.atomic import atomic_path, atomic_write


def test_success_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "a.txt"
    with atomic_write(p) as fh:
        fh.write("new")
        assert not p.exists()  # nothing visible until the block ends
    assert p.read_text() == "new"
    assert [x.name for x in p.parent.iterdir()] == ["a.txt"]


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["a.bin"]


def test_binary_mode(tmp_path):
    p = tmp_path / "b.bin"
    with atomic_write(p, "wb") as fh:
        fh.write(b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"

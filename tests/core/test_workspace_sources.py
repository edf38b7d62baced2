"""The source index: build, verify (missing / changed / touched), relink after a move, read-only access."""
from __future__ import annotations

import builtins
import hashlib
import os
import shutil

import numpy as np
import pytest

from discviewer.io import scan
from discviewer.workspace.sources import common_root, index_sources, relink, sha256_file, verify_sources
from tests.core.phantom_cache import phantom_scan


@pytest.fixture
def study(tmp_path_factory, tmp_path):
    """A private copy of the small phantom study: (folder, candidates, index)."""
    src, _ = phantom_scan(tmp_path_factory)
    folder = tmp_path / "old" / "study"
    shutil.copytree(src, folder)
    cands = scan(folder).series
    return folder, cands, index_sources(cands)


def _flip_one_byte(path: str) -> None:
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)


def test_index_one_record_per_file_with_content_hash(study):
    folder, cands, files = study
    paths = {os.path.abspath(f.path) for c in cands for f in c.frames}
    assert len(files) == len(paths) == len({f.path for f in files})
    assert {f.path for f in files} == paths and all(os.path.isabs(f.path) for f in files)
    f0 = files[0]
    st = os.stat(f0.path)
    assert (f0.size, f0.mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert f0.sha256 == hashlib.sha256(open(f0.path, "rb").read()).hexdigest() == sha256_file(f0.path)
    assert f0.sop_uid and f0.series_uid == cands[0].info.series_uid
    assert len({f.sop_uid for f in files}) == len(files)
    assert common_root(files) == str(folder / "P01")
    rep = verify_sources(files)
    assert rep.all_ok and len(rep.ok) == len(files) and rep.hashed == 0
    assert "present and unchanged" in rep.message()


def test_index_includes_nifti(tmp_path):
    nib = pytest.importorskip("nibabel")
    arr = np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3)
    p = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(p))
    (c,) = scan(tmp_path).series
    (f,) = index_sources([c])
    assert f.path == str(p) and f.sop_uid == "" and f.sha256 == sha256_file(str(p))


def test_moved_folder_reported_missing_then_relinked(study, tmp_path, monkeypatch):
    folder, _, files = study
    new = tmp_path / "new place" / "study"
    new.parent.mkdir()
    shutil.move(folder, new)
    rep = verify_sources(files)
    assert len(rep.missing) == len(files) and not rep.ok and not rep.all_ok
    msg = rep.message()
    assert f"{len(files)} of {len(files)} source files are missing under {folder / 'P01'}" in msg
    assert "Relink" in msg
    assert f"{len(files)} missing" in rep.summary()

    # the moved study folder is above the files' common root (…/study/P01): found by relative path,
    # without walking the new folder
    from discviewer.workspace import sources

    monkeypatch.setattr(sources.os, "walk", lambda *a, **k: pytest.fail("walked the folder"))
    res = relink(files, new)
    monkeypatch.undo()
    assert res.relinked == len(files) and not res.unresolved and not res.mismatched
    assert all(f.path.startswith(str(new)) for f in res.files)
    assert [f.sha256 for f in res.files] == [f.sha256 for f in files]
    after = verify_sources(res.files)
    assert after.all_ok and after.hashed == 0


def test_relink_finds_files_by_name_and_size_under_a_parent_folder(study, tmp_path):
    folder, _, files = study
    dest = tmp_path / "archive" / "2024" / "renamed"
    dest.parent.mkdir(parents=True)
    shutil.move(folder, dest)
    # pick the archive folder: the relative path does not fit; same-name files are in every series
    # folder, the one whose path tail matches is hashed first and accepted only on equal SHA-256
    res = relink(files, tmp_path / "archive")
    assert res.relinked == len(files) and not res.unresolved
    for old, new in zip(files, res.files):
        assert new.path == old.path.replace(str(folder), str(dest))


def test_relink_refuses_same_name_with_other_content(study, tmp_path):
    folder, _, files = study
    new = tmp_path / "moved"
    shutil.move(folder, new)
    victim = files[5]
    moved_victim = victim.path.replace(str(folder), str(new))
    _flip_one_byte(moved_victim)
    res = relink(files, new)
    assert res.relinked == len(files) - 1
    assert res.unresolved == [victim]
    assert res.mismatched == [(victim, moved_victim)]
    assert res.files[5] == victim  # unchanged record, still the old path
    assert "different content" in res.message() and moved_victim in res.message()


def test_changed_byte_and_touched_mtime(study):
    _, _, files = study
    a, b = files[0], files[1]
    # one byte changed (same size): the mtime changes, so the quick check hashes and sees it
    _flip_one_byte(a.path)
    # b only touched: content equal, newer mtime
    os.utime(b.path, ns=(b.mtime_ns + 5_000_000_000, b.mtime_ns + 5_000_000_000))
    rep = verify_sources(files)
    assert rep.changed == [a]
    assert rep.touched == [b] and b in rep.ok
    assert rep.hashed == 2
    assert "1 of" in rep.message() and "has changed" in rep.message() and a.path in rep.message()
    refreshed = rep.refresh_index(files)
    assert refreshed[1].mtime_ns == b.mtime_ns + 5_000_000_000 and refreshed[1].sha256 == b.sha256
    assert refreshed[0] == a  # a changed record is not silently re-indexed
    assert verify_sources(refreshed[1:]).hashed == 0


def test_quick_mode_trusts_mtime_full_mode_hashes(study):
    _, _, files = study
    a = files[3]
    _flip_one_byte(a.path)
    os.utime(a.path, ns=(a.mtime_ns, a.mtime_ns))  # content changed behind an unchanged mtime
    assert verify_sources(files).all_ok
    rep = verify_sources(files, full=True)
    assert rep.changed == [a] and rep.hashed == len(files)


def test_size_change_is_changed_without_hashing(study):
    _, _, files = study
    with open(files[2].path, "ab") as f:
        f.write(b"\0\0")
    rep = verify_sources(files)
    assert rep.changed == [files[2]] and rep.hashed == 0


def test_sources_are_opened_read_only(study, tmp_path, monkeypatch):
    folder, cands, _ = study
    for d, _, names in os.walk(folder):
        for n in names:
            os.chmod(os.path.join(d, n), 0o444)
    modes: list[str] = []
    flags: list[int] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, mode="r", *a, **k):
        modes.append(mode)
        return real_open(file, mode, *a, **k)

    def spy_os_open(path, fl, *a, **k):
        flags.append(fl)
        return real_os_open(path, fl, *a, **k)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    files = index_sources(cands)
    verify_sources(files, full=True)
    new = tmp_path / "moved"
    monkeypatch.undo()
    shutil.move(folder, new)
    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    res = relink(files, new)
    monkeypatch.undo()
    assert res.relinked == len(files)
    assert modes and set(modes) == {"rb"}
    write = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    assert all(fl & write == 0 for fl in flags)
    # the files are untouched: still read-only and with their indexed content
    assert verify_sources(res.files, full=True).all_ok
    assert all(os.stat(f.path).st_mode & 0o777 == 0o444 for f in res.files)

"""discviewer.workspace.store / migrate: round trips, atomic saves with backup, damaged and
older/newer files, and the crash test (SIGKILL a saving process ≥ 100 times, never a broken file)."""
from __future__ import annotations

import copy
import dataclasses
import errno
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from discviewer import __version__
from discviewer.workspace import migrate, store
from discviewer.workspace.data import (
    SCHEMA_VERSION, Annotation, AuditEntry, PatientRecord, SeriesRecord, SourceFile, TransformRecord,
    TransformSetRecord, VisitRecord, WorkspaceData,
)
from discviewer.workspace.store import (
    WorkspaceCorruptError, WorkspaceNotFoundError, WorkspaceSaveError, backup_path, load, read_meta, save,
)
from tests.core.workspace_crash_writer import crash_state

DATA = Path(__file__).resolve().parents[1] / "data"
WRITER = Path(__file__).resolve().parent / "workspace_crash_writer.py"
TEMP_RE = re.compile(r"\.tmp-(\d+)-")


def rich_data(n_annotations: int = 300, n_audit: int = 3000) -> WorkspaceData:
    rot = np.array([[0.0, -1.0, 0.0, 12.5], [1.0, 0.0, 0.0, -3.25], [0.0, 0.0, 1.0, 1e-9], [0, 0, 0, 1]])
    return WorkspaceData(
        app_version="whatever", created="2025-02-03T04:05:06.789Z", generation=41,
        name="Wirbelsäule / 脊椎 — P7 (L4/L5)",
        sources=[SourceFile(path="/data/ü/é 1/IM0001.dcm", size=2**40 + 3, mtime_ns=-5, sha256="0f" * 32,
                            sop_uid="1.2.840.1", series_uid="1.2.840"),
                 SourceFile(path="C:\\Daten\\spine.nii.gz", size=0, mtime_ns=1_725_000_000_123_456_789,
                            sha256="")],
        patients=[PatientRecord(id="P/7", name="Müller^Jürgen", visits=(
                      VisitRecord(id="1.2.3.4.5", date="2024-01-02", days=0, label="baseline", series=(
                          SeriesRecord(key="1.2.3/echo#2", series_uid="1.2.3", description="T2* GRE ±",
                                       plane="sagittal", role="t2star", n_echoes=6),
                          SeriesRecord(key="k2", series_uid="1.2.4"))),
                      VisitRecord(id="1.2.3.4.6", days=None, label=""),
                      VisitRecord(id="v.3", days=-14))),
                  PatientRecord(id="empty")],
        visit_labels={"1.2.3.4.5": "Ausgangswert", "v/x": "3 m"},
        roles={"1.2.3/echo#2": "t2star", "": "empty key"},
        transform_sets=[
            TransformSetRecord("whole volume", "1.2.3.4.5", (
                TransformRecord("1.2.3.4.5", np.eye(4), "identity"),
                TransformRecord("1.2.3.4.6", rot, "rigid MI",
                                {"metric": -0.5, "roi": {"levels": ["L4/L5"], "box": [[1, 2], [3.5, None]]},
                                 "ok": True, "note": "ünïcödé"}))),
            TransformSetRecord("L4/L5", None, ()),
            TransformSetRecord("L5/S1", "", (TransformRecord("v.3", rot * 2, "manual"),)),
            TransformSetRecord("", None, ())],
        annotations=[Annotation(
            id=f"ann/{i}", kind=("ruler", "text", "polygon")[i % 3], level=("L4/L5", "", "L5/S1")[i % 3],
            visit_id="1.2.3.4.5", series_uid="1.2.3",
            points=tuple((i * 0.1, -i / 3.0, 1e300 if i == 7 else 0.0) for _ in range(i % 5)),
            text="Schmorl-Knötchen 🦴" if i % 4 == 0 else "", values={"length": i / 7.0, "n": i} if i % 2 else {},
            units={"length": "mm"} if i % 2 else {}, reader="rk", method="manual",
            created="2025-02-03T04:05:06.000Z", modified="",
            extra={"nested": {"list": [1, 2.5, "x", None, {"deep": [True]}]}, "big": "x" * (100_000 if i == 3 else 1)})
            for i in range(n_annotations)],
        reading={"session 1/a": {"reader": "rk", "answers": {"L4/L5": {"pfirrmann": 3, "modic": None}}},
                 "s2": {}},
        audit=[AuditEntry(time=f"2025-02-03T04:{i // 60 % 60:02d}:{i % 60:02d}.000Z", user="rk",
                          action=("label", "role", "transform", "annotation")[i % 4],
                          target=f"whole volume/{i}" if i % 3 else "", old="" if i % 2 else f"alt {i}",
                          new=f"neu ✓ {i}") for i in range(n_audit)],
        settings={"layout": "2x2", "window": [400.5, 1200], "linked": True, "panes": [{"role": "t2_sag"}]},
    )


def assert_same(a: WorkspaceData, b: WorkspaceData) -> None:
    for f in dataclasses.fields(WorkspaceData):
        assert getattr(a, f.name) == getattr(b, f.name), f.name
    assert a == b


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".tmp-" in p.name)


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ round trip

def test_round_trip_every_field(tmp_path):
    data = rich_data()
    p = tmp_path / "rich.dvw"
    info = save(data, p)
    assert info.path == p and info.generation == 41 and info.app_version == __version__ and info.saved
    res = load(p)
    assert not res.read_only and res.message == "" and res.file_schema_version == SCHEMA_VERSION
    assert res.data.saved == info.saved and res.data.app_version == __version__
    assert_same(res.data, info.applied_to(data))
    # None vs "" baseline, the set named "" and the empty set survive exactly
    assert [t.baseline_id for t in res.data.transform_sets] == ["1.2.3.4.5", None, "", None]
    assert res.data.transform_sets[0].transforms[1].matrix.dtype == np.float64
    assert res.data.patients[0].visits[1].days is None and res.data.patients[0].visits[2].days == -14
    assert res.data.annotations[7].points[0][2] == 1e300


def test_round_trip_empty_workspace(tmp_path):
    p = tmp_path / "empty.dvw"
    data = WorkspaceData()
    info = save(data, p)
    assert_same(load(p).data, info.applied_to(data))


def test_save_does_not_change_callers_data(tmp_path):
    data = rich_data(20, 20)
    before = copy.deepcopy(data)
    save(data, tmp_path / "a.dvw")
    assert_same(data, before)


def test_layout_is_plain_hdf5_for_analysts(tmp_path):
    p = tmp_path / "a.dvw"
    save(rich_data(10, 5), p)
    names = []
    with h5py.File(p, "r") as f:
        f.visit(names.append)
        assert f.attrs["format"] == store.FORMAT and f.attrs["schema_version"] == SCHEMA_VERSION
        assert f.attrs["generation"] == 41
        assert f["transforms/1"].attrs["name"] == "L4/L5" and "baseline_id" not in f["transforms/1"].attrs
        m = f["transforms/0/1"]
        assert m.dtype == np.float64 and m.shape == (4, 4) and m.attrs["visit_id"] == "1.2.3.4.6"
        pts = f["annotations/1/points"]
        assert pts.dtype == np.float64 and pts.shape == (1, 3)
        assert f["annotations/0"].attrs["level"] == "L4/L5"
        assert f["sources/size"].dtype == np.int64 and f["sources/path"].asstr()[0] == "/data/ü/é 1/IM0001.dcm"
        assert f["audit/time"].maxshape == (None,)  # tools may append
        assert f["visit_labels/visit_id"].shape == (2,) and f["study/patients/1/visits"].keys() == set()
    # no user string ever became an HDF5 name
    assert [n for n in names if not re.fullmatch(r"[a-z_0-9/]+", n)] == []


def test_read_meta_reads_only_the_header(tmp_path):
    p = tmp_path / "a.dvw"
    info = save(rich_data(5, 5), p)
    meta = read_meta(p)
    assert meta == {"format": store.FORMAT, "schema_version": SCHEMA_VERSION, "generation": 41, "saved": info.saved,
                    "created": "2025-02-03T04:05:06.789Z", "name": "Wirbelsäule / 脊椎 — P7 (L4/L5)",
                    "app_version": __version__}
    with pytest.raises(WorkspaceNotFoundError):
        read_meta(tmp_path / "missing.dvw")


# ------------------------------------------------------------------------------------------ backup

def test_backup_holds_previous_save(tmp_path):
    p = tmp_path / "w.dvw"
    d1, d2, d3 = (dataclasses.replace(rich_data(5, 5), generation=g) for g in (1, 2, 3))
    info = save(d1, p)
    assert info.backup is None and not backup_path(p).exists()
    info = save(d2, p)
    assert info.backup == backup_path(p) == tmp_path / "w.dvw.bak"
    assert load(p).data.generation == 2 and load(backup_path(p)).data.generation == 1
    save(d3, p)
    assert load(p).data.generation == 3 and load(backup_path(p)).data.generation == 2
    save(dataclasses.replace(d3, generation=4), p, keep_backup=False)
    assert load(p).data.generation == 4 and load(backup_path(p)).data.generation == 2
    assert temp_files(tmp_path) == []


def test_damaged_current_file_never_replaces_good_backup(tmp_path):
    p = tmp_path / "w.dvw"
    save(dataclasses.replace(rich_data(5, 5), generation=1), p)
    save(dataclasses.replace(rich_data(5, 5), generation=2), p)
    p.write_bytes(b"garbage")
    save(dataclasses.replace(rich_data(5, 5), generation=3), p)
    assert load(p).data.generation == 3 and load(backup_path(p)).data.generation == 1


def test_permissions_and_symlink_kept(tmp_path):
    real = tmp_path / "real.dvw"
    save(WorkspaceData(generation=1), real)
    os.chmod(real, 0o600)
    link = tmp_path / "link.dvw"
    link.symlink_to(real)
    info = save(WorkspaceData(generation=2), link)
    assert info.path == real and link.is_symlink() and load(link).data.generation == 2
    assert (real.stat().st_mode & 0o777) == 0o600
    assert load(backup_path(real)).data.generation == 1


# ------------------------------------------------------------------------------------------ failing saves

@pytest.fixture
def saved_twice(tmp_path):
    p = tmp_path / "w.dvw"
    save(dataclasses.replace(rich_data(5, 5), generation=1), p)
    save(dataclasses.replace(rich_data(5, 5), generation=2), p)
    return p, digest(p), digest(backup_path(p)), sorted(os.listdir(tmp_path))


def assert_untouched(saved_twice):
    p, h, hb, listing = saved_twice
    assert digest(p) == h and digest(backup_path(p)) == hb
    assert sorted(os.listdir(p.parent)) == listing  # no temp file left behind
    assert load(p).data.generation == 2


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_on_fsync(saved_twice, monkeypatch):
    data = dataclasses.replace(rich_data(5, 5), generation=3)
    monkeypatch.setattr(os, "fsync", enospc)
    with pytest.raises(WorkspaceSaveError) as ei:
        save(data, saved_twice[0])
    monkeypatch.undo()
    msg = str(ei.value)
    assert "the disk is full" in msg and str(saved_twice[0]) in msg and "still in memory" in msg
    assert ei.value.errno == errno.ENOSPC and ei.value.path == saved_twice[0]
    assert_untouched(saved_twice)


def test_disk_full_inside_hdf5_write(saved_twice, monkeypatch):
    real_write = store._write_node

    def half_write(g, node):  # writes part of the file, then fails as h5py reports a full disk
        g.attrs["format"] = "partial"
        raise OSError("Can't write data (file write failed: time = Mon, errno = 28, "
                      "error message = 'No space left on device', buf = 0x1, total write size = 8)")

    monkeypatch.setattr(store, "_write_node", half_write)
    with pytest.raises(WorkspaceSaveError, match="the disk is full"):
        save(dataclasses.replace(rich_data(5, 5), generation=3), saved_twice[0])
    monkeypatch.setattr(store, "_write_node", real_write)
    assert_untouched(saved_twice)


@pytest.mark.parametrize("where", ["create", "publish", "backup link"])
def test_permission_denied_simulated(saved_twice, monkeypatch, where):
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(a[0]) if a else "")

    if where == "create":
        monkeypatch.setattr(store, "_write_file", denied)
    elif where == "publish":
        monkeypatch.setattr(os, "replace", denied)
    else:
        monkeypatch.setattr(os, "link", denied)
        monkeypatch.setattr(shutil, "copy2", denied)
    with pytest.raises(WorkspaceSaveError) as ei:
        save(dataclasses.replace(rich_data(5, 5), generation=3), saved_twice[0])
    monkeypatch.undo()
    assert "permission denied — choose another folder with Save As" in str(ei.value)
    assert_untouched(saved_twice)


def test_read_only_file_system_simulated(saved_twice, monkeypatch):
    def erofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store, "_write_file", erofs)
    with pytest.raises(WorkspaceSaveError, match="read-only file system — choose another folder"):
        save(WorkspaceData(generation=3), saved_twice[0])
    monkeypatch.undo()
    assert_untouched(saved_twice)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_permission_denied_real_folder(saved_twice):
    folder = saved_twice[0].parent
    os.chmod(folder, 0o555)
    try:
        with pytest.raises(WorkspaceSaveError, match="permission denied"):
            save(WorkspaceData(generation=3), saved_twice[0])
    finally:
        os.chmod(folder, 0o755)
    assert_untouched(saved_twice)


def test_hard_links_unsupported_falls_back_to_copy(saved_twice, monkeypatch):
    def no_links(*a, **k):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    p = saved_twice[0]
    info = save(dataclasses.replace(rich_data(5, 5), generation=3), p)
    assert info.backup == backup_path(p) and digest(backup_path(p)) == saved_twice[1]
    assert load(p).data.generation == 3 and temp_files(p.parent) == []


@pytest.mark.parametrize("bad, words", [
    (lambda d: d.annotations.append(Annotation(id="nan", kind="point", points=((0.0, float("nan"), 1.0),))), "nan"),
    (lambda d: d.annotations.append(Annotation(id="nul", kind="text", text="a\x00b")), "NUL"),
    (lambda d: d.sources.append(SourceFile(path="/x/\udcff.dcm", size=1, mtime_ns=1, sha256="")), "Unicode"),
    (lambda d: d.settings.update(x=float("inf")), "settings"),
    (lambda d: d.transform_sets.append(TransformSetRecord("t", None, (TransformRecord("v", np.eye(3)),))), "4×4"),
])
def test_invalid_data_is_refused_before_touching_disk(saved_twice, bad, words):
    data = dataclasses.replace(rich_data(5, 5), generation=3)
    bad(data)
    with pytest.raises(WorkspaceSaveError, match="cannot be stored") as ei:
        save(data, saved_twice[0])
    assert words in str(ei.value)
    assert_untouched(saved_twice)


def test_missing_folder(tmp_path):
    with pytest.raises(WorkspaceSaveError, match="folder does not exist"):
        save(WorkspaceData(), tmp_path / "nope" / "w.dvw")


# ------------------------------------------------------------------------------------------ damaged files

def _truncate(p):
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])


def _random_bytes(p):
    p.write_bytes(random.Random(1).randbytes(50_000))


def _no_format(p):
    with h5py.File(p, "a") as f:
        del f.attrs["format"]


def _empty(p):
    p.write_bytes(b"")


def _missing_audit(p):
    with h5py.File(p, "a") as f:
        del f["audit"]


def _gap_in_annotations(p):
    with h5py.File(p, "a") as f:
        del f["annotations/1"]


def _bad_json(p):
    with h5py.File(p, "a") as f:
        f["annotations/0"].attrs["values"] = "{not json"


@pytest.mark.parametrize("damage, words", [
    (_truncate, "truncated"), (_random_bytes, "not an HDF5 file"), (_no_format, "no 'format' attribute"),
    (_empty, "empty (0 bytes)"), (_missing_audit, "/audit is missing"), (_gap_in_annotations, "/annotations"),
    (_bad_json, "not valid JSON"),
])
@pytest.mark.parametrize("with_backup", [True, False])
def test_damaged_file(tmp_path, damage, words, with_backup):
    p = tmp_path / "w.dvw"
    save(dataclasses.replace(rich_data(5, 5), generation=1), p)
    if with_backup:
        save(dataclasses.replace(rich_data(5, 5), generation=2), p)
    damage(p)
    with pytest.raises(WorkspaceCorruptError) as ei:
        load(p)
    e = ei.value
    assert words in str(e) and str(p) in str(e)
    if with_backup:
        assert e.backup == backup_path(p) and f"backup {backup_path(p)} is intact" in str(e)
        assert load(e.backup).data.generation == 1
    else:
        assert e.backup is None and "No usable backup" in str(e)


def test_damaged_backup_is_not_offered(tmp_path):
    p = tmp_path / "w.dvw"
    save(WorkspaceData(generation=1), p)
    save(WorkspaceData(generation=2), p)
    _truncate(p)
    _truncate(backup_path(p))
    with pytest.raises(WorkspaceCorruptError) as ei:
        load(p)
    assert ei.value.backup is None


def test_missing_file(tmp_path):
    with pytest.raises(WorkspaceNotFoundError, match="does not exist"):
        load(tmp_path / "missing.dvw")


# ------------------------------------------------------------------------------------------ versions

def test_newer_schema_opens_read_only(tmp_path):
    p = tmp_path / "future.dvw"
    data = rich_data(5, 5)
    info = save(data, p)
    with h5py.File(p, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
        f.create_group("future_thing").attrs["x"] = 1
        del f["reading"]  # a newer version may move things: what is understood still loads
        f["annotations/0"].attrs["new_attr"] = "?"
    res = load(p)
    assert res.read_only and res.file_schema_version == SCHEMA_VERSION + 1
    assert (f"made by a newer discviewer (schema {SCHEMA_VERSION + 1}, this app {SCHEMA_VERSION}) — opened read-only"
            in res.message)
    expected = dataclasses.replace(info.applied_to(data), reading={}, schema_version=SCHEMA_VERSION + 1)
    assert_same(res.data, expected)
    assert read_meta(p)["schema_version"] == SCHEMA_VERSION + 1
    # saving it would drop what this app does not understand: refused, file untouched
    h = digest(p)
    with pytest.raises(WorkspaceSaveError, match="newer discviewer"):
        save(res.data, p)
    assert digest(p) == h


V1_EXPECTED = WorkspaceData(
    schema_version=SCHEMA_VERSION, app_version="0.0.9", created="2024-03-01T09:00:00.000Z",
    saved="2024-03-02T17:30:05.250Z", generation=7, name="Études lombaires — patient 7",
    sources=[SourceFile("/data/p7/2024/IM0001.dcm", 526_336, 1_709_280_000_000_000_000, "ab" * 32,
                        "1.2.3.100.1.1", "1.2.3.100.1"),
             SourceFile("/data/p7/2024-09/IM0001.dcm", 526_402, 1_725_000_000_123_456_789, "",
                        "1.2.3.200.1.1", "1.2.3.200.1")],
    patients=[PatientRecord("P7", "Müller^Jürgen", (
        VisitRecord("1.2.3.100", "2024-03-01", 0, "baseline",
                    (SeriesRecord("1.2.3.100.1", "1.2.3.100.1", "T2 TSE SAG", "sagittal", "t2_sag", 1),)),
        VisitRecord("1.2.3.200", "", None, "6 m",
                    (SeriesRecord("1.2.3.200.1", "1.2.3.200.1", "T2 TSE SAG", "sagittal", "t2_sag", 1),
                     SeriesRecord("1.2.3.200.5#e", "1.2.3.200.5", "ME GRE", "axial", "me_gre", 6)))))],
    visit_labels={"1.2.3.200": "6 m"}, roles={"1.2.3.200.5#e": "me_gre"},
    transform_sets=[TransformSetRecord(migrate.WHOLE_VOLUME, "1.2.3.100", (
        TransformRecord("1.2.3.100", np.eye(4), "identity", {}),
        TransformRecord("1.2.3.200", np.array([[0.999, -0.02, 0.0, 1.25], [0.02, 0.999, 0.0, -3.5],
                                               [0.0, 0.0, 1.0, 12.0], [0.0, 0.0, 0.0, 1.0]]),
                        "rigid mutual information",
                        {"metric": -0.61, "iterations": 120, "roi": {"levels": ["L4/L5", "L5/S1"]}})))],
    annotations=[
        Annotation(id="a1", kind="ruler", level="", visit_id="1.2.3.100", series_uid="1.2.3.100.1",
                   points=((1.5, -2.0, 30.0), (1.5, -2.0, 41.25)), text="", values={"length": 11.25}, units={},
                   reader="rk", method="manual", created="2024-03-02T10:00:00.000Z",
                   modified="2024-03-02T10:00:00.000Z", extra={}),
        Annotation(id="a2", kind="text", level="", visit_id="1.2.3.200", series_uid="", points=(),
                   text="Schmorl-Knötchen?", values={}, units={}, reader="rk", method="",
                   created="2024-03-02T11:00:00.000Z", modified="", extra={"color": [255, 0, 0]})],
    reading={"session-1": {"reader": "rk", "answers": {"L4/L5": {"pfirrmann": 3}}}},
    audit=[AuditEntry("2024-03-01T09:00:00.000Z", "rk", "open", "", "", ""),
           AuditEntry("2024-03-02T10:00:00.000Z", "rk", "annotation", "", "", "a1")],
    settings={"layout": "2x2", "window": [400, 1200]},
)


def test_stored_v1_file_migrates(tmp_path):
    stored = DATA / "workspace_v1.dvw"
    assert stored.stat().st_size < 50_000
    p = tmp_path / "old.dvw"
    shutil.copy2(stored, p)
    h = digest(p)
    assert read_meta(p)["schema_version"] == 1
    res = load(p)
    assert res.file_schema_version == 1 and not res.read_only
    assert "older discviewer (schema 1)" in res.message and "upgraded" in res.message
    assert_same(res.data, V1_EXPECTED)
    assert digest(p) == h  # the original is untouched until the user saves
    info = save(res.data, p)
    assert read_meta(p)["schema_version"] == SCHEMA_VERSION
    assert_same(load(p).data, info.applied_to(V1_EXPECTED))
    assert digest(backup_path(p)) == h  # and the schema-1 file is the backup


def test_v1_empty_baseline_becomes_none(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_workspace_v1", DATA / "make_workspace_v1.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    p = tmp_path / "v1.dvw"
    mod.write_v1(p, baseline_id="")
    ts = load(p).data.transform_sets
    assert [t.name for t in ts] == ["whole volume"] and ts[0].baseline_id is None and len(ts[0].transforms) == 2


def test_unknown_old_schema_is_corrupt(tmp_path):
    p = tmp_path / "w.dvw"
    save(WorkspaceData(), p)
    with h5py.File(p, "a") as f:
        f.attrs["schema_version"] = 0
    with pytest.raises(WorkspaceCorruptError, match="schema_version"):
        load(p)


# ------------------------------------------------------------------------------------------ temp files

def test_stale_temp_files_of_dead_writers_are_cleaned(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = store._HOST_TAG
    stale = [tmp_path / f".w.dvw.tmp-{dead.pid}-{host}-0123abcd",
             tmp_path / f".x.dvw.tmp-{dead.pid}-{host}-0123abce.bak"]
    keep = [tmp_path / f".w.dvw.tmp-{os.getppid()}-{host}-0123abcd",  # a live process
            tmp_path / f".w.dvw.tmp-{dead.pid}-{'0' * 8 if host != '0' * 8 else '1' * 8}-0123abcd",  # other host
            tmp_path / "notes.tmp-1-2"]
    for f in stale + keep:
        f.write_bytes(b"partial")
    save(WorkspaceData(), tmp_path / "w.dvw")
    assert not any(f.exists() for f in stale) and all(f.exists() for f in keep)


# ------------------------------------------------------------------------------------------ crash test

def _spawn_writer(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(WRITER), str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    return proc


def test_crash_sigkill_during_saves_never_breaks_the_file(tmp_path):
    """Acceptance: a process saving in a loop is SIGKILLed ≥ 100 times at random moments; after every
    kill the file loads and is exactly the last completed save or the one in progress — never a mix —
    and only the killed writers' temp files may be left (the next successful save removes them)."""
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("no SIGKILL on this platform")
    rng = random.Random(20250203)
    path = tmp_path / "crash.dvw"
    t = time.perf_counter()
    for g in range(3):
        save(crash_state(g), path)
    max_delay = 4 * (time.perf_counter() - t) / 3 + 0.02  # kills spread over the first few saves
    save(crash_state(0), path)
    g_file = 0
    kills = 0
    outcomes = {"last completed": 0, "in progress": 0, "temp left": 0}
    pending: set[int] = set()  # pids of killed writers whose temp files may still lie around
    t0 = time.monotonic()
    spare = _spawn_writer(path)  # the next writer imports while the previous one is checked
    while kills < 110:
        proc, spare = spare, None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        proc.stdin.write(f"{g_file + 1}\n")
        proc.stdin.flush()
        spare = _spawn_writer(path)  # imports while this one saves
        time.sleep(rng.uniform(0.0, max_delay))
        proc.send_signal(signal.SIGKILL)
        proc.wait()  # reaped: its pid is dead for the next writer's cleanup
        kills += 1
        done = [int(x) for x in proc.stdout.read().split()]
        proc.stdout.close(), proc.stdin.close(), proc.stderr.close()
        assert done == list(range(g_file + 1, g_file + 1 + len(done)))
        g_done = done[-1] if done else g_file

        res = load(path)  # never raises
        g = res.data.generation
        assert g in (g_done, g_done + 1), (g_done, g)
        got = dataclasses.replace(res.data, saved="", app_version="")
        assert got == crash_state(g), f"file at kill {kills} is not exactly generation {g}"
        outcomes["last completed" if g == g_done else "in progress"] += 1
        if g > 1:  # the backup is an older, equally consistent save (fully compared every 10th kill)
            assert read_meta(backup_path(path))["generation"] < g
            if kills % 10 == 0:
                b = load(backup_path(path)).data
                assert dataclasses.replace(b, saved="", app_version="") == crash_state(b.generation)

        pending = {proc.pid} if done else pending | {proc.pid}
        temps = temp_files(tmp_path)
        outcomes["temp left"] += bool(temps)
        assert {int(TEMP_RE.search(t.name).group(1)) for t in temps} <= pending, temps
        assert len(temps) <= 2 * len(pending)
        g_file = g
    spare.stdin.close()
    spare.wait(timeout=30)
    spare.stdout.close(), spare.stderr.close()
    info = save(crash_state(g_file + 1), path)  # a successful save cleans the killed writers' temp files
    assert temp_files(tmp_path) == [] and load(path).data.generation == info.generation
    elapsed = time.monotonic() - t0
    print(f"\ncrash test: {kills} kills in {elapsed:.1f} s, {g_file} generations saved, outcomes {outcomes}")
    assert g_file >= 10, "the writers hardly saved anything"
    assert outcomes["temp left"] > 0, "no kill landed inside a save"

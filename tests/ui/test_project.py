"""Projects in the app: save / open round trip, undo/redo, unsaved marker and prompt, autosave and
crash recovery, a second instance read-only, failed saves, and source DICOM never touched."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PySide6 import QtCore

from discviewer.linking import Provenance
from discviewer.workspace.data import Annotation


def make_window(qtbot, tmp_path, name="s.ini"):
    from discviewer.ui.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / name), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1300, 850)
    w.show()
    qtbot.waitExposed(w)
    return w


def open_project(w, qtbot, path):
    with qtbot.waitSignal(w.volume_shown, timeout=60000):
        job = w.open_project(path)
        assert job is not None
    return w.project.workspace


def shift(x=0.0, y=0.0, z=0.0):
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def edit_everything(w):
    """One edit of each stored kind, the way the app's widgets make them."""
    patient = w.study.patients[0]
    fu = patient.visits[1]
    w.browser.rename_visit(fu, "FU 3 months")
    entry = fu.series[1]
    w.browser.choose_role(entry, "T2* GRE")
    w.controller.transforms.set(fu.id, shift(1.5, -2.0, 0.5), Provenance("manual", {"note": "test"}))
    level = w.controller.transform_sets.add("L4/L5")
    level.set(fu.id, shift(0.5, 0, 0), "manual")
    note = w.project.workspace.annotations.add(
        Annotation(id="", kind="ruler", level="L4/L5", visit_id=fu.id, series_uid=entry.series_uid,
                   points=((0.0, 10.0, 20.0), (0.0, 10.0, 31.25)), values={"length_mm": 11.25},
                   units={"length_mm": "mm"}, reader="tester", method="manual ruler"))
    return fu, entry, note


def test_save_and_reopen_restores_every_edit(demo_window, qtbot, tmp_path):
    w = demo_window
    assert "untitled project" in w.windowTitle() and not w.isWindowModified()
    fu, entry, note = edit_everything(w)
    assert w.isWindowModified()
    w.wait_for_indexing()
    path = str(tmp_path / "trial.dvw")
    assert w.project.save_as(path)
    assert os.path.exists(path) and not w.isWindowModified()
    assert w.windowTitle().startswith("trial")
    assert len(w.project.workspace.sources) == sum(len(c.frames) for c in w.scan_result.series
                                                    if not c.info.source == "nifti")
    w.close()

    w2 = make_window(qtbot, tmp_path, "s2.ini")
    ws = open_project(w2, qtbot, path)
    assert not ws.read_only and not w2.isWindowModified()
    fu2 = w2.study.patients[0].visit(fu.id)
    assert fu2.label == "FU 3 months"
    assert fu2.entry(entry.key).role.value == "T2* GRE"
    np.testing.assert_array_equal(w2.controller.transform_sets["whole volume"].get(fu.id), shift(1.5, -2.0, 0.5))
    assert w2.controller.transform_sets["whole volume"].provenance(fu.id) == Provenance("manual", {"note": "test"})
    np.testing.assert_array_equal(w2.controller.transform_sets["L4/L5"].get(fu.id), shift(0.5, 0, 0))
    assert ws.annotations.get(note.id) == note
    assert [e.action for e in ws.audit][:2] == ["visit label", "series role"]
    assert ws.audit[-1].action == "open"
    # the browser shows the stored label
    assert "FU 3 months" in w2.browser.item_for_visit(fu2).text(0)
    w2.shutdown()


def test_undo_redo_actions_and_unsaved_marker(demo_window, qtbot, tmp_path):
    w = demo_window
    fu = w.study.patients[0].visits[1]
    assert not w.undo_action.isEnabled()
    w.browser.rename_visit(fu, "visit B")
    assert w.undo_action.isEnabled() and "Rename visit" in w.undo_action.text()
    assert w.isWindowModified()
    w.undo_action.trigger()
    assert fu.label == "3 m" and not w.isWindowModified()
    assert w.redo_action.isEnabled()
    w.redo_action.trigger()
    assert fu.label == "visit B" and w.isWindowModified()
    # a transform change reaches the views and is undoable from the Edit menu too
    w.controller.transforms.set(fu.id, shift(3), "manual")
    w.undo_action.trigger()
    np.testing.assert_array_equal(w.controller.transforms.get(fu.id), np.eye(4))


def test_close_asks_about_unsaved_work(demo_window, qtbot, auto_answers):
    w = demo_window
    w.browser.rename_visit(w.study.patients[0].visits[1], "changed")
    auto_answers.answers["Unsaved changes"] = "Cancel"
    assert not w.close()
    assert w.isVisible() and auto_answers.titles()[-1] == "Unsaved changes"
    auto_answers.answers["Unsaved changes"] = "Discard"
    assert w.close()


def test_save_failure_keeps_work_in_memory(demo_window, qtbot, tmp_path, auto_answers, monkeypatch):
    import errno

    from discviewer.workspace import store

    w = demo_window
    w.wait_for_indexing()
    path = str(tmp_path / "p.dvw")
    fu = w.study.patients[0].visits[1]
    w.browser.rename_visit(fu, "first")
    assert w.project.save_as(path)
    before = open(path, "rb").read()
    w.browser.rename_visit(fu, "second")

    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    assert not w.project.save()
    monkeypatch.setattr(os, "fsync", real_fsync)
    kind, title, text, _ = auto_answers.asked[-1]
    assert kind == "error" and "disk is full" in text.lower()
    assert open(path, "rb").read() == before  # nothing half-written
    assert fu.label == "second" and w.isWindowModified()  # the work is still there, still unsaved
    assert [p for p in os.listdir(tmp_path) if ".tmp" in p] == []
    assert w.project.save() and not w.isWindowModified()
    assert store.load(path).data.visit_labels[fu.id] == "second"


def test_second_instance_opens_read_only(demo_window, qtbot, tmp_path, auto_answers):
    w = demo_window
    w.wait_for_indexing()
    path = str(tmp_path / "shared.dvw")
    assert w.project.save_as(path)
    w2 = make_window(qtbot, tmp_path, "s2.ini")
    ws2 = open_project(w2, qtbot, path)
    assert ws2.read_only and "(read-only)" in w2.windowTitle()
    assert any("read-only" in a[2] and str(os.getpid()) in a[2] for a in auto_answers.asked)
    # saving a read-only project asks for another file (Save As) and never touches the locked one
    before = open(path, "rb").read()
    other = str(tmp_path / "copy.dvw")
    assert w2.project.save_as(other)
    assert open(path, "rb").read() == before and not w2.project.read_only
    w2.shutdown()
    w2.project.close()


CRASHED_WRITER = textwrap.dedent("""
    import sys
    from discviewer.workspace import store
    from discviewer.workspace.autosave import write_autosave
    project = sys.argv[1] or None
    data = store.load(sys.argv[2]).data
    data.visit_labels = {sys.argv[3]: "recovered label"}
    write_autosave(data, project, "crashed01")
""")


def test_autosave_and_recovery_after_a_crash(demo_window, qtbot, tmp_path, auto_answers):
    from discviewer.workspace.autosave import autosave_path, recoverable

    w = demo_window
    w.wait_for_indexing()
    path = str(tmp_path / "study.dvw")
    assert w.project.save_as(path)
    fu = w.study.patients[0].visits[1]
    # an edit is autosaved (debounced) beside, never over, the project file
    before = open(path, "rb").read()
    w.browser.rename_visit(fu, "autosaved")
    auto = autosave_path(path, w.project.untitled_id)
    qtbot.waitUntil(auto.exists, timeout=10000)
    assert open(path, "rb").read() == before
    assert recoverable(path) == []  # this process is alive: nothing to recover
    w.project.undo()
    w.project.save()
    assert not auto.exists()  # a save removes the autosave

    w.close()  # a clean close leaves no autosave
    assert not auto.exists()
    # a crashed app (a process that wrote an autosave and died) leaves unsaved work behind
    subprocess.run([sys.executable, "-c", CRASHED_WRITER, path, path, fu.id], check=True,
                   env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert [a.project for a in recoverable(path)] == [path]
    w2 = make_window(qtbot, tmp_path, "s2.ini")
    auto_answers.answers["Recover unsaved work?"] = "Recover"
    ws = open_project(w2, qtbot, path)
    assert w2.study.patients[0].visit(fu.id).label == "recovered label"
    assert ws.is_dirty and w2.isWindowModified() and ws.audit[-1].action == "recover autosave"
    w2.project.save()
    w2.shutdown()
    w2.project.close()


def test_untitled_work_is_offered_at_start(qtbot, tmp_path, auto_answers, demo):
    from discviewer.workspace import store
    from discviewer.workspace.data import WorkspaceData

    seed = tmp_path / "seed.dvw"
    store.save(WorkspaceData(name="lost work", settings={"link_level": "whole volume"}), seed)
    subprocess.run([sys.executable, "-c", CRASHED_WRITER, "", str(seed), "x"], check=True,
                   env={**os.environ, "PYTHONPATH": os.getcwd()})
    w = make_window(qtbot, tmp_path)
    auto_answers.answers["Recover unsaved work?"] = "Recover"
    ws = w.project.offer_recovery()
    assert ws is not None and ws.name == "lost work" and ws.is_dirty and ws.path is None
    assert w.project.offer_recovery() is None  # only once
    w.shutdown()
    w.project.close()


def sha_tree(folder) -> dict[str, tuple[str, int]]:
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            out[p] = (hashlib.sha256(open(p, "rb").read()).hexdigest(), os.stat(p).st_mtime_ns)
    return out


def test_source_dicom_is_never_modified(qtbot, tmp_path, demo):
    """A full session — open, hang, register, annotate, save, export a screenshot, reopen, undo,
    save again — leaves every source file byte-identical with the same mtime."""
    before = sha_tree(demo)
    w = make_window(qtbot, tmp_path)
    with qtbot.waitSignal(w.volume_shown, timeout=60000):
        w.open_path(demo)
    with qtbot.waitSignal(w.controller.all_loaded, timeout=60000):
        w.actions_by_name["hang"].trigger()
    with qtbot.waitSignal(w.controller.registration_finished, timeout=120000):
        w.actions_by_name["register"].trigger()
    edit_everything(w)
    w.wait_for_indexing()
    path = str(tmp_path / "session.dvw")
    assert w.project.save_as(path)
    assert w.grab_with_views().save(str(tmp_path / "export.png"))
    w.close()
    w2 = make_window(qtbot, tmp_path, "s2.ini")
    open_project(w2, qtbot, path)
    w2.project.undo()
    assert w2.project.save()
    w2.shutdown()
    w2.project.close()
    assert sha_tree(demo) == before


def test_moved_sources_are_reported_and_relinked(qtbot, tmp_path, demo, auto_answers):
    import shutil

    study = tmp_path / "study"
    shutil.copytree(demo, study)
    w = make_window(qtbot, tmp_path)
    with qtbot.waitSignal(w.volume_shown, timeout=60000):
        w.open_path(study)
    fu = w.study.patients[0].visits[1]
    w.browser.rename_visit(fu, "kept")
    path = str(tmp_path / "p.dvw")
    assert w.project.save_as(path)
    n_sources = len(w.project.workspace.sources)
    assert n_sources > 0
    w.close()
    moved = tmp_path / "archive" / "study-moved"
    moved.parent.mkdir()
    shutil.move(str(study), str(moved))

    w2 = make_window(qtbot, tmp_path, "s2.ini")
    assert w2.open_project(path) is None  # nothing left to scan where the files were
    kind, title, text, buttons = auto_answers.asked[-1]
    assert title == "Source files moved or changed" and "Relink…" in buttons
    assert f"{n_sources} of {n_sources}" in text and str(study) in text
    with qtbot.waitSignal(w2.volume_shown, timeout=60000):
        assert w2.relink_sources(tmp_path / "archive") is not None
    assert all(s.path.startswith(str(moved)) for s in w2.project.workspace.sources)
    assert w2.study.patients[0].visit(fu.id).label == "kept" and w2.isWindowModified()
    assert w2.project.workspace.audit[-1].action == "relink sources"
    w2.shutdown()
    w2.project.close()


def test_damaged_project_opens_from_its_backup(demo_window, qtbot, tmp_path, auto_answers):
    w = demo_window
    fu = w.study.patients[0].visits[1]
    path = str(tmp_path / "p.dvw")
    w.browser.rename_visit(fu, "first save")
    assert w.project.save_as(path)
    w.browser.rename_visit(fu, "second save")
    assert w.project.save()
    w.close()
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])  # truncated, e.g. by a failing disk

    w2 = make_window(qtbot, tmp_path, "s2.ini")
    auto_answers.answers["Project file damaged"] = "Open backup"
    ws = open_project(w2, qtbot, path)
    asked = [a for a in auto_answers.asked if a[1] == "Project file damaged"][0]
    assert path in asked[2] and ".bak" in asked[2]
    assert w2.study.patients[0].visit(fu.id).label == "first save"
    assert ws.path == path and ws.is_dirty  # saving puts a good file back in place
    assert w2.project.save()
    from discviewer.workspace import store

    assert store.load(path).data.visit_labels[fu.id] == "first save"
    w2.shutdown()
    w2.project.close()


def test_reopened_project_loads_from_the_voxel_cache(demo_window, qtbot, tmp_path, monkeypatch):
    w = demo_window
    path = str(tmp_path / "cached.dvw")
    assert w.project.save_as(path)
    w.close()
    w2 = make_window(qtbot, tmp_path, "s2.ini")
    open_project(w2, qtbot, path)  # first open: parsed from DICOM, then written to the cache
    shown = w2.slice_view.volume
    entries, nbytes = w2.project.voxels.stats()
    assert entries >= 1 and nbytes >= shown.array.nbytes
    assert os.path.isdir(path + ".voxels")
    w2.close()

    import discviewer.io as dio

    def no_dicom(*a, **k):
        raise AssertionError("volume parsed from DICOM although it is in the voxel cache")

    monkeypatch.setattr(dio, "load", no_dicom)
    w3 = make_window(qtbot, tmp_path, "s3.ini")
    open_project(w3, qtbot, path)
    again = w3.slice_view.volume
    np.testing.assert_array_equal(again.array, shown.array)
    np.testing.assert_array_equal(again.affine, shown.affine)
    assert not again.array.flags.writeable  # memory-mapped, read-only: the source of truth stays intact
    w3.shutdown()
    w3.project.close()

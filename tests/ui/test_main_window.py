"""MainWindow with a fake io: scanning, problems, auto-selection, loading, stale results, status bar."""
import os

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

import discviewer
from discviewer.ui.main_window import MainWindow, about_text
from discviewer.ui.study_browser import ROLE_KIND
from discviewer.ui.workers import make_scan_job

Qt = QtCore.Qt


@pytest.fixture
def window(qtbot, fake_io):
    w = MainWindow(scan_fn=fake_io.scan, load_fn=fake_io.load)
    qtbot.addWidget(w)
    w.resize(1100, 700)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def open_and_wait(qtbot, window, path="/fake/study"):
    with qtbot.waitSignal(window.volume_shown, timeout=5000):
        window.open_path(path)


def test_title_menus_and_about(window):
    assert window.windowTitle() == "untitled project[*] — discviewer" and not window.isWindowModified()
    menus = {a.text().replace("&", ""): a.menu() for a in window.menuBar().actions()}
    assert set(menus) >= {"File", "Edit", "Help"}
    file_items = [a.text().replace("&", "") for a in menus["File"].actions() if not a.isSeparator()]
    assert file_items == ["New project", "Open project…", "Open folder…", "Open file…", "Open recent",
                          "Query/Retrieve…", "Save project", "Save project as…", "Relink sources…", "Export", "Quit"]
    assert [a.text().replace("&", "") for a in menus["Edit"].actions() if not a.isSeparator()] == [
        "Undo", "Redo", "Preferences…"]
    assert [a.text().replace("&", "") for a in menus["Help"].actions()] == ["Keyboard and mouse…", "About discviewer"]
    assert discviewer.RESEARCH_USE_NOTICE in about_text() and discviewer.__version__ in about_text()


def test_open_fills_browser_and_shows_first_series(window, qtbot, fake_io):
    open_and_wait(qtbot, window)
    b = window.browser
    tree = b.tree
    # patient → 2 studies ordered by date (baseline first) → 3 series each, then the problems node
    patient = tree.topLevelItem(0)
    assert patient.text(0) == "DOE, JANE (P1)"
    studies = [patient.child(i).text(0) for i in range(patient.childCount())]
    assert studies[0] == "baseline · 2020-01-01 · day 0 · Lumbar spine"
    assert studies[1].startswith("14 m · 2021-03-01 · day +425")
    first_study = patient.child(0)
    rows = [[first_study.child(i).text(c) for c in range(5)] for i in range(first_study.childCount())]
    assert rows[1] == ["2 T2 sag · sag", "T2 sag", "7", "40×60", "90 ms"]
    assert rows[0][1] == "localizer"
    # problems: count in the status bar, listed with reasons in a collapsed node
    assert window.problems_label.text() == "Problems: 2"
    prob = b.problems_item
    assert prob is not None and prob.text(0) == "Problems (2)" and not prob.isExpanded()
    assert prob.data(0, ROLE_KIND) == "problems"
    texts = [prob.child(i).text(0) for i in range(prob.childCount())]
    assert "notes.txt — not a DICOM file" in texts
    assert "/fake/broken.dcm" in prob.child(1).toolTip(0) and "truncated" in prob.child(1).toolTip(0)
    # first non-localizer series of the first (baseline) study is auto-selected and shown, middle slice
    shown = window.current_candidate
    assert shown.info.series_description == "T2 sag" and shown.info.study_date == "20200101"
    assert b.current_candidate() is shown
    view = window.slice_view
    assert view.slice_index == 3 and view.slice_count == 7
    assert view.volume.array.shape == (7, 40, 60)
    assert window.slice_label.text() == "Slice 4/7"
    assert window.series_label.text() == "baseline · T2 sag"
    assert view.overlay_text("series") == "baseline · T2 sag"
    assert view.capture().std() > 0  # really drawn
    assert fake_io.scan_calls == ["/fake/study"]


def test_selecting_a_series_loads_and_shows_middle_slice(window, qtbot, fake_io):
    open_and_wait(qtbot, window)
    t1 = next(c for c in window.browser.candidates() if c.info.series_description == "T1 sag")
    item = window.browser.item_for(t1)
    with qtbot.waitSignal(window.volume_shown, timeout=5000) as blocker:
        window.browser.tree.setCurrentItem(item)  # as a user click does
    vol = blocker.args[0]
    assert window.current_candidate is t1
    assert vol.array.shape == (5, 40, 60) and window.slice_view.volume is vol
    assert window.slice_view.slice_index == 2
    assert window.slice_view.overlay_text("series") == "baseline · T1 sag"
    assert fake_io.load_calls[-1] is t1


def test_status_bar_shows_cursor_position_and_value(window, qtbot):
    open_and_wait(qtbot, window)
    view = window.slice_view
    vol = view.volume
    p = vol.index_to_patient([12, 25, 3])
    view.render_now()
    pos = view.widget_point_for_patient(p)
    qtbot.mouseMove(view.viewport(), pos.toPoint())
    qtbot.waitUntil(lambda: window.cursor_label.text() != "", timeout=2000)
    text = window.cursor_label.text()
    x, y, z = p
    assert f"LPS ({x:.0f}." in text or f"LPS ({x:.1f}" in text
    assert f"value {int(vol.array[3, 25, 12])}" in text


def test_scan_cancel_stops_worker_and_window_stays_responsive(window, qtbot, fake_io):
    fake_io.scan_steps, fake_io.scan_delay = 400, 0.01
    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    job = window.open_path("/fake/slow")
    dlg = window.progress_dialog
    assert dlg is not None
    qtbot.waitUntil(lambda: dlg.isVisible() and dlg.maximum() == 400, timeout=3000)
    assert "of 400 files" in dlg.labelText()
    outcome = []
    job.cancelled.connect(lambda *a: outcome.append("cancelled"))
    job.succeeded.connect(lambda *a: outcome.append("succeeded"))
    cancel_button = dlg.findChild(QtWidgets.QPushButton)
    assert cancel_button.text() == "Cancel"
    qtbot.mouseClick(cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(outcome), timeout=3000)
    timer.stop()
    assert outcome == ["cancelled"]
    assert fake_io.steps_done < 400
    assert len(ticks) > 3  # the GUI event loop kept running during the scan
    assert window.browser.candidates() == [] and window.progress_dialog is None
    assert not window.is_scanning()


def test_scan_job_cancel_directly(qtbot, fake_io):
    fake_io.scan_steps, fake_io.scan_delay = 400, 0.01
    job = make_scan_job(["/fake/a"], fake_io.scan)
    with qtbot.waitSignal(job.cancelled, timeout=3000):
        job.start()
        qtbot.waitUntil(lambda: fake_io.steps_done >= 2, timeout=3000)
        job.cancel()
    job.wait(2000)
    assert fake_io.steps_done < 400 and job.outcome == "cancelled"


def test_stale_scan_result_is_dropped(window, qtbot, fake_io):
    from discviewer.io.types import ScanResult

    fake_io.scan_steps, fake_io.scan_delay = 10, 0.02
    fake_io.results_by_path["/fake/new"] = ScanResult(series=[fake_io.result.series[1]])
    outcomes = []
    old = window.open_path("/fake/old")
    old.succeeded.connect(lambda *a: outcomes.append("old done"))
    old.cancelled.connect(lambda *a: outcomes.append("old cancelled"))
    new = window.open_path("/fake/new")  # supersedes the first scan
    new.succeeded.connect(lambda *a: outcomes.append("new done"))
    with qtbot.waitSignal(window.volume_shown, timeout=5000):
        pass
    qtbot.waitUntil(lambda: len(outcomes) == 2, timeout=3000)
    QtWidgets.QApplication.processEvents()
    assert len(window.browser.candidates()) == 1
    assert window.scan_result is fake_io.results_by_path["/fake/new"]
    assert "new done" in outcomes


def test_stale_load_result_is_dropped(window, qtbot, fake_io):
    open_and_wait(qtbot, window)
    cands = [c for c in window.browser.candidates() if not c.is_localizer]
    slow, fast = cands[1], cands[2]
    fake_io.load_delays[id(slow)] = 0.4
    shown = []
    window.volume_shown.connect(shown.append)
    window.load_candidate(slow)
    with qtbot.waitSignal(window.volume_shown, timeout=5000):
        window.load_candidate(fast)  # supersedes the slow load
    qtbot.wait(700)  # the slow result arrives meanwhile … and is dropped
    assert len(shown) == 1 and window.current_candidate is fast
    assert window.slice_view.volume is shown[0] and shown[0].shape[0] == fast.slice_count
    assert any(c is slow for c in fake_io.load_calls) and any(c is fast for c in fake_io.load_calls)


def test_scan_failure_is_reported(window, qtbot, fake_io):
    fake_io.scan_error = OSError("permission denied: /fake/locked")
    with qtbot.waitSignal(window.scan_failed, timeout=5000) as blocker:
        window.open_path("/fake/locked")
    assert "permission denied" in blocker.args[0]
    assert "Scan failed" in window.statusBar().currentMessage()
    assert window._message_box is not None and window._message_box.isVisible()
    window._message_box.close()


def test_drop_folder_opens_it(window, qtbot, fake_io, tmp_path):
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(tmp_path))])
    pos = QtCore.QPointF(300, 300)
    enter = QtGui.QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                  Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QtGui.QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.volume_shown, timeout=5000):
        window.dropEvent(drop)
    assert fake_io.scan_calls == [os.fspath(tmp_path)]


def test_research_notice_visible_in_window(window, qtbot):
    open_and_wait(qtbot, window)
    assert window.slice_view.overlay_text("notice") == discviewer.RESEARCH_USE_NOTICE
    # the bottom-right corner of the view (where the notice sits) is not black
    rgb = window.slice_view.capture()
    h, w, _ = rgb.shape
    corner = rgb[int(h * 0.93):, int(w * 0.5):]
    assert corner.max() > 100

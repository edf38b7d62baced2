"""File → Query/Retrieve… against the real Orthanc of tests/pacs_orthanc.py (under Xvfb): nodes kept in
the preferences, Test (C-ECHO) and a rejected AE title shown as a message — in the Query/Retrieve dialog
and on the Preferences dialog's PACS page (also a node where nothing listens) — a study search filling
the table, and Retrieve bringing the selected study into the cache and opening it in the window."""
from __future__ import annotations

import re

import pytest
from PySide6 import QtCore

from discviewer.pacs import SeriesCache
from discviewer.ui.preferences_ui import PreferencesStore
from tests.pacs_orthanc import free_port, orthanc  # noqa: F401 — the fixture

PATIENT_ID = "DVPH0-01"


@pytest.fixture
def window(qtbot, tmp_path):
    from discviewer.ui.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    w.pacs.cache = SeriesCache(tmp_path / "pacs-cache")
    yield w
    if w.pacs.dialog is not None:
        w.pacs.dialog.cancel()
        w.pacs.dialog.wait()
    w.shutdown()


def test_nodes_test_button_and_rejection(window, orthanc, qtbot):
    assert window.pacs.action in window.menuBar().actions()[0].menu().actions()
    dlg = window.pacs.open_dialog()
    assert dlg.node() is None and not dlg.test_button.isEnabled()
    dlg.set_nodes([orthanc.node(), orthanc.node(name="wrong AE", called_ae="NOT-ORTHANC")], "test-orthanc")
    assert [n.name for n in window.pacs.nodes()] == ["test-orthanc", "wrong AE"]
    assert [n.name for n in PreferencesStore(window.settings).nodes()] == ["test-orthanc", "wrong AE"]  # stored
    with qtbot.waitSignal(dlg.echo_finished, timeout=20000):
        dlg.test_node()
    assert "OK" in dlg.status.text()
    dlg.node_combo.setCurrentIndex(1)
    with qtbot.waitSignal(dlg.failed, timeout=20000) as sig:
        dlg.test_node()
    assert "rejected the association" in sig.args[0] and "'NOT-ORTHANC'" in dlg.status.text()


def test_preferences_pacs_page_test_button(window, orthanc, qtbot):
    nowhere = orthanc.node(name="nothing there", port=free_port())
    window.prefs_ui.set_pacs_nodes([orthanc.node(), orthanc.node(name="wrong AE", called_ae="NOT-ORTHANC"), nowhere])
    qr = window.pacs.open_dialog()
    qr.edit_nodes_button.click()  # Query/Retrieve → Edit nodes… → Preferences, PACS page
    dlg = window.prefs_ui.dialog
    qtbot.waitExposed(dlg)
    panel = dlg.pacs_panel
    assert dlg.stack.currentWidget() is panel and panel.current_node().name == "test-orthanc"
    with qtbot.waitSignal(panel.echo_finished, timeout=20000):
        panel.test_button.click()
    assert re.fullmatch(r"test-orthanc: OK — \d+ ms", panel.test_label.text()), panel.test_label.text()
    qtbot.waitUntil(panel.test_button.isEnabled, timeout=5000)

    panel.select("wrong AE")
    with qtbot.waitSignal(panel.echo_failed, timeout=20000) as sig:
        panel.test_button.click()
    assert "rejected the association" in sig.args[0] and "'NOT-ORTHANC'" in panel.test_label.text()
    qtbot.waitUntil(panel.test_button.isEnabled, timeout=5000)

    panel.select("nothing there")
    with qtbot.waitSignal(panel.echo_failed, timeout=20000) as sig:
        assert panel.test_node() is not None
        assert not panel.test_button.isEnabled() and "Testing nothing there" in panel.test_label.text()
    assert sig.args[0] == panel.test_label.text()
    assert "Cannot reach" in sig.args[0] and f"127.0.0.1:{nowhere.port}" in sig.args[0]
    qtbot.waitUntil(panel.test_button.isEnabled, timeout=5000)
    dlg.reject()


def test_search_retrieve_and_open(window, orthanc, qtbot):
    dlg = window.pacs.open_dialog()
    dlg.set_nodes([orthanc.node()])
    dlg.level.setCurrentText("study")
    dlg.patient_id.setText(PATIENT_ID)
    with qtbot.waitSignal(dlg.search_finished, timeout=20000) as sig:
        dlg.search()
    studies = sig.args[0]
    assert dlg.table.rowCount() == len(studies) == 5
    assert not dlg.retrieve_button.isEnabled()
    dlg.select_rows([0])
    qtbot.waitUntil(dlg.retrieve_button.isEnabled, timeout=5000)
    with qtbot.waitSignal(window.scan_finished, timeout=40000) as opened:
        with qtbot.waitSignal(dlg.retrieve_finished, timeout=30000) as got:
            dlg.retrieve_selected()
    result = got.args[0]
    assert len(result.retrieved) == 3 and all(p.startswith(str(window.pacs.cache.root)) for p in result.paths)
    scan = opened.args[0]
    assert {c.info.study_uid for c in scan.series} == {studies[0].study_uid} and not scan.problems
    assert dlg.table.item(0, dlg.table.columnCount() - 1).text() == "yes"  # the Cached column
    # again: everything is skipped (already cached)
    dlg.open_after.setChecked(False)
    with qtbot.waitSignal(dlg.retrieve_finished, timeout=30000) as again:
        dlg.retrieve_selected()
    assert again.args[0].retrieved == [] and len(again.args[0].skipped) == 3
    assert "3 already in the cache" in dlg.status.text()

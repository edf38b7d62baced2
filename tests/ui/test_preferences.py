"""Preferences: round trip through the dialog and QSettings, restore defaults, restored on start of a
new MainWindow, applied to the running app; the PACS page (node form, validation, the one node store
that File → Query/Retrieve… reads, migration of the old "pacs/nodes" settings key)."""
from __future__ import annotations

import json
import logging

import pytest
from PySide6 import QtCore, QtWidgets

from discviewer.pacs import RemoteNode, nodes_to_json
from discviewer.preferences import Preferences, WindowPreset
from discviewer.ui.preferences_ui import PreferencesDialog, PreferencesStore, app_settings

OK = QtWidgets.QDialogButtonBox.StandardButton.Ok
NODE_A = RemoteNode("Hospital PACS", host="pacs.example.org", port=11112, called_ae="HOSPPACS", calling_ae="DV-LAB")
NODE_B = RemoteNode("Orthanc web", transport="dicomweb", url="http://10.0.0.5:8042/dicom-web")


def _settings(path):
    return QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, tmp_path):
    made = []

    def make(settings_file=None):
        from discviewer.ui.main_window import MainWindow

        w = MainWindow(settings=_settings(settings_file or tmp_path / "settings.ini"))
        qtbot.addWidget(w)
        made.append(w)
        return w

    yield make
    for w in made:
        w.shutdown()


def _fill(dlg: PreferencesDialog, *, reader="Reader A"):
    dlg.scheme_combo.setCurrentIndex(dlg.scheme_combo.findData("crosshair"))
    dlg.preset_table.set_presets([WindowPreset("Disc", 420.0, 900.0)])
    dlg.preset_table.add_preset(WindowPreset("Fluid", 1500.0, 3000.0))
    dlg.protocol_combo.setCurrentIndex(dlg.protocol_combo.findData("T2 and gradient echo"))
    dlg.autosave_spin.setValue(120)
    dlg.scale_spin.setValue(2.0)
    dlg.deid_box.setChecked(False)
    dlg.reader_edit.setText(reader)


def test_store_round_trip(tmp_path):
    p = Preferences(mouse_scheme="crosshair", wl_presets=[WindowPreset("A", 1.5, 2.0)], autosave_interval_s=30,
                    export_scale=4.0, export_deidentified=False, reader_name="r", acknowledged_version="0.1.0",
                    pacs_nodes=[NODE_A.to_dict(), NODE_B.to_dict()])
    PreferencesStore(_settings(tmp_path / "s.ini")).save(p)
    assert PreferencesStore(_settings(tmp_path / "s.ini")).load() == p  # a fresh QSettings reads the file


def test_store_ignores_bad_values(tmp_path):
    s = _settings(tmp_path / "s.ini")
    s.setValue("preferences/autosave_interval_s", "not json")
    s.setValue("preferences/export_scale", "2.5")
    s.setValue("preferences/mouse_scheme", '"trackball"')
    s.sync()
    p = PreferencesStore(_settings(tmp_path / "s.ini")).load()
    assert p.autosave_interval_s == 60 and p.export_scale == 2.5 and p.mouse_scheme == "pacs"


def test_settings_file_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCVIEWER_SETTINGS", str(tmp_path / "env.ini"))
    s = app_settings()
    assert s.fileName() == str(tmp_path / "env.ini") and s.format() == QtCore.QSettings.Format.IniFormat


def test_dialog_round_trip_applies_and_persists(make_window, tmp_path, qtbot):
    w = make_window()
    assert w.prefs_ui.action.shortcut().toString() == "Ctrl+,"
    edit_menu = next(a.menu() for a in w.menuBar().actions() if a.text().replace("&", "") == "Edit")
    assert w.prefs_ui.action in edit_menu.actions()
    w.prefs_ui.action.trigger()
    dlg = w.prefs_ui.dialog
    assert dlg is not None and dlg.isVisible()
    assert dlg.scale_spin.value() == 3.0 and dlg.deid_box.isChecked() and dlg.scheme_combo.currentData() == "pacs"
    _fill(dlg)
    dlg.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).click()
    assert not dlg.isVisible()

    stored = PreferencesStore(_settings(tmp_path / "settings.ini")).load()
    assert stored.mouse_scheme == "crosshair" and stored.autosave_interval_s == 120
    assert stored.wl_presets == [WindowPreset("Disc", 420.0, 900.0), WindowPreset("Fluid", 1500.0, 3000.0)]
    assert stored.hanging_protocol == "T2 and gradient echo" and stored.export_scale == 2.0
    assert stored.export_deidentified is False and stored.reader_name == "Reader A"

    # applied to the running window
    assert w.actions_by_name["crosshair"].isChecked()
    assert w.project.autosave_interval_s == 120
    assert [a.text() for a in w.prefs_ui.preset_actions()] == ["Disc", "Fluid"]
    assert all(a in w.prefs_ui.wl_menu().actions() for a in w.prefs_ui.preset_actions())
    assert w.controller.protocol.name == "T2 and gradient echo"
    assert w.protocol_combo.currentText() == "T2 and gradient echo"
    assert w.project.workspace.user == "Reader A"
    w.project.new_project()
    assert w.project.workspace.user == "Reader A"  # new annotations of the next project too
    from discviewer.ui.export_ui import ExportDialog

    d = ExportDialog(w, "Export", path=str(tmp_path / "x.png"))
    assert d.scale == 2.0 and d.identifying  # export defaults
    d.deleteLater()

    # reopening shows the stored values
    dlg2 = w.prefs_ui.open_dialog()
    assert dlg2 is not dlg and dlg2.autosave_spin.value() == 120 and dlg2.reader_edit.text() == "Reader A"
    dlg2.reject()


def test_invalid_preset_keeps_the_dialog_open(make_window):
    w = make_window()
    dlg = w.prefs_ui.open_dialog()
    dlg.preset_table.add_preset(WindowPreset("Bad", 10.0, 10.0))
    dlg.preset_table.table.item(dlg.preset_table.table.rowCount() - 1, 2).setText("-5")
    dlg.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).click()
    assert dlg.isVisible() and "width must be positive" in dlg.error_label.text()
    assert PreferencesStore(w.settings).load() == Preferences()  # nothing stored
    dlg.reject()


def test_restore_defaults(make_window, tmp_path):
    w = make_window()
    w.prefs_ui.set_preferences(Preferences(mouse_scheme="crosshair", autosave_interval_s=500, reader_name="r",
                                           acknowledged_version="0.1.0", export_scale=5.0))
    dlg = w.prefs_ui.open_dialog()
    assert dlg.autosave_spin.value() == 500
    dlg.restore_button.click()
    assert dlg.autosave_spin.value() == 60 and dlg.scheme_combo.currentData() == "pacs"
    assert dlg.reader_edit.text() == "" and dlg.scale_spin.value() == 3.0
    dlg.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).click()
    stored = PreferencesStore(_settings(tmp_path / "settings.ini")).load()
    assert stored == Preferences(acknowledged_version="0.1.0")  # the acknowledgement survives
    assert not w.actions_by_name["crosshair"].isChecked() and w.project.autosave_interval_s == 60
    # and without the dialog
    w.prefs_ui.set_preferences(Preferences(autosave_interval_s=42, acknowledged_version="0.1.0"))
    assert w.prefs_ui.restore_defaults() == Preferences(acknowledged_version="0.1.0")
    assert w.project.autosave_interval_s == 60


def test_restored_on_start_of_a_new_window(make_window, tmp_path):
    w1 = make_window(tmp_path / "shared.ini")
    w1.prefs_ui.set_preferences(Preferences(mouse_scheme="crosshair", hanging_protocol="Baseline vs latest",
                                            autosave_interval_s=90, reader_name="Reader B",
                                            wl_presets=[WindowPreset("Mine", 1.0, 2.0)]))
    w1.shutdown()
    w2 = make_window(tmp_path / "shared.ini")
    assert w2.preferences.reader_name == "Reader B" and w2.prefs_ui.preferences == w1.prefs_ui.preferences
    assert w2.actions_by_name["crosshair"].isChecked()
    assert w2.controller.protocol.name == "Baseline vs latest"
    assert w2.protocol_combo.currentText() == "Baseline vs latest"
    assert w2.project.autosave_interval_s == 90 and w2.project.workspace.user == "Reader B"
    assert [a.text() for a in w2.prefs_ui.preset_actions()] == ["Mine"]


def test_applied_to_views_and_presets(demo_window, qtbot):
    w = demo_window
    view = w.slice_view
    assert view.mouse_scheme == "pacs"
    w.prefs_ui.set_preferences(Preferences(mouse_scheme="crosshair", wl_presets=[WindowPreset("Test", 321.0, 654.0)]))
    assert view.mouse_scheme == "crosshair"
    w.prefs_ui.preset_actions()[0].trigger()
    assert view.window() == pytest.approx((321.0, 654.0))
    with qtbot.waitSignal(w.volume_shown, timeout=30000):
        w.actions_by_name["hang"].trigger()
    qtbot.waitUntil(lambda: not w.is_loading(), timeout=30000)
    assert w.review.view_frames() and all(f.view.mouse_scheme == "crosshair" for f in w.review.view_frames()
                                          if f.view.volume is not None)


# ------------------------------------------------------------------------------------------------ PACS
def test_store_keeps_only_valid_nodes(tmp_path, caplog):
    s = _settings(tmp_path / "s.ini")
    bad_ae = dict(NODE_A.to_dict(), name="long AE", called_ae="X" * 17)
    s.setValue("preferences/pacs_nodes", json.dumps([NODE_A.to_dict(), bad_ae, {"host": "no-name"},
                                                     dict(NODE_A.to_dict(), port="x"), NODE_A.to_dict(), 7,
                                                     dict(NODE_B.to_dict(), name="  padded  ")]))
    s.sync()
    with caplog.at_level(logging.WARNING, logger="discviewer.ui.preferences_ui"):
        prefs = PreferencesStore(_settings(tmp_path / "s.ini")).load()
    text = caplog.text
    assert [d["name"] for d in prefs.pacs_nodes] == ["Hospital PACS", "padded"]  # validated: stripped
    assert PreferencesStore(_settings(tmp_path / "s.ini")).nodes() == [
        NODE_A, RemoteNode.from_dict(dict(NODE_B.to_dict(), name="padded"))]
    assert "longer than 16 characters" in text and "second node named 'Hospital PACS'" in text
    assert "node 3 in the preferences skipped: the node has no name" in text
    assert text.count("skipped") == 5


def _add_through_form(panel, qtbot, **fields):
    form = panel.add_node()
    qtbot.waitExposed(form)
    for name, value in fields.items():
        w = getattr(form, name)
        if isinstance(w, QtWidgets.QLineEdit):
            w.setText(value)
        elif isinstance(w, QtWidgets.QComboBox):
            w.setCurrentIndex(w.findData(value))
        else:
            w.setValue(value)
    form.ok_button.click()
    return form


def test_pacs_page_round_trip_reaches_query_retrieve(make_window, tmp_path, qtbot):
    w1 = make_window(tmp_path / "shared.ini")
    dlg = w1.prefs_ui.open_dialog("PACS")
    qtbot.waitExposed(dlg)
    assert dlg.stack.currentWidget() is dlg.pacs_panel and dlg.page_list.currentItem().text() == "PACS"
    panel = dlg.pacs_panel
    assert panel.nodes() == [] and not panel.test_button.isEnabled() and not panel.edit_button.isEnabled()
    form = _add_through_form(panel, qtbot, name="Hospital PACS", host="pacs.example.org", port=11112,
                             called="HOSPPACS", calling="DV-LAB")
    assert not form.isVisible() and form.result() == QtWidgets.QDialog.DialogCode.Accepted
    form = _add_through_form(panel, qtbot, name="Orthanc web", transport="dicomweb",
                             url="http://10.0.0.5:8042/dicom-web/")
    assert not form.isVisible()
    assert panel.nodes() == [NODE_A, NODE_B]  # the URL's trailing slash is dropped
    assert panel.table.rowCount() == 2 and panel.current_node() == NODE_B
    cells = [[panel.table.item(r, c).text() for c in range(panel.table.columnCount())] for r in range(2)]
    assert cells[0] == ["Hospital PACS", "DIMSE", "pacs.example.org:11112", "HOSPPACS", "DV-LAB", "C-GET"]
    assert cells[1][:3] == ["Orthanc web", "DICOMweb", "http://10.0.0.5:8042/dicom-web"]
    # edit: C-MOVE for the first; remove the second
    panel.select("Hospital PACS")
    form = panel.edit_node()
    assert form.name.text() == "Hospital PACS" and form.port.value() == 11112
    form.retrieve.setCurrentIndex(form.retrieve.findData("move"))
    form.ok_button.click()
    assert panel.nodes()[0].retrieve == "move" and panel.table.item(0, 5).text() == "C-MOVE (port 11113)"
    panel.select("Orthanc web")
    panel.remove_button.click()
    assert [n.name for n in panel.nodes()] == ["Hospital PACS"]
    _add_through_form(panel, qtbot, name="Orthanc web", transport="dicomweb", url="http://10.0.0.5:8042/dicom-web")
    dlg.buttons.button(OK).click()
    assert not dlg.isVisible()
    moved = RemoteNode.from_dict(dict(NODE_A.to_dict(), retrieve="move"))
    assert PreferencesStore(_settings(tmp_path / "shared.ini")).nodes() == [moved, NODE_B]
    assert w1.pacs.nodes() == [moved, NODE_B]
    w1.shutdown()

    w2 = make_window(tmp_path / "shared.ini")
    qr = w2.pacs.open_dialog()
    assert [qr.node_combo.itemText(i) for i in range(qr.node_combo.count())] == ["Hospital PACS", "Orthanc web"]
    assert qr.node() == moved
    qr.close()


def test_node_form_refuses_invalid_values_with_a_message(make_window, qtbot):
    w = make_window()
    w.prefs_ui.set_pacs_nodes([NODE_A])
    dlg = w.prefs_ui.open_dialog("PACS")
    panel = dlg.pacs_panel
    form = _add_through_form(panel, qtbot, name="New", host="10.0.0.9", called="THIS-TITLE-IS-TOO-LONG")
    assert form.isVisible() and "longer than 16 characters" in form.error.text()
    assert form.error.isVisible()
    form.called.setText("BACK\\SLASH")
    assert "backslash" in form.error.text()  # the message follows the edits once OK was refused
    form.called.setText("NEWPACS")
    assert form.error.text() == ""
    form.name.setText("Hospital PACS")
    form.ok_button.click()
    assert form.isVisible() and "exists already" in form.error.text()
    form.name.setText("New")
    form.host.setText("")
    form.ok_button.click()
    assert form.isVisible() and "has no host" in form.error.text()
    form.host.setText("10.0.0.9")
    form.transport.setCurrentIndex(form.transport.findData("dicomweb"))
    assert not form.host.isVisible() and form.url.isVisible()
    form.ok_button.click()
    assert form.isVisible() and "not an http(s) URL" in form.error.text()
    form.reject()
    assert panel.nodes() == [NODE_A]  # nothing added
    dlg.buttons.button(OK).click()
    assert PreferencesStore(w.settings).nodes() == [NODE_A]


def test_migrates_the_old_node_key_once(make_window, tmp_path, caplog):
    path = tmp_path / "old.ini"
    s = _settings(path)
    bad = RemoteNode("bad", host="h", called_ae="A\\B")
    s.setValue("pacs/nodes", nodes_to_json([NODE_A, bad, NODE_B]))
    s.setValue("preferences/reader_name", json.dumps("Reader C"))
    s.sync()
    del s
    with caplog.at_level(logging.WARNING, logger="discviewer.ui.preferences_ui"):
        w = make_window(path)
    assert "backslash" in caplog.text
    assert w.pacs.nodes() == [NODE_A, NODE_B] and w.preferences.reader_name == "Reader C"
    fresh = _settings(path)
    assert not fresh.contains("pacs/nodes")  # the old key is gone …
    assert [d["name"] for d in json.loads(fresh.value("preferences/pacs_nodes"))] == ["Hospital PACS", "Orthanc web"]
    qr = w.pacs.open_dialog()
    assert qr.node_combo.count() == 2
    qr.close()
    # … so a node list emptied later stays empty; an old key beside stored nodes is not read
    w.prefs_ui.set_pacs_nodes([])
    assert PreferencesStore(_settings(path)).nodes() == []
    s = _settings(path)
    s.setValue("pacs/nodes", nodes_to_json([NODE_B]))
    s.setValue("preferences/pacs_nodes", json.dumps([NODE_A.to_dict()]))
    s.sync()
    assert PreferencesStore(_settings(path)).nodes() == [NODE_A] and _settings(path).contains("pacs/nodes")
    # an unreadable old value is left alone (logged)
    s.setValue("pacs/nodes", "{not json")
    s.setValue("preferences/pacs_nodes", "[]")
    s.sync()
    assert PreferencesStore(_settings(path)).nodes() == [] and _settings(path).value("pacs/nodes") == "{not json"


def test_restore_defaults_asks_before_removing_nodes(make_window, auto_answers):
    w = make_window()
    w.prefs_ui.set_preferences(Preferences(autosave_interval_s=500, pacs_nodes=[NODE_A.to_dict()]))
    dlg = w.prefs_ui.open_dialog("PACS")
    auto_answers.answers["Restore defaults"] = "Cancel"
    dlg.restore_button.click()
    assert auto_answers.titles() == ["Restore defaults"] and "Hospital PACS" in auto_answers.asked[0][2]
    assert dlg.autosave_spin.value() == 500 and dlg.pacs_panel.nodes() == [NODE_A]  # nothing changed
    auto_answers.answers["Restore defaults"] = "Keep PACS nodes"
    dlg.restore_button.click()
    assert dlg.autosave_spin.value() == 60 and dlg.pacs_panel.nodes() == [NODE_A]
    dlg.autosave_spin.setValue(500)
    auto_answers.answers["Restore defaults"] = "Remove PACS nodes"
    dlg.restore_button.click()
    assert dlg.autosave_spin.value() == 60 and dlg.pacs_panel.nodes() == []
    dlg.buttons.button(OK).click()
    assert PreferencesStore(w.settings).load() == Preferences()
    # an empty list asks nothing
    n = len(auto_answers.asked)
    dlg = w.prefs_ui.open_dialog()
    dlg.restore_button.click()
    assert len(auto_answers.asked) == n
    dlg.reject()


def test_query_retrieve_edit_nodes_opens_the_pacs_page(make_window, qtbot):
    w = make_window()
    w.resize(1000, 700)
    w.show()
    qtbot.waitExposed(w)
    w.prefs_ui.set_pacs_nodes([NODE_A, NODE_B])
    qr = w.pacs.open_dialog()
    qr.node_combo.setCurrentIndex(1)
    assert qr.edit_nodes_button.isVisible() and [b.text() for b in qr.findChildren(QtWidgets.QPushButton)
                                                  if b.text() in ("Add…", "Remove")] == []
    qr.edit_nodes_button.click()
    dlg = w.prefs_ui.dialog
    assert dlg.isVisible() and dlg.stack.currentWidget() is dlg.pacs_panel
    dlg.pacs_panel.select("Hospital PACS")
    dlg.pacs_panel.remove_node()
    dlg.buttons.button(OK).click()
    assert [qr.node_combo.itemText(i) for i in range(qr.node_combo.count())] == ["Orthanc web"]
    assert qr.node() == NODE_B
    # the dialog's own node list changes go to the same store; other preferences stay as they are
    w.actions_by_name["crosshair"].setChecked(True)
    qr.set_nodes([NODE_A], "Hospital PACS")
    assert PreferencesStore(w.settings).nodes() == [NODE_A] and w.prefs_ui.pacs_nodes() == [NODE_A]
    assert w.actions_by_name["crosshair"].isChecked()
    assert not _settings_contains_old_key(w.settings)
    qr.close()


def _settings_contains_old_key(settings) -> bool:
    settings.sync()
    return settings.contains("pacs/nodes")

"""Preferences: round trip through the dialog and QSettings, restore defaults, restored on start of a
new MainWindow, applied to the running app."""
from __future__ import annotations

import pytest
from PySide6 import QtCore, QtWidgets

from discviewer.preferences import Preferences, WindowPreset
from discviewer.ui.preferences_ui import PreferencesDialog, PreferencesStore, app_settings


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
                    pacs_nodes=[{"ae": "X", "port": 104}])
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

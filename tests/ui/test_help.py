"""Help: the F1 cheat sheet lists the real shortcuts; About shows version, versions and licences; every
action of the main window has a tooltip."""
from __future__ import annotations

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

import discviewer
from discviewer.ui.help_ui import _clean, licence_of


@pytest.fixture
def window(qtbot, tmp_path):
    from discviewer.ui.main_window import MainWindow

    w = MainWindow(settings=QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    yield w
    w.shutdown()


def _native(seq) -> str:
    return QtGui.QKeySequence(seq).toString(QtGui.QKeySequence.SequenceFormat.NativeText)


def test_f1_opens_the_cheat_sheet_with_every_shortcut(window):
    act = window.help.cheat_sheet_action
    assert _native("F1") in [k.toString(QtGui.QKeySequence.SequenceFormat.NativeText) for k in act.shortcuts()]
    act.trigger()
    sheet = window.help.cheat_sheet
    assert sheet is not None and sheet.isVisible()
    text = sheet.text()
    n = 0
    for a in window.findChildren(QtGui.QAction):
        for k in a.shortcuts():
            if not k.isEmpty():
                assert k.toString(QtGui.QKeySequence.SequenceFormat.NativeText) in text, a.text()
                assert _clean(a.text()) in text
                n += 1
    assert n >= 20
    for known in ("Hang visits", "Crosshair", "Save project", "Preferences", "Keyboard and mouse"):
        assert known in text
    assert "Left-drag" in text and "Window/level" in text  # PACS scheme by default
    sheet.close()


def test_cheat_sheet_follows_changes(window):
    window.actions_by_name["hang"].setShortcut(QtGui.QKeySequence("Ctrl+Alt+H"))
    window.actions_by_name["crosshair"].setChecked(True)
    text = window.help.show_cheat_sheet().text()
    assert _native("Ctrl+Alt+H") in text
    assert "Place the crosshair" in text


def test_about_shows_version_and_licences(window):
    window.about_action.trigger()
    about = window.help.about
    assert about is not None and about.isVisible()
    text = about.text()
    assert discviewer.__version__ in text and discviewer.RESEARCH_USE_NOTICE in text
    assert QtCore.qVersion() in text
    for name, dist in (("PySide6", "PySide6-Essentials"), ("VTK", "vtk"), ("pydicom", "pydicom"),
                       ("numpy", "numpy"), ("h5py", "h5py"), ("pyqtgraph", "pyqtgraph")):
        assert name in text
        lic = licence_of(dist)
        assert lic and lic in text, (dist, lic)
    assert "MIT" in text and "BSD" in text and "LGPL" in text
    about.close()


def _tooltip_missing(window, a: QtGui.QAction) -> bool:
    if a.isSeparator() or a.menu() is not None:
        return False
    if not a.text():  # a widget in a toolbar: the widget carries the tooltip
        for bar in window.findChildren(QtWidgets.QToolBar):
            widget = bar.widgetForAction(a)
            if widget is not None:  # a caption (QLabel) is not a tool
                return not widget.toolTip() and not isinstance(widget, QtWidgets.QLabel)
        return False
    tip = a.toolTip()
    # Qt's toolTip() falls back to the text: that is no tooltip
    return not a.statusTip() and (not tip or _clean(tip) == _clean(a.text()))


def test_every_action_has_a_tooltip(window):
    missing = [f"{a.text()!r} ({', '.join(type(o).__name__ for o in a.associatedObjects())})"
               for a in window.findChildren(QtGui.QAction) if _tooltip_missing(window, a)]
    assert not missing, "actions without a tooltip: " + "; ".join(missing)


def test_status_tips_and_menu_tooltips(window):
    assert window.actions_by_name["hang"].statusTip()
    assert all(m.toolTipsVisible() for m in window.findChildren(QtWidgets.QMenu))

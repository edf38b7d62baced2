"""First start: the research-use notice must be acknowledged; declining quits; accepted → not asked again.

The tests' own settings files start empty, so the acknowledgement is asked for; the environment variable
DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE (set by CI runs that start the app, never here) is removed first.
"""
from __future__ import annotations

import pytest
from PySide6 import QtCore, QtWidgets

import discviewer
from discviewer.preferences import Preferences
from discviewer.ui.help_ui import ACK_ENV, FirstRunDialog, acknowledge_research_use
from discviewer.ui.preferences_ui import PreferencesStore


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv(ACK_ENV, raising=False)
    return QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)


def test_cannot_accept_without_ticking_the_box(qtbot):
    dlg = FirstRunDialog()
    qtbot.addWidget(dlg)
    assert discviewer.RESEARCH_USE_NOTICE in dlg.windowTitle()
    assert not dlg.accept_button.isEnabled()
    dlg.accept()  # e.g. Enter: refused while the box is not ticked
    assert dlg.result() != QtWidgets.QDialog.DialogCode.Accepted
    dlg.check.setChecked(True)
    assert dlg.accept_button.isEnabled()


def test_shown_on_first_start_and_not_again_once_accepted(settings, qtbot):
    shown = []

    def answer(dlg):
        shown.append(dlg)
        assert not dlg.accept_button.isEnabled()
        dlg.check.setChecked(True)
        dlg.accept_button.click()
        return dlg.result() == QtWidgets.QDialog.DialogCode.Accepted

    assert acknowledge_research_use(settings, exec_dialog=answer) is True
    assert len(shown) == 1
    assert PreferencesStore(settings).load().acknowledged_version == discviewer.__version__
    assert acknowledge_research_use(settings, exec_dialog=lambda d: pytest.fail("asked again")) is True


def test_declining_quits_and_stores_nothing(settings):
    def decline(dlg):
        dlg.quit_button.click()
        return dlg.result() == QtWidgets.QDialog.DialogCode.Accepted

    assert acknowledge_research_use(settings, exec_dialog=decline) is False
    assert PreferencesStore(settings).load().acknowledged_version == ""


def test_a_new_minor_version_asks_again(settings):
    PreferencesStore(settings).save(Preferences(acknowledged_version="0.0.1"))
    asked = []
    acknowledge_research_use(settings, exec_dialog=lambda d: asked.append(d) or False)
    assert asked


def test_environment_variable_skips_it(settings, monkeypatch):
    monkeypatch.setenv(ACK_ENV, "1")
    assert acknowledge_research_use(settings, exec_dialog=lambda d: pytest.fail("asked")) is True
    assert PreferencesStore(settings).load().acknowledged_version == ""  # nothing stored


def _click_later(action: str):
    """Answer the modal dialog from the running event loop (the real `exec()`)."""
    def answer():
        dlg = QtWidgets.QApplication.activeModalWidget()
        if not isinstance(dlg, FirstRunDialog):
            QtCore.QTimer.singleShot(50, answer)
            return
        if action == "accept":
            dlg.check.setChecked(True)
            dlg.accept_button.click()
        else:
            dlg.quit_button.click()

    QtCore.QTimer.singleShot(50, answer)


def test_modal_dialog_accept(settings, qtbot):
    _click_later("accept")
    assert acknowledge_research_use(settings) is True
    assert PreferencesStore(settings).load().is_acknowledged(discviewer.__version__)


def test_run_quits_when_declined(tmp_path, monkeypatch, qtbot):
    """`discviewer` (app.run) asks before the main window exists; Quit ends it with exit code 1."""
    from discviewer.ui import app as app_mod
    from discviewer.ui.main_window import MainWindow

    monkeypatch.delenv(ACK_ENV, raising=False)
    monkeypatch.delenv("DISCVIEWER_SCREENSHOT", raising=False)
    monkeypatch.setenv("DISCVIEWER_SETTINGS", str(tmp_path / "run.ini"))
    monkeypatch.setenv("DISCVIEWER_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(app_mod, "create_main_window", lambda *a, **k: pytest.fail("window opened"))
    before = {id(w) for w in QtWidgets.QApplication.topLevelWidgets() if isinstance(w, MainWindow)}
    _click_later("quit")
    try:
        assert app_mod.run([]) == 1
    finally:
        from discviewer import logsetup

        logsetup.shutdown_logging()
    after = {id(w) for w in QtWidgets.QApplication.topLevelWidgets() if isinstance(w, MainWindow)}
    assert after == before

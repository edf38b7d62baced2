"""File → Open recent: most recent first, no duplicates, limited, persisted, and it reopens."""
from __future__ import annotations

from PySide6 import QtCore

from discviewer.ui.main_window import MainWindow
from discviewer.ui.recent import RecentPaths


def test_recent_paths_order_dedup_limit_persist(tmp_path, qapp):
    ini = str(tmp_path / "s.ini")
    r = RecentPaths(QtCore.QSettings(ini, QtCore.QSettings.Format.IniFormat), limit=3)
    for p in ("a", "b", "c", "a", "d"):
        r.add(tmp_path / p)
    assert r.paths() == [str(tmp_path / p) for p in ("d", "a", "c")]
    again = RecentPaths(QtCore.QSettings(ini, QtCore.QSettings.Format.IniFormat))
    assert again.paths()[0] == str(tmp_path / "d")
    again.clear()
    assert again.paths() == []


def test_open_recent_menu_reopens(tmp_path, qtbot, fake_io):
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(scan_fn=fake_io.scan, load_fn=fake_io.load, settings=settings)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.scan_finished, timeout=10000):
        w.open_path(tmp_path / "study1")
    w._fill_recent_menu()
    actions = [a for a in w.recent_menu.actions() if a.data()]
    assert [a.data() for a in actions] == [str(tmp_path / "study1")]
    with qtbot.waitSignal(w.scan_finished, timeout=10000):
        actions[0].trigger()
    assert fake_io.scan_calls == [str(tmp_path / "study1")] * 2
    w.shutdown()

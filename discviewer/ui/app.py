"""Application entry point: QApplication setup and `run()`.

`run(paths=None, *, demo_dir=None) -> int` creates the QApplication if needed (application
name "discviewer"), shows the `MainWindow`, offers to recover unsaved work a crashed session
left (autosave), opens the given paths — folders and files as a new project, a `.dvw` as that
project — and/or the demo study folder, selects the first non-localizer series, shows its middle
slice and returns `app.exec()`.

Smoke-test hook: with `DISCVIEWER_SCREENSHOT=/path.png` set, the window is grabbed to that
PNG once the first series is displayed and the app quits (exit code 0; 1 if nothing could be
shown; 2 on timeout after `DISCVIEWER_SCREENSHOT_TIMEOUT` seconds, default 120). It skips the first-run
research-use acknowledgement, as does `DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE=1` (`discviewer.ui.help_ui`).

`run()` also logs to the rotating log file (`discviewer.logsetup`), reads the settings from
`$DISCVIEWER_SETTINGS` when set (`discviewer.ui.preferences_ui.app_settings`) and installs the crash
handler (`discviewer.ui.crash_ui`: log, autosave, crash report, dialog).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from PySide6 import QtCore, QtWidgets

import discviewer
from discviewer.ui.main_window import MainWindow
from discviewer.ui.workers import LoadFn, ScanFn, default_scan


def create_app(argv: Sequence[str] | None = None) -> QtWidgets.QApplication:
    """The running QApplication, created (named "discviewer") if there is none.

    pyqtgraph is not imported here (it costs ~0.5 s at start-up); widgets that use it import
    `discviewer.ui.pgsetup` first.
    """
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName("discviewer")
    app.setApplicationDisplayName("discviewer")
    app.setApplicationVersion(discviewer.__version__)
    app.setOrganizationName("discviewer")
    from discviewer.ui.app_icon import app_icon
    app.setWindowIcon(app_icon())  # title bar / task switcher; desktop menus use resources/discviewer.desktop
    app.setDesktopFileName("discviewer")  # Wayland/X11 shells match windows to resources/discviewer.desktop
    return app


def _demo_scan(demo_dir: Path, scan_fn: ScanFn | None) -> ScanFn:
    """A scan function that first writes the phantom demo study into an empty `demo_dir`."""
    base = scan_fn or default_scan

    def scan(path, *, progress=None, cancel=None):
        if Path(path) == demo_dir and not (demo_dir.exists() and any(demo_dir.iterdir())):
            from discviewer.phantom import write_study

            demo_dir.mkdir(parents=True, exist_ok=True)
            write_study(demo_dir)
        return base(path, progress=progress, cancel=cancel)

    return scan


def create_main_window(paths: str | os.PathLike | Sequence[str | os.PathLike] | None = None, *,
                       demo_dir: str | os.PathLike | None = None, scan_fn: ScanFn | None = None,
                       load_fn: LoadFn | None = None, offer_recovery: bool = False) -> MainWindow:
    """Show a `MainWindow` and start opening `paths` (and `demo_dir`; a `.dvw` path opens that project);
    does not run the event loop. With `offer_recovery`, unsaved work a crashed session autosaved is
    offered first (and, if recovered, opened instead of `paths`)."""
    create_app()
    if paths is None:
        paths = []
    elif isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if demo_dir is not None:
        demo = Path(demo_dir)
        scan_fn = _demo_scan(demo, scan_fn)
        paths = [str(demo), *paths]
    from discviewer.ui.preferences_ui import app_settings

    window = MainWindow(scan_fn=scan_fn, load_fn=load_fn, auto_select=True, settings=app_settings())
    window.show()
    if offer_recovery and window.project.offer_recovery() is not None:
        window.open_recovered()  # unsaved work of a crashed session comes first
        return window
    if paths:
        window.open_paths(paths)
    return window


def _install_screenshot_hook(app: QtWidgets.QApplication, window: MainWindow, target: str) -> None:
    done = {"flag": False}
    timeout_s = float(os.environ.get("DISCVIEWER_SCREENSHOT_TIMEOUT", "120"))

    def save_and_quit(code: int) -> None:
        if done["flag"]:
            return
        done["flag"] = True
        app.processEvents()
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab_with_views().save(target)
        print(f"discviewer: screenshot {'saved to' if ok else 'FAILED for'} {target}", file=sys.stderr)
        window.shutdown()
        app.exit(code if ok else 3)

    def later(code: int, delay_ms: int = 400):
        return lambda *args: QtCore.QTimer.singleShot(delay_ms, lambda: save_and_quit(code))

    window.volume_shown.connect(later(0))
    window.scan_failed.connect(later(1))
    window.load_failed.connect(later(1))
    window.scan_finished.connect(
        lambda result: None if window.browser.first_loadable() is not None else later(1)())
    QtCore.QTimer.singleShot(int(timeout_s * 1000), lambda: save_and_quit(2))


WARM_UP_MS = 300  # after the window is usable: import VTK (~0.4 s), so the first series shows without the wait


def _warm_up() -> None:
    """Import the VTK view modules the first viewport needs (left out of start-up: bench_startup.py)."""
    try:
        import discviewer.ui.vtk_slice_view  # noqa: F401
    except Exception:  # the viewport will report it when it is built
        pass


def run(paths: str | os.PathLike | Sequence[str | os.PathLike] | None = None, *,
        demo_dir: str | os.PathLike | None = None, scan_fn: ScanFn | None = None,
        load_fn: LoadFn | None = None) -> int:
    """Run the desktop app until the main window closes; returns the exit code."""
    from discviewer import logsetup

    if not logsetup.is_configured():  # the CLI configures it first (--verbose)
        logsetup.setup_logging()
    app = create_app()
    shot = os.environ.get("DISCVIEWER_SCREENSHOT")
    if not shot:  # first start: the research-use notice must be accepted (DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE=1 skips)
        from discviewer.ui.help_ui import acknowledge_research_use
        from discviewer.ui.preferences_ui import app_settings

        if not acknowledge_research_use(app_settings()):
            return 1
    window = create_main_window(paths, demo_dir=demo_dir, scan_fn=scan_fn, load_fn=load_fn,
                                offer_recovery=not shot)
    if shot:
        _install_screenshot_hook(app, window, shot)
        if not window.is_scanning():  # nothing to open: grab the empty window
            QtCore.QTimer.singleShot(500, lambda: (window.grab().save(shot), app.exit(1)))
    from discviewer.ui.crash_ui import install_excepthook

    install_excepthook(window)  # log, autosave, crash report, dialog
    QtCore.QTimer.singleShot(WARM_UP_MS, _warm_up)
    code = app.exec()
    window.shutdown()
    return int(code)


if __name__ == "__main__":  # python -m discviewer.ui.app [PATH ...]
    sys.exit(run(sys.argv[1:] or None))

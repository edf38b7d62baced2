"""Help: the keyboard/mouse cheat sheet (F1), the About dialog and the first-run research-use
acknowledgement.

- **Cheat sheet** (`CheatSheetDialog`, Help → Keyboard and mouse, F1): every shortcut is read from the
  window's actual `QAction`s (text, shortcuts, menu, tooltip) when the sheet opens, and the mouse
  section from the mouse scheme in force, so the sheet cannot go stale. The viewport keys handled by
  `VtkSliceView` itself (not actions) are listed from `VIEW_KEYS`.
- **About** (`AboutDialog`, Help → About discviewer): version, the research-use notice, the versions
  of Python, Qt, VTK, pydicom and numpy, and the licences of the bundled components as their
  installed package metadata states them (`component_licences()`).
- **First run** (`acknowledge_research_use`): before the main window opens the user must accept that
  discviewer is for research use, not diagnosis; "Quit" ends the app. Accepting stores the app
  version in the preferences (`acknowledged_version`); it is asked again only for a new major.minor
  version. `$DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE=1` (CI, scripted runs) and the screenshot smoke
  test (`DISCVIEWER_SCREENSHOT`) skip it without storing anything.
- `HelpUI(window)` adds the actions, replaces the window's plain About box with `AboutDialog`, and
  gives every action without a status tip its tooltip as status tip (menus show tooltips too).
"""
from __future__ import annotations

import html
import os
import platform

from PySide6 import QtCore, QtGui, QtWidgets

import discviewer
from discviewer.preferences import Preferences

Qt = QtCore.Qt
ACK_ENV = "DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE"

# keys the slice view handles itself (vtk_slice_view.py), not through QActions
VIEW_KEYS = (
    ("Down / Up", "Next / previous slice"),
    ("Page Down / Page Up", "Slice ± a tenth of the series"),
    ("Home / End", "First / last slice"),
    ("R", "Reset zoom, pan and window (auto window)"),
    ("I", "Invert grey scale"),
    ("Double-click", "Maximise the viewport / back to the grid"),
)

MOUSE = {
    "pacs": (
        ("Left-drag", "Window/level: right = wider window, down = higher level"),
        ("Middle-drag", "Pan"),
        ("Right-drag", "Zoom (up = in, about the press point)"),
        ("Wheel", "Slice ± 1 per notch"),
        ("Ctrl + wheel", "Zoom at the cursor"),
    ),
    "crosshair": (
        ("Left-click / drag", "Place the crosshair (linked views follow)"),
        ("Middle-drag", "Pan"),
        ("Right-drag", "Zoom (up = in, about the press point)"),
        ("Wheel", "Slice ± 1 per notch"),
        ("Ctrl + wheel", "Zoom at the cursor"),
    ),
}

# (shown name, distribution names to try) — licences are read from the installed metadata
COMPONENTS = (
    ("PySide6 (Qt for Python)", ("PySide6-Essentials", "PySide6")),
    ("shiboken6", ("shiboken6",)),
    ("VTK", ("vtk",)),
    ("pydicom", ("pydicom",)),
    ("numpy", ("numpy",)),
    ("scipy", ("scipy",)),
    ("pyqtgraph", ("pyqtgraph",)),
    ("h5py", ("h5py",)),
    ("highdicom", ("highdicom",)),
    ("nibabel", ("nibabel",)),
    ("pylibjpeg", ("pylibjpeg",)),
    ("pylibjpeg-libjpeg", ("pylibjpeg-libjpeg",)),
    ("pylibjpeg-openjpeg", ("pylibjpeg-openjpeg",)),
    ("pylibjpeg-rle", ("pylibjpeg-rle",)),
)


def _clean(text: str) -> str:
    """Menu text without mnemonics (& — but && is a real ampersand) and the trailing ellipsis."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").replace("…", "").strip()


# -------------------------------------------------------------------------------------------------
# licences and versions

def licence_of(dist: str) -> str:
    """The licence an installed distribution declares: License-Expression, a short License field, else
    the licence classifiers; "" when not installed."""
    from importlib import metadata

    try:
        md = metadata.metadata(dist)
    except metadata.PackageNotFoundError:
        return ""
    expr = (md.get("License-Expression") or "").strip()
    if expr:
        return expr
    field = (md.get("License") or "").strip()
    if field and "\n" not in field and len(field) <= 60 and field.upper() not in ("UNKNOWN", "OTHER"):
        return field
    classes = [c.split("::")[-1].strip() for c in (md.get_all("Classifier") or []) if c.startswith("License ::")]
    if classes:
        return " / ".join(classes)
    return field.splitlines()[0][:60] if field else "see the package"


def component_licences() -> list[tuple[str, str, str, str]]:
    """(name, distribution, version, licence) of each bundled component that is installed."""
    from importlib import metadata

    out = []
    for name, dists in COMPONENTS:
        for dist in dists:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
            out.append((name, dist, version, licence_of(dist)))
            break
    return out


def runtime_versions() -> list[tuple[str, str]]:
    from PySide6 import __version__ as pyside_version

    rows = [("discviewer", discviewer.__version__),
            ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
            ("Qt", f"{QtCore.qVersion()} (PySide6 {pyside_version})")]
    try:
        from vtkmodules.vtkCommonCore import vtkVersion

        rows.append(("VTK", vtkVersion.GetVTKVersion()))
    except Exception:  # pragma: no cover - VTK is a dependency
        rows.append(("VTK", "not available"))
    for mod in ("pydicom", "numpy"):
        try:
            rows.append((mod, __import__(mod).__version__))
        except Exception:  # pragma: no cover
            rows.append((mod, "not available"))
    rows.append(("Platform", platform.platform()))
    return rows


# -------------------------------------------------------------------------------------------------
# cheat sheet

def _menu_path(action: QtGui.QAction) -> str:
    for obj in action.associatedObjects():
        if isinstance(obj, QtWidgets.QMenu):
            names = []
            m = obj
            while isinstance(m, QtWidgets.QMenu):
                names.insert(0, _clean(m.title()))
                m = m.parent() if isinstance(m.parent(), QtWidgets.QMenu) else None
            return " → ".join(n for n in names if n)
    for obj in action.associatedObjects():
        if isinstance(obj, QtWidgets.QToolBar):
            return "Toolbar"
    return "Window"


def shortcut_rows(window: QtWidgets.QWidget) -> list[dict]:
    """Every action of `window` that has a shortcut: {"keys", "text", "menu", "tip"} (keys in the
    platform's native text), sorted by menu and then as created."""
    seen, rows = set(), []
    for a in window.findChildren(QtGui.QAction):
        keys = [k.toString(QtGui.QKeySequence.SequenceFormat.NativeText) for k in a.shortcuts() if not k.isEmpty()]
        if not keys or id(a) in seen:
            continue
        seen.add(id(a))
        text = _clean(a.text()) or _clean(a.toolTip())
        rows.append({"keys": keys, "text": text, "menu": _menu_path(a), "tip": a.toolTip(), "action": a})
    order = {}
    for r in rows:
        order.setdefault(r["menu"], len(order))
    rows.sort(key=lambda r: order[r["menu"]])
    return rows


def cheat_sheet_html(window, scheme: str = "pacs") -> str:
    esc = html.escape
    parts = [f"<h3>discviewer {esc(discviewer.__version__)} — keyboard and mouse</h3>",
             f"<p><i>{esc(discviewer.RESEARCH_USE_NOTICE)}.</i></p>",
             f"<h4>Mouse in the viewports ({esc('PACS scheme' if scheme == 'pacs' else 'crosshair scheme')}; "
             "X toggles)</h4><table cellspacing='2' cellpadding='2'>"]
    parts += [f"<tr><td><b>{esc(k)}</b></td><td>{esc(v)}</td></tr>" for k, v in MOUSE.get(scheme, MOUSE["pacs"])]
    parts.append("</table><h4>Keys in a viewport</h4><table cellspacing='2' cellpadding='2'>")
    parts += [f"<tr><td><b>{esc(k)}</b></td><td>{esc(v)}</td></tr>" for k, v in VIEW_KEYS]
    parts.append("</table>")
    menu = None
    for r in shortcut_rows(window):
        if r["menu"] != menu:
            if menu is not None:
                parts.append("</table>")
            menu = r["menu"]
            parts.append(f"<h4>{esc(menu)}</h4><table cellspacing='2' cellpadding='2'>")
        tip = r["tip"] if r["tip"] and _clean(r["tip"]) != r["text"] else ""
        parts.append(f"<tr><td><b>{esc(', '.join(r['keys']))}</b></td><td>{esc(r['text'])}</td>"
                     f"<td><span style='color:#777'>{esc(tip)}</span></td></tr>")
    if menu is not None:
        parts.append("</table>")
    return "".join(parts)


class CheatSheetDialog(QtWidgets.QDialog):
    """The keyboard/mouse cheat sheet, generated from the window's actions when shown."""

    def __init__(self, window, *, scheme: str = "pacs", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.setWindowTitle("discviewer — keyboard and mouse")
        self.setObjectName("cheat-sheet")
        self.rows = shortcut_rows(window)
        self.scheme = scheme
        lay = QtWidgets.QVBoxLayout(self)
        self.browser = QtWidgets.QTextBrowser()
        self.browser.setHtml(cheat_sheet_html(window, scheme))
        lay.addWidget(self.browser)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(720, 640)

    def text(self) -> str:
        return self.browser.toPlainText()


# -------------------------------------------------------------------------------------------------
# about

def about_html() -> str:
    esc = html.escape
    parts = [f"<h3>discviewer {esc(discviewer.__version__)}</h3>",
             "<p>Serial lumbar-spine MRI review.</p>",
             f"<p><b>{esc(discviewer.RESEARCH_USE_NOTICE)}.</b> Not a medical device; results must not be "
             "used for clinical decisions.</p>", "<h4>Versions</h4><table cellspacing='2' cellpadding='2'>"]
    parts += [f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in runtime_versions()]
    parts.append("</table><h4>Bundled components and their licences</h4>"
                 "<table cellspacing='2' cellpadding='2'><tr><th align='left'>Component</th>"
                 "<th align='left'>Version</th><th align='left'>Licence (package metadata)</th></tr>")
    parts += [f"<tr><td>{esc(n)}</td><td>{esc(v)}</td><td>{esc(lic)}</td></tr>"
              for n, _d, v, lic in component_licences()]
    parts.append("</table><p>Qt and PySide6 are used under the LGPLv3; their source is available from "
                 "qt.io. pylibjpeg-libjpeg is GPLv3: distributions that bundle it are GPLv3 as a whole.</p>")
    return "".join(parts)


class AboutDialog(QtWidgets.QDialog):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About discviewer")
        self.setObjectName("about-dialog")
        lay = QtWidgets.QVBoxLayout(self)
        self.browser = QtWidgets.QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setHtml(about_html())
        lay.addWidget(self.browser)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(640, 620)

    def text(self) -> str:
        return self.browser.toPlainText()


# -------------------------------------------------------------------------------------------------
# first run

NOTICE_HTML = (
    "<h3>discviewer is for research use only</h3>"
    "<p>discviewer is research software for reviewing serial lumbar-spine MRI. It is <b>not a medical "
    "device</b> and has not been cleared or approved for clinical use.</p>"
    "<ul><li>Do not use it to diagnose, treat or decide about the care of any patient.</li>"
    "<li>Measurements, registrations and scores are for research and may be wrong.</li>"
    "<li>You are responsible for handling patient data according to your study's approvals.</li></ul>")


class FirstRunDialog(QtWidgets.QDialog):
    """The research-use notice: "Accept" works only once the box is ticked; "Quit" declines."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"discviewer — {discviewer.RESEARCH_USE_NOTICE}")
        self.setObjectName("first-run-dialog")
        self.setModal(True)
        lay = QtWidgets.QVBoxLayout(self)
        label = QtWidgets.QLabel(NOTICE_HTML)
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(label)
        self.check = QtWidgets.QCheckBox("I understand that discviewer is for research use and not for diagnosis")
        lay.addWidget(self.check)
        self.buttons = QtWidgets.QDialogButtonBox()
        self.accept_button = self.buttons.addButton("Accept", QtWidgets.QDialogButtonBox.ButtonRole.AcceptRole)
        self.quit_button = self.buttons.addButton("Quit", QtWidgets.QDialogButtonBox.ButtonRole.RejectRole)
        self.accept_button.setEnabled(False)
        self.check.toggled.connect(self.accept_button.setEnabled)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self.resize(560, 320)

    def accept(self) -> None:
        if self.check.isChecked():  # Enter on the dialog must not bypass the box
            super().accept()


def needs_acknowledgement(prefs: Preferences) -> bool:
    if os.environ.get(ACK_ENV) == "1":
        return False
    return not prefs.is_acknowledged(discviewer.__version__)


def acknowledge_research_use(settings: QtCore.QSettings | None = None, *, parent=None, exec_dialog=None) -> bool:
    """Ask once per version (see the module notes); True to go on, False if the user quit.
    `exec_dialog(dialog) -> accepted` replaces the modal `exec()` (tests)."""
    from discviewer.ui.preferences_ui import PreferencesStore

    store = PreferencesStore(settings)
    prefs = store.load()
    if not needs_acknowledgement(prefs):
        return True
    dlg = FirstRunDialog(parent)
    if exec_dialog is not None:
        accepted = bool(exec_dialog(dlg))
    else:
        accepted = dlg.exec() == QtWidgets.QDialog.DialogCode.Accepted
    dlg.deleteLater()
    if not accepted:
        return False
    prefs = store.load()
    prefs.acknowledged_version = discviewer.__version__
    store.save(prefs)
    return True


# -------------------------------------------------------------------------------------------------
# the window's help menu

def _find_menu(window, title: str) -> QtWidgets.QMenu | None:
    for act in window.menuBar().actions():
        if act.menu() is not None and _clean(act.text()) == title:
            return act.menu()
    return None


class HelpUI(QtCore.QObject):
    """Help → Keyboard and mouse (F1) and About for a `MainWindow`."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.cheat_sheet: CheatSheetDialog | None = None
        self.about: AboutDialog | None = None
        menu = getattr(window, "help_menu", None) or _find_menu(window, "Help")
        a = QtGui.QAction("&Keyboard and mouse…", window)
        a.setShortcuts([QtGui.QKeySequence("F1")])
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setToolTip("Every keyboard shortcut and mouse action (F1)")
        a.triggered.connect(lambda: self.show_cheat_sheet())
        window.addAction(a)
        self.cheat_sheet_action = a
        about = getattr(window, "about_action", None)
        if menu is not None:
            menu.insertAction(about, a) if about is not None and about in menu.actions() else menu.addAction(a)
        if about is not None:
            try:
                about.triggered.disconnect()
            except (RuntimeError, TypeError):
                pass
            about.triggered.connect(lambda: self.show_about())
            if not about.statusTip():
                about.setToolTip("Version, licences of the bundled components and the research-use notice")
        if hasattr(window, "actions_by_name"):
            window.actions_by_name["cheat_sheet"] = a
        self.add_status_tips()

    def add_status_tips(self) -> None:
        """Actions without a status tip show their tooltip in the status bar; menus show tooltips."""
        for a in self.window.findChildren(QtGui.QAction):
            if not a.statusTip() and a.toolTip() and _clean(a.toolTip()) != _clean(a.text()):
                a.setStatusTip(a.toolTip())
        for m in self.window.findChildren(QtWidgets.QMenu):
            m.setToolTipsVisible(True)
        for bar in self.window.findChildren(QtWidgets.QToolBar) + self.window.findChildren(QtWidgets.QDockWidget):
            t = bar.toggleViewAction()
            if _clean(t.toolTip()) == _clean(t.text()):
                kind = "toolbar" if isinstance(bar, QtWidgets.QToolBar) else "panel"
                t.setToolTip(f"Show or hide the {_clean(bar.windowTitle())} {kind}")
                t.setStatusTip(t.toolTip())

    def scheme(self) -> str:
        prefs_ui = getattr(self.window, "prefs_ui", None)
        return prefs_ui.mouse_scheme() if prefs_ui is not None else "pacs"

    def show_cheat_sheet(self) -> CheatSheetDialog:
        if self.cheat_sheet is not None:
            self.cheat_sheet.close()
            self.cheat_sheet.deleteLater()
        self.cheat_sheet = CheatSheetDialog(self.window, scheme=self.scheme())
        self.cheat_sheet.show()
        return self.cheat_sheet

    def show_about(self) -> AboutDialog:
        if self.about is None:
            self.about = AboutDialog(self.window)
        self.about.show()
        self.about.raise_()
        return self.about

"""Preferences in the app: a QSettings-backed store, the Preferences dialog (Edit → Preferences…,
Ctrl+,) and `PreferencesUI`, which restores them on start and applies them to the running window.

Where they live: the window's `QSettings` (group "preferences", one JSON text per field, so INI and
native back ends read back the same types). `app_settings()` is the app's QSettings: the file named
by `$DISCVIEWER_SETTINGS` (INI format; tests and portable installs) or Qt's default for organisation
and application "discviewer" (on Linux `$XDG_CONFIG_HOME/discviewer/discviewer.conf`).

Applied to the running window (`PreferencesUI.apply`):
- mouse scheme → the View → Crosshair toggle and every viewport (new viewports follow it too, except
  the MPR layout, which keeps its own PACS scheme);
- window/level presets → View → Window/level presets (after the built-in relative presets);
- default hanging protocol → the toolbar's protocol box and the review controller;
- autosave interval → `ProjectController.set_autosave_interval`;
- export defaults → `window.preferences`, read by the export dialogs (scale, de-identified);
- reader name → the workspace's user: the reader of new annotations and the audit log's author.
"""
from __future__ import annotations

import json
import math
import os

from PySide6 import QtCore, QtGui, QtWidgets

from discviewer.preferences import (AUTOSAVE_RANGE_S, EXPORT_SCALE_RANGE, MOUSE_SCHEME_TITLES, MOUSE_SCHEMES,
                                    Preferences, PreferencesError, WindowPreset)

Qt = QtCore.Qt
SETTINGS_ENV = "DISCVIEWER_SETTINGS"
GROUP = "preferences"
WL_MENU_TITLE = "Window/level presets"


def app_settings() -> QtCore.QSettings:
    """The app's settings: `$DISCVIEWER_SETTINGS` (an INI file) if set, else Qt's default location."""
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QtCore.QSettings(path, QtCore.QSettings.Format.IniFormat)
    return QtCore.QSettings("discviewer", "discviewer")


class PreferencesStore:
    """`Preferences` in a QSettings group; lenient on read (bad values keep their defaults)."""

    def __init__(self, settings: QtCore.QSettings | None = None, group: str = GROUP) -> None:
        self.settings = settings if settings is not None else app_settings()
        self.group = group

    def load(self) -> Preferences:
        s = self.settings
        data = {}
        s.beginGroup(self.group)
        try:
            for key in s.childKeys():
                raw = s.value(key)
                try:
                    data[key] = json.loads(raw) if isinstance(raw, str) else raw
                except ValueError:
                    data[key] = raw
        finally:
            s.endGroup()
        return Preferences.from_dict(data)

    def save(self, prefs: Preferences) -> None:
        prefs.check()
        s = self.settings
        s.beginGroup(self.group)
        try:
            s.remove("")  # fields of older versions go
            for key, value in prefs.to_dict().items():
                s.setValue(key, json.dumps(value))
        finally:
            s.endGroup()
        s.sync()

    def reset(self) -> Preferences:
        """Back to the defaults — keeping the research-use acknowledgement and the PACS nodes."""
        old = self.load()
        prefs = Preferences(acknowledged_version=old.acknowledged_version, pacs_nodes=old.pacs_nodes)
        self.save(prefs)
        return prefs


# -------------------------------------------------------------------------------------------------
# the dialog

class PresetTable(QtWidgets.QWidget):
    """Editor of the absolute window/level presets: name, centre, width; add / remove / move."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.table = QtWidgets.QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Name", "Centre", "Width"])
        self.table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.setToolTip("Absolute window/level presets (stored image values): double-click to edit")
        lay.addWidget(self.table)
        row = QtWidgets.QHBoxLayout()
        self.add_button = QtWidgets.QPushButton("Add")
        self.add_button.setToolTip("Add a preset (edit its name, centre and width in the table)")
        self.add_button.clicked.connect(lambda: self.add_preset(WindowPreset(self._new_name(), 500.0, 1000.0)))
        self.remove_button = QtWidgets.QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected preset")
        self.remove_button.clicked.connect(self.remove_selected)
        self.up_button = QtWidgets.QPushButton("Up")
        self.up_button.setToolTip("Move the selected preset up in the menu")
        self.up_button.clicked.connect(lambda: self.move_selected(-1))
        self.down_button = QtWidgets.QPushButton("Down")
        self.down_button.setToolTip("Move the selected preset down in the menu")
        self.down_button.clicked.connect(lambda: self.move_selected(1))
        for b in (self.add_button, self.remove_button, self.up_button, self.down_button):
            row.addWidget(b)
        row.addStretch(1)
        lay.addLayout(row)

    def _new_name(self) -> str:
        names = {self.table.item(r, 0).text() for r in range(self.table.rowCount()) if self.table.item(r, 0)}
        i = 1
        while f"Preset {i}" in names:
            i += 1
        return f"Preset {i}"

    def set_presets(self, presets) -> None:
        self.table.setRowCount(0)
        for p in presets:
            self.add_preset(p)

    def add_preset(self, p: WindowPreset) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, v in enumerate((p.name, f"{p.centre:g}", f"{p.width:g}")):
            self.table.setItem(r, c, QtWidgets.QTableWidgetItem(v))
        self.table.setCurrentCell(r, 0)

    def remove_selected(self) -> None:
        r = self.table.currentRow()
        if r >= 0:
            self.table.removeRow(r)

    def move_selected(self, step: int) -> None:
        r = self.table.currentRow()
        t = r + step
        if r < 0 or not 0 <= t < self.table.rowCount():
            return
        texts = [[self.table.item(x, c).text() if self.table.item(x, c) else "" for c in range(3)] for x in (r, t)]
        for x, row in zip((t, r), texts):
            for c, v in enumerate(row):
                self.table.setItem(x, c, QtWidgets.QTableWidgetItem(v))
        self.table.setCurrentCell(t, self.table.currentColumn())

    def presets(self) -> tuple[list[WindowPreset], list[str]]:
        """The presets in the table and the problems found (a row that is not a valid preset)."""
        out, problems = [], []
        for r in range(self.table.rowCount()):
            texts = [self.table.item(r, c).text().strip() if self.table.item(r, c) else "" for c in range(3)]
            try:
                c, w = float(texts[1].replace(",", ".")), float(texts[2].replace(",", "."))
            except ValueError:
                problems.append(f"W/L preset row {r + 1}: centre and width must be numbers")
                continue
            p = WindowPreset(texts[0], c, w)
            bad = p.problems(f"W/L preset row {r + 1}")
            if bad:
                problems += bad
            else:
                out.append(p)
        return out, problems


class PreferencesDialog(QtWidgets.QDialog):
    """Pages Viewing, Hanging, Project, Export, Reader; OK / Cancel / Restore defaults.

    `preferences()` is the edited copy; `accept()` refuses (and shows why) while a value is invalid.
    """

    PAGES = ("Viewing", "Hanging", "Project", "Export", "Reader")

    def __init__(self, prefs: Preferences, *, protocols: list[str] | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.setObjectName("preferences-dialog")
        self._base = prefs.copy()
        self.protocols = list(protocols or [])
        outer = QtWidgets.QVBoxLayout(self)
        body = QtWidgets.QHBoxLayout()
        self.page_list = QtWidgets.QListWidget()
        self.page_list.addItems(list(self.PAGES))
        self.page_list.setMaximumWidth(130)
        self.page_list.setToolTip("Preference pages")
        self.stack = QtWidgets.QStackedWidget()
        self.page_list.currentRowChanged.connect(self.stack.setCurrentIndex)
        body.addWidget(self.page_list)
        body.addWidget(self.stack, 1)
        outer.addLayout(body, 1)

        # Viewing
        page, form = self._page()
        self.scheme_combo = QtWidgets.QComboBox()
        for s in MOUSE_SCHEMES:
            self.scheme_combo.addItem(MOUSE_SCHEME_TITLES.get(s, s), s)
        self.scheme_combo.setToolTip("What the left mouse button does in the viewports (View → Crosshair, X, "
                                     "toggles it while reading). Middle-drag pans, right-drag zooms, the wheel "
                                     "scrolls slices in both.")
        form.addRow("Mouse scheme", self.scheme_combo)
        self.preset_table = PresetTable()
        form.addRow(QtWidgets.QLabel("Window/level presets (View → Window/level presets):"))
        form.addRow(self.preset_table)
        # Hanging
        page, form = self._page()
        self.protocol_combo = QtWidgets.QComboBox()
        self.protocol_combo.addItem("(first built-in protocol)", "")
        for name in self.protocols:
            self.protocol_combo.addItem(name, name)
        self.protocol_combo.setToolTip("The hanging protocol selected on start (Hang visits, H)")
        form.addRow("Default hanging protocol", self.protocol_combo)
        # Project
        page, form = self._page()
        self.autosave_spin = QtWidgets.QSpinBox()
        self.autosave_spin.setRange(*AUTOSAVE_RANGE_S)
        self.autosave_spin.setSuffix(" s")
        self.autosave_spin.setToolTip("Unsaved work is also autosaved a few seconds after each change; this "
                                      "timer catches anything left")
        form.addRow("Autosave every", self.autosave_spin)
        # Export
        page, form = self._page()
        self.scale_spin = QtWidgets.QDoubleSpinBox()
        self.scale_spin.setRange(*EXPORT_SCALE_RANGE)
        self.scale_spin.setSingleStep(0.5)
        self.scale_spin.setDecimals(1)
        self.scale_spin.setSuffix(" ×")
        self.scale_spin.setToolTip("Resolution of exported images relative to the view on screen")
        form.addRow("Image scale", self.scale_spin)
        self.deid_box = QtWidgets.QCheckBox("De-identify exports by default")
        self.deid_box.setToolTip("On: exports show a pseudonym and days since baseline instead of the patient's "
                                 "name, ID and dates unless you opt in per export")
        form.addRow(self.deid_box)
        # Reader
        page, form = self._page()
        self.reader_edit = QtWidgets.QLineEdit()
        self.reader_edit.setPlaceholderText("(your login name)")
        self.reader_edit.setToolTip("Recorded as the reader of new annotations and measurements, and in the "
                                    "project's audit log")
        form.addRow("Reader name", self.reader_edit)

        self.error_label = QtWidgets.QLabel("")
        self.error_label.setStyleSheet("color: #c03030;")
        self.error_label.setWordWrap(True)
        outer.addWidget(self.error_label)
        SB = QtWidgets.QDialogButtonBox.StandardButton
        self.buttons = QtWidgets.QDialogButtonBox(SB.Ok | SB.Cancel | SB.RestoreDefaults)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.restore_button = self.buttons.button(SB.RestoreDefaults)
        self.restore_button.setToolTip("Fill every page with the default values (applied on OK)")
        self.restore_button.clicked.connect(self.restore_defaults)
        outer.addWidget(self.buttons)
        self.page_list.setCurrentRow(0)
        self.set_preferences(prefs)
        self.resize(620, 420)

    def _page(self):
        page = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(page)
        self.stack.addWidget(page)
        return page, form

    def show_page(self, name: str) -> None:
        self.page_list.setCurrentRow(self.PAGES.index(name))

    # ------------------------------------------------------------------ values
    def set_preferences(self, prefs: Preferences) -> None:
        i = self.scheme_combo.findData(prefs.mouse_scheme)
        self.scheme_combo.setCurrentIndex(max(i, 0))
        self.preset_table.set_presets(prefs.wl_presets)
        i = self.protocol_combo.findData(prefs.hanging_protocol)
        if i < 0 and prefs.hanging_protocol:
            self.protocol_combo.addItem(f"{prefs.hanging_protocol} (not found)", prefs.hanging_protocol)
            i = self.protocol_combo.count() - 1
        self.protocol_combo.setCurrentIndex(max(i, 0))
        self.autosave_spin.setValue(int(prefs.autosave_interval_s))
        self.scale_spin.setValue(float(prefs.export_scale))
        self.deid_box.setChecked(bool(prefs.export_deidentified))
        self.reader_edit.setText(prefs.reader_name)
        self.error_label.setText("")

    def restore_defaults(self) -> None:
        self.set_preferences(Preferences())

    def problems(self) -> list[str]:
        return self._collect()[1]

    def _collect(self) -> tuple[Preferences, list[str]]:
        presets, problems = self.preset_table.presets()
        prefs = self._base.copy()
        prefs.mouse_scheme = self.scheme_combo.currentData()
        prefs.wl_presets = presets
        prefs.hanging_protocol = self.protocol_combo.currentData() or ""
        prefs.autosave_interval_s = int(self.autosave_spin.value())
        prefs.export_scale = float(self.scale_spin.value())
        prefs.export_deidentified = self.deid_box.isChecked()
        prefs.reader_name = self.reader_edit.text().strip()
        return prefs, problems + [p for p in prefs.validate() if p not in problems]

    def preferences(self) -> Preferences:
        """The edited preferences (raises `PreferencesError` while invalid)."""
        prefs, problems = self._collect()
        if problems:
            raise PreferencesError("; ".join(problems))
        return prefs

    def accept(self) -> None:
        problems = self.problems()
        if problems:
            self.error_label.setText("\n".join(problems))
            if any("preset" in p.lower() for p in problems):
                self.show_page("Viewing")
            return
        super().accept()


# -------------------------------------------------------------------------------------------------
# the controller

def _find_menu(menu_bar_or_menu, title: str) -> QtWidgets.QMenu | None:
    for act in menu_bar_or_menu.actions():
        m = act.menu()
        if m is not None and act.text().replace("&", "") == title:
            return m
    return None


class PreferencesUI(QtCore.QObject):
    """Edit → Preferences… for a `MainWindow`; restores the stored preferences and applies them."""

    applied = QtCore.Signal(object)  # Preferences

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.store = PreferencesStore(getattr(window, "settings", None))
        self.preferences = self.store.load()
        self.dialog: PreferencesDialog | None = None
        self._preset_actions: list[QtGui.QAction] = []
        self._build_action()
        controller = getattr(window, "controller", None)
        if controller is not None:
            controller.volume_shown.connect(self._on_volume_shown)
        project = getattr(window, "project", None)
        if project is not None:
            project.workspace_replaced.connect(self._apply_reader)
        self.apply(self.preferences)

    def _build_action(self) -> None:
        w = self.window
        a = QtGui.QAction("&Preferences…", w)
        a.setShortcut(QtGui.QKeySequence("Ctrl+,"))
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setMenuRole(QtGui.QAction.MenuRole.PreferencesRole)
        a.setToolTip("Mouse scheme, window/level presets, default hanging protocol, autosave, export defaults "
                     "and reader name (Ctrl+,)")
        a.setStatusTip(a.toolTip())
        a.triggered.connect(lambda: self.open_dialog())
        w.addAction(a)
        edit = _find_menu(w.menuBar(), "Edit")
        if edit is not None:
            edit.addSeparator()
            edit.addAction(a)
        self.action = a
        if hasattr(w, "actions_by_name"):
            w.actions_by_name["preferences"] = a

    # ------------------------------------------------------------------ dialog
    def protocol_names(self) -> list[str]:
        controller = getattr(self.window, "controller", None)
        return [p.name for p in getattr(controller, "protocols", [])]

    def open_dialog(self, page: str | None = None) -> PreferencesDialog:
        """Show the dialog (window-modal, non-blocking); OK stores and applies."""
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.raise_()
            return self.dialog
        dlg = PreferencesDialog(self.preferences, protocols=self.protocol_names(), parent=self.window)
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.accepted.connect(lambda: self.set_preferences(dlg.preferences()))
        if page:
            dlg.show_page(page)
        self.dialog = dlg
        dlg.open()
        return dlg

    def set_preferences(self, prefs: Preferences) -> None:
        """Store `prefs` and apply them to the running window."""
        prefs.check()
        self.store.save(prefs)
        self.apply(prefs)

    def restore_defaults(self) -> Preferences:
        prefs = self.store.reset()
        self.apply(prefs)
        return prefs

    # ------------------------------------------------------------------ applying
    def apply(self, prefs: Preferences) -> None:
        self.preferences = prefs
        w = self.window
        w.preferences = prefs  # read by the export dialogs (scale, de-identified by default)
        for step in (self._apply_scheme, self._apply_presets, self._apply_protocol, self._apply_autosave,
                     lambda p: self._apply_reader()):
            step(prefs)
        self.applied.emit(prefs)

    def mouse_scheme(self) -> str:
        """The scheme in force: the Crosshair toggle (set from the preference, changed while reading)."""
        act = getattr(self.window, "actions_by_name", {}).get("crosshair")
        if act is not None:
            return "crosshair" if act.isChecked() else "pacs"
        return self.preferences.mouse_scheme

    def _apply_scheme(self, prefs: Preferences) -> None:
        w = self.window
        act = getattr(w, "actions_by_name", {}).get("crosshair")
        on = prefs.mouse_scheme == "crosshair"
        if act is not None:
            act.setChecked(on)
        for f in w.review.view_frames() if hasattr(w, "review") else []:
            if w.review.mode != "mpr":
                f.view.set_mouse_scheme(prefs.mouse_scheme)

    def _on_volume_shown(self, frame, volume) -> None:
        view = getattr(frame, "view", None)
        if view is not None and getattr(self.window.review, "mode", "") != "mpr":
            scheme = self.mouse_scheme()
            if view.mouse_scheme != scheme:
                view.set_mouse_scheme(scheme)

    def wl_menu(self) -> QtWidgets.QMenu | None:
        view_menu = _find_menu(self.window.menuBar(), "View")
        return _find_menu(view_menu, WL_MENU_TITLE) if view_menu is not None else None

    def _apply_presets(self, prefs: Preferences) -> None:
        menu = self.wl_menu()
        for a in self._preset_actions:
            if menu is not None:
                menu.removeAction(a)
            a.deleteLater()
        self._preset_actions = []
        if menu is None or not prefs.wl_presets:
            return
        self._preset_actions.append(menu.addSeparator())
        for p in prefs.wl_presets:
            a = menu.addAction(p.name)
            a.setToolTip(f"Window centre {p.centre:g}, width {p.width:g} on the active view "
                         "(Edit → Preferences… → Viewing)")
            a.setStatusTip(a.toolTip())
            a.setData(p.to_dict())
            a.triggered.connect(lambda _=False, preset=p: self.apply_preset(preset))
            self._preset_actions.append(a)

    def preset_actions(self) -> list[QtGui.QAction]:
        return [a for a in self._preset_actions if not a.isSeparator()]

    def apply_preset(self, preset: WindowPreset) -> bool:
        view = getattr(self.window, "slice_view", None)
        if view is None or getattr(view, "volume", None) is None:
            return False
        view.set_window(float(preset.centre), float(preset.width))
        return True

    def _apply_protocol(self, prefs: Preferences) -> None:
        w = self.window
        controller = getattr(w, "controller", None)
        protocols = list(getattr(controller, "protocols", []))
        if not protocols:
            return
        chosen = next((p for p in protocols if p.name == prefs.hanging_protocol), protocols[0])
        controller.protocol = chosen
        combo = getattr(w, "protocol_combo", None)
        if combo is not None:
            i = combo.findText(chosen.name)
            if i >= 0:
                combo.setCurrentIndex(i)

    def _apply_autosave(self, prefs: Preferences) -> None:
        project = getattr(self.window, "project", None)
        if project is not None and hasattr(project, "set_autosave_interval"):
            project.set_autosave_interval(prefs.autosave_interval_s)

    def _apply_reader(self, ws=None) -> None:
        project = getattr(self.window, "project", None)
        ws = ws if ws is not None else getattr(project, "workspace", None)
        if ws is None:
            return
        name = self.preferences.reader_name
        if name:
            ws.user = name
        elif getattr(ws, "_user_from_preferences", False):
            from discviewer.workspace.project import current_user

            ws.user = current_user()
        ws._user_from_preferences = bool(name)


def export_defaults(window) -> tuple[float, bool]:
    """(scale, identifying) an export dialog of `window` starts with (the preferences, else 3×, de-identified)."""
    prefs = getattr(window, "preferences", None)
    if not isinstance(prefs, Preferences):
        return 3.0, False
    scale = float(prefs.export_scale)
    return (scale if math.isfinite(scale) else 3.0), not prefs.export_deidentified

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
- reader name → the workspace's user: the reader of new annotations and the audit log's author;
- PACS nodes → File → Query/Retrieve…'s node box (`PacsUI` listens to `applied`).

PACS nodes: `Preferences.pacs_nodes` holds `RemoteNode.to_dict()` dicts — the one store of the node
list. `PreferencesStore.load()` keeps only entries that pass `RemoteNode.validated()` (others are
skipped and logged) and migrates, once, the node list older versions kept under the settings key
"pacs/nodes" (read while `pacs_nodes` is empty, written into the preferences, the old key removed).
The *PACS* page (`PacsNodesPanel`) lists them with Add… / Edit… (`NodeFormDialog`, which says what is
wrong before it accepts) / Remove and **Test** (echo in a worker, short timeout: "OK — 12 ms" or the
error's message). *Restore Defaults* asks before it removes the nodes (they are the user's data).
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, replace

from PySide6 import QtCore, QtGui, QtWidgets

from discviewer.pacs.nodes import DEFAULT_CALLING_AE, RETRIEVE_METHODS, TRANSPORTS, RemoteNode
from discviewer.preferences import (AUTOSAVE_RANGE_S, EXPORT_SCALE_RANGE, MOUSE_SCHEME_TITLES, MOUSE_SCHEMES,
                                    Preferences, PreferencesError, WindowPreset)

log = logging.getLogger(__name__)

Qt = QtCore.Qt
SETTINGS_ENV = "DISCVIEWER_SETTINGS"
GROUP = "preferences"
WL_MENU_TITLE = "Window/level presets"
OLD_NODES_KEY = "pacs/nodes"  # where versions before the PACS page kept the node list (nodes_to_json text)


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
        """The stored preferences; PACS nodes validated, the old "pacs/nodes" key migrated (module docstring)."""
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
        raw_nodes = data.pop("pacs_nodes", [])
        prefs = Preferences.from_dict(data)
        if not isinstance(raw_nodes, list):  # one bad entry must not cost the others: checked one by one
            log.warning("PACS nodes in the preferences skipped: not a list (%r)", raw_nodes)
            raw_nodes = []
        prefs.pacs_nodes = [n.to_dict() for n in pacs_nodes(raw_nodes, "the preferences")]
        if not prefs.pacs_nodes:
            self._migrate_nodes(prefs)
        return prefs

    def _migrate_nodes(self, prefs: Preferences) -> None:
        """Move the node list of older versions (settings key "pacs/nodes") into `prefs` and the store."""
        s = self.settings
        if not s.contains(OLD_NODES_KEY):
            return
        raw = s.value(OLD_NODES_KEY, "")
        try:
            items = json.loads(raw) if isinstance(raw, str) and raw.strip() else []
            items = items.get("nodes", []) if isinstance(items, dict) else items
            if not isinstance(items, list):
                raise ValueError("not a list of nodes")
        except ValueError as exc:
            log.warning("PACS nodes under the old settings key %r cannot be read (%s); left there", OLD_NODES_KEY,
                        exc)
            return
        prefs.pacs_nodes = [n.to_dict() for n in pacs_nodes(items, f"the old settings key {OLD_NODES_KEY!r}")]
        s.beginGroup(self.group)
        try:
            s.setValue("pacs_nodes", json.dumps(prefs.pacs_nodes))
        finally:
            s.endGroup()
        s.remove(OLD_NODES_KEY)
        s.sync()
        log.info("moved %d PACS node(s) from the settings key %r into the preferences", len(prefs.pacs_nodes),
                 OLD_NODES_KEY)

    def nodes(self) -> list[RemoteNode]:
        return pacs_nodes(self.load().pacs_nodes)

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


def pacs_nodes(items, where: str = "the preferences") -> list[RemoteNode]:
    """The valid `RemoteNode`s of `items` (dicts of `RemoteNode.to_dict()`), each `validated()`; an invalid
    entry or a second node of the same name is skipped and logged (naming `where` it came from)."""
    out: list[RemoteNode] = []
    for i, d in enumerate(items or []):
        try:
            if isinstance(d, RemoteNode):
                node = d.validated()
            elif isinstance(d, dict):
                if not isinstance(d.get("name"), str):
                    raise ValueError("the node has no name")
                node = RemoteNode.from_dict(d).validated()
            else:
                raise ValueError(f"not an object: {d!r}")
        except (TypeError, ValueError, AttributeError) as exc:
            log.warning("PACS node %d in %s skipped: %s", i + 1, where, exc)
            continue
        if any(n.name == node.name for n in out):
            log.warning("PACS node %d in %s skipped: a second node named %r", i + 1, where, node.name)
            continue
        out.append(node)
    return out


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


TRANSPORT_TITLES = {"dimse": "DIMSE (C-ECHO, C-FIND, C-GET / C-MOVE)", "dicomweb": "DICOMweb (QIDO / WADO / STOW-RS)"}
RETRIEVE_TITLES = {"get": "C-GET", "move": "C-MOVE"}


def _ask(parent, kind: str, title: str, text: str, buttons) -> str:
    """A message box through the project controller's `default_ask` (tests replace it)."""
    from discviewer.ui import project_controller

    return project_controller.default_ask(parent)(kind, title, text, list(buttons))


class NodeFormDialog(QtWidgets.QDialog):
    """Add or edit one `RemoteNode`. OK is refused, with the reason in red, while the node is invalid
    (empty name or host, a name already used, AE titles of more than 16 characters or with a backslash,
    ports outside 1–65535, no http(s) URL for DICOMweb). `node()` is the validated node."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, node: RemoteNode | None = None, *,
                 taken=()) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit PACS node" if node is not None else "Add PACS node")
        self.setObjectName("pacs-node-form")
        self.taken = {t for t in taken if node is None or t != node.name}
        n = node or RemoteNode(self._free_name(), host="", port=104)
        form = QtWidgets.QFormLayout(self)
        self.form = form
        self.name = QtWidgets.QLineEdit(n.name)
        self.name.setToolTip("Shown in File → Query/Retrieve…'s node box; unique")
        self.transport = QtWidgets.QComboBox()
        for t in TRANSPORTS:
            self.transport.addItem(TRANSPORT_TITLES.get(t, t), t)
        self.transport.setCurrentIndex(max(self.transport.findData(n.transport), 0))
        self.host = QtWidgets.QLineEdit(n.host)
        self.host.setPlaceholderText("pacs.hospital.org or 10.0.0.5")
        self.port = QtWidgets.QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(n.port if isinstance(n.port, int) and 0 < n.port < 65536 else 104)
        self.port.setToolTip("The PACS's DICOM port (often 104, 4242 or 11112)")
        self.called = QtWidgets.QLineEdit(n.called_ae)
        self.called.setToolTip("The PACS's AE title (ask its administrator): 1–16 characters, no backslash")
        self.calling = QtWidgets.QLineEdit(n.calling_ae)
        self.calling.setPlaceholderText(DEFAULT_CALLING_AE)
        self.calling.setToolTip("Our AE title, as the PACS knows us: 1–16 characters, no backslash")
        self.url = QtWidgets.QLineEdit(n.url)
        self.url.setPlaceholderText("http://pacs:8042/dicom-web")
        self.url.setToolTip("The DICOMweb root (QIDO-RS / WADO-RS / STOW-RS), http:// or https://")
        self.retrieve = QtWidgets.QComboBox()
        for m in RETRIEVE_METHODS:
            self.retrieve.addItem(RETRIEVE_TITLES.get(m, m), m)
        self.retrieve.setCurrentIndex(max(self.retrieve.findData(n.retrieve), 0))
        self.retrieve.setToolTip("C-GET needs no set-up on the PACS; C-MOVE needs the PACS to know our calling "
                                 "AE title with this computer's address and the C-MOVE port")
        self.move_port = QtWidgets.QSpinBox()
        self.move_port.setRange(1, 65535)
        self.move_port.setValue(n.move_port if isinstance(n.move_port, int) and 0 < n.move_port < 65536 else 11113)
        self.move_port.setToolTip("Our storage port for C-MOVE (open only during a retrieve)")
        self.timeout = QtWidgets.QDoubleSpinBox()
        self.timeout.setRange(0.5, 600)
        self.timeout.setSuffix(" s")
        self.timeout.setValue(float(n.timeout) if n.timeout else 30.0)
        self.timeout.setToolTip("Connect, association and per-answer timeout")
        self._rows = {}
        for key, label, w in (("name", "Name", self.name), ("transport", "Transport", self.transport),
                              ("host", "Host", self.host), ("port", "Port", self.port),
                              ("called", "Called AE title (PACS)", self.called),
                              ("calling", "Calling AE title (us)", self.calling),
                              ("url", "DICOMweb URL", self.url), ("retrieve", "Retrieve with", self.retrieve),
                              ("move_port", "C-MOVE port (ours)", self.move_port),
                              ("timeout", "Timeout", self.timeout)):
            form.addRow(label, w)
            self._rows[key] = w
        self.error = QtWidgets.QLabel("")
        self.error.setObjectName("node-form-error")
        self.error.setStyleSheet("color: #c03030;")
        self.error.setWordWrap(True)
        form.addRow(self.error)
        SB = QtWidgets.QDialogButtonBox.StandardButton
        self.buttons = QtWidgets.QDialogButtonBox(SB.Ok | SB.Cancel)
        self.ok_button = self.buttons.button(SB.Ok)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self.setMinimumWidth(460)
        self._tried = False  # after a refused OK, the message follows every edit
        self.transport.currentIndexChanged.connect(self._on_transport_changed)
        for e in (self.name, self.host, self.called, self.calling, self.url):
            e.textChanged.connect(self._revalidate)
        for sp in (self.port, self.move_port):
            sp.valueChanged.connect(self._revalidate)
        self.retrieve.currentIndexChanged.connect(self._revalidate)
        self._on_transport_changed()

    def _free_name(self) -> str:
        name, i = "PACS", 1
        while name in self.taken:
            i += 1
            name = f"PACS {i}"
        return name

    def _on_transport_changed(self, *_):
        web = self.transport.currentData() == "dicomweb"
        for key in ("host", "port", "called", "calling", "retrieve", "move_port"):
            self.form.setRowVisible(self._rows[key], not web)
        self.form.setRowVisible(self._rows["url"], web)
        self.move_port.setEnabled(self.retrieve.currentData() == "move")
        self._revalidate()
        self.adjustSize()

    def _revalidate(self, *_):
        self.move_port.setEnabled(self.retrieve.currentData() == "move")
        if self._tried:
            self._show_problem(self.problem())

    def _show_problem(self, text: str) -> None:
        if text != self.error.text():
            self.error.setText(text)
            self.adjustSize()

    def raw_node(self) -> RemoteNode:
        return RemoteNode(self.name.text(), host=self.host.text(), port=int(self.port.value()),
                          called_ae=self.called.text(), calling_ae=self.calling.text(),
                          transport=self.transport.currentData(), url=self.url.text(),
                          retrieve=self.retrieve.currentData(), move_port=int(self.move_port.value()),
                          timeout=float(self.timeout.value()))

    def node(self) -> RemoteNode:
        """The validated node, or ValueError with a message for the user."""
        node = self.raw_node().validated()
        if node.name in self.taken:
            raise ValueError(f"a node named {node.name!r} exists already: choose another name")
        return node

    def problem(self) -> str:
        """Why OK is refused ("" when the node is valid)."""
        try:
            self.node()
        except ValueError as exc:
            text = str(exc)
            return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
        return ""

    def accept(self) -> None:
        self._tried = True
        problem = self.problem()
        self._show_problem(problem)
        if problem:
            return
        super().accept()


@dataclass
class _EchoFailed:
    message: str


class PacsNodesPanel(QtWidgets.QWidget):
    """The PACS page: the node table, Add… / Edit… / Remove and Test (echo of the selected node).

    `add_node()` / `edit_node()` open a `NodeFormDialog` without blocking and return it (its OK updates
    the table); `test_node()` returns the running `Job`. Test uses at most `TEST_TIMEOUT_S`."""

    COLUMNS = ("Name", "Transport", "Host:port / URL", "Called AE", "Calling AE", "Retrieve")
    TEST_TIMEOUT_S = 5.0
    nodes_edited = QtCore.Signal()
    echo_finished = QtCore.Signal(float)  # seconds
    echo_failed = QtCore.Signal(str)  # the message shown

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, track=None) -> None:
        super().__init__(parent)
        self._nodes: list[RemoteNode] = []
        self._track = track  # callable(Job): the window keeps (and at shutdown waits for) running jobs
        self.job = None
        self._testing: RemoteNode | None = None
        self.form: NodeFormDialog | None = None
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        intro = QtWidgets.QLabel("Remote DICOM nodes offered by File → Query/Retrieve…; a PACS must know our "
                                 "calling AE title (for C-MOVE also this computer's address and the C-MOVE port).")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.table = QtWidgets.QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("pacs-node-table")
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip("Double-click a node to edit it")
        self.table.itemDoubleClicked.connect(lambda _item: self.edit_node())
        self.table.itemSelectionChanged.connect(self._update_buttons)
        lay.addWidget(self.table, 1)
        row = QtWidgets.QHBoxLayout()
        self.add_button = QtWidgets.QPushButton("Add…")
        self.add_button.setToolTip("Add a PACS node (name, host, port, AE titles — or a DICOMweb URL)")
        self.add_button.clicked.connect(lambda: self.add_node())
        self.edit_button = QtWidgets.QPushButton("Edit…")
        self.edit_button.setToolTip("Edit the selected node")
        self.edit_button.clicked.connect(lambda: self.edit_node())
        self.remove_button = QtWidgets.QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected node (stored on OK)")
        self.remove_button.clicked.connect(self.remove_node)
        self.test_button = QtWidgets.QPushButton("Test")
        self.test_button.setToolTip(f"C-ECHO the selected node (DICOMweb: a one-result search); gives up after "
                                    f"{self.TEST_TIMEOUT_S:g} s")
        self.test_button.clicked.connect(lambda: self.test_node())
        for b in (self.add_button, self.edit_button, self.remove_button, self.test_button):
            row.addWidget(b)
        row.addStretch(1)
        lay.addLayout(row)
        self.test_label = QtWidgets.QLabel("")
        self.test_label.setObjectName("pacs-test-result")
        self.test_label.setWordWrap(True)
        self.test_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.test_label)
        self._update_buttons()

    # ------------------------------------------------------------------ the list
    def nodes(self) -> list[RemoteNode]:
        return list(self._nodes)

    def set_nodes(self, nodes, select: str | None = None) -> None:
        current = select if select is not None else getattr(self.current_node(), "name", None)
        self._nodes = list(nodes)
        self.table.setRowCount(0)
        for n in self._nodes:
            r = self.table.rowCount()
            self.table.insertRow(r)
            web = n.transport == "dicomweb"
            cells = (n.name, "DICOMweb" if web else "DIMSE", n.address, "" if web else n.called_ae,
                     "" if web else n.calling_ae,
                     "WADO-RS" if web else (f"C-MOVE (port {n.move_port})" if n.retrieve == "move" else "C-GET"))
            for c, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(n.describe())
                self.table.setItem(r, c, item)
        names = [n.name for n in self._nodes]
        if current in names:
            self.table.selectRow(names.index(current))
        elif self._nodes:
            self.table.selectRow(0)
        self._update_buttons()

    def current_node(self) -> RemoteNode | None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        r = min(rows) if rows else -1
        return self._nodes[r] if 0 <= r < len(self._nodes) else None

    def select(self, name: str) -> None:
        names = [n.name for n in self._nodes]
        if name in names:
            self.table.selectRow(names.index(name))

    def _busy(self) -> bool:
        try:
            return self.job is not None and self.job.isRunning()
        except RuntimeError:  # the window reaped (deleted) the finished job
            return False

    def _update_buttons(self) -> None:
        has = self.current_node() is not None
        self.edit_button.setEnabled(has)
        self.remove_button.setEnabled(has)
        self.test_button.setEnabled(has and not self._busy())

    def _open_form(self, node: RemoteNode | None) -> NodeFormDialog:
        form = NodeFormDialog(self, node, taken=[n.name for n in self._nodes])
        form.setWindowModality(Qt.WindowModality.WindowModal)
        old = node.name if node is not None else None

        def accepted():
            new = form.node()
            if old is None:
                nodes = self._nodes + [new]
            else:
                nodes = [new if n.name == old else n for n in self._nodes]
            self.set_nodes(nodes, select=new.name)
            self.test_label.setText("")
            self.nodes_edited.emit()

        form.accepted.connect(accepted)
        self.form = form
        form.open()
        return form

    def add_node(self) -> NodeFormDialog:
        return self._open_form(None)

    def edit_node(self) -> NodeFormDialog | None:
        node = self.current_node()
        return self._open_form(node) if node is not None else None

    def remove_node(self) -> None:
        node = self.current_node()
        if node is None:
            return
        r = self._nodes.index(node)
        rest = [n for n in self._nodes if n is not node]
        self.set_nodes(rest, select=rest[min(r, len(rest) - 1)].name if rest else None)
        self.test_label.setText("")
        self.nodes_edited.emit()

    # ------------------------------------------------------------------ Test
    def test_node(self):
        """Echo the selected node in a worker (`echo_finished` / `echo_failed`); the Job, or None."""
        from discviewer.pacs import PacsError, echo
        from discviewer.ui.workers import Job

        node = self.current_node()
        if node is None:
            self._show_result("Select a node to test.", error=True)
            return None
        if self._busy():
            return None
        probe = replace(node, timeout=min(float(node.timeout or self.TEST_TIMEOUT_S), self.TEST_TIMEOUT_S))

        def fn(progress, cancel):
            try:
                return echo(probe)
            except (PacsError, ValueError) as exc:
                return _EchoFailed(str(exc))

        job = Job(fn, kind="pacs-echo")  # no parent: the window (or this panel) keeps it until it ends
        job.succeeded.connect(self._on_echo_succeeded)
        job.failed.connect(self._on_echo_crashed)
        job.finished.connect(self._on_echo_ended)
        self.job = job
        self._testing = node
        if self._track is not None:
            self._track(job)
        self.test_label.setStyleSheet("")
        self.test_label.setText(f"Testing {node.describe()}…")
        self.setCursor(Qt.CursorShape.BusyCursor)
        job.start()
        self._update_buttons()
        return job

    def _on_echo_succeeded(self, _rid: int, result) -> None:
        name = self._testing.name if self._testing is not None else ""
        if isinstance(result, _EchoFailed):
            self._show_result(result.message, error=True)
            self.echo_failed.emit(result.message)
            return
        seconds = float(result)
        self._show_result(f"{name}: OK — {seconds * 1000:.0f} ms")
        self.echo_finished.emit(seconds)

    def _on_echo_crashed(self, _rid: int, message: str) -> None:
        text = message.split("\n\n")[0]
        self._show_result(text, error=True)
        self.echo_failed.emit(text)

    def _on_echo_ended(self) -> None:
        self.unsetCursor()
        QtCore.QTimer.singleShot(0, self._update_buttons)  # isRunning() turns False just after `finished`

    def _show_result(self, text: str, *, error: bool = False) -> None:
        self.test_label.setStyleSheet("color: #c03030;" if error else "color: #1e7a34;")
        self.test_label.setText(text)

    def wait(self, timeout_ms: int = 30000) -> None:
        """Wait for a running Test (the dialog closes; with no window to keep the job)."""
        if self._busy():
            self.job.wait(timeout_ms)


class PreferencesDialog(QtWidgets.QDialog):
    """Pages Viewing, Hanging, Project, Export, Reader, PACS; OK / Cancel / Restore defaults.

    `preferences()` is the edited copy; `accept()` refuses (and shows why) while a value is invalid.
    `track(job)` (the window's) keeps a running PACS Test alive when the dialog closes.
    """

    PAGES = ("Viewing", "Hanging", "Project", "Export", "Reader", "PACS")

    def __init__(self, prefs: Preferences, *, protocols: list[str] | None = None,
                 parent: QtWidgets.QWidget | None = None, track=None) -> None:
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
        # PACS
        self.pacs_panel = PacsNodesPanel(track=track)
        self._tracked = track is not None
        self.stack.addWidget(self.pacs_panel)

        self.error_label = QtWidgets.QLabel("")
        self.error_label.setStyleSheet("color: #c03030;")
        self.error_label.setWordWrap(True)
        outer.addWidget(self.error_label)
        SB = QtWidgets.QDialogButtonBox.StandardButton
        self.buttons = QtWidgets.QDialogButtonBox(SB.Ok | SB.Cancel | SB.RestoreDefaults)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.restore_button = self.buttons.button(SB.RestoreDefaults)
        self.restore_button.setToolTip("Fill every page with the default values (applied on OK); asks before it "
                                       "removes the PACS nodes")
        self.restore_button.clicked.connect(self.restore_defaults)
        outer.addWidget(self.buttons)
        self.page_list.setCurrentRow(0)
        self.set_preferences(prefs)
        self.resize(820, 440)

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
        self.pacs_panel.set_nodes(pacs_nodes(prefs.pacs_nodes))
        self.error_label.setText("")

    def restore_defaults(self) -> bool:
        """Every page back to its default; the PACS nodes go only if the user says so. False: cancelled."""
        nodes = self.pacs_panel.nodes()
        keep = nodes
        if nodes:
            names = ", ".join(n.name for n in nodes)
            choice = _ask(self, "question", "Restore defaults",
                          f"Remove the {len(nodes)} PACS node{'s' if len(nodes) != 1 else ''} too ({names})? "
                          "They are your own settings: the defaults have none.",
                          ["Keep PACS nodes", "Remove PACS nodes", "Cancel"])
            if choice not in ("Keep PACS nodes", "Remove PACS nodes"):
                return False
            keep = [] if choice == "Remove PACS nodes" else nodes
        self.set_preferences(Preferences())
        self.pacs_panel.set_nodes(keep)
        return True

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
        prefs.pacs_nodes = [n.to_dict() for n in self.pacs_panel.nodes()]
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

    def done(self, r: int) -> None:  # noqa: D401 — Qt API
        if not self._tracked:
            self.pacs_panel.wait()  # nobody else keeps a running Test (at most TEST_TIMEOUT_S)
        super().done(r)


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
        a.setToolTip("Mouse scheme, window/level presets, default hanging protocol, autosave, export defaults, "
                     "reader name and PACS nodes (Ctrl+,)")
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
            if page:
                self.dialog.show_page(page)
            self.dialog.raise_()
            self.dialog.activateWindow()
            return self.dialog
        dlg = PreferencesDialog(self.preferences, protocols=self.protocol_names(), parent=self.window,
                                track=getattr(self.window, "_track", None))
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

    def set_pacs_nodes(self, nodes) -> Preferences:
        """Store a new node list (`RemoteNode`s, each validated; ValueError otherwise) without re-applying
        the other preferences (they may have been changed in the running window, e.g. the crosshair)."""
        checked = [n.validated() for n in nodes]
        names = [n.name for n in checked]
        if len(set(names)) != len(names):
            raise ValueError("two PACS nodes have the same name")
        prefs = self.preferences.copy()
        prefs.pacs_nodes = [n.to_dict() for n in checked]
        self.store.save(prefs)
        self.preferences = prefs
        self.window.preferences = prefs
        self.applied.emit(prefs)
        return prefs

    def pacs_nodes(self) -> list[RemoteNode]:
        return pacs_nodes(self.preferences.pacs_nodes)

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

"""`ReadingSetupDialog`: the coordinator creates a blinded reading session.

Sections (one `QTabWidget` page each, OK at the bottom):
- **Cases** — a tree of patients × visits (checkable; "Select all" / "Select none"). With
  "Per disc level" each checked visit is read at every checked level (the levels labelled in the
  workspace, else the fixed lumbar list T12/L1 … L5/S1).
- **Questions** — the shipped templates (`discviewer.reading.questions`) added from a list, a
  custom question of any answer type with its own title, reordered (Up / Down), removed; the
  Required column is editable.
- **Readers** — reader ids, one per row (added from the line edit, removed with Remove).
- **Options** — seed (random by default, editable, "New seed"), answers may be changed after
  submit (default off: locked), re-read subset (fraction or count) after a washout (days, default
  28), hanging (which series roles and planes each case shows), baseline beside the iron question.

OK builds the `ReadingSession` through the core builder and stores its JSON document in
`Workspace.reading[session_id]` (an audit entry, the project marked modified). The dialog only
gathers values: `values()` is the plain description of the choices, `build_session()` turns it
into a session; the session's shuffling, blinding and validation are the core's.
"""
from __future__ import annotations

import dataclasses
import random
import re

from PySide6 import QtCore, QtWidgets

from discviewer.levels import LUMBAR_LEVELS, sort_levels
from discviewer.roles import Role

Qt = QtCore.Qt

#: plane codes a case may show, with their titles
PLANES = (("sag", "sagittal"), ("cor", "coronal"), ("ax", "axial"))
#: series roles offered for the hanging (localizer and "other" are never shown to readers)
HANGING_ROLES = tuple(r.value for r in Role if r not in (Role.LOCALIZER, Role.OTHER))
DEFAULT_HANGING_ROLES = (Role.T2_SAG.value, Role.T1_SAG.value, Role.T2STAR_GRE.value)
DEFAULT_WASHOUT_DAYS = 28
SEED_MAX = 2 ** 31 - 1


#: template key → title in the template list (keys of `discviewer.reading.questions.TEMPLATES`)
TEMPLATE_TITLES = {"pfirrmann": "Pfirrmann grade I–V", "modic": "Modic type 0–3 (cranial and caudal endplate)",
                   "iron_presence": "Iron presence 0–3 + confidence", "disc_height": "Disc height (measurement, mm)",
                   "signal_ratio": "Signal ratio nucleus / CSF (measurement)", "free_text": "Free-text comment"}
DEFAULT_TEMPLATES = ("pfirrmann", "iron_presence")
#: custom question kinds offered: key → (title, Question settings)
CUSTOM_TYPES = {
    "ordinal": ("Ordinal choice (ordered categories)", dict(type="choice", ordinal=True)),
    "choice": ("Choice (unordered categories)", dict(type="choice")),
    "multi": ("Multiple choice", dict(type="multi")),
    "number": ("Number", dict(type="number")),
    "yesno": ("Yes / no", dict(type="yesno")),
    "text": ("Free text", dict(type="text")),
    "disc_height": ("Measurement: disc height (mm)", dict(type="measurement", measurement="disc_height",
                                                          unit="mm", min=0.0)),
    "signal_ratio": ("Measurement: signal ratio", dict(type="measurement", measurement="signal_ratio", min=0.0)),
}


def template_titles() -> list[tuple[str, str]]:
    from discviewer.reading.questions import TEMPLATES

    return [(k, TEMPLATE_TITLES.get(k, k)) for k in TEMPLATES]


def question_kind_title(q) -> str:
    if q.type == "choice":
        return "ordinal" if q.ordinal else "choice"
    if q.type == "measurement":
        return f"measurement ({q.measurement.replace('_', ' ')})"
    return {"multi": "multiple choice", "yesno": "yes / no", "text": "free text"}.get(q.type, q.type)


def unique_id(base: str, taken) -> str:
    """`base` (made a valid id: lower case, letters, digits and _) or `base_2`, `base_3`, … not in `taken`."""
    base = re.sub(r"[^a-z0-9_]+", "_", base.strip().lower()).strip("_") or "question"
    out, i = base, 2
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    return out


def custom_question(kind: str, title: str, *, choices=(), required: bool = True, taken=()):
    """A `Question` of custom kind `kind` (a key of `CUSTOM_TYPES`) with the reader-facing `title`."""
    from discviewer.reading.questions import Option, Question

    settings = dict(CUSTOM_TYPES[kind][1])
    if settings["type"] in ("choice", "multi"):
        if not choices:
            raise ValueError(f"a {CUSTOM_TYPES[kind][0].lower()} question needs its choices")
        settings["options"] = tuple(Option(i, str(c)) for i, c in enumerate(choices))
    return Question(unique_id(title, set(taken)), title.strip(), required=required, **settings)


def random_seed() -> int:
    return random.SystemRandom().randint(1, SEED_MAX)


def workspace_levels(workspace) -> list[str]:
    """Disc levels labelled anywhere in the workspace (spinal order), else the fixed lumbar list."""
    from discviewer.levels import DISC_LABEL_KIND

    found = {a.level for a in getattr(workspace, "annotations", ()) if a.kind == DISC_LABEL_KIND and a.level}
    return sort_levels(found) if found else list(LUMBAR_LEVELS)


class ReadingSetupDialog(QtWidgets.QDialog):
    """See the module docstring. `session` holds the created session after OK (else None)."""

    session_created = QtCore.Signal(object)  # the ReadingSession, after it was stored

    def __init__(self, workspace, study=None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New reading session")
        self.workspace = workspace
        self.study = study if study is not None else getattr(workspace, "study", None)
        self.session = None
        self.error = ""
        self.resize(760, 600)

        lay = QtWidgets.QVBoxLayout(self)
        form = QtWidgets.QFormLayout()
        self.name_edit = QtWidgets.QLineEdit()
        self.name_edit.setPlaceholderText("e.g. Pfirrmann and iron, round 1")
        form.addRow("Session name", self.name_edit)
        lay.addLayout(form)
        self.tabs = QtWidgets.QTabWidget()
        lay.addWidget(self.tabs, 1)
        self.tabs.addTab(self._build_cases(), "Cases")
        self.tabs.addTab(self._build_questions(), "Questions")
        self.tabs.addTab(self._build_readers(), "Readers")
        self.tabs.addTab(self._build_options(), "Options")
        self.summary_label = QtWidgets.QLabel("")
        self.summary_label.setStyleSheet("color: #444;")
        lay.addWidget(self.summary_label)
        self.buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                                  | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).setText("Create session")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self._update_summary()

    @property
    def ok_button(self) -> QtWidgets.QPushButton:
        return self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)

    # ------------------------------------------------------------------ cases
    def _build_cases(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        lay = QtWidgets.QHBoxLayout(page)
        left = QtWidgets.QVBoxLayout()
        self.case_tree = QtWidgets.QTreeWidget()
        self.case_tree.setHeaderLabels(["Patient / visit", "Date", "Days", "Series"])
        self.case_tree.setToolTip("Cases to read: each checked visit (× each checked level when read per disc level)")
        left.addWidget(self.case_tree, 1)
        row = QtWidgets.QHBoxLayout()
        self.select_all_button = QtWidgets.QPushButton("Select all")
        self.select_none_button = QtWidgets.QPushButton("Select none")
        self.select_all_button.clicked.connect(lambda: self.select_all_visits(True))
        self.select_none_button.clicked.connect(lambda: self.select_all_visits(False))
        row.addWidget(self.select_all_button)
        row.addWidget(self.select_none_button)
        row.addStretch(1)
        left.addLayout(row)
        lay.addLayout(left, 3)

        right = QtWidgets.QVBoxLayout()
        self.per_level_box = QtWidgets.QCheckBox("Per disc level")
        self.per_level_box.setToolTip("One case per visit and disc level (else one case per visit)")
        self.level_list = QtWidgets.QListWidget()
        self.level_list.setToolTip("Disc levels read (labelled in this project, else T12/L1 … L5/S1)")
        for level in workspace_levels(self.workspace):
            it = QtWidgets.QListWidgetItem(level)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked)
            self.level_list.addItem(it)
        self.level_list.setEnabled(False)
        self.per_level_box.toggled.connect(self.level_list.setEnabled)
        self.per_level_box.toggled.connect(lambda _: self._update_summary())
        self.level_list.itemChanged.connect(lambda _: self._update_summary())
        right.addWidget(self.per_level_box)
        right.addWidget(self.level_list, 1)
        lay.addLayout(right, 1)

        self._fill_case_tree()
        self.case_tree.itemChanged.connect(self._on_case_item_changed)
        return page

    def _fill_case_tree(self) -> None:
        tree = self.case_tree
        tree.clear()
        for p in self._patients():
            pit = QtWidgets.QTreeWidgetItem([p["label"], "", "", ""])
            pit.setFlags(pit.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsAutoTristate)
            pit.setData(0, Qt.ItemDataRole.UserRole, ("patient", p["id"]))
            for v in p["visits"]:
                days = "" if v["days"] is None else str(v["days"])
                vit = QtWidgets.QTreeWidgetItem([v["label"], v["date"], days, str(v["n_series"])])
                vit.setFlags(vit.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                vit.setCheckState(0, Qt.CheckState.Checked)
                vit.setData(0, Qt.ItemDataRole.UserRole, ("visit", p["id"], v["id"]))
                pit.addChild(vit)
            tree.addTopLevelItem(pit)
            pit.setExpanded(True)
        for c in range(4):
            tree.resizeColumnToContents(c)

    def _patients(self) -> list[dict]:
        """Patients and visits from the study (or, without one, the workspace's stored records)."""
        out = []
        if self.study is not None:
            for p in self.study.patients:
                out.append({"id": p.id, "label": f"{p.name} ({p.id})" if p.name else p.id,
                            "visits": [{"id": v.id, "label": v.label, "date": v.date.isoformat() if v.date else "",
                                        "days": v.days, "n_series": len(v.series)} for v in p.visits]})
            return out
        for p in getattr(self.workspace, "patients", []) or []:
            out.append({"id": p.id, "label": f"{p.name} ({p.id})" if p.name else p.id,
                        "visits": [{"id": v.id, "label": v.label, "date": v.date, "days": v.days,
                                    "n_series": len(v.series)} for v in p.visits]})
        return out

    def _visit_items(self):
        for i in range(self.case_tree.topLevelItemCount()):
            pit = self.case_tree.topLevelItem(i)
            for j in range(pit.childCount()):
                yield pit.child(j)

    def select_all_visits(self, on: bool = True) -> None:
        state = Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        for it in self._visit_items():
            it.setCheckState(0, state)

    def set_visit_checked(self, visit_id: str, on: bool) -> None:
        for it in self._visit_items():
            if it.data(0, Qt.ItemDataRole.UserRole)[2] == visit_id:
                it.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def set_levels(self, levels) -> None:
        """Read per disc level at exactly these levels (an empty list: per visit)."""
        levels = list(levels)
        self.per_level_box.setChecked(bool(levels))
        present = {self.level_list.item(i).text() for i in range(self.level_list.count())}
        for lv in levels:
            if lv not in present:
                it = QtWidgets.QListWidgetItem(lv)
                it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                self.level_list.addItem(it)
        for i in range(self.level_list.count()):
            it = self.level_list.item(i)
            it.setCheckState(Qt.CheckState.Checked if it.text() in levels else Qt.CheckState.Unchecked)

    def chosen_visits(self) -> list[tuple[str, str]]:
        """(patient id, visit id) of every checked visit, in tree order."""
        out = []
        for it in self._visit_items():
            if it.checkState(0) == Qt.CheckState.Checked:
                _, pid, vid = it.data(0, Qt.ItemDataRole.UserRole)
                out.append((pid, vid))
        return out

    def chosen_levels(self) -> list[str]:
        if not self.per_level_box.isChecked():
            return []
        return [self.level_list.item(i).text() for i in range(self.level_list.count())
                if self.level_list.item(i).checkState() == Qt.CheckState.Checked]

    def _on_case_item_changed(self, item, column) -> None:
        self._update_summary()

    # ------------------------------------------------------------------ questions
    def _build_questions(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        lay = QtWidgets.QHBoxLayout(page)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(QtWidgets.QLabel("Templates"))
        self.template_list = QtWidgets.QListWidget()
        for key, title in template_titles():
            it = QtWidgets.QListWidgetItem(title)
            it.setData(Qt.ItemDataRole.UserRole, key)
            self.template_list.addItem(it)
        self.template_list.itemDoubleClicked.connect(lambda it: self.add_template(it.data(Qt.ItemDataRole.UserRole)))
        left.addWidget(self.template_list, 1)
        self.add_template_button = QtWidgets.QPushButton("Add template →")
        self.add_template_button.clicked.connect(self._add_selected_template)
        left.addWidget(self.add_template_button)
        box = QtWidgets.QGroupBox("Custom question")
        cf = QtWidgets.QFormLayout(box)
        self.custom_type_combo = QtWidgets.QComboBox()
        for key, (title, _) in CUSTOM_TYPES.items():
            self.custom_type_combo.addItem(title, key)
        self.custom_title_edit = QtWidgets.QLineEdit()
        self.custom_title_edit.setPlaceholderText("question shown to the reader")
        self.custom_choices_edit = QtWidgets.QLineEdit()
        self.custom_choices_edit.setPlaceholderText("choices, comma-separated (ordinal / choice types)")
        cf.addRow("Type", self.custom_type_combo)
        cf.addRow("Title", self.custom_title_edit)
        cf.addRow("Choices", self.custom_choices_edit)
        self.add_custom_button = QtWidgets.QPushButton("Add custom →")
        self.add_custom_button.clicked.connect(self._add_custom_from_widgets)
        cf.addRow(self.add_custom_button)
        left.addWidget(box)
        lay.addLayout(left, 2)

        right = QtWidgets.QVBoxLayout()
        right.addWidget(QtWidgets.QLabel("Questions of this session (in reading order)"))
        self.question_table = QtWidgets.QTableWidget(0, 3)
        self.question_table.setHorizontalHeaderLabels(["Question", "Type", "Required"])
        self.question_table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.question_table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.question_table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.question_table.verticalHeader().setVisible(False)
        self.question_table.itemChanged.connect(lambda _: self._update_summary())
        right.addWidget(self.question_table, 1)
        row = QtWidgets.QHBoxLayout()
        self.up_button = QtWidgets.QPushButton("Up")
        self.down_button = QtWidgets.QPushButton("Down")
        self.remove_question_button = QtWidgets.QPushButton("Remove")
        self.up_button.clicked.connect(lambda: self.move_question(self.question_table.currentRow(), -1))
        self.down_button.clicked.connect(lambda: self.move_question(self.question_table.currentRow(), 1))
        self.remove_question_button.clicked.connect(lambda: self.remove_question(self.question_table.currentRow()))
        for b in (self.up_button, self.down_button, self.remove_question_button):
            row.addWidget(b)
        row.addStretch(1)
        right.addLayout(row)
        lay.addLayout(right, 3)
        self.questions: list = []  # core Question objects, in order
        for key in DEFAULT_TEMPLATES:
            self.add_template(key)
        return page

    def _add_selected_template(self) -> None:
        it = self.template_list.currentItem()
        if it is not None:
            self.add_template(it.data(Qt.ItemDataRole.UserRole))

    def add_template(self, key: str) -> list:
        """Append the questions of template `key` (Modic adds two); ids made unique if already there."""
        from discviewer.reading.questions import template

        made = []
        for q in template(key):
            q = dataclasses.replace(q, id=unique_id(q.id, {x.id for x in self.questions}))
            self.questions.append(q)
            made.append(q)
        self._fill_question_table(select=len(self.questions) - 1)
        return made

    def _add_custom_from_widgets(self) -> None:
        title = self.custom_title_edit.text().strip()
        if not title:
            self.custom_title_edit.setFocus()
            return
        choices = [c.strip() for c in self.custom_choices_edit.text().split(",") if c.strip()]
        try:
            self.add_custom(self.custom_type_combo.currentData(), title, choices=choices)
        except ValueError as exc:
            ask(self, "warning", "Custom question", str(exc))
            return
        self.custom_title_edit.clear()
        self.custom_choices_edit.clear()

    def add_custom(self, kind: str, title: str, *, choices=(), required: bool = True):
        """Append a custom question; `kind` is a key of `CUSTOM_TYPES`. Choice types take their
        options from `choices` (values 0, 1, … in the order given; ordinal keeps that order)."""
        q = custom_question(kind, title, choices=list(choices), required=required,
                            taken={x.id for x in self.questions})
        self._append_question(q)
        return q

    def _append_question(self, q) -> None:
        self.questions.append(q)
        self._fill_question_table(select=len(self.questions) - 1)

    def _fill_question_table(self, select: int = -1) -> None:
        t = self.question_table
        t.blockSignals(True)
        t.setRowCount(len(self.questions))
        for r, q in enumerate(self.questions):
            title = QtWidgets.QTableWidgetItem(q.text)
            title.setFlags(title.flags() & ~Qt.ItemFlag.ItemIsEditable)
            title.setToolTip(f"id: {q.id}" + (f"\n{q.help}" if q.help else ""))
            kind = QtWidgets.QTableWidgetItem(question_kind_title(q))
            kind.setFlags(kind.flags() & ~Qt.ItemFlag.ItemIsEditable)
            req = QtWidgets.QTableWidgetItem("")
            req.setFlags((req.flags() | Qt.ItemFlag.ItemIsUserCheckable) & ~Qt.ItemFlag.ItemIsEditable)
            req.setCheckState(Qt.CheckState.Checked if q.required else Qt.CheckState.Unchecked)
            t.setItem(r, 0, title)
            t.setItem(r, 1, kind)
            t.setItem(r, 2, req)
        t.blockSignals(False)
        t.resizeColumnToContents(1)
        if 0 <= select < len(self.questions):
            t.selectRow(select)
            t.setCurrentCell(select, 0)
        self._update_summary()

    def move_question(self, row: int, step: int) -> None:
        j = row + step
        if not (0 <= row < len(self.questions) and 0 <= j < len(self.questions)):
            return
        self._sync_required()
        self.questions[row], self.questions[j] = self.questions[j], self.questions[row]
        self._fill_question_table(select=j)

    def remove_question(self, row: int) -> None:
        if 0 <= row < len(self.questions):
            self._sync_required()
            del self.questions[row]
            self._fill_question_table(select=min(row, len(self.questions) - 1))

    def set_required(self, row: int, on: bool) -> None:
        self.question_table.item(row, 2).setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _sync_required(self) -> None:
        """Copy the Required column into the question objects."""
        for r, q in enumerate(self.questions):
            it = self.question_table.item(r, 2)
            if it is not None:
                self.questions[r] = dataclasses.replace(q, required=it.checkState() == Qt.CheckState.Checked)

    def question_ids(self) -> list[str]:
        return [q.id for q in self.questions]

    # ------------------------------------------------------------------ readers
    def _build_readers(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(page)
        lay.addWidget(QtWidgets.QLabel("Reader ids (pseudonyms are fine: they appear in exports)"))
        row = QtWidgets.QHBoxLayout()
        self.reader_edit = QtWidgets.QLineEdit()
        self.reader_edit.setPlaceholderText("reader id, e.g. R1")
        self.reader_edit.returnPressed.connect(self._add_reader_from_edit)
        self.add_reader_button = QtWidgets.QPushButton("Add")
        self.add_reader_button.clicked.connect(self._add_reader_from_edit)
        self.remove_reader_button = QtWidgets.QPushButton("Remove")
        self.remove_reader_button.clicked.connect(self._remove_current_reader)
        row.addWidget(self.reader_edit, 1)
        row.addWidget(self.add_reader_button)
        row.addWidget(self.remove_reader_button)
        lay.addLayout(row)
        self.reader_list = QtWidgets.QListWidget()
        lay.addWidget(self.reader_list, 1)
        return page

    def _add_reader_from_edit(self) -> None:
        if self.add_reader(self.reader_edit.text()):
            self.reader_edit.clear()

    def add_reader(self, reader_id: str) -> bool:
        rid = reader_id.strip()
        if not rid or rid in self.readers():
            return False
        self.reader_list.addItem(rid)
        self._update_summary()
        return True

    def _remove_current_reader(self) -> None:
        row = self.reader_list.currentRow()
        if row >= 0:
            self.reader_list.takeItem(row)
            self._update_summary()

    def readers(self) -> list[str]:
        return [self.reader_list.item(i).text() for i in range(self.reader_list.count())]

    # ------------------------------------------------------------------ options
    def _build_options(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(page)
        form = QtWidgets.QFormLayout()
        seed_row = QtWidgets.QHBoxLayout()
        self.seed_spin = QtWidgets.QSpinBox()
        self.seed_spin.setRange(0, SEED_MAX)
        self.seed_spin.setValue(random_seed())
        self.seed_spin.setToolTip("Seeds each reader's case order (reproducible); stored with the session")
        self.new_seed_button = QtWidgets.QPushButton("New seed")
        self.new_seed_button.clicked.connect(lambda: self.seed_spin.setValue(random_seed()))
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.new_seed_button)
        form.addRow("Seed", seed_row)
        self.allow_change_box = QtWidgets.QCheckBox("Answers may be changed after submit")
        self.allow_change_box.setToolTip("Off (default): an answer locks when the reader submits the case")
        form.addRow("", self.allow_change_box)
        lay.addLayout(form)

        reread = QtWidgets.QGroupBox("Re-read subset (intra-reader agreement)")
        rf = QtWidgets.QFormLayout(reread)
        mode_row = QtWidgets.QHBoxLayout()
        self.reread_fraction_radio = QtWidgets.QRadioButton("Fraction")
        self.reread_count_radio = QtWidgets.QRadioButton("Count")
        self.reread_fraction_radio.setChecked(True)
        self.reread_fraction_spin = QtWidgets.QDoubleSpinBox()
        self.reread_fraction_spin.setRange(0.0, 100.0)
        self.reread_fraction_spin.setDecimals(0)
        self.reread_fraction_spin.setSuffix(" %")
        self.reread_fraction_spin.setValue(20.0)
        self.reread_count_spin = QtWidgets.QSpinBox()
        self.reread_count_spin.setRange(0, 100000)
        self.reread_count_spin.setEnabled(False)
        self.reread_fraction_radio.toggled.connect(self.reread_fraction_spin.setEnabled)
        self.reread_count_radio.toggled.connect(self.reread_count_spin.setEnabled)
        for w in (self.reread_fraction_radio, self.reread_fraction_spin, self.reread_count_radio,
                  self.reread_count_spin):
            mode_row.addWidget(w)
        mode_row.addStretch(1)
        rf.addRow("Cases re-read", mode_row)
        self.washout_spin = QtWidgets.QSpinBox()
        self.washout_spin.setRange(0, 3650)
        self.washout_spin.setValue(DEFAULT_WASHOUT_DAYS)
        self.washout_spin.setSuffix(" days")
        self.washout_spin.setToolTip("The re-read opens this long after the reader's first read ended "
                                     "(re-shuffled); ≥ 4 weeks is usual")
        rf.addRow("Washout", self.washout_spin)
        for w in (self.reread_fraction_spin, self.reread_count_spin):
            w.valueChanged.connect(lambda _: self._update_summary())
        self.reread_count_radio.toggled.connect(lambda _: self._update_summary())
        lay.addWidget(reread)

        hang = QtWidgets.QGroupBox("What each case shows")
        hl = QtWidgets.QGridLayout(hang)
        hl.addWidget(QtWidgets.QLabel("Series roles"), 0, 0)
        self.role_boxes: dict[str, QtWidgets.QCheckBox] = {}
        for i, role in enumerate(HANGING_ROLES):
            b = QtWidgets.QCheckBox(role)
            b.setChecked(role in DEFAULT_HANGING_ROLES)
            self.role_boxes[role] = b
            hl.addWidget(b, 1 + i // 3, i % 3)
        r0 = 2 + (len(HANGING_ROLES) - 1) // 3
        hl.addWidget(QtWidgets.QLabel("Planes"), r0, 0)
        self.plane_boxes: dict[str, QtWidgets.QCheckBox] = {}
        for i, (code, title) in enumerate(PLANES):
            b = QtWidgets.QCheckBox(title)
            b.setChecked(code == "sag")
            self.plane_boxes[code] = b
            hl.addWidget(b, r0 + 1, i)
        self.show_baseline_box = QtWidgets.QCheckBox("Show the pre-injection baseline beside the case "
                                                     "for the iron question")
        self.show_baseline_box.setChecked(True)
        self.show_baseline_box.setToolTip("Dark discs (degeneration, gas, calcification) look like iron; the "
                                          "baseline tells them apart. It is shown unlabelled.\n"
                                          "Trade-off: a case of the baseline visit itself has no earlier "
                                          "reference, so readers can tell baseline cases apart. Leave this off "
                                          "when the visit must stay hidden for every question.")
        hl.addWidget(self.show_baseline_box, r0 + 2, 0, 1, 3)
        lay.addWidget(hang)
        lay.addStretch(1)
        return page

    def set_hanging(self, roles, planes) -> None:
        for r, b in self.role_boxes.items():
            b.setChecked(r in roles)
        for p, b in self.plane_boxes.items():
            b.setChecked(p in planes)

    def hanging_roles(self) -> list[str]:
        return [r for r, b in self.role_boxes.items() if b.isChecked()]

    def hanging_planes(self) -> list[str]:
        return [p for p, b in self.plane_boxes.items() if b.isChecked()]

    # ------------------------------------------------------------------ result
    def values(self) -> dict:
        """The choices as plain values (what `build_session` turns into a session)."""
        self._sync_required()
        by_count = self.reread_count_radio.isChecked()
        return {
            "name": self.name_edit.text().strip(),
            "visits": self.chosen_visits(),
            "levels": self.chosen_levels(),
            "questions": list(self.questions),
            "readers": self.readers(),
            "seed": int(self.seed_spin.value()),
            "allow_change": self.allow_change_box.isChecked(),
            "reread_fraction": None if by_count else self.reread_fraction_spin.value() / 100.0,
            "reread_count": self.reread_count_spin.value() if by_count else None,
            "washout_days": int(self.washout_spin.value()),
            "hanging_roles": self.hanging_roles(),
            "hanging_planes": self.hanging_planes(),
            "show_baseline_for_iron": self.show_baseline_box.isChecked(),
        }

    def problems(self) -> list[str]:
        v = self.values()
        out = []
        if not v["visits"]:
            out.append("choose at least one case (a visit)")
        if self.per_level_box.isChecked() and not v["levels"]:
            out.append("choose at least one disc level (or read per visit)")
        if not v["questions"]:
            out.append("add at least one question")
        if not v["readers"]:
            out.append("add at least one reader")
        if not v["hanging_roles"] or not v["hanging_planes"]:
            out.append("choose at least one series role and one plane to show")
        return out

    def _update_summary(self) -> None:
        if not hasattr(self, "summary_label") or not hasattr(self, "reader_list") \
                or not hasattr(self, "seed_spin"):
            return
        n_cases = len(self.chosen_visits()) * max(1, len(self.chosen_levels()))
        self.summary_label.setText(f"{n_cases} case(s) × {len(self.questions)} question(s) × "
                                   f"{len(self.readers())} reader(s)")

    def build_session(self):
        """The `ReadingSession` of the current choices (`discviewer.reading.create_session`; ValueError
        naming what is missing when the choices are incomplete)."""
        from discviewer.reading import HangingOptions, SessionOptions, create_session

        problems = self.problems()
        if problems:
            raise ValueError("Cannot create the session: " + "; ".join(problems) + ".")
        if self.study is None:
            raise ValueError("Cannot create the session: the project's study is not loaded (open its sources).")
        v = self.values()
        n_cases = len(v["visits"]) * max(1, len(v["levels"]))
        if v["reread_count"] is not None:
            fraction = min(1.0, v["reread_count"] / n_cases) if n_cases else 0.0
        else:
            fraction = v["reread_fraction"]
        options = SessionOptions(
            allow_change_after_submit=v["allow_change"], reread_fraction=fraction, washout_days=v["washout_days"],
            hanging=HangingOptions(tuple(v["hanging_roles"]), tuple(v["hanging_planes"]),
                                   v["show_baseline_for_iron"]))
        return create_session(v["name"] or "Reading session", self.study, v["questions"], v["readers"],
                              levels=v["levels"] or None, patients=sorted({p for p, _ in v["visits"]}),
                              visits=[vid for _, vid in v["visits"]], seed=v["seed"], options=options)

    def accept(self) -> None:
        """Create the session and store it in the workspace (audit entry, project modified); on
        invalid choices say why and keep the dialog open."""
        from discviewer.reading import store_session

        try:
            session = self.build_session()
        except Exception as exc:
            self.error = str(exc)
            ask(self, "warning", "Reading session not created", str(exc))
            return
        store_session(self.workspace, session, action="reading session created")
        self.session = session
        self.session_created.emit(session)
        super().accept()


def ask(parent, kind: str, title: str, text: str, buttons=("OK",)) -> str:
    """A message box through the project controller's `default_ask` (tests replace it)."""
    from discviewer.ui import project_controller

    return project_controller.default_ask(parent)(kind, title, text, list(buttons))

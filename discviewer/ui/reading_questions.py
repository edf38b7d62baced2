"""`QuestionsPanel`: the questions of a blinded reading session as a form beside the images.

One `QuestionWidget` per `discviewer.reading.questions.Question`; the widget is only an editor of
the answer value — validation, empty-answer rules and locking belong to the reading core.

| type | widget |
|---|---|
| choice | radio buttons with the option's criteria beside them (e.g. Pfirrmann's); a "[k]" key hint |
| multi | check boxes |
| number | spin box with the question's min / max / step and unit; "—" (its lowest value) means empty |
| yesno | "yes" / "no" radio buttons |
| text | one-line text entry |
| measurement | a number entry with the unit and a "Measure" button (see below) |

Measurement: "Measure" asks the window (`measure_requested`) to arm its measure tool — disc height: the
6-point tool, value = mean of DHa, DHm, DHp; signal ratio: two ellipse ROIs, nucleus then CSF — which
fills the number (`set_measured`) and keeps the components, method and points in the answer. Typing a
number instead stores just the number.

A question with a `confidence` scale gets a second row of radio buttons; its value is then
{"value": v, "confidence": c} as the core stores it.

Keyboard: a number key picks an option of the *current* choice question — the one holding the focus,
else the first choice question still unanswered. When every option value of a question is an integer
0–9 the key is the value (Pfirrmann "2" = II, iron "0" = none), otherwise the key is the option's
position (1 = first). After a pick the focus moves to the next question.

`values()` returns {question id: value or None}; `set_values(dict)` fills the form without emitting
`edited`; `set_locked(True)` makes every editor read-only (disabled), so a submitted answer cannot be
changed through the UI.
"""
from __future__ import annotations

from PySide6 import QtCore, QtWidgets

Qt = QtCore.Qt


def _muted(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("QLabel { color: #444; } QLabel:disabled { color: #888; }")
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(60)
    return label


def _option_keys(options) -> list[str]:
    """The key that picks each option (see the module docstring); "" where none."""
    values = [o.value for o in options]
    if values and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 9 for v in values):
        return [str(v) for v in values]
    return [str(i + 1) if i < 9 else "" for i in range(len(values))]


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


class QuestionWidget(QtWidgets.QGroupBox):
    """The editor of one question's answer."""

    edited = QtCore.Signal()
    measure_requested = QtCore.Signal(object)  # the Question (measurement questions)

    def __init__(self, question, parent: QtWidgets.QWidget | None = None) -> None:
        title = question.text + ("" if question.required else "  (optional)")
        super().__init__(title, parent)
        self.question = question
        self.setObjectName(f"question_{question.id}")
        self.buttons: list[QtWidgets.QAbstractButton] = []
        self.keys: list[str] = []
        self.editor: QtWidgets.QWidget | None = None
        self.confidence_buttons: list[QtWidgets.QRadioButton] = []
        self.measure_button: QtWidgets.QPushButton | None = None
        self.details: dict = {}  # a measurement's components / method / points (set by the measure tool)
        self._locked = False
        lay = QtWidgets.QGridLayout(self)
        lay.setHorizontalSpacing(10)
        lay.setVerticalSpacing(4)
        self.grid = lay
        t = question.type
        row = 0
        if question.help:
            lay.addWidget(_muted(question.help), row, 0, 1, 2)
            row += 1
        if t in ("choice", "multi", "yesno"):
            if t == "yesno":
                from discviewer.reading.questions import Option

                options = (Option(True, "yes"), Option(False, "no"))
            else:
                options = question.options
            self.options = list(options)
            self.group = QtWidgets.QButtonGroup(self)
            self.group.setExclusive(t != "multi")
            self.keys = _option_keys(options) if t == "choice" else [""] * len(options)
            for i, (o, key) in enumerate(zip(options, self.keys)):
                text = f"[{key}]  {o.label}" if key else str(o.label)
                b = QtWidgets.QCheckBox(text) if t == "multi" else QtWidgets.QRadioButton(text)
                b.setObjectName(f"{question.id}_option_{i}")
                self.group.addButton(b, i)
                self.buttons.append(b)
                lay.addWidget(b, row, 0, Qt.AlignmentFlag.AlignTop)
                if getattr(o, "criteria", ""):
                    lay.addWidget(_muted(o.criteria), row, 1)
                row += 1
            lay.setColumnStretch(1, 1)
            self.group.buttonClicked.connect(lambda _b: self._user_edit())
        elif t in ("number", "measurement"):
            spin = QtWidgets.QDoubleSpinBox()
            step = question.step or (1.0 if t == "number" else 0.1)
            if question.step is None and t == "measurement":
                decimals = 2
            elif float(step).is_integer() and (question.min is None or float(question.min).is_integer()):
                decimals = 0
            else:
                decimals = max(1, min(4, len(f"{step:g}".split(".")[-1])))
            spin.setDecimals(decimals)
            lo = question.min if question.min is not None else -1e6
            hi = question.max if question.max is not None else 1e6
            spin.setRange(lo - step, hi)  # the lowest value stands for "empty"
            spin.setSingleStep(step)
            spin.setSpecialValueText("—")
            spin.setValue(spin.minimum())
            if question.unit:
                spin.setSuffix(f" {question.unit}")
            spin.setKeyboardTracking(False)
            spin.setObjectName(f"{question.id}_value")
            spin.valueChanged.connect(lambda _v: self._typed())
            spin.setMinimumWidth(120)
            self.editor = spin
            if t == "measurement":
                cell = QtWidgets.QHBoxLayout()
                cell.addWidget(spin, 1)
                b = QtWidgets.QPushButton("Measure")
                b.setObjectName(f"{question.id}_measure")
                b.setToolTip("Measure on the case's first image with the measure tool; the value is filled in")
                b.clicked.connect(lambda: self.measure_requested.emit(self.question))
                self.measure_button = b
                cell.addWidget(b)
                lay.addLayout(cell, row, 0)
            else:
                lay.addWidget(spin, row, 0)
            rng = []
            if question.min is not None:
                rng.append(f"min {question.min:g}")
            if question.max is not None:
                rng.append(f"max {question.max:g}")
            if question.step is not None:
                rng.append(f"step {question.step:g}")
            if t == "measurement":
                rng.append("Measure, or type the value")
            row += 1
            if rng:
                lay.addWidget(_muted(", ".join(rng)), row, 0, 1, 2)
                row += 1
        else:  # text
            edit = QtWidgets.QLineEdit()
            edit.setObjectName(f"{question.id}_text")
            edit.textEdited.connect(lambda _t: self._user_edit())
            self.editor = edit
            lay.addWidget(edit, row, 0, 1, 2)
            row += 1
        if question.confidence:
            lay.addWidget(_muted("Confidence"), row, 0, 1, 2)
            row += 1
            self.confidence_group = QtWidgets.QButtonGroup(self)
            box = QtWidgets.QGridLayout()
            for i, o in enumerate(question.confidence):
                b = QtWidgets.QRadioButton(str(o.label))
                b.setObjectName(f"{question.id}_confidence_{i}")
                self.confidence_group.addButton(b, i)
                self.confidence_buttons.append(b)
                box.addWidget(b, i // 2, i % 2)
            lay.addLayout(box, row, 0, 1, 2)
            self.confidence_group.buttonClicked.connect(lambda _b: self._user_edit())

    # ------------------------------------------------------------------ value
    def _user_edit(self) -> None:
        if not self._locked:
            self.edited.emit()

    def _typed(self) -> None:
        self.details = {}  # a typed number replaces what a tool measured
        self._user_edit()

    def set_measured(self, value: float, details: dict) -> None:
        """A measure tool's result: the number (shown in the entry) and its components / method / points."""
        if self._locked:
            return
        spin = self.editor
        with QtCore.QSignalBlocker(spin):
            spin.setValue(float(value))
        self.details = dict(details)
        self._user_edit()

    def _bare_value(self):
        t = self.question.type
        if t in ("choice", "yesno"):
            i = self.group.checkedId()
            return None if i < 0 else self.options[i].value
        if t == "multi":
            return [o.value for o, b in zip(self.options, self.buttons) if b.isChecked()]
        if t in ("number", "measurement"):
            spin = self.editor
            if spin.value() <= spin.minimum():
                return None
            v = spin.value()
            if spin.decimals() == 0:
                v = int(round(v))
            return v if t == "number" else {"value": v, **self.details}
        text = self.editor.text()
        return text if text.strip() else None

    def value(self):
        """The answer as the core stores it (None when empty)."""
        v = self._bare_value()
        if self.question.confidence:
            i = self.confidence_group.checkedId()
            c = None if i < 0 else self.question.confidence[i].value
            if v is None and c is None:
                return None
            return {"value": v, "confidence": c}
        return v

    def set_value(self, value) -> None:
        """Show `value` (stored form; None clears) without emitting `edited`."""
        blockers = [QtCore.QSignalBlocker(o) for o in (self, self.editor) if o is not None]
        try:
            conf = None
            if self.question.confidence and isinstance(value, dict) and "confidence" in value:
                conf = value.get("confidence")
                value = value.get("value")
            t = self.question.type
            if t in ("choice", "yesno", "multi"):
                chosen = value if t == "multi" else [value]
                chosen = chosen or []
                self.group.setExclusive(False)
                for o, b in zip(self.options, self.buttons):
                    b.setChecked(any(_same(o.value, c) for c in chosen if c is not None))
                self.group.setExclusive(t != "multi")
            elif t in ("number", "measurement"):
                details = {}
                if isinstance(value, dict):
                    details = {k: v for k, v in value.items() if k != "value"}
                    value = value.get("value")
                spin = self.editor
                spin.setValue(spin.minimum() if value is None else float(value))
                self.details = details
            else:
                self.editor.setText("" if value is None else str(value))
            if self.question.confidence:
                self.confidence_group.setExclusive(False)
                for o, b in zip(self.question.confidence, self.confidence_buttons):
                    b.setChecked(conf is not None and _same(o.value, conf))
                self.confidence_group.setExclusive(True)
        finally:
            del blockers

    def pick_key(self, key: str) -> bool:
        """Choose the option whose key is `key` (choice questions); True if one was chosen."""
        if self._locked or self.question.type != "choice" or key not in self.keys:
            return False
        self.buttons[self.keys.index(key)].click()
        return True

    # ------------------------------------------------------------------ locking
    def set_locked(self, locked: bool) -> None:
        self._locked = bool(locked)
        for w in self.editors():
            w.setEnabled(not locked)
            if isinstance(w, (QtWidgets.QLineEdit, QtWidgets.QAbstractSpinBox)):
                w.setReadOnly(locked)

    def editors(self) -> list[QtWidgets.QWidget]:
        return [*self.buttons, *([self.editor] if self.editor is not None else []),
                *([self.measure_button] if self.measure_button is not None else []), *self.confidence_buttons]

    def contains_focus(self) -> bool:
        f = QtWidgets.QApplication.focusWidget()
        return f is not None and (f is self or self.isAncestorOf(f))


class QuestionsPanel(QtWidgets.QScrollArea):
    """The form of all questions of a session (scrolls when long)."""

    edited = QtCore.Signal()
    measure_requested = QtCore.Signal(object)  # the Question

    def __init__(self, questions, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # texts wrap instead
        body = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(body)
        lay.setContentsMargins(2, 2, 2, 2)
        self.widgets: dict[str, QuestionWidget] = {}
        for q in questions:
            w = QuestionWidget(q)
            w.edited.connect(self.edited)
            w.measure_requested.connect(self.measure_requested)
            self.widgets[q.id] = w
            lay.addWidget(w)
        lay.addStretch(1)
        self.setWidget(body)
        self._locked = False

    def values(self) -> dict:
        return {qid: w.value() for qid, w in self.widgets.items()}

    def set_values(self, values: dict | None) -> None:
        values = values or {}
        for qid, w in self.widgets.items():
            w.set_value(values.get(qid))

    def set_locked(self, locked: bool) -> None:
        self._locked = bool(locked)
        for w in self.widgets.values():
            w.set_locked(locked)

    @property
    def locked(self) -> bool:
        return self._locked

    def current_choice_widget(self) -> QuestionWidget | None:
        """The choice question a number key goes to (see the module docstring)."""
        for w in self.widgets.values():
            if w.question.type == "choice" and w.contains_focus():
                return w
        for w in self.widgets.values():
            if w.question.type == "choice" and w._bare_value() is None:
                return w
        return None

    def pick_key(self, key: str) -> bool:
        w = self.current_choice_widget()
        if w is None or not w.pick_key(key):
            return False
        ws = list(self.widgets.values())
        i = ws.index(w)
        nxt = next((x for x in ws[i + 1:] if x.question.type == "choice"), None)
        if nxt is not None and nxt.buttons and nxt._bare_value() is None:
            nxt.buttons[0].setFocus(Qt.FocusReason.ShortcutFocusReason)
            self.ensureWidgetVisible(nxt)
        return True

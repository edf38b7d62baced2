"""`ScoresPanel`: structured visual scores of one disc level at one visit, by one reader.

The lead sets the context with `set_context(annotations, visit_id, level, reader)`; the panel then
shows and edits the ONE `score` annotation of that (level, visit, reader) (see the kinds table in
`discviewer.annotations`): values `pfirrmann` (1–5), `modic_upper` / `modic_lower` (0–3), `hiz`
(0/1), `iron_score` (0–3), `iron_confidence` (1–4); `text` = the comment. Every user choice is one
`AnnotationSet.add` (first choice) or `update`, so it is undoable through the workspace history.
A value set back to "not rated" is dropped from `values`.

The criteria are on screen beside each choice, not hidden in tooltips:
- Pfirrmann grade (Pfirrmann et al., Spine 2001;26:1873; DOMAIN.md §2): structure, distinction of
  nucleus and annulus, signal intensity, disc height — on the mid-sagittal T2 slice.
- Modic type (Modic et al., Radiology 1988) per endplate — "upper" is the cranial endplate of the
  disc (inferior endplate of the vertebra above), "lower" the caudal one: T1 and T2 signal.
- HIZ (Aprill & Bogduk 1992): a bright annular spot on T2, brighter than and separate from the nucleus.
- Iron presence (DOMAIN.md §1): 0 none, 1 equivocal, 2 definite focal, 3 extensive; reader
  confidence 1 definitely absent … 4 definitely present.

One-way flow: the panel listens to `AnnotationSet.changed` and reloads its widgets from the model
(undo/redo, edits elsewhere) with its own signals blocked, so a reload never writes back.
"""
from __future__ import annotations

import dataclasses

from PySide6 import QtCore, QtWidgets

from discviewer.workspace.data import Annotation

Qt = QtCore.Qt

SCORE_KIND = "score"
SCORE_METHOD = "visual"
NOT_RATED = 99  # button id of "not rated" (QButtonGroup treats -1 as "assign an id")
SCORE_KEYS = ("pfirrmann", "modic_upper", "modic_lower", "hiz", "iron_score", "iron_confidence")

#: grade → (roman, structure, nucleus/annulus distinction, signal, height) — Pfirrmann 2001
PFIRRMANN = {
    1: ("I", "homogeneous, bright white", "clear", "hyperintense, isointense to CSF", "normal"),
    2: ("II", "inhomogeneous ± horizontal bands", "clear", "hyperintense, isointense to CSF", "normal"),
    3: ("III", "inhomogeneous, grey", "unclear", "intermediate", "normal to slightly decreased"),
    4: ("IV", "inhomogeneous, grey to black", "lost", "intermediate to hypointense",
        "normal to moderately decreased"),
    5: ("V", "inhomogeneous, black", "lost", "hypointense", "collapsed"),
}
#: Modic type → (T1 signal, T2 signal, meaning) — Modic 1988
MODIC = {
    0: ("normal", "normal", "no endplate marrow change"),
    1: ("dark", "bright", "oedema / inflammation (active)"),
    2: ("bright", "iso or bright", "fatty marrow"),
    3: ("dark", "dark", "sclerosis"),
}
IRON_SCORE = {0: "none", 1: "equivocal", 2: "definite, focal", 3: "extensive"}
IRON_CONFIDENCE = {1: "definitely absent", 2: "probably absent", 3: "probably present", 4: "definitely present"}
HIZ_TEXT = ("bright spot in the annulus on T2, brighter than the nucleus and separate from it "
            "(Aprill & Bogduk 1992)")


def _alive(obj) -> bool:
    try:
        import shiboken6

        return shiboken6.isValid(obj)
    except Exception:  # pragma: no cover
        return True


def _muted(text: str, *, wrap: bool = True) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setWordWrap(wrap)
    label.setStyleSheet("QLabel { color: #444; } QLabel:disabled { color: #aaa; }")
    return label


def _header(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setStyleSheet("QLabel { font-weight: bold; color: #222; } QLabel:disabled { color: #999; }")
    return label


class ScoresPanel(QtWidgets.QWidget):
    """Pfirrmann, Modic, HIZ, iron presence and a comment for (level, visit, reader)."""

    score_stored = QtCore.Signal(str)  # annotation id, after a user edit was stored

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.annotations = None
        self.visit_id = ""
        self.level = ""
        self.reader = ""
        self.visit_label = ""
        self._unsub = None
        self._loading = False
        self.groups: dict[str, QtWidgets.QButtonGroup] = {}
        self.buttons: dict[str, dict[int, QtWidgets.QRadioButton]] = {}

        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        self.title = QtWidgets.QLabel("")
        self.title.setStyleSheet("font-weight: bold; font-size: 11pt;")
        outer.addWidget(self.title)
        self.hint = _muted("Choose a disc level and a visit to score.")
        outer.addWidget(self.hint)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        body = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(body)
        lay.setContentsMargins(0, 0, 0, 0)
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)
        self.body = body

        lay.addWidget(self._pfirrmann_box())
        lay.addWidget(self._modic_box())
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self._hiz_box())
        row.addWidget(self._iron_box(), 2)
        lay.addLayout(row)
        comment_row = QtWidgets.QHBoxLayout()
        comment_row.addWidget(QtWidgets.QLabel("Comment"))
        self.comment = QtWidgets.QLineEdit()
        self.comment.setPlaceholderText("free text — stored when you press Enter or leave the field")
        comment_row.addWidget(self.comment, 1)
        lay.addLayout(comment_row)
        lay.addStretch(1)

        for name, group in self.groups.items():
            group.idClicked.connect(lambda _id, n=name: self._on_user_edit(n))
        self.comment.editingFinished.connect(lambda: self._on_user_edit("comment"))
        self._apply_enabled()
        self._load()

    # ------------------------------------------------------------------ building the form
    def _group(self, name: str) -> QtWidgets.QButtonGroup:
        g = QtWidgets.QButtonGroup(self)
        g.setExclusive(True)
        self.groups[name] = g
        self.buttons[name] = {}
        return g

    def _radio(self, name: str, value: int, text: str) -> QtWidgets.QRadioButton:
        b = QtWidgets.QRadioButton(text)
        b.setObjectName(f"{name}_{'none' if value == NOT_RATED else value}")
        self.groups[name].addButton(b, value)
        self.buttons[name][value] = b
        return b

    def _pfirrmann_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Pfirrmann grade  (mid-sagittal T2; Pfirrmann et al. 2001)")
        grid = QtWidgets.QGridLayout(box)
        grid.setHorizontalSpacing(10)
        self._group("pfirrmann")
        for c, h in enumerate(("Grade", "Structure", "Nucleus / annulus", "Signal", "Height")):
            grid.addWidget(_header(h), 0, c)
        for grade, (roman, structure, distinction, signal, height) in PFIRRMANN.items():
            grid.addWidget(self._radio("pfirrmann", grade, roman), grade, 0)
            for c, text in enumerate((structure, distinction, signal, height), start=1):
                grid.addWidget(_muted(text), grade, c)
        grid.addWidget(self._radio("pfirrmann", NOT_RATED, "not graded"), 6, 0, 1, 2)
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(3, 3)
        grid.setColumnStretch(4, 2)
        return box

    def _modic_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Modic type per endplate  (Modic et al. 1988)")
        grid = QtWidgets.QGridLayout(box)
        grid.setHorizontalSpacing(10)
        self._group("modic_upper")
        self._group("modic_lower")
        for c, h in enumerate(("Upper\n(cranial)", "Lower\n(caudal)", "Type", "T1", "T2", "Meaning")):
            grid.addWidget(_header(h), 0, c)
        for t, (t1, t2, meaning) in MODIC.items():
            r = t + 1
            grid.addWidget(self._radio("modic_upper", t, ""), r, 0, Qt.AlignmentFlag.AlignHCenter)
            grid.addWidget(self._radio("modic_lower", t, ""), r, 1, Qt.AlignmentFlag.AlignHCenter)
            grid.addWidget(QtWidgets.QLabel(str(t)), r, 2)
            for c, text in enumerate((t1, t2, meaning), start=3):
                grid.addWidget(_muted(text), r, c)
        grid.addWidget(self._radio("modic_upper", NOT_RATED, ""), 5, 0, Qt.AlignmentFlag.AlignHCenter)
        grid.addWidget(self._radio("modic_lower", NOT_RATED, ""), 5, 1, Qt.AlignmentFlag.AlignHCenter)
        grid.addWidget(_muted("not rated"), 5, 2, 1, 3)
        for t, b in self.buttons["modic_upper"].items():
            b.setToolTip("upper endplate: " + ("not rated" if t == NOT_RATED else f"Modic {t}"))
        for t, b in self.buttons["modic_lower"].items():
            b.setToolTip("lower endplate: " + ("not rated" if t == NOT_RATED else f"Modic {t}"))
        grid.setColumnStretch(5, 3)
        return box

    def _hiz_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("High-intensity zone (HIZ)")
        lay = QtWidgets.QVBoxLayout(box)
        self._group("hiz")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self._radio("hiz", 0, "no"))
        row.addWidget(self._radio("hiz", 1, "yes"))
        row.addWidget(self._radio("hiz", NOT_RATED, "not rated"))
        row.addStretch(1)
        lay.addLayout(row)
        lay.addWidget(_muted(HIZ_TEXT))
        lay.addStretch(1)
        return box

    def _iron_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Iron (SPIO) presence")
        grid = QtWidgets.QGridLayout(box)
        self._group("iron_score")
        self._group("iron_confidence")
        grid.addWidget(_header("Score"), 0, 0)
        grid.addWidget(_header("Confidence"), 0, 1)
        for s, text in IRON_SCORE.items():
            grid.addWidget(self._radio("iron_score", s, f"{s}  {text}"), s + 1, 0)
        grid.addWidget(self._radio("iron_score", NOT_RATED, "not rated"), 5, 0)
        for s, text in IRON_CONFIDENCE.items():
            grid.addWidget(self._radio("iron_confidence", s, f"{s}  {text}"), s, 1)
        grid.addWidget(self._radio("iron_confidence", NOT_RATED, "not rated"), 5, 1)
        return box

    # ------------------------------------------------------------------ context
    def set_context(self, annotations, visit_id: str, level: str, reader: str, *, visit_label: str = "") -> None:
        """Score `level` at `visit_id` as `reader`, stored in `annotations` (an AnnotationSet)."""
        if annotations is not self.annotations:
            self.detach()
            self.annotations = annotations
            if annotations is not None:
                self._unsub = annotations.changed.subscribe(self._on_model_changed)
        self.visit_id, self.level, self.reader = visit_id or "", level or "", reader or ""
        self.visit_label = visit_label or self.visit_id
        self._apply_enabled()
        self._load()

    def detach(self) -> None:
        if self._unsub is not None:
            self._unsub()
            self._unsub = None

    @property
    def has_context(self) -> bool:
        return self.annotations is not None and bool(self.visit_id) and bool(self.level)

    def _apply_enabled(self) -> None:
        ok = self.has_context
        self.body.setEnabled(ok)
        self.hint.setVisible(not ok)
        if ok:
            self.title.setText(f"{self.level}  ·  {self.visit_label or self.visit_id}  ·  "
                               f"reader {self.reader or '(none)'}")
        else:
            self.title.setText("Scores")

    def record(self) -> Annotation | None:
        """The stored score annotation of the current context (the newest if there are several)."""
        if not self.has_context:
            return None
        found = [a for a in self.annotations.select(level=self.level, visit_id=self.visit_id, kind=SCORE_KIND)
                 if a.reader == self.reader]
        return max(found, key=lambda a: a.modified or a.created) if found else None

    # ------------------------------------------------------------------ model → widgets
    def _on_model_changed(self, change) -> None:
        if not _alive(self):
            self.detach()
            return
        for a in (change.old, change.new):
            if (a is not None and a.kind == SCORE_KIND and a.level == self.level and a.visit_id == self.visit_id
                    and a.reader == self.reader):
                self._load()
                return

    def _load(self) -> None:
        rec = self.record()
        values = rec.values if rec is not None else {}
        self._loading = True
        widgets = [*self.groups.values(), self.comment]
        was = [w.blockSignals(True) for w in widgets]
        try:
            for name, buttons in self.buttons.items():
                v = values.get(name)
                key = int(v) if isinstance(v, (int, float)) and int(v) in buttons else NOT_RATED
                buttons[key].setChecked(True)
            self.comment.setText(rec.text if rec is not None else "")
        finally:
            for w, b in zip(widgets, was):
                w.blockSignals(b)
            self._loading = False

    # ------------------------------------------------------------------ widgets → model
    def values(self) -> dict:
        """The scores the widgets show (not-rated ones left out)."""
        out = {}
        for name in SCORE_KEYS:
            v = self.groups[name].checkedId()
            if v != NOT_RATED and v in self.buttons[name]:
                out[name] = v
        return out

    def _on_user_edit(self, what: str) -> None:
        if self._loading or not self.has_context:
            return
        rec = self.record()
        scores = self.values()
        text = self.comment.text().strip()
        if rec is None:
            if not scores and not text:
                return
            stored = self.annotations.add(Annotation(id="", kind=SCORE_KIND, level=self.level, visit_id=self.visit_id,
                                                     values=scores, text=text, reader=self.reader,
                                                     method=SCORE_METHOD))
            self.score_stored.emit(stored.id)
            return
        values = {k: v for k, v in rec.values.items() if k not in SCORE_KEYS}
        values.update(scores)
        if self.annotations.update(dataclasses.replace(rec, values=values, text=text)):
            self.score_stored.emit(rec.id)

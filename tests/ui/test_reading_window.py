"""The reader's blinded reading flow (`ReadingWindow`) under Xvfb, on the small phantom study.

The leak test drives a whole blinded session — identify, answer and submit every case, restart,
resume, finish — and after every step collects every string the reader can see (widget texts,
tooltips, status/what's-this tips, window titles, placeholders, item texts, the status bar, the VTK
corner texts, message boxes) and every file the reader side writes, and fails on any string of
`identifying_strings(study, case)` for any case (patient name/ID, dates, visit labels and days,
series and study descriptions, UIDs, file paths and names).
Also: locked answers cannot change through the UI, required/optional answers on submit, the
washout gate with an injected clock, order stable across restarts and different per reader,
keyboard (number keys, Ctrl+Enter, PageDown), resume through a saved project file.
"""
from __future__ import annotations

import os

import datetime as _dt
import json

import pytest
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest

from discviewer.reading import HangingOptions, SessionOptions, create_session
from discviewer.reading.blinding import find_leaks, identifying_strings

Qt = QtCore.Qt

QUESTIONS = [
    "pfirrmann", "iron_presence", "disc_height",
    {"id": "findings", "text": "Other findings", "type": "multi", "required": False,
     "options": [{"value": "hiz", "label": "HIZ"}, {"value": "herniation", "label": "herniation"}]},
    {"id": "nerve", "text": "Nerve root contact", "type": "yesno", "required": False},
    {"id": "slices", "text": "Slices with void", "type": "number", "min": 0, "max": 9, "step": 1, "required": False},
    "free_text",
]
T0 = _dt.datetime(2026, 3, 2, 9, 0, tzinfo=_dt.timezone.utc)

_STUDIES: dict = {}


@pytest.fixture
def study(demo):
    if "s" not in _STUDIES:
        from discviewer.io import scan
        from discviewer.study import Study

        _STUDIES["s"] = Study.from_scan(scan(demo))
    return _STUDIES["s"]


def make_session(study, **options):
    hanging = HangingOptions(("T2 sag", "multi-echo GRE"), ("sag",), True)
    return create_session("Iron study", study, QUESTIONS, ["r1", "r2"], seed=11,
                          options=SessionOptions(hanging=hanging, **options))


class Clock:
    """Injected wall clock (UTC) and monotonic timer."""

    def __init__(self, now=T0):
        self.now = now
        self.t = 100.0

    def __call__(self):
        return self.now

    def mono(self):
        return self.t

    def advance(self, seconds: float):
        self.now += _dt.timedelta(seconds=seconds)
        self.t += seconds


class Asker:
    """Stands in for the message boxes: records (kind, title, text) and answers `reply` (or the first button)."""

    def __init__(self):
        self.asked: list[tuple[str, str, str]] = []
        self.reply: dict[str, str] = {}

    def __call__(self, kind, title, text, buttons):
        self.asked.append((kind, title, text))
        return self.reply.get(title, buttons[0] if buttons else "")

    def titles(self):
        return [a[1] for a in self.asked]


def open_window(qtbot, session, study, *, reader="r1", clock=None, ask=None, **kw):
    from discviewer.ui.reading_window import ReadingWindow

    clock = clock or Clock()
    w = ReadingWindow(session, study, reader=reader, clock=clock, monotonic=clock.mono, ask=ask or Asker(), **kw)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    if reader is not None:
        activate(qtbot, w)
        qtbot.waitUntil(lambda: w.reader is not None, timeout=10000)
    return w


def activate(qtbot, w):
    """Shortcuts (number keys, Ctrl+Enter, PageDown) need the active window (Xvfb has no window manager)."""
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)


def answer(w, *, pfirrmann="3", iron="1", confidence=1, height=8.5, optional=True):
    """Fill the form the way a reader does: number keys for the choices, clicks and typing for the rest."""
    w.activateWindow()
    w.questions.widgets["pfirrmann"].buttons[0].setFocus()
    QTest.keyClick(w.questions.widgets["pfirrmann"].buttons[0], pfirrmann)
    QTest.keyClick(w.questions.widgets["iron_presence"].buttons[0], iron)
    w.questions.widgets["iron_presence"].confidence_buttons[confidence].click()
    w.questions.widgets["disc_height"].editor.setValue(height)
    if optional:
        w.questions.widgets["findings"].buttons[1].click()
        w.questions.widgets["nerve"].buttons[1].click()
        w.questions.widgets["slices"].editor.setValue(2)
        QTest.keyClicks(w.questions.widgets["comment"].editor, "looks fine")


# ---------------------------------------------------------------------------- leak collection
def _widget_strings(w: QtWidgets.QWidget) -> list[str]:
    out = [w.toolTip(), w.statusTip(), w.whatsThis(), w.windowTitle(), w.accessibleName(),
           w.accessibleDescription()]
    for attr in ("text", "placeholderText", "title", "plainText", "toPlainText", "suffix", "prefix",
                 "specialValueText", "labelText", "format", "currentMessage"):
        fn = getattr(w, attr, None)
        if callable(fn):
            try:
                v = fn()
            except TypeError:
                continue
            if isinstance(v, str):
                out.append(v)
    if isinstance(w, QtWidgets.QComboBox):
        out += [w.itemText(i) for i in range(w.count())]
    if isinstance(w, QtWidgets.QListWidget):
        out += [w.item(i).text() for i in range(w.count())]
    if isinstance(w, QtWidgets.QTableWidget):
        out += [w.item(r, c).text() for r in range(w.rowCount()) for c in range(w.columnCount()) if w.item(r, c)]
    if isinstance(w, QtWidgets.QTreeWidget):
        it = QtWidgets.QTreeWidgetItemIterator(w)
        while it.value():
            out += [it.value().text(c) for c in range(w.columnCount())]
            it += 1
    if isinstance(w, QtWidgets.QTabWidget):
        out += [w.tabText(i) for i in range(w.count())]
    for a in w.actions():
        out += [a.text(), a.toolTip(), a.statusTip(), a.whatsThis()]
    return out


def seen_strings(window, asker=None) -> list[str]:
    """Everything the reader can read now (see the module docstring)."""
    app = QtWidgets.QApplication.instance()
    app.processEvents()
    out = [window.windowTitle(), window.statusBar().currentMessage()]
    for w in app.allWidgets():
        out += _widget_strings(w)
    for f in window.frames:  # every text the VTK views draw: corner texts, letters, measurement labels
        props = f.view.renderer.GetViewProps()
        props.InitTraversal()
        for _ in range(props.GetNumberOfItems()):
            prop = props.GetNextProp()
            for getter in ("GetInput", "GetTitle"):
                fn = getattr(prop, getter, None)
                if callable(fn):
                    try:
                        v = fn()
                    except TypeError:
                        continue
                    if isinstance(v, str):
                        out.append(v)
        out.append(f.view.overlay_text("series"))
    if asker is not None:
        for kind, title, text in asker.asked:
            out += [title, text]
    return [s for s in out if s]


def forbidden_strings(study, session) -> list[str]:
    out: set[str] = set()
    for case in session.cases:
        out.update(identifying_strings(study, case))
    return sorted(out, key=lambda s: (-len(s), s))


_COMBINED: dict = {}


def _combined(forbidden):
    """One regex for all forbidden strings (the rule of `find_leaks`: case-insensitive, a word or number
    must stand alone); `find_leaks` then names the culprits."""
    import re

    key = tuple(forbidden)
    if key not in _COMBINED:
        parts = []
        for f in forbidden:
            t = f.lower()
            p = re.escape(t)
            if t[0].isalnum():
                p = r"(?<![0-9a-z])" + p
            if t[-1].isalnum():
                p = p + r"(?![0-9a-z])"
            parts.append(p)
        _COMBINED.clear()
        _COMBINED[key] = re.compile("|".join(parts))
    return _COMBINED[key]


def assert_no_leak(strings, forbidden, where: str) -> None:
    rx = _combined(forbidden)
    leaks = [(s, find_leaks(s, forbidden)) for s in set(strings) if rx.search(s.lower())]
    assert not leaks, f"identifying text visible ({where}): {leaks[:5]}"


# ---------------------------------------------------------------------------- the leak test
def test_full_blinded_session_leaks_nothing(qtbot, study, tmp_path, events):
    from discviewer.workspace.project import Workspace

    session = make_session(study, reread_fraction=0.4)
    forbidden = forbidden_strings(study, session)
    assert "baseline" in forbidden and any(s.endswith(".dcm") for s in forbidden)
    ws = Workspace()
    answers_file = tmp_path / "answers.json"

    def persist():  # what a reader side writes: its own answers (as a package's answers.json)
        answers_file.write_text(json.dumps([r.to_dict() for r in session.records("r1")]))
        return True

    clock, asker = Clock(), Asker()
    asker.reply["Submit with empty answers?"] = "Submit"

    def check(window, where):
        assert_no_leak(seen_strings(window, asker), forbidden, where)
        if answers_file.exists():
            assert_no_leak([answers_file.read_text()], forbidden, f"{where}: answers file")
        for entry in ws.audit:
            assert_no_leak([entry.user, entry.action, entry.target, entry.old, entry.new], forbidden,
                           f"{where}: audit")

    order = session.order_for("r1", 1)
    w = open_window(qtbot, session, study, reader=None, clock=clock, ask=asker, workspace=ws, persist=persist)
    qtbot.waitUntil(lambda: w.reader_dialog is not None and w.reader_dialog.isVisible(), timeout=5000)
    check(w, "reader dialog")
    w.reader_dialog.combo.setCurrentText("r1")
    w.reader_dialog.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    activate(qtbot, w)
    assert w.case.code == order[0]
    check(w, "first case")

    # PACS interaction on the images: nothing identifying shows up (cursor, W/L, slice texts)
    view = w.frames[0].view
    events.wheel(view, -1)
    events.drag(view, QtCore.QPointF(100, 100), QtCore.QPointF(140, 130), Qt.MouseButton.LeftButton)
    events.mouse(view, "move", QtCore.QPointF(120, 150))
    check(w, "after interacting with the views")

    for k in range(2):
        answer(w, optional=(k == 0))
        clock.advance(30)
        assert w.submit()
        check(w, f"case {k + 1} submitted")
        assert json.loads(answers_file.read_text())[-1]["case"] == order[k]
        QTest.keyClick(w, Qt.Key.Key_PageDown)
        assert w.case.code == order[k + 1]
        check(w, f"case {k + 2} shown")

    # restart (as after a crash): a new window resumes at the first unanswered case
    w.close()
    w = open_window(qtbot, session, study, reader=None, clock=clock, ask=asker, workspace=ws, persist=persist)
    qtbot.waitUntil(lambda: w.reader_dialog is not None and w.reader_dialog.isVisible(), timeout=5000)
    w.reader_dialog.combo.setCurrentText("r1")
    w.reader_dialog.accept()
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    activate(qtbot, w)
    assert w.case.code == order[2]
    assert w.progress_label.text() == f"Case 3 of {len(order)}"
    check(w, "resumed")
    while w.case is not None:
        answer(w, optional=False)
        clock.advance(20)
        assert w.submit()
        check(w, f"{w.case.code} submitted")
        w.next_case()
    assert w.pages.currentIndex() == 1 and "All 5 cases are read" in w.done_label.text()
    assert "re-read opens on" in w.done_label.text()
    check(w, "read finished")
    recs = session.records("r1", 1)
    assert sorted(r.case for r in recs) == sorted(order)
    assert all(r.duration_s > 0 for r in recs)
    assert ws.reading[session.id]["answers"]  # the workspace document holds them (autosave/save)


# ---------------------------------------------------------------------------- locking / submit rules
def test_locked_answers_cannot_be_changed_through_the_ui(qtbot, study):
    session = make_session(study)
    w = open_window(qtbot, session, study)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    answer(w)
    assert w.submit()
    code = w.case.code
    stored = json.dumps(session.record("r1", code).values, sort_keys=True)
    assert w.locked and "locked" in w.locked_label.text()
    for qw in w.questions.widgets.values():
        for ed in qw.editors():
            assert not ed.isEnabled()
    # a programmatic click / typing / a number key / Ctrl+Enter change nothing stored
    w.questions.widgets["pfirrmann"].buttons[4].click()
    w.questions.widgets["comment"].editor.setText("changed")
    QTest.keyClick(w, Qt.Key.Key_5)
    QTest.keyClick(w, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert w.submit() is False
    assert json.dumps(session.record("r1", code).values, sort_keys=True) == stored
    assert not w.submit_button.isEnabled() and w.next_button.isEnabled()


def test_changes_allowed_when_the_session_says_so(qtbot, study):
    session = make_session(study, allow_change_after_submit=True)
    w = open_window(qtbot, session, study)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    answer(w, pfirrmann="2")
    assert w.submit()
    assert not w.locked and w.submit_button.text() == "Submit changes"
    w.questions.widgets["pfirrmann"].buttons[3].click()
    assert w.submit()
    rec = session.record("r1", w.case.code)
    assert rec.value("pfirrmann") == 4 and rec.changes and rec.changes[-1]["question"] == "pfirrmann"


def test_required_questions_block_and_empty_optional_ones_are_confirmed(qtbot, study):
    session = make_session(study)
    asker = Asker()
    w = open_window(qtbot, session, study, ask=asker)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    code = w.case.code
    assert w.submit() is False
    assert asker.titles()[-1] == "Answers missing" and "Pfirrmann" in asker.asked[-1][2]
    assert session.record("r1", code) is None
    answer(w, optional=False)
    asker.reply["Submit with empty answers?"] = "Cancel"
    assert w.submit() is False
    text = asker.asked[-1][2]
    assert "Other findings" in text and "Comment" in text and "Pfirrmann" not in text
    assert session.record("r1", code) is None and not w.locked
    asker.reply["Submit with empty answers?"] = "Submit"
    assert w.submit()
    rec = session.record("r1", code)
    assert rec.value("comment") is None and rec.value("pfirrmann") == 3 and rec.value("disc_height") == {"value": 8.5}
    assert rec.confidence("iron_presence") == 3  # second button of the 4-point scale


def test_time_per_case_is_recorded(qtbot, study):
    session = make_session(study)
    clock = Clock()
    w = open_window(qtbot, session, study, clock=clock)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    answer(w)
    clock.advance(42.5)
    w._update_timer()
    assert w.timer_label.text() == "Time 0:42"
    assert w.submit()
    assert session.record("r1", w.case.code).duration_s == pytest.approx(42.5)


# ---------------------------------------------------------------------------- keyboard
def test_keyboard_number_keys_ctrl_enter_and_pagedown(qtbot, study):
    session = make_session(study)
    asker = Asker()
    asker.reply["Submit with empty answers?"] = "Submit"
    w = open_window(qtbot, session, study, ask=asker)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    first = w.case.code
    w.activateWindow()
    view = w.frames[0].view
    view.setFocus()
    before = view.slice_index
    QTest.keyClick(view.vtk_widget, Qt.Key.Key_PageDown)  # not submitted: PageDown pages the slices
    assert w.case.code == first and view.slice_index != before
    QTest.keyClick(view.vtk_widget, Qt.Key.Key_4)  # the first unanswered choice: Pfirrmann IV
    QTest.keyClick(view.vtk_widget, Qt.Key.Key_2)  # then iron "definite focal"
    vals = w.questions.values()
    assert vals["pfirrmann"] == 4 and vals["iron_presence"] == {"value": 2, "confidence": None}
    w.questions.widgets["iron_presence"].confidence_buttons[0].click()
    comment = w.questions.widgets["comment"].editor
    comment.setFocus()
    QTest.keyClick(comment, Qt.Key.Key_3)  # typing a digit into a text field types it: no option is picked
    assert comment.text() == "3" and w.questions.values()["pfirrmann"] == 4
    w.questions.widgets["disc_height"].editor.setValue(7.0)
    w.questions.widgets["pfirrmann"].buttons[0].setFocus()
    QTest.keyClick(w.questions.widgets["pfirrmann"].buttons[0], Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert session.record("r1", first) is not None
    QTest.keyClick(w.questions.widgets["pfirrmann"].buttons[0], Qt.Key.Key_PageDown)
    assert w.case.code == session.order_for("r1")[1]


# ---------------------------------------------------------------------------- order / readers
def _read_all(w, clock):
    codes = []
    while w.case is not None:
        codes.append(w.case.code)
        answer(w, optional=True)
        clock.advance(5)
        assert w.submit()
        w.next_case()
    return codes


def test_order_is_per_reader_and_stable_across_restarts(qtbot, study):
    session = make_session(study)
    assert session.order_for("r1") != session.order_for("r2")
    seen = {}
    for reader in ("r1", "r2"):
        w = open_window(qtbot, session, study, reader=reader)
        qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
        seen[reader] = w.case.code
        w.close()
    assert seen["r1"] == session.order_for("r1")[0] and seen["r2"] == session.order_for("r2")[0]
    # the same session rebuilt from its stored document (a restart) gives the same order
    from discviewer.reading import ReadingSession

    again = ReadingSession.from_dict(json.loads(json.dumps(session.to_dict())))
    clock = Clock()
    w = open_window(qtbot, again, study, reader="r2", clock=clock)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    assert _read_all(w, clock) == session.order_for("r2")
    # r2's answers never show for r1
    w2 = open_window(qtbot, again, study, reader="r1")
    qtbot.waitUntil(lambda: w2.case is not None, timeout=10000)
    assert w2.record is None and all(v in (None, [], {}) for v in w2.questions.values().values())


def test_unknown_reader_is_refused_unless_new_readers_are_allowed(qtbot, study):
    session = make_session(study)
    asker = Asker()
    w = open_window(qtbot, session, study, reader=None, ask=asker)
    qtbot.waitUntil(lambda: w.reader_dialog is not None and w.reader_dialog.isVisible(), timeout=5000)
    assert not w.reader_dialog.combo.isEditable()
    assert w.start("zz") is False and asker.titles()[-1] == "Unknown reader"
    w.close()
    w = open_window(qtbot, session, study, reader=None, allow_new_reader=True)
    qtbot.waitUntil(lambda: w.reader_dialog is not None and w.reader_dialog.isVisible(), timeout=5000)
    assert w.reader_dialog.combo.isEditable()
    w.reader_dialog.combo.setCurrentText("  new1 ")
    w.reader_dialog.accept()
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    assert w.reader == "new1" and "new1" in session.readers
    assert w.case.code == session.order_for("new1")[0]
    w.close()
    # no reader chosen: the window closes (nothing may be read)
    w = open_window(qtbot, session, study, reader=None)
    qtbot.waitUntil(lambda: w.reader_dialog is not None and w.reader_dialog.isVisible(), timeout=5000)
    w.reader_dialog.reject()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=5000)
    assert w.case is None and w.reader is None


# ---------------------------------------------------------------------------- washout gate
def test_washout_gate_holds_until_the_opening_date(qtbot, study):
    session = make_session(study, reread_fraction=0.4, washout_days=28)
    clock = Clock()
    w = open_window(qtbot, session, study, clock=clock)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    _read_all(w, clock)
    opens = (clock.now + _dt.timedelta(days=28)).date().isoformat()
    assert w.done_label.text().endswith(f"Your re-read opens on {opens}.")
    assert not w.reread_button.isVisible()
    assert w.start_reread() is False and w.read == 1 and w.case is None
    w.close()
    clock.advance(27 * 86400)  # a restart before the date: still closed
    w = open_window(qtbot, session, study, clock=clock)
    qtbot.waitUntil(lambda: w.pages.currentIndex() == 1, timeout=10000)
    assert not w.reread_button.isVisible() and f"opens on {opens}" in w.done_label.text()
    w.close()
    clock.advance(2 * 86400)
    w = open_window(qtbot, session, study, clock=clock)
    qtbot.waitUntil(lambda: w.pages.currentIndex() == 1, timeout=10000)
    assert w.reread_button.isVisible()
    w.reread_button.click()
    assert w.read == 2 and w.case.code == session.order_for("r1", 2)[0]
    assert w.windowTitle().startswith("Blinded re-read — case ")
    assert w.progress_label.text() == f"Re-read: case 1 of {len(session.reread_codes)}"
    answer(w)
    assert w.submit()
    w.close()
    # a restart during the re-read resumes it
    w = open_window(qtbot, session, study, clock=clock)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    assert w.read == 2 and w.case.code == session.order_for("r1", 2)[1]


# ---------------------------------------------------------------------------- saved in the project file
def test_each_submit_is_saved_to_the_project_file_and_resumes(qtbot, study, tmp_path):
    from discviewer.reading import load_session, store_session
    from discviewer.ui.project_controller import ProjectController
    from discviewer.workspace import store

    session = make_session(study)
    project = ProjectController()
    ws = project.new_project()
    ws.attach_study(study)
    store_session(ws, session)
    path = str(tmp_path / "study.dvw")
    assert project.save_as(path)
    w = open_window(qtbot, session, study, project=project)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    order = session.order_for("r1")
    for _ in range(2):
        answer(w)
        assert w.submit() and w.last_save_ok
        w.next_case()
    doc = store.load(path).data.reading[session.id]
    assert [a["case"] for a in doc["answers"]] == order[:2]
    w.close()
    project.close()
    # a new app: open the project file, load the session, resume at case 3
    project2 = ProjectController()
    ws2 = project2.load_project(path)
    ws2.attach_study(study)
    w = open_window(qtbot, load_session(ws2, session.id), study, project=project2)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    assert w.case.code == order[2]
    project2.close()


def test_screenshot(qtbot, study, tmp_path):
    """The window as the reader sees it (also written to $DISCVIEWER_SCREENSHOT_DIR/reading_window.png when set)."""
    session = make_session(study)
    w = open_window(qtbot, session, study)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    qtbot.wait(200)  # let the layouts take the new texts
    for f in w.frames:
        f.view.render_now()
    img = w.grab_with_views()
    assert img.width() > 1000
    img.save(str(tmp_path / "reading_window.png"))
    if os.environ.get("DISCVIEWER_SCREENSHOT_DIR"):  # for a look: DISCVIEWER_SCREENSHOT_DIR=/tmp pytest …
        img.save(os.path.join(os.environ["DISCVIEWER_SCREENSHOT_DIR"], "reading_window.png"))


# ---------------------------------------------------------------------------- a reader package on another workstation
@pytest.fixture
def package(study, tmp_path):
    """A reader package of r1 (exported by the coordinator), copied to the reader's machine."""
    import shutil

    from discviewer.reading import store_session
    from discviewer.reading.package import export_reader_package
    from discviewer.workspace.project import Workspace

    ws = Workspace(user="coordinator", name="trial")
    ws.attach_study(study)
    session = make_session(study, reread_fraction=0.4)
    store_session(ws, session)
    ex = export_reader_package(ws, session, "r1", tmp_path / "coord" / "pkg-r1", now=T0)
    dst = tmp_path / "reader-machine" / "pkg"
    shutil.copytree(ex.path, dst)
    return {"path": dst, "session": session, "forbidden": forbidden_strings(study, session)}


def test_reader_package_opens_into_the_reading_flow_and_leaks_nothing(qtbot, package, tmp_path):
    from discviewer.reading.package import export_answers
    from discviewer.ui.reading_launch import ReadingLaunchError, open_reading

    forbidden = package["forbidden"] + [str(tmp_path / "coord"), str(package["path"])]
    clock, asker = Clock(), Asker()
    asker.reply["Submit with empty answers?"] = "Submit"
    with pytest.raises(ReadingLaunchError, match="made for reader 'r1'"):
        open_reading(package["path"], reader="r2")
    w = open_reading(package["path"], clock=clock, monotonic=clock.mono, ask=asker)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    qtbot.waitUntil(lambda: w.reader_dialog is not None and w.reader_dialog.isVisible(), timeout=5000)
    assert [w.reader_dialog.combo.itemText(i) for i in range(w.reader_dialog.combo.count())] == ["r1"]
    assert_no_leak(seen_strings(w, asker), forbidden, "package: reader dialog")
    w.reader_dialog.accept()
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    activate(qtbot, w)
    order = package["session"].order_for("r1")
    assert w.case.code == order[0]  # the same order as on the coordinator's machine
    assert all(f.view.volume is not None for f in w.frames[:1])
    answers_file = package["path"] / "answers.json"
    for k in range(2):
        answer(w, optional=(k == 1))
        clock.advance(10)
        assert w.submit()
        assert json.loads(answers_file.read_text())["answers"][-1]["case"] == order[k]  # saved on submit
        assert_no_leak(seen_strings(w, asker) + [answers_file.read_text()], forbidden, f"package: case {k + 1}")
        w.next_case()
    out = export_answers(w.package, tmp_path / "return")
    assert_no_leak([out.read_text()], forbidden, "package: exported answers")
    w.close()
    # reopened (a restart): resumes at the third case
    w = open_reading(package["path"], reader="r1", clock=clock, monotonic=clock.mono, ask=asker)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    assert w.case.code == order[2]
    assert_no_leak(seen_strings(w, asker), forbidden, "package: resumed")
    w.close()


def test_cli_read_refuses_what_it_cannot_open(tmp_path, capsys):
    from discviewer.ui.cli import main

    assert main(["read", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    assert main(["read", str(tmp_path / "notes.txt")]) == 2
    assert "neither a reader package" in capsys.readouterr().err


def test_cli_read_opens_a_project_session(qtbot, study, demo, tmp_path, monkeypatch):
    """`discviewer read PROJECT.dvw --reader r1`: the project's session in the reading window (the event
    loop is replaced so the test drives the window)."""
    from discviewer.reading import store_session
    from discviewer.ui import reading_launch
    from discviewer.ui.project_controller import ProjectController

    session = make_session(study)
    project = ProjectController()
    ws = project.new_project()
    ws.attach_study(study)
    from discviewer.io import scan

    project.index_sources(scan(demo))
    store_session(ws, session)
    path = str(tmp_path / "p.dvw")
    assert project.save_as(path)
    project.close()
    opened = {}

    def fake_exec(self=None):
        w = opened["w"]
        qtbot.waitUntil(lambda: w.case is not None, timeout=15000)
        opened["code"] = w.case.code
        opened["title"] = w.windowTitle()
        w.close()
        return 0

    real_open = reading_launch.open_reading
    monkeypatch.setattr(reading_launch, "open_reading",
                        lambda *a, **k: opened.setdefault("w", real_open(*a, **k)))
    monkeypatch.setattr(QtWidgets.QApplication, "exec", staticmethod(fake_exec))
    from discviewer.ui.cli import main

    assert main(["read", path, "--reader", "r1"]) == 0
    assert opened["code"] == session.order_for("r1")[0]
    assert opened["title"].startswith("Blinded read — case ")


def test_leak_check_catches_a_leak(qtbot, study):
    """The checker itself: a series description in a tooltip and a date in a view's corner text are found."""
    session = make_session(study)
    forbidden = forbidden_strings(study, session)
    w = open_window(qtbot, session, study)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    assert_no_leak(seen_strings(w), forbidden, "clean")
    visit = study.patients[0].visits[1]
    w.frames[0].setToolTip(visit.series[0].description)
    with pytest.raises(AssertionError, match="identifying text"):
        assert_no_leak(seen_strings(w), forbidden, "tooltip")
    w.frames[0].setToolTip("")
    w.frames[0].view.set_label(f"T2 {visit.date:%Y%m%d}")
    with pytest.raises(AssertionError, match="identifying text"):
        assert_no_leak(seen_strings(w), forbidden, "corner text")


def test_measurement_question_uses_the_measure_tool(qtbot, study, events):
    """"Measure" arms the 6-point disc height tool on the case image; the mean of DHa/DHm/DHp fills the
    answer, and the components, method and points are stored with it."""
    session = make_session(study)
    asker = Asker()
    asker.reply["Submit with empty answers?"] = "Submit"
    w = open_window(qtbot, session, study, ask=asker)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    qw = w.questions.widgets["disc_height"]
    qw.measure_button.click()
    assert w.tools.tool == "disc_height"
    view = w.frames[0].view
    view.render_now()
    c = QtCore.QPointF(view.width() / 2, view.height() / 2)
    for dx, dy in ((-20, -8), (0, -8), (20, -8), (-20, 8), (0, 8), (20, 8)):
        p = c + QtCore.QPointF(dx, dy)
        events.mouse(view, "press", p, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.ShiftModifier)
        events.mouse(view, "release", p, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.ShiftModifier)
    value = w.questions.values()["disc_height"]
    assert value is not None and set(value) >= {"value", "DHa", "DHm", "DHp", "method", "points"}
    assert value["value"] == pytest.approx((value["DHa"] + value["DHm"] + value["DHp"]) / 3, abs=0.006)
    assert value["value"] > 0 and w.tools.tool == "none" and len(w.scratch) == 1
    assert_no_leak(seen_strings(w, asker), forbidden_strings(study, session), "measured")
    w.questions.widgets["pfirrmann"].buttons[1].click()
    w.questions.widgets["iron_presence"].buttons[0].click()
    w.questions.widgets["iron_presence"].confidence_buttons[3].click()
    assert w.submit()
    stored = session.record("r1", w.case.code).value("disc_height")
    assert stored["DHm"] == value["DHm"] and len(stored["points"]) == 6
    assert not qw.measure_button.isEnabled()
    # typing a number instead stores just the number (next case)
    w.next_case()
    assert len(w.scratch) == 0
    w.questions.widgets["disc_height"].editor.setValue(9.25)
    assert w.questions.values()["disc_height"] == {"value": 9.25}


def test_disc_level_cases_name_their_level(qtbot, study):
    session = create_session("Levels", study, ["pfirrmann"], ["r1"], seed=3, levels=["L4/L5", "L5/S1"])
    w = open_window(qtbot, session, study)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    assert w.case.level in ("L4/L5", "L5/S1")
    assert w.case_label.text() == f"Case {w.case.code} — disc {w.case.level}"
    assert w.progress_label.text() == "Case 1 of 10"
    assert_no_leak(seen_strings(w), forbidden_strings(study, session), "level case")


def test_multi_echo_rows_offer_the_echoes(qtbot, study):
    session = make_session(study)  # rows: T2 sag, multi-echo GRE; columns: case, reference
    clock = Clock()
    w = open_window(qtbot, session, study, clock=clock)
    qtbot.waitUntil(lambda: w.case is not None, timeout=10000)
    gre = [f for f, r in zip(w.frames, w.frame_rows) if r == 1 and f.entry is not None]
    t2 = [f for f, r in zip(w.frames, w.frame_rows) if r == 0]
    assert gre and all(not f.echo_combo.isVisible() for f in t2)
    combo = gre[0].echo_combo
    assert combo.isVisible() and combo.count() == gre[0].entry.n_echoes > 1 and combo.itemText(0).startswith("TE ")
    view = gre[0].view
    view.set_slice(2)
    combo.activated.emit(3)
    for f in gre:
        assert f.view.volume.info.echo_time == f.entry.echo_times[3] and f.echo_combo.currentIndex() == 3
    assert view.slice_index == 2 and view.overlay_text("series") == "multi-echo GRE sagittal"
    answer(w)
    assert w.submit()
    w.next_case()
    f = next(f for f, r in zip(w.frames, w.frame_rows) if r == 1 and f.entry is not None)
    assert f.echo_combo.currentIndex() == 3 and f.view.volume.info.echo_time == f.entry.echo_times[3]

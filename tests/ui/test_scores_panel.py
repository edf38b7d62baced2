"""ScoresPanel: real clicks store ONE score annotation per (level, visit, reader); undo/redo through the
Workspace show up in the widgets without the panel writing anything back."""
from __future__ import annotations

import pytest
from PySide6 import QtCore, QtWidgets

from discviewer.ui.scores_panel import NOT_RATED, ScoresPanel
from discviewer.workspace.project import Workspace
from tests.core.test_workspace_project import two_visit_study

Qt = QtCore.Qt


@pytest.fixture
def ws():
    w = Workspace(user="reader1")
    w.attach_study(two_visit_study())
    yield w
    w.close()


@pytest.fixture
def panel(qtbot, ws):
    p = ScoresPanel()
    qtbot.addWidget(p)
    p.resize(900, 800)
    fu = ws.study.patients[0].visits[1]
    p.set_context(ws.annotations, fu.id, "L4/L5", "reader1", visit_label=fu.label)
    p.show()
    qtbot.waitExposed(p)
    return p


def click(qtbot, button):
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton, pos=QtCore.QPoint(8, button.height() // 2))


def scores(ws):
    return ws.annotations.select(kind="score")


def checked(panel, name):
    return panel.groups[name].checkedId()


def test_choose_pfirrmann_then_undo_redo(qtbot, ws, panel):
    assert checked(panel, "pfirrmann") == NOT_RATED and scores(ws) == []
    click(qtbot, panel.buttons["pfirrmann"][3])
    [rec] = scores(ws)
    assert rec.values == {"pfirrmann": 3} and rec.level == "L4/L5" and rec.reader == "reader1"
    assert rec.visit_id == panel.visit_id

    click(qtbot, panel.buttons["modic_upper"][1])
    click(qtbot, panel.buttons["pfirrmann"][4])
    [rec] = scores(ws)  # still one record, edited
    assert rec.values == {"pfirrmann": 4, "modic_upper": 1}
    steps = len(ws.history.steps())
    assert steps == 3

    ws.undo()  # back to Pfirrmann III, shown by the panel
    assert checked(panel, "pfirrmann") == 3 and panel.buttons["pfirrmann"][3].isChecked()
    assert checked(panel, "modic_upper") == 1
    ws.undo()
    assert checked(panel, "modic_upper") == NOT_RATED and checked(panel, "pfirrmann") == 3
    ws.undo()  # the record is gone: nothing graded
    assert scores(ws) == [] and checked(panel, "pfirrmann") == NOT_RATED
    assert len(ws.history.steps()) == 0  # reloading the widgets recorded nothing
    ws.redo()
    ws.redo()
    assert checked(panel, "pfirrmann") == 3 and checked(panel, "modic_upper") == 1
    assert ws.history.can_redo()  # the panel did not write back (that would clear the redo list)


def test_every_score_and_the_comment(qtbot, ws, panel):
    for name, value in (("modic_lower", 2), ("hiz", 1), ("iron_score", 2), ("iron_confidence", 4)):
        click(qtbot, panel.buttons[name][value])
    qtbot.mouseClick(panel.comment, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(panel.comment, "void in the posterior nucleus")
    assert scores(ws)[0].text == ""  # not stored per keystroke
    qtbot.keyClick(panel.comment, Qt.Key.Key_Return)
    [rec] = scores(ws)
    assert rec.values == {"modic_lower": 2, "hiz": 1, "iron_score": 2, "iron_confidence": 4}
    assert rec.text == "void in the posterior nucleus" and rec.kind == "score"
    # choosing "not rated" drops the value
    click(qtbot, panel.buttons["hiz"][NOT_RATED])
    assert "hiz" not in scores(ws)[0].values
    ws.undo()
    assert checked(panel, "hiz") == 1
    ws.undo()
    assert panel.comment.text() == ""


def test_context_separates_levels_visits_and_readers(qtbot, ws, panel):
    base, fu = ws.study.patients[0].visits
    click(qtbot, panel.buttons["pfirrmann"][2])
    panel.set_context(ws.annotations, fu.id, "L5/S1", "reader1")
    assert checked(panel, "pfirrmann") == NOT_RATED
    click(qtbot, panel.buttons["pfirrmann"][5])
    panel.set_context(ws.annotations, fu.id, "L4/L5", "reader2")
    assert checked(panel, "pfirrmann") == NOT_RATED
    click(qtbot, panel.buttons["pfirrmann"][1])
    panel.set_context(ws.annotations, base.id, "L4/L5", "reader1")
    assert checked(panel, "pfirrmann") == NOT_RATED
    panel.set_context(ws.annotations, fu.id, "L4/L5", "reader1")
    assert checked(panel, "pfirrmann") == 2
    got = sorted((a.level, a.reader, a.values["pfirrmann"]) for a in scores(ws))
    assert got == [("L4/L5", "reader1", 2), ("L4/L5", "reader2", 1), ("L5/S1", "reader1", 5)]
    # an edit elsewhere (e.g. another view) shows up
    rec = panel.record()
    import dataclasses
    ws.annotations.update(dataclasses.replace(rec, values={"pfirrmann": 4}, text="from elsewhere"))
    assert checked(panel, "pfirrmann") == 4 and panel.comment.text() == "from elsewhere"


def test_criteria_are_visible_and_no_context_disables(qtbot, ws, panel):
    texts = [w.text() for w in panel.findChildren(QtWidgets.QLabel) if w.isVisible()]
    for needle in ("inhomogeneous, grey", "unclear", "collapsed", "oedema / inflammation (active)",
                   "fatty marrow", "sclerosis", "brighter than the nucleus"):
        assert any(needle in t for t in texts), needle
    radio_texts = [b.text() for b in panel.findChildren(QtWidgets.QRadioButton) if b.isVisible()]
    assert "III" in radio_texts and "2  definite, focal" in radio_texts and "4  definitely present" in radio_texts
    assert "L4/L5" in panel.title.text() and "3 m" in panel.title.text()
    panel.set_context(None, "", "", "")
    assert not panel.body.isEnabled() and panel.hint.isVisible()
    click(qtbot, panel.buttons["pfirrmann"][3])  # disabled: nothing stored
    assert scores(ws) == []


def test_screenshot(qtbot, ws, panel, tmp_path):
    click(qtbot, panel.buttons["pfirrmann"][3])
    click(qtbot, panel.buttons["modic_lower"][1])
    path = tmp_path / "scores_panel.png"
    assert panel.grab().save(str(path))
    assert path.stat().st_size > 10_000

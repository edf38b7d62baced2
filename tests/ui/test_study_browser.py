"""StudyBrowserPanel on the review model: visit rows (order, labels, inline rename), series entries
(one row per series, roles, TE range, selection), lazy thumbnails on the phantom, problems node."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from discviewer.roles import ROLES, Role
from discviewer.study import Study
from discviewer.ui.study_browser import (COL_MATRIX, COL_ROLE, COL_SLICES, COL_TE, RENAME_VISIT, RESET_LABEL,
                                         RESET_TO_GUESS, ROLE_KIND, StudyBrowserPanel, format_echo_times)
from tests.synthetic import make_candidate

Qt = QtCore.Qt


# ------------------------------------------------------------------------------ fixtures
def fake_result():
    """Two visits out of date order; each: localizer, T2, T1; the later one adds a 3-echo GRE
    (echoes listed out of TE order) and a series with a scan warning."""
    from discviewer.io.types import Problem, ScanResult

    series = []
    for d, date in enumerate(("20210301", "20200101")):
        uid = f"1.2.{d}"
        series += [make_candidate("Localizer", 1, date=date, study_uid=uid, shape=(3, 40, 60), localizer=True),
                   make_candidate("T2 sag", 2, date=date, study_uid=uid, shape=(7, 40, 60)),
                   make_candidate("T1 sag", 3, date=date, study_uid=uid, shape=(5, 40, 60), te=12.0)]
    series += [make_candidate("ME GRE", 4, date="20210301", study_uid="1.2.0", shape=(6, 40, 60), te=te)
               for te in (15.0, 5.0, 10.0)]
    warned = make_candidate("T2 odd", 5, date="20210301", study_uid="1.2.0", shape=(4, 40, 60))
    warned.warnings.append("uneven slice spacing between 2.dcm and 3.dcm")
    series.append(warned)
    return ScanResult(series=series, files_seen=40,
                      problems=[Problem("/fake/notes.txt", "not a DICOM file"),
                                Problem("/fake/broken.dcm", "truncated pixel data")])


@pytest.fixture
def panel(qtbot):
    p = StudyBrowserPanel()
    qtbot.addWidget(p)
    p.resize(700, 800)
    p.show()
    qtbot.waitExposed(p)
    yield p
    p.shutdown()


@pytest.fixture
def fake(panel):
    panel.set_scan_result(fake_result())
    return panel


@pytest.fixture(scope="module")
def phantom_result(tmp_path_factory):
    from discviewer.io import scan
    from discviewer.phantom import write_study

    d = tmp_path_factory.mktemp("phantom")
    write_study(d, size="small")
    return scan(d)


def visit_rows(panel):
    patient = panel.tree.topLevelItem(0)
    return [patient.child(i) for i in range(patient.childCount())]


def center_of(panel, item, column=0):
    rect = panel.tree.visualItemRect(item)
    if column:
        x = panel.tree.header().sectionViewportPosition(column) + 5
        return QtCore.QPoint(x, rect.center().y())
    return QtCore.QPoint(rect.left() + 60, rect.center().y())


def double_click(qtbot, panel, pos):
    """A user's double-click: press/release, then the double-click (QTest's alone sets no pressed index)."""
    qtbot.mouseClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseDClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def _visible_editor(panel, name):
    eds = [w for w in panel.tree.viewport().findChildren(QtWidgets.QWidget, name) if w.isVisible()]
    return eds[0] if eds else None  # closed editors linger hidden until deleteLater runs


def open_editor(qtbot, panel, name):
    qtbot.waitUntil(lambda: _visible_editor(panel, name) is not None, timeout=2000)
    return _visible_editor(panel, name)


def editor_closed(panel, name):
    return _visible_editor(panel, name) is None


# ------------------------------------------------------------------------------ visits
def test_visit_rows_ordered_and_labelled(fake):
    p = fake
    assert p.tree.topLevelItem(0).text(0) == "DOE, JANE (P1)"
    rows = visit_rows(p)
    assert [r.data(0, ROLE_KIND) for r in rows] == ["visit", "visit"]
    assert [r.text(0) for r in rows] == ["baseline · 2020-01-01 · day 0 · Lumbar spine",
                                        "14 m · 2021-03-01 · day +425 · Lumbar spine"]
    visits = list(p.study.visits())
    assert [v.label for v in visits] == ["baseline", "14 m"]
    assert p.item_for_visit(visits[1]) is rows[1]
    assert "(default)" in rows[0].toolTip(0)
    assert p.summary.text() == "8 series in 2 visits (10 volumes) · 2 problems"


def test_phantom_visits_labels_and_dates(panel, phantom_result):
    panel.set_scan_result(phantom_result)
    texts = [r.text(0) for r in visit_rows(panel)]
    assert [t.split(" · ")[0] for t in texts] == ["baseline", "3 m", "6 m", "12 m", "24 m"]
    assert texts[1] == "3 m · 2019-11-16 · day +96 · MR LUMBAR SPINE"
    dates = [t.split(" · ")[1] for t in texts]
    assert dates == sorted(dates)


def test_inline_rename_writes_the_model_and_empty_restores_default(fake, qtbot):
    p = fake
    visit = list(p.study.visits())[1]
    row = visit_rows(p)[1]
    changes = []
    visit.changed.subscribe(changes.append)
    # double-click opens the inline editor with the label only
    double_click(qtbot, p, center_of(p, row))
    ed = open_editor(qtbot, p, "visit-label-editor")
    assert ed.text() == "14 m"
    ed.setText("M14 extra")
    qtbot.keyClick(ed, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: editor_closed(p, "visit-label-editor"), timeout=2000)
    assert visit.label == "M14 extra" and not visit.label_is_default
    assert row.text(0) == "M14 extra · 2021-03-01 · day +425 · Lumbar spine"
    assert "default: 14 m" in row.toolTip(0)
    assert [(c.name, c.old, c.new) for c in changes] == [("label", "14 m", "M14 extra")]
    # F2 on the current visit row; an empty name restores the default
    p.tree.setCurrentItem(row)
    p.tree.setFocus()
    qtbot.keyClick(p.tree, Qt.Key.Key_F2)
    ed = open_editor(qtbot, p, "visit-label-editor")
    assert ed.text() == "M14 extra"
    ed.clear()
    qtbot.keyClick(ed, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: editor_closed(p, "visit-label-editor"), timeout=2000)
    assert visit.label == "14 m" and visit.label_is_default
    assert row.text(0).startswith("14 m · 2021-03-01")


def test_visit_context_menu_rename_and_reset(fake, qtbot):
    p = fake
    visit = list(p.study.visits())[0]
    row = visit_rows(p)[0]
    menu = p.context_menu_for(row)
    acts = {a.text(): a for a in menu.actions()}
    assert set(acts) == {RENAME_VISIT, RESET_LABEL}
    assert not acts[RESET_LABEL].isEnabled()  # already the default
    acts[RENAME_VISIT].trigger()
    ed = open_editor(qtbot, p, "visit-label-editor")
    ed.setText("screening")
    qtbot.keyClick(ed, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: visit.label == "screening", timeout=2000)
    menu = p.context_menu_for(row)
    reset = next(a for a in menu.actions() if a.text() == RESET_LABEL)
    assert reset.isEnabled()
    reset.trigger()
    assert visit.label == "baseline" and row.text(0).startswith("baseline · ")


def test_model_side_label_change_updates_row(fake):
    p = fake
    visit = list(p.study.visits())[0]
    row = visit_rows(p)[0]
    assert visit.set_label("  pre-op ")
    assert row.text(0) == "pre-op · 2020-01-01 · day 0 · Lumbar spine"
    visit.set_label(None)
    assert row.text(0).startswith("baseline · ")


# ------------------------------------------------------------------------------ series and roles
def test_multi_echo_is_one_row_with_te_range_and_selects_first_echo(fake, qtbot):
    p = fake
    later = visit_rows(p)[1]
    titles = [later.child(i).text(0) for i in range(later.childCount())]
    assert len(titles) == 5  # localizer, T2, T1, the 3-echo GRE as one row, T2 odd
    gre_row = later.child(3)
    assert gre_row.text(0) == "4 ME GRE · sag · 3 echoes"
    assert [gre_row.text(c) for c in (COL_SLICES, COL_MATRIX, COL_TE)] == ["6", "40×60", "5–15 ms (3)"]
    assert gre_row.text(COL_ROLE) == "multi-echo GRE"
    entry = p.entry_for(p.candidates()[-2])
    assert entry is not None and entry.n_echoes == 3
    echoes = entry.echoes
    assert [c.info.echo_time for c in echoes] == [5.0, 10.0, 15.0]
    # every candidate of every echo is listed; each echo finds the entry's row
    assert len(p.candidates()) == 10
    assert all(p.item_for(c) is gre_row for c in echoes)
    # selecting the row (as a click does) emits the first echo and the entry
    got = []
    p.entry_selected.connect(got.append)
    with qtbot.waitSignal(p.series_selected, timeout=1000) as blocker:
        p.tree.setCurrentItem(gre_row)
    assert blocker.args[0] is echoes[0] and got == [entry]
    assert p.current_candidate() is echoes[0] and p.current_entry() is entry
    # select_candidate with a later echo of the current row emits that echo
    with qtbot.waitSignal(p.series_selected, timeout=1000) as blocker:
        assert p.select_candidate(echoes[2])
    assert blocker.args[0] is echoes[2] and p.current_candidate() is echoes[2]
    # first_loadable skips the localizer; unknown candidates are not found
    assert p.first_loadable().info.series_description == "T2 sag"
    assert p.first_loadable().info.study_date == "20200101"
    assert p.item_for(make_candidate()) is None and not p.select_candidate(make_candidate())
    assert format_echo_times([90.0]) == "90 ms" and format_echo_times([None]) == ""


def test_role_guessed_in_italics_changed_from_context_menu_model_and_reset(fake):
    p = fake
    row = visit_rows(p)[0].child(1)  # T2 sag of the baseline
    entry = p.entry_for(p.first_loadable())
    assert p.item_for(entry) is row
    assert row.text(COL_ROLE) == "T2 sag" and entry.role_is_guessed
    assert row.font(COL_ROLE).italic()
    assert entry.role_reason in row.toolTip(COL_ROLE)
    menu = p.context_menu_for(row)
    acts = [a for a in menu.actions() if a.data()]
    assert [a.data() for a in acts] == list(ROLES) + [RESET_TO_GUESS]
    checked = [a.data() for a in acts if a.isChecked()]
    assert checked == ["T2 sag"]
    assert "(guess)" in next(a.text() for a in acts if a.data() == "T2 sag")
    assert not acts[-1].isEnabled()
    # correct it through the menu action
    next(a for a in acts if a.data() == "T2* GRE").trigger()
    assert entry.role == Role.T2STAR_GRE and not entry.role_is_guessed
    assert row.text(COL_ROLE) == "T2* GRE" and not row.font(COL_ROLE).italic()
    assert "set by the user" in row.toolTip(COL_ROLE)
    # a model-side change shows too
    entry.set_role("other")
    assert row.text(COL_ROLE) == "other"
    # reset to guess
    menu = p.context_menu_for(row)
    reset = next(a for a in menu.actions() if a.data() == RESET_TO_GUESS)
    assert reset.isEnabled()
    reset.trigger()
    assert entry.role == Role.T2_SAG and entry.role_is_guessed
    assert row.text(COL_ROLE) == "T2 sag" and row.font(COL_ROLE).italic()


def test_role_inline_combo(fake, qtbot):
    p = fake
    row = visit_rows(p)[0].child(2)  # T1 sag
    entry = p.entry_for(p.candidates()[2])
    assert p.item_for(entry) is row and entry.role == Role.T1_SAG
    double_click(qtbot, p, center_of(p, row, COL_ROLE))
    combo = open_editor(qtbot, p, "role-editor")
    items = [combo.itemData(i) for i in range(combo.count()) if combo.itemData(i)]
    assert items == list(ROLES) + [RESET_TO_GUESS]
    assert combo.currentData() == "T1 sag"
    i = combo.findData("STIR sag")
    combo.setCurrentIndex(i)
    combo.activated.emit(i)  # as picking it with the mouse does
    qtbot.waitUntil(lambda: editor_closed(p, "role-editor"), timeout=2000)
    assert entry.role == Role.STIR_SAG and row.text(COL_ROLE) == "STIR sag"
    # F2 on the current series row opens the combo too; "Reset to guess" goes back
    p.tree.setCurrentItem(row)
    p.tree.setFocus()
    qtbot.keyClick(p.tree, Qt.Key.Key_F2)
    combo = open_editor(qtbot, p, "role-editor")
    i = combo.findData(RESET_TO_GUESS)
    combo.setCurrentIndex(i)
    combo.activated.emit(i)
    qtbot.waitUntil(lambda: editor_closed(p, "role-editor"), timeout=2000)
    assert entry.role == Role.T1_SAG and entry.role_is_guessed


# ------------------------------------------------------------------------------ problems, localizers, warnings
def test_problems_node_localizer_grey_and_warnings(fake):
    p = fake
    prob = p.problems_item
    assert prob is not None and prob.text(0) == "Problems (2)" and not prob.isExpanded()
    assert prob.data(0, ROLE_KIND) == "problems"
    assert [prob.child(i).text(0) for i in range(2)] == ["notes.txt — not a DICOM file",
                                                         "broken.dcm — truncated pixel data"]
    assert "/fake/broken.dcm" in prob.child(1).toolTip(0)
    loc = visit_rows(p)[0].child(0)
    assert loc.text(COL_ROLE) == "localizer"
    grey = p.palette().color(QtGui.QPalette.ColorRole.PlaceholderText)
    assert loc.foreground(0).color() == grey
    warned = visit_rows(p)[1].child(4)
    assert "Warnings:" in warned.toolTip(0) and "uneven slice spacing" in warned.toolTip(0)
    assert not warned.icon(0).isNull()
    # fakes have no header records: no thumbnails, nothing queued
    assert p.thumbnails_pending() == 0
    assert all(p.thumbnail_state(e) == "none" for e in p.entries())


def test_set_study_keeps_callers_study_and_stops_listening_to_the_old_one(panel):
    result = fake_result()
    study = Study.from_scan(result)
    panel.set_study(study, result)
    assert panel.study is study and panel.problems_item is not None
    old_visit = list(study.visits())[0]
    other = Study.from_scan(fake_result())
    panel.set_study(other)  # no scan result: no problems node
    assert panel.study is other and panel.problems_item is None
    assert len(study.changed) == 0  # unsubscribed, not closed (the caller owns it)
    old_visit.set_label("elsewhere")
    assert visit_rows(panel)[0].text(0).startswith("baseline · ")
    assert len(old_visit.changed) == 1  # the Study relay is still there


# ------------------------------------------------------------------------------ thumbnails (phantom)
def _image_array(img: QtGui.QImage) -> np.ndarray:
    img = img.convertToFormat(QtGui.QImage.Format.Format_Grayscale8)
    return np.array([[img.pixelColor(x, y).value() for x in range(img.width())] for y in range(img.height())])


def test_thumbnails_for_phantom(panel, qtbot, phantom_result):
    panel.set_scan_result(phantom_result)
    entries = panel.entries()
    assert len(entries) == 15 and len(panel.candidates()) == 35
    qtbot.waitUntil(lambda: all(panel.thumbnail_state(e) == "ready" for e in entries), timeout=8000)
    for e in entries:
        img = panel.thumbnail_for(e)
        assert img.width() == 48 and img.height() == 48  # square voxels, 160×160 matrix
        assert not panel.item_for(e).icon(0).isNull()
    arr = _image_array(panel.thumbnail_for(entries[0]))
    assert arr.std() > 20 and arr.max() >= 200  # windowed p1–p99: real contrast
    # a second scan of the same data reuses the cache: ready at once, nothing queued
    panel.set_scan_result(phantom_result)
    panel.request_thumbnails()
    assert panel.thumbnails_pending() == 0
    assert all(panel.thumbnail_state(e) == "ready" for e in panel.entries())


def test_thumbnails_are_lazy_and_follow_scrolling(qtbot, phantom_result):
    p = StudyBrowserPanel()
    qtbot.addWidget(p)
    p.resize(500, 160)
    p.show()
    qtbot.waitExposed(p)
    try:
        p.set_scan_result(phantom_result)
        entries = p.entries()
        qtbot.waitUntil(lambda: p.thumbnail_state(entries[0]) == "ready", timeout=5000)
        qtbot.wait(50)
        assert p.thumbnail_state(entries[-1]) == "none"  # far below the viewport: not asked for
        p.tree.scrollToBottom()
        qtbot.waitUntil(lambda: p.thumbnail_state(entries[-1]) == "ready", timeout=5000)
        # a result arriving after the rows were replaced is cached, never applied to a dead row
        p.set_scan_result(phantom_result)
        p.clear()
        qtbot.waitUntil(lambda: p.thumbnails_pending() == 0, timeout=5000)
        assert p.entries() == []
    finally:
        p.shutdown()

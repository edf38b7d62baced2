"""The coordinator creates a blinded reading session: `ReadingSetupDialog` (cases, questions, readers,
seed, options → `Workspace.reading`, surviving a save/load), and the main window's Reading menu
(New reading session…, Start reading… hides the main window while the reader window is open)."""
from __future__ import annotations

import pytest
from PySide6 import QtCore

from discviewer.reading import load_session, sessions_in
from discviewer.study import Study
from discviewer.workspace.project import Workspace

Qt = QtCore.Qt


@pytest.fixture
def study_ws(fake_io):
    study = Study.from_scan(fake_io.result)  # 1 patient, 2 visits (baseline, 14 m), 3 series each
    ws = Workspace(user="coordinator")
    ws.attach_study(study)
    yield study, ws
    ws.close()


def make_dialog(qtbot, study, ws):
    from discviewer.ui.reading_setup import ReadingSetupDialog

    dlg = ReadingSetupDialog(ws, study)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    return dlg


def test_dialog_creates_session_with_every_choice(qtbot, study_ws, tmp_path):
    study, ws = study_ws
    dlg = make_dialog(qtbot, study, ws)
    baseline, follow_up = study.patients[0].visits
    # defaults: every visit checked, Pfirrmann + iron, random seed, locked answers, 28 days' washout
    assert dlg.chosen_visits() == [("P1", baseline.id), ("P1", follow_up.id)]
    assert dlg.question_ids() == ["pfirrmann", "iron_presence"]
    assert dlg.washout_spin.value() == 28 and not dlg.allow_change_box.isChecked()
    assert dlg.seed_spin.value() > 0

    dlg.name_edit.setText("Round 1")
    # cases: both visits × two levels
    dlg.per_level_box.setChecked(True)
    levels = [dlg.level_list.item(i) for i in range(dlg.level_list.count())]
    assert [it.text() for it in levels] == ["T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    for it in levels:
        it.setCheckState(Qt.CheckState.Checked if it.text() in ("L4/L5", "L5/S1") else Qt.CheckState.Unchecked)
    dlg.select_none_button.click()
    assert dlg.chosen_visits() == []
    dlg.select_all_button.click()
    # questions: add Modic (two questions) from the template list, a custom ordinal question, reorder
    row = [dlg.template_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(dlg.template_list.count())]
    assert row == ["pfirrmann", "modic", "iron_presence", "disc_height", "signal_ratio", "free_text"]
    dlg.template_list.setCurrentRow(row.index("modic"))
    dlg.add_template_button.click()
    dlg.template_list.setCurrentRow(row.index("disc_height"))
    dlg.add_template_button.click()
    dlg.custom_type_combo.setCurrentIndex(dlg.custom_type_combo.findData("ordinal"))
    dlg.custom_title_edit.setText("Endplate defect")
    dlg.custom_choices_edit.setText("none, small, large")
    dlg.add_custom_button.click()
    assert dlg.question_ids() == ["pfirrmann", "iron_presence", "modic_upper", "modic_lower", "disc_height",
                                  "endplate_defect"]
    dlg.question_table.selectRow(1)
    dlg.down_button.click()  # iron after modic_upper
    assert dlg.question_ids()[:3] == ["pfirrmann", "modic_upper", "iron_presence"]
    dlg.set_required(4, False)  # disc height optional
    # readers (typed, Add; a duplicate is ignored; Remove)
    for r in ("R1", "R2", "R2", "R9", "R3"):
        dlg.reader_edit.setText(r)
        dlg.add_reader_button.click()
    dlg.reader_list.setCurrentRow(2)
    dlg.remove_reader_button.click()
    assert dlg.readers() == ["R1", "R2", "R3"]
    # options
    dlg.seed_spin.setValue(4242)
    dlg.allow_change_box.setChecked(True)
    dlg.reread_count_radio.setChecked(True)
    dlg.reread_count_spin.setValue(2)
    dlg.washout_spin.setValue(35)
    dlg.set_hanging(["T2 sag", "T2* GRE"], ["sag", "ax"])
    dlg.show_baseline_box.setChecked(False)
    assert "4 case(s) × 6 question(s) × 3 reader(s)" in dlg.summary_label.text()

    with qtbot.waitSignal(dlg.session_created):
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    assert dlg.result() == dlg.DialogCode.Accepted
    assert list(ws.reading) == [dlg.session.id]
    s = load_session(ws, dlg.session.id)
    assert s.name == "Round 1" and s.seed == 4242 and s.readers == ["R1", "R2", "R3"]
    assert [q.id for q in s.questions] == ["pfirrmann", "modic_upper", "iron_presence", "modic_lower", "disc_height",
                                           "endplate_defect"]
    assert not s.question("disc_height").required and s.question("pfirrmann").required
    custom = s.question("endplate_defect")
    assert custom.ordinal and [o.label for o in custom.options] == ["none", "small", "large"]
    assert sorted((c.visit_id, c.level) for c in s.cases) == sorted(
        (v.id, lv) for v in (baseline, follow_up) for lv in ("L4/L5", "L5/S1"))
    o = s.options
    assert o.allow_change_after_submit and o.washout_days == 35 and len(o.reread_codes) == 2
    assert o.hanging.roles == ("T2 sag", "T2* GRE") and o.hanging.planes == ("sag", "ax")
    assert not o.hanging.show_baseline_for_iron
    # stored: project modified, audited
    assert ws.is_dirty
    assert ws.audit[-1].action == "reading session created" and ws.audit[-1].target == s.id

    # survives a project save / load
    from discviewer.workspace import store

    path = str(tmp_path / "reading.dvw")
    store.save(ws.to_data(), path)
    ws2 = Workspace.from_data(store.load(path).data, path=path)
    assert [x.to_dict() for x in sessions_in(ws2)] == [s.to_dict()]
    ws2.close()


def test_invalid_choices_are_refused_with_a_message(qtbot, study_ws, auto_answers):
    study, ws = study_ws
    dlg = make_dialog(qtbot, study, ws)
    dlg.select_all_visits(False)
    dlg.ok_button.click()  # no cases, no readers
    assert dlg.isVisible() and dlg.session is None and ws.reading == {}
    kind, title, text, _ = auto_answers.asked[-1]
    assert title == "Reading session not created" and "case" in text and "reader" in text
    # a custom choice question needs its choices
    dlg.custom_type_combo.setCurrentIndex(dlg.custom_type_combo.findData("choice"))
    dlg.custom_title_edit.setText("Herniation")
    dlg.add_custom_button.click()
    assert auto_answers.asked[-1][1] == "Custom question" and "herniation" not in dlg.question_ids()
    # a custom question of every other kind is accepted
    for kind in ("number", "yesno", "text", "disc_height", "signal_ratio"):
        dlg.add_custom(kind, f"My {kind}")
    dlg.add_custom("multi", "Findings", choices=["gas", "calcification"])
    assert dlg.question_ids()[2:] == ["my_number", "my_yesno", "my_text", "my_disc_height", "my_signal_ratio",
                                      "findings"]
    dlg.add_template("pfirrmann")  # twice: the id is made unique
    assert dlg.question_ids()[-1] == "pfirrmann_2"
    dlg.set_visit_checked(study.patients[0].visits[0].id, True)
    dlg.add_reader("R1")
    dlg.ok_button.click()
    assert dlg.session is not None and len(dlg.session.cases) == 1 and len(dlg.session.questions) == 9


# ---------------------------------------------------------------------------- through the main window
@pytest.fixture
def window(qtbot, fake_io, tmp_path):
    from discviewer.ui.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(scan_fn=fake_io.scan, load_fn=fake_io.load, settings=settings)
    qtbot.addWidget(w)
    w.resize(1100, 700)
    w.show()
    qtbot.waitExposed(w)
    with qtbot.waitSignal(w.volume_shown, timeout=5000):
        w.open_path("/fake/study")
    yield w
    w.shutdown()


def test_reading_menu_creates_session_and_starts_blinded_reading(window, qtbot, auto_answers):
    w = window
    menus = {a.text().replace("&", ""): a.menu() for a in w.menuBar().actions()}
    names = [a.text().replace("&", "") for a in menus["Reading"].actions() if not a.isSeparator()]
    assert names == ["New reading session…", "Start reading…", "Results…", "Export reader package…",
                     "Import answers…"]
    assert [a.text().replace("&", "") for a in w.menuBar().actions()][-2:] == ["Reading", "Help"]

    w.reading.start_reading()  # no session yet: a message, nothing opens
    assert auto_answers.asked[-1][1] == "Start reading" and w.reading.reader_window is None

    dlg = w.reading.new_session(exec_=False)
    qtbot.addWidget(dlg)
    dlg.add_reader("R1")
    dlg.name_edit.setText("Pilot")
    dlg.accept()
    assert w.project.workspace.reading and w.isWindowModified()
    sid = dlg.session.id

    rw = w.reading.start_reading(sid, reader="R1")
    assert rw is not None
    qtbot.waitUntil(lambda: rw.case is not None, timeout=10000)
    assert not w.isVisible() and rw.isVisible()  # the identifying main window is hidden while reading
    assert "DOE" not in rw.windowTitle() and "baseline" not in rw.windowTitle()
    rw.close()
    qtbot.waitUntil(lambda: w.isVisible(), timeout=5000)
    assert w.reading.reader_window is None

    dock = w.reading.show_results()
    assert dock.isVisible() and w.reading.results_panel.session.id == sid


def test_reading_menu_package_errors_are_shown(window, qtbot, auto_answers, tmp_path):
    """The Reading menu's package items go through the same flows: a failed export (the fake study has
    no DICOM files to copy) and a file that is not an answers file are reported in a message box."""
    w = window
    dlg = w.reading.new_session(exec_=False)
    qtbot.addWidget(dlg)
    dlg.add_reader("R1")
    dlg.accept()
    sid = dlg.session.id
    assert w.reading.export_package(sid, "R1", str(tmp_path / "pkg")) is None
    assert auto_answers.asked[-1][1] == "Reader package not exported"
    bogus = tmp_path / "answers.json"
    bogus.write_text('{"format": "something else"}', encoding="utf-8")
    assert w.reading.import_answers(sid, str(bogus)) is None
    kind, title, text, _ = auto_answers.asked[-1]
    assert title == "Answers not imported" and "not a discviewer answers file" in text

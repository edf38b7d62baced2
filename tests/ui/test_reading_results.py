"""The coordinator's results of a blinded reading session (`ReadingResultsPanel`): progress per reader,
the agreement table (the core's numbers, checked against `discviewer.stats` called here), the plots
(Bland–Altman, confusion matrix), the exports (answers CSV, unblinding key, agreement CSV + PNG), and
reader-package export / import with their refusals shown in a message box."""
from __future__ import annotations

import csv
import datetime as dt
import math
import os

import numpy as np
import pytest
from PySide6 import QtGui

from discviewer import stats
from discviewer.reading import ReaderProgress, SessionOptions, create_session, load_session, store_session
from discviewer.study import Study
from discviewer.workspace.project import Workspace

LEVELS = ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
READERS = ["R1", "R2", "R3"]
T0 = dt.datetime(2026, 1, 5, 9, 0)


def answered_workspace(fake_io, *, readers=READERS, reread=True):
    """A workspace with a session of 10 cases (2 visits × 5 levels), Pfirrmann + iron + disc height,
    answered by every reader in read 1 and — 40 days later — the re-read subset (half the cases)."""
    study = Study.from_scan(fake_io.result)
    ws = Workspace(user="coordinator")
    ws.attach_study(study)
    s = create_session("Trial A", study, ["pfirrmann", "iron_presence", "disc_height", "free_text"], readers,
                       levels=LEVELS, seed=11, options=SessionOptions(reread_fraction=0.5 if reread else 0.0))
    store_session(ws, s)
    rng = np.random.default_rng(3)
    truth = {c.code: (int(rng.integers(1, 6)), int(rng.integers(0, 4)), float(rng.uniform(6, 12))) for c in s.cases}
    p = ReaderProgress(s, ws)
    for r in readers:
        for i, code in enumerate(p.order(r, 1)):
            pf, fe, h = truth[code]
            if rng.random() < 0.3:
                pf = int(np.clip(pf + rng.choice([-1, 1]), 1, 5))
            p.submit(r, code, {"pfirrmann": pf, "iron_presence": {"value": fe, "confidence": 4},
                               "disc_height": round(h + rng.normal(0, 0.4), 2), "comment": "ok"}, 20.0 + i,
                     now=T0 + dt.timedelta(minutes=i))
        if reread:
            for i, code in enumerate(p.order(r, 2)):
                pf, fe, h = truth[code]
                p.submit(r, code, {"pfirrmann": pf, "iron_presence": {"value": fe, "confidence": 3},
                                   "disc_height": round(h + rng.normal(0, 0.3), 2), "comment": ""}, 15.0, read=2,
                         confirm_empty=True, now=T0 + dt.timedelta(days=40, minutes=i))
    return ws, s.id


@pytest.fixture
def panel(qtbot, fake_io):
    from discviewer.ui.reading_results import ReadingResultsPanel

    ws, sid = answered_workspace(fake_io)
    p = ReadingResultsPanel(ws)
    qtbot.addWidget(p)
    p.resize(1400, 800)
    p.show()
    qtbot.waitExposed(p)
    yield p
    ws.close()


def table_rows(table):
    return [[table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount())]
            for r in range(table.rowCount())]


def ratings(session, qid, reader, read=1, codes=None):
    q = session.question(qid)
    out = []
    for code in codes if codes is not None else sorted(session.codes_for_read(read)):
        v = session.record(reader, code, read).value(qid)
        out.append(v["value"] if q.type == "measurement" else v)
    return out


def find_row(rows, question, scope, readers, statistic):
    hit = [r for r in rows if r[:4] == [question, scope, readers, statistic]]
    assert len(hit) == 1, (question, scope, readers, statistic)
    return hit[0]


def test_progress_and_agreement_table_show_the_core_statistics(panel):
    s = panel.session
    assert s.name == "Trial A" and panel.session_combo.count() == 1
    prog = table_rows(panel.progress_table)
    assert [r[:3] for r in prog] == [["R1", "10/10", "5/5"], ["R2", "10/10", "5/5"], ["R3", "10/10", "5/5"]]
    assert prog[0][3] == "2026-02-02"  # 28 days after the last read-1 submit (09:09 on 5 January)

    rows = table_rows(panel.agreement_table)
    assert len(rows) == len(panel.report) > 0
    assert {r[0] for r in rows} == {"pfirrmann", "iron_presence", "disc_height"}  # free text has no statistic

    # Pfirrmann, R1 vs R2, quadratic weighted κ over the full 1–5 scale
    k = stats.cohen_kappa(ratings(s, "pfirrmann", "R1"), ratings(s, "pfirrmann", "R2"), categories=[1, 2, 3, 4, 5],
                          weights="quadratic")
    row = find_row(rows, "pfirrmann", "inter", "R1 vs R2", "Cohen kappa (quadratic)")
    # the report clips κ's Wald CI to κ's range [−1, 1] (and says so in the note)
    assert row[4] == f"{k.kappa:.3f}" and row[6] == "10"
    assert row[5] == f"{max(k.ci_low, -1.0):.3f} – {min(k.ci_high, 1.0):.3f}"
    assert ("clipped" in row[-1]) == (k.ci_high > 1.0 or k.ci_low < -1.0)
    # Fleiss κ of the three readers
    f = stats.fleiss_kappa([list(t) for t in zip(*(ratings(s, "pfirrmann", r) for r in READERS))],
                           categories=[1, 2, 3, 4, 5])
    assert find_row(rows, "pfirrmann", "inter", "R1, R2, R3", "Fleiss kappa")[4] == f"{f.kappa:.3f}"
    # disc height: ICC(A,1) with its CI, SDC, Bland–Altman bias of R1 vs R3
    data = np.column_stack([ratings(s, "disc_height", r) for r in READERS])
    icc = stats.icc(data)["ICC(A,1)"]
    row = find_row(rows, "disc_height", "inter", "R1, R2, R3", "ICC(A,1)")
    assert row[4] == f"{icc.value:.3f}" and row[5] == f"{icc.ci_low:.3f} – {icc.ci_high:.3f}"
    me = stats.measurement_error(data)
    assert find_row(rows, "disc_height", "inter", "R1, R2, R3", "SDC (mm)")[4] == f"{me.sdc:.3f}"
    ba = stats.bland_altman(data[:, 0], data[:, 2])
    assert find_row(rows, "disc_height", "inter", "R1 vs R3", "Bland-Altman bias (mm)")[4] == f"{ba.bias:.3f}"
    # intra-reader: R2's read 1 vs re-read
    codes = sorted(s.reread_codes)
    k2 = stats.cohen_kappa(ratings(s, "iron_presence", "R2", 1, codes), ratings(s, "iron_presence", "R2", 2, codes),
                           categories=[0, 1, 2, 3], weights="linear")
    row = find_row(rows, "iron_presence", "intra", "R2", "Cohen kappa (linear)")
    assert row[4] == (f"{k2.kappa:.3f}" if math.isfinite(k2.kappa) else "—") and row[6] == "5"
    d1 = ratings(s, "disc_height", "R2", 1, codes)
    d2 = ratings(s, "disc_height", "R2", 2, codes)
    icc2 = stats.icc(np.column_stack([d1, d2]))["ICC(C,1)"]
    assert find_row(rows, "disc_height", "intra", "R2", "ICC(C,1)")[4] == f"{icc2.value:.3f}"


def test_plots_have_one_point_per_case(panel, qtbot):
    s = panel.session
    titles = [panel.plot_combo.itemText(i) for i in range(panel.plot_combo.count())]
    # 3 questions × (3 reader pairs + 3 readers' re-reads)
    assert len(titles) == len(panel.specs) == 3 * 6
    spec = panel.select_plot("disc_height", "inter", "R1", "R2")
    plot = panel.plot
    assert plot.spec is spec and spec.kind == "bland_altman"
    x, y = plot.points.getData()
    a, b = np.array(ratings(s, "disc_height", "R1")), np.array(ratings(s, "disc_height", "R2"))
    assert len(x) == 10 and np.allclose(np.sort(x), np.sort((a + b) / 2)) and np.allclose(np.sort(y), np.sort(a - b))
    ba = stats.bland_altman(a, b)
    assert plot.lines["bias"].value() == pytest.approx(ba.bias)
    assert plot.lines["loa_low"].value() == pytest.approx(ba.loa_low)
    assert plot.lines["loa_high"].value() == pytest.approx(ba.loa_high)
    assert "Research use only" in plot.title_text()

    spec = panel.select_plot("disc_height", "intra", "R3")
    assert len(panel.plot.points.getData()[0]) == 5

    spec = panel.select_plot("pfirrmann", "inter", "R2", "R3")
    assert spec.kind == "confusion" and panel.plot.points is None
    counts = panel.plot.counts
    assert counts.shape == (5, 5) and counts.sum() == 10
    expected = stats.contingency_table(ratings(s, "pfirrmann", "R2"), ratings(s, "pfirrmann", "R3"), [1, 2, 3, 4, 5])
    assert np.array_equal(counts, expected)
    assert panel.plot.image is not None

    # selecting an agreement row shows its plot
    rows = table_rows(panel.agreement_table)
    i = rows.index(find_row(rows, "iron_presence", "intra", "R1", "Cohen kappa"))
    panel.agreement_table.selectRow(i)
    assert (panel.plot.spec.question, panel.plot.spec.scope, panel.plot.spec.a_name) == ("iron_presence", "intra", "R1")


def test_exports_write_answers_key_agreement_and_figures(panel, tmp_path):
    s = panel.session
    answers = panel.export_answers(str(tmp_path / "answers.csv"))
    with open(answers, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["reader", "case_code", "question", "answer", "confidence", "time_s", "timestamp", "read",
                             "detail"]
    n_q = len(s.questions)
    assert len(rows) == len(READERS) * (10 + 5) * n_q
    assert {r["read"] for r in rows} == {"1", "2"}
    assert not any("DOE" in v for r in rows for v in r.values())  # answers carry codes, never identity

    key = panel.export_key(str(tmp_path / "key.csv"))
    with open(key, newline="", encoding="utf-8") as f:
        krows = list(csv.DictReader(f))
    assert list(krows[0])[:4] == ["case_code", "patient_id", "patient_name", "visit_id"]
    assert sorted(r["case_code"] for r in krows) == sorted(s.codes)
    assert sum(r["reread"] == "yes" for r in krows) == 5

    written = panel.export_agreement(str(tmp_path / "agreement"))
    csvs = [p for p in written if p.endswith(".csv")]
    pngs = [p for p in written if p.endswith(".png")]
    assert len(csvs) == 1 and len(pngs) == len(panel.specs) == 18
    with open(csvs[0], newline="", encoding="utf-8") as f:
        arows = list(csv.DictReader(f))
    assert list(arows[0]) == ["question", "scope", "readers", "statistic", "value", "ci_low", "ci_high", "n", "band",
                              "note"]
    assert len(arows) == len(panel.report)
    for p in pngs:
        img = QtGui.QImage(p)
        assert not img.isNull() and img.width() > 100 and img.height() > 100, p
    assert any(os.path.basename(p).endswith("disc_height_inter_R1_vs_R2.png") for p in pngs)
    actions = [e.action for e in panel.workspace.audit]
    assert {"reading answers exported", "reading unblinding key exported", "reading agreement exported"} <= set(actions)


def test_refresh_follows_new_answers_and_sessions(qtbot, fake_io):
    from discviewer.ui.reading_results import ReadingResultsPanel

    ws, sid = answered_workspace(fake_io, readers=["R1", "R2"], reread=False)
    p = ReadingResultsPanel(ws)
    qtbot.addWidget(p)
    assert [r[:3] for r in table_rows(p.progress_table)] == [["R1", "10/10", "—"], ["R2", "10/10", "—"]]
    assert not any(r[1] == "intra" for r in table_rows(p.agreement_table))
    s = load_session(ws, sid)
    ReaderProgress(s, ws).identify("R3")  # stored in the workspace: the panel follows by itself
    qtbot.waitUntil(lambda: [r[:2] for r in table_rows(p.progress_table)][-1] == ["R3", "0/10"], timeout=2000)
    p.set_workspace(Workspace())
    assert p.session is None and p.agreement_table.rowCount() == 0 and not p.export_answers_button.isEnabled()


# ---------------------------------------------------------------------------- reader packages
def test_package_export_and_import_buttons(qtbot, demo, tmp_path, auto_answers, monkeypatch):
    """Export a real package (phantom DICOM) through the button, answer it on the 'reader side', import
    the answers through the button; a second import (duplicate) and an import into another session are
    refused in a message box, as is exporting into a folder that is not empty."""
    from PySide6 import QtWidgets

    from discviewer.io import scan
    from discviewer.reading import package
    from discviewer.ui.reading_results import ReadingResultsPanel

    study = Study.from_scan(scan(demo))
    ws = Workspace(user="coordinator")
    ws.attach_study(study)
    s = create_session("Packaged", study, ["pfirrmann"], ["R1", "R2"], levels=["L4/L5"], seed=5)
    store_session(ws, s)
    other = create_session("Other", study, ["pfirrmann"], ["R1"], levels=["L4/L5"], seed=6)
    store_session(ws, other)
    p = ReadingResultsPanel(ws)
    qtbot.addWidget(p)
    p.set_session(s.id)
    assert p.session.id == s.id

    dest = tmp_path / "R1-package"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(dest), ""))
    monkeypatch.setattr(QtWidgets.QInputDialog, "getItem", lambda *a, **k: ("R1", True))
    p.export_package_button.click()
    assert (dest / "package.json").exists() and (tmp_path / "R1-package.zip").exists()
    register = load_session(ws, s.id).extra["reader_packages"]
    assert [e["reader"] for e in register] == ["R1"]
    assert "reader package exported" in [e.action for e in ws.audit]

    p.export_package_button.click()  # the folder exists and is not empty: refused, said in a message box
    assert auto_answers.asked[-1][1] == "Reader package not exported" and "not empty" in auto_answers.asked[-1][2]

    # the reader answers on their machine and returns the answers file
    pk = package.open_reader_package(dest)
    for code in pk.progress.order("R1"):
        pk.progress.submit("R1", code, {"pfirrmann": 3}, 12.0)
    answers = package.export_answers(pk, tmp_path)
    pk.close()

    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (str(answers), ""))
    n_asked = len(auto_answers.asked)
    with qtbot.waitSignal(p.answers_imported):
        p.import_button.click()
    assert len(auto_answers.asked) == n_asked  # no message: imported
    assert [r[:2] for r in table_rows(p.progress_table)] == [["R1", "5/5"], ["R2", "0/5"]]
    assert "reading answers imported" in [e.action for e in ws.audit]

    p.import_button.click()  # the same file again: a duplicate
    kind, title, text, _ = auto_answers.asked[-1]
    assert title == "Answers not imported" and "already in the session" in text
    assert [r[:2] for r in table_rows(p.progress_table)][0] == ["R1", "5/5"]

    p.set_session(other.id)  # answers of another session
    p.import_button.click()
    kind, title, text, _ = auto_answers.asked[-1]
    assert title == "Answers not imported" and "another reading session" in text
    assert not load_session(ws, other.id).answers
    ws.close()

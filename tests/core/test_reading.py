"""discviewer.reading: questions, sessions (codes, per-reader order, re-read subset), answers (locking,
changes, required/empty confirmation, washout gate, resume, audit), blinding, exports, agreement."""
from __future__ import annotations

import csv
import datetime as dt
import json
import math

import numpy as np
import pytest

from discviewer import stats
from discviewer.io.types import FrameRef, VolumeCandidate
from discviewer.reading import agreement as agr
from discviewer.reading.answers import (AnswerLockedError, CaseOrderError, EmptyAnswersError, MissingAnswersError,
                                        ReaderProgress, ReadGateError)
from discviewer.reading.blinding import (blinded_title, find_leaks, identifying_strings, neutral_series_title)
from discviewer.reading.export import (ANSWER_COLUMNS, KEY_COLUMNS, answers_csv, rating_matrix, reread_pairs,
                                       unblinding_key_csv)
from discviewer.reading.questions import (TEMPLATES, AnswerError, Option, Question, questions_from, template)
from discviewer.reading.session import (Case, HangingOptions, ReadingSession, SessionOptions, UnknownCaseError,
                                        UnknownReaderError, create_session, load_session, sessions_in,
                                        store_session)
from discviewer.study import Study
from discviewer.volume import SeriesInfo
from discviewer.workspace import store
from discviewer.workspace.project import Workspace

SAG = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)


def cand(pid, name, study, date, series, desc, number, te=100.0, tr=4000.0, n=3):
    info = SeriesInfo(patient_id=pid, patient_name=name, study_uid=study, study_date=date, series_uid=series,
                      series_number=number, series_description=desc, study_description=f"LWS {pid} Kontrolle",
                      sequence_name="*tse2d1_17", repetition_time=tr, echo_time=te, complex_part="MAGNITUDE",
                      modality="MR", source_path=f"/data/{name.split('^')[0]}/{date}")
    return VolumeCandidate(info=info, frames=[FrameRef(f"/data/{name.split('^')[0]}/{date}/{series}_{i}.dcm",
                                                       sop_uid=f"{series}.{i}") for i in range(n)],
                           rows=8, columns=8, spacing=(1.0, 1.0, 4.0), affine=np.eye(4), orientation=SAG)


def make_study() -> Study:
    cands = []
    for pid, name, dates in (("PAT-0007", "MUELLER^JUERGEN", ("20230115", "20230420", "20240110")),
                             ("PAT-0042", "SCHMIDT^ANNA", ("20230301", "20230610"))):
        for vi, date in enumerate(dates):
            study = f"1.2.826.{pid[-2:]}.{vi + 1}"
            cands.append(cand(pid, name, study, date, f"{study}.1", f"T2 TSE SAG {pid} FU{vi}", 1))
            cands.append(cand(pid, name, study, date, f"{study}.2", "T1_tse_sag_kontrolle", 2, te=10.0, tr=500.0))
    return Study.from_scan(cands)


@pytest.fixture
def study():
    return make_study()


def new_session(study, readers=("rk", "am"), **opts) -> ReadingSession:
    return create_session("trial", study, ["pfirrmann", "iron_presence", "disc_height", "free_text"], readers,
                          levels=["L4/L5", "L5/S1"], seed=1234, options=SessionOptions(**opts))


def full_answer(i=0):
    return {"pfirrmann": 1 + i % 5, "iron_presence": {"value": i % 4, "confidence": 1 + i % 4},
            "disc_height": {"value": 8.0 + 0.25 * i, "DHa": 9.0, "DHm": 8.5, "DHp": 6.5}, "comment": "ok"}


def read_all(prog, reader, read=1, start=T0, step=dt.timedelta(minutes=5), answer=full_answer):
    t = start
    for i, code in enumerate(prog.order(reader, read)):
        prog.submit(reader, code, answer(i), 30.0 + i, read=read, now=t)
        t += step
    return t - step


# ------------------------------------------------------------------------------------------------ questions

def test_question_types_validate():
    ch = template("pfirrmann")[0]
    assert ch.validate(3) == 3 and ch.validate(3.0) == 3 and ch.validate(None) is None
    for bad in (0, 6, "III", True):
        with pytest.raises(AnswerError, match="not an option"):
            ch.validate(bad)
    assert [o.label for o in ch.options] == ["I", "II", "III", "IV", "V"] and ch.ordinal
    assert "isointense to CSF" in ch.options[0].criteria and "collapsed" in ch.options[4].criteria
    multi = Question("signs", "Signs", "multi", [Option("hiz", "HIZ"), Option("gas", "gas"), Option("calc", "calc")])
    assert multi.validate(["calc", "hiz"]) == ["hiz", "calc"]  # option order
    assert multi.validate([]) is None
    with pytest.raises(AnswerError, match="twice"):
        multi.validate(["gas", "gas"])
    num = Question("n", "Number", "number", min=0, max=10, step=0.5, unit="mm")
    assert num.validate(2.5) == 2.5 and num.validate(np.float32(3.0)) == 3.0
    with pytest.raises(AnswerError, match="below the minimum 0 mm"):
        num.validate(-1)
    with pytest.raises(AnswerError, match="above the maximum"):
        num.validate(10.5)
    with pytest.raises(AnswerError, match="step 0.5"):
        num.validate(2.3)
    with pytest.raises(AnswerError, match="finite number"):
        num.validate(float("nan"))
    yn = Question("hiz", "HIZ?", "yesno")
    assert yn.validate(False) is False and yn.categories() == [False, True]
    with pytest.raises(AnswerError, match="yes/no"):
        yn.validate(1)
    tx = Question("c", "C", "text", required=False)
    assert tx.validate("  x ") == "x" and tx.validate("   ") is None
    dh = template("disc_height")[0]
    assert dh.validate(8.5) == {"value": 8.5}
    assert dh.validate({"value": 8, "DHa": 9}) == {"value": 8, "DHa": 9}
    with pytest.raises(AnswerError, match="needs a 'value'"):
        dh.validate({"DHa": 9})
    with pytest.raises(AnswerError, match="above the maximum"):
        dh.validate(99)
    with pytest.raises(ValueError, match="unknown type"):
        Question("x", "x", "slider")
    with pytest.raises(ValueError, match="needs options"):
        Question("x", "x", "choice")
    with pytest.raises(ValueError, match="measurement kind, one of disc_height"):
        Question("x", "x", "measurement", measurement="volume")


def test_templates_and_json_round_trip():
    assert set(TEMPLATES) == {"pfirrmann", "modic", "iron_presence", "disc_height", "signal_ratio", "free_text"}
    modic = template("modic")
    assert [q.id for q in modic] == ["modic_upper", "modic_lower"]
    assert [o.value for o in modic[0].options] == [0, 1, 2, 3]
    iron = template("iron_presence")[0]
    assert [o.value for o in iron.options] == [0, 1, 2, 3] and iron.ordinal
    assert [o.label for o in iron.confidence] == ["definitely present", "probably present", "probably absent",
                                                  "definitely absent"]
    assert template("signal_ratio")[0].measurement == "signal_ratio"
    assert template("free_text")[0].required is False
    assert template("pfirrmann", required=False)[0].required is False
    with pytest.raises(KeyError, match="unknown question template"):
        template("nope")
    qs = questions_from(list(TEMPLATES) + [Question("hiz", "HIZ", "yesno")])
    for q in qs:
        assert Question.from_dict(json.loads(json.dumps(q.to_dict()))) == q
    with pytest.raises(ValueError, match="repeat"):
        questions_from(["pfirrmann", "pfirrmann"])


# ------------------------------------------------------------------------------------------------ session

def test_cases_and_codes(study):
    s = new_session(study)
    assert len(s.cases) == 5 * 2  # 5 visits × 2 levels
    codes = s.codes
    assert codes == sorted(codes) and len(set(codes)) == len(codes)
    assert all(c.startswith("C") and len(c) == 4 for c in codes)
    # codes are random: not the build order, and the same seed gives the same codes
    built = [c.code for c in sorted(s.cases, key=lambda c: (c.patient_id, c.days, c.level))]
    assert built != sorted(built)
    assert new_session(study).codes == codes
    assert create_session("x", study, ["pfirrmann"], seed=99).codes != create_session("x", study, ["pfirrmann"],
                                                                                      seed=98).codes
    c = s.cases[0]
    assert c.baseline_visit_id and {r.role for r in c.series} == {"T2 sag", "T1 sag"}
    p7 = [c for c in s.cases if c.patient_id == "PAT-0007" and c.level == "L4/L5"]
    assert sorted((c.days, c.visit_label, c.visit_date) for c in p7) == [
        (0, "baseline", "2023-01-15"), (95, "3 m", "2023-04-20"), (360, "12 m", "2024-01-10")]
    # whole visits (no levels), a subset of patients
    whole = create_session("w", study, ["pfirrmann"], patients=["PAT-0042"], seed=1)
    assert [c.level for c in whole.cases] == [None, None] and {c.patient_id for c in whole.cases} == {"PAT-0042"}
    one = create_session("v", study, ["pfirrmann"], visits=[study.patients[0].visits[2].id], seed=1)
    assert [(c.visit_label, c.is_baseline) for c in one.cases] == [("12 m", False)]


def test_order_is_deterministic_per_reader(study, tmp_path):
    s = new_session(study, reread_fraction=0.3)
    o_rk, o_am = s.order_for("rk"), s.order_for("am")
    assert sorted(o_rk) == sorted(o_am) == s.codes
    assert o_rk != o_am  # different readers, different orders
    assert o_rk == s.order_for(" rk ") == new_session(study, reread_fraction=0.3).order_for("rk")
    # round trip through the session JSON
    s2 = ReadingSession.from_dict(json.loads(json.dumps(s.to_dict())))
    assert s2.order_for("rk") == o_rk and s2.order_for("am") == o_am and s2.reread_codes == s.reread_codes
    assert s2.to_dict() == s.to_dict()
    # and through a workspace file
    ws = Workspace(user="coordinator", name="trial")
    store_session(ws, s)
    path = tmp_path / "w.dvw"
    store.save(ws.to_data(), path)
    ws2 = Workspace.from_data(store.load(path).data, path=str(path))
    s3 = load_session(ws2, s.id)
    assert s3.order_for("rk") == o_rk and s3.order_for("am", 2) == s.order_for("am", 2)
    assert [x.id for x in sessions_in(ws2)] == [s.id]
    # the re-read: over the subset only, re-shuffled
    sub = s.reread_codes
    assert len(sub) == 3 and set(sub) <= set(s.codes)
    r2 = s.order_for("rk", 2)
    assert sorted(r2) == list(sub)
    assert r2 != [c for c in o_rk if c in sub]  # seed 1234: not the read-1 order of those cases
    assert s.order_for("rk", 2) != s.order_for("am", 2) or len(sub) < 3
    with pytest.raises(ValueError, match="read must be 1 or 2"):
        s.order_for("rk", 3)


def test_many_readers_get_distinct_orders(study):
    s = create_session("x", study, ["pfirrmann"], levels=["L1/L2", "L2/L3", "L3/L4", "L4/L5"], seed=5)
    orders = {tuple(s.order_for(f"reader{i}")) for i in range(20)}
    assert len(orders) == 20
    firsts = {o[0] for o in orders}
    assert len(firsts) > 5  # not one fixed case first


def test_explicit_reread_codes_and_option_checks(study):
    base = new_session(study)
    codes = base.codes[:2]
    s = new_session(study, reread_codes=tuple(reversed(codes)), washout_days=60,
                    hanging=HangingOptions(("T2 sag", "T2* GRE"), ("sag",), False))
    assert s.reread_codes == tuple(sorted(codes)) and s.options.washout_days == 60
    d = ReadingSession.from_dict(s.to_dict())
    assert d.options == s.options and not d.shows_baseline(d.cases[0])
    with pytest.raises(UnknownCaseError, match="re-read"):
        new_session(study, reread_codes=("C000",))
    with pytest.raises(ValueError, match="reread_fraction"):
        new_session(study, reread_fraction=1.5)
    # baseline beside follow-ups when the iron question is asked (default on)
    s = new_session(study)
    follow = [c for c in s.cases if not c.is_baseline]
    assert follow and all(s.shows_baseline(c) for c in follow)
    assert not any(s.shows_baseline(c) for c in s.cases if c.is_baseline)


def test_unknown_keys_survive_and_newer_version_refused(study):
    d = new_session(study).to_dict()
    d["package"] = {"exported": "2026-01-01"}
    assert ReadingSession.from_dict(d).to_dict()["package"] == {"exported": "2026-01-01"}
    with pytest.raises(ValueError, match="newer"):
        ReadingSession.from_dict({**d, "version": 99})


# ------------------------------------------------------------------------------------------------ answers

def test_submit_locks_and_records(study):
    ws = Workspace(user="coordinator")
    s = new_session(study)
    store_session(ws, s)
    prog = ReaderProgress(s, ws)
    first = prog.next_case("rk")
    assert first.code == s.order_for("rk")[0] and prog.progress("rk") == (0, 10)
    rec = prog.submit("rk", first.code, full_answer(2), 41.5, now=T0)
    assert rec.submitted == "2026-01-05T09:00:00.000Z" and rec.duration_s == 41.5
    assert rec.values["pfirrmann"] == {"value": 3, "confidence": None}
    assert rec.values["iron_presence"] == {"value": 2, "confidence": 3}
    assert rec.values["disc_height"]["value"] == {"value": 8.5, "DHa": 9.0, "DHm": 8.5, "DHp": 6.5}
    assert prog.progress("rk") == (1, 10) and prog.progress("am") == (0, 10)
    assert prog.next_case("rk").code == s.order_for("rk")[1]
    with pytest.raises(AnswerLockedError, match="locked"):
        prog.submit("rk", first.code, full_answer(3), 5.0, now=T0)
    assert s.record("rk", first.code).value("pfirrmann") == 3
    # stored in the workspace on submit
    assert ws.is_dirty and ws.reading[s.id]["answers"][0]["case"] == first.code
    entry = ws.audit[-1]
    assert (entry.user, entry.action, entry.target) == ("rk", "reading submit", first.code)
    new = json.loads(entry.new)
    assert new["read"] == 1 and new["session"] == s.id and set(new["answers"]) == {q.id for q in s.questions}
    assert "PAT" not in entry.target and "MUELLER" not in entry.new
    # other readers' answers are separate
    assert s.record("am", first.code) is None
    # unknown reader, unknown case, out of order
    with pytest.raises(UnknownReaderError, match="not a reader"):
        prog.submit("zz", first.code, full_answer(), 1.0, now=T0)
    with pytest.raises(UnknownCaseError):
        prog.submit("rk", "C0000", full_answer(), 1.0, now=T0)
    with pytest.raises(CaseOrderError, match="read .* first"):
        prog.submit("rk", s.order_for("rk")[5], full_answer(), 1.0, now=T0)
    prog.submit("rk", s.order_for("rk")[5], full_answer(), 1.0, now=T0, in_order=False)
    with pytest.raises(ValueError, match="duration"):
        prog.submit("rk", s.order_for("rk")[1], full_answer(), -1.0, now=T0)


def test_change_allowed_keeps_old_value(study):
    ws = Workspace(user="coordinator")
    s = new_session(study, allow_change_after_submit=True)
    prog = ReaderProgress(s, ws)
    code = prog.next_case("am").code
    prog.submit("am", code, full_answer(0), 20.0, now=T0)
    n_audit = len(ws.audit)
    later = T0 + dt.timedelta(hours=1)
    changed = dict(full_answer(0), pfirrmann=4)
    rec = prog.submit("am", code, changed, 5.0, now=later)
    assert rec.value("pfirrmann") == 4 and rec.duration_s == 25.0
    assert rec.modified == "2026-01-05T10:00:00.000Z" and rec.submitted == "2026-01-05T09:00:00.000Z"
    assert rec.changes == [{"time": "2026-01-05T10:00:00.000Z", "question": "pfirrmann",
                            "old": {"value": 1, "confidence": None}, "new": {"value": 4, "confidence": None}}]
    assert rec.answered_at("pfirrmann") == rec.modified and rec.answered_at("comment") == rec.submitted
    new_entries = ws.audit[n_audit:]
    assert [(e.action, e.target, e.user) for e in new_entries] == [
        ("reading answer changed", f"{code}/pfirrmann", "am")]
    assert json.loads(new_entries[0].old) == {"value": 1, "confidence": None}
    assert json.loads(new_entries[0].new) == {"value": 4, "confidence": None}
    # the same answers again: no change, no audit entry
    prog.submit("am", code, changed, 1.0, now=later)
    assert len(ws.audit) == n_audit + 1


def test_required_and_empty_confirmation(study):
    s = new_session(study)
    prog = ReaderProgress(s)
    code = prog.next_case("rk").code
    with pytest.raises(MissingAnswersError, match="required question.*pfirrmann") as e:
        prog.submit("rk", code, {**full_answer(), "pfirrmann": None}, 1.0, now=T0)
    assert e.value.questions == ["pfirrmann"]
    ans = full_answer()
    del ans["comment"]
    with pytest.raises(EmptyAnswersError, match="left empty: comment") as e:
        prog.submit("rk", code, ans, 1.0, now=T0)
    assert e.value.questions == ["comment"]
    with pytest.raises(EmptyAnswersError):
        prog.submit("rk", code, {**ans, "comment": "   "}, 1.0, now=T0)
    with pytest.raises(AnswerError, match="give a confidence"):
        prog.submit("rk", code, {**full_answer(), "iron_presence": 2}, 1.0, now=T0)
    with pytest.raises(AnswerError, match="unknown question.*hiz.*not an option") :
        prog.submit("rk", code, {**full_answer(), "hiz": True, "pfirrmann": 9}, 1.0, now=T0)
    assert prog.progress("rk") == (0, 10)  # nothing stored by the failures
    rec = prog.submit("rk", code, ans, 1.0, now=T0, confirm_empty=True)
    assert rec.values["comment"] == {"value": None, "confidence": None}
    # a (value, confidence) tuple is accepted for a question with a confidence scale
    code2 = prog.next_case("rk").code
    rec2 = prog.submit("rk", code2, {**full_answer(), "iron_presence": (3, 4)}, 1.0, now=T0)
    assert rec2.values["iron_presence"] == {"value": 3, "confidence": 4}


def test_washout_gate(study):
    s = new_session(study, reread_fraction=0.3)
    prog = ReaderProgress(s)
    with pytest.raises(ReadGateError, match="10 of 10 cases are still to read"):
        prog.next_case("rk", 2, now=T0)
    last = read_all(prog, "rk")
    assert prog.is_complete("rk") and prog.next_case("rk") is None
    opens = last + dt.timedelta(days=28)
    assert prog.reread_opens_at("rk") == opens
    assert not prog.reread_open("rk", opens - dt.timedelta(minutes=1))
    with pytest.raises(ReadGateError, match=f"opens on {opens.date().isoformat()}") as e:
        prog.submit("rk", s.order_for("rk", 2)[0], full_answer(), 1.0, read=2, now=last + dt.timedelta(days=27))
    assert e.value.opens == opens
    assert prog.reread_open("rk", opens) and prog.reread_open("rk", opens.replace(tzinfo=None))
    assert not prog.reread_open("am", opens + dt.timedelta(days=400))  # am has not read yet
    assert prog.next_case("rk", 2, now=opens).code == s.order_for("rk", 2)[0]
    assert prog.progress("rk", 2) == (0, 3)
    read_all(prog, "rk", 2, start=opens)
    assert prog.progress("rk", 2) == (3, 3)
    # a session without re-read has no read 2
    s2 = new_session(study)
    p2 = ReaderProgress(s2)
    read_all(p2, "rk")
    with pytest.raises(ReadGateError, match="no re-read"):
        p2.check_read_open("rk", 2, T0 + dt.timedelta(days=365))


def test_reread_locks_first_read_changes(study):
    s = new_session(study, reread_fraction=0.2, allow_change_after_submit=True, washout_days=1)
    prog = ReaderProgress(s)
    last = read_all(prog, "rk")
    # changing a read-1 answer restarts the washout
    code0 = s.order_for("rk")[0]
    prog.submit("rk", code0, full_answer(3), 2.0, now=last + dt.timedelta(hours=12))
    assert prog.reread_opens_at("rk") == last + dt.timedelta(hours=36)
    t2 = last + dt.timedelta(days=3)
    first2 = s.order_for("rk", 2)[0]
    prog.submit("rk", first2, full_answer(1), 3.0, read=2, now=t2)
    with pytest.raises(AnswerLockedError, match="re-read started"):
        prog.submit("rk", code0, full_answer(4), 2.0, now=t2)


def test_resume_after_restart(study, tmp_path):
    ws = Workspace(user="coordinator")
    s = new_session(study)
    store_session(ws, s)
    prog = ReaderProgress(s, ws)
    order = s.order_for("am")
    for i, code in enumerate(order[:4]):
        prog.submit("am", code, full_answer(i), 10.0, now=T0 + dt.timedelta(minutes=i))
    path = tmp_path / "w.dvw"
    store.save(ws.to_data(), path)
    # "crash": a fresh process loads the file
    ws2 = Workspace.from_data(store.load(path).data)
    s2 = load_session(ws2, s.id)
    p2 = ReaderProgress(s2, ws2)
    assert p2.progress("am") == (4, 10) and p2.next_case("am").code == order[4]
    assert s2.record("am", order[2]).value("pfirrmann") == 3
    with pytest.raises(AnswerLockedError):
        p2.submit("am", order[0], full_answer(), 1.0, now=T0)
    p2.submit("am", order[4], full_answer(), 1.0, now=T0 + dt.timedelta(hours=1))
    assert p2.next_case("am").code == order[5]
    assert ws2.reading[s.id]["answers"][-1]["case"] == order[4]


def test_identify_and_audit_of_creation(study):
    ws = Workspace(user="coordinator")
    s = new_session(study, readers=())
    store_session(ws, s)
    assert ws.audit[-1].action == "reading session created" and ws.audit[-1].target == s.id
    prog = ReaderProgress(s, ws)
    with pytest.raises(UnknownReaderError):
        prog.order("  rk")
    assert prog.identify(" rk ") == "rk" and s.readers == ["rk"]
    assert ws.audit[-1].action == "reading reader added" and ws.audit[-1].new == "rk"
    n = len(ws.audit)
    prog.identify("rk")
    assert len(ws.audit) == n
    assert load_session(ws, s.id).readers == ["rk"]


# ------------------------------------------------------------------------------------------------ blinding

def test_neutral_titles(study):
    s = new_session(study)
    e_t2, e_t1 = study.patients[0].visits[1].series
    assert neutral_series_title(e_t2) == "T2 sagittal"
    assert neutral_series_title(e_t1, "ax") == "T1 axial"
    assert neutral_series_title("T2* GRE", "sag") == "T2* GRE sagittal"
    assert neutral_series_title("multi-echo GRE", "sag", 2) == "multi-echo GRE sagittal (2)"
    assert neutral_series_title("other", "cor") == "series coronal"
    case = s.case(s.order_for("rk")[3])
    assert blinded_title(s, case, "rk") == f"Blinded read — case {case.code} (4 of 10)"
    assert blinded_title(s, case.code) == f"Blinded read — case {case.code}"
    for c in s.cases:
        forbidden = identifying_strings(study, c)
        shown = " | ".join([blinded_title(s, c, "rk"), blinded_title(s, c, "am")]
                           + [neutral_series_title(e) for v in study.visits() for e in v.series])
        assert find_leaks(shown, forbidden) == []


def test_identifying_strings(study):
    s = new_session(study)
    case = next(c for c in s.cases if c.patient_id == "PAT-0007" and c.days == 95)
    bad = identifying_strings(study, case)
    low = {b.lower() for b in bad}
    for expected in ("PAT-0007", "MUELLER^JUERGEN", "MUELLER JUERGEN", "JUERGEN MUELLER", "MUELLER",
                     "20230420", "2023-04-20", "20.04.2023", "20230115", "2024-01-10", "3 m", "baseline", "12 m",
                     "day 95", "95 days", "T2 TSE SAG PAT-0007 FU1", "T1_tse_sag_kontrolle", "LWS PAT-0007 Kontrolle",
                     case.visit_id, "/data/MUELLER/20230420/1.2.826.07.2.1_0.dcm", "1.2.826.07.2.1_0.dcm",
                     "/data/MUELLER/20230420"):
        assert expected.lower() in low, expected
    assert "SCHMIDT" not in bad and "" not in bad
    assert len(bad) == len(low)
    assert bad == sorted(bad, key=lambda x: (-len(x), x))
    assert find_leaks("Case C123 · T2 sagittal · 20.04.2023", bad) == ["20.04.2023"]
    assert find_leaks("13 m", ["3 m"]) == [] and find_leaks("at 3 m.", ["3 m"]) == ["3 m"]
    assert find_leaks("mueller^juergen", ["MUELLER^JUERGEN"]) == ["MUELLER^JUERGEN"]


# ------------------------------------------------------------------------------------------------ export

def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_answers_csv(study, tmp_path):
    s = new_session(study, reread_fraction=0.2, washout_days=0)
    prog = ReaderProgress(s)
    read_all(prog, "rk")
    read_all(prog, "am")
    read_all(prog, "rk", 2, start=T0 + dt.timedelta(days=1))
    p = answers_csv(s, tmp_path / "answers.csv")
    assert p.read_text(encoding="utf-8").splitlines()[0] == ",".join(ANSWER_COLUMNS)
    rows = read_csv(p)
    assert len(rows) == (10 + 10 + 2) * 4
    rk1 = [r for r in rows if r["reader"] == "rk" and r["read"] == "1"]
    assert [r["case_code"] for r in rk1[::4]] == s.order_for("rk")
    first = {r["question"]: r for r in rk1[:4]}
    assert first["pfirrmann"]["answer"] == "1" and first["pfirrmann"]["confidence"] == ""
    assert first["iron_presence"]["answer"] == "0" and first["iron_presence"]["confidence"] == "1"
    assert first["disc_height"]["answer"] == "8.0"
    assert json.loads(first["disc_height"]["detail"]) == {"DHa": 9.0, "DHm": 8.5, "DHp": 6.5}
    assert first["comment"]["answer"] == "ok" and first["comment"]["detail"] == ""
    assert first["pfirrmann"]["time_s"] == "30.000" and first["pfirrmann"]["timestamp"] == "2026-01-05T09:00:00.000Z"
    rk2 = [r for r in rows if r["reader"] == "rk" and r["read"] == "2"]
    assert [r["case_code"] for r in rk2[::4]] == s.order_for("rk", 2)
    assert {r["reader"] for r in rows} == {"rk", "am"}
    # no identity in the answers file
    text = p.read_text(encoding="utf-8")
    for c in s.cases:
        assert c.patient_id not in text and c.visit_id not in text and c.visit_date not in text


def test_unblinding_key(study, tmp_path):
    s = new_session(study, reread_fraction=0.2)
    rows = read_csv(unblinding_key_csv(s, tmp_path / "key.csv"))
    assert list(rows[0]) == list(KEY_COLUMNS)
    assert [r["case_code"] for r in rows] == s.codes
    by = {r["case_code"]: r for r in rows}
    for c in s.cases:
        r = by[c.code]
        assert (r["patient_id"], r["patient_name"], r["visit_id"], r["visit_date"], r["visit_label"], r["days"],
                r["level"]) == (c.patient_id, c.patient_name, c.visit_id, c.visit_date, c.visit_label, str(c.days),
                                c.level)
        assert r["reread"] == ("yes" if c.code in s.reread_codes else "no")
    assert {r["patient_name"] for r in rows} == {"MUELLER^JUERGEN", "SCHMIDT^ANNA"}


# ------------------------------------------------------------------------------------------------ agreement

def constructed_session(n_readers=2):
    """8 cases; readers' Pfirrmann grades and disc heights fixed by hand, re-read of 4 cases."""
    cases = [Case("", f"P{i}", f"1.{i}", visit_date="2024-01-0" + str(i + 1)) for i in range(8)]
    readers = ["r1", "r2", "r3"][:n_readers]
    s = ReadingSession("agree", cases, ["pfirrmann", "modic", "disc_height", "free_text",
                                        Question("hiz", "HIZ", "yesno"),
                                        Question("signs", "Signs", "multi", [Option("a", "a"), Option("b", "b")],
                                                 required=False)],
                       readers, seed=7, options=SessionOptions(reread_codes=(), reread_fraction=0.5, washout_days=0))
    codes = s.codes
    grades = {"r1": [1, 2, 3, 3, 4, 5, 2, 3], "r2": [1, 2, 3, 4, 4, 5, 3, 3], "r3": [2, 2, 3, 4, 5, 5, 2, 3]}
    heights = {"r1": [8.0, 9.1, 7.2, 6.0, 10.3, 5.5, 8.8, 7.7], "r2": [8.2, 9.0, 7.5, 6.3, 10.0, 5.9, 8.6, 7.9],
               "r3": [7.9, 9.4, 7.0, 6.1, 10.6, 5.4, 9.0, 7.5]}
    prog = ReaderProgress(s)
    t = T0
    for r in readers:
        for code in s.order_for(r):
            i = codes.index(code)
            prog.submit(r, code, {"pfirrmann": grades[r][i], "modic_upper": i % 2, "modic_lower": 0,
                                  "disc_height": heights[r][i], "comment": "", "hiz": i % 3 == 0, "signs": ["a"]},
                        10.0, now=t, confirm_empty=True)
            t += dt.timedelta(minutes=1)
    for r in readers:
        for code in s.order_for(r, 2):
            i = codes.index(code)
            g = grades[r][i] if i % 2 else min(5, grades[r][i] + 1)
            prog.submit(r, code, {"pfirrmann": g, "modic_upper": i % 2, "modic_lower": 0,
                                  "disc_height": heights[r][i] + 0.1, "hiz": i % 3 == 0},
                        read=2, duration_s=5.0, now=t + dt.timedelta(days=1), confirm_empty=True)
    return s, grades, heights


def test_rating_matrix_and_pairs():
    s, grades, heights = constructed_session()
    codes, readers, m, cats = rating_matrix(s, "pfirrmann")
    assert codes == s.codes and readers == ["r1", "r2"] and cats == [1, 2, 3, 4, 5]
    assert m.shape == (8, 2) and list(m[:, 0]) == grades["r1"]
    codes, readers, m, cats = rating_matrix(s, "disc_height")
    assert m.dtype == np.float64 and cats is None and np.allclose(m[:, 1], heights["r2"])
    c2, v1, v2 = reread_pairs(s, "disc_height", "r1")
    assert c2 == list(s.reread_codes) and len(c2) == 4 and np.allclose(v2 - v1, 0.1)
    c2, v1, v2 = reread_pairs(s, "pfirrmann", "r2")
    assert v1 == [grades["r2"][s.codes.index(c)] for c in c2]


def test_agreement_report_two_readers(tmp_path):
    s, grades, heights = constructed_session()
    rows = agr.agreement_report(s)
    by = {(r.question, r.scope, r.readers, r.statistic): r for r in rows}
    for w, name in ((None, "Cohen kappa"), ("linear", "Cohen kappa (linear)"),
                    ("quadratic", "Cohen kappa (quadratic)")):
        ref = stats.cohen_kappa(grades["r1"], grades["r2"], categories=[1, 2, 3, 4, 5], weights=w)
        row = by[("pfirrmann", "inter", "r1 vs r2", name)]
        assert row.value == pytest.approx(ref.kappa) and row.n == 8 and row.band == agr.kappa_band(ref.kappa)
    # nominal Modic: unweighted only; yes/no: unweighted; no rows for text and multiple choice
    assert ("modic_upper", "inter", "r1 vs r2", "Cohen kappa") in by
    assert ("modic_upper", "inter", "r1 vs r2", "Cohen kappa (linear)") not in by
    assert by[("modic_upper", "inter", "r1 vs r2", "Cohen kappa")].value == pytest.approx(1.0)
    assert math.isnan(by[("modic_lower", "inter", "r1 vs r2", "Cohen kappa")].value)  # all "none"
    assert by[("hiz", "inter", "r1 vs r2", "Cohen kappa")].value == pytest.approx(1.0)
    assert not any(r.question in ("comment", "signs") for r in rows)
    # measurements: ICCs, SEM/SDC, Bland–Altman
    data = np.column_stack([heights["r1"], heights["r2"]])
    table = stats.icc(data)
    assert by[("disc_height", "inter", "r1, r2", "ICC(A,1)")].value == pytest.approx(table["ICC(A,1)"].value)
    me = stats.measurement_error(data)
    assert by[("disc_height", "inter", "r1, r2", "SDC (mm)")].value == pytest.approx(me.sdc)
    ba = stats.bland_altman(data[:, 0], data[:, 1])
    assert by[("disc_height", "inter", "r1 vs r2", "Bland-Altman bias (mm)")].value == pytest.approx(ba.bias)
    assert by[("disc_height", "inter", "r1 vs r2", "Bland-Altman upper limit (mm)")].value == pytest.approx(ba.loa_high)
    # intra-reader, per reader
    for r in ("r1", "r2"):
        codes, v1, v2 = reread_pairs(s, "pfirrmann", r)
        ref = stats.cohen_kappa(v1, v2, categories=[1, 2, 3, 4, 5], weights="quadratic")
        assert by[("pfirrmann", "intra", r, "Cohen kappa (quadratic)")].value == pytest.approx(ref.kappa)
        assert by[("disc_height", "intra", r, "Bland-Altman bias (mm)")].value == pytest.approx(-0.1)
    out = agr.agreement_csv(rows, tmp_path / "agreement.csv")
    csv_rows = read_csv(out)
    assert list(csv_rows[0]) == list(agr.COLUMNS) and len(csv_rows) == len(rows)
    nan_row = next(r for r in csv_rows if r["question"] == "modic_lower")
    assert nan_row["value"] == "" and "undefined" in nan_row["note"]


def test_agreement_report_three_readers():
    s, grades, _ = constructed_session(3)
    rows = agr.agreement_report(s)
    fl = [r for r in rows if r.statistic == "Fleiss kappa" and r.question == "pfirrmann"]
    assert len(fl) == 1 and fl[0].readers == "r1, r2, r3"
    ref = stats.fleiss_kappa(np.column_stack([grades["r1"], grades["r2"], grades["r3"]]).tolist(),
                             categories=[1, 2, 3, 4, 5])
    assert fl[0].value == pytest.approx(ref.kappa)
    pairs = {r.readers for r in rows
             if r.question == "pfirrmann" and r.scope == "inter" and r.statistic == "Cohen kappa"}
    assert pairs == {"r1 vs r2", "r1 vs r3", "r2 vs r3"}
    icc_rows = [r for r in rows if r.question == "disc_height" and r.scope == "inter" and r.statistic.startswith("ICC")]
    assert len(icc_rows) == 6 and all(r.readers == "r1, r2, r3" for r in icc_rows)
    assert agr.kappa_band(0.5) == "moderate" and agr.kappa_band(-0.1) == "poor" and agr.icc_band(0.95) == "excellent"


def test_agreement_with_too_little_data():
    cases = [Case("", "P1", "1.1"), Case("", "P2", "1.2")]
    s = ReadingSession("tiny", cases, ["disc_height", "pfirrmann"], ["a", "b"], seed=1)
    prog = ReaderProgress(s)
    code = s.codes[0]
    for r in ("a", "b"):
        prog.submit(r, code, {"disc_height": 8.0, "pfirrmann": 2}, 1.0, now=T0, in_order=False)
    rows = agr.agreement_report(s)
    icc_row = next(r for r in rows if r.question == "disc_height")
    assert math.isnan(icc_row.value) and icc_row.n == 1 and "two complete subjects" in icc_row.note
    kappa = next(r for r in rows if r.question == "pfirrmann")
    assert math.isnan(kappa.value) and kappa.n == 1 and "undefined" in kappa.note
    # both cases, identical answers: the statistics are defined or NaN, never an exception
    for r in ("a", "b"):
        prog.submit(r, s.codes[1], {"disc_height": 8.0, "pfirrmann": 2}, 1.0, now=T0, in_order=False)
    assert agr.agreement_report(s)


# ------------------------------------------------------------------------------------------------ stability

GOLDEN_CODES = [f"K{i:02d}" for i in range(12)]


def golden_session():
    return ReadingSession("golden", [Case(c, "P", f"1.{i}") for i, c in enumerate(GOLDEN_CODES)], ["pfirrmann"],
                          ["rk"], seed=20260105, options=SessionOptions(reread_codes=tuple(GOLDEN_CODES[:5])))


def test_order_is_pinned():
    """The order depends on SHA-256 only: pinned here so that a change of the algorithm (which would
    reshuffle running studies) fails loudly."""
    s = golden_session()
    assert s.order_for("rk") == GOLDEN_ORDER_RK
    assert s.order_for("rk", 2) == GOLDEN_REREAD_RK
    assert s.options.allow_change_after_submit is False and s.options.washout_days == 28


def test_order_does_not_depend_on_hash_seed():
    import subprocess
    import sys
    code = ("from tests.core.test_reading import golden_session\n"
            "s = golden_session(); print(','.join(s.order_for('am')))")
    outs = set()
    for seed in ("1", "2"):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**__import__("os").environ, "PYTHONHASHSEED": seed})
        assert r.returncode == 0, r.stderr
        outs.add(r.stdout.strip())
    assert outs == {",".join(golden_session().order_for("am"))}


def test_question_from_dict_rejects_unknown_keys_and_measurement_confidence(study):
    with pytest.raises(ValueError, match="unknown keys"):
        Question.from_dict({"id": "x", "text": "x", "type": "text", "colour": "red"})
    s = new_session(study)
    prog = ReaderProgress(s)
    with pytest.raises(AnswerError, match="no confidence scale"):
        prog.validate({**full_answer(), "disc_height": {"value": 8.0, "confidence": 4}})


GOLDEN_ORDER_RK = ["K00", "K08", "K05", "K04", "K11", "K01", "K09", "K02", "K06", "K03", "K07", "K10"]
GOLDEN_REREAD_RK = ["K04", "K00", "K02", "K03", "K01"]


def test_kappa_ci_in_the_report_is_clipped_to_the_range_of_kappa():
    """κ ± 1.96·SE can pass 1 for high agreement on few cases; the report shows [lo, 1] and says so,
    while discviewer.stats keeps the unclipped Wald interval (equal to statsmodels/SAS)."""
    from types import SimpleNamespace

    from discviewer.reading.agreement import _kappa_ci

    lo, hi, note = _kappa_ci(SimpleNamespace(ci_low=0.62, ci_high=1.07))
    assert (lo, hi) == (0.62, 1.0) and "clipped" in note
    lo, hi, note = _kappa_ci(SimpleNamespace(ci_low=-1.2, ci_high=0.1))
    assert (lo, hi) == (-1.0, 0.1) and note
    assert _kappa_ci(SimpleNamespace(ci_low=0.2, ci_high=0.9)) == (0.2, 0.9, "")


def test_a_missing_gradient_echo_role_is_stood_in_for_by_the_other():
    """The setup's default hanging asks for "T2* GRE"; a study with a multi-echo GRE shows that instead
    (and vice versa), while other roles never stand in for each other."""
    from types import SimpleNamespace as NS

    from discviewer.reading.session import entries_for_role
    from discviewer.roles import Role

    me = NS(role=Role.MULTI_ECHO_GRE, key="me")
    t2 = NS(role=Role.T2_SAG, key="t2")
    assert entries_for_role([t2, me], "T2* GRE") == [me]
    single = NS(role=Role.T2STAR_GRE, key="s")
    assert entries_for_role([single, me], "T2* GRE") == [single]  # its own role first
    assert entries_for_role([t2, single], "multi-echo GRE") == [single]
    assert entries_for_role([me], "T1 sag") == []

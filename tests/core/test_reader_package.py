"""discviewer.reading.package: export a blinded, de-identified reader package from a phantom study, open
it as the reader, answer, export the answers and import them back; the refusals."""
from __future__ import annotations

import copy
import datetime as dt
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from discviewer.deid import date_variants, find_identifying_strings
from discviewer.io import load
from discviewer.reading.answers import ReaderProgress
from discviewer.reading.blinding import identifying_strings
from discviewer.reading.package import (ANSWERS_FILE, AnswerConflictError, DuplicateImportError, ForeignSessionError,
                                        PackageError, PackageLeakError, UnknownPackageError, export_answers,
                                        export_reader_package, import_reader_answers, open_reader_package)
from discviewer.reading.questions import Question
from discviewer.reading.session import (HangingOptions, ReadingSession, SessionOptions, create_session,
                                        load_session, store_session)
from discviewer.study import Study
from discviewer.workspace.project import Workspace
from tests.core.phantom_cache import phantom_scan

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc)
HANGING = HangingOptions(roles=("T2 sag", "multi-echo GRE"), planes=("sag",), show_baseline_for_iron=True)
PATH_RE = re.compile(r"^images/C\d{3,}/s\d{2}/\d{4}\.dcm$")


def answer(i: int) -> dict:
    return {"pfirrmann": 1 + i % 5, "iron_presence": {"value": i % 4, "confidence": 1 + i % 4},
            "comment": f"note {i}"}


def read_cases(prog: ReaderProgress, reader: str, n: int | None = None, read: int = 1, start=T0) -> dt.datetime:
    t = start
    for i, code in enumerate(prog.order(reader, read)[:n]):
        if prog.is_submitted(reader, code, read):
            continue
        prog.submit(reader, code, answer(i + 10 * read), 20.0 + i, read=read, now=t)
        t += dt.timedelta(minutes=3)
    return t


class Coordinator:
    """A fresh coordinator workspace + session (copied from the exported document for each test)."""

    def __init__(self, study: Study, doc: dict, roles=None) -> None:
        self.ws = Workspace(user="coordinator", name="trial")
        self.ws.attach_study(study)
        doc = copy.deepcopy(doc)
        if roles is not None:  # smaller packages for the tests that export again
            doc["options"]["hanging"]["roles"] = list(roles)
        self.session = ReadingSession.from_dict(doc)
        self.ws.reading[self.session.id] = self.session.to_dict()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder, result = phantom_scan(tmp_path_factory)
    study = Study.from_scan(result)
    ws = Workspace(user="coordinator", name="trial")
    ws.attach_study(study)
    session = create_session("Spine trial site Musterstadt", study, ["pfirrmann", "iron_presence", "free_text"],
                             ["rk", "am"], seed=7, options=SessionOptions(reread_fraction=0.4, hanging=HANGING))
    store_session(ws, session)
    # another reader's answers exist already: they must not travel
    read_cases(ReaderProgress(session, ws), "am", 2)
    out = tmp_path_factory.mktemp("packages")
    ex = export_reader_package(ws, session, "rk", out / "pkg-rk", make_zip=True, now=T0)
    return {"folder": folder, "result": result, "study": study, "ws": ws, "session": session,
            "doc": session.to_dict(), "ex": ex}


@pytest.fixture
def pkg_copy(exported, tmp_path) -> Path:
    dst = tmp_path / "reader-machine" / "pkg-rk"
    shutil.copytree(exported["ex"].path, dst)
    return dst


def _forbidden_source_strings(folder: Path, files) -> list[str]:
    out: set[str] = set()
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out.update({str(ds.PatientName), ds.PatientID, ds.AccessionNumber, ds.InstitutionName, ds.StudyDescription,
                    ds.SeriesDescription, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                    ds.FrameOfReferenceUID, ds.Manufacturer, Path(f).stem, Path(f).parent.name,
                    Path(f).parent.parent.name})
        for d in (ds.StudyDate, ds.PatientBirthDate):
            out.update(date_variants(d))
    out.add(str(folder))
    return sorted(s for s in out if s)


# ------------------------------------------------------------------------------------------------ export

def test_package_layout_and_register(exported):
    ex, session, ws = exported["ex"], exported["session"], exported["ws"]
    doc = json.loads((ex.path / "package.json").read_text(encoding="utf-8"))
    assert doc["format"] == "discviewer-reader-package" and doc["version"] == 1
    assert doc["session_id"] == session.id and doc["package_id"] == ex.package_id and doc["reader"] == "rk"
    assert doc["reads"] == {"1": session.order_for("rk", 1)}  # re-read not open yet
    assert doc["options"]["reread_codes"] == []
    assert doc["answers"] == []  # rk has none; "am"'s answers never travel
    assert '"am"' not in json.dumps(doc)
    assert "seed" not in doc  # codes are drawn from the seed in visit order: it stays home
    assert "Musterstadt" not in json.dumps(doc)
    assert [q["id"] for q in doc["questions"]] == [q.id for q in session.questions]
    assert doc["hanging"] == {"roles": ["T2 sag", "multi-echo GRE"], "planes": ["sag"], "comparison_for_iron": True}
    by_code = {c["code"]: c for c in doc["cases"]}
    assert sorted(by_code) == session.codes
    files_on_disk = sorted(p.relative_to(ex.path).as_posix() for p in ex.path.rglob("*.dcm"))
    listed = sorted({f for c in doc["cases"] for s in c["series"] + ((c["comparison"] or {}).get("series") or [])
                     for f in s["files"]})
    assert files_on_disk == listed and len(listed) == ex.files
    assert all(PATH_RE.match(f) for f in listed)
    study = exported["study"]
    for code, c in by_code.items():
        case = session.case(code)
        visit = study.patient(case.patient_id).visit(case.visit_id)
        assert [s["title"] for s in c["series"]] == ["T2 sagittal", "multi-echo GRE sagittal"]
        assert [s["role"] for s in c["series"]] == ["T2 sag", "multi-echo GRE"]
        n_expected = sum(len({f.path for cc in e.echoes for f in cc.frames}) for e in visit.series
                         if e.role.value in HANGING.roles)
        assert sum(len(s["files"]) for s in c["series"]) == n_expected
        # the T1 series is not needed by the hanging: not copied
        assert all(s["role"] != "T1 sag" for s in c["series"])
        if session.shows_baseline(case):
            assert c["comparison"] and len(c["comparison"]["series"]) == 2
            assert c["comparison"]["study_uid"] != c["study_uid"]
        else:
            assert case.is_baseline and c["comparison"] is None
        assert all(f.startswith(f"images/{code}/") for s in c["series"] for f in s["files"])
    # registered in the session and audited
    reg = session.extra["reader_packages"]
    assert [(r["id"], r["reader"]) for r in reg] == [(ex.package_id, "rk")]
    assert "token" not in reg[0] and reg[0]["token_sha256"]
    assert ws.reading[session.id]["reader_packages"][0]["id"] == ex.package_id
    assert any(a.action == "reader package exported" and ex.package_id in a.new for a in ws.audit)
    # the zip holds the same
    with zipfile.ZipFile(ex.zip_path) as zf:
        names = sorted(n.split("/", 1)[1] for n in zf.namelist())
    assert names == sorted(["package.json"] + files_on_disk)


def test_package_holds_no_identifying_string(exported):
    ex, session, study, folder = exported["ex"], exported["session"], exported["study"], exported["folder"]
    src_files = sorted(folder.rglob("*.dcm"))
    substrings = _forbidden_source_strings(folder, src_files)
    words = sorted({s for c in session.cases for s in identifying_strings(study, c)})
    assert "DVPH0-01" in substrings and any("baseline" == w for w in words)
    # positive control: the same check finds them in the sources
    assert find_identifying_strings(src_files[0].parent, substrings)
    assert find_identifying_strings(src_files[0].parent, words, whole_words=True)
    for target in (ex.path, ex.zip_path):
        assert find_identifying_strings(target, substrings) == []
        assert find_identifying_strings(target, words, whole_words=True) == []
    # headers: case code for name and ID, no dates, no scanner make, the neutral title
    src_uids = set()
    for f in src_files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        src_uids |= {ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID}
    sop_by_case: dict[str, set] = {}
    for f in ex.path.rglob("*.dcm"):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        code = f.relative_to(ex.path).parts[1]
        assert str(ds.PatientName) == code == ds.PatientID
        assert ds.SeriesDescription in ("T2 sagittal", "multi-echo GRE sagittal")
        assert ds.PatientIdentityRemoved == "YES" and not ds.StudyDate and "Manufacturer" not in ds
        assert not {ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID} & src_uids
        sop_by_case.setdefault(code, set()).add(ds.SOPInstanceUID)
    # each case has its own UIDs: the baseline shown as comparison does not link to the baseline case
    codes = sorted(sop_by_case)
    for i, a in enumerate(codes):
        for b in codes[i + 1:]:
            assert not sop_by_case[a] & sop_by_case[b]


def test_export_refuses_leaks_and_used_folders(exported, tmp_path):
    study = exported["study"]
    ws = Workspace(user="coordinator")
    ws.attach_study(study)
    leaky = Question("q", "Compare with the DVPH0-01 scan", "yesno")
    s = create_session("x", study, [leaky], ["rk"], seed=3)
    with pytest.raises(PackageLeakError, match="DVPH0-01") as err:
        export_reader_package(ws, s, "rk", tmp_path / "leaky")
    assert err.value.findings
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    assert "reader_packages" not in s.extra
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x.txt").write_text("x")
    with pytest.raises(PackageError, match="not empty"):
        export_reader_package(ws, s, "rk", tmp_path / "used")
    with pytest.raises(KeyError):
        export_reader_package(ws, s, "nobody", tmp_path / "p")


# ------------------------------------------------------------------------------------------------ reader side

def test_open_package_reads_like_the_coordinator(exported, pkg_copy):
    session, study = exported["session"], exported["study"]
    pkg = open_reader_package(pkg_copy)
    assert pkg.package_id == exported["ex"].package_id and pkg.reader == "rk" and pkg.session.id == session.id
    local = pkg.session
    assert local.codes == session.codes
    assert local.order_for("rk", 1) == session.order_for("rk", 1)
    assert pkg.progress.next_case("rk").code == session.order_for("rk", 1)[0]
    assert local.readers == ["rk"] and not local.records()
    ws_study = pkg.workspace.study
    assert sorted(p.id for p in ws_study.patients) == session.codes
    for code in session.codes:
        case, orig_case = local.case(code), session.case(code)
        patient = ws_study.patient(code)
        assert local.shows_baseline(case) == session.shows_baseline(orig_case)
        if local.shows_baseline(case):
            assert patient.baseline.id == case.baseline_visit_id != case.visit_id
        visit = patient.visit(case.visit_id)
        assert [visit.entry(r.key).role.value for r in case.series] == ["T2 sag", "multi-echo GRE"]
        own = pkg.series(code, comparison=False)
        assert [s.title for s in own] == ["T2 sagittal", "multi-echo GRE sagittal"]
        assert all(f.exists() for s in pkg.series(code) for f in s.files)
    # a volume of the package equals the source volume (pixels and geometry)
    code = session.order_for("rk", 1)[0]
    orig_case = session.case(code)
    src_entry = [e for e in study.patient(orig_case.patient_id).visit(orig_case.visit_id).series
                 if e.role.value == "T2 sag"][0]
    case = local.case(code)
    pkg_entry = ws_study.patient(code).visit(case.visit_id).entry(case.series[0].key)
    a, b = load(src_entry.candidate()), load(pkg_entry.candidate())
    assert np.array_equal(a.array, b.array) and np.array_equal(a.affine, b.affine)
    gre_entry = ws_study.patient(code).visit(case.visit_id).entry(case.series[1].key)
    assert pkg_entry.n_echoes == 1 and gre_entry.n_echoes == 5
    pkg.close()


def test_answers_are_saved_on_submit_and_resume(exported, pkg_copy):
    pkg = open_reader_package(pkg_copy)
    order = pkg.session.order_for("rk")
    assert not (pkg_copy / ANSWERS_FILE).exists()
    read_cases(pkg.progress, "rk", 2)
    saved = json.loads((pkg_copy / ANSWERS_FILE).read_text(encoding="utf-8"))
    assert [a["case"] for a in saved["answers"]] == order[:2]
    assert saved["package_id"] == pkg.package_id and saved["session_id"] == pkg.session_id
    assert [e["action"] for e in saved["audit"]] == ["reading submit", "reading submit"]
    assert not list(pkg_copy.glob("*.tmp*"))
    pkg.close()
    again = open_reader_package(pkg_copy)  # after a restart: resumes at the third case
    assert again.progress.next_case("rk").code == order[2]
    assert again.progress.progress("rk") == (2, len(order))
    assert len(again.workspace.audit) == 2
    read_cases(again.progress, "rk")
    assert again.progress.is_complete("rk")


def test_round_trip_into_the_coordinator(exported, pkg_copy, tmp_path):
    pkg = open_reader_package(pkg_copy)
    end = read_cases(pkg.progress, "rk")
    ret = export_answers(pkg, tmp_path / "returned")
    assert ret.name == f"answers-rk-{pkg.package_id[:8]}.json"
    doc = json.loads(ret.read_text(encoding="utf-8"))
    assert doc["format"] == "discviewer-reader-answers" and doc["reader"] == "rk"
    assert {a["case"] for a in doc["answers"]} == set(pkg.session.codes)
    assert all(a["read"] == 1 and a["duration_s"] > 0 and a["submitted"].endswith("Z") for a in doc["answers"])
    # the return file carries nothing identifying either
    folder = exported["folder"]
    assert find_identifying_strings(ret, _forbidden_source_strings(folder, sorted(folder.rglob("*.dcm")))) == []

    co = Coordinator(exported["study"], exported["doc"])
    res = import_reader_answers(co.ws, co.session, ret, now=end)
    assert sorted(res.added) == sorted((1, c) for c in co.session.codes) and not res.updated
    local = {k: v.to_dict() for k, v in pkg.session.answers.items()}
    imported = {k: v.to_dict() for k, v in co.session.answers.items() if k[0] == "rk"}
    assert imported == local
    # the other reader's answers are untouched
    assert len(co.session.records("am")) == 2
    # stored in the workspace document as if submitted locally, and audited as imported
    stored = load_session(co.ws, co.session.id)
    assert {k: v.to_dict() for k, v in stored.answers.items() if k[0] == "rk"} == local
    submits = [a for a in co.ws.audit if a.action == "reading submit"]
    assert len(submits) == len(local)
    assert all(a.user == "rk" and f"imported from package {pkg.package_id}" in a.new for a in submits)
    assert any(a.action == "reading answers imported" for a in co.ws.audit)
    assert co.ws.is_dirty
    # the coordinator's progress sees rk as done with read 1
    assert ReaderProgress(co.session).is_complete("rk", 1)
    reg = co.session.extra["reader_packages"][0]
    assert len(reg["imports"]) == 1 and reg["imports"][0]["file"] == ret.name

    # the same file again: refused as a duplicate, nothing changes
    n_audit = len(co.ws.audit)
    with pytest.raises(DuplicateImportError, match=ret.name):
        import_reader_answers(co.ws, co.session, ret)
    assert len(co.ws.audit) == n_audit


def test_partial_returns_import_only_what_is_new(exported, pkg_copy, tmp_path):
    pkg = open_reader_package(pkg_copy)
    read_cases(pkg.progress, "rk", 2)
    first = export_answers(pkg, tmp_path / "a")
    read_cases(pkg.progress, "rk", 4)
    second = export_answers(pkg, tmp_path / "b")
    co = Coordinator(exported["study"], exported["doc"])
    assert len(import_reader_answers(co.ws, co.session, first).added) == 2
    res = import_reader_answers(co.ws, co.session, second)
    assert len(res.added) == 2 and len(res.unchanged) == 2
    with pytest.raises(DuplicateImportError):
        import_reader_answers(co.ws, co.session, first)
    assert len(co.session.records("rk")) == 4


def test_refusals(exported, pkg_copy, tmp_path):
    pkg = open_reader_package(pkg_copy)
    read_cases(pkg.progress, "rk", 3)
    ret = export_answers(pkg, tmp_path)
    good = json.loads(ret.read_text(encoding="utf-8"))

    def variant(name: str, change) -> Path:
        d = copy.deepcopy(good)
        change(d)
        p = tmp_path / name
        p.write_text(json.dumps(d), encoding="utf-8")
        return p

    co = Coordinator(exported["study"], exported["doc"])
    # another session (same study, its own id)
    other = create_session("other", exported["study"], ["pfirrmann"], ["rk"], seed=7)
    with pytest.raises(ForeignSessionError, match=ret.name):
        import_reader_answers(co.ws, other, ret)
    # a package id this session never issued
    forged = variant("forged.json", lambda d: d.update(package_id="0" * 32))
    with pytest.raises(UnknownPackageError, match="forged.json.*not issued"):
        import_reader_answers(co.ws, co.session, forged)
    # the right id with a wrong token (an altered file)
    with pytest.raises(UnknownPackageError, match="token"):
        import_reader_answers(co.ws, co.session, variant("token.json", lambda d: d.update(token="ab" * 16)))
    # another reader named in the file / in a record
    with pytest.raises(PackageError, match="issued to reader 'rk'"):
        import_reader_answers(co.ws, co.session, variant("reader.json", lambda d: d.update(reader="am")))
    with pytest.raises(PackageError, match="not the package's reader"):
        import_reader_answers(co.ws, co.session, variant("rec.json", lambda d: d["answers"][0].update(reader="am")))
    # an answer the questions reject, a case not in the session
    with pytest.raises(PackageError, match="refused"):
        import_reader_answers(co.ws, co.session, variant(
            "bad.json", lambda d: d["answers"][0]["values"]["pfirrmann"].update(value=9)))
    with pytest.raises(PackageError, match="not part of this package"):
        import_reader_answers(co.ws, co.session, variant("case.json", lambda d: d["answers"][0].update(case="C000")))
    # not an answers file at all
    junk = tmp_path / "junk.json"
    junk.write_text("{\"format\": \"something else\"}")
    with pytest.raises(PackageError, match="junk.json: not a discviewer answers file"):
        import_reader_answers(co.ws, co.session, junk)
    assert not co.session.records("rk")  # none of the refusals stored anything
    # answers that contradict what the coordinator already holds
    code = good["answers"][0]["case"]
    ReaderProgress(co.session, co.ws).submit("rk", code, answer(3), 5.0, now=T0)
    with pytest.raises(AnswerConflictError, match=code):
        import_reader_answers(co.ws, co.session, ret)
    assert len(co.session.records("rk")) == 1


def test_open_refuses_what_is_not_a_package(tmp_path, exported):
    with pytest.raises(PackageError, match="not a discviewer reader package"):
        open_reader_package(tmp_path)
    (tmp_path / "package.json").write_text(json.dumps({"format": "nope"}))
    with pytest.raises(PackageError, match="not a discviewer reader package"):
        open_reader_package(tmp_path)
    # the zip opens (unpacked beside itself once)
    z = tmp_path / "z" / exported["ex"].zip_path.name
    z.parent.mkdir()
    shutil.copy(exported["ex"].zip_path, z)
    pkg = open_reader_package(z)
    assert pkg.path == z.parent / exported["ex"].path.name and pkg.package_id == exported["ex"].package_id


def test_reread_package_after_the_washout(exported, pkg_copy, tmp_path):
    pkg = open_reader_package(pkg_copy)
    end = read_cases(pkg.progress, "rk")
    co = Coordinator(exported["study"], exported["doc"], roles=["T2 sag"])
    import_reader_answers(co.ws, co.session, export_answers(pkg, tmp_path / "r1"))
    reread = co.session.reread_codes
    assert reread
    # before the washout the next package has read 1 only; after it, the re-read too
    early = export_reader_package(co.ws, co.session, "rk", tmp_path / "early", now=end + dt.timedelta(days=3))
    assert set(early.reads) == {1}
    later = end + dt.timedelta(days=29)
    ex2 = export_reader_package(co.ws, co.session, "rk", tmp_path / "reread", now=later)
    assert ex2.reads[2] == co.session.order_for("rk", 2)
    pkg2 = open_reader_package(ex2.path)
    assert pkg2.progress.is_complete("rk", 1)  # the reader's read-1 answers came along
    assert pkg2.progress.reread_open("rk", later)
    t = later
    for i, code in enumerate(pkg2.progress.order("rk", 2)):
        pkg2.progress.submit("rk", code, answer(i + 1), 15.0, read=2, now=t)
        t += dt.timedelta(minutes=2)
    res = import_reader_answers(co.ws, co.session, export_answers(pkg2, tmp_path / "r2"))
    assert sorted(res.added) == sorted((2, c) for c in reread)
    assert len(res.unchanged) == len(co.session.codes)
    assert {k: v.to_dict() for k, v in co.session.answers.items() if k[0] == "rk"} == \
        {k: v.to_dict() for k, v in pkg2.session.answers.items()}
    assert {r["id"] for r in co.session.extra["reader_packages"]} == {exported["ex"].package_id, early.package_id,
                                                                      ex2.package_id}

"""Reader packages: blinded, de-identified copies of one reader's cases for another workstation, and the
way their answers come back.

Coordinator side
----------------
`export_reader_package(workspace, session, reader, dest_dir)` writes the folder `dest_dir` (and, with
``make_zip=True``, ``dest_dir + ".zip"``):

```
dest_dir/
  package.json                     what the reader's discviewer opens (below)
  images/<case code>/s01/0001.dcm  de-identified copies (discviewer.deid, PS3.15 Basic Profile)
```
Only the series the hanging needs are copied: the entries of the case's visit whose role is one of
`options.hanging.roles` (those whose acquisition plane is one of `hanging.planes` when any is), and the
same for the patient's baseline visit when `session.shows_baseline(case)` (the iron question with
"show baseline" on). Every case is de-identified with its own secret salt, so its UIDs are consistent
inside the case (series, frames of reference, references) but link to nothing outside it — not to the
sources, not to another case that shows the same visit. Patient's Name and ID become the case code,
Series Description the neutral title ("T2 sagittal"), dates are removed, and the scanner's make and
model are dropped too (the site is not the reader's business). File and folder names are the package's
own. Before the folder is moved into place, it is checked with `deid.find_identifying_strings` against
`blinding.identifying_strings` of every case (whole words) and the source paths, names, IDs, UIDs and
dates (substrings); a hit aborts the export (`PackageLeakError`) and nothing is left behind.

**package.json** (UTF-8):

```
{"format": "discviewer-reader-package", "version": 1, "package_id": "<uuid4 hex>", "token": "<hex>",
 "session_id": "<session id>", "reader": "rk", "created": "<UTC ISO>",
 "notice": "Research use only — not for diagnosis",
 "questions": [Question.to_dict(), …],
 "options": {"allow_change_after_submit": false, "washout_days": 28, "reread_codes": [...]},
 "hanging": {"roles": ["T2 sag"], "planes": ["sag"], "comparison_for_iron": true},
 "reads": {"1": ["C417", …], "2": […]},        the reader's order; "2" only when the re-read is open
 "answers": [AnswerRecord.to_dict(), …],       this reader's own earlier answers (resume, re-read gate)
 "cases": [{"code": "C417", "level": "L4/L5" | null, "study_uid": "2.25…",
            "series": [{"title": "T2 sagittal", "role": "T2 sag", "plane": "sag", "series_uid": "2.25…",
                        "files": ["images/C417/s01/0001.dcm", …]}, …],
            "comparison": {"study_uid": "2.25…", "series": [… same form …]} | null}, …]}
```
The "comparison" series are the patient's baseline shown beside a follow-up (never called so in the
package). The session's name, other readers and their answers never leave the coordinator, and
neither does the session **seed**: case codes are drawn from it in the order the cases were built
(patient, then visit date), so with the seed a reader could tell which code is a baseline. The
reader's order travels as the list itself ("reads"). The
session keeps a register of issued packages in its document (`extra["reader_packages"]`: id, reader,
SHA-256 of the token, reads, creation time and every import), and the audit log says
"reader package exported".

Reader side
-----------
`open_reader_package(path)` (the folder or the .zip, which is unpacked beside itself once) gives a
`ReaderPackage`: a `Workspace` holding a study scanned from the package images (one patient per case
code; the comparison visit first) and a local `PackageSession` (a `ReadingSession` with the same id,
questions, case codes and re-read subset, whose `order_for` returns the package's orders), so
`ReaderProgress` gives the same order, locking and washout gate as on the coordinator's machine. Use
`package.session` itself: a session rebuilt from its document would shuffle with its own seed. `package.progress.submit(...)` stores each answer and at once writes
`answers.json` in the package folder (`discviewer.atomic`: temp file + `os.replace`), so a crash loses nothing; opening the
package again resumes. `export_answers(package, dest=None)` writes the return file
``answers-<reader>-<package id[:8]>.json`` (format "discviewer-reader-answers": session id, package
id, token, reader, export time, the reader's answer records — case codes, values, confidences,
durations, submit and change times, read numbers — and the reader-side audit).

Back at the coordinator
-----------------------
`import_reader_answers(workspace, session, answers_file)` refuses, naming the file and the reason:
a file that is not an answers file; answers of another session (`ForeignSessionError`); a package id
this session did not issue, or a token that does not match it (`UnknownPackageError`); records of
another reader, cases not in the package, answers the questions reject (`PackageError`); answers that
contradict answers already stored (`AnswerConflictError`). **Duplicates are refused**: a file that adds
nothing the session does not already hold raises `DuplicateImportError` and changes nothing; a later
export of the same package that adds cases (or, when changes are allowed, later changes of a case)
imports only what is new. Imported answers are stored exactly as submitted on the reader's machine
(submit times, durations, change history) with the same audit actions as a local submit
("reading submit", "reading answer changed"), whose text says "imported from package <id>", plus one
"reading answers imported" entry per file.

Core module: stdlib + discviewer core (pydicom through `discviewer.deid`); no Qt, no VTK.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import re
import secrets
import shutil
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import discviewer
from discviewer.atomic import atomic_path, atomic_write
from discviewer.deid import Deidentifier, date_variants, deidentify_file, find_identifying_strings
from discviewer.reading.answers import ReaderProgress
from discviewer.reading.blinding import identifying_strings, neutral_series_title
from discviewer.reading.questions import AnswerError, Question
from discviewer.reading.session import (AnswerRecord, Case, HangingOptions, ReadingError, ReadingSession,
                                        SeriesRef, SessionOptions, entries_for_role, store_session, utc_iso,
                                        utc_now)
from discviewer.workspace.data import AuditEntry
from discviewer.workspace.project import Workspace

PACKAGE_FORMAT = "discviewer-reader-package"
ANSWERS_FORMAT = "discviewer-reader-answers"
VERSION = 1
PACKAGE_FILE = "package.json"
ANSWERS_FILE = "answers.json"
REGISTER_KEY = "reader_packages"  # in ReadingSession.extra

#: attributes removed from package images beyond the Basic Profile (scanner make and model tell the site)
PACKAGE_REMOVE = ("Manufacturer", "ManufacturerModelName", "SoftwareVersions", "DeviceSerialNumber",
                  "StationName", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName")


class PackageError(ReadingError):
    """A reader package or answers file that cannot be used (the message names the file and why)."""


class PackageLeakError(PackageError):
    """The export found an identifying string in what it was about to hand out."""

    def __init__(self, message: str, findings: list) -> None:
        super().__init__(message)
        self.findings = findings


class ForeignSessionError(PackageError):
    """Answers of another reading session."""


class UnknownPackageError(PackageError):
    """A package id this session never issued (or a token that does not match it)."""


class DuplicateImportError(PackageError):
    """Every answer of the file is already in the session."""


class AnswerConflictError(PackageError):
    """The file's answers contradict answers already stored for the same reader, read and case."""


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_json_atomic(path: Path, doc: dict) -> None:
    with atomic_write(path, "w", newline="\n") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1, sort_keys=False)
        fh.write("\n")


# ------------------------------------------------------------------------------------------------ export

@dataclass
class ExportedPackage:
    """What `export_reader_package` wrote."""

    path: Path
    package_id: str
    reader: str
    reads: dict[int, list[str]]
    files: int
    zip_path: Path | None = None

    @property
    def codes(self) -> list[str]:
        return sorted({c for codes in self.reads.values() for c in codes})


def _hanging_entries(visit, hanging: HangingOptions) -> list:
    """The visit's series entries the hanging shows: by role (in the hanging's order), preferring
    entries acquired in one of the hanging's planes when there are any."""
    out = []
    for role in hanging.roles:  # a missing gradient-echo role is stood in for by the other (session.ROLE_STAND_INS)
        entries = entries_for_role(visit.series, role)
        in_plane = [e for e in entries if e.plane in hanging.planes]
        out += [e for e in (in_plane or entries) if e not in out]
    return out


def _entry_files(entry) -> list[str]:
    """The source files of a series entry (all echoes), in frame order, each file once."""
    seen: dict[str, None] = {}
    for c in entry.echoes:
        for f in c.frames:
            seen.setdefault(str(f.path), None)
    return list(seen)


def _source_forbidden(study, case: Case) -> list[str]:
    """Substring-matched identifying strings of a case's patient: IDs, names, UIDs, paths, file names
    and every date spelling (from the scan's headers)."""
    out: list[str] = [case.patient_id, case.visit_id, case.baseline_visit_id]
    if case.visit_date:
        out += date_variants(case.visit_date)
    try:
        patient = study.patient(case.patient_id)
    except KeyError:
        return [s for s in out if s]
    for v in patient.visits:
        out.append(v.id)
        if v.date is not None:
            out += date_variants(v.date)
        for e in v.series:
            out.append(e.series_uid)
            for c in e.echoes:
                info = c.info
                out += [info.patient_id, info.frame_of_reference_uid, info.study_uid, info.series_uid]
                if info.study_date:
                    out += date_variants(info.study_date)
                for f in c.frames:
                    out += [f.sop_uid, os.path.basename(str(f.path))]
    return [s for s in dict.fromkeys(out) if s and len(s) >= 4]


def export_reader_package(workspace, session: ReadingSession, reader: str, dest_dir, *, make_zip: bool = False,
                          now: _dt.datetime | None = None, check: bool = True) -> ExportedPackage:
    """Write the reader package of `reader` into the new folder `dest_dir` (see the module docstring)
    and register it in the session (stored back into `workspace`, audited). Read 1 is always in it;
    read 2 when the re-read is open for this reader at `now`."""
    reader = session.check_reader(reader)
    study = getattr(workspace, "study", None)
    if study is None:
        raise PackageError("the workspace has no study loaded: scan the sources before exporting a package")
    dest = Path(dest_dir)
    if dest.exists() and any(dest.iterdir()):
        raise PackageError(f"{dest}: the folder exists and is not empty; choose a new folder")
    when = utc_now(now)
    progress = ReaderProgress(session)
    reads: dict[int, list[str]] = {1: session.order_for(reader, 1)}
    if session.reread_codes and progress.reread_open(reader, when):
        reads[2] = session.order_for(reader, 2)
    codes = sorted({c for order in reads.values() for c in order})

    package_id = uuid.uuid4().hex
    token = secrets.token_hex(16)
    secret = secrets.token_hex(32)  # never written anywhere: the per-case salts die with the export
    hanging = session.options.hanging
    tmp = dest.with_name(dest.name + f".partial-{secrets.token_hex(4)}")
    tmp.mkdir(parents=True)
    n_files = 0
    forbidden_words: list[str] = []
    forbidden_sub: list[str] = []
    try:
        cases_doc = []
        for code in codes:
            case = session.case(code)
            forbidden_words += identifying_strings(study, case)
            forbidden_sub += _source_forbidden(study, case)
            try:
                patient = study.patient(case.patient_id)
                visit = patient.visit(case.visit_id)
            except KeyError:
                raise PackageError(f"case {code}: its visit is not in the loaded study "
                                   "(relink the sources)") from None
            deid = Deidentifier(f"{secret}:{code}", remove=PACKAGE_REMOVE)
            written: dict[str, str] = {}
            counter = [0]

            def copy_series(entries, study_uid_out: list) -> list[dict]:
                out = []
                titles: dict[str, int] = {}
                for entry in entries:
                    base = neutral_series_title(entry)
                    titles[base] = titles.get(base, 0) + 1
                    title = neutral_series_title(entry, index=titles[base])
                    counter[0] += 1
                    folder = f"images/{code}/s{counter[0]:02d}"
                    files, series_uid = [], ""
                    for i, src in enumerate(_entry_files(entry)):
                        if src not in written:
                            rel = f"{folder}/{i + 1:04d}.dcm"
                            res = deidentify_file(src, tmp / rel, deid, patient_code=code, series_description=title)
                            written[src] = rel
                            series_uid = series_uid or res.series_instance_uid
                            if not study_uid_out:
                                study_uid_out.append(res.study_instance_uid)
                        files.append(written[src])
                    out.append({"title": title, "role": entry.role.value, "plane": entry.plane,
                                "series_uid": series_uid or deid.map_uid(entry.series_uid), "files": files})
                return out

            study_uid: list[str] = []
            series = copy_series(_hanging_entries(visit, hanging), study_uid)
            comparison = None
            if session.shows_baseline(case):
                try:
                    base_visit = patient.visit(case.baseline_visit_id)
                except KeyError:
                    base_visit = None
                if base_visit is not None and base_visit.id != visit.id:
                    base_uid: list[str] = []
                    comp_series = copy_series(_hanging_entries(base_visit, hanging), base_uid)
                    if comp_series:
                        comparison = {"study_uid": base_uid[0] if base_uid else deid.map_uid(base_visit.id),
                                      "series": comp_series}
            if not series:
                raise PackageError(f"case {code}: its visit has no series with role "
                                   f"{', '.join(hanging.roles)} to show")
            n_files += len(written)
            cases_doc.append({"code": code, "level": case.level,
                              "study_uid": study_uid[0] if study_uid else deid.map_uid(visit.id),
                              "series": series, "comparison": comparison})

        own = [r.to_dict() for r in session.records(reader)]
        reread = list(session.reread_codes) if 2 in reads else []
        doc = {"format": PACKAGE_FORMAT, "version": VERSION, "package_id": package_id, "token": token,
               "session_id": session.id, "reader": reader, "created": utc_iso(when),
               "app_version": discviewer.__version__, "notice": discviewer.RESEARCH_USE_NOTICE,
               "questions": [q.to_dict() for q in session.questions],
               "options": {"allow_change_after_submit": session.options.allow_change_after_submit,
                           "washout_days": session.options.washout_days, "reread_codes": reread},
               "hanging": {"roles": list(hanging.roles), "planes": list(hanging.planes),
                           "comparison_for_iron": hanging.show_baseline_for_iron},
               "reads": {str(k): v for k, v in reads.items()}, "answers": own, "cases": cases_doc}
        _write_json_atomic(tmp / PACKAGE_FILE, doc)

        if check:
            words = [s for s in dict.fromkeys(forbidden_words) if s.lower() != reader.lower()]
            leaks = (find_identifying_strings(tmp, forbidden_sub)
                     + find_identifying_strings(tmp, words, whole_words=True))
            if leaks:
                shown = "; ".join(f"{Path(f.file).name} {f.where}: {f.string!r}" for f in leaks[:5])
                raise PackageLeakError(f"{dest}: identifying strings found, package not written ({shown})", leaks)
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    zip_path = None
    if make_zip:
        zip_path = dest.with_name(dest.name + ".zip")
        with atomic_path(zip_path) as ztmp, zipfile.ZipFile(ztmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(dest.rglob("*")):
                if p.is_file():
                    zf.write(p, f"{dest.name}/{p.relative_to(dest).as_posix()}")

    register = session.extra.setdefault(REGISTER_KEY, [])
    register.append({"id": package_id, "reader": reader, "created": utc_iso(when),
                     "token_sha256": _sha256_text(token), "reads": {str(k): len(v) for k, v in reads.items()},
                     "files": n_files, "imports": []})
    store_session(workspace, session)
    workspace.log("reader package exported", session.id, "",
                  f"package {package_id} for reader {reader}: {len(codes)} cases, {n_files} images, "
                  f"reads {', '.join(str(k) for k in reads)}")
    return ExportedPackage(dest, package_id, reader, reads, n_files, zip_path)


# ------------------------------------------------------------------------------------------------ reader side

@dataclass
class PackageSeries:
    """One series of a package case, as the reading flow shows it."""

    title: str
    role: str
    plane: str
    series_uid: str
    files: list[Path]
    comparison: bool = False
    key: str = ""  # the SeriesEntry key in the package study


class PackageSession(ReadingSession):
    """The reader's copy of the session: `order_for` gives the orders the package carries (the
    coordinator's seed never leaves the coordinator); everything else is a `ReadingSession`."""

    def __init__(self, *args, orders: dict[int, list[str]], **kw) -> None:
        super().__init__(*args, **kw)
        self.orders = {int(k): list(v) for k, v in orders.items()}
        for read, order in self.orders.items():
            if sorted(order) != sorted(self.codes_for_read(read)):
                raise PackageError(f"the package's order of read {read} does not match its cases")
        self.extra["package_orders"] = {str(k): v for k, v in self.orders.items()}

    def order_for(self, reader: str, read: int = 1) -> list[str]:
        if read in self.orders:
            self.check_reader(reader)
            return list(self.orders[read])
        return super().order_for(reader, read)


class _PackageWorkspace(Workspace):
    """The reader's in-memory workspace: every stored change of the session writes answers.json."""

    def __init__(self, package: "ReaderPackage", **kw) -> None:
        self._package = package
        self._loading = True
        super().__init__(**kw)

    def mark_modified(self, what: str = "") -> None:
        super().mark_modified(what)
        if not self._loading:
            self._package.save()


class ReaderPackage:
    """An opened reader package (see the module docstring): `workspace` (study + session), `session`,
    `progress` (submit answers here), `series(code)`, `save()` and `answers_path`."""

    def __init__(self, path: Path, doc: dict) -> None:
        self.path = path
        self.doc = doc
        self.package_id: str = doc["package_id"]
        self.session_id: str = doc["session_id"]
        self.reader: str = doc["reader"]
        self.token: str = doc.get("token", "")
        self.reads: dict[int, list[str]] = {int(k): list(v) for k, v in doc.get("reads", {}).items()}
        self.workspace = _PackageWorkspace(self, name="reader package", user=self.reader)
        self.session: ReadingSession | None = None
        self.progress: ReaderProgress | None = None
        self._series: dict[str, list[PackageSeries]] = {}

    @property
    def answers_path(self) -> Path:
        return self.path / ANSWERS_FILE

    @property
    def codes(self) -> list[str]:
        return sorted({c for codes in self.reads.values() for c in codes})

    def series(self, code: str, *, comparison: bool | None = None) -> list[PackageSeries]:
        """The case's series (the comparison ones after the case's own); `comparison` filters."""
        out = self._series[code]
        return [s for s in out if comparison is None or s.comparison == comparison]

    def answers_doc(self) -> dict:
        s = self.session
        return {"format": ANSWERS_FORMAT, "version": VERSION, "session_id": self.session_id,
                "package_id": self.package_id, "token": self.token, "reader": self.reader,
                "saved": utc_iso(utc_now()), "app_version": discviewer.__version__,
                "answers": [r.to_dict() for r in s.records(self.reader)] if s is not None else [],
                "audit": [dataclasses.asdict(a) for a in self.workspace.audit]}

    def save(self) -> Path:
        """Write answers.json (atomic)."""
        _write_json_atomic(self.answers_path, self.answers_doc())
        return self.answers_path

    def close(self) -> None:
        self.workspace.close()


def _unpack_zip(path: Path) -> Path:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        for n in names:
            p = Path(n)
            if p.is_absolute() or ".." in p.parts:
                raise PackageError(f"{path}: unsafe member name {n!r}; refused")
        tops = {Path(n).parts[0] for n in names if n.strip("/")}
        target_parent = path.parent
        if len(tops) == 1 and f"{next(iter(tops))}/{PACKAGE_FILE}" in names:
            folder = target_parent / next(iter(tops))
        else:
            folder = target_parent / path.stem
            target_parent = folder
        if not (folder / PACKAGE_FILE).exists():
            zf.extractall(target_parent)
    return folder


def open_reader_package(path) -> ReaderPackage:
    """Open a reader package folder (or its .zip, unpacked beside itself on first open; answers are
    kept in the unpacked folder). Raises `PackageError` naming the file when it is not a package."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".zip":
        p = _unpack_zip(p)
    if p.is_file() and p.name == PACKAGE_FILE:
        p = p.parent
    doc_path = p / PACKAGE_FILE
    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"{p}: no {PACKAGE_FILE} — not a discviewer reader package") from None
    except (OSError, ValueError) as exc:
        raise PackageError(f"{doc_path}: unreadable ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != PACKAGE_FORMAT:
        raise PackageError(f"{doc_path}: not a discviewer reader package (format {doc.get('format')!r})"
                           if isinstance(doc, dict) else f"{doc_path}: not a discviewer reader package")
    if int(doc.get("version", 0)) > VERSION:
        raise PackageError(f"{doc_path}: package version {doc.get('version')} is newer than this app "
                           f"understands ({VERSION}); update discviewer")
    for k in ("package_id", "session_id", "reader", "cases", "questions", "reads"):
        if k not in doc:
            raise PackageError(f"{doc_path}: '{k}' is missing")

    from discviewer.io import scan_files
    from discviewer.study import Study, _assign_days_and_labels

    pkg = ReaderPackage(p, doc)
    # every image of the package, scanned into one patient per case
    all_files = []
    for c in doc["cases"]:
        for s in c["series"] + ((c.get("comparison") or {}).get("series") or []):
            all_files += [str(p / f) for f in s["files"]]
    missing = [f for f in all_files if not os.path.exists(f)]
    if missing:
        raise PackageError(f"{p}: {len(missing)} image file(s) missing, e.g. {missing[0]}")
    result = scan_files(list(dict.fromkeys(all_files)))
    if result.problems:
        raise PackageError(f"{p}: unreadable images: {result.problems[0]}")
    study = Study.from_scan(result)
    entries_by_uid: dict[str, list] = {}
    for v in study.visits():
        for e in v.series:
            entries_by_uid.setdefault(e.series_uid, []).append(e)

    cases = []
    for c in doc["cases"]:
        code = c["code"]
        comp = c.get("comparison") or None
        views: list[PackageSeries] = []
        refs: list[SeriesRef] = []
        for is_comp, block in ((False, c["series"]), (True, (comp or {}).get("series") or [])):
            for s in block:
                found = entries_by_uid.get(s["series_uid"], [])
                keys = [e.key for e in found if e.plane == s.get("plane", e.plane)] or [e.key for e in found]
                views.append(PackageSeries(s["title"], s.get("role", ""), s.get("plane", ""), s["series_uid"],
                                           [p / f for f in s["files"]], is_comp, keys[0] if keys else ""))
                if not is_comp:
                    refs += [SeriesRef(k, s["series_uid"], s.get("role", ""), s.get("plane", "")) for k in keys]
        pkg._series[code] = views
        cases.append(Case(code=code, patient_id=code, visit_id=c.get("study_uid", ""), level=c.get("level"),
                          baseline_visit_id=(comp or {}).get("study_uid", "") or c.get("study_uid", ""),
                          series=tuple(refs)))
        # the comparison visit first, so the patient's first visit is the one shown as comparison
        try:
            patient = study.patient(code)
        except KeyError:
            continue
        if comp:
            patient.visits.sort(key=lambda v: v.id != comp.get("study_uid"))
            _assign_days_and_labels(patient.visits)
    hanging = doc.get("hanging", {})
    opts = doc.get("options", {})
    options = SessionOptions(allow_change_after_submit=bool(opts.get("allow_change_after_submit", False)),
                             reread_codes=tuple(opts.get("reread_codes", ())),
                             washout_days=opts.get("washout_days", 28),
                             hanging=HangingOptions(tuple(hanging.get("roles", ("T2 sag",))),
                                                    tuple(hanging.get("planes", ("sag",))),
                                                    bool(hanging.get("comparison_for_iron", True))))
    session = PackageSession("reader package", cases, [Question.from_dict(q) for q in doc["questions"]],
                             [doc["reader"]], orders=pkg.reads, options=options, id=doc["session_id"],
                             created=doc.get("created"))
    records = [AnswerRecord.from_dict(a) for a in doc.get("answers", [])]
    if pkg.answers_path.exists():
        try:
            saved = json.loads(pkg.answers_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PackageError(f"{pkg.answers_path}: unreadable ({exc}); keep a copy and ask the coordinator")
        if saved.get("package_id") != pkg.package_id:
            raise PackageError(f"{pkg.answers_path}: belongs to package {saved.get('package_id')}, "
                               f"not {pkg.package_id}")
        records += [AnswerRecord.from_dict(a) for a in saved.get("answers", [])]
        pkg.workspace.audit = [AuditEntry(**a) for a in saved.get("audit", [])]
    for r in records:
        if r.reader == pkg.reader:
            session.answers[(r.reader, r.read, r.case)] = r
    ws = pkg.workspace
    ws.attach_study(study)
    ws.reading[session.id] = session.to_dict()
    ws.mark_saved()
    ws._loading = False
    pkg.session = session
    pkg.progress = ReaderProgress(session, ws)
    return pkg


def export_answers(package: ReaderPackage, dest=None) -> Path:
    """Write the return file for the coordinator (see the module docstring) into `dest` (a folder, or
    a file path ending in .json; default: beside the package folder). Also saves answers.json."""
    package.save()
    doc = package.answers_doc()
    doc["exported"] = utc_iso(utc_now())
    name = f"answers-{re.sub(r'[^A-Za-z0-9_.-]+', '_', package.reader)}-{package.package_id[:8]}.json"
    if dest is None:
        out = package.path.parent / name
    else:
        d = Path(dest)
        out = d if d.suffix.lower() == ".json" else d / name
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(out, doc)
    return out


# ------------------------------------------------------------------------------------------------ import

@dataclass
class ImportResult:
    package_id: str
    reader: str
    added: list[tuple[int, str]] = field(default_factory=list)  # (read, case code)
    updated: list[tuple[int, str]] = field(default_factory=list)
    unchanged: list[tuple[int, str]] = field(default_factory=list)


def _check_values(session: ReadingSession, values: dict) -> list[str]:
    problems = []
    known = {q.id for q in session.questions}
    for qid in values:
        if qid not in known:
            problems.append(f"unknown question {qid!r}")
    for q in session.questions:
        stored = values.get(q.id)
        if stored is None:
            continue
        if not isinstance(stored, dict):
            problems.append(f"question {q.id!r}: malformed answer")
            continue
        try:
            v = q.validate(stored.get("value"))
            c = q.validate_confidence(stored.get("confidence"))
        except AnswerError as e:
            problems.append(str(e))
            continue
        if v != stored.get("value") or c != stored.get("confidence"):
            problems.append(f"question {q.id!r}: answer not in stored form")
    return problems


def _jd(v) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def import_reader_answers(workspace, session: ReadingSession, answers_file, *,
                          now: _dt.datetime | None = None) -> ImportResult:
    """Store the answers of a returned answers file in `session` (and `workspace`); see the module
    docstring for what is refused. Nothing changes unless everything in the file is acceptable."""
    path = Path(answers_file)
    name = path.name
    try:
        raw = path.read_bytes()
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise PackageError(f"{name}: not a readable answers file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != ANSWERS_FORMAT:
        raise PackageError(f"{name}: not a discviewer answers file")
    if int(doc.get("version", 0)) > VERSION:
        raise PackageError(f"{name}: answers file version {doc.get('version')} is newer than this app "
                           f"understands ({VERSION})")
    if doc.get("session_id") != session.id:
        raise ForeignSessionError(f"{name}: these answers belong to another reading session "
                                  f"({str(doc.get('session_id'))[:8]}…), not to {session.name!r} "
                                  f"({session.id[:8]}…); refused")
    pid = str(doc.get("package_id", ""))
    register = session.extra.get(REGISTER_KEY, [])
    entry = next((e for e in register if e.get("id") == pid), None)
    if entry is None:
        raise UnknownPackageError(f"{name}: package {pid or '(none)'} was not issued by session {session.name!r}; "
                                  "refused")
    if _sha256_text(str(doc.get("token", ""))) != entry.get("token_sha256"):
        raise UnknownPackageError(f"{name}: the token does not match package {pid} (altered file or another "
                                  "package's answers); refused")
    reader = entry["reader"]
    if doc.get("reader") != reader:
        raise PackageError(f"{name}: package {pid} was issued to reader {reader!r}, the file says "
                           f"{doc.get('reader')!r}; refused")
    session.check_reader(reader)
    reads = {int(k) for k in entry.get("reads", {})}
    records = []
    problems = []
    for a in doc.get("answers", []):
        try:
            rec = AnswerRecord.from_dict(a)
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"malformed record ({exc})")
            continue
        where = f"read {rec.read} case {rec.case}"
        if rec.reader != reader:
            problems.append(f"{where}: reader {rec.reader!r} is not the package's reader")
        elif rec.read not in reads or rec.case not in session.codes_for_read(rec.read):
            problems.append(f"{where}: not part of this package")
        else:
            problems += [f"{where}: {p}" for p in _check_values(session, rec.values)]
        records.append(rec)
    if problems:
        raise PackageError(f"{name}: refused — " + "; ".join(problems[:5]))

    result = ImportResult(pid, reader)
    updates: list[tuple[AnswerRecord, AnswerRecord | None]] = []
    conflicts = []
    for rec in records:
        key = (reader, rec.read, rec.case)
        old = session.answers.get(key)
        if old is None:
            updates.append((rec, None))
            result.added.append((rec.read, rec.case))
        elif old.to_dict() == rec.to_dict():
            result.unchanged.append((rec.read, rec.case))
        elif (old.submitted == rec.submitted and session.options.allow_change_after_submit
              and old.changes == rec.changes[:len(old.changes)] and len(rec.changes) > len(old.changes)):
            updates.append((rec, old))
            result.updated.append((rec.read, rec.case))
        else:
            conflicts.append(f"read {rec.read} case {rec.case}")
    if conflicts:
        raise AnswerConflictError(f"{name}: answers differ from those already stored for "
                                  f"{', '.join(conflicts[:5])}; refused (nothing imported)")
    if not updates:
        last = entry.get("imports", [])[-1]["time"] if entry.get("imports") else "earlier"
        raise DuplicateImportError(f"{name}: every answer in it is already in the session (package {pid}, "
                                   f"imported {last}); nothing imported")

    when = utc_now(now)
    stamp = utc_iso(when)
    source = f"imported from package {pid} ({name})"
    for rec, old in updates:
        key = (reader, rec.read, rec.case)
        if old is None:
            session.answers[key] = AnswerRecord.from_dict(rec.to_dict())
            workspace.audit.append(AuditEntry(stamp, reader, "reading submit", rec.case, "",
                                              _jd({"session": session.id, "reader": reader, "read": rec.read,
                                                   "duration_s": rec.duration_s, "answers": rec.values,
                                                   "submitted": rec.submitted, "source": source})))
        else:
            for ch in rec.changes[len(old.changes):]:
                workspace.audit.append(AuditEntry(stamp, reader, "reading answer changed",
                                                  f"{rec.case}/{ch.get('question')}", _jd(ch.get("old")),
                                                  _jd({"answer": ch.get("new"), "changed": ch.get("time"),
                                                       "source": source})))
            old.values, old.duration_s, old.modified = rec.values, rec.duration_s, rec.modified
            old.changes = list(rec.changes)
    entry.setdefault("imports", []).append({"time": stamp, "file": name,
                                            "sha256": hashlib.sha256(raw).hexdigest(),
                                            "added": [list(x) for x in result.added],
                                            "updated": [list(x) for x in result.updated]})
    store_session(workspace, session)
    workspace.audit.append(AuditEntry(stamp, workspace.user, "reading answers imported", session.id, "",
                                      f"{source}: reader {reader}, {len(result.added)} new, "
                                      f"{len(result.updated)} changed, {len(result.unchanged)} already there"))
    return result

"""A blinded reading session: its cases, questions, readers, options, seed and stored answers.

Owns `Case`, `HangingOptions`, `SessionOptions`, `AnswerRecord`, `ReadingSession` (with the
per-reader deterministic order), `cases_from_study` and storing sessions in a `Workspace`
(`store_session`, `load_session`, `sessions_in`). Submitting answers, locking, resume and the
re-read gate are in `discviewer.reading.answers`; what a reader may see in `blinding`.

**Cases.** A case is one patient × visit, or patient × visit × disc level. Each gets a code
("C417") drawn at random from the session seed, so a code tells nothing about the order the cases
were built in, the patient or the visit; `ReadingSession.cases` is kept sorted by code. A case keeps
the identity (patient, visit, date, label, days, level) for the coordinator's unblinding key —
readers never see those fields (see `blinding`).

**Order.** `order_for(reader, read)` sorts the read's case codes by
SHA-256("discviewer-reading-order", session seed, reader id, read number, case code) — a uniformly
random permutation that depends on nothing but those values (not on numpy's or Python's random
streams, which may change between versions), so it is the same for the same reader on every
machine, after every restart and after an upgrade; different for different readers; and for the
re-read (read 2) a fresh shuffle over the re-read subset only. Reader ids are compared exactly
(after stripping spaces). Case codes and the re-read subset are drawn once (numpy PCG64 seeded
from SHA-256 of the seed) and stored, so they never depend on a library version either.

**Re-read.** `options.reread_codes` is the subset re-read for intra-reader agreement (the same
subset for every reader). Give it explicitly or give `reread_fraction`: the subset
(round(fraction × N), at least 1 when fraction > 0) is then drawn from the seed when the session is
created and stored as codes, so it never changes afterwards. It opens per reader only after that
reader finished read 1 and `washout_days` (default 28) passed since their last read-1 submit.

**Session JSON** (`to_dict()` / `from_dict()`; stored as `Workspace.reading[session.id]`):

```
{
  "format": "discviewer.reading-session", "version": 1,
  "id": "<uuid4 hex>", "name": "…", "seed": 12345, "created": "2026-11-26T02:40:06.000Z",
  "readers": ["rk", "am"],
  "questions": [Question.to_dict(), …],           see discviewer.reading.questions
  "cases": [                                       sorted by code
    {"code": "C417", "patient_id": "P7", "patient_name": "DOE^JANE", "visit_id": "<StudyInstanceUID>",
     "visit_date": "2024-01-02" | "", "visit_label": "3 m", "days": 91 | null, "level": "L4/L5" | null,
     "baseline_visit_id": "<StudyInstanceUID of the patient's first visit>" | "",
     "series": [{"key": "<SeriesEntry.key>", "series_uid": "…", "role": "T2 sag", "plane": "sag"}, …]}],
  "options": {"allow_change_after_submit": false, "reread_fraction": 0.2, "reread_codes": ["C417", …],
              "washout_days": 28,
              "hanging": {"roles": ["T2 sag"], "planes": ["sag"], "show_baseline_for_iron": true}},
  "answers": [                                     one per reader × read × case, in submit order
    {"reader": "rk", "read": 1, "case": "C417",
     "values": {"<question id>": {"value": <answer value or null>, "confidence": <value or null>}},
     "duration_s": 42.5, "submitted": "<UTC ISO>", "modified": "<UTC ISO>" | "",
     "changes": [{"time": "<UTC ISO>", "question": "<id>", "old": {...}, "new": {...}}]}]
}
```
Answer values are described in `questions` (a measurement is {"value": number, …}). `series` lists
every series entry of the visit at creation (its role then); the viewer looks entries up by `key`
in the current study and applies `options.hanging`. Unknown keys in a stored document are kept
(`extra`) and written back.

Core module: numpy + stdlib; no Qt, no VTK.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass, field

import numpy as np

from discviewer.reading.questions import Question, questions_from

FORMAT = "discviewer.reading-session"
VERSION = 1
DEFAULT_WASHOUT_DAYS = 28
READS = (1, 2)  # read 1 = everything; read 2 = the re-read subset


class ReadingError(Exception):
    """Base class of the reading-session errors (each message is meant for the user)."""


class UnknownReaderError(ReadingError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its argument
        return str(self.args[0]) if self.args else ""


class UnknownCaseError(ReadingError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# ------------------------------------------------------------------------------------------------ time

def utc_iso(t: _dt.datetime) -> str:
    """UTC ISO 8601 with milliseconds and "Z" (naive datetimes are taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> _dt.datetime | None:
    if not text:
        return None
    t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo is not None else t.replace(tzinfo=_dt.timezone.utc)


def utc_now(now: _dt.datetime | None = None) -> _dt.datetime:
    if now is None:
        return _dt.datetime.now(_dt.timezone.utc)
    return now if now.tzinfo is not None else now.replace(tzinfo=_dt.timezone.utc)


# ------------------------------------------------------------------------------------------------ records

@dataclass(frozen=True)
class SeriesRef:
    """One series entry of a case's visit (looked up by `key` in the study)."""

    key: str
    series_uid: str = ""
    role: str = ""
    plane: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Case:
    """One case: patient × visit (× disc level). `code` is all a reader sees of it."""

    code: str
    patient_id: str
    visit_id: str
    patient_name: str = ""
    visit_date: str = ""  # ISO "YYYY-MM-DD" or ""
    visit_label: str = ""
    days: int | None = None
    level: str | None = None
    baseline_visit_id: str = ""
    series: tuple[SeriesRef, ...] = ()

    @property
    def is_baseline(self) -> bool:
        return bool(self.baseline_visit_id) and self.baseline_visit_id == self.visit_id

    def to_dict(self) -> dict:
        return {"code": self.code, "patient_id": self.patient_id, "patient_name": self.patient_name,
                "visit_id": self.visit_id, "visit_date": self.visit_date, "visit_label": self.visit_label,
                "days": self.days, "level": self.level, "baseline_visit_id": self.baseline_visit_id,
                "series": [s.to_dict() for s in self.series]}

    @classmethod
    def from_dict(cls, d: dict) -> "Case":
        return cls(code=d["code"], patient_id=d["patient_id"], visit_id=d["visit_id"],
                   patient_name=d.get("patient_name", ""), visit_date=d.get("visit_date", ""),
                   visit_label=d.get("visit_label", ""), days=d.get("days"), level=d.get("level"),
                   baseline_visit_id=d.get("baseline_visit_id", ""),
                   series=tuple(SeriesRef(**s) for s in d.get("series", ())))


#: a hanging role the visit lacks is shown by its stand-in when the visit has one: both gradient-echo
#: roles are T2*-weighted, and studies differ in which one they acquire (single- or multi-echo)
ROLE_STAND_INS: dict[str, tuple[str, ...]] = {"T2* GRE": ("multi-echo GRE",), "multi-echo GRE": ("T2* GRE",)}


def entries_for_role(series, role: str) -> list:
    """The series entries of a visit (`Visit.series`) with `role`, else those of its first stand-in
    (`ROLE_STAND_INS`) the visit has."""
    for r in (role, *ROLE_STAND_INS.get(role, ())):
        found = [e for e in series if getattr(e.role, "value", e.role) == r]
        if found:
            return found
    return []


@dataclass(frozen=True)
class HangingOptions:
    """What each case shows: series `roles` (in order) in the `planes` given, and whether the
    patient's baseline visit is shown beside a follow-up when the session asks the iron question."""

    roles: tuple[str, ...] = ("T2 sag",)
    planes: tuple[str, ...] = ("sag",)
    show_baseline_for_iron: bool = True

    def to_dict(self) -> dict:
        return {"roles": list(self.roles), "planes": list(self.planes),
                "show_baseline_for_iron": self.show_baseline_for_iron}

    @classmethod
    def from_dict(cls, d: dict) -> "HangingOptions":
        return cls(tuple(d.get("roles", ("T2 sag",))), tuple(d.get("planes", ("sag",))),
                   bool(d.get("show_baseline_for_iron", True)))


@dataclass(frozen=True)
class SessionOptions:
    allow_change_after_submit: bool = False
    reread_fraction: float = 0.0
    reread_codes: tuple[str, ...] = ()
    washout_days: float = DEFAULT_WASHOUT_DAYS
    hanging: HangingOptions = field(default_factory=HangingOptions)

    def to_dict(self) -> dict:
        return {"allow_change_after_submit": self.allow_change_after_submit,
                "reread_fraction": self.reread_fraction, "reread_codes": list(self.reread_codes),
                "washout_days": self.washout_days, "hanging": self.hanging.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "SessionOptions":
        return cls(bool(d.get("allow_change_after_submit", False)), float(d.get("reread_fraction", 0.0)),
                   tuple(d.get("reread_codes", ())), d.get("washout_days", DEFAULT_WASHOUT_DAYS),
                   HangingOptions.from_dict(d.get("hanging", {})))


@dataclass
class AnswerRecord:
    """The answers of one reader to one case in one read."""

    reader: str
    read: int
    case: str
    values: dict  # question id → {"value": …, "confidence": …}
    duration_s: float
    submitted: str
    modified: str = ""
    changes: list = field(default_factory=list)

    def value(self, question_id: str):
        return (self.values.get(question_id) or {}).get("value")

    def confidence(self, question_id: str):
        return (self.values.get(question_id) or {}).get("confidence")

    def answered_at(self, question_id: str) -> str:
        """When this question's current value was set (its last change, else the submit)."""
        times = [c["time"] for c in self.changes if c.get("question") == question_id]
        return times[-1] if times else self.submitted

    def to_dict(self) -> dict:
        return {"reader": self.reader, "read": self.read, "case": self.case, "values": self.values,
                "duration_s": self.duration_s, "submitted": self.submitted, "modified": self.modified,
                "changes": self.changes}

    @classmethod
    def from_dict(cls, d: dict) -> "AnswerRecord":
        return cls(d["reader"], int(d["read"]), d["case"], dict(d.get("values", {})),
                   float(d.get("duration_s", 0.0)), d.get("submitted", ""), d.get("modified", ""),
                   list(d.get("changes", [])))


# ------------------------------------------------------------------------------------------------ seeding

def _digest(*parts) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()


def _rng(*parts) -> np.random.Generator:
    """A numpy Generator (PCG64) seeded from SHA-256 of the parts (used only for values that are
    stored once drawn: case codes and the re-read subset)."""
    return np.random.Generator(np.random.PCG64(int.from_bytes(_digest(*parts), "big")))


def case_codes(n: int, seed, prefix: str = "C", taken=()) -> list[str]:
    """`n` distinct random codes ("C417") from the seed; 3 digits up to 99 cases, then wider."""
    width = max(3, len(str(10 * max(n + len(taken), 1))))
    pool = 10 ** width - 1
    taken = set(taken)
    rng = _rng("discviewer-case-codes", seed)
    out: list[str] = []
    while len(out) < n:
        for k in rng.choice(pool, size=min(pool, 2 * (n - len(out)) + len(taken)), replace=False):
            code = f"{prefix}{int(k) + 1:0{width}d}"
            if code not in taken:
                taken.add(code)
                out.append(code)
                if len(out) == n:
                    break
    return out


def _normalise_reader(reader: str) -> str:
    if not isinstance(reader, str) or not reader.strip():
        raise UnknownReaderError("a reader id must be non-empty text")
    return reader.strip()


# ------------------------------------------------------------------------------------------------ session

class ReadingSession:
    """A blinded reading session (see the module docstring). Answers are kept in `answers`
    (reader, read, case code) → `AnswerRecord`; change them through `ReaderProgress`."""

    def __init__(self, name: str, cases, questions, readers=(), *, seed: int | None = None,
                 options: SessionOptions | None = None, id: str | None = None, created: str | None = None) -> None:
        self.id = id or uuid.uuid4().hex
        self.name = name
        self.seed = int(seed) if seed is not None else secrets.randbits(48)
        self.created = created or utc_iso(utc_now())
        self.questions: list[Question] = questions_from(questions)
        self.readers: list[str] = []
        for r in readers:
            self.add_reader(r)
        cases = list(cases)
        missing = [i for i, c in enumerate(cases) if not c.code]
        if missing:
            codes = case_codes(len(missing), self.seed, taken=[c.code for c in cases if c.code])
            for i, code in zip(missing, codes):
                cases[i] = dataclasses.replace(cases[i], code=code)
        all_codes = [c.code for c in cases]
        dup = sorted({c for c in all_codes if all_codes.count(c) > 1})
        if dup:
            raise ValueError(f"case codes repeat: {', '.join(dup)}")
        self.cases: list[Case] = sorted(cases, key=lambda c: c.code)
        self._by_code = {c.code: c for c in self.cases}
        options = options or SessionOptions()
        if options.reread_codes:
            unknown = [c for c in options.reread_codes if c not in self._by_code]
            if unknown:
                raise UnknownCaseError(f"re-read cases not in the session: {', '.join(unknown)}")
            options = dataclasses.replace(options, reread_codes=tuple(sorted(set(options.reread_codes))))
        elif options.reread_fraction > 0:
            if not options.reread_fraction <= 1:
                raise ValueError(f"reread_fraction must be in [0, 1], got {options.reread_fraction}")
            k = max(1, int(round(options.reread_fraction * len(self.cases)))) if self.cases else 0
            rng = _rng("discviewer-reread-subset", self.seed)
            chosen = rng.choice(len(self.cases), size=k, replace=False) if k else []
            options = dataclasses.replace(options, reread_codes=tuple(sorted(self.cases[int(i)].code for i in chosen)))
        if options.washout_days < 0:
            raise ValueError("washout_days must be ≥ 0")
        self.options = options
        self.answers: dict[tuple[str, int, str], AnswerRecord] = {}
        self.extra: dict = {}

    # ------------------------------------------------------------------ lookups
    def case(self, code: str) -> Case:
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownCaseError(f"no case {code!r} in session {self.name!r}") from None

    def question(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(f"no question {question_id!r} in session {self.name!r}")

    @property
    def codes(self) -> list[str]:
        return [c.code for c in self.cases]

    @property
    def reread_codes(self) -> tuple[str, ...]:
        return self.options.reread_codes

    def add_reader(self, reader: str) -> bool:
        """Register a reader id (stripped); True if it was new."""
        r = _normalise_reader(reader)
        if r in self.readers:
            return False
        self.readers.append(r)
        return True

    def check_reader(self, reader: str) -> str:
        r = _normalise_reader(reader)
        if r not in self.readers:
            raise UnknownReaderError(f"{r!r} is not a reader of session {self.name!r}")
        return r

    def has_iron_question(self) -> bool:
        return any(q.id.startswith("iron") for q in self.questions)

    def shows_baseline(self, case: Case | str) -> bool:
        """Whether the patient's baseline is shown beside this case: the hanging option is on, the
        session asks an iron question, and the case is a follow-up with a known baseline."""
        c = self.case(case) if isinstance(case, str) else case
        return (self.options.hanging.show_baseline_for_iron and self.has_iron_question()
                and bool(c.baseline_visit_id) and not c.is_baseline)

    # ------------------------------------------------------------------ order
    def codes_for_read(self, read: int = 1) -> list[str]:
        if read == 1:
            return self.codes
        if read == 2:
            return list(self.options.reread_codes)
        raise ValueError(f"read must be 1 or 2, got {read!r}")

    def order_for(self, reader: str, read: int = 1) -> list[str]:
        """The case codes in the order this reader reads them in this read (see the module docstring)."""
        r = _normalise_reader(reader)
        codes = self.codes_for_read(read)
        return sorted(codes, key=lambda code: (_digest("discviewer-reading-order", self.seed, r, read, code), code))

    # ------------------------------------------------------------------ answers
    def record(self, reader: str, case_code: str, read: int = 1) -> AnswerRecord | None:
        return self.answers.get((reader.strip(), read, case_code))

    def records(self, reader: str | None = None, read: int | None = None) -> list[AnswerRecord]:
        return [a for (r, rd, _), a in self.answers.items()
                if (reader is None or r == reader) and (read is None or rd == read)]

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        d = dict(self.extra)
        d.update({"format": FORMAT, "version": VERSION, "id": self.id, "name": self.name, "seed": self.seed,
                  "created": self.created, "readers": list(self.readers),
                  "questions": [q.to_dict() for q in self.questions],
                  "cases": [c.to_dict() for c in self.cases], "options": self.options.to_dict(),
                  "answers": [a.to_dict() for a in self.answers.values()]})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ReadingSession":
        if d.get("format", FORMAT) != FORMAT:
            raise ValueError(f"not a reading session document (format {d.get('format')!r})")
        if int(d.get("version", VERSION)) > VERSION:
            raise ValueError(f"reading session version {d.get('version')} is newer than this app understands "
                             f"({VERSION})")
        s = cls(d.get("name", ""), [Case.from_dict(c) for c in d.get("cases", [])],
                [Question.from_dict(q) for q in d.get("questions", [])], d.get("readers", []),
                seed=int(d["seed"]), options=SessionOptions.from_dict(d.get("options", {})), id=d["id"],
                created=d.get("created", ""))
        for a in d.get("answers", []):
            rec = AnswerRecord.from_dict(a)
            s.answers[(rec.reader, rec.read, rec.case)] = rec
        known = {"format", "version", "id", "name", "seed", "created", "readers", "questions", "cases",
                 "options", "answers"}
        s.extra = {k: v for k, v in d.items() if k not in known}
        return s

    def __repr__(self) -> str:
        return (f"ReadingSession({self.name!r}, {len(self.cases)} cases, {len(self.questions)} questions, "
                f"{len(self.readers)} readers)")


# ------------------------------------------------------------------------------------------------ from a study

def cases_from_study(study, *, levels=None, patients=None, visits=None) -> list[Case]:
    """Cases (without codes; the session draws them) for every patient × visit of `study`, or
    patient × visit × level for each name in `levels`. `patients` / `visits` restrict to those
    patient ids / visit ids (StudyInstanceUIDs)."""
    pset = set(patients) if patients is not None else None
    vset = set(visits) if visits is not None else None
    out: list[Case] = []
    for p in study.patients:
        if pset is not None and p.id not in pset:
            continue
        base = p.baseline.id if p.baseline is not None else ""
        for v in p.visits:
            if vset is not None and v.id not in vset:
                continue
            series = tuple(SeriesRef(e.key, e.series_uid, e.role.value, e.plane) for e in v.series)
            common = dict(code="", patient_id=p.id, visit_id=v.id, patient_name=p.name or "",
                          visit_date=v.date.isoformat() if v.date else "", visit_label=v.label, days=v.days,
                          baseline_visit_id=base, series=series)
            for level in (levels if levels else [None]):
                out.append(Case(level=level, **common))
    return out


def create_session(name: str, study, questions, readers=(), *, levels=None, patients=None, visits=None,
                   seed: int | None = None, options: SessionOptions | None = None) -> ReadingSession:
    """A new session over the cases of `study` (see `cases_from_study`); `questions` may mix template
    names ("pfirrmann", "modic", …), `Question`s and question dicts."""
    return ReadingSession(name, cases_from_study(study, levels=levels, patients=patients, visits=visits),
                          questions, readers, seed=seed, options=options)


# ------------------------------------------------------------------------------------------------ workspace

def store_session(workspace, session: ReadingSession, *, action: str = "") -> None:
    """Put the session's document into `workspace.reading`, mark the workspace modified, and (with
    `action`, e.g. "reading session created") append an audit entry."""
    new = session.id not in workspace.reading
    workspace.reading[session.id] = session.to_dict()
    if action or new:
        workspace.log(action or "reading session created", session.id, "",
                      f"{session.name}: {len(session.cases)} cases, {len(session.questions)} questions, "
                      f"readers {', '.join(session.readers) or '—'}, seed {session.seed}")
    workspace.mark_modified(f"reading session {session.id}")


def load_session(workspace, session_id: str) -> ReadingSession:
    try:
        return ReadingSession.from_dict(workspace.reading[session_id])
    except KeyError:
        raise KeyError(f"no reading session {session_id!r} in this workspace") from None


def sessions_in(workspace) -> list[ReadingSession]:
    """Every reading session of the workspace (documents of other kinds are skipped)."""
    out = []
    for doc in workspace.reading.values():
        if isinstance(doc, dict) and doc.get("format") == FORMAT:
            out.append(ReadingSession.from_dict(doc))
    return out

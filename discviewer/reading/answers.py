"""Reading a session: submitting answers, locking, resume, progress and the re-read gate (`ReaderProgress`).

`ReaderProgress(session, workspace=None)` is the one place that changes a session's answers.
With a workspace, every submit writes the session document back into `workspace.reading`
(marking the workspace modified, so the app's autosave stores it — "answers saved on submit")
and appends audit entries (user = the reader id, target = the case code; the coordinator-side
audit log never shows patient identity in the target):
- "reading submit" — new: JSON {"session", "reader", "read", "duration_s", "answers": {question id:
  {"value", "confidence"}}};
- "reading answer changed" — one entry per changed question, target "<case code>/<question id>",
  old/new the stored answer JSON;
- "reading reader added" — a reader identified themself for the first time.

Rules of `submit(reader, case_code, answers, duration_s, read=1, confirm_empty=False, now=None)`:
- `answers` maps question id → value, or → {"value": v, "confidence": c} for questions with a
  confidence scale (a (value, confidence) tuple is accepted too). Unknown question ids are errors.
- Every value is validated by its `Question` (all problems are reported in one `AnswerError`).
- A required question with an empty answer → `MissingAnswersError` (its `.questions` lists them).
  Empty optional answers → `EmptyAnswersError` (`.questions`) unless `confirm_empty=True`.
  A confidence scale with `confidence_required` needs a confidence for every non-empty value.
- A case is answered once per reader and read: a second submit raises `AnswerLockedError`, unless
  `options.allow_change_after_submit`; then only the questions whose answer differs change, each
  change is kept in the record (`changes`) and in the audit with the old value, and `duration_s`
  accumulates. Read-1 answers lock for good once that reader started the re-read.
- `in_order=True` (default): a case's first submit must be the reader's next case in their order
  ("one case at a time").
- Timestamps are UTC ISO 8601 ("…Z"); `now` (a datetime, naive = UTC) is injectable everywhere.

Resume: `next_case(reader, read)` is the first case of that reader's order without an answer,
so after a restart or crash the reader continues where they stopped (answers are stored on submit).

Re-read gate: `reread_open(reader, now)` is True only when the session has a re-read subset, the
reader answered every read-1 case, and `washout_days` passed since their last read-1 submit (or
change); `check_read_open` raises `ReadGateError` whose message gives the opening date.

Core module: stdlib only.
"""
from __future__ import annotations

import datetime as _dt
import json

from discviewer.reading.questions import AnswerError
from discviewer.reading.session import (AnswerRecord, Case, ReadingError, ReadingSession, UnknownCaseError,
                                        parse_iso, store_session, utc_iso, utc_now)
from discviewer.workspace.data import AuditEntry


class AnswerLockedError(ReadingError):
    """The case was already submitted and answers may not change."""


class ReadGateError(ReadingError):
    """The re-read is not open (yet) for this reader; `opens` is the datetime it opens, if known."""

    def __init__(self, message: str, opens: _dt.datetime | None = None) -> None:
        super().__init__(message)
        self.opens = opens


class CaseOrderError(ReadingError):
    """A case submitted out of the reader's order."""


class MissingAnswersError(AnswerError):
    """Required questions left empty (`questions` lists their ids)."""

    def __init__(self, message: str, questions: list[str]) -> None:
        super().__init__(message)
        self.questions = questions


class EmptyAnswersError(AnswerError):
    """Optional questions left empty without confirmation (`questions` lists their ids)."""

    def __init__(self, message: str, questions: list[str]) -> None:
        super().__init__(message)
        self.questions = questions


def _split(q, raw):
    """(value, confidence) from what the caller passed for one question."""
    if isinstance(raw, tuple) and len(raw) == 2 and q.confidence:
        return raw
    if isinstance(raw, dict):
        conf = raw.get("confidence")
        rest = {k: v for k, v in raw.items() if k != "confidence"}
        if q.type == "measurement":
            return (rest if rest else None), conf
        if set(raw) <= {"value", "confidence"}:
            return raw.get("value"), conf
    return raw, None


def _json(v) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


class ReaderProgress:
    """Answers of a session, with the rules of the module docstring."""

    def __init__(self, session: ReadingSession, workspace=None) -> None:
        self.session = session
        self.workspace = workspace

    # ------------------------------------------------------------------ readers
    def identify(self, reader: str) -> str:
        """A reader identifies themself: registered if new (audited). Returns the normalised id."""
        r = reader.strip() if isinstance(reader, str) else reader
        if self.session.add_reader(r):
            self._audit(r, "reading reader added", self.session.id, "", r, utc_now())
            self._store()
        return r

    # ------------------------------------------------------------------ order / progress
    def order(self, reader: str, read: int = 1) -> list[str]:
        return self.session.order_for(self.session.check_reader(reader), read)

    def is_submitted(self, reader: str, case_code: str, read: int = 1) -> bool:
        return self.session.record(reader, case_code, read) is not None

    def progress(self, reader: str, read: int = 1) -> tuple[int, int]:
        """(cases answered, cases in this read) for the reader."""
        order = self.order(reader, read)
        done = sum(1 for c in order if self.is_submitted(reader, c, read))
        return done, len(order)

    def position(self, reader: str, case_code: str, read: int = 1) -> int:
        """1-based position of the case in the reader's order."""
        order = self.order(reader, read)
        try:
            return order.index(case_code) + 1
        except ValueError:
            raise UnknownCaseError(f"case {case_code!r} is not in read {read}") from None

    def next_case(self, reader: str, read: int = 1, now: _dt.datetime | None = None) -> Case | None:
        """The first unanswered case in the reader's order (None when the read is complete).
        For read 2 the gate must be open (`ReadGateError` otherwise)."""
        if read != 1:
            self.check_read_open(reader, read, now)
        for code in self.order(reader, read):
            if not self.is_submitted(reader, code, read):
                return self.session.case(code)
        return None

    def is_complete(self, reader: str, read: int = 1) -> bool:
        done, total = self.progress(reader, read)
        return done == total

    # ------------------------------------------------------------------ re-read gate
    def last_submit(self, reader: str, read: int = 1) -> _dt.datetime | None:
        times = [parse_iso(t) for a in self.session.records(reader.strip(), read) for t in (a.submitted, a.modified)
                 if t]
        return max(times) if times else None

    def reread_opens_at(self, reader: str) -> _dt.datetime | None:
        """When the re-read opens for this reader (None while read 1 is unfinished or there is no re-read)."""
        if not self.session.reread_codes or not self.is_complete(reader, 1):
            return None
        last = self.last_submit(reader, 1)
        if last is None:
            return None
        return last + _dt.timedelta(days=float(self.session.options.washout_days))

    def reread_open(self, reader: str, now: _dt.datetime | None = None) -> bool:
        try:
            self.check_read_open(reader, 2, now)
        except ReadGateError:
            return False
        return True

    def check_read_open(self, reader: str, read: int, now: _dt.datetime | None = None) -> None:
        """Raise `ReadGateError` unless `read` may be read by this reader at `now`."""
        reader = self.session.check_reader(reader)
        if read == 1:
            return
        if read != 2:
            raise ValueError(f"read must be 1 or 2, got {read!r}")
        if not self.session.reread_codes:
            raise ReadGateError(f"session {self.session.name!r} has no re-read")
        done, total = self.progress(reader, 1)
        if done < total:
            raise ReadGateError(f"the re-read opens {self.session.options.washout_days:g} days after the last "
                                f"case of the first read; {total - done} of {total} cases are still to read")
        opens = self.reread_opens_at(reader)
        if opens is not None and utc_now(now) < opens:
            raise ReadGateError(f"the re-read opens on {opens.date().isoformat()} "
                                f"({self.session.options.washout_days:g} days after the last case of the "
                                f"first read)", opens)

    # ------------------------------------------------------------------ submit
    def validate(self, answers: dict, *, confirm_empty: bool = False) -> dict:
        """The answers in stored form ({question id: {"value", "confidence"}}) or an `AnswerError`."""
        s = self.session
        known = {q.id for q in s.questions}
        unknown = sorted(set(answers) - known)
        problems: list[str] = []
        if unknown:
            problems.append(f"unknown question(s): {', '.join(unknown)}")
        out: dict = {}
        missing, empty = [], []
        for q in s.questions:
            value, conf = _split(q, answers.get(q.id))
            try:
                v = q.validate(value)
                c = q.validate_confidence(conf)
            except AnswerError as e:
                problems.append(str(e))
                continue
            if v is None:
                (missing if q.required else empty).append(q.id)
            elif q.confidence and q.confidence_required and c is None:
                problems.append(f"question {q.id!r}: give a confidence "
                                f"({', '.join(o.label for o in q.confidence)})")
            out[q.id] = {"value": v, "confidence": c}
        if problems:
            raise AnswerError("; ".join(problems))
        if missing:
            names = ", ".join(f"{qid} ({s.question(qid).text})" for qid in missing)
            raise MissingAnswersError(f"required question(s) not answered: {names}", missing)
        if empty and not confirm_empty:
            names = ", ".join(f"{qid} ({s.question(qid).text})" for qid in empty)
            raise EmptyAnswersError(f"question(s) left empty: {names} — confirm to submit them empty", empty)
        return out

    def submit(self, reader: str, case_code: str, answers: dict, duration_s: float, read: int = 1, *,
               confirm_empty: bool = False, now: _dt.datetime | None = None, in_order: bool = True) -> AnswerRecord:
        """Store the reader's answers to one case (see the module docstring); returns the record."""
        s = self.session
        reader = s.check_reader(reader)
        when = utc_now(now)
        s.case(case_code)
        if case_code not in s.codes_for_read(read):
            raise UnknownCaseError(f"case {case_code!r} is not in read {read} of session {s.name!r}")
        self.check_read_open(reader, read, when)
        if duration_s is None or not duration_s >= 0:
            raise ValueError(f"duration_s must be ≥ 0, got {duration_s!r}")
        values = self.validate(answers, confirm_empty=confirm_empty)
        old = s.record(reader, case_code, read)
        stamp = utc_iso(when)
        if old is None:
            if in_order:
                nxt = self.next_case(reader, read, when)
                if nxt is not None and nxt.code != case_code:
                    raise CaseOrderError(f"case {case_code} is not the next case; read {nxt.code} first")
            rec = AnswerRecord(reader, read, case_code, values, float(duration_s), stamp)
            s.answers[(reader, read, case_code)] = rec
            self._audit(reader, "reading submit", case_code, "",
                        _json({"session": s.id, "reader": reader, "read": read, "duration_s": float(duration_s),
                               "answers": values}), when)
            self._store()
            return rec
        if not s.options.allow_change_after_submit:
            raise AnswerLockedError(f"case {case_code} was submitted on {old.submitted}; answers are locked")
        if read == 1 and s.records(reader, 2):
            raise AnswerLockedError(f"case {case_code}: first-read answers are locked once the re-read started")
        changed = [qid for qid in values if values[qid] != old.values.get(qid)]
        for qid in changed:
            old.changes.append({"time": stamp, "question": qid, "old": old.values.get(qid), "new": values[qid]})
            self._audit(reader, "reading answer changed", f"{case_code}/{qid}", _json(old.values.get(qid)),
                        _json(values[qid]), when)
        old.values = values
        old.duration_s += float(duration_s)
        if changed:
            old.modified = stamp
        self._store()
        return old

    # ------------------------------------------------------------------ workspace
    def _audit(self, user: str, action: str, target: str, old: str, new: str, when: _dt.datetime) -> None:
        if self.workspace is not None:
            self.workspace.audit.append(AuditEntry(utc_iso(when), user, action, target, old, new))

    def _store(self) -> None:
        if self.workspace is not None:
            store_session(self.workspace, self.session)

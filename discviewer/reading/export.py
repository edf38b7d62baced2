"""Exports of a reading session: the answers (long-format CSV), the unblinding key (CSV), and the
answer tables that agreement statistics take (`rating_matrix`, `reread_pairs`).

`answers_csv(session, path)` — one row per reader × read × case × question, rows by reader, read
and the reader's reading order, questions in session order. Columns:

| column | content |
|---|---|
| reader | reader id |
| case_code | the case code (join with the unblinding key) |
| question | question id |
| answer | choice: the option value; multi: values joined by ";"; yes/no: "yes"/"no"; number: the number; text: the text; measurement: its "value"; empty answers: "" |
| confidence | the confidence value, or "" |
| time_s | seconds spent on the case (all questions of a case share it; changes add to it) |
| timestamp | UTC ISO time the answer was given (its last change, else the submit) |
| read | 1 (first read) or 2 (re-read) |
| detail | measurement answers: the rest of the measurement as JSON (components, method, points); else "" |

`unblinding_key_csv(session, path)` — case_code, patient_id, patient_name, visit_id, visit_date,
visit_label, days, level, reread ("yes" for cases of the re-read subset). It is the only export that
links codes to patients: keep it apart from the answers.

CSV files are UTF-8 with a header row and "\\n" line ends. Core module: numpy + stdlib.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from discviewer.reading.session import ReadingSession

ANSWER_COLUMNS = ("reader", "case_code", "question", "answer", "confidence", "time_s", "timestamp", "read",
                  "detail")
KEY_COLUMNS = ("case_code", "patient_id", "patient_name", "visit_id", "visit_date", "visit_label", "days", "level",
               "reread")


def _num(v) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return repr(v)
    return str(v)


def answer_text(question, value) -> str:
    """The CSV text of one stored answer value (see the module docstring)."""
    if value is None:
        return ""
    if question.type == "measurement":
        return _num(value.get("value")) if isinstance(value, dict) else _num(value)
    if question.type == "multi":
        return ";".join(str(v) for v in value)
    if question.type == "yesno":
        return "yes" if value else "no"
    if isinstance(value, float):
        return _num(value)
    return str(value)


def answer_rows(session: ReadingSession) -> list[dict]:
    rows = []
    for reader in sorted({a.reader for a in session.answers.values()}):
        for read in sorted({a.read for a in session.records(reader)}):
            pos = {c: i for i, c in enumerate(session.order_for(reader, read))}
            for rec in sorted(session.records(reader, read), key=lambda a: (pos.get(a.case, 1 << 30), a.case)):
                for q in session.questions:
                    stored = rec.values.get(q.id) or {}
                    value = stored.get("value")
                    conf = stored.get("confidence")
                    detail = ""
                    if q.type == "measurement" and isinstance(value, dict):
                        rest = {k: v for k, v in value.items() if k != "value"}
                        detail = json.dumps(rest, ensure_ascii=False, sort_keys=True) if rest else ""
                    rows.append({"reader": reader, "case_code": rec.case, "question": q.id,
                                 "answer": answer_text(q, value), "confidence": "" if conf is None else str(conf),
                                 "time_s": f"{rec.duration_s:.3f}", "timestamp": rec.answered_at(q.id),
                                 "read": rec.read, "detail": detail})
    return rows


def _write(path, columns, rows) -> Path:
    p = Path(path)
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return p


def answers_csv(session: ReadingSession, path) -> Path:
    """Write the answers in long format (see the module docstring)."""
    return _write(path, ANSWER_COLUMNS, answer_rows(session))


def key_rows(session: ReadingSession) -> list[dict]:
    reread = set(session.reread_codes)
    return [{"case_code": c.code, "patient_id": c.patient_id, "patient_name": c.patient_name,
             "visit_id": c.visit_id, "visit_date": c.visit_date, "visit_label": c.visit_label,
             "days": "" if c.days is None else c.days, "level": c.level or "",
             "reread": "yes" if c.code in reread else "no"} for c in session.cases]


def unblinding_key_csv(session: ReadingSession, path) -> Path:
    """Write the unblinding key: case code → patient, visit, date, label, days, level."""
    return _write(path, KEY_COLUMNS, key_rows(session))


# ------------------------------------------------------------------------------------------------ tables

def scalar_answer(question, value):
    """The value agreement statistics use: a measurement's "value", else the stored value."""
    if question.type == "measurement" and isinstance(value, dict):
        return value.get("value")
    return value


def rating_matrix(session: ReadingSession, question_id: str, read: int = 1, readers=None):
    """(case codes, readers, ratings, categories) for inter-reader agreement: `ratings[i, j]` is
    reader j's answer to case i, over the cases (sorted by code) that every reader answered (non-empty).
    Numeric questions give a float array and categories None; categorical ones an object array and
    the question's full category list (unused categories included)."""
    q = session.question(question_id)
    readers = list(readers) if readers is not None else [r for r in session.readers if session.records(r, read)]
    codes, rows = [], []
    for code in sorted(session.codes_for_read(read)):
        vals = []
        for r in readers:
            rec = session.record(r, code, read)
            v = scalar_answer(q, rec.value(q.id)) if rec is not None else None
            if v is None:
                break
            vals.append(v)
        else:
            if readers:
                codes.append(code)
                rows.append(vals)
    if q.is_numeric:
        arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(readers))
        return codes, readers, arr, None
    arr = np.empty((len(rows), len(readers)), dtype=object)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            arr[i, j] = v
    return codes, readers, arr, q.categories() if q.is_categorical else None


def reread_pairs(session: ReadingSession, question_id: str, reader: str):
    """(case codes, read-1 values, read-2 values) of one reader over the re-read cases answered in both
    reads (non-empty), sorted by code — for intra-reader agreement. Numeric questions give float arrays."""
    q = session.question(question_id)
    codes, v1, v2 = [], [], []
    for code in sorted(session.reread_codes):
        a, b = session.record(reader, code, 1), session.record(reader, code, 2)
        if a is None or b is None:
            continue
        x, y = scalar_answer(q, a.value(q.id)), scalar_answer(q, b.value(q.id))
        if x is None or y is None:
            continue
        codes.append(code)
        v1.append(x)
        v2.append(y)
    if q.is_numeric:
        return codes, np.asarray(v1, dtype=np.float64), np.asarray(v2, dtype=np.float64)
    return codes, v1, v2

"""What a blinded reader may see: neutral series titles, the neutral window title, and the list of
strings that must never appear for a case (`identifying_strings`, used by the leak tests of the
reading UI and of reader packages).

Readers are blinded to patient identity, all dates and times, the visit label and days since
baseline, and other readers' answers. A case is shown by its code only ("case C417"); a series by
its role and plane ("T2 sagittal"), never by its description (descriptions carry site, date and
protocol words such as "follow-up"); the window title is "Blinded read — case C417 (4 of 20)".

Core module: stdlib only.
"""
from __future__ import annotations

import datetime as _dt
import os
import re

from discviewer.reading.session import Case, ReadingSession

APP_TITLE = "Blinded read"
REREAD_TITLE = "Blinded re-read"

PLANE_NAMES = {"sag": "sagittal", "cor": "coronal", "ax": "axial", "obl": "oblique",
               "sagittal": "sagittal", "coronal": "coronal", "axial": "axial", "oblique": "oblique"}

#: role value → sequence word of the neutral title (the plane is added separately)
ROLE_WORDS = {"T2 sag": "T2", "T1 sag": "T1", "T2* GRE": "T2* GRE", "multi-echo GRE": "multi-echo GRE",
              "STIR sag": "STIR", "T2 ax": "T2", "localizer": "localizer", "other": "series"}

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def neutral_series_title(entry_or_role, plane: str | None = None, index: int | None = None) -> str:
    """"T2 sagittal", "T2* GRE sagittal", "multi-echo GRE axial (2)": from the series role and the
    plane shown (default: the entry's acquisition plane), never from the description. `index` > 1
    numbers repeated titles."""
    role = getattr(entry_or_role, "role", entry_or_role)
    role = getattr(role, "value", role)
    if plane is None:
        plane = getattr(entry_or_role, "plane", "") or ""
    word = ROLE_WORDS.get(str(role), "series")
    pname = PLANE_NAMES.get(str(plane).lower(), "")
    title = f"{word} {pname}".strip()
    if index is not None and index > 1:
        title += f" ({index})"
    return title


def blinded_title(session: ReadingSession, case: Case | str, reader: str | None = None, read: int = 1) -> str:
    """The window title while reading a case: "Blinded read — case C417 (4 of 20)" (the position in
    this reader's order when `reader` is given)."""
    code = case.code if isinstance(case, Case) else str(case)
    head = APP_TITLE if read == 1 else REREAD_TITLE
    title = f"{head} — case {code}"
    if reader is not None:
        order = session.order_for(reader, read)
        if code in order:
            title += f" ({order.index(code) + 1} of {len(order)})"
    return title


def date_forms(d: _dt.date) -> list[str]:
    """The ways a date is commonly written (DICOM, ISO, European, US, with month names)."""
    y, m, day = d.year, d.month, d.day
    mon = _MONTHS[m - 1]
    return [f"{y:04d}{m:02d}{day:02d}", f"{y:04d}-{m:02d}-{day:02d}", f"{y:04d}.{m:02d}.{day:02d}",
            f"{y:04d}/{m:02d}/{day:02d}", f"{day:02d}.{m:02d}.{y:04d}", f"{day}.{m}.{y:04d}",
            f"{day:02d}/{m:02d}/{y:04d}", f"{m:02d}/{day:02d}/{y:04d}", f"{day:02d}-{m:02d}-{y:04d}",
            f"{day} {mon} {y}", f"{day:02d} {mon} {y}", f"{mon} {day}, {y}", f"{day}-{mon}-{y}",
            d.strftime("%d %B %Y"), d.strftime("%B %d, %Y")]


def _name_forms(name: str) -> list[str]:
    name = (name or "").strip()
    if not name:
        return []
    parts = [p.strip() for p in re.split(r"[\^,]", name) if p.strip()]
    out = [name, name.replace("^", " ").strip(), " ".join(reversed(parts)), ", ".join(parts)]
    out += [p for p in parts if len(p) >= 3]  # family and given names on their own
    return out


def _day_forms(days: int | None) -> list[str]:
    if days is None:
        return []
    return [f"day {days}", f"{days} days", f"{days} d", f"+{days} d", f"d{days}", f"day{days}"]


def identifying_strings(study, case: Case) -> list[str]:
    """Every string that must not appear anywhere a blinded reader sees `case`: the patient's name
    (as stored, with spaces, reversed, and its parts of ≥ 3 characters) and ID; for every visit of
    the patient its date in common formats, label, days since baseline ("day 91", "91 days"…),
    study description and StudyInstanceUID; every series description and SeriesInstanceUID; every
    source file path, its basename and its folder. Unique, longest first; empty strings dropped.
    Match case-insensitively (`find_leaks`)."""
    out: list[str] = [case.patient_id, *(_name_forms(case.patient_name)), case.visit_id, case.visit_label,
                      *_day_forms(case.days)]
    if case.visit_date:
        out += date_forms(_dt.date.fromisoformat(case.visit_date))
    patient = None
    if study is not None:
        for p in study.patients:
            if p.id == case.patient_id:
                patient = p
                break
    if patient is not None:
        out += _name_forms(patient.name)
        for v in patient.visits:
            out += [v.id, v.label, v.default_label, v.description, *_day_forms(v.days)]
            if v.date is not None:
                out += date_forms(v.date)
            for e in v.series:
                out += [e.description, e.series_uid]
                for c in e.echoes:
                    info = c.info
                    out += [info.series_description, info.study_description, info.patient_id,
                            *_name_forms(info.patient_name), info.source_path]
                    if info.study_date:
                        out.append(info.study_date)
                    for f in getattr(c, "frames", ()):
                        path = str(f.path)
                        out += [path, os.path.basename(path), os.path.dirname(path), f.sop_uid]
    for s in case.series:
        out.append(s.series_uid)
    seen: set[str] = set()
    uniq = []
    for s in out:
        s = (s or "").strip()
        if s and s.lower() not in seen:
            seen.add(s.lower())
            uniq.append(s)
    return sorted(uniq, key=lambda s: (-len(s), s))


def find_leaks(text: str, forbidden) -> list[str]:
    """The forbidden strings that occur in `text` (case-insensitive; a string that is a plain word or
    number must stand alone — not inside a longer word or number)."""
    low = text.lower()
    found = []
    for s in forbidden:
        t = s.lower()
        if not t:
            continue
        pattern = re.escape(t)
        if t[0].isalnum():
            pattern = r"(?<![0-9a-z])" + pattern
        if t[-1].isalnum():
            pattern = pattern + r"(?![0-9a-z])"
        if re.search(pattern, low):
            found.append(s)
    return found

"""The review model: Study → Patient → Visit → SeriesEntry, built from a `ScanResult`.

- A **patient** is one PatientID. Its **visits** are its studies (one StudyInstanceUID each; several
  studies on the same day stay separate visits), ordered by StudyDate, then by StudyInstanceUID
  compared component-wise as numbers (a stable, if not always chronological, order for same-day
  studies). Undated studies come last.
- `Visit.days` = days since the patient's first dated visit (the baseline); None when undated.
- `Visit.label` defaults to a label from `days` (`default_visit_label`): 0 → "baseline"; within
  the tolerance of a standard time point → "3 m", "6 m", "12 m", "18 m", "24 m", "36 m", "48 m",
  "60 m"; otherwise "day N" below 60 days and "N m" (nearest month of 30.44 days) above. The
  tolerance of a time point of nominal D days is max(14, 0.15·D) days (3 m: 76–104 days, 6 m:
  153–207, 12 m: 311–419, 24 m: 621–839); where two overlap the nearest nominal wins. Default
  labels are made unique within a patient by appending " (2)", " (3)", … in visit order (e.g.
  three same-day studies → "baseline", "baseline (2)", "baseline (3)"). Undated → "visit N".
  `Visit.set_label` overrides the default; `set_label(None)` or "" goes back to it.
- A **series entry** groups the candidates of one SeriesInstanceUID that share an orientation,
  matrix and complex part (magnitude/phase) — so the echoes of a multi-echo series form one entry
  (`echoes`, sorted by TE) while a 3-plane localizer gives one entry per plane and a
  magnitude/phase series two entries. If an echo time repeats inside such a group (overlapping
  acquisitions the scan split apart), each repeat opens a further entry.
- Each entry's role is guessed by `discviewer.roles.guess_role` (with its reason) and can be
  corrected with `set_role`.

Changes (label, role) are announced on the object's `changed` Signal as `events.Change`, only
when the value really changes; `Study.changed` relays the changes of all its visits and entries.
Core module: no Qt, no VTK.
"""
from __future__ import annotations

import datetime as _dt
import re
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

from discviewer.events import Observable, Signal
from discviewer.io.scan import plane_name
from discviewer.roles import Role, guess_role, parse_role

#: (months, nominal days) of the standard follow-up time points
STANDARD_TIMEPOINTS: tuple[tuple[int, int], ...] = (
    (3, 90), (6, 180), (12, 365), (18, 548), (24, 730), (36, 1095), (48, 1461), (60, 1826))
TOLERANCE_MIN_DAYS = 14
TOLERANCE_FRACTION = 0.15
DAYS_PER_MONTH = 30.44
DAY_LABEL_BELOW = 60  # days; "day N" below, "N m" from here on


def timepoint_tolerance(nominal_days: int) -> float:
    return max(TOLERANCE_MIN_DAYS, TOLERANCE_FRACTION * nominal_days)


def default_visit_label(days: int | None) -> str:
    """The default label of a visit `days` after baseline (see the module docstring)."""
    if days is None:
        return ""
    if days == 0:
        return "baseline"
    if days < 0:
        return f"day {days}"
    best = None
    for months, nominal in STANDARD_TIMEPOINTS:
        dist = abs(days - nominal)
        if dist <= timepoint_tolerance(nominal) and (best is None or dist < best[0]):
            best = (dist, months)
    if best is not None:
        return f"{best[1]} m"
    if days < DAY_LABEL_BELOW:
        return f"day {days}"
    return f"{int(round(days / DAYS_PER_MONTH))} m"


def parse_date(text: str) -> _dt.date | None:
    """DICOM DA ("YYYYMMDD", also tolerating "YYYY.MM.DD" / "YYYY-MM-DD") → date; None if absent or bad."""
    digits = re.sub(r"[^0-9]", "", text or "")
    if len(digits) != 8:
        return None
    try:
        return _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def _uid_key(uid: str) -> tuple:
    parts = []
    for p in uid.split("."):
        parts.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return tuple(parts)


def plane_of(candidate) -> str:
    """'sag'/'cor'/'ax'/'obl' from the candidate's orientation, else from its affine; '' if neither."""
    if getattr(candidate, "orientation", None) is not None:
        return plane_name(candidate.orientation)
    affine = getattr(candidate, "affine", None)
    if affine is not None:
        a = np.asarray(affine, dtype=np.float64)[:3, :3]
        r, c = a[:, 0], a[:, 1]
        if np.linalg.norm(r) > 0 and np.linalg.norm(c) > 0:
            return plane_name(tuple(r / np.linalg.norm(r)) + tuple(c / np.linalg.norm(c)))
    return ""


# -------------------------------------------------------------------------------------------------


class SeriesEntry(Observable):
    """The candidates of one series (one per echo, sorted by TE), with a role."""

    def __init__(self, echoes: list, *, visit_id: str = "", index: int = 0) -> None:
        super().__init__()
        if not echoes:
            raise ValueError("a SeriesEntry needs at least one candidate")
        self.echoes = sorted(echoes, key=lambda c: (c.info.echo_time is None, c.info.echo_time or 0.0,
                                                    c.info.echo_number or 0))
        self.visit_id = visit_id
        self.plane = plane_of(self.echoes[0])
        first = self.echoes[0]
        self.key = f"{first.info.series_uid}|{self.plane}|{first.info.complex_part}|{index}"
        role, reason = guess_role(first.info, n_echoes=len(self.echoes), plane=self.plane,
                                  is_localizer=any(c.is_localizer for c in self.echoes))
        self.guessed_role: Role = role
        self.role_reason: str = reason
        self._role: Role = role

    # identity -------------------------------------------------------------------------------
    @property
    def info(self):
        return self.echoes[0].info

    @property
    def series_uid(self) -> str:
        return self.info.series_uid

    @property
    def series_number(self) -> int | None:
        return self.info.series_number

    @property
    def description(self) -> str:
        return self.info.series_description

    @property
    def n_echoes(self) -> int:
        return len(self.echoes)

    @property
    def echo_times(self) -> list[float | None]:
        return [c.info.echo_time for c in self.echoes]

    @property
    def title(self) -> str:
        """Short display text: '3 T2 TSE SAG · sag · 5 echoes'."""
        head = " ".join(p for p in (str(self.series_number) if self.series_number is not None else "",
                                    self.description or self.info.sequence_name or "series") if p)
        parts = [head]
        if self.plane:
            parts.append(self.plane)
        if self.n_echoes > 1:
            parts.append(f"{self.n_echoes} echoes")
        if self.info.complex_part and self.info.complex_part != "MAGNITUDE":
            parts.append(self.info.complex_part.lower())
        return " · ".join(parts)

    def candidate(self, echo_index: int = 0):
        """The candidate of one echo (0 = shortest TE; negative indices count from the longest)."""
        n = len(self.echoes)
        if not -n <= echo_index < n:
            raise IndexError(f"echo index {echo_index} out of range: {self.title} has {n} echo(es)")
        return self.echoes[echo_index]

    # role -------------------------------------------------------------------------------
    @property
    def role(self) -> Role:
        return self._role

    @property
    def role_is_guessed(self) -> bool:
        return self._role == self.guessed_role

    def set_role(self, role: str | Role) -> bool:
        """Correct the role; returns True (and emits `Change(entry, "role", old, new)`) if it changed."""
        return self._set("role", parse_role(role))

    def reset_role(self) -> bool:
        return self._set("role", self.guessed_role)

    def __repr__(self) -> str:
        return f"SeriesEntry({self.title!r}, role={self.role.value!r})"


class Visit(Observable):
    """One study of a patient: its date, days since baseline, label and series entries."""

    def __init__(self, study_uid: str, *, patient_id: str = "", date: _dt.date | None = None,
                 description: str = "", series: list[SeriesEntry] | None = None) -> None:
        super().__init__()
        self.id = study_uid
        self.study_uid = study_uid
        self.patient_id = patient_id
        self.date = date
        self.description = description
        self.series: list[SeriesEntry] = list(series or [])
        self.days: int | None = None
        self.index = 0  # position in the patient's visit list
        self.default_label = ""
        self._label = ""

    @property
    def label(self) -> str:
        return self._label

    @property
    def label_is_default(self) -> bool:
        return self._label == self.default_label

    def set_label(self, label: str | None) -> bool:
        """Set the label (stripped); None or "" restores the default. True if it changed (and emitted)."""
        text = (label or "").strip()
        return self._set("label", text or self.default_label)

    def entries(self, role: str | Role | None = None, plane: str | None = None) -> list[SeriesEntry]:
        """Entries with this role (and acquisition plane), in series-number order."""
        r = parse_role(role) if role is not None else None
        return [e for e in self.series if (r is None or e.role == r) and (plane is None or e.plane == plane)]

    def entry(self, key: str) -> SeriesEntry:
        for e in self.series:
            if e.key == key:
                return e
        raise KeyError(key)

    def __repr__(self) -> str:
        return f"Visit({self.label!r}, days={self.days}, {len(self.series)} series)"


class Patient:
    def __init__(self, patient_id: str, name: str = "", visits: list[Visit] | None = None) -> None:
        self.id = patient_id
        self.patient_id = patient_id
        self.name = name
        self.visits: list[Visit] = list(visits or [])

    @property
    def baseline(self) -> Visit | None:
        return self.visits[0] if self.visits else None

    def visit(self, key: str) -> Visit:
        """A visit by id (StudyInstanceUID) or, failing that, by label (case-insensitive)."""
        for v in self.visits:
            if v.id == key:
                return v
        for v in self.visits:
            if v.label.lower() == key.strip().lower():
                return v
        raise KeyError(f"patient {self.id!r} has no visit {key!r}")

    def __repr__(self) -> str:
        return f"Patient({self.id!r}, {len(self.visits)} visits)"


class Study:
    """All patients of a scan. `changed` relays every `Change` of its visits and series entries."""

    def __init__(self, patients: list[Patient] | None = None) -> None:
        self.patients: list[Patient] = list(patients or [])
        self.changed = Signal()
        self._unsubs = []
        for p in self.patients:
            for v in p.visits:
                self._unsubs.append(v.changed.subscribe(self.changed.emit))
                for e in v.series:
                    self._unsubs.append(e.changed.subscribe(self.changed.emit))

    @classmethod
    def from_scan(cls, result) -> "Study":
        """Build the model from a `ScanResult` (or any iterable of `VolumeCandidate`)."""
        candidates = list(getattr(result, "series", result))
        return cls(build_patients(candidates))

    def visits(self) -> Iterable[Visit]:
        for p in self.patients:
            yield from p.visits

    def patient(self, patient_id: str) -> Patient:
        for p in self.patients:
            if p.id == patient_id:
                return p
        raise KeyError(patient_id)

    def close(self) -> None:
        for u in self._unsubs:
            u()
        self._unsubs = []


# -------------------------------------------------------------------------------------------------
# building


def _entry_group_key(c) -> tuple:
    ori = tuple(round(v, 3) + 0.0 for v in c.orientation) if c.orientation is not None else None
    return (c.info.series_uid, ori, c.rows, c.columns, c.info.complex_part)


def build_entries(candidates: list, visit_id: str = "") -> list[SeriesEntry]:
    """Group one study's candidates into series entries (see the module docstring)."""
    groups: OrderedDict[tuple, list] = OrderedDict()
    for c in candidates:
        groups.setdefault(_entry_group_key(c), []).append(c)
    entries: list[SeriesEntry] = []
    for cands in groups.values():
        # split repeated echo times into further entries, in scan order
        stacks: list[list] = []
        for c in cands:
            te = c.info.echo_time if c.info.echo_time is not None else ("n", c.info.echo_number)
            for stack in stacks:
                if all((x.info.echo_time if x.info.echo_time is not None else ("n", x.info.echo_number)) != te
                       for x in stack):
                    stack.append(c)
                    break
            else:
                stacks.append([c])
        for i, stack in enumerate(stacks):
            entries.append(SeriesEntry(stack, visit_id=visit_id, index=i))
    entries.sort(key=lambda e: (e.series_number if e.series_number is not None else 1 << 30, e.series_uid,
                                e.plane, e.info.complex_part, e.key))
    return entries


def build_patients(candidates: list) -> list[Patient]:
    by_patient: OrderedDict[str, tuple[str, OrderedDict[str, list]]] = OrderedDict()
    for c in candidates:
        pid = c.info.patient_id
        if pid not in by_patient:
            by_patient[pid] = (c.info.patient_name, OrderedDict())
        by_patient[pid][1].setdefault(c.info.study_uid, []).append(c)
    patients = []
    for pid in sorted(by_patient):
        name, studies = by_patient[pid]
        visits = []
        for uid, cands in studies.items():
            info = cands[0].info
            visits.append(Visit(uid, patient_id=pid, date=parse_date(info.study_date),
                                description=info.study_description, series=build_entries(cands, uid)))
        visits.sort(key=lambda v: (v.date is None, v.date or _dt.date.min, _uid_key(v.id)))
        _assign_days_and_labels(visits)
        patients.append(Patient(pid, name, visits))
    return patients


def _assign_days_and_labels(visits: list[Visit]) -> None:
    dated = [v.date for v in visits if v.date is not None]
    base = dated[0] if dated else None
    seen: dict[str, int] = {}
    for i, v in enumerate(visits):
        v.index = i
        v.days = (v.date - base).days if (v.date is not None and base is not None) else None
        label = default_visit_label(v.days) or f"visit {i + 1}"
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} ({seen[label]})"
        v.default_label = label
        v._label = label

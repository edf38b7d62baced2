"""The de-identification policy of exports: who a patient is called and which UIDs and dates leave.

`ExportPolicy(identifying=False, pseudonyms={patient_id: pseudonym}, uid_salt=...)` is passed to
every export (tables, HDF5, DICOM SR / SC). **De-identified is the default**:

- the patient is named by a pseudonym ("P01"), never by name or ID; a pseudonym is required for
  every exported patient (a missing one raises — an export never falls back to the ID);
- visits are named by their label ("baseline", "3 m") and the day relative to the patient's baseline
  (`Visit.days`); no study, series, acquisition or birth date is written;
- UIDs of the source objects (study, series, SOP instances) are replaced by
  `discviewer.deid.hashed_uid(uid, uid_salt)` — the same remapping that `discviewer.deid.Deidentifier`
  applies with the same salt, so an SR's references point at the images of a de-identified image
  export made with `Deidentifier(policy.uid_salt)`, and repeated exports land in the same
  de-identified study. The salt links nothing by itself but must stay with the workspace (it is
  not written into exports).
- Times of *our* actions (measurement timestamps, the SR's content date/time = creation time) are
  kept: they say when a reader measured, not when the patient was scanned.

`identifying=True` (an explicit opt-in) writes patient IDs, names (DICOM only), dates and the original UIDs.

`policy_for(workspace)` gives the workspace's default policy: pseudonyms "P01", "P02", … in
patient order, stored in `workspace.settings["export"]["pseudonyms"]` the first time so they stay
stable when patients are added later (new patients get the next free number), and a random UID salt
stored beside them (`settings["export"]["uid_salt"]`). Storing marks the workspace modified.

`RESEARCH_USE_NOTICE` is the sentence every export carries.

Core module: stdlib only (plus `discviewer.deid` for the UID hash).
"""
from __future__ import annotations

import datetime as _dt
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

import discviewer

#: the notice every export carries (ASCII, so it fits DICOM's default character repertoire)
RESEARCH_USE_NOTICE = "Research use only - not for diagnostic use"
#: workspace.settings key of the stored export policy values
SETTINGS_KEY = "export"


def app_version() -> str:
    return discviewer.__version__


@dataclass(frozen=True)
class ExportPolicy:
    """See the module docstring. `pseudonyms` maps patient ID → pseudonym."""

    identifying: bool = False
    pseudonyms: Mapping[str, str] = field(default_factory=dict)
    uid_salt: str = ""

    def __post_init__(self) -> None:
        if not self.identifying and not self.uid_salt:
            raise ValueError("a de-identifying ExportPolicy needs a uid_salt (use policy_for(workspace))")
        seen: dict[str, str] = {}
        for pid, code in self.pseudonyms.items():
            if not str(code).strip():
                raise ValueError("empty pseudonym for a patient")
            if code in seen:
                raise ValueError(f"pseudonym {code!r} is given to two patients")
            seen[code] = pid

    # ------------------------------------------------------------------ patients
    def pseudonym(self, patient_id: str) -> str:
        try:
            return str(self.pseudonyms[patient_id])
        except KeyError:
            raise KeyError("no pseudonym for a patient of this export (policy_for(workspace) assigns them)") from None

    def patient_label(self, patient_id: str) -> str:
        """What names the patient in exports: the ID when identifying, else the pseudonym."""
        return str(patient_id) if self.identifying else self.pseudonym(patient_id)

    def patient_name(self, patient_id: str, name: str = "") -> str:
        """DICOM Patient's Name: the name when identifying, else the pseudonym."""
        return str(name) if self.identifying else self.pseudonym(patient_id)

    # ------------------------------------------------------------------ UIDs and dates
    def uid(self, uid: str) -> str:
        """A source UID as exports write it (remapped unless identifying; "" stays "")."""
        uid = str(uid or "").strip().rstrip("\x00")
        if self.identifying or not uid:
            return uid
        from discviewer.deid import hashed_uid

        return hashed_uid(uid, self.uid_salt)

    def date(self, value) -> str:
        """A date as exports write it: ISO "YYYY-MM-DD" when identifying, else ""."""
        if self.identifying and value:
            return value.isoformat() if isinstance(value, (_dt.date, _dt.datetime)) else str(value)
        return ""

    def deidentifier(self):
        """A `discviewer.deid.Deidentifier` with this policy's salt (None when identifying)."""
        if self.identifying:
            return None
        from discviewer.deid import Deidentifier

        return Deidentifier(self.uid_salt)


def _patient_ids(workspace) -> list[str]:
    if workspace.study is not None:
        return [p.id for p in workspace.study.patients]
    return [p.id for p in workspace.patients]


def default_pseudonyms(patient_ids, existing: Mapping[str, str] | None = None, prefix: str = "P") -> dict[str, str]:
    """`existing` completed with `prefix` + a two-digit number (the next free one) for new patients."""
    out = dict(existing or {})
    used = set()
    for code in out.values():
        m = re.fullmatch(re.escape(prefix) + r"(\d+)", str(code))
        if m:
            used.add(int(m.group(1)))
    n = 1
    for pid in patient_ids:
        if pid in out:
            continue
        while n in used:
            n += 1
        out[pid] = f"{prefix}{n:02d}"
        used.add(n)
    return out


def policy_for(workspace, *, identifying: bool = False, store: bool = True) -> ExportPolicy:
    """The workspace's policy (module docstring); `store=False` leaves the workspace untouched."""
    settings = workspace.settings if isinstance(workspace.settings, dict) else {}
    stored = settings.get(SETTINGS_KEY) if isinstance(settings.get(SETTINGS_KEY), dict) else {}
    old_pseudonyms = {str(k): str(v) for k, v in (stored.get("pseudonyms") or {}).items()}
    pseudonyms = default_pseudonyms(_patient_ids(workspace), old_pseudonyms)
    salt = str(stored.get("uid_salt") or "") or secrets.token_hex(16)
    if store and (pseudonyms != old_pseudonyms or salt != stored.get("uid_salt")):
        workspace.settings = dict(settings)
        workspace.settings[SETTINGS_KEY] = dict(stored, pseudonyms=pseudonyms, uid_salt=salt)
        if hasattr(workspace, "mark_modified"):
            workspace.mark_modified("export pseudonyms")
    return ExportPolicy(identifying=identifying, pseudonyms=pseudonyms, uid_salt=salt)


__all__ = ["RESEARCH_USE_NOTICE", "SETTINGS_KEY", "ExportPolicy", "app_version", "default_pseudonyms", "policy_for"]

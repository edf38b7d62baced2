"""Query filters and result records of PACS queries, shared by the DIMSE and DICOMweb transports.

`QueryFilter` holds what a user types (patient ID or name, study date range, modality, description,
UIDs); `PatientRecord` / `StudyRecord` / `SeriesRecord` / `InstanceRecord` are the plain rows of a
result table, made from a C-FIND identifier or a QIDO-RS JSON object (both pydicom `Dataset`s here).
Matching rules: names and descriptions without a wildcard match as "contains" (`*text*`); IDs,
modality and UIDs match exactly; dates are inclusive ranges (either end may be open).

Core module: stdlib + pydicom.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, replace

from pydicom.multival import MultiValue

LEVELS = ("patient", "study", "series")


def dicom_date(value) -> str:
    """'' or YYYYMMDD from a date, 'YYYY-MM-DD', 'YYYYMMDD' or 'YYYY.MM.DD'; ValueError otherwise."""
    if value is None or value == "":
        return ""
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.strftime("%Y%m%d")
    s = re.sub(r"[-./]", "", str(value).strip())
    if not re.fullmatch(r"\d{8}", s):
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD or YYYYMMDD)")
    _dt.datetime.strptime(s, "%Y%m%d")  # raises on 20241399
    return s


def contains(text: str) -> str:
    """A DICOM wildcard pattern: the text itself if it has * or ?, else *text*; '' stays ''."""
    t = (text or "").strip()
    if not t or "*" in t or "?" in t:
        return t
    return f"*{t}*"


@dataclass(frozen=True)
class QueryFilter:
    """What to look for; empty fields match everything."""

    patient_id: str = ""
    patient_name: str = ""
    date_from: str = ""  # inclusive, YYYYMMDD (or a date; normalised by `normalised`)
    date_to: str = ""
    modality: str = ""  # e.g. "MR"; at study level matched against ModalitiesInStudy
    description: str = ""  # study description (study level) or series description (series level)
    study_uid: str = ""
    series_uid: str = ""

    def normalised(self) -> "QueryFilter":
        return replace(self, patient_id=self.patient_id.strip(), patient_name=self.patient_name.strip(),
                       date_from=dicom_date(self.date_from), date_to=dicom_date(self.date_to),
                       modality=self.modality.strip().upper(), description=self.description.strip(),
                       study_uid=self.study_uid.strip(), series_uid=self.series_uid.strip())

    @property
    def date_range(self) -> str:
        """The DICOM range matching value ('' = any date)."""
        f = self.normalised()
        if not f.date_from and not f.date_to:
            return ""
        if f.date_from == f.date_to:
            return f.date_from
        return f"{f.date_from}-{f.date_to}"

    @property
    def patient_only(self) -> bool:
        """True when only patient attributes are set (a PATIENT-level query can answer it)."""
        f = self.normalised()
        return not (f.date_from or f.date_to or f.modality or f.description or f.study_uid or f.series_uid)


def _s(ds, keyword: str) -> str:
    v = ds.get(keyword, "") if ds is not None else ""
    if v is None:
        return ""
    if isinstance(v, (list, tuple, MultiValue)):
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def _i(ds, keyword: str) -> int | None:
    s = _s(ds, keyword)
    try:
        return int(float(s)) if s else None
    except ValueError:
        return None


@dataclass(frozen=True)
class PatientRecord:
    patient_id: str
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    n_studies: int | None = None

    level = "patient"

    @classmethod
    def from_dataset(cls, ds) -> "PatientRecord":
        return cls(_s(ds, "PatientID"), _s(ds, "PatientName"), _s(ds, "PatientBirthDate"), _s(ds, "PatientSex"),
                   _i(ds, "NumberOfPatientRelatedStudies"))


@dataclass(frozen=True)
class StudyRecord:
    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_time: str = ""
    description: str = ""
    accession: str = ""
    modalities: tuple[str, ...] = ()
    n_series: int | None = None
    n_instances: int | None = None

    level = "study"

    @classmethod
    def from_dataset(cls, ds) -> "StudyRecord":
        mods = tuple(m for m in _s(ds, "ModalitiesInStudy").split("\\") if m)
        return cls(_s(ds, "StudyInstanceUID"), _s(ds, "PatientID"), _s(ds, "PatientName"), _s(ds, "StudyDate"),
                   _s(ds, "StudyTime"), _s(ds, "StudyDescription"), _s(ds, "AccessionNumber"), mods,
                   _i(ds, "NumberOfStudyRelatedSeries"), _i(ds, "NumberOfStudyRelatedInstances"))


@dataclass(frozen=True)
class SeriesRecord:
    study_uid: str
    series_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_description: str = ""
    modality: str = ""
    series_number: int | None = None
    description: str = ""
    n_instances: int | None = None

    level = "series"

    @classmethod
    def from_dataset(cls, ds, study: StudyRecord | None = None) -> "SeriesRecord":
        st = study or StudyRecord("")
        return cls(_s(ds, "StudyInstanceUID") or st.study_uid, _s(ds, "SeriesInstanceUID"),
                   _s(ds, "PatientID") or st.patient_id, _s(ds, "PatientName") or st.patient_name,
                   _s(ds, "StudyDate") or st.study_date, _s(ds, "StudyDescription") or st.description,
                   _s(ds, "Modality"), _i(ds, "SeriesNumber"), _s(ds, "SeriesDescription"),
                   _i(ds, "NumberOfSeriesRelatedInstances"))

    def label(self) -> str:
        num = f"#{self.series_number} " if self.series_number is not None else ""
        return f"{num}{self.description or self.modality or 'series'} ({self.study_date or 'no date'})"


@dataclass(frozen=True)
class InstanceRecord:
    sop_uid: str
    sop_class_uid: str = ""
    instance_number: int | None = None

    @classmethod
    def from_dataset(cls, ds) -> "InstanceRecord":
        return cls(_s(ds, "SOPInstanceUID"), _s(ds, "SOPClassUID"), _i(ds, "InstanceNumber"))

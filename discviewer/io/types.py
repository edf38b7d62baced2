"""Plain result types of the DICOM scan: candidates, per-frame references and problems.

A *volume candidate* is one loadable 3-D volume found by `discviewer.io.scan`: one series
split by orientation, echo, image type (magnitude/phase/…) and overlapping acquisitions.
Core module: no Qt, no VTK.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from discviewer.volume import SeriesInfo


@dataclass(frozen=True)
class FrameRef:
    """Where one 2-D image of a candidate lives: a file, and a frame index for multi-frame files."""

    path: str
    frame: int = 0  # 0-based frame number inside a multi-frame file
    position: tuple[float, float, float] | None = None  # ImagePositionPatient
    instance_number: int | None = None
    sop_uid: str = ""  # SOPInstanceUID of the file ("" for NIfTI)


@dataclass
class Problem:
    """A file the scan could not use, with a one-line reason a user understands."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class VolumeCandidate:
    """One loadable volume found by the scan (headers only; no pixels read yet)."""

    info: SeriesInfo
    frames: list[FrameRef]
    rows: int
    columns: int
    spacing: tuple[float, float, float] | None  # (column, row, slice) mm; None without geometry
    affine: np.ndarray | None  # 4×4 index→LPS; None without geometry
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient
    is_localizer: bool = False
    is_multiframe: bool = False
    warnings: list[str] = field(default_factory=list)
    label: str = ""  # short human label, e.g. "T2 FSE sag · TE 90"
    private: dict = field(default_factory=dict)  # loader hints (transfer syntax, pixel offsets, …)

    @property
    def slice_count(self) -> int:
        return len(self.frames)

    @property
    def files(self) -> list[str]:
        seen: dict[str, None] = {}
        for f in self.frames:
            seen.setdefault(f.path, None)
        return list(seen)

    @property
    def echo_time(self) -> float | None:
        return self.info.echo_time

    def to_json(self) -> dict:
        """A JSON-ready summary (used by `discviewer scan PATH --json`)."""
        return {
            "label": self.label,
            "patient_id": self.info.patient_id,
            "patient_name": self.info.patient_name,
            "study_uid": self.info.study_uid,
            "study_date": self.info.study_date,
            "study_description": self.info.study_description,
            "series_uid": self.info.series_uid,
            "series_number": self.info.series_number,
            "series_description": self.info.series_description,
            "modality": self.info.modality,
            "frame_of_reference_uid": self.info.frame_of_reference_uid,
            "sequence_name": self.info.sequence_name,
            "echo_time_ms": self.info.echo_time,
            "echo_number": self.info.echo_number,
            "repetition_time_ms": self.info.repetition_time,
            "field_strength_t": self.info.field_strength,
            "image_type": list(self.info.image_type),
            "complex_part": self.info.complex_part,
            "is_localizer": self.is_localizer,
            "is_multiframe": self.is_multiframe,
            "shape": [self.slice_count, self.rows, self.columns],
            "spacing_mm": list(self.spacing) if self.spacing else None,
            "affine": self.affine.tolist() if self.affine is not None else None,
            "files": self.files,
            "warnings": list(self.warnings),
        }


@dataclass
class StudyNode:
    uid: str
    date: str
    description: str
    series: list[VolumeCandidate] = field(default_factory=list)


@dataclass
class PatientNode:
    patient_id: str
    patient_name: str
    studies: list[StudyNode] = field(default_factory=list)


@dataclass
class ScanResult:
    """What `scan` found: candidates (flat and as a Patient → Study tree) and unusable files."""

    series: list[VolumeCandidate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files_seen: int = 0
    cancelled: bool = False

    @property
    def patients(self) -> list[PatientNode]:
        """Patient → Study → candidates, in a stable order (patient id, study date, series number)."""
        pats: dict[str, PatientNode] = {}
        studies: dict[tuple[str, str], StudyNode] = {}
        for c in self.series:
            i = c.info
            p = pats.setdefault(i.patient_id, PatientNode(i.patient_id, i.patient_name))
            key = (i.patient_id, i.study_uid)
            if key not in studies:
                studies[key] = StudyNode(i.study_uid, i.study_date, i.study_description)
                p.studies.append(studies[key])
            studies[key].series.append(c)
        out = sorted(pats.values(), key=lambda p: p.patient_id)
        for p in out:
            p.studies.sort(key=lambda s: (s.date, s.uid))
            for s in p.studies:
                s.series.sort(key=lambda c: (c.info.series_number if c.info.series_number is not None else 1 << 30,
                                             c.info.echo_time or 0.0, c.label))
        return out

    def to_json(self) -> dict:
        return {
            "files_seen": self.files_seen,
            "cancelled": self.cancelled,
            "series": [c.to_json() for c in self.series],
            "problems": [asdict(p) for p in self.problems],
        }

"""DICOM exports: measurements as a TID 1500 Structured Report, screenshots as Secondary Capture.

Built with **highdicom** (it implements TID 1500 and the SR / SC IODs, so OHIF, Slicer and dcmqi
read the result); everything here is the mapping from our records to it.

**Measurement report** (`measurement_report`): one Comprehensive 3D SR per patient × visit × reader,
TID 1500 "Imaging Measurement Report":
- Observation context: the reader as person observer, discviewer (name, version) as device observer.
- Procedure reported: SCT 363679005 "Imaging procedure".
- One TID 1501 measurement group per annotation with values, in spinal order of the levels. Tracking
  identifier: "<disc level> <annotation id>" (e.g. "L4/L5 3f2a…"), tracking UID derived from the
  annotation id (the same annotation keeps its UID across exports). Finding site: the disc
  (SCT "L4/L5 disc" …), the vertebra for `vb_height` (SCT "L4 vertebra" …), cerebrospinal fluid for
  a CSF reference ROI. Time point context (TID 1502): the visit label, its order, and the
  longitudinal temporal offset from the event "Baseline" in days (so the interval survives
  de-identification). Algorithm identification: "discviewer", the app version, and parameters
  `kind=…`, `method=…` (the annotation's method text: the values are computed by discviewer from the
  reader's points). Source images: the SOP instances of the annotation's series (and echo) whose
  slices hold its points (and its ROI slab).
- Where each value was measured (SCOORD3D, LPS mm, in the Frame of Reference of the referenced source
  images — the remapped one when de-identified, as every other UID — so OHIF / Slicer can draw it):
  ROI annotations (ellipse, polygon, freehand; an iron annotation's ROI) become TID 1410 *planar ROI*
  groups whose Image Region is the outline (`roi_region`: POLYGON closed by repeating its first point;
  ELLIPSE as the end points of its two axes, the major first); TID 1410 has no group-level source
  images, so there each measurement names them (INFERRED FROM IMAGE). Lengths and angles stay TID 1501
  groups; each measurement is INFERRED FROM the POLYLINE(s) it was measured along
  (`measurement_lines`: ruler 2 points; angle arm–vertex–arm; DHa/DHm/DHp and VBHa/VBHm/VBHp the
  upper–lower point pairs; depth_mm its two anterior–posterior lines). Values derived from other
  values (dh_mean, indices, ratios) carry none. Without source images, or when they have no Frame of
  Reference UID, a group carries no coordinates (TID 1501, as before). Graphic Data is FL (32-bit
  float): coordinates are stored to float32 precision (~2e-6 mm at 40 mm from the origin).
- Measurements (TID 300), UCUM units (`ucum_unit`: mm, mm2, mm3, /s, deg, %, {ratio}, [arb'U] for
  raw signal, {voxels}, {score}, 1), concept codes from SCT/DCM where one exists:

  | value key(s) | concept | derivation / finding-site modifier |
  |---|---|---|
  | DHa, DHm, DHp; VBHa, VBHm, VBHp | DCM 121207 Height | modifier SCT Anterior / Central / Posterior |
  | depth_mm | SCT 131197000 Depth | |
  | length_mm | SCT 410668003 Length | |
  | angle_deg | SCT 1483009 Angle | |
  | area_mm2 (ROI) | SCT 42798000 Area | |
  | mean, sd, median, min, max (ROI) | DCM 110852 MR signal intensity (DCM 126395 R2* when the unit is /s) | derivation SCT Mean / Standard Deviation / Median / Minimum / Maximum |
  | snr | DCM 111787 Signal to Noise Ratio | |
  | everything else | private, coding scheme `99DISCVIEWER` (`PRIVATE_CODES`) | |

  Private codes (scheme "99DISCVIEWER", declared in the Coding Scheme Identification Sequence):
  `PRIVATE_CODES` lists them (n_voxels, void_volume_mm3, void_area_mm2, contrast_ratio, cnr,
  pfirrmann, modic_upper, modic_lower, hiz, iron_score, iron_confidence, dh_mean, dhi_farfan,
  dhi_adjacent, dhi_masuda, signal_ratio); any other numeric value gets code "K" + 10 hex digits of
  SHA-1 of its machine name, with the machine name as code meaning. Derived rows of
  `MeasureTable` (signal ratios, SNR, height indices) go into the group of their main annotation;
  `*_pct_baseline` rows are left out (they depend on another visit's report).
- `read_measurement_report(ds)` reads such a report back into plain rows (tests, scripts).

**De-identification** (`ExportPolicy.identifying` False, the default): the source headers used as
evidence are de-identified first with `discviewer.deid.Deidentifier(policy.uid_salt)` (PS3.15 Basic
Profile; Patient's Name and ID = the pseudonym), so the report's patient and study modules carry the
pseudonym and no birth date, study date/time, accession number or physician; Study Instance UID and
every referenced UID are remapped with the same salt — **the report belongs to the remapped study**,
the same one a de-identified image export with that salt produces, and its references resolve there.
Patient Identity Removed = YES, De-identification Method (Code Sequence: DCM 113100 Basic Profile) and
Longitudinal Temporal Information Modified = REMOVED are set. The report's own Series and SOP Instance
UIDs are always fresh. Identifying exports (`identifying=True`) copy the sources' patient/study
modules and UIDs unchanged.

**Secondary Capture** (`secondary_capture`): an RGB screenshot or montage as an SC Image in the
patient's study: Study Instance UID of the visit when identifying, the remapped one (as above) when
de-identified; same patient module rules; Image Comments and Series Description carry the
research-use notice; Burned In Annotation as the caller says (default NO — the render layer draws
no name, ID or date on de-identified screenshots).

Every object says research use only: Series Description starts with "RESEARCH USE ONLY".

Core module: pydicom, highdicom, numpy.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from discviewer.atomic import atomic_path
from discviewer.export.pseudonym import RESEARCH_USE_NOTICE, ExportPolicy, app_version
from discviewer.levels import level_sort_key
from discviewer.measure_table import MeasureTable

PRIVATE_SCHEME = "99DISCVIEWER"
PRIVATE_SCHEME_NAME = "discviewer private measurement codes"
SERIES_DESCRIPTION_PREFIX = "RESEARCH USE ONLY"
MANUFACTURER = "discviewer"
#: the device observer's UID (fixed: identifies the software, not an installation)
DEVICE_UID = "2.25.163391962414352458095939218262463317029"
SR_SERIES_NUMBER = 9900
SC_SERIES_NUMBER = 9901


def _sct(value: str, meaning: str) -> Code:
    return Code(value, "SCT", meaning)


def _dcm(value: str, meaning: str) -> Code:
    return Code(value, "DCM", meaning)


def _private(value: str, meaning: str) -> Code:
    return Code(value, PRIVATE_SCHEME, meaning)


HEIGHT = _dcm("121207", "Height")
DEPTH = _sct("131197000", "Depth")
LENGTH = _sct("410668003", "Length")
ANGLE = _sct("1483009", "Angle")
AREA = _sct("42798000", "Area")
MR_SIGNAL = _dcm("110852", "MR signal intensity")
R2STAR = _dcm("126395", "R2*")
SNR = _dcm("111787", "Signal to Noise Ratio")
ANTERIOR = _sct("255549009", "Anterior")
CENTRAL = _sct("26216008", "Central")
POSTERIOR = _sct("255551008", "Posterior")
CSF = _sct("65216001", "Cerebrospinal Fluid")
DERIVATIONS = {"mean": _sct("373098007", "Mean"), "sd": _sct("386136009", "Standard Deviation"),
               "median": _sct("373099004", "Median"), "min": _sct("255605001", "Minimum"),
               "max": _sct("56851009", "Maximum")}
PROCEDURE = _sct("363679005", "Imaging procedure")

#: private codes of values without a standard concept (module docstring)
PRIVATE_CODES: dict[str, Code] = {k: _private(v, m) for k, (v, m) in {
    "n_voxels": ("NVOXELS", "Number of voxels in ROI"),
    "void_volume_mm3": ("VOIDVOLUME", "Signal void volume"),
    "void_area_mm2": ("VOIDAREA", "Signal void area, largest slice"),
    "contrast_ratio": ("VOIDCONTRAST", "Void to reference signal ratio"),
    "cnr": ("CNR", "Contrast to noise ratio"),
    "pfirrmann": ("PFIRRMANN", "Pfirrmann grade"),
    "modic_upper": ("MODICUPPER", "Modic type, upper endplate"),
    "modic_lower": ("MODICLOWER", "Modic type, lower endplate"),
    "hiz": ("HIZ", "High intensity zone present"),
    "iron_score": ("IRONSCORE", "Iron signal score"),
    "iron_confidence": ("IRONCONFIDENCE", "Iron signal confidence"),
    "dh_mean": ("DHMEAN", "Mean disc height"),
    "dhi_farfan": ("DHIFARFAN", "Disc height index (Farfan)"),
    "dhi_adjacent": ("DHIADJACENT", "Disc height index (adjacent vertebrae)"),
    "dhi_masuda": ("DHIMASUDA", "Disc height index (Masuda)"),
    "signal_ratio": ("SIGNALRATIO", "Disc to reference signal ratio"),
}.items()}
_MODIFIERS = {"a": ANTERIOR, "m": CENTRAL, "p": POSTERIOR}
_RATIO_KEYS = ("contrast_ratio", "cnr", "snr", "signal_ratio", "dhi_")
_SCORE_KEYS = ("pfirrmann", "modic_upper", "modic_lower", "hiz", "iron_score", "iron_confidence")

_UCUM = {
    "mm": ("mm", "millimeter"), "mm2": ("mm2", "square millimeter"), "mm²": ("mm2", "square millimeter"),
    "mm3": ("mm3", "cubic millimeter"), "mm³": ("mm3", "cubic millimeter"),
    "/s": ("/s", "per second"), "1/s": ("/s", "per second"), "s-1": ("/s", "per second"),
    "s⁻¹": ("/s", "per second"), "hz": ("/s", "per second"),
    "deg": ("deg", "degree"), "°": ("deg", "degree"), "%": ("%", "percent"), "ms": ("ms", "millisecond"),
    "s": ("s", "second"), "a.u.": ("[arb'U]", "arbitrary unit"), "au": ("[arb'U]", "arbitrary unit"),
}


# ------------------------------------------------------------------------------------------ codes
@dataclass(frozen=True)
class MeasureCode:
    """How one value is coded: concept name, optional derivation and finding-site modifier."""

    key: str
    concept: Code
    derivation: Code | None = None
    modifier: Code | None = None


def _base_key(name: str) -> str:
    """A measure name without its series suffix " (T2 sag)"."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", name)


def measure_code(key: str, unit: str = "") -> MeasureCode:
    """The coding of the value `key` (a value key or a derived measure name) — module docstring table."""
    base = _base_key(key)
    m = re.fullmatch(r"(DH|VBH)([amp])", base)
    if m:
        return MeasureCode(key, HEIGHT, None, _MODIFIERS[m.group(2)])
    simple = {"depth_mm": DEPTH, "length_mm": LENGTH, "angle_deg": ANGLE, "area_mm2": AREA, "snr": SNR}
    if base in simple:
        return MeasureCode(key, simple[base])
    if base in DERIVATIONS:
        concept = R2STAR if _ucum_value(unit) == "/s" else MR_SIGNAL
        return MeasureCode(key, concept, DERIVATIONS[base])
    if base in PRIVATE_CODES:
        return MeasureCode(key, PRIVATE_CODES[base])
    return MeasureCode(key, _private("K" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:10].upper(), key))


def _ucum_value(unit: str) -> str | None:
    hit = _UCUM.get(str(unit or "").strip().lower()) or _UCUM.get(str(unit or "").strip())
    return hit[0] if hit else None


def ucum_unit(unit: str, key: str = "") -> Code:
    """The UCUM code of a stored unit text; unitless values by their key: ratios "{ratio}",
    scores "{score}", voxel counts "{voxels}", anything else "1" (no units)."""
    text = str(unit or "").strip()
    hit = _UCUM.get(text.lower()) or _UCUM.get(text)
    if hit:
        return Code(hit[0], "UCUM", hit[1])
    base = _base_key(key)
    if not text:
        if base.startswith(_RATIO_KEYS) or "ratio" in base:
            return Code("{ratio}", "UCUM", "ratio")
        if base in _SCORE_KEYS:
            return Code("{score}", "UCUM", "score")
        if base == "n_voxels":
            return Code("{voxels}", "UCUM", "voxels")
        return Code("1", "UCUM", "no units")
    return Code("{" + re.sub(r"[{}\s]", "_", text) + "}", "UCUM", text)


def _finding_site_code(level: str, kind: str, extra: dict) -> Code | None:
    from pydicom.sr.codedict import codes

    if kind == "vb_height":
        name = str(extra.get("vertebra") or "")
        c = getattr(codes.SCT, f"{name}Vertebra", None) if name else None
        if c is None and name == "S1":
            c = codes.SCT.Sacrum
        return Code(c.value, c.scheme_designator, c.meaning) if c is not None else None
    if kind in ("ellipse", "polygon", "freehand") and extra.get("roi_role") in ("reference", "background"):
        return CSF if str(extra.get("tissue") or "").lower() == "csf" else None
    if level and "/" in level:
        c = getattr(codes.SCT, level.replace("/", "") + "Disc", None)
        return Code(c.value, c.scheme_designator, c.meaning) if c is not None else None
    return None


def _tracking_uid(annotation_id: str) -> str:
    if re.fullmatch(r"[0-9a-f]{32}", annotation_id or ""):
        return f"2.25.{int(annotation_id, 16)}"
    from discviewer.deid import hashed_uid

    return hashed_uid(annotation_id, "discviewer annotation")


# ------------------------------------------------------------------------------------------ geometry
def roi_region(annotation) -> tuple[str, np.ndarray] | None:
    """(graphic type, (N, 3) LPS mm) of the outline an ROI annotation (ellipse / polygon / freehand, or
    an iron annotation's ROI of kind `extra["roi_kind"]`) measured; None for other kinds.

    The points are projected onto the ROI's plane along its normal (what the ROI statistics do; a
    drawn point already lies on it). POLYGON: the outline closed by repeating the first point (unless
    the last one is it already). ELLIPSE (DICOM: the two end points of the major axis, then the two of
    the minor axis): from centre C, axis-a end A and axis-b end B, axis a runs from A to 2C − A and
    axis b from C + b to C − b, b the part of B − C orthogonal to A − C (as `PlaneROI.ellipse_axes`);
    the longer axis comes first."""
    from discviewer.measure.compute import plane_roi_of
    from discviewer.measure.roi import ROI_KINDS

    extra = annotation.extra or {}
    kind = annotation.kind
    if kind == "iron":
        kind = extra.get("roi_kind") or "polygon"
        if kind not in ROI_KINDS:
            kind = "polygon"
    elif kind not in ROI_KINDS:
        return None
    pts = np.asarray(annotation.points or [], dtype=np.float64).reshape(-1, 3)
    if len(pts) < 3 or (kind == "ellipse" and len(pts) != 3):
        return None
    roi = plane_roi_of(annotation, kind)
    n = np.asarray(roi.plane_normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    pts = pts - np.outer((pts - np.asarray(roi.plane_origin, dtype=np.float64)) @ n, n)
    if kind == "ellipse":
        c, pa, pb = pts
        va = pa - c
        la = float(np.linalg.norm(va))
        if la <= 0:
            return None
        vb = (pb - c) - va * (np.dot(pb - c, va) / la ** 2)
        if float(np.linalg.norm(vb)) <= 0:
            return None
        axes = [(pa, c - va), (c + vb, c - vb)]
        if np.linalg.norm(vb) > la:
            axes.reverse()
        return "ELLIPSE", np.array([*axes[0], *axes[1]], dtype=np.float64)
    if not np.array_equal(pts[0], pts[-1]):
        pts = np.vstack([pts, pts[:1]])
    return "POLYGON", pts


def measurement_lines(annotation) -> dict[str, list[np.ndarray]]:
    """Value key → the POLYLINEs ((k, 3) LPS mm each) a length or angle was measured along:
    ruler length_mm: its two points; angle_deg: arm end, vertex, arm end; disc_height / vb_height
    (points U_a, U_m, U_p, L_a, L_m, L_p): DHa / VBHa = U_a–L_a, …m = U_m–L_m, …p = U_p–L_p, and
    depth_mm (the mean of two depths) = U_a–U_p and L_a–L_p."""
    pts = np.asarray(annotation.points or [], dtype=np.float64).reshape(-1, 3)
    kind = annotation.kind
    if kind == "ruler" and len(pts) == 2:
        return {"length_mm": [pts]}
    if kind == "angle" and len(pts) == 3:
        return {"angle_deg": [pts]}
    if kind in ("disc_height", "vb_height") and len(pts) == 6:
        prefix = "DH" if kind == "disc_height" else "VBH"
        out = {f"{prefix}{s}": [pts[[i, i + 3]]] for i, s in enumerate("amp")}
        out["depth_mm"] = [pts[[0, 2]], pts[[3, 5]]]
        return out
    return {}


# ------------------------------------------------------------------------------------------ study model
def _patient_and_visit(workspace, patient, visit):
    if workspace.study is None:
        raise ValueError("the workspace has no scanned study (its sources are needed for DICOM exports)")
    p = workspace.study.patient(patient) if isinstance(patient, str) else patient
    v = p.visit(visit) if isinstance(visit, str) else visit
    return p, v


def _frames_of(entry, echo_time_ms=None):
    cands = entry.echoes
    cand = cands[0]
    if echo_time_ms is not None:
        with_te = [c for c in cands if c.info.echo_time is not None]
        if with_te:
            cand = min(with_te, key=lambda c: abs(float(c.info.echo_time) - float(echo_time_ms)))
    return cand


def _referenced_frames(annotation, cand) -> list:
    """FrameRefs of `cand` whose slices hold the annotation's points (± its slab)."""
    frames = list(cand.frames)
    if not frames:
        return []
    pts = np.asarray(annotation.points, dtype=np.float64).reshape(-1, 3) if annotation.points else None
    if pts is None or not len(pts) or cand.affine is None or any(f.position is None for f in frames):
        return frames if pts is not None and len(pts) else []
    a = np.asarray(cand.affine, dtype=np.float64)
    normal = a[:3, 2] / np.linalg.norm(a[:3, 2])
    spacing = float(np.linalg.norm(a[:3, 2]))
    pos = np.array([f.position for f in frames], dtype=np.float64) @ normal
    slab = float((annotation.extra or {}).get("slab_mm") or 0.0)
    chosen: set[int] = set()
    for d in pts @ normal:
        dist = np.abs(pos - d)
        chosen.add(int(np.argmin(dist)))
        if slab > 0:
            chosen.update(int(i) for i in np.nonzero(dist <= slab + 0.5 * spacing)[0])
    return [frames[i] for i in sorted(chosen)]


def _read_header(path) -> Dataset:
    return pydicom.dcmread(str(path), stop_before_pixels=True)


def source_headers(visit, series_uids: Iterable[str] | None = None) -> list[Dataset]:
    """Header-only datasets of every file of the visit's series (all, or those in `series_uids`)."""
    wanted = set(series_uids) if series_uids is not None else None
    out, seen = [], set()
    for e in visit.series:
        if wanted is not None and e.series_uid not in wanted:
            continue
        for c in e.echoes:
            for f in c.frames:
                if f.path not in seen:
                    seen.add(f.path)
                    out.append(_read_header(f.path))
    return out


def _first_header(visit) -> Dataset:
    for e in visit.series:
        for c in e.echoes:
            for f in c.frames:
                return _read_header(f.path)
    raise ValueError(f"visit {visit.label!r} has no source files")


def _as_evidence(ds: Dataset, policy: ExportPolicy, patient_id: str, deid) -> Dataset:
    """A header as the export may show it: unchanged when identifying, else a de-identified copy."""
    if policy.identifying:
        return ds
    out = copy.deepcopy(ds)
    for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if kw in out:
            del out[kw]
    deid.deidentify(out, patient_code=policy.pseudonym(patient_id), series_description=None)
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
               "StudyDate", "StudyTime", "ReferringPhysicianName"):
        if kw not in out:  # the SR/SC modules need them (Type 2): present, empty
            setattr(out, kw, "")
    return out


def _mark_deidentified(ds: Dataset, evidence: Dataset) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    for kw in ("DeidentificationMethod", "DeidentificationMethodCodeSequence"):
        if kw in evidence:
            setattr(ds, kw, copy.deepcopy(evidence[kw].value))
    for kw in ("PatientBirthDate", "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName",
               "PatientSex", "StudyID"):
        if kw in ds:
            setattr(ds, kw, "")


@contextlib.contextmanager
def _quiet_person_names():
    """highdicom warns about one-component person names; pseudonyms ("P01") and reader ids are such."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name.*")
        yield


def _text(ds: Dataset, keyword: str) -> str:
    v = ds.get(keyword, None)
    return "" if v is None else str(v)


def _coding_scheme_identification() -> list[Dataset]:
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = PRIVATE_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = "discviewer project"
    return [item]


# ------------------------------------------------------------------------------------------ SR
def _groups_for(workspace, visit, reader: str | None) -> list:
    anns = [a for a in workspace.annotations if a.visit_id == visit.id and (reader is None or a.reader == reader)]
    return sorted(anns, key=lambda a: (level_sort_key(a.level), a.kind, a.created, a.id))


def readers_of(workspace, visit) -> list[str]:
    """Readers with numeric values on this visit."""
    table = MeasureTable.from_workspace(workspace, derived=False)
    return sorted({r.reader for r in table.select(visit_id=visit.id)})


def _observation_context(reader: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=reader or "unknown reader")),
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=DEVICE_UID, name="discviewer", manufacturer_name=MANUFACTURER, model_name=app_version())))


def measurement_report(workspace, patient, visit, policy: ExportPolicy, *,
                       source_datasets: Sequence[Dataset] | None = None, reader: str | None = None,
                       series_number: int = SR_SERIES_NUMBER, instance_number: int = 1) -> Dataset:
    """A TID 1500 Comprehensive 3D SR of the measurements of one visit (module docstring).

    `patient`, `visit`: objects of `workspace.study` or their id (visit also by label). `reader`: one
    reader's annotations; None takes all, which is only allowed when they come from one reader (TID
    1500 has one person observer). `source_datasets`: headers of the source images (read from the
    series' files when None)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    p, v = _patient_and_visit(workspace, patient, visit)
    table = MeasureTable.from_workspace(workspace)
    rows = table.select(visit_id=v.id, reader=reader)
    readers = sorted({r.reader for r in rows})
    if reader is None and len(readers) > 1:
        raise ValueError(f"measurements of several readers ({', '.join(readers)}): pass reader=")
    if not rows:
        raise ValueError(f"no measurements for visit {v.label!r}" + (f" by {reader!r}" if reader else ""))
    the_reader = reader if reader is not None else readers[0]
    annotations = _groups_for(workspace, v, the_reader)
    derived: dict[str, list] = {}
    for r in rows:
        if r.derived and not r.measure.endswith("_pct_baseline"):
            derived.setdefault(r.annotation_id, []).append(r)

    headers = list(source_datasets) if source_datasets is not None else None
    by_uid = {str(ds.SOPInstanceUID): ds for ds in headers} if headers is not None else {}
    deid = policy.deidentifier()
    entries = {e.series_uid: e for e in v.series}
    evidence: dict[str, Dataset] = {}

    def evidence_for(frame) -> Dataset:
        uid = frame.sop_uid
        if uid not in evidence:
            ds = by_uid.get(uid)
            if ds is None:
                if headers is not None:
                    raise ValueError(f"source_datasets lack the referenced instance {uid}")
                ds = _read_header(frame.path)
            evidence[uid] = _as_evidence(ds, policy, p.id, deid)
        return evidence[uid]

    time_point = None
    if v.days is not None:
        time_point = hd.sr.TimePointContext(
            time_point=v.label or f"visit {v.index + 1}", time_point_order=v.index + 1,
            temporal_offset_from_event=hd.sr.LongitudinalTemporalOffsetFromEvent(
                value=float(v.days), unit=codes.UCUM.Day, event_type=codes.DCM.Baseline))
    else:
        time_point = hd.sr.TimePointContext(time_point=v.label or f"visit {v.index + 1}",
                                            time_point_order=v.index + 1)

    groups = []
    for a in annotations:
        items = [(k, val, str(a.units.get(k, ""))) for k, val in a.values.items()]
        items += [(r.measure, r.value, r.unit) for r in derived.get(a.id, [])]
        items = [(k, float(raw), unit) for k, raw, unit in items
                 if isinstance(raw, (bool, int, float, np.integer, np.floating)) and np.isfinite(float(raw))]
        if not items:
            continue
        site = _finding_site_code(a.level, a.kind, a.extra or {})
        sources = []  # (SOP Class UID, SOP Instance UID, frame numbers, Frame of Reference UID)
        entry = entries.get(a.series_uid)
        if entry is not None:
            cand = _frames_of(entry, (a.extra or {}).get("echo_time_ms"))
            for f in _referenced_frames(a, cand):
                if not f.sop_uid:
                    continue
                ds = evidence_for(f)
                frames = [f.frame + 1] if cand.is_multiframe else None
                sources.append((str(ds.SOPClassUID), str(ds.SOPInstanceUID), frames,
                                str(ds.get("FrameOfReferenceUID", "") or "")))
        # spatial coordinates: in the (remapped when de-identified) Frame of Reference of the images
        for_uid = next((s[3] for s in sources if s[3]), "")
        region = roi_region(a) if for_uid else None
        lines = measurement_lines(a) if for_uid else {}
        measurements = []
        for key, value, unit in items:
            code = measure_code(key, unit)
            sites = None
            if code.modifier is not None and site is not None:
                sites = [hd.sr.FindingSite(site, topographical_modifier=code.modifier)]
            coords = [hd.sr.CoordinatesForMeasurement3D(graphic_type="POLYLINE", graphic_data=line,
                                                        frame_of_reference_uid=for_uid)
                      for line in lines.get(key, [])] or None
            images = None
            if region is not None:  # TID 1410 has no group-level source images: each measurement's own
                images = [hd.sr.SourceImageForMeasurement(c, i, referenced_frame_numbers=fr)
                          for c, i, fr, _ in sources]
            measurements.append(hd.sr.Measurement(name=code.concept, value=value, unit=ucum_unit(unit, key),
                                                  derivation=code.derivation, finding_sites=sites,
                                                  referenced_images=images, referenced_coordinates=coords))
        params = [f"kind={a.kind}"] + ([f"method={a.method}"] if a.method else [])
        common = dict(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=_tracking_uid(a.id),
                                                         identifier=f"{a.level or 'no level'} {a.id}"),
            time_point_context=time_point,
            algorithm_id=hd.sr.AlgorithmIdentification(name="discviewer", version=app_version(),
                                                       parameters=params),
            finding_sites=[hd.sr.FindingSite(site)] if site is not None else None,
            measurements=measurements)
        if region is not None:
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                referenced_region=hd.sr.ImageRegion3D(graphic_type=region[0], graphic_data=region[1],
                                                      frame_of_reference_uid=for_uid),
                **common))
        else:
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                source_images=[hd.sr.SourceImageForMeasurementGroup(c, i, referenced_frame_numbers=fr)
                               for c, i, fr, _ in sources] or None,
                **common))
    if not groups:
        raise ValueError(f"no numeric measurements for visit {v.label!r}")
    if not evidence:  # nothing referenced an image: the visit's first file carries patient and study
        ds = headers[0] if headers else _first_header(v)
        evidence[str(ds.SOPInstanceUID)] = _as_evidence(ds, policy, p.id, deid)

    with _quiet_person_names():
        observation = _observation_context(the_reader)
    report = hd.sr.MeasurementReport(observation_context=observation, procedure_reported=PROCEDURE,
                                     imaging_measurements=groups)
    ev = list(evidence.values())
    with _quiet_person_names():
        sr = hd.sr.Comprehensive3DSR(
            evidence=ev, content=report, series_instance_uid=hd.UID(), series_number=series_number,
            sop_instance_uid=hd.UID(), instance_number=instance_number, manufacturer=MANUFACTURER,
            is_complete=True, is_final=False, is_verified=False)
    sr.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: method texts hold "≤", "·", "√"
    sr.SeriesDescription = f"{SERIES_DESCRIPTION_PREFIX} - discviewer measurements"
    sr.SoftwareVersions = app_version()
    sr.CodingSchemeIdentificationSequence = _coding_scheme_identification()
    if not policy.identifying:
        _mark_deidentified(sr, ev[0])
    return sr


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def _save(ds: Dataset, path: Path) -> Path:
    with atomic_path(path) as tmp:
        ds.save_as(str(tmp), enforce_file_format=True)
    return path


def visit_folder(policy: ExportPolicy, patient, visit) -> Path:
    """`<patient label>/<visit label>` (file-name safe): where `write_sr_dir` puts a visit's objects —
    put Secondary Captures of the visit there too."""
    return Path(_safe_name(policy.patient_label(patient.id))) / _safe_name(visit.label or f"visit {visit.index + 1}")


def write_sr_dir(workspace, dest, policy: ExportPolicy, *, readers: Sequence[str] | None = None) -> list[Path]:
    """One SR file per patient × visit × reader with measurements, at
    `dest/<patient label>/<visit label>/SR_<reader>.dcm` (labels made file-name safe; the patient label
    is the pseudonym unless identifying). Returns the paths written."""
    dest = Path(dest)
    out = []
    if workspace.study is None:
        raise ValueError("the workspace has no scanned study (its sources are needed for DICOM exports)")
    for p in workspace.study.patients:
        for v in p.visits:
            for reader in readers_of(workspace, v):
                if readers is not None and reader not in readers:
                    continue
                try:
                    sr = measurement_report(workspace, p, v, policy, reader=reader)
                except ValueError as exc:
                    if str(exc).startswith("no numeric measurements"):
                        continue
                    raise
                out.append(_save(sr, dest / visit_folder(policy, p, v) / f"SR_{_safe_name(reader or 'reader')}.dcm"))
    return out


# ------------------------------------------------------------------------------------------ SC
def secondary_capture(rgb_array, workspace, patient, visit, policy: ExportPolicy, *, description: str,
                      source_datasets: Sequence[Dataset] | None = None, series_number: int = SC_SERIES_NUMBER,
                      instance_number: int = 1, burned_in_annotation: bool = False,
                      patient_orientation: tuple[str, str] | None = None) -> Dataset:
    """A Secondary Capture Image of an RGB (rows, columns, 3) uint8 array in the visit's study (module
    docstring). `source_datasets`: a header of the visit (its first file is read when None).
    `patient_orientation`: the directions of the rows and columns of a single view, e.g. ("P", "F")
    for a sagittal slice shown anterior-left, head-up; None (montages, 3D views) leaves it empty."""
    import highdicom as hd

    arr = np.asarray(rgb_array)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"an RGB array (rows, columns, 3) is needed, not {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"an 8-bit RGB array is needed, not {arr.dtype}")
    p, v = _patient_and_visit(workspace, patient, visit)
    head = source_datasets[0] if source_datasets else _first_header(v)
    ds = _as_evidence(head, policy, p.id, policy.deidentifier())
    with _quiet_person_names():
        sc = hd.sc.SCImage(
            pixel_array=np.ascontiguousarray(arr), photometric_interpretation="RGB", bits_allocated=8,
            coordinate_system="PATIENT", patient_orientation=patient_orientation or ("P", "F"),
            study_instance_uid=str(ds.StudyInstanceUID), series_instance_uid=hd.UID(),
            series_number=series_number, sop_instance_uid=hd.UID(), instance_number=instance_number,
            manufacturer=MANUFACTURER, patient_id=_text(ds, "PatientID"), patient_name=_text(ds, "PatientName"),
            patient_birth_date=_text(ds, "PatientBirthDate") or None, patient_sex=_text(ds, "PatientSex") or None,
            accession_number=_text(ds, "AccessionNumber") or None, study_id=_text(ds, "StudyID") or None,
            study_date=_text(ds, "StudyDate") or None, study_time=_text(ds, "StudyTime") or None,
            referring_physician_name=_text(ds, "ReferringPhysicianName") or None)
    sc.SpecificCharacterSet = "ISO_IR 192"
    if patient_orientation is None:  # a montage or a 3D view has none: Type 2C, present and empty
        sc.PatientOrientation = ""
    sc.SeriesDescription = f"{SERIES_DESCRIPTION_PREFIX} - {description}"[:64]
    sc.ImageComments = f"{RESEARCH_USE_NOTICE}. {description}"
    sc.BurnedInAnnotation = "YES" if burned_in_annotation else "NO"
    sc.SoftwareVersions = app_version()
    if not policy.identifying:
        _mark_deidentified(sc, ds)
    return sc


def write_secondary_capture(path, rgb_array, workspace, patient, visit, policy: ExportPolicy, *,
                            description: str, **kw) -> Path:
    """`secondary_capture` written to `path` atomically."""
    return _save(secondary_capture(rgb_array, workspace, patient, visit, policy, description=description, **kw),
                 Path(path))


# ------------------------------------------------------------------------------------------ reading back
def _code_key(code) -> tuple[str, str]:
    return (str(code.value), str(code.scheme_designator))


TIME_POINT = ("C2348792", "UMLS")
TIME_POINT_ORDER = ("126073", "DCM")
TIME_POINT_OFFSET = ("128740", "DCM")


def read_measurement_report(ds: Dataset) -> list[dict]:
    """Rows of a report written by `measurement_report`: tracking identifier and UID, level, annotation id,
    key (the value key / measure name), value, unit (UCUM code value), derivation, finding site and
    modifier (code values), referenced SOP Instance UIDs of the group (of its measurements for an ROI
    group), time point and days; `region`: (graphic type, (N, 3) LPS mm) of an ROI group's image
    region, else None; `coordinates`: [(graphic type, (k, 3) LPS mm)] the value was measured along
    (SCOORD3D it is inferred from); `frame_of_reference_uid` of those coordinates (None without any)."""
    import highdicom as hd

    sr = hd.sr.Comprehensive3DSR.from_dataset(ds, copy=True)
    reverse: dict[tuple, str] = {}
    for k, c in PRIVATE_CODES.items():
        reverse[(c.value, c.scheme_designator, None, None)] = k
    for k in ("depth_mm", "length_mm", "angle_deg", "area_mm2", "snr"):
        c = measure_code(k).concept
        reverse[(c.value, c.scheme_designator, None, None)] = k
    for k, d in DERIVATIONS.items():
        for concept in (MR_SIGNAL, R2STAR):
            reverse[(concept.value, concept.scheme_designator, d.value, None)] = k
    rows = []
    groups = [*sr.content.get_image_measurement_groups(), *sr.content.get_planar_roi_measurement_groups()]
    for group in groups:
        ident = str(group.tracking_identifier)
        level, _, ann_id = ident.rpartition(" ")
        region, for_uid = None, None
        if isinstance(group, hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations):
            roi = group.roi
            if roi is not None:
                region = (roi.graphic_type.value, np.asarray(roi.value, dtype=np.float64))
                for_uid = str(roi.frame_of_reference_uid) if hasattr(roi, "frame_of_reference_uid") else None
            refs = list(dict.fromkeys(str(s.referenced_sop_instance_uid) for m in group.get_measurements()
                                      for s in m.referenced_images))
        else:
            refs = [str(s.referenced_sop_instance_uid) for s in (group.source_images or [])]
        time_point, days, order = "", None, None
        measurements = []
        for m in group.get_measurements():
            if _code_key(m.name) == TIME_POINT_OFFSET:
                days = float(m.value)
            elif _code_key(m.name) == TIME_POINT_ORDER:
                order = int(m.value)
            else:
                measurements.append(m)
        tp = _find(group, TIME_POINT)
        if tp is not None:
            time_point = str(tp.TextValue)
        site_item = _find(group, ("363698007", "SCT"))
        group_site = str(site_item.ConceptCodeSequence[0].CodeValue) if site_item is not None else None
        vertebra = bool(site_item is not None
                        and "vertebra" in str(site_item.ConceptCodeSequence[0].CodeMeaning).lower())
        for m in measurements:
            deriv = m.derivation.value if m.derivation is not None else None
            mod = None
            if m.finding_sites and m.finding_sites[0].topographical_modifier is not None:
                mod = m.finding_sites[0].topographical_modifier.value
            key = reverse.get((m.name.value, m.name.scheme_designator, deriv, None))
            if key is None and _code_key(m.name) == _code_key(HEIGHT):
                suffix = {ANTERIOR.value: "a", CENTRAL.value: "m", POSTERIOR.value: "p"}.get(mod, "?")
                key = ("VBH" if vertebra else "DH") + suffix
            if key is None:
                key = m.name.meaning
            coords = [(c.graphic_type.value, np.asarray(c.value, dtype=np.float64)) for c in m.referenced_coordinates
                      if isinstance(c, hd.sr.Scoord3DContentItem)]
            m_for = {str(c.frame_of_reference_uid) for c in m.referenced_coordinates
                     if isinstance(c, hd.sr.Scoord3DContentItem)}
            rows.append({"tracking_identifier": ident, "tracking_uid": str(group.tracking_uid), "level": level,
                         "annotation_id": ann_id, "key": key, "value": float(m.value), "unit": m.unit.value,
                         "concept": _code_key(m.name), "derivation": deriv, "finding_site": group_site,
                         "modifier": mod, "referenced_sop_uids": refs, "time_point": time_point,
                         "time_point_order": order, "days": days, "region": region, "coordinates": coords,
                         "frame_of_reference_uid": for_uid or (m_for.pop() if len(m_for) == 1 else None)})
    return rows


def _find(container, code: tuple[str, str]):
    """The first content item (depth-first) whose concept name is `code` (value, scheme)."""
    items = container.ContentSequence if hasattr(container, "ContentSequence") else container
    for item in items or []:
        if _code_key_ds(item.ConceptNameCodeSequence[0]) == code:
            return item
        if "ContentSequence" in item:
            hit = _find(item, code)
            if hit is not None:
                return hit
    return None


def _code_key_ds(item) -> tuple[str, str]:
    return (str(item.CodeValue), str(item.CodingSchemeDesignator))


__all__ = ["PRIVATE_SCHEME", "PRIVATE_CODES", "MeasureCode", "measure_code", "ucum_unit", "source_headers",
           "roi_region", "measurement_lines",
           "readers_of", "measurement_report", "visit_folder", "write_sr_dir", "secondary_capture",
           "write_secondary_capture", "read_measurement_report"]

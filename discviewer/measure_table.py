"""Measurements as a table: long rows, a level × visit × measure pivot, trends, repeatability and
derived values — computed from an `AnnotationSet` and the study's visits.

**Long rows.** Every finite number in an annotation's `values` becomes one `MeasureRow`: patient,
visit id, visit label, days since baseline, disc level, reader, measure (machine name), value,
unit, method, annotation id and time (the record's `modified`, else `created`), plus the kind,
series and acquisition. `LONG_COLUMNS` is the CSV header for `MeasureRow.as_dict`.

Measure names are the value keys, made unambiguous where one key means different things:
- ROI statistics (kinds ellipse / polygon / freehand) of a *reference* or *background* ROI
  (`extra["roi_role"]`) are prefixed with the role and, when given, `extra["tissue"]` ("csf",
  "fat", "vertebral_body", …): `reference_csf_mean`, `background_sd`; a disc ROI keeps `mean`.
- ROI statistics carry the series role they were measured on (`extra["series_role"]`) as a
  suffix, `mean (T2 sag)`, so a T2 and a T2* mean at the same disc are never taken as repeats.

**Pivot.** `MeasureTable.pivot(reader, patient)` arranges the rows of one reader (or all) and one
patient as (level, measure) × visit cells; a cell keeps every value and annotation id that fell
into it (repeats) and shows their mean.

**Trend.** `trend(level, measure, reader)` gives (days since baseline, mean value) per visit, in
time order; visits without a date are left out (no x).

**Repeatability — smallest detectable change** (DOMAIN.md §4, "Bland–Altman … SEM … SDC"). When
the same measure was taken more than once on the same thing — ≥ 2 values for one patient, level
and visit, by one reader (intra-reader) or, with `reader=None`, by several readers (inter-reader)
— each such set is a group g of n_g values. Then

    SEM   = √( Σ_g Σ_i (x_gi − x̄_g)² / Σ_g (n_g − 1) )      (within-subject SD; √MSW of one-way ANOVA)
    SDC95 = 1.96 · √2 · SEM

The pooled within-group variance is the mean of the group variances weighted by their degrees of
freedom — the plain mean of the group variances when all groups have the same size (pairs). For
pairs it equals SD_diff/√2 when the mean difference is zero, the DOMAIN.md form. A change between
two visits smaller than SDC95 is within measurement error (drawn as a band on trend plots).
`MeasureTable.sdc(measure, level=None, reader=None)` pools the groups of all levels by default:
SEM describes the measurement method, and one disc rarely has enough repeats on its own.

**Derived values** (rows with `derived=True`, method "derived: …", `sources` = the annotation ids):
- *Signal ratio* (DOMAIN.md §2 "Disc signal"): raw intensities are not comparable between visits,
  so a disc ROI's mean is divided by a reference ROI's mean on the same slice: `signal_ratio`
  (`signal_ratio_<tissue>` when the reference names its tissue), for ROIs of the same visit,
  series and reader whose planes coincide (parallel normals, offset ≤ `SAME_SLICE_MM`); of several
  references of one tissue on the slice the nearest is used. The plane is `extra["plane"]`, or
  the plane through the ROI's points.
- *SNR* = disc mean / noise SD, noise SD from a background ROI on the same slice. For a magnitude
  image the background is Rayleigh-distributed; pass `rayleigh_factor` (often quoted 0.655,
  *verify*) to use SD_noise = SD_background / factor. Default: no correction.
- *Disc height indices* (`height_index_rows`, formulas in `discviewer.measure.INDICES`): dh_mean and
  dhi_farfan from each disc_height annotation; dhi_adjacent and dhi_masuda when the two neighbouring
  vertebral bodies were measured (vb_height with `extra["vertebra"]`) on the same visit by the same reader.
- *Percent of baseline* for disc heights (every value of a `disc_height` annotation and its indices):
  `<measure>_pct_baseline` = 100 · value / (mean value at the patient's baseline visit, same level,
  reader and measure), unit "%". The baseline is the visit with days = 0, else the patient's first.

**Iron values and acquisition** (DOMAIN.md §1: a void grows with TE, field strength and voxel
size). Each row carries an `Acquisition` (TE ms, field strength T, voxel size mm) taken from the
annotation's `extra` — `echo_time_ms`, `field_strength_t`, `voxel_mm` ([x, y, z]) — completed by
an optional `acquisition_for(annotation)` callback. `iron_comparability(rows)` lists, per patient
and level, the attributes that differ between the visits of iron values ("iron values not
comparable: TE 14 ms vs 19 ms …") and the visits where they are unknown.

Core module: stdlib and numpy (indices from `discviewer.measure`).
"""
from __future__ import annotations

import math
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from discviewer.levels import level_sort_key
from discviewer.workspace.data import Annotation

#: the CSV header of the long table (`MeasureRow.as_dict` keys, in order)
LONG_COLUMNS = ("patient", "visit_id", "visit_label", "days", "level", "reader", "measure", "value", "unit",
                "method", "annotation_id", "time")
#: kinds whose values are ROI statistics
ROI_KINDS = frozenset({"ellipse", "polygon", "freehand"})
#: kinds and measure names whose values depend on TE / field strength / voxel size
IRON_KINDS = frozenset({"iron"})
IRON_MEASURE_PREFIXES = ("void_", "r2star", "t2star")
#: 1.96 · √2 — SDC95 = SDC_FACTOR · SEM
SDC_FACTOR = 1.96 * math.sqrt(2.0)
#: ROIs whose planes lie within this distance (mm) along the normal are "on the same slice"
SAME_SLICE_MM = 1.0
#: acquisition differences below these are ignored
TE_TOLERANCE_MS = 0.5
FIELD_TOLERANCE_T = 0.05
VOXEL_TOLERANCE = 0.05  # relative, per axis


# ------------------------------------------------------------------------------------------ visits
@dataclass(frozen=True)
class VisitInfo:
    id: str
    label: str
    days: int | None = None
    patient: str = ""
    index: int = 0  # position in the patient's visit list


def visit_infos(source) -> list[VisitInfo]:
    """Visits of a `Study`, a `Workspace` (its study, else its stored patient records), a list of
    `PatientRecord`s, or an iterable of `Visit`/`VisitRecord`/`VisitInfo` objects."""
    if source is None:
        return []
    if hasattr(source, "annotations") and hasattr(source, "patients"):  # a Workspace
        return visit_infos(source.study if source.study is not None else source.patients)
    if hasattr(source, "patients"):  # a Study
        return visit_infos(source.patients)
    out: list[VisitInfo] = []
    for item in source:
        if isinstance(item, VisitInfo):
            out.append(item)
        elif hasattr(item, "visits"):  # Patient or PatientRecord
            for i, v in enumerate(item.visits):
                out.append(VisitInfo(v.id, v.label or v.id, v.days, item.id, getattr(v, "index", i)))
        else:  # Visit or VisitRecord
            out.append(VisitInfo(item.id, item.label or item.id, item.days, getattr(item, "patient_id", ""),
                                 getattr(item, "index", len(out))))
    return out


# ------------------------------------------------------------------------------------------ acquisition
@dataclass(frozen=True)
class Acquisition:
    """What an iron value depends on: echo time (ms), field strength (T), voxel size (mm, x/y/z)."""

    te_ms: float | None = None
    field_t: float | None = None
    voxel_mm: tuple[float, float, float] | None = None

    @classmethod
    def from_extra(cls, extra: dict) -> "Acquisition":
        te = _number(extra.get("echo_time_ms"))
        b0 = _number(extra.get("field_strength_t"))
        vox = extra.get("voxel_mm")
        voxel = None
        if isinstance(vox, (list, tuple)) and len(vox) == 3 and all(_number(v) is not None for v in vox):
            voxel = tuple(float(v) for v in vox)
        return cls(te, b0, voxel)  # type: ignore[arg-type]

    @classmethod
    def from_volume(cls, volume) -> "Acquisition":
        """From a `Volume` (its SeriesInfo's echo time and field strength, its voxel spacing)."""
        if volume is None:
            return cls()
        info = getattr(volume, "info", None)
        spacing = getattr(volume, "spacing", None)
        return cls(_number(getattr(info, "echo_time", None)), _number(getattr(info, "field_strength", None)),
                   tuple(float(s) for s in spacing) if spacing is not None else None)  # type: ignore[arg-type]

    @classmethod
    def coerce(cls, value) -> "Acquisition":
        if value is None:
            return cls()
        if isinstance(value, Acquisition):
            return value
        if isinstance(value, dict):
            return cls.from_extra(value)
        return cls.from_volume(value)

    def completed_by(self, other: "Acquisition") -> "Acquisition":
        """This, with the attributes it lacks taken from `other`."""
        return Acquisition(self.te_ms if self.te_ms is not None else other.te_ms,
                           self.field_t if self.field_t is not None else other.field_t,
                           self.voxel_mm if self.voxel_mm is not None else other.voxel_mm)

    def differences(self, other: "Acquisition") -> list[str]:
        """Attributes ("TE", "field strength", "voxel size") known in both and different beyond
        the tolerances (`TE_TOLERANCE_MS`, `FIELD_TOLERANCE_T`, `VOXEL_TOLERANCE`)."""
        out = []
        for attribute, a, b in (("TE", self.te_ms, other.te_ms), ("field strength", self.field_t, other.field_t),
                                ("voxel size", self.voxel_mm, other.voxel_mm)):
            if a is not None and b is not None and _differs(a, b, attribute):
                out.append(attribute)
        return out

    @property
    def known(self) -> bool:
        return self.te_ms is not None or self.field_t is not None or self.voxel_mm is not None

    def text(self) -> str:
        """"TE 14 ms · 3 T · 0.5×0.5×3 mm" ("?" for what is unknown)."""
        return " · ".join((f"TE {fmt_te(self.te_ms)}", fmt_field(self.field_t), fmt_voxel(self.voxel_mm)))


def fmt_te(te: float | None) -> str:
    return "? ms" if te is None else f"{te:g} ms"


def fmt_field(b0: float | None) -> str:
    return "? T" if b0 is None else f"{b0:g} T"


def fmt_voxel(v: Sequence[float] | None) -> str:
    return "? mm" if v is None else "×".join(f"{x:.3g}" for x in v) + " mm"


# ------------------------------------------------------------------------------------------ rows
@dataclass(frozen=True)
class MeasureRow:
    patient: str
    visit_id: str
    visit_label: str
    days: int | None
    level: str
    reader: str
    measure: str
    value: float
    unit: str
    method: str
    annotation_id: str
    time: str
    kind: str = ""
    series_uid: str = ""
    acquisition: Acquisition = field(default_factory=Acquisition)
    derived: bool = False
    sources: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in LONG_COLUMNS}

    @property
    def is_iron(self) -> bool:
        return self.kind in IRON_KINDS or self.measure.startswith(IRON_MEASURE_PREFIXES)


def _number(v) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    return None


def measure_name(annotation: Annotation, key: str) -> str:
    """The machine name of `annotation.values[key]` in the table (see the module docstring)."""
    name = key
    if annotation.kind in ROI_KINDS:
        role = str(annotation.extra.get("roi_role") or "")
        if role in ("reference", "background"):
            tissue = str(annotation.extra.get("tissue") or "")
            name = "_".join(p for p in (role, tissue, key) if p)
        series_role = str(annotation.extra.get("series_role") or "")
        if series_role:
            name = f"{name} ({series_role})"
    return name


def _with_series(name: str, annotation: Annotation) -> str:
    series_role = str(annotation.extra.get("series_role") or "")
    return f"{name} ({series_role})" if series_role else name


# ------------------------------------------------------------------------------------------ SDC
@dataclass(frozen=True)
class SdcResult:
    sem: float  # within-subject SD
    sdc95: float  # 1.96·√2·SEM
    n_groups: int  # groups with ≥ 2 values
    n_values: int
    df: int  # Σ (n_g − 1)


def smallest_detectable_change(repeats: Iterable[Sequence[float]]) -> SdcResult | None:
    """SEM and SDC95 from groups of repeated values (see the module docstring for the formula);
    groups with fewer than two finite values are ignored; None when no group is left."""
    ss = 0.0
    df = 0
    n_groups = n_values = 0
    for group in repeats:
        vals = np.array([v for v in (_number(x) for x in group) if v is not None], dtype=np.float64)
        if vals.size < 2:
            continue
        ss += float(np.sum((vals - vals.mean()) ** 2))
        df += vals.size - 1
        n_groups += 1
        n_values += vals.size
    if df == 0:
        return None
    sem = math.sqrt(ss / df)
    return SdcResult(sem, SDC_FACTOR * sem, n_groups, n_values, df)


# ------------------------------------------------------------------------------------------ pivot
@dataclass
class Cell:
    rows: list[MeasureRow] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [r.value for r in self.rows]

    @property
    def annotation_ids(self) -> list[str]:
        return [r.annotation_id for r in self.rows]

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.rows else math.nan

    @property
    def acquisitions(self) -> list[Acquisition]:
        out: list[Acquisition] = []
        for r in self.rows:
            if r.acquisition not in out:
                out.append(r.acquisition)
        return out


@dataclass
class Pivot:
    """(level, measure) × visit cells of one reader selection and one patient."""

    visits: list[VisitInfo]
    keys: list[tuple[str, str]]  # (level, measure), levels in spinal order
    cells: dict[tuple[str, str, str], Cell]  # (level, measure, visit id) → cell
    units: dict[str, str]

    def cell(self, level: str, measure: str, visit_id: str) -> Cell | None:
        return self.cells.get((level, measure, visit_id))


# ------------------------------------------------------------------------------------------ the table
class MeasureTable:
    """The measurements of an annotation set (a snapshot: rebuild it after changes; it is cheap)."""

    def __init__(self, annotations: Iterable[Annotation], visits=None, *,
                 acquisition_for: Callable[[Annotation], object] | None = None, derived: bool = True,
                 same_slice_mm: float = SAME_SLICE_MM, rayleigh_factor: float | None = None) -> None:
        self.visits = visit_infos(visits)
        self._visit = {v.id: v for v in self.visits}
        self.annotations = list(annotations)
        self.acquisition_for = acquisition_for
        rows = [r for a in self.annotations for r in self._rows_of(a)]
        if derived:
            rows += signal_ratio_rows(self.annotations, self._visit_of, same_slice_mm=same_slice_mm,
                                      rayleigh_factor=rayleigh_factor)
            rows += height_index_rows(self.annotations, self._visit_of)
            rows += percent_of_baseline_rows(rows, self.visits)
        self.rows: list[MeasureRow] = rows

    @classmethod
    def from_workspace(cls, ws, **kw) -> "MeasureTable":
        return cls(ws.annotations, ws, **kw)

    # -------------------------------------------------------------- building
    def _visit_of(self, visit_id: str) -> VisitInfo:
        v = self._visit.get(visit_id)
        if v is None:
            v = VisitInfo(visit_id, visit_id, None, "", 1 << 30)
        return v

    def acquisition_of(self, a: Annotation) -> Acquisition:
        acq = Acquisition.from_extra(a.extra)
        if self.acquisition_for is not None:
            try:
                acq = acq.completed_by(Acquisition.coerce(self.acquisition_for(a)))
            except Exception:  # a callback that cannot tell leaves it unknown
                pass
        return acq

    def _rows_of(self, a: Annotation) -> list[MeasureRow]:
        out = []
        v = self._visit_of(a.visit_id)
        acq = None
        for key, raw in a.values.items():
            value = _number(raw)
            if value is None:
                continue
            if acq is None:
                acq = self.acquisition_of(a)
            out.append(MeasureRow(v.patient, a.visit_id, v.label, v.days, a.level, a.reader, measure_name(a, key),
                                  value, str(a.units.get(key, "")), a.method, a.id, a.modified or a.created,
                                  a.kind, a.series_uid, acq))
        return out

    # -------------------------------------------------------------- queries
    def select(self, *, reader: str | None = None, patient: str | None = None, level: str | None = None,
               measure: str | None = None, visit_id: str | None = None) -> list[MeasureRow]:
        return [r for r in self.rows
                if (reader is None or r.reader == reader) and (patient is None or r.patient == patient)
                and (level is None or r.level == level) and (measure is None or r.measure == measure)
                and (visit_id is None or r.visit_id == visit_id)]

    def readers(self) -> list[str]:
        return sorted({r.reader for r in self.rows})

    def patients(self) -> list[str]:
        return sorted({r.patient for r in self.rows} | {v.patient for v in self.visits})

    def levels(self, **kw) -> list[str]:
        return sorted({r.level for r in self.select(**kw)}, key=level_sort_key)

    def measures(self, **kw) -> list[str]:
        """Measure names in first-seen order (derived ones after the measured ones)."""
        return list(OrderedDict.fromkeys(r.measure for r in self.select(**kw)))

    def unit(self, measure: str) -> str:
        for r in self.rows:
            if r.measure == measure and r.unit:
                return r.unit
        return ""

    def visits_of(self, patient: str | None = None) -> list[VisitInfo]:
        """The patient's visits in order (all patients' when None), plus visits only annotations name."""
        known = [v for v in self.visits if patient is None or v.patient == patient]
        ids = {v.id for v in known}
        extra = []
        for r in self.rows:
            if r.visit_id not in ids and r.visit_id not in self._visit and (patient is None or r.patient == patient):
                ids.add(r.visit_id)
                extra.append(self._visit_of(r.visit_id))
        return sorted(known, key=lambda v: (v.patient, v.index)) + extra

    def pivot(self, reader: str | None = None, patient: str | None = None) -> Pivot:
        rows = self.select(reader=reader, patient=patient)
        cells: dict[tuple[str, str, str], Cell] = {}
        keys: OrderedDict[tuple[str, str], None] = OrderedDict()
        units: dict[str, str] = {}
        order = {m: i for i, m in enumerate(self.measures())}
        for r in rows:
            keys[(r.level, r.measure)] = None
            cells.setdefault((r.level, r.measure, r.visit_id), Cell()).rows.append(r)
            if r.unit and r.measure not in units:
                units[r.measure] = r.unit
        sorted_keys = sorted(keys, key=lambda k: (level_sort_key(k[0]), order.get(k[1], 1 << 30)))
        return Pivot(self.visits_of(patient), sorted_keys, cells, units)

    def trend(self, level: str, measure: str, reader: str | None = None,
              patient: str | None = None) -> list[tuple[int, float]]:
        """(days since baseline, mean value) per visit in time order; undated visits left out."""
        by_visit: dict[str, list[float]] = defaultdict(list)
        days: dict[str, int] = {}
        for r in self.select(reader=reader, patient=patient, level=level, measure=measure):
            if r.days is None:
                continue
            by_visit[r.visit_id].append(r.value)
            days[r.visit_id] = r.days
        return sorted((days[v], float(np.mean(vals))) for v, vals in by_visit.items())

    def repeat_groups(self, measure: str, *, level: str | None = None, reader: str | None = None,
                      patient: str | None = None) -> list[list[float]]:
        """Sets of ≥ 2 values of `measure` on the same patient, level and visit — by `reader`
        (intra-reader), or by anyone when `reader` is None. Derived rows are not repeats of their
        own (their sources are)."""
        groups: dict[tuple, list[float]] = defaultdict(list)
        for r in self.select(reader=reader, patient=patient, level=level, measure=measure):
            groups[(r.patient, r.level, r.visit_id)].append(r.value)
        return [g for g in groups.values() if len(g) >= 2]

    def sdc(self, measure: str, *, level: str | None = None, reader: str | None = None,
            patient: str | None = None) -> SdcResult | None:
        return smallest_detectable_change(self.repeat_groups(measure, level=level, reader=reader, patient=patient))

    def baseline_value(self, level: str, measure: str, reader: str | None = None,
                       patient: str | None = None) -> float | None:
        """Mean value at the earliest dated visit with a value (the baseline when measured there)."""
        t = self.trend(level, measure, reader, patient)
        return t[0][1] if t else None


# ------------------------------------------------------------------------------------------ derived
def _roi_plane(a: Annotation) -> tuple[np.ndarray, np.ndarray] | None:
    """(origin, unit normal) of the ROI's slice: `extra["plane"]`, else through its points."""
    plane = a.extra.get("plane")
    if isinstance(plane, dict) and "origin" in plane and "normal" in plane:
        o = np.asarray(plane["origin"], dtype=np.float64)
        n = np.asarray(plane["normal"], dtype=np.float64)
        if o.shape == (3,) and n.shape == (3,) and np.linalg.norm(n) > 0:
            return o, n / np.linalg.norm(n)
    if len(a.points) < 3:
        return None
    p = np.asarray(a.points, dtype=np.float64)
    c = p.mean(axis=0)
    _, s, vt = np.linalg.svd(p - c)
    if s[1] <= 1e-9:  # collinear
        return None
    return c, vt[2]


def _same_slice(pa, pb, tol: float) -> bool:
    if pa is None or pb is None:
        return False
    (oa, na), (ob, nb) = pa, pb
    return abs(float(na @ nb)) > 0.99 and abs(float((ob - oa) @ na)) <= tol


def _centroid(a: Annotation) -> np.ndarray:
    return np.asarray(a.points, dtype=np.float64).mean(axis=0) if a.points else np.zeros(3)


def signal_ratio_rows(annotations: Iterable[Annotation], visit_of: Callable[[str], VisitInfo], *,
                      same_slice_mm: float = SAME_SLICE_MM, rayleigh_factor: float | None = None) -> list[MeasureRow]:
    """Signal ratios (disc mean / reference mean) and SNR (disc mean / background noise SD) of disc
    ROIs with a reference / background ROI on the same slice (see the module docstring)."""
    rois = [a for a in annotations if a.kind in ROI_KINDS and _number(a.values.get("mean")) is not None]
    discs = [a for a in rois if a.extra.get("roi_role") == "disc"]
    others = [a for a in rois if a.extra.get("roi_role") in ("reference", "background")]
    planes = {a.id: _roi_plane(a) for a in discs + others}
    out: list[MeasureRow] = []
    for d in discs:
        v = visit_of(d.visit_id)
        best: dict[tuple[str, str], tuple[float, Annotation]] = {}
        for o in others:
            if (o.visit_id, o.series_uid, o.reader) != (d.visit_id, d.series_uid, d.reader):
                continue
            if not _same_slice(planes[d.id], planes[o.id], same_slice_mm):
                continue
            key = (str(o.extra["roi_role"]), str(o.extra.get("tissue") or ""))
            dist = float(np.linalg.norm(_centroid(o) - _centroid(d)))
            if key not in best or dist < best[key][0]:
                best[key] = (dist, o)
        d_mean = float(d.values["mean"])
        for (role, tissue), (_, o) in sorted(best.items()):
            if role == "reference":
                ref = float(o.values["mean"])
                if ref == 0:
                    continue
                name = "signal_ratio" + (f"_{tissue}" if tissue else "")
                value = d_mean / ref
                method = f"derived: disc mean / {tissue or 'reference'} mean (same slice)"
            else:
                sd = _number(o.values.get("sd"))
                if not sd:
                    continue
                noise = sd / rayleigh_factor if rayleigh_factor else sd
                name, value = "snr", d_mean / noise
                method = "derived: disc mean / background SD" + (
                    f" (Rayleigh factor {rayleigh_factor:g})" if rayleigh_factor else "")
            out.append(MeasureRow(v.patient, d.visit_id, v.label, v.days, d.level, d.reader, _with_series(name, d),
                                  value, "", method, d.id, max(d.modified or d.created, o.modified or o.created),
                                  "derived", d.series_uid, Acquisition(), True, (d.id, o.id)))
    return out


def height_index_rows(annotations: Iterable[Annotation], visit_of: Callable[[str], VisitInfo]) -> list[MeasureRow]:
    """The named disc-height indices of `discviewer.measure.INDICES` for each disc_height annotation:
    `dh_mean` and `dhi_farfan` from the disc alone; `dhi_adjacent` and `dhi_masuda` when vertebral
    body heights (vb_height, `extra["vertebra"]`) of both neighbours — e.g. L4 and L5 for L4/L5 —
    exist for the same visit and reader (the newest of each is used)."""
    from discviewer.measure import INDICES, DiscHeight, VertebralBodyHeight, dh_mean, dhi_adjacent, dhi_farfan, \
        dhi_masuda

    items = list(annotations)
    vbs: dict[tuple[str, str, str], Annotation] = {}
    for a in sorted((a for a in items if a.kind == "vb_height"), key=lambda a: a.modified or a.created):
        name = str((a.extra or {}).get("vertebra") or "")
        if name and all(k in a.values for k in ("VBHa", "VBHm", "VBHp")):
            vbs[(a.visit_id, a.reader, name)] = a
    out: list[MeasureRow] = []
    for d in items:
        if d.kind != "disc_height" or not all(k in d.values for k in ("DHa", "DHm", "DHp", "depth_mm")):
            continue
        v = visit_of(d.visit_id)
        disc = DiscHeight(float(d.values["DHa"]), float(d.values["DHm"]), float(d.values["DHp"]),
                          float(d.values["depth_mm"]), (float(d.values["DHa"]) + float(d.values["DHm"])
                                                        + float(d.values["DHp"])) / 3.0)
        found: list[tuple[str, float, tuple[str, ...]]] = [("dh_mean", dh_mean(disc), (d.id,))]
        if disc.depth_mm > 0:
            found.append(("dhi_farfan", dhi_farfan(disc), (d.id,)))
        names = d.level.split("/") if "/" in d.level else []
        if len(names) == 2:
            up, lo = vbs.get((d.visit_id, d.reader, names[0])), vbs.get((d.visit_id, d.reader, names[1]))
            if up is not None and lo is not None:
                vb_up, vb_lo = (VertebralBodyHeight(float(x.values["VBHa"]), float(x.values["VBHm"]),
                                                    float(x.values["VBHp"]), float(x.values.get("depth_mm", 0.0)),
                                                    (float(x.values["VBHa"]) + float(x.values["VBHm"])
                                                     + float(x.values["VBHp"])) / 3.0) for x in (up, lo))
                found.append(("dhi_adjacent", dhi_adjacent(disc, vb_up, vb_lo), (d.id, up.id, lo.id)))
                found.append(("dhi_masuda", dhi_masuda(disc, vb_up, vb_lo), (d.id, up.id, lo.id)))
        for name, value, sources in found:
            idx = INDICES[name]
            out.append(MeasureRow(v.patient, d.visit_id, v.label, v.days, d.level, d.reader, name, float(value),
                                  idx.units, f"derived: {idx.formula}", d.id, d.modified or d.created,
                                  "disc_height", d.series_uid, Acquisition(), True, sources))
    return out


def percent_of_baseline_rows(rows: Sequence[MeasureRow], visits: Sequence[VisitInfo]) -> list[MeasureRow]:
    """`<measure>_pct_baseline` rows for the values of disc_height annotations (see the module docstring)."""
    baseline: dict[str, str] = {}  # patient → baseline visit id
    for v in sorted(visits, key=lambda v: v.index):
        if v.days == 0 and v.patient not in baseline:
            baseline[v.patient] = v.id
    for v in sorted(visits, key=lambda v: v.index):
        baseline.setdefault(v.patient, v.id)
    heights = [r for r in rows if r.kind == "disc_height" and not r.measure.endswith("_pct_baseline")]
    ref: dict[tuple, list[float]] = defaultdict(list)
    for r in heights:
        if baseline.get(r.patient) == r.visit_id:
            ref[(r.patient, r.level, r.reader, r.measure)].append(r.value)
    out = []
    for r in heights:
        base = ref.get((r.patient, r.level, r.reader, r.measure))
        if not base:
            continue
        b = float(np.mean(base))
        if b == 0:
            continue
        out.append(MeasureRow(r.patient, r.visit_id, r.visit_label, r.days, r.level, r.reader,
                              f"{r.measure}_pct_baseline", 100.0 * r.value / b, "%",
                              f"derived: 100 · value / baseline mean ({r.method or 'method n/a'})", r.annotation_id,
                              r.time, "derived", r.series_uid, r.acquisition, True, (r.annotation_id,)))
    return out


# ------------------------------------------------------------------------------------------ comparability
@dataclass(frozen=True)
class ComparabilityIssue:
    patient: str
    level: str
    attribute: str  # "TE", "field strength", "voxel size"
    values: tuple[tuple[str, str], ...]  # (visit label, value text) in visit order; "?" = unknown
    text: str


def _differs(a, b, attribute: str) -> bool:
    if attribute == "TE":
        return abs(a - b) > TE_TOLERANCE_MS
    if attribute == "field strength":
        return abs(a - b) > FIELD_TOLERANCE_T
    return any(abs(x - y) > VOXEL_TOLERANCE * max(abs(x), abs(y)) for x, y in zip(a, b))


def iron_comparability(rows: Iterable[MeasureRow]) -> list[ComparabilityIssue]:
    """Per patient and level, the acquisition attributes that differ between the visits of its
    iron values, and those unknown in some visits but known in others."""
    by_level: dict[tuple[str, str], list[MeasureRow]] = defaultdict(list)
    for r in rows:
        if r.is_iron and not r.derived:
            by_level[(r.patient, r.level)].append(r)
    issues: list[ComparabilityIssue] = []
    several_patients = len({p for p, _ in by_level}) > 1
    for (patient, level), rs in sorted(by_level.items(), key=lambda kv: (kv[0][0], level_sort_key(kv[0][1]))):
        visits: OrderedDict[str, tuple[str, list[Acquisition]]] = OrderedDict()
        for r in sorted(rs, key=lambda r: (r.days is None, r.days if r.days is not None else 0, r.visit_label)):
            visits.setdefault(r.visit_id, (r.visit_label, []))[1].append(r.acquisition)
        if len(visits) < 2:
            continue
        for attribute, get, fmt in (("TE", lambda q: q.te_ms, fmt_te),
                                    ("field strength", lambda q: q.field_t, fmt_field),
                                    ("voxel size", lambda q: q.voxel_mm, fmt_voxel)):
            seen: list[tuple[str, object]] = []  # (visit label, value) of distinct known values
            unknown: list[str] = []
            labels: list[tuple[str, str]] = []
            for label, acqs in visits.values():
                vals = [get(q) for q in acqs]
                known = [x for x in vals if x is not None]
                if len(known) < len(vals):
                    unknown.append(label)
                for x in known:
                    if all(_differs(x, y, attribute) for _, y in seen):
                        seen.append((label, x))
                labels.append((label, " / ".join(dict.fromkeys(fmt(x) for x in known)) or "?"))
            where = f"{level or 'no level'}" + (f", patient {patient}" if several_patients else "")
            if len(seen) > 1:
                text = (f"iron values not comparable: {attribute} " + " vs ".join(fmt(x) for _, x in seen)
                        + f" ({where}: " + " vs ".join(lbl for lbl, _ in seen) + ")")
                issues.append(ComparabilityIssue(patient, level, attribute, tuple(labels), text))
            elif unknown and seen:
                text = (f"iron values: {attribute} unknown for {', '.join(unknown)} ({where}) — "
                        "cannot check that the visits are comparable")
                issues.append(ComparabilityIssue(patient, level, attribute, tuple(labels), text))
    return issues


__all__ = ["LONG_COLUMNS", "SDC_FACTOR", "VisitInfo", "visit_infos", "Acquisition", "MeasureRow", "measure_name",
           "SdcResult", "smallest_detectable_change", "Cell", "Pivot", "MeasureTable", "signal_ratio_rows",
           "percent_of_baseline_rows", "ComparabilityIssue", "iron_comparability"]

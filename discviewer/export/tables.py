"""Measurement tables for analysis: the long CSV, the per-disc wide CSV and HDF5.

All three take a `Workspace` and an `ExportPolicy` (`discviewer.export.pseudonym`; de-identified
by default) and start from `MeasureTable.from_workspace` — the measured values of every
annotation plus the derived rows (signal ratios, SNR, disc-height indices, % of baseline).

**Long CSV** (`measurements_long`, `write_long_csv`): one row per value, columns `LONG_COLUMNS`:

| column | content |
|---|---|
| patient | pseudonym ("P01"); the patient ID only with `ExportPolicy(identifying=True)` |
| visit_label | "baseline", "3 m", … (the user's label) |
| days | days since the patient's baseline visit ("" when the visit is undated) |
| level | disc level "L4/L5" ("" when not tied to one) |
| series_role | role of the series measured on ("T2 sag", …): the annotation's `extra["series_role"]`, else the study's role of its series |
| measure | machine name (`discviewer.measure_table.measure_name`: e.g. `DHm`, `mean (T2 sag)`, `reference_csf_mean`, `dhi_farfan`) |
| value | the number, full precision (`repr` of the float: reads back equal) |
| unit | as stored ("mm", "mm²", "a.u.", "%", "" for ratios and counts) |
| method | the annotation's method, or "derived: <formula>" for derived rows |
| reader | who measured |
| timestamp | UTC ISO time of the measurement (the annotation's last change) — when it was measured, not a patient date |
| app_version | version of discviewer that wrote the export |
| source_series_uid | SeriesInstanceUID measured on — remapped (`ExportPolicy.uid`) when de-identified, so it joins with de-identified DICOM exports |
| annotation_id | the annotation the value comes from (derived rows: their main source) |
| notice | "Research use only - not for diagnostic use" on every row |

The research-use notice is a **last column** rather than a comment line (CSV readers choke on
comment lines) or a sidecar file (which gets lost when the CSV travels alone). Files are UTF-8,
"\\n" line ends, one header row, written to a temp file beside the target and moved into place
(`discviewer.atomic`), so a reader never sees half a file.

**Wide CSV** (`measurements_wide`, `write_wide_csv`): one row per patient × disc level × visit
(levels in spinal order, visits in time order); columns `patient, visit_label, days, level, readers`,
then one column per measure named `measure [unit]` (`measure` when unitless), then `notice`. A cell
is the mean of the values that fall into it (repeats, and all readers unless `reader` is given —
`readers` lists whose values were averaged); empty when not measured.

**HDF5** (`write_hdf5`): for analysis scripts (h5py, pandas)::

    /                                   attrs: notice, app_version, created (UTC), identifying, format
    /<patient>/                         attrs: patient (label as in the CSV)
    /<patient>/<level>/                 attrs: level ("L4/L5"; the group name is "L4-L5", "no level" for "")
    /<patient>/<level>/<measure>/       attrs: measure, unit, methods (distinct, "; "), notice, app_version
        value (float64) days (float64, NaN = undated) visit_label, reader, method, timestamp,
        series_role, source_series_uid, annotation_id (UTF-8 strings) — parallel 1-D datasets, one
        element per row of the long table

Measure names containing "/" are written with "∕" (U+2215) as the group name; the `measure` attr keeps
the real name.

Core module: stdlib, numpy, h5py.
"""
from __future__ import annotations

import csv
import datetime as _dt
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np

from discviewer.atomic import atomic_path, atomic_write
from discviewer.export.pseudonym import RESEARCH_USE_NOTICE, ExportPolicy, app_version
from discviewer.levels import level_sort_key
from discviewer.measure_table import MeasureTable

#: the long CSV's header, in order
LONG_COLUMNS = ("patient", "visit_label", "days", "level", "series_role", "measure", "value", "unit", "method",
                "reader", "timestamp", "app_version", "source_series_uid", "annotation_id", "notice")
#: leading columns of the wide CSV (measures follow, `notice` is last)
WIDE_KEY_COLUMNS = ("patient", "visit_label", "days", "level", "readers")
#: the HDF5 layout's name/version (root attr "format")
HDF5_FORMAT = "discviewer-measurements/1"
HDF5_ROW_FIELDS = ("visit_label", "reader", "method", "timestamp", "series_role", "source_series_uid",
                   "annotation_id")


# ------------------------------------------------------------------------------------------ helpers
def _series_roles(workspace) -> dict[str, str]:
    """SeriesInstanceUID → role value, from the study (else the stored patient records)."""
    out: dict[str, str] = {}
    if workspace.study is not None:
        for v in workspace.study.visits():
            for e in v.series:
                out.setdefault(e.series_uid, e.role.value)
    else:
        for p in workspace.patients:
            for v in p.visits:
                for s in v.series:
                    if s.role:
                        out.setdefault(s.series_uid, s.role)
    return out


def _write_csv(path, columns, rows) -> Path:
    path = Path(path)
    with atomic_write(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k)) for k in columns})
    return path


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


def _table(workspace, derived: bool = True) -> MeasureTable:
    return MeasureTable.from_workspace(workspace, derived=derived)


# ------------------------------------------------------------------------------------------ long
def measurements_long(workspace, policy: ExportPolicy, *, reader: str | None = None,
                      derived: bool = True) -> list[dict]:
    """The long table's rows (dicts keyed by `LONG_COLUMNS`), in the `MeasureTable`'s order sorted by
    patient, level (spinal order), visit time and measure order. `reader` keeps one reader's rows."""
    table = _table(workspace, derived)
    roles = _series_roles(workspace)
    annotations = {a.id: a for a in workspace.annotations}
    version = app_version()
    visit_order = {v.id: (v.index if v.index is not None else 1 << 30) for v in table.visits}
    measure_order = {m: i for i, m in enumerate(table.measures())}
    rows = table.rows if reader is None else table.select(reader=reader)
    rows = sorted(rows, key=lambda r: (r.patient, level_sort_key(r.level), visit_order.get(r.visit_id, 1 << 30),
                                       r.reader, measure_order.get(r.measure, 1 << 30)))
    out = []
    for r in rows:
        a = annotations.get(r.annotation_id)
        role = str((a.extra or {}).get("series_role") or "") if a is not None else ""
        role = role or roles.get(r.series_uid, "")
        out.append({
            "patient": policy.patient_label(r.patient) if r.patient else "",
            "visit_label": r.visit_label,
            "days": r.days,
            "level": r.level,
            "series_role": role,
            "measure": r.measure,
            "value": float(r.value),
            "unit": r.unit,
            "method": r.method,
            "reader": r.reader,
            "timestamp": r.time,
            "app_version": version,
            "source_series_uid": policy.uid(r.series_uid),
            "annotation_id": r.annotation_id,
            "notice": RESEARCH_USE_NOTICE,
        })
    return out


def write_long_csv(path, workspace, policy: ExportPolicy, *, reader: str | None = None,
                   derived: bool = True) -> Path:
    """Write the long table (module docstring) atomically; returns the path."""
    return _write_csv(path, LONG_COLUMNS, measurements_long(workspace, policy, reader=reader, derived=derived))


# ------------------------------------------------------------------------------------------ wide
def _column_name(measure: str, unit: str) -> str:
    return f"{measure} [{unit}]" if unit else measure


def measurements_wide(workspace, policy: ExportPolicy, *, reader: str | None = None,
                      derived: bool = True) -> tuple[list[str], list[dict]]:
    """(columns, rows) of the wide table (module docstring)."""
    long = measurements_long(workspace, policy, reader=reader, derived=derived)
    units: OrderedDict[str, str] = OrderedDict()
    for r in long:
        if r["measure"] not in units or (r["unit"] and not units[r["measure"]]):
            units[r["measure"]] = r["unit"]
    columns = {m: _column_name(m, u) for m, u in units.items()}
    cells: OrderedDict[tuple, dict] = OrderedDict()
    for r in long:
        key = (r["patient"], r["level"], r["visit_label"], r["days"])
        cell = cells.setdefault(key, {"values": {}, "readers": []})
        cell["values"].setdefault(r["measure"], []).append(r["value"])
        if r["reader"] not in cell["readers"]:
            cell["readers"].append(r["reader"])
    rows = []
    for (patient, level, label, days), cell in cells.items():
        row = {"patient": patient, "visit_label": label, "days": days, "level": level,
               "readers": ";".join(sorted(cell["readers"]))}
        for m, col in columns.items():
            vals = cell["values"].get(m)
            row[col] = float(np.mean(vals)) if vals else None
        row["notice"] = RESEARCH_USE_NOTICE
        rows.append(row)
    return [*WIDE_KEY_COLUMNS, *columns.values(), "notice"], rows


def write_wide_csv(path, workspace, policy: ExportPolicy, *, reader: str | None = None,
                   derived: bool = True) -> Path:
    """Write the per-disc wide table (module docstring) atomically; returns the path."""
    columns, rows = measurements_wide(workspace, policy, reader=reader, derived=derived)
    return _write_csv(path, columns, rows)


# ------------------------------------------------------------------------------------------ HDF5
def _h5_name(text: str, empty: str) -> str:
    text = str(text).replace("/", "\u2215")
    return text if text not in ("", ".") else empty


def write_hdf5(path, workspace, policy: ExportPolicy, *, reader: str | None = None, derived: bool = True) -> Path:
    """Write the measurements as HDF5 (module docstring) atomically; returns the path."""
    import h5py

    long = measurements_long(workspace, policy, reader=reader, derived=derived)
    tree: OrderedDict[tuple[str, str, str], list[dict]] = OrderedDict()
    for r in long:
        tree.setdefault((r["patient"], r["level"], r["measure"]), []).append(r)
    text = h5py.string_dtype("utf-8")
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["notice"] = RESEARCH_USE_NOTICE
            f.attrs["app_version"] = app_version()
            f.attrs["format"] = HDF5_FORMAT
            f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace(
                "+00:00", "Z")
            f.attrs["identifying"] = bool(policy.identifying)
            for (patient, level, measure), rows in tree.items():
                pg = f.require_group(_h5_name(patient, "no patient"))
                pg.attrs["patient"] = patient
                lg = pg.require_group(_h5_name(level.replace("/", "-"), "no level"))
                lg.attrs["level"] = level
                mg = lg.create_group(_h5_name(measure, "no name"))
                mg.attrs["measure"] = measure
                mg.attrs["unit"] = next((r["unit"] for r in rows if r["unit"]), "")
                mg.attrs["methods"] = "; ".join(dict.fromkeys(r["method"] for r in rows if r["method"]))
                mg.attrs["notice"] = RESEARCH_USE_NOTICE
                mg.attrs["app_version"] = app_version()
                mg.create_dataset("value", data=np.array([r["value"] for r in rows], dtype=np.float64))
                mg.create_dataset("days", data=np.array(
                    [np.nan if r["days"] is None else float(r["days"]) for r in rows], dtype=np.float64))
                for name in HDF5_ROW_FIELDS:
                    mg.create_dataset(name, data=np.array([str(r[name] or "") for r in rows], dtype=object),
                                      dtype=text)
    return path


def read_hdf5(path) -> list[dict]:
    """The rows of a file written by `write_hdf5`, as long-table dicts (for scripts and tests)."""
    import h5py

    out = []
    with h5py.File(path, "r") as f:
        notice = str(f.attrs.get("notice", ""))
        version = str(f.attrs.get("app_version", ""))
        for pg in f.values():
            for lg in pg.values():
                for mg in lg.values():
                    n = mg["value"].shape[0]
                    cols = {k: mg[k].asstr()[:] for k in HDF5_ROW_FIELDS}
                    for i in range(n):
                        days = float(mg["days"][i])
                        row = {"patient": str(pg.attrs["patient"]), "level": str(lg.attrs["level"]),
                               "measure": str(mg.attrs["measure"]), "unit": str(mg.attrs["unit"]),
                               "value": float(mg["value"][i]), "days": None if math.isnan(days) else int(days),
                               "app_version": version, "notice": notice}
                        row.update({k: str(cols[k][i]) for k in HDF5_ROW_FIELDS})
                        out.append(row)
    return out


__all__ = ["LONG_COLUMNS", "WIDE_KEY_COLUMNS", "HDF5_FORMAT", "measurements_long", "write_long_csv",
           "measurements_wide", "write_wide_csv", "write_hdf5", "read_hdf5"]

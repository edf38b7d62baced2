"""discviewer.export tables: the long CSV, the wide CSV and HDF5 of a phantom workspace with real
measurements (disc heights, T2 ROIs with a CSF reference, iron on the GRE echo, scores, two readers);
the export policy (pseudonyms, remapped UIDs) and the leak check of de-identified exports."""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest

from discviewer.deid import date_variants, find_identifying_strings, hashed_uid
from discviewer.export import (LONG_COLUMNS, RESEARCH_USE_NOTICE, ExportPolicy, default_pseudonyms,
                               measurements_long, policy_for, read_hdf5, write_hdf5, write_long_csv, write_wide_csv)
from discviewer.export import tables
from discviewer.io import load
from discviewer.measure import compute_values
from discviewer.measure_flows import iron_annotation
from discviewer.measure_table import measure_name
from discviewer.study import Study
from discviewer.workspace.data import Annotation
from discviewer.workspace.project import Workspace
from tests.core.phantom_cache import phantom_scan

LANDMARKS = ("upper_anterior", "upper_middle", "upper_posterior", "lower_anterior", "lower_middle", "lower_posterior")
_WS: dict[str, object] = {}


def _measured(ws: Workspace, a: Annotation, volume=None) -> Annotation:
    values, units = compute_values(a, volume)
    return ws.annotations.add(dataclasses.replace(a, values=values, units=units))


def build_workspace(folder: Path, result) -> Workspace:
    """The small phantom with measurements on its first two visits, placed through the core APIs:
    disc heights (L4/L5, L5/S1) from the truth landmarks, nucleus + CSF ellipses on T2 (signal ratio),
    the same ROIs on the third GRE echo and an iron annotation from them, a Pfirrmann score; and a
    second reader's L4/L5 disc height at baseline (endplates 0.4 mm further apart)."""
    truth = json.loads((folder / "truth.json").read_text())
    ws = Workspace(user="tester", name="export test")
    ws.attach_study(Study.from_scan(result))
    patient = ws.study.patients[0]
    for vi, visit in enumerate(patient.visits[:2]):
        tv = truth["patients"][0]["visits"][vi]
        t2 = visit.entries("T2 sag")[0]
        gre = visit.entries("multi-echo GRE")[0]
        t2_volume = load(t2.candidate(0))
        for level in ("L4/L5", "L5/S1"):
            six = tuple(tuple(tv["discs"][level]["landmarks"][k]) for k in LANDMARKS)
            _measured(ws, Annotation(id="", kind="disc_height", level=level, visit_id=visit.id,
                                     series_uid=t2.series_uid, points=six, reader="r1", method="6-point",
                                     extra={"series_role": "T2 sag"}))
        rois = tv["discs"]["L4/L5"]["signal_rois_t2"]
        echo = gre.candidate(2)
        gre_volume = load(echo)
        on_gre = {}
        for role, key in (("disc", "nucleus"), ("reference", "csf")):
            extra = {"roi_role": role, **({"tissue": "csf"} if role == "reference" else {})}
            points = tuple(tuple(p) for p in rois[key]["points"])
            _measured(ws, Annotation(id="", kind="ellipse", level="L4/L5", visit_id=visit.id, series_uid=t2.series_uid,
                                     points=points, reader="r1", method="ellipse ROI",
                                     extra={**extra, "series_role": "T2 sag"}), t2_volume)
            on_gre[role] = _measured(ws, Annotation(
                id="", kind="ellipse", level="L4/L5", visit_id=visit.id, series_uid=gre.series_uid, points=points,
                reader="r1", method="ellipse ROI",
                extra={**extra, "series_role": "multi-echo GRE", "echo_time_ms": echo.info.echo_time}), gre_volume)
        iron, _ = iron_annotation(on_gre["disc"], gre_volume, on_gre["reference"])
        ws.annotations.add(iron)
        ws.annotations.add(Annotation(id="", kind="score", level="L4/L5", visit_id=visit.id, reader="r1",
                                      values={"pfirrmann": 3, "hiz": False}, method="Pfirrmann 2001"))
    v0 = patient.visits[0]
    lm = truth["patients"][0]["visits"][0]["discs"]["L4/L5"]["landmarks"]
    six = tuple(tuple(np.add(lm[k], (0.0, 0.0, 0.2 if k.startswith("upper") else -0.2))) for k in LANDMARKS)
    _measured(ws, Annotation(id="", kind="disc_height", level="L4/L5", visit_id=v0.id,
                             series_uid=v0.entries("T2 sag")[0].series_uid, points=six, reader="r2",
                             method="6-point"))
    return ws


def export_workspace(tmp_path_factory) -> tuple[Path, object, Workspace]:
    """(phantom folder, scan result, workspace) — built once per test session."""
    folder, result = phantom_scan(tmp_path_factory)
    if "ws" not in _WS:
        _WS["ws"] = build_workspace(Path(folder), result)
    return Path(folder), result, _WS["ws"]


def forbidden_strings(folder: Path) -> list[str]:
    """What must not appear in a de-identified export of the phantom: the patient's name and ID, birth
    date and every visit's study date (common spellings), accession numbers, and the source UIDs."""
    out: set[str] = set()
    for f in sorted(folder.rglob("IM_0001.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out |= {str(ds.PatientName), str(ds.PatientID), str(ds.AccessionNumber), ds.StudyInstanceUID,
                ds.SeriesInstanceUID, ds.SOPInstanceUID}
        for kw in ("PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            out |= set(date_variants(ds.get(kw, "")))
    return sorted(x for x in out if x)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder, result, ws = export_workspace(tmp_path_factory)
    policy = policy_for(ws)
    out = tmp_path_factory.mktemp("export_tables")
    paths = {"long": write_long_csv(out / "long.csv", ws, policy), "wide": write_wide_csv(out / "wide.csv", ws, policy),
             "h5": write_hdf5(out / "measurements.h5", ws, policy)}
    return folder, ws, policy, out, paths


def read_csv(path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def numeric_values(a: Annotation) -> dict[str, float]:
    out = {}
    for k, v in a.values.items():
        if isinstance(v, (bool, int, float)) and np.isfinite(float(v)):
            out[k] = float(v)
    return out


# ------------------------------------------------------------------------------------------ policy
def test_policy_pseudonyms_are_stable_and_stored(tmp_path_factory):
    _, _, ws = export_workspace(tmp_path_factory)
    policy = policy_for(ws)
    pid = ws.study.patients[0].id
    assert policy.pseudonyms == {pid: "P01"} and not policy.identifying and len(policy.uid_salt) >= 16
    assert ws.settings["export"]["pseudonyms"] == {pid: "P01"} and ws.is_dirty
    again = policy_for(ws)
    assert again == policy  # same pseudonyms and salt on every export
    assert policy.patient_label(pid) == "P01" and policy.patient_name(pid, "DOE^JOHN") == "P01"
    assert policy.uid("1.2.3") == hashed_uid("1.2.3", policy.uid_salt) != "1.2.3"
    assert policy.date("2019-08-12") == ""
    ident = policy_for(ws, identifying=True)
    assert ident.patient_label(pid) == pid and ident.uid("1.2.3") == "1.2.3" and ident.date("2019-08-12")
    # a patient added later gets the next number; earlier ones keep theirs
    assert default_pseudonyms(["B", "A", "C"], {"A": "P01", "X": "P03"}) == {"A": "P01", "X": "P03", "B": "P02",
                                                                          "C": "P04"}
    with pytest.raises(KeyError):
        policy.patient_label("someone else")  # never falls back to the ID
    with pytest.raises(ValueError):
        ExportPolicy()  # de-identifying needs a salt
    with pytest.raises(ValueError):
        ExportPolicy(pseudonyms={"a": "P01", "b": "P01"}, uid_salt="s")
    fresh = Workspace(user="x")
    fresh.attach_study(ws.study)
    assert policy_for(fresh, store=False).pseudonyms == {pid: "P01"} and "export" not in fresh.settings


# ------------------------------------------------------------------------------------------ long CSV
def test_long_csv_has_one_row_per_value_with_provenance(exported):
    folder, ws, policy, out, paths = exported
    text = paths["long"].read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(LONG_COLUMNS)  # a plain header row first, no comment lines
    assert not any(line.startswith("#") for line in text.splitlines())
    columns, rows = read_csv(paths["long"])
    assert tuple(columns) == LONG_COLUMNS
    assert all(r["notice"] == RESEARCH_USE_NOTICE for r in rows)
    assert {r["app_version"] for r in rows} == {ws.app_version}
    patient = ws.study.patients[0]
    visits = {v.id: v for v in patient.visits}
    by_id: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_id.setdefault(r["annotation_id"], {})[r["measure"]] = r
    n_values = 0
    for a in ws.annotations:
        vals = numeric_values(a)
        for key, value in vals.items():
            r = by_id[a.id][measure_name(a, key)]
            n_values += 1
            assert float(r["value"]) == value  # full precision
            assert r["unit"] == str(a.units.get(key, ""))
            assert (r["method"], r["reader"], r["timestamp"], r["level"]) == (a.method, a.reader, a.modified, a.level)
            v = visits[a.visit_id]
            assert (r["patient"], r["visit_label"], r["days"]) == ("P01", v.label, str(v.days))
            assert r["source_series_uid"] == (hashed_uid(a.series_uid, policy.uid_salt) if a.series_uid else "")
            assert r["series_role"] == (a.extra.get("series_role") or
                                        ("T2 sag" if a.series_uid else ""))
        # NaN values (e.g. an iron contrast ratio without a void) are not exported
        assert len([r for r in rows if r["annotation_id"] == a.id and not r["method"].startswith("derived")]) \
            == len(vals)
    assert n_values > 40
    # the baseline iron measurement has no void: its contrast ratio is undefined, so the AnnotationSet
    # does not store it (only finite values are stored) and no row is written for it
    assert any(a.kind == "iron" and "contrast_ratio" not in a.values for a in ws.annotations)
    derived = [r for r in rows if r["method"].startswith("derived")]
    names = {r["measure"] for r in derived}
    assert {"dh_mean", "dhi_farfan", "signal_ratio_csf (T2 sag)", "DHm_pct_baseline"} <= names
    ratio = next(r for r in derived if r["measure"] == "signal_ratio_csf (T2 sag)" and r["days"] == "0")
    disc = next(a for a in ws.annotations if a.id == ratio["annotation_id"])
    ref = next(a for a in ws.annotations if a.kind == "ellipse" and a.visit_id == disc.visit_id
               and a.series_uid == disc.series_uid and a.extra.get("roi_role") == "reference")
    assert float(ratio["value"]) == pytest.approx(disc.values["mean"] / ref.values["mean"], rel=1e-15)
    # in memory the same rows, typed
    mem = measurements_long(ws, policy)
    assert len(mem) == len(rows) and isinstance(mem[0]["value"], float) and list(mem[0]) == list(LONG_COLUMNS)
    assert {r["reader"] for r in measurements_long(ws, policy, reader="r2")} == {"r2"}


def test_wide_csv_one_row_per_patient_level_visit(exported):
    folder, ws, policy, out, paths = exported
    columns, rows = read_csv(paths["wide"])
    assert columns[:5] == ["patient", "visit_label", "days", "level", "readers"] and columns[-1] == "notice"
    assert "DHm [mm]" in columns and "dhi_farfan" in columns and "mean (T2 sag) [a.u.]" in columns
    keys = [(r["patient"], r["level"], r["visit_label"]) for r in rows]
    assert len(keys) == len(set(keys)) == 4  # 2 levels × 2 visits
    base = next(r for r in rows if r["level"] == "L4/L5" and r["days"] == "0")
    assert base["readers"] == "r1;r2"
    by_reader = {a.reader: a.values["DHm"] for a in ws.annotations if a.kind == "disc_height"
                 and a.level == "L4/L5" and a.visit_id == ws.study.patients[0].visits[0].id}
    assert sorted(by_reader) == ["r1", "r2"] and by_reader["r1"] != by_reader["r2"]
    assert float(base["DHm [mm]"]) == pytest.approx(np.mean(list(by_reader.values())), rel=1e-15)
    l5 = next(r for r in rows if r["level"] == "L5/S1" and r["days"] == "0")
    assert l5["mean (T2 sag) [a.u.]"] == "" and l5["readers"] == "r1"  # not measured there
    assert all(r["notice"] == RESEARCH_USE_NOTICE for r in rows)
    _, rows_r1 = tables.measurements_wide(ws, policy, reader="r1")
    base_r1 = next(r for r in rows_r1 if r["level"] == "L4/L5" and r["days"] == 0)
    assert base_r1["DHm [mm]"] == by_reader["r1"] and base_r1["readers"] == "r1"


# ------------------------------------------------------------------------------------------ HDF5
def test_hdf5_groups_datasets_and_attrs(exported):
    folder, ws, policy, out, paths = exported
    long = measurements_long(ws, policy)
    with h5py.File(paths["h5"], "r") as f:
        assert f.attrs["notice"] == RESEARCH_USE_NOTICE and f.attrs["app_version"] == ws.app_version
        assert not f.attrs["identifying"] and f.attrs["format"] == tables.HDF5_FORMAT
        assert list(f) == ["P01"]
        g = f["P01/L4-L5/DHm"]
        assert f["P01/L4-L5"].attrs["level"] == "L4/L5"
        assert g.attrs["unit"] == "mm" and g.attrs["measure"] == "DHm" and g.attrs["methods"] == "6-point"
        assert g.attrs["notice"] == RESEARCH_USE_NOTICE
        expect = [r for r in long if r["level"] == "L4/L5" and r["measure"] == "DHm"]
        np.testing.assert_array_equal(g["value"][:], [r["value"] for r in expect])
        np.testing.assert_array_equal(g["days"][:], [r["days"] for r in expect])
        assert list(g["reader"].asstr()[:]) == [r["reader"] for r in expect]
        assert list(g["annotation_id"].asstr()[:]) == [r["annotation_id"] for r in expect]
        assert "mean (T2 sag)" in f["P01/L4-L5"]
    back = read_hdf5(paths["h5"])
    key = lambda r: (r["patient"], r["level"], r["measure"], r["annotation_id"], r["reader"])  # noqa: E731
    assert sorted(back, key=key) == sorted(long, key=key)


# ------------------------------------------------------------------------------------------ de-identification
def _h5_strings(path) -> list[str]:
    out = []

    def visit(name, obj):
        out.append(name)
        out.extend(str(v) for v in obj.attrs.values())
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "O":
            out.extend(obj.asstr()[:])

    with h5py.File(path, "r") as f:
        out.extend(str(v) for v in f.attrs.values())
        f.visititems(visit)
    return out


def test_deidentified_tables_contain_no_name_id_or_date(exported, tmp_path):
    folder, ws, policy, out, paths = exported
    forbidden = forbidden_strings(folder)
    assert "DVPH0-01" in forbidden and "PHANTOM^S0P01" in forbidden and "20190812" in forbidden
    assert "2019-08-12" in forbidden  # spellings of dates
    assert find_identifying_strings(out, forbidden) == []
    strings = " ".join(_h5_strings(paths["h5"])).lower()
    assert not [s for s in forbidden if s.lower() in strings]
    # positive control: an identifying export names the patient — only when asked for
    ident = policy_for(ws, identifying=True)
    write_long_csv(tmp_path / "ident.csv", ws, ident)
    write_hdf5(tmp_path / "ident.h5", ws, ident)
    hits = {f.string for f in find_identifying_strings(tmp_path, forbidden)}
    assert "DVPH0-01" in hits
    assert any(s.startswith("2.25.") for s in hits)  # the original series UIDs


def test_writes_are_atomic(exported, tmp_path, monkeypatch):
    folder, ws, policy, out, paths = exported
    target = tmp_path / "long.csv"
    write_long_csv(target, ws, policy)
    before = target.read_bytes()

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tables, "_cell", broken)
    with pytest.raises(RuntimeError):
        write_long_csv(target, ws, policy)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.csv"]  # no temp file left behind

"""disc_finder on the phantom: from one clicked disc, the discs above and below are found along the
spine and named by order — on every visit of the small (1.875 mm pixels) and full (0.586 mm) phantom,
from a click at the true centre of L4/L5, of L5/S1, and 2.5 mm off the centre of L4/L5.

The truth used here covers every disc of the phantom's spine (T10/T11 … S3/S4, rebuilt from the
phantom's anatomy for the visit), not only the six the truth file lists, so a disc found above
T12/L1 is checked too and a "disc" found anywhere else (the sacrum, a vertebral body) is a failure.

Centres are compared **in the slice plane**: the finder labels the discs on the clicked sagittal
slice (the labels show where the reader is looking), while the phantom's spine is tilted out of
that plane by up to 6 mm between T11 and S1 on some visits; the through-plane offset is printed.
Bound 2.0 mm on both phantoms (measured: see the printed summary, `pytest -s`; the small phantom's
worst, ~1.9 mm, is T11/T12 where the spine lies 5–6 mm off the clicked slice)."""
from __future__ import annotations

import numpy as np
import pytest

from discviewer.disc_finder import FoundDisc, find_discs, label_discs
from discviewer.phantom import anatomy as A
from discviewer.phantom.geometry import apply
from tests.core.phantom_cache import phantom_study

BOUND_MM = {"full": 2.0, "small": 2.0}
OFF_CENTRE = np.array([0.0, 1.5, -2.0])  # 2.5 mm: posterior and caudal of the centre
CLICKS = (("L4/L5", False), ("L5/S1", False), ("L4/L5", True))
_RUNS: dict[str, list] = {}


def all_disc_centres(patient, visit) -> dict[str, np.ndarray]:
    """Every disc of the visit's spine (T10/T11 … S3/S4), centre = midpoint of the endplate middles
    (as the truth file's `centre`), in the visit's patient space."""
    spine = A.build_spine(patient.anatomy, float(visit.days))
    out = {}
    for level in A.DISCS:
        lm = A.disc_landmarks(spine, level)
        out[level] = (apply(visit.baseline_to_visit, lm["upper_middle"])
                      + apply(visit.baseline_to_visit, lm["lower_middle"])) / 2
    return out


def runs(size: str) -> list[dict]:
    """label_discs from every click on every visit (once per session and size)."""
    if size not in _RUNS:
        study = phantom_study(size)
        p = study.patients[0]
        out = []
        for v in p.visits:
            vol = v.series_by_key("t2").volume(0)
            truth = all_disc_centres(p, v)
            for level, off in CLICKS:
                click = np.asarray(v.truth["discs"][level]["centre"], float) + (OFF_CENTRE if off else 0.0)
                found = label_discs(vol, click, level)
                normal = vol.affine[:3, 2] / np.linalg.norm(vol.affine[:3, 2])
                rows = []
                for name, d in found.items():
                    c = np.asarray(d.center_lps)
                    nearest = min(truth, key=lambda k: np.linalg.norm(truth[k] - c))
                    e = truth[nearest] - c
                    in_plane = float(np.linalg.norm(e - (e @ normal) * normal))
                    rows.append(dict(name=name, nearest=nearest, in_plane=in_plane, through=float(abs(e @ normal)),
                                     disc=d))
                out.append(dict(visit=v.label, click=level + (" off-centre" if off else ""), rows=rows,
                                truth_listed=set(v.truth["discs"]), truth=truth, volume=vol, click_point=click))
        _RUNS[size] = out
        errs = [r["in_plane"] for run in out for r in run["rows"]]
        thr = [r["through"] for run in out for r in run["rows"]]
        print(f"\n{size} phantom disc finder: {len(out)} walks, discs found per walk "
              f"{sorted({len(run['rows']) for run in out})}, max in-plane centre error {max(errs):.2f} mm "
              f"(RMS {np.sqrt(np.mean(np.square(errs))):.2f}), through-plane offset max {max(thr):.1f} mm")
        for run in out:
            print(f"  {run['visit']:8s} {run['click']:18s} " + " ".join(
                f"{r['name']}:{r['in_plane']:.2f}" for r in run["rows"]))
    return _RUNS[size]


@pytest.mark.parametrize("size", ["small", "full"])
def test_every_found_disc_is_a_true_disc_with_its_name(size):
    """No false disc: each found disc is the true disc nearest to it, named by that disc's level,
    within the size's bound, and lies on the clicked slice."""
    for run in runs(size):
        names = [r["name"] for r in run["rows"]]
        assert len(names) == len(set(names)), (run["visit"], run["click"], names)
        for r in run["rows"]:
            where = (size, run["visit"], run["click"], r["name"])
            assert r["nearest"] == r["name"], where
            assert r["in_plane"] <= BOUND_MM[size], (where, r["in_plane"])
            assert 0.0 <= r["disc"].confidence <= 1.0 and 3.5 <= r["disc"].height_mm <= 20.0
        # found discs are ordered cranial → caudal and spaced like discs (one vertebral body apart)
        z = [r["disc"].center_lps[2] for r in run["rows"]]
        assert z == sorted(z, reverse=True)
        steps = np.linalg.norm(np.diff([r["disc"].center_lps for r in run["rows"]], axis=0), axis=1)
        assert np.all((steps > 25.0) & (steps < 45.0)), steps


@pytest.mark.parametrize("size", ["small", "full"])
def test_all_lumbar_discs_are_found_on_every_visit(size):
    """Every disc the truth lists (T12/L1 … L5/S1) is found from every click on every visit (so at
    least 5 — six, plus T11/T12 where it is in the field of view)."""
    for run in runs(size):
        names = {r["name"] for r in run["rows"]}
        assert run["truth_listed"] <= names, (size, run["visit"], run["click"], sorted(names))
        assert len(names) >= 5
        assert "L5/S1" == run["rows"][-1]["name"]  # nothing below L5/S1


@pytest.mark.parametrize("size", ["small", "full"])
def test_the_walk_stops_at_the_sacrum(size):
    """Unbounded by names, the walk down from L5/S1 finds nothing in the sacrum (fused segments,
    1–1.5 mm "discs") — on every visit."""
    for run in runs(size):
        if run["click"] != "L5/S1":
            continue
        discs = find_discs(run["volume"], run["click_point"], max_cranial=0)
        assert len(discs) == 1, (size, run["visit"], [d.center_lps for d in discs])
        assert np.linalg.norm(np.asarray(discs[0].center_lps) - run["truth"]["L5/S1"]) < 6.0


def test_limits_and_order():
    study = phantom_study("small")
    v = study.patients[0].visits[0]
    vol = v.series_by_key("t2").volume(0)
    click = v.truth["discs"]["L3/L4"]["centre"]
    discs = find_discs(vol, click, max_discs=3)
    assert len(discs) == 3 and all(isinstance(d, FoundDisc) for d in discs)
    assert np.linalg.norm(np.subtract(discs[1].center_lps, click)) < 6.0  # the clicked disc in the middle
    up = find_discs(vol, click, max_caudal=0, max_cranial=2)
    assert len(up) == 3 and np.linalg.norm(np.subtract(up[-1].center_lps, click)) < 6.0
    axis = np.asarray(discs[1].axis)
    assert axis[2] > 0.8 and abs(np.linalg.norm(axis) - 1) < 1e-9  # superior, unit
    # names reach only as far as the list: from T12/L1 one disc above (T11/T12), none beyond
    top = label_discs(vol, v.truth["discs"]["T12/L1"]["centre"], "T12/L1")
    assert list(top)[:2] == ["T11/T12", "T12/L1"]


def test_no_disc_at_the_click_and_unknown_level():
    study = phantom_study("small")
    v = study.patients[0].visits[0]
    vol = v.series_by_key("t2").volume(0)
    with pytest.raises(ValueError, match="no disc"):
        find_discs(vol, np.add(v.truth["discs"]["L3/L4"]["centre"], [0.0, -70.0, 0.0]))  # in front of the spine
    with pytest.raises(ValueError, match="unknown disc level"):
        label_discs(vol, v.truth["discs"]["L3/L4"]["centre"], "L9/L10")
    with pytest.raises(ValueError):
        find_discs(vol, v.truth["discs"]["L3/L4"]["centre"], max_discs=0)

"""Rigid registration: discviewer `register_rigid` (NCC, MI) vs SimpleITK, time and error side by side.

    .venv/bin/python benchmarks/bench_registration.py [--data DIR] [--phantom full|small] [--skip-phantom]

Cases (see benchmarks/README.md): (a) real HFS T1 moved by a known rigid transform (3°, 4 mm,
gain 1.7, noise σ 20) — error = TRE vs the truth; (b) real patient motion HFS→HFP and HFS→HFDL
(dcm_qa_decubitus) — error = distance to the SimpleITK reference (accurate set-up with the moving
image gradient filter off, see tests/core/test_registration_sitk.py for why); (c) phantom visit 2 →
baseline with an L4/L5 ROI — TRE vs the truth. Errors are RMS over the 8 corners of a box: the
central 60 % of the fixed volume for (a)/(b), the disc ROI for (c). One run per row (no repeats).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import scipy  # noqa: E402
import SimpleITK as sitk  # noqa: E402

import discviewer  # noqa: E402
from discviewer.registration import register_rigid  # noqa: E402
from discviewer.reslice import resample_volume  # noqa: E402
from discviewer.volume import Volume  # noqa: E402


# ---------------------------------------------------------------- geometry helpers

def corners(box) -> np.ndarray:
    x0, y0, z0, x1, y1, z1 = box
    return np.array([[x, y, z, 1.0] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)]).T


def central_box(v: Volume) -> tuple[float, ...]:
    n = np.array(v.shape[::-1], float) - 1
    p = v.index_to_patient(np.array([[f * n[0], g * n[1], h * n[2]] for f in (0.2, 0.8) for g in (0.2, 0.8)
                                     for h in (0.2, 0.8)]))
    return (*p.min(0), *p.max(0))


def err(a: np.ndarray, b: np.ndarray, box) -> tuple[float, float]:
    d = ((a - b) @ corners(box))[:3]
    r = a[:3, :3] @ b[:3, :3].T
    return (float(np.sqrt((d ** 2).sum(0).mean())),
            float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))))


# ---------------------------------------------------------------- SimpleITK

def to_sitk(v: Volume):
    img = sitk.GetImageFromArray(np.ascontiguousarray(v.array, dtype=np.float32))
    sp = np.asarray(v.spacing, float)
    a = np.asarray(v.affine, float)
    img.SetSpacing(tuple(sp))
    img.SetOrigin(tuple(a[:3, 3]))
    img.SetDirection(tuple((a[:3, :3] / sp).ravel()))
    return img


def roi_mask(v: Volume, box):
    """uint8 SimpleITK mask of the fixed voxels inside the patient-space box."""
    k, j, i = np.indices(v.shape)
    p = v.index_to_patient(np.c_[i.ravel(), j.ravel(), k.ravel()].astype(float))
    lo, hi = np.minimum(box[:3], box[3:]), np.maximum(box[:3], box[3:])
    inside = np.all((p >= lo) & (p <= hi), axis=1).reshape(v.shape).astype(np.uint8)
    m = sitk.GetImageFromArray(inside)
    m.CopyInformation(to_sitk(v))
    return m


def sitk_register(fixed: Volume, moving: Volume, kind: str, box=None):
    """kind: 'accurate' (the issue's set-up, SimpleITK defaults incl. the moving-image gradient filter),
    'accurate-nogf' (same, gradient filter off: the converged reference), 'gd' (plain gradient descent)."""
    fi, mi = to_sitk(fixed), to_sitk(moving)
    t0 = time.perf_counter()
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.2, 42)
    if kind == "accurate-nogf":
        reg.SetMetricUseMovingImageGradientFilter(False)
        reg.SetMetricUseFixedImageGradientFilter(False)
    if box is not None:
        reg.SetMetricFixedMask(roi_mask(fixed, box))
        c = 0.5 * (np.asarray(box[:3]) + np.asarray(box[3:]))
    else:
        c = np.asarray(fi.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in fi.GetSize()]))
    reg.SetInterpolator(sitk.sitkLinear)
    if kind == "gd":
        reg.SetOptimizerAsGradientDescent(learningRate=1.0, numberOfIterations=200, convergenceMinimumValue=1e-6,
                                          convergenceWindowSize=10)
    else:
        reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=200,
                                                     gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    tx = sitk.Euler3DTransform()
    tx.SetCenter(tuple(c))
    reg.SetInitialTransform(tx, inPlace=False)
    out = reg.Execute(fi, mi)
    secs = time.perf_counter() - t0  # includes the image conversion (and mask), as the app would pay
    if out.GetName() == "CompositeTransform":
        out = sitk.CompositeTransform(out).GetNthTransform(0)
    e = sitk.Euler3DTransform(out)
    r = np.array(e.GetMatrix()).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = np.array(e.GetCenter()) + np.array(e.GetTranslation()) - r @ np.array(e.GetCenter())
    return m, secs


# ---------------------------------------------------------------- cases

def known_transform_case(hfs: Volume):
    centre = hfs.index_to_patient((np.array(hfs.shape[::-1]) - 1) / 2.0)
    ax = np.array([1, 0.4, 0.3]) / np.linalg.norm([1, 0.4, 0.3])
    k = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    th = np.radians(3.0)
    r = np.eye(3) + np.sin(th) * k + (1 - np.cos(th)) * k @ k
    t = np.array([1.5, 3, -2.2])
    t = 4.0 * t / np.linalg.norm(t)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = centre + t - r @ centre
    moved = resample_volume(hfs, hfs.affine, hfs.shape, transform=m)
    rng = np.random.default_rng(1)
    arr = np.clip(moved.array * 1.7 + rng.normal(0.0, 20.0, moved.shape), 0, None).astype(np.float32)
    moving = Volume(arr, moved.affine, info=dataclasses.replace(hfs.info, series_description="moved copy"))
    return moving, np.linalg.inv(m)


def run_case(title, fixed, moving, box, truth, roi=None, extra_ours=()):
    rows = []
    ref = truth
    runs = [("ours NCC", lambda: register_rigid(fixed, moving, roi=roi, metric="ncc")),
            ("ours MI", lambda: register_rigid(fixed, moving, roi=roi, metric="mi"))]
    runs += [(name, (lambda kw=kw: register_rigid(fixed, moving, roi=roi, metric="mi", **kw))) for name, kw in extra_ours]
    results = {}
    for name, fn in runs:
        res = fn()
        results[name] = (res.matrix, res.seconds, f"{res.initial_metric:.3f}->{res.final_metric:.3f} {res.stopped}")
    for kind, name in (("accurate", "SimpleITK accurate"), ("accurate-nogf", "SimpleITK accurate, no grad filter"),
                       ("gd", "SimpleITK plain GD")):
        m, s = sitk_register(fixed, moving, kind, box=roi)
        results[name] = (m, s, "")
    if ref is None:
        ref = results["SimpleITK accurate, no grad filter"][0]
    t_acc = results["SimpleITK accurate"][1]
    e_acc = err(results["SimpleITK accurate"][0], ref, box)[0]
    print(f"\n## {title}  (error vs {'truth' if truth is not None else 'SimpleITK accurate, no grad filter'})")
    print(f"{'method':<36} {'time s':>7} {'err mm':>7} {'err °':>6} {'acc/this':>8}  ours metric")
    for name, (m, s, note) in results.items():
        e, a = err(m, ref, box)
        print(f"{name:<36} {s:7.2f} {e:7.3f} {a:6.3f} {t_acc / s:8.2f}  {note}")
        rows.append((name, s, e))
    for name in [r[0] for r in rows if r[0].startswith("ours")]:
        _, s, e = next(r for r in rows if r[0] == name)
        ok = t_acc / s >= 2 and e <= e_acc + 0.1
        print(f"  target ≥2× faster than SimpleITK accurate at equal error (≤ +0.1 mm): {name}: "
              f"{t_acc / s:.2f}×, {e:.3f} vs {e_acc:.3f} mm -> {'MET' if ok else 'NOT MET'}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("DISCVIEWER_REAL_DATA", str(REPO.parent / "shared" / "data" / "real")))
    ap.add_argument("--phantom", choices=("full", "small"), default="full")
    ap.add_argument("--skip-phantom", action="store_true")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs, SimpleITK threads "
          f"{sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"SimpleITK {sitk.Version.VersionString()}, discviewer {getattr(discviewer, '__version__', '?')} "
          f"({Path(discviewer.__file__).parent})")
    from discviewer.io import load, scan

    root = Path(args.data) / "dcm_qa_decubitus"
    vols = {k: load(scan(root / k).series[0]) for k in ("HFS", "HFP", "HFDL")}
    hfs = vols["HFS"]
    box = central_box(hfs)
    moving, truth = known_transform_case(hfs)
    run_case("(a) real HFS moved 3°/4 mm, gain 1.7 + noise (whole volume)", hfs, moving, box, truth)
    for k in ("HFP", "HFDL"):
        run_case(f"(b) real motion HFS→{k} (whole volume)", hfs, vols[k], box, None,
                 extra_ours=(("ours MI trust_mm=40", {"trust_mm": 40.0}),))
    if not args.skip_phantom:
        from discviewer.phantom import generate_study

        t0 = time.perf_counter()
        p = generate_study(size=args.phantom, seed=0).patients[0]
        print(f"\nphantom generate_study(size={args.phantom!r}) {time.perf_counter() - t0:.1f} s")
        base, visit = p.visits[0], p.visits[1]
        fixed, mov = base.series[0].volume(0), visit.series[0].volume(0)
        c = np.asarray(base.truth["discs"]["L4/L5"]["centre"], float)
        half = np.array([20.0, 25.0, 25.0])
        roi = (*(c - half), *(c + half))
        run_case(f"(c) phantom ({args.phantom}, {fixed.shape}) visit 2 → baseline, L4/L5 ROI", fixed, mov, roi,
                 np.linalg.inv(np.asarray(visit.visit_to_baseline)), roi=roi)
        print("  target < 1 s per visit pair with a disc-level ROI: see the 'ours' rows of (c)")


if __name__ == "__main__":
    main()

"""Command line: `discviewer [PATH…] [--demo]`, `discviewer scan PATH --json`, `discviewer demo-data OUTDIR`,
`discviewer read PACKAGE_OR_PROJECT [--reader ID] [--session ID]` (the blinded reading flow).

Owns argument parsing and the demo-study cache. It is the top of the stack (it can open the
window), so it lives beside the UI; Qt is imported only when a window opens, so `scan` and
`demo-data` run without Qt or a display.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from discviewer import RESEARCH_USE_NOTICE, __version__

SUBCOMMANDS = ("scan", "demo-data", "register", "read", "export")


def demo_cache_root() -> Path:
    base = os.environ.get("DISCVIEWER_CACHE") or os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "discviewer"


def ensure_demo_study(size: str = "full", seed: int = 0, patients: int = 1, *, quiet: bool = False) -> Path:
    """Generate the demo study once and cache it; later calls return the cached folder.

    Written to a temporary folder beside the cache and renamed into place, so an interrupted
    generation never leaves a half-written demo behind.
    """
    from discviewer import phantom

    version = getattr(phantom, "PHANTOM_VERSION", "1")
    target = demo_cache_root() / f"demo-v{version}-{size}-seed{seed}-p{patients}"
    if (target / "truth.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=target.parent))
    try:
        if not quiet:
            print(f"generating the demo study (synthetic phantom, {size}) in {target} …", file=sys.stderr)

        def progress(done: int, total: int) -> None:
            if not quiet and total:
                print(f"\r  {done}/{total}", end="", file=sys.stderr, flush=True)

        phantom.write_study(tmp, patients=patients, seed=seed, size=size, progress=progress)
        if not quiet:
            print("", file=sys.stderr)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "truth.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _cmd_scan(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="discviewer scan", description="Scan DICOM/NIfTI headers and list volumes.")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print the scan as JSON")
    a = p.parse_args(argv)
    from discviewer.io import scan

    if not os.path.exists(a.path):
        print(f"discviewer scan: {a.path}: no such file or folder", file=sys.stderr)
        return 2
    result = scan(a.path)
    if a.json:
        out = result.to_json()
        out["notice"] = RESEARCH_USE_NOTICE
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for pat in result.patients:
        print(f"patient {pat.patient_id or '(no id)'}  {pat.patient_name}")
        for st in pat.studies:
            print(f"  study {st.date or '(no date)'}  {st.description}")
            for c in st.series:
                sp = "×".join(f"{v:.3g}" for v in c.spacing) if c.spacing else "?"
                print(f"    {c.label}: {c.slice_count}×{c.rows}×{c.columns}, {sp} mm")
                for w in c.warnings:
                    print(f"      warning: {w}")
    if result.problems:
        print(f"{len(result.problems)} file(s) not used:")
        for pr in result.problems:
            print(f"  {pr.path}: {pr.reason}")
    return 0


def _cmd_demo_data(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="discviewer demo-data",
                                description="Write the synthetic lumbar-spine phantom study (DICOM + truth.json).")
    p.add_argument("outdir")
    p.add_argument("--patients", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=("small", "full"), default="full")
    a = p.parse_args(argv)
    from discviewer import phantom

    out = phantom.write_study(a.outdir, patients=a.patients, seed=a.seed, size=a.size)
    print(out)
    return 0


def _pick_volume_candidate(path: str):
    """The series to register from a path: the largest non-localizer volume (ties: first)."""
    from discviewer.io import scan

    result = scan(path)
    cands = [c for c in result.series if not c.is_localizer] or list(result.series)
    if not cands:
        reasons = "; ".join(f"{p.path}: {p.reason}" for p in result.problems[:3])
        raise SystemExit(f"discviewer register: no image volume in {path}" + (f" ({reasons})" if reasons else ""))
    return max(cands, key=lambda c: c.slice_count * c.rows * c.columns)


def _cmd_register(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="discviewer register",
                                description="Rigidly register MOVING to FIXED; the matrix maps fixed patient "
                                            "coordinates (LPS mm) to moving ones (ITK convention).")
    p.add_argument("fixed")
    p.add_argument("moving")
    p.add_argument("--roi", help="x0,y0,z0,x1,y1,z1 box in fixed patient coordinates (mm), e.g. one disc level")
    p.add_argument("--metric", choices=("auto", "ncc", "mi"), default="auto")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args(argv)
    from discviewer.io import load
    from discviewer.registration import RegistrationError, register_rigid

    roi = None
    if a.roi:
        try:
            roi = tuple(float(v) for v in a.roi.split(","))
            if len(roi) != 6:
                raise ValueError
        except ValueError:
            print("discviewer register: --roi needs six numbers x0,y0,z0,x1,y1,z1 (mm)", file=sys.stderr)
            return 2
    for path in (a.fixed, a.moving):
        if not os.path.exists(path):
            print(f"discviewer register: {path}: no such file or folder", file=sys.stderr)
            return 2
    fc, mc = _pick_volume_candidate(a.fixed), _pick_volume_candidate(a.moving)
    try:
        res = register_rigid(load(fc), load(mc), roi=roi, metric=a.metric)
    except RegistrationError as exc:
        print(f"discviewer register: {exc}", file=sys.stderr)
        return 1
    out = {
        "fixed": {"path": a.fixed, "series": fc.label},
        "moving": {"path": a.moving, "series": mc.label},
        "matrix": np.asarray(res.matrix).tolist(),
        "convention": "matrix maps a point in the fixed volume's patient space (LPS mm) to the moving one's",
        "metric": res.metric, "initial_metric": res.initial_metric, "final_metric": res.final_metric,
        "iterations": res.iterations, "seconds": res.seconds, "roi": list(roi) if roi else None,
        "parameters": getattr(res, "parameters", None), "notice": RESEARCH_USE_NOTICE,
    }
    if a.json:
        json.dump(out, sys.stdout, indent=1, default=float)
        sys.stdout.write("\n")
    else:
        print(f"{fc.label} ← {mc.label}: {res.metric} {res.initial_metric:.4f} → {res.final_metric:.4f} "
              f"in {res.seconds:.2f} s")
        for row in out["matrix"]:
            print("  " + "  ".join(f"{v:10.5f}" for v in row))
    return 0


def _cmd_read(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="discviewer read",
        description="Blinded reading: open a reader package (its folder, .zip or package.json) or a project "
                    "(.dvw) with a reading session straight into the reader's reading flow. "
                    + RESEARCH_USE_NOTICE + ".")
    p.add_argument("path", help="reader package or project file")
    p.add_argument("--reader", help="your reader id (else you are asked)")
    p.add_argument("--session", help="reading session id or name (a project with several sessions)")
    a = p.parse_args(argv)
    if not os.path.exists(a.path):
        print(f"discviewer read: {a.path}: no such file or folder", file=sys.stderr)
        return 2
    from discviewer.ui.reading_launch import run_reading

    return run_reading(a.path, reader=a.reader, session=a.session)


def _cmd_export(argv: list[str]) -> int:
    """`discviewer export`: headless (VTK EGL offscreen, no Qt, no display) — see discviewer.render.batch."""
    p = argparse.ArgumentParser(
        prog="discviewer export",
        description="Export a project without a display: screenshots, montages of a disc level across visits, "
                    "measurement tables, DICOM SR. De-identified by default (pseudonyms, days since baseline). "
                    + RESEARCH_USE_NOTICE + ".")
    p.add_argument("workspace", help="project file (.dvw)")
    p.add_argument("--screenshots", metavar="DIR", help="one PNG per series (annotated slices, else the middle one)")
    p.add_argument("--montage", metavar="LEVEL", action="append", default=[],
                   help="a montage of this disc level (e.g. L4/L5) across all visits; repeatable")
    p.add_argument("--montage-dir", metavar="DIR", help="where montages go (default: --screenshots DIR, else .)")
    p.add_argument("--roles", help="montage rows, comma-separated (default: T2 sag and the GRE series present)")
    p.add_argument("--csv", metavar="FILE", help="the long measurement table (and FILE_wide.csv beside it)")
    p.add_argument("--sr", metavar="DIR", help="DICOM SR measurement reports (and the images as Secondary Capture)")
    p.add_argument("--identifying", action="store_true",
                   help="include patient ID, name and dates (default: de-identified)")
    p.add_argument("--scale", type=float, default=3.0, help="resolution factor over a 512-px view (default 3)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if not (a.screenshots or a.montage or a.csv or a.sr):
        p.error("nothing to export: give --screenshots, --montage, --csv and/or --sr")
    if not a.scale > 0:
        p.error("--scale must be positive")
    from discviewer.render.batch import export_workspace

    summary = export_workspace(
        a.workspace, screenshots=a.screenshots, montage_levels=a.montage, montage_dir=a.montage_dir,
        montage_roles=[r.strip() for r in a.roles.split(",") if r.strip()] if a.roles else None, csv=a.csv,
        sr=a.sr, identifying=a.identifying, scale=a.scale, log=None if a.quiet else print)
    print(summary.text(), file=sys.stderr if summary.failed else sys.stdout)
    return 0 if summary.ok else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv  # anywhere, also after a subcommand: DEBUG log to stderr too
    argv = [x for x in argv if x != "--verbose"]
    if verbose or not (argv and argv[0] in ("scan", "demo-data", "register")):
        from discviewer.logsetup import setup_logging

        setup_logging(verbose=verbose)  # the rotating log file in the user's data folder
    if argv and argv[0] in SUBCOMMANDS:
        return {"scan": _cmd_scan, "demo-data": _cmd_demo_data, "register": _cmd_register,
                "read": _cmd_read, "export": _cmd_export}[argv[0]](argv[1:])
    p = argparse.ArgumentParser(prog="discviewer",
                                description=f"Serial lumbar-spine MRI review. {RESEARCH_USE_NOTICE}.",
                                epilog="subcommands: 'discviewer scan PATH [--json]', "
                                       "'discviewer demo-data OUTDIR [--patients N] [--seed S] [--size small|full]', "
                                       "'discviewer register FIXED MOVING [--roi x0,y0,z0,x1,y1,z1] [--json]', "
                                       "'discviewer read PACKAGE_OR_PROJECT [--reader ID] [--session ID]', "
                                       "'discviewer export WORKSPACE [--screenshots DIR] [--montage LEVEL] "
                                       "[--csv FILE] [--sr DIR] [--identifying] [--scale 3]'")
    p.add_argument("paths", nargs="*", help="DICOM folder(s), file(s), DICOMDIR or NIfTI to open as a new project, "
                                             "or a project file (.dvw)")
    p.add_argument("--demo", action="store_true", help="open the built-in synthetic demo study")
    p.add_argument("--demo-size", choices=("small", "full"), default="full")
    p.add_argument("--version", action="version", version=f"discviewer {__version__}")
    p.add_argument("--verbose", action="store_true",
                   help="log debug messages, to stderr too (the log file is in the user's data folder, logs/)")
    a = p.parse_args(argv)
    paths = list(a.paths)
    if a.demo:
        paths.insert(0, str(ensure_demo_study(a.demo_size)))
    from discviewer.ui.app import run

    return run(paths)


if __name__ == "__main__":
    sys.exit(main())

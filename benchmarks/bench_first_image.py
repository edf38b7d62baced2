#!/usr/bin/env python
"""Benchmark: time to first image and peak memory for a 1000 × 512² MR series.

Targets (issue): first slice on screen ≤ 0.3 s after the user opens a 1000-slice series;
peak memory of a full load ≤ 1.3 × the voxel bytes + 300 MB.

Writes a synthetic single-frame MR series (uint16, Explicit VR Little Endian, ~8.7 kB Siemens-like
headers — the writer of `bench_load.py`) to a temporary folder, then measures in *fresh
subprocesses* (so no module, page-table or allocator state carries over between measurements;
the page cache is warm — the files were just written):

  first image   t0 = start of `scan(folder)`; scan → `load_slice(candidate, middle)` →
                `SlicePipeline.set_volume` + an offscreen render read back (`OffscreenRenderer`,
                EGL) = the slice is on screen. Imports happen before t0 (the app has them at start-up).
                Parts: scan alone, load_slice alone, render alone (GL context creation counted
                separately: the app's window already has one), each timed inside the same run.
  full load     `load(candidate)` after the scan: time, and the process's peak RSS
                (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) against the voxel bytes; the baseline
                RSS (interpreter + numpy/pydicom/VTK imports) is measured before the scan and
                reported too, as is the current RSS after the load.

Each measurement runs `--repeat` times (fresh process each time); the median is printed with min/max.
The temporary folder (~530 MB for 1000 slices) is removed at the end. When less than 3 GB is free
where it would go, 500 slices are written instead (said in the output).

Usage:  .venv/bin/python benchmarks/bench_first_image.py [--slices 1000] [--size 512] [--repeat 3]
                                                       [--keep DIR] [--profile-scan]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MB = 1024 * 1024
FREE_NEEDED = 3 * 1024 ** 3
FIRST_IMAGE_GOAL_S = 0.3
MEM_FACTOR, MEM_EXTRA_MB = 1.3, 300


# ---------------------------------------------------------------------------------------------
# child process (one measurement, JSON on stdout's last line)

def _rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def _hwm_mb() -> float:
    """VmHWM: peak RSS of this process image (unlike ru_maxrss, not inherited across fork/exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def child_write(folder: str, slices: int, size: int) -> dict:
    """Write the series in its own process, so the parent (whose peak RSS the measuring children's
    ru_maxrss would inherit across fork/exec on Linux) never holds the pixels."""
    sys.path.insert(0, str(HERE))
    from bench_load import write_series

    paths, pixels, header_bytes = write_series(Path(folder), slices, size)
    return {"files": len(paths), "voxel_bytes": int(pixels.nbytes), "header_bytes": header_bytes,
            "disk_bytes": int(sum(p.stat().st_size for p in paths))}


def child_first(folder: str) -> dict:
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    t_imp = time.perf_counter()
    from discviewer.io import load_slice, scan
    from discviewer.render.offscreen import OffscreenRenderer
    from discviewer.render.slice_pipeline import SlicePipeline
    imports = time.perf_counter() - t_imp

    t0 = time.perf_counter()
    res = scan(folder)
    t1 = time.perf_counter()
    cand = max(res.series, key=lambda c: c.slice_count)
    mid = cand.slice_count // 2
    vol = load_slice(cand, mid)
    t2 = time.perf_counter()
    off = OffscreenRenderer(800, 800)
    t3 = time.perf_counter()
    pipe = SlicePipeline(off.renderer, plane="sag")
    pipe.set_volume(vol, label=cand.info.series_description)
    rgb = off.render()  # read back: the picture is complete
    t4 = time.perf_counter()
    assert rgb.std() > 0, "blank first image"
    # render alone with a warm context: another slice into the same window
    vol2 = load_slice(cand, mid + 1)
    t5 = time.perf_counter()
    pipe.set_volume(vol2, label=cand.info.series_description)
    off.render()
    t6 = time.perf_counter()
    off.close()
    return {"imports": imports, "first_image": t4 - t0, "scan": t1 - t0, "load_slice": t2 - t1,
            "gl_context": t3 - t2, "render_incl_context": t4 - t2, "render_warm": t6 - t5,
            "slices": cand.slice_count, "candidates": len(res.series)}


def child_load(folder: str) -> dict:
    import numpy as np

    from discviewer.io import load, scan
    import discviewer.render.slice_pipeline  # noqa: F401  (the app has VTK loaded too)

    base_peak, base_now, base_hwm = _peak_mb(), _rss_now_mb(), _hwm_mb()
    t0 = time.perf_counter()
    res = scan(folder)
    t1 = time.perf_counter()
    after_scan = _rss_now_mb()
    cand = max(res.series, key=lambda c: c.slice_count)
    vol = load(cand)
    t2 = time.perf_counter()
    arr = np.asarray(vol.array)
    return {"scan": t1 - t0, "load": t2 - t1, "scan_load": t2 - t0, "voxel_mb": arr.nbytes / MB,
            "dtype": str(arr.dtype), "shape": list(arr.shape),
            "baseline_peak_mb": base_peak, "baseline_rss_mb": base_now, "rss_after_scan_mb": after_scan,
            "baseline_hwm_mb": base_hwm, "peak_mb": _peak_mb(), "hwm_mb": _hwm_mb(),
            "rss_after_load_mb": _rss_now_mb()}


def child_profile(folder: str) -> dict:
    import cProfile
    import io
    import pstats

    from discviewer.io import scan

    pr = cProfile.Profile()
    pr.enable()
    scan(folder)
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(18)
    s2 = io.StringIO()
    pstats.Stats(pr, stream=s2).sort_stats("tottime").print_stats(12)
    return {"profile": s.getvalue() + "\n" + s2.getvalue()}


def run_child(mode: str, folder: Path, *extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", mode, str(folder),
                          *(str(e) for e in extra)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child {mode} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# parent

def fmt(vals, unit="s", scale=1.0, digits=3) -> str:
    v = [x * scale for x in vals]
    return (f"{statistics.median(v):.{digits}f} {unit} (min {min(v):.{digits}f}, max {max(v):.{digits}f})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="write the series to this (new or empty) folder and keep it")
    ap.add_argument("--profile-scan", action="store_true", help="also print a cProfile of scan(folder)")
    ap.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        mode, folder, *extra = args.child
        if mode == "write":
            print(json.dumps(child_write(folder, int(extra[0]), int(extra[1]))))
            return 0
        fn = {"first": child_first, "load": child_load, "profile": child_profile}[mode]
        print(json.dumps(fn(folder)))
        return 0

    parent_dir = args.keep.parent if args.keep else Path(tempfile.gettempdir())
    free = shutil.disk_usage(parent_dir).free
    slices = args.slices
    note = ""
    if free < FREE_NEEDED and slices > 500:
        slices = 500
        note = f" (only {free / 1024 ** 3:.1f} GB free in {parent_dir}: 500 slices instead of {args.slices})"
    load1 = os.getloadavg()
    print(f"discviewer bench_first_image — {slices} × {args.size}² uint16{note}, {platform.machine()}, "
          f"{os.cpu_count()} cores, python {platform.python_version()}, "
          f"load average {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}, "
          f"{free / 1024 ** 3:.0f} GB free in {parent_dir}")

    if args.keep:
        folder = args.keep
        if folder.exists() and any(folder.iterdir()):
            raise SystemExit(f"--keep {folder}: not empty")
    else:
        folder = Path(tempfile.mkdtemp(prefix="discviewer-bench-first-"))
    try:
        t = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        w = run_child("write", folder, slices, args.size)
        voxel_bytes = w["voxel_bytes"]
        print(f"wrote {w['files']} files, {w['disk_bytes'] / MB:.0f} MB on disk, "
              f"~{w['header_bytes']} B header each, "
              f"in {time.perf_counter() - t:.1f} s → {folder}")

        firsts = [run_child("first", folder) for _ in range(args.repeat)]
        loads = [run_child("load", folder) for _ in range(args.repeat)]

        def col(rows, key):
            return [r[key] for r in rows]

        print(f"\nTime to first image (fresh process each, warm page cache, median of {args.repeat}):")
        print(f"  scan → load_slice(middle) → render  {fmt(col(firsts, 'first_image'))}   "
              f"goal ≤ {FIRST_IMAGE_GOAL_S} s: "
              f"{'MET' if statistics.median(col(firsts, 'first_image')) <= FIRST_IMAGE_GOAL_S else 'NOT MET'}")
        print(f"    scan({slices} files)              {fmt(col(firsts, 'scan'))}")
        print(f"    load_slice                        {fmt(col(firsts, 'load_slice'), 'ms', 1000, 1)}")
        print(f"    render incl. GL context creation  {fmt(col(firsts, 'render_incl_context'), 'ms', 1000, 1)}"
              f"  (context alone {fmt(col(firsts, 'gl_context'), 'ms', 1000, 1)})")
        print(f"    render, warm context              {fmt(col(firsts, 'render_warm'), 'ms', 1000, 1)}")
        print(f"  (imports before t0, not counted     {fmt(col(firsts, 'imports'))})")

        voxel_mb = voxel_bytes / MB
        limit = MEM_FACTOR * voxel_mb + MEM_EXTRA_MB
        peak = statistics.median(col(loads, "peak_mb"))
        base = statistics.median(col(loads, "baseline_rss_mb"))
        base_peak = statistics.median(col(loads, "baseline_peak_mb"))
        print(f"\nFull load (fresh process each, median of {args.repeat}):")
        print(f"  scan + load                         {fmt(col(loads, 'scan_load'))}")
        print(f"    scan                              {fmt(col(loads, 'scan'))}")
        print(f"    load                              {fmt(col(loads, 'load'))}"
              f"  ({voxel_mb / statistics.median(col(loads, 'load')):.0f} MB/s of voxels)")
        print(f"  voxel bytes                         {voxel_mb:.0f} MB ({loads[0]['dtype']}, shape {loads[0]['shape']})")
        print(f"  baseline RSS after imports          {base:.0f} MB (peak during imports {base_peak:.0f} MB)")
        print(f"  RSS after scan                      {statistics.median(col(loads, 'rss_after_scan_mb')):.0f} MB")
        print(f"  peak RSS (ru_maxrss)                {peak:.0f} MB = {peak / voxel_mb:.2f} × voxel bytes; "
              f"above baseline {peak - base:.0f} MB = {(peak - base) / voxel_mb:.2f} × voxel bytes")
        print(f"  RSS after load                      {statistics.median(col(loads, 'rss_after_load_mb')):.0f} MB")
        print(f"  cross-check VmHWM (this image only) {statistics.median(col(loads, 'hwm_mb')):.0f} MB "
              f"(after imports {statistics.median(col(loads, 'baseline_hwm_mb')):.0f} MB)")
        print(f"  goal peak ≤ {MEM_FACTOR} × voxel bytes + {MEM_EXTRA_MB} MB = {limit:.0f} MB: "
              f"{'MET' if peak <= limit else 'NOT MET'} (margin {limit - peak:+.0f} MB)")

        if args.profile_scan:
            print(f"\ncProfile of scan({slices} files):")
            print(run_child("profile", folder)["profile"])
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Benchmark: re-opening a project's 200 × 512² series — voxel cache vs parsing the DICOM files.

Writes a synthetic sagittal series (single-frame MR Image Storage, Explicit VR Little Endian, the
~8.7 kB Siemens-like headers of `bench_load.py`; pixels MR-like — smooth anatomy plus noise — or pure
12-bit noise with `--pixels noise`), stores it once in a `VoxelStore`, then times, warm page cache,
one untimed warm-up run each, median and best of --repeat:

    raw read of the DICOM files       open().read() of every file — the floor of any DICOM path
    raw read into a new array         every file's bytes read (os.preadv) into one fresh numpy buffer of
                                      their total size: the floor of anything that returns a new
                                      volume (fresh pages are zeroed by the kernel before the copy)
    DICOM: scan_files + load          discviewer.io.scan_files(the project's file list) + load()
    cache: get                        VoxelStore.get(candidate): key (200 stats), header, mmap, and the
                                      per-slice checksums of all the data (the app's setting)
    cache: get + touch every page     the same, then array.max(): what display adds — the fair
                                      comparison with the raw read, which has every byte in hand
    cache verify=False: get           key, header and size check, mmap: no page is read yet
    cache verify=False: get + touch   the same, then array.max()
    cache: get with progress          `get` with a progress callback (checksums in 16 MB blocks)

With --cold the page cache of the files read is dropped (posix_fadvise DONTNEED, untimed) before
every run of the raw read, the DICOM path and the cache reads. `put` (median of 3, after an
`os.sync()`) and the entry's file size are printed. Every array is checked against the written
pixels. Ratios are against the raw read measured in the same run; target: cache ≤ 2× raw read
(checked for `get` and `get + touch every page`).

Usage:  .venv/bin/python benchmarks/bench_reopen.py [--slices 200] [--size 512] [--repeat 7]
                                                   [--pixels mr|noise] [--cold] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

HERE = Path(__file__).resolve().parent
try:  # run from a checkout without installing
    import discviewer  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import bench_load  # noqa: E402

from discviewer.io import load, scan_files  # noqa: E402
from discviewer.workspace.voxels import VoxelStore  # noqa: E402

TARGET_RATIO = 2.0  # cache get (+ touch) ≤ 2 × raw read of the DICOM files
TARGET_ROWS = ("cache: get", "cache: get + touch every page")


# ---------------------------------------------------------------------------------------------
# synthetic series

def mr_like(slices: int, size: int, seed: int = 0) -> np.ndarray:
    """Sagittal-ish MR pixels, 12 bits: body ellipse, a column of 'vertebrae' and 'discs', fat
    layer, Rician-like background noise and Gaussian noise σ≈20 inside — compresses like real MR."""
    rng = np.random.default_rng(seed)
    y, x = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size - 0.5
    out = np.empty((slices, size, size), dtype=np.uint16)
    for k in range(slices):
        t = (k + 0.5) / slices - 0.5  # −0.5 … 0.5 across the stack
        a = 0.42 * np.sqrt(max(0.05, 1 - (1.8 * t) ** 2))
        body = ((x / a) ** 2 + (y / 0.46) ** 2) < 1
        fat = body & (((x / (a * 0.9)) ** 2 + (y / 0.42) ** 2) > 1)
        spine_w = max(0.0, 0.09 - abs(t) * 0.3)
        col = np.abs(x - 0.1) < spine_w
        level = np.sin(y * 2 * np.pi * 6)  # alternating bodies (dark) and discs (bright)
        img = np.where(body, 700.0, 0.0) + np.where(fat, 900.0, 0.0)
        img += np.where(col & body, np.where(level > 0.6, 1300.0, -250.0), 0.0)
        img += 150 * np.sin(3 * x + 5 * t) * body
        noise_in = rng.normal(0, 20, (size, size))
        bg = np.hypot(rng.normal(0, 12, (size, size)), rng.normal(0, 12, (size, size)))
        img = np.where(body, img + noise_in, bg)
        out[k] = np.clip(img, 0, 4095).astype(np.uint16)
    return out


def write_series(folder: Path, pixels: np.ndarray) -> list[Path]:
    """`pixels` as single-frame files with `bench_load.py`'s writer (same header template); sorted paths."""
    slices, size, _ = pixels.shape
    return bench_load.write_series(folder, slices, size, pixels=pixels)[0]


# ---------------------------------------------------------------------------------------------

def timeit(fn, repeat: int, setup=None) -> tuple[list[float], object]:
    """Times of `repeat` runs of `fn` (after one warm-up) and the last result; `setup()` untimed before each."""
    if setup:
        setup()
    fn()  # warm-up
    times, last = [], None
    for _ in range(repeat):
        last = None  # release the previous result (its mapping) before the next run / setup
        if setup:
            setup()
        t0 = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t0)
    return times, last


def drop_page_cache(paths) -> None:
    """Ask the kernel to drop the clean cached pages of `paths` (unmapped pages only)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def raw_read(names: list[str]) -> int:
    total = 0
    for n in names:
        with open(n, "rb") as f:
            total += len(f.read())
    return total


def raw_read_new_array(names: list[str], total: int) -> np.ndarray:
    out = np.empty(total, dtype=np.uint8)
    mv = memoryview(out)
    pos = 0
    for n in names:
        fd = os.open(n, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            os.preadv(fd, [mv[pos:pos + size]], 0)
        finally:
            os.close(fd)
        pos += size
    return out


def only_candidate(res):
    if len(res.series) != 1:
        raise SystemExit(f"expected 1 candidate, found {len(res.series)} ({res.problems[:3]})")
    return res.series[0]


def touched(vol):
    """`vol` after reading every voxel (as display does)."""
    if vol is not None:
        np.asarray(vol.array).max()
    return vol


def run(args, tmp: Path) -> dict:
    t0 = time.perf_counter()
    pixels = mr_like(args.slices, args.size) if args.pixels == "mr" else \
        np.random.default_rng(0).integers(0, 4096, (args.slices, args.size, args.size), dtype=np.uint16)
    paths = write_series(tmp / "series", pixels)
    names = [str(p) for p in paths]
    print(f"  wrote {len(names)} files in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    cand = only_candidate(scan_files(names))
    dicom_bytes = raw_read(names)  # warms the page cache too
    # DICOM files are written in instance order = spatial order here, so pixels match load() directly
    rows = []

    def add(name, fn, check, extra=None, setup=None):
        times, last = timeit(fn, args.repeat, setup)
        check(last)
        row = {"method": name, "median_s": statistics.median(times), "best_s": min(times), "times_s": times}
        row.update(extra or {})
        rows.append(row)
        print(f"  {name:<38} median {row['median_s']:.4f} s", file=sys.stderr, flush=True)

    def same(v):
        assert v is not None and v.array.dtype == pixels.dtype and np.array_equal(v.array, pixels), "pixels differ"

    add("raw read of the DICOM files", lambda: raw_read(names), lambda n: None if n == dicom_bytes else 1 / 0)
    if hasattr(os, "preadv"):
        add("raw read into a new array", lambda: raw_read_new_array(names, dicom_bytes),
            lambda a: None if a.nbytes == dicom_bytes else 1 / 0)
    add("DICOM: scan_files + load", lambda: load(only_candidate(scan_files(names))), same)

    vol = load(cand)
    store = VoxelStore(tmp / "cache.voxels", budget_bytes=None)
    if hasattr(os, "sync"):
        os.sync()  # put's fsync must not pay for writing back the series this script just wrote
    put_times = []
    for _ in range(3):  # the 2nd and 3rd replace the entry
        t0 = time.perf_counter()
        assert store.put(cand, vol), store.warnings
        put_times.append(time.perf_counter() - t0)
    put = {"put_s": statistics.median(put_times), "file_mb": store.stats()[1] / 1e6}
    del vol
    fast = VoxelStore(store.path, budget_bytes=None, verify=False)
    add("cache: get", lambda: store.get(cand), same, put)
    add("cache: get + touch every page", lambda: touched(store.get(cand)), same)
    add("cache verify=False: get", lambda: fast.get(cand), same)
    add("cache verify=False: get + touch", lambda: touched(fast.get(cand)), same)
    add("cache: get with progress", lambda: store.get(cand, progress=lambda d, t: None), same)
    assert not store.warnings, store.warnings

    if args.cold:
        entry = [store.entry_path(store.key_for(cand))]
        add("cold: raw read of the DICOM files", lambda: raw_read(names),
            lambda n: None if n == dicom_bytes else 1 / 0, setup=lambda: drop_page_cache(names))
        add("cold: DICOM: scan_files + load", lambda: load(only_candidate(scan_files(names))), same,
            setup=lambda: drop_page_cache(names))
        add("cold: cache: get", lambda: store.get(cand), same, setup=lambda: drop_page_cache(entry))
        add("cold: cache verify=False: get + touch", lambda: touched(fast.get(cand)), same,
            setup=lambda: drop_page_cache(entry))
    return {"rows": rows, "dicom_mb": dicom_bytes / 1e6, "voxel_mb": pixels.nbytes / 1e6}


def machine_info() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pydicom": pydicom.__version__,
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def report(res: dict, args) -> None:
    info = res["machine"]
    raw = next(r for r in res["rows"] if r["method"] == "raw read of the DICOM files")["median_s"]
    dicom = next(r for r in res["rows"] if r["method"] == "DICOM: scan_files + load")["median_s"]
    print()
    print(f"discviewer re-open benchmark — {args.slices} × {args.size}² uint16 ({args.pixels} pixels), "
          f"{res['voxel_mb']:.0f} MB voxels, {res['dicom_mb']:.0f} MB of DICOM files; warm page cache "
          f"unless 'cold', median/best of {args.repeat}")
    print(f"machine: {info['cpu_count']} CPUs (affinity {info['affinity']}), {info['platform']}; Python "
          f"{info['python']}, numpy {info['numpy']}, pydicom {info['pydicom']}; load average "
          f"{', '.join(f'{v:.2f}' for v in info['loadavg'] or ())}")
    print()
    head = (f"{'method':<38} {'median s':>9} {'best s':>8} {'this/raw':>9} {'dicom/this':>11} "
            f"{'put s':>7} {'file MB':>8}")
    print(head)
    print("-" * len(head))
    for r in res["rows"]:
        put = f"{r['put_s']:.3f}" if "put_s" in r else ""
        size = f"{r['file_mb']:.0f}" if "file_mb" in r else ""
        print(f"{r['method']:<38} {r['median_s']:>9.4f} {r['best_s']:>8.4f} {r['median_s'] / raw:>8.2f}× "
              f"{dicom / r['median_s']:>10.2f}× {put:>7} {size:>8}")
    print()
    print("this/raw = this median ÷ warm raw-read median (same run); dicom/this = warm DICOM scan_files+load "
          "median ÷ this median (> 1: faster than parsing the DICOM files). put s / file MB: writing the "
          "entry (checksums, write, fsync, rename; median of 3).")
    verdicts = []
    for r in res["rows"]:
        if r["method"] in TARGET_ROWS:
            ratio = r["median_s"] / raw
            ok = ratio <= TARGET_RATIO
            res.setdefault("target", {})[r["method"]] = {"ratio_to_raw": ratio, "met": ok}
            verdicts.append(f"{r['method']} {ratio:.2f}× → {'MET' if ok else 'NOT MET'}")
    print(f"target \"re-open from the voxel cache ≤ {TARGET_RATIO:g}× the raw read of the DICOM files\": "
          + "; ".join(verdicts))
    cold_raw = next((r for r in res["rows"] if r["method"] == "cold: raw read of the DICOM files"), None)
    if cold_raw:
        per = ", ".join(f"{r['method'][6:]} {r['median_s'] / cold_raw['median_s']:.2f}×"
                        for r in res["rows"] if r["method"].startswith("cold: cache"))
        print(f"cold page cache, against the cold raw read ({cold_raw['median_s']:.3f} s): {per}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--pixels", choices=("mr", "noise"), default="mr")
    ap.add_argument("--cold", action="store_true",
                    help="also time with the files' page cache dropped (posix_fadvise DONTNEED) before each run")
    ap.add_argument("--json", metavar="OUT", help="write the numbers as JSON")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.slices < 2 or args.size < 8:
        ap.error("need --repeat ≥ 1, --slices ≥ 2, --size ≥ 8")
    if args.cold and not hasattr(os, "posix_fadvise"):
        ap.error("--cold needs os.posix_fadvise")
    tmp = Path(tempfile.mkdtemp(prefix="discviewer-bench-reopen-"))
    try:
        res = run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["machine"] = machine_info()
    report(res, args)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

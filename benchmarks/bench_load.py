#!/usr/bin/env python
"""Benchmark: loading a 200 × 512² uncompressed MR series — discviewer vs SimpleITK vs pydicom.

Writes a synthetic sagittal T2 series (single-frame MR Image Storage, Explicit VR Little Endian,
~8 kB Siemens-like headers with private tags, a CSA-like OB blob and a few sequences), then times,
warm cache (every method run once untimed first), best of --repeat and median:

    discviewer: scan+load      scan(folder) then load(candidate)   (cold path of the app)
    discviewer: load only      load(candidate) from an existing scan result
    discviewer: scan only      scan(folder)
    SimpleITK series reader    file names given (sorted), Execute(), GetArrayViewFromImage
    SimpleITK + GDCM discovery GetGDCMSeriesFileNames(folder) + the above
    pydicom loop               dcmread every file + np.frombuffer(PixelData) stacked
    raw read                   open().read() every file — the floor

All methods are checked to return the same array (slices matched by file, since SimpleITK's
GDCM discovery may order slices differently from discviewer's position sort).

Usage:  .venv/bin/python benchmarks/bench_load.py [--slices 200] [--size 512] [--repeat 5]
                                                [--keep DIR] [--json OUT] [--profile-scan]
Needs SimpleITK (`pip install -e .[bench]`); without it those rows are skipped.
"""
from __future__ import annotations

import argparse
import datetime as _dt
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
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

try:  # run from a checkout without installing
    import discviewer  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from discviewer.io import load, scan

try:
    import SimpleITK as sitk
except ImportError:  # pragma: no cover - optional
    sitk = None

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
TARGET_SPEEDUP = 3.0


# ---------------------------------------------------------------------------------------------
# synthetic series

def _csa_blob(n: int, seed: int) -> bytes:
    """A Siemens CSA-like private blob ('SV10' header + name/value-ish text), n bytes, even length."""
    rng = np.random.default_rng(seed)
    names = [b"EchoLinePosition", b"ProtocolSliceNumber", b"SliceNormalVector", b"ImaCoilString",
             b"BandwidthPerPixelPhaseEncode", b"PhaseEncodingDirectionPositive", b"SlicePosition_PCS",
             b"ImaAbsTablePosition", b"RealDwellTime", b"MosaicRefAcqTimes", b"SliceMeasurementDuration"]
    out = bytearray(b"SV10\x04\x03\x02\x01")
    while len(out) < n:
        name = names[int(rng.integers(len(names)))]
        out += name.ljust(64, b"\0") + b"FD\0\0" + rng.integers(0, 256, 12, dtype=np.uint8).tobytes()
        out += f"{rng.random() * 100:.8f}".encode().ljust(24, b"\0")
    out = bytes(out[:n])
    return out if len(out) % 2 == 0 else out + b"\0"


def _series_template(slices: int, size: int) -> tuple[Dataset, dict]:
    """Everything in a file's header that is the same for all slices of the series."""
    uids = {k: generate_uid() for k in ("study", "series", "for", "mpps", "ref_series")}
    ds = Dataset()
    # --- SOP common / general image
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]
    ds.InstanceCreationDate = "20240312"
    ds.InstanceCreationTime = "101534.123000"
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240312"
    ds.StudyTime = "095512.000000"
    ds.SeriesTime = "101203.512000"
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.InstitutionName = "Research Imaging Centre"
    ds.InstitutionAddress = "1 Example Street, Sometown"
    ds.ReferringPhysicianName = ""
    ds.StationName = "MRC40123"
    ds.StudyDescription = "MR LUMBAR SPINE^research"
    ds.ProcedureCodeSequence = Sequence([Dataset()])
    ds.ProcedureCodeSequence[0].CodeValue = "RPID2541"
    ds.ProcedureCodeSequence[0].CodingSchemeDesignator = "RADLEX"
    ds.ProcedureCodeSequence[0].CodeMeaning = "MRI LUMBAR SPINE WO CONTRAST"
    ds.SeriesDescription = "t2_tse_sag_384"
    ds.InstitutionalDepartmentName = "Radiology"
    ds.PerformingPhysicianName = ""
    ds.OperatorsName = "TECH^A"
    ds.ManufacturerModelName = "Skyra"
    ds.ReferencedPerformedProcedureStepSequence = Sequence([Dataset()])
    ds.ReferencedPerformedProcedureStepSequence[0].ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"
    ds.ReferencedPerformedProcedureStepSequence[0].ReferencedSOPInstanceUID = uids["mpps"]
    ref = Sequence()
    for _ in range(3):
        it = Dataset()
        it.ReferencedSOPClassUID = MR_IMAGE_STORAGE
        it.ReferencedSOPInstanceUID = generate_uid()
        ref.append(it)
    ds.ReferencedImageSequence = ref
    # --- patient
    ds.PatientName = "SYNTH^LUMBAR"
    ds.PatientID = "BENCH0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.PatientAge = "054Y"
    ds.PatientSize = "1.68"
    ds.PatientWeight = "64"
    # --- MR acquisition
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = ["SK", "SP", "OSP"]
    ds.ScanOptions = ["PFP", "FS"]
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = "*tse2d1_17"
    ds.AngioFlag = "N"
    ds.SliceThickness = "1.0"
    ds.RepetitionTime = "3500"
    ds.EchoTime = "96"
    ds.NumberOfAverages = "2"
    ds.ImagingFrequency = "123.2568"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = "3"
    ds.SpacingBetweenSlices = "1.0"
    ds.NumberOfPhaseEncodingSteps = "307"
    ds.EchoTrainLength = "17"
    ds.PercentSampling = "80"
    ds.PercentPhaseFieldOfView = "100"
    ds.PixelBandwidth = "260"
    ds.DeviceSerialNumber = "40123"
    ds.SoftwareVersions = "syngo MR E11"
    ds.ProtocolName = "t2_tse_sag_384"
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [0, 384, 307, 0]
    ds.InPlanePhaseEncodingDirection = "COL"
    ds.FlipAngle = "150"
    ds.VariableFlipAngleFlag = "N"
    ds.SAR = "1.72104581"
    ds.dBdt = "0"
    ds.PatientPosition = "HFS"
    # --- relationship / plane
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.StudyID = "1"
    ds.SeriesNumber = "7"
    ds.AcquisitionNumber = "1"
    ds.ImageOrientationPatient = ["0", "1", "0", "0", "0", "-1"]  # sagittal
    ds.FrameOfReferenceUID = uids["for"]
    ds.PositionReferenceIndicator = ""
    ds.ImageComments = "synthetic benchmark series"
    ds.RequestAttributesSequence = Sequence([Dataset()])
    ds.RequestAttributesSequence[0].RequestedProcedureID = "RP4411"
    ds.RequestAttributesSequence[0].ScheduledProcedureStepID = "SPS4411"
    ds.RequestAttributesSequence[0].ScheduledProcedureStepDescription = "MR LUMBAR SPINE"
    # --- image pixel (Siemens style: 12 bits stored in 16, no rescale)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.PixelSpacing = ["0.5859375", "0.5859375"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SmallestImagePixelValue = 0
    ds.LargestImagePixelValue = 4095
    ds.WindowCenter = "800"
    ds.WindowWidth = "1600"
    ds.WindowCenterWidthExplanation = "Algo1"
    ds.RequestedProcedureDescription = "MR LUMBAR SPINE"
    ds.PerformedProcedureStepStartDate = "20240312"
    ds.PerformedProcedureStepStartTime = "095512.000000"
    ds.PerformedProcedureStepID = "MR20240312095512"
    ds.PerformedProcedureStepDescription = "MR LUMBAR SPINE"
    # --- private (Siemens-like): creators, small values, CSA image + series blobs
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x00191008, "CS", "IMAGE NUM 4")
    ds.add_new(0x00191009, "LO", "1.0")
    ds.add_new(0x0019100B, "DS", "6000")
    ds.add_new(0x0019100F, "SH", "Normal")
    ds.add_new(0x00191011, "SH", "No")
    ds.add_new(0x00191012, "SL", [0, 0, -1284])
    ds.add_new(0x00191013, "SL", [0, 0, 0])
    ds.add_new(0x00191014, "IS", ["0", "0", "0"])
    ds.add_new(0x00191017, "DS", "1")
    ds.add_new(0x00191018, "IS", "3300")
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00290011, "LO", "SIEMENS MEDCOM HEADER2")
    ds.add_new(0x00291008, "CS", "IMAGE NUM 4")
    ds.add_new(0x00291009, "LO", "20240312")
    ds.add_new(0x00291018, "CS", "MR")
    ds.add_new(0x00291019, "LO", "20240312")
    ds.add_new(0x00291020, "OB", _csa_blob(2400, 2))  # CSA series header (trimmed)
    ds.add_new(0x00291160, "LO", "com")
    ds.add_new(0x00510010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x00511008, "CS", "IMAGE NUM 4")
    ds.add_new(0x00511009, "LO", "1.0")
    ds.add_new(0x0051100A, "LO", "TA 03:02")
    ds.add_new(0x0051100B, "LO", "384p*384")
    ds.add_new(0x0051100C, "LO", "FoV 300*300")
    ds.add_new(0x0051100D, "SH", "SP R47.5")
    ds.add_new(0x0051100E, "LO", "Sag>Cor(-0.3)")
    ds.add_new(0x0051100F, "LO", "SP1-3;BO1-3")
    ds.add_new(0x00511011, "LO", "p2")
    ds.add_new(0x00511012, "SH", "TP 0")
    ds.add_new(0x00511013, "SH", "+LPH")
    ds.add_new(0x00511016, "LO", "p2 M/DIS2D")
    ds.add_new(0x00511017, "SH", "SK1.0")
    ds.add_new(0x00511019, "LO", "A1/PFP/FS")
    return ds, uids


def write_series(folder: Path, slices: int, size: int, seed: int = 0,
                 pixels: np.ndarray | None = None) -> tuple[list[Path], np.ndarray, int]:
    """Write the series (random 12-bit pixels unless `pixels` (slices, size, size) uint16 are given);
    returns (sorted file paths, the pixels, mean header bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    if pixels is None:
        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 4096, size=(slices, size, size), dtype=np.uint16)  # 12 bits stored
    template, _ = _series_template(slices, size)
    spacing = 1.0
    x0 = (slices - 1) / 2 * spacing  # sagittal: slices step along patient left (LPS +x)
    # IOP (0,1,0 / 0,0,-1) has normal (-1,0,0): instance order = ascending along the normal
    paths: list[Path] = []
    header_bytes = []
    for k in range(slices):
        ds = Dataset()
        ds.update(template)
        meta = FileMetaDataset()
        sop = generate_uid()
        meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = "1.3.12.2.1107.5.2"
        meta.ImplementationVersionName = "MR_VE11E"
        ds.file_meta = meta
        ds.SOPInstanceUID = sop
        ds.InstanceNumber = str(k + 1)
        ds.ContentTime = ds.AcquisitionTime = f"1012{(k // 10) % 60:02d}.{k % 10}00000"
        x = x0 - k * spacing
        ds.ImagePositionPatient = [f"{x:.6f}", "-150.0", "150.0"]
        ds.SliceLocation = f"{-x:.6f}"
        ds.add_new(0x0019100A, "US", 1)
        ds.add_new(0x00191015, "FD", [x, -150.0, 150.0])
        ds.add_new(0x00291010, "OB", _csa_blob(3200, 100 + k))  # CSA image header (per image)
        ds.PixelData = pixels[k].tobytes()
        p = folder / f"IM{k + 1:05d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        header_bytes.append(p.stat().st_size - pixels[k].nbytes)
        paths.append(p)
    return paths, pixels, int(np.mean(header_bytes))


# ---------------------------------------------------------------------------------------------
# methods (each returns (array, list of file paths giving the slice order))

def m_scan_load(folder: str):
    res = scan(folder)
    cand = _only_candidate(res)
    return load(cand).array, [f.path for f in cand.frames]


def m_scan_only(folder: str):
    res = scan(folder)
    return None, [f.path for f in _only_candidate(res).frames]


def _only_candidate(res):
    if len(res.series) != 1:
        raise SystemExit(f"expected 1 candidate, scan found {len(res.series)} ({res.problems[:3]})")
    return res.series[0]


def m_sitk_names(names: list[str]):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    img = reader.Execute()
    arr = sitk.GetArrayViewFromImage(img)  # zero-copy view (z, y, x); `img` must stay alive
    return (arr, img), names


def m_sitk_discover(folder: str):
    names = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder))
    return m_sitk_names(names)


def m_pydicom(names: list[str]):
    out = []
    for n in names:
        ds = pydicom.dcmread(n)
        out.append(np.frombuffer(ds.PixelData, dtype=np.uint16).reshape(ds.Rows, ds.Columns))
    return np.stack(out), names


def m_raw(names: list[str]):
    total = 0
    for n in names:
        with open(n, "rb") as f:
            total += len(f.read())
    return total, names


def timeit(fn, repeat: int) -> tuple[list[float], object]:
    fn()  # warm-up (page cache, imports, SimpleITK/GDCM factories)
    times, last = [], None
    for _ in range(repeat):
        last = None
        t0 = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t0)
    return times, last


# ---------------------------------------------------------------------------------------------

def verify(name: str, result, pixels: np.ndarray, index: dict[str, int], notes: list[str]) -> None:
    arr, order = result
    if isinstance(arr, tuple):  # SimpleITK (view, image)
        arr = arr[0]
    expect_idx = [index[os.path.abspath(p)] for p in order]
    if arr is None:  # scan only: check the slice order is the spatial one
        assert expect_idx == sorted(expect_idx), f"{name}: scan order is not instance/spatial order"
        return
    if isinstance(arr, int):  # raw read: byte count
        assert arr > pixels.nbytes, f"{name}: read {arr} bytes"
        return
    arr = np.asarray(arr)
    if arr.dtype != pixels.dtype:
        notes.append(f"{name}: returned {arr.dtype}, converted to {pixels.dtype} for the check")
        arr = arr.astype(pixels.dtype)
    if expect_idx != list(range(len(pixels))):
        notes.append(f"{name}: slice order differs from discviewer's (matched by file for the check)")
    assert arr.shape == pixels.shape, f"{name}: shape {arr.shape} != {pixels.shape}"
    assert np.array_equal(arr, pixels[expect_idx]), f"{name}: pixels differ"


def machine_info() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pydicom": pydicom.__version__,
        "SimpleITK": sitk.Version_VersionString() if sitk else None,
        "sitk_threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() if sitk else None,
    }


def run(folder: Path, args, header_bytes: int, pixels: np.ndarray, paths: list[Path]) -> dict:
    folder_s = str(folder)
    names = sorted(str(p) for p in paths)
    index = {os.path.abspath(str(p)): k for k, p in enumerate(paths)}
    m_raw(names)  # warm the page cache
    cand = _only_candidate(scan(folder_s))

    methods = [
        ("discviewer: scan+load", lambda: m_scan_load(folder_s)),
        ("discviewer: load only", lambda: (load(cand).array, [f.path for f in cand.frames])),
        ("discviewer: scan only", lambda: m_scan_only(folder_s)),
    ]
    if sitk is not None:
        methods += [
            ("SimpleITK series reader", lambda: m_sitk_names(names)),
            ("SimpleITK + GDCM discovery", lambda: m_sitk_discover(folder_s)),
        ]
    methods += [
        ("pydicom loop", lambda: m_pydicom(names)),
        ("raw read", lambda: m_raw(names)),
    ]
    rows, notes = [], []
    for name, fn in methods:
        times, last = timeit(fn, args.repeat)
        verify(name, last, pixels, index, notes)
        del last
        rows.append({"method": name, "best_s": min(times), "median_s": statistics.median(times), "times_s": times})
        print(f"  {name:<28} best {min(times):.3f} s", file=sys.stderr, flush=True)
    return {"rows": rows, "notes": notes}


def report(res: dict, args, header_bytes: int) -> None:
    rows = {r["method"]: r for r in res["rows"]}
    sitk_best = rows["SimpleITK series reader"]["best_s"] if "SimpleITK series reader" in rows else None
    raw_best = rows["raw read"]["best_s"]
    info = res["machine"]
    mb = args.slices * args.size * args.size * 2 / 1e6
    print()
    print(f"discviewer load benchmark — {args.slices} × {args.size}×{args.size} uint16 (12 bits stored), "
          f"Explicit VR LE, ~{header_bytes / 1024:.1f} kB header/file, {mb:.0f} MB pixels; "
          f"warm cache, best/median of {args.repeat}")
    print(f"machine: {info['cpu_count']} CPUs (affinity {info['affinity']}), {info['processor']}, "
          f"{info['platform']}; Python {info['python']}, numpy {info['numpy']}, pydicom {info['pydicom']}, "
          f"SimpleITK {info['SimpleITK']} ({info['sitk_threads']} threads)")
    print()
    head = f"{'method':<28} {'best s':>8} {'median s':>9} {'SITK/this':>10} {'this/raw':>9} {'GB/s':>6}"
    print(head)
    print("-" * len(head))
    for r in res["rows"]:
        sp = f"{sitk_best / r['best_s']:.2f}×" if sitk_best else "—"
        fl = f"{r['best_s'] / raw_best:.2f}×"
        gbs = f"{mb / 1e3 / r['best_s']:.2f}"
        print(f"{r['method']:<28} {r['best_s']:>8.3f} {r['median_s']:>9.3f} {sp:>10} {fl:>9} {gbs:>6}")
    print()
    print("SITK/this = SimpleITK series reader (names given) best ÷ this best (>1: faster than SimpleITK); "
          "this/raw = this best ÷ raw read best (1.00× is the floor).")
    for n in res["notes"]:
        print(f"note: {n}")
    if sitk_best is None:
        print("target: SimpleITK not installed — cannot evaluate")
        return
    verdicts = []
    for key, label in (("discviewer: load only", "(a) load only"), ("discviewer: scan+load", "(b) scan+load")):
        r = rows[key]
        sp_b, sp_m = sitk_best / r["best_s"], rows["SimpleITK series reader"]["median_s"] / r["median_s"]
        ok = sp_b >= TARGET_SPEEDUP
        res.setdefault("target", {})[key] = {"speedup_best": sp_b, "speedup_median": sp_m, "met": ok}
        verdicts.append(f"{label}: {sp_b:.2f}× (median {sp_m:.2f}×) → {'MET' if ok else 'NOT MET'}")
    print(f"target \"discviewer load ≥ {TARGET_SPEEDUP:g}× faster than SimpleITK on a "
          f"{args.slices} × {args.size}² series\": " + "; ".join(verdicts))


def profile_scan(folder: str, top: int = 15) -> None:
    import cProfile
    import io
    import pstats
    scan(folder)  # warm
    pr = cProfile.Profile()
    pr.enable()
    scan(folder)
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(top)
    print("\nprofile of scan(folder), cumulative time (cProfile inflates pure-Python call costs):")
    print(s.getvalue())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", metavar="DIR", help="write the series here and keep it (must be empty or new)")
    ap.add_argument("--json", metavar="OUT", help="write the numbers as JSON")
    ap.add_argument("--profile-scan", action="store_true", help="also print a cProfile of scan(folder)")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.slices < 2 or args.size < 8:
        ap.error("need --repeat ≥ 1, --slices ≥ 2, --size ≥ 8")

    tmp = None
    if args.keep:
        folder = Path(args.keep).resolve()
        if folder.exists() and any(folder.iterdir()):
            ap.error(f"--keep {folder}: folder is not empty")
    else:
        tmp = tempfile.mkdtemp(prefix="discviewer-bench-")
        folder = Path(tmp) / "series"
    try:
        t0 = time.perf_counter()
        paths, pixels, header_bytes = write_series(folder, args.slices, args.size)
        print(f"wrote {len(paths)} files to {folder} in {time.perf_counter() - t0:.1f} s "
              f"(header ≈ {header_bytes} bytes/file)", file=sys.stderr, flush=True)
        res = run(folder, args, header_bytes, pixels, paths)
        res["machine"] = machine_info()
        res["params"] = {"slices": args.slices, "size": args.size, "repeat": args.repeat,
                         "header_bytes": header_bytes,
                         "date": _dt.datetime.now().isoformat(timespec="seconds")}
        report(res, args, header_bytes)
        if args.profile_scan:
            profile_scan(str(folder))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(res, f, indent=2)
            print(f"\nwrote {args.json}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

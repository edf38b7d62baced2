#!/usr/bin/env python
"""Write the small phantom study with compressed pixel data, to check a build's DICOM decoders.

    python packaging/make_compressed_study.py OUTDIR

Every image of the first visit is re-encoded losslessly: T2 series as JPEG 2000 (decoded through
pylibjpeg → pylibjpeg-openjpeg, found by entry points — what a frozen bundle can miss), the other series as
RLE. Only that visit is kept, so opening OUTDIR shows the first series only if the JPEG 2000 decoder works.
Prints OUTDIR. Runs in the development venv (the encoders), not in the bundle.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pydicom
from pydicom.uid import JPEG2000Lossless, RLELossless

from discviewer.phantom import write_study


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    src = out / "_uncompressed"
    write_study(src, size="small")
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.name != "truth.json")
    datasets = []
    for p in files:
        try:
            datasets.append((p, pydicom.dcmread(p)))
        except Exception:
            continue
    first_study = min(str(ds.get("StudyDate", "")) for _, ds in datasets if "PixelData" in ds)
    n = 0
    for p, ds in datasets:
        if "PixelData" not in ds or str(ds.get("StudyDate", "")) != first_study:
            continue
        syntax = JPEG2000Lossless if "T2" in str(ds.get("SeriesDescription", "")).upper() else RLELossless
        ds.compress(syntax)
        target = out / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
        n += 1
    shutil.rmtree(src)
    if not n:
        raise SystemExit("make_compressed_study: no images written")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

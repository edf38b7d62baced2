"""The small demo phantom, written and scanned once per test session (tests/core helpers)."""
from __future__ import annotations

from pathlib import Path

_CACHE: dict[str, tuple[Path, object]] = {}


def phantom_scan(tmp_path_factory):
    """(folder, ScanResult) of `write_study(size="small")` — generated on first use only."""
    if "small" not in _CACHE:
        from discviewer.io import scan
        from discviewer.phantom import write_study

        out = write_study(tmp_path_factory.mktemp("phantom_small"), size="small")
        _CACHE["small"] = (Path(out), scan(out))
    return _CACHE["small"]


_STUDIES: dict[str, object] = {}


def phantom_study(size: str = "small"):
    """`generate_study(patients=1, seed=0, size=size)` in memory (no DICOM) — generated once per test
    session (small ≈ 3 s, full ≈ 35 s on 2 cores)."""
    if size not in _STUDIES:
        from discviewer.phantom import generate_study

        _STUDIES[size] = generate_study(patients=1, seed=0, size=size)
    return _STUDIES[size]

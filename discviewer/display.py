"""Display math for 2-D slice views: orientation letters, auto window, scale-bar length.

No Qt here (only numpy), so these run and are tested anywhere. Conventions follow
`discviewer.volume`: `affine` maps (column, row, slice) indices to LPS mm, and the slice
view shows columns left→right and rows top→bottom (row 0 at the top).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# DICOM patient coordinates (LPS): +x = Left, +y = Posterior, +z = Superior.
_POSITIVE = ("L", "P", "S")
_NEGATIVE = ("R", "A", "I")

SCALE_BAR_CHOICES_MM = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)


def orientation_letter(direction) -> str:
    """Patient-direction letter (L/R/A/P/S/I) of the dominant axis of an LPS direction vector."""
    v = np.asarray(direction, dtype=np.float64)[:3]
    if not np.all(np.isfinite(v)) or not np.any(v):
        return ""
    axis = int(np.argmax(np.abs(v)))
    return _POSITIVE[axis] if v[axis] > 0 else _NEGATIVE[axis]


@dataclass(frozen=True)
class EdgeLetters:
    """Letters to draw on each edge of a displayed slice."""

    left: str
    right: str
    top: str
    bottom: str

    def as_dict(self) -> dict[str, str]:
        return {"left": self.left, "right": self.right, "top": self.top, "bottom": self.bottom}


def edge_letters(affine) -> EdgeLetters:
    """Edge letters for `array[slice]` displayed with row 0 at the top, column 0 on the left.

    Moving right on screen = +column = affine column 0 (the DICOM row cosine);
    moving down = +row = affine column 1 (the DICOM column cosine).
    """
    a = np.asarray(affine, dtype=np.float64)
    right_dir = a[:3, 0]
    down_dir = a[:3, 1]
    return EdgeLetters(
        left=orientation_letter(-right_dir),
        right=orientation_letter(right_dir),
        top=orientation_letter(-down_dir),
        bottom=orientation_letter(down_dir),
    )


def auto_window(array, low_pct: float = 1.0, high_pct: float = 99.0,
                max_samples: int = 1_000_000) -> tuple[float, float]:
    """(center, width) spanning the `low_pct`–`high_pct` percentiles of `array`.

    Large arrays are subsampled with a fixed stride (deterministic). Non-finite values are ignored.
    The width is never zero (a constant image gets width 1).
    """
    flat = _finite_sample(array, max_samples)
    if flat.size == 0:
        return 0.5, 1.0
    lo, hi = np.percentile(flat, [low_pct, high_pct])
    lo, hi = float(lo), float(hi)
    if hi <= lo:
        return lo, 1.0
    return (lo + hi) / 2.0, hi - lo


def _finite_sample(array, max_samples: int) -> np.ndarray:
    """The finite values of `array` as float64, subsampled with a fixed stride when large."""
    flat = np.asarray(array).reshape(-1)
    if flat.size > max_samples:
        flat = flat[:: int(np.ceil(flat.size / max_samples))]
    flat = flat.astype(np.float64, copy=False)
    return flat[np.isfinite(flat)]


def data_range(array, max_samples: int = 1_000_000) -> tuple[float, float]:
    """(min, max) of the finite values of `array` (subsampled when large)."""
    flat = _finite_sample(array, max_samples)
    if flat.size == 0:
        return 0.0, 1.0
    return float(flat.min()), float(flat.max())


def scale_bar_length(available_mm: float, choices=SCALE_BAR_CHOICES_MM) -> float:
    """Largest `choices` length that fits in `available_mm` (the smallest choice if none fits)."""
    fitting = [c for c in choices if c <= available_mm]
    return max(fitting) if fitting else min(choices)


def middle_slice(count: int) -> int:
    """Index of the middle slice of `count` slices (0 for an empty volume)."""
    return max(0, (int(count) - 1) // 2) if count > 0 else 0


def format_number(value: float) -> str:
    """Compact display of a voxel value or window setting (integers without decimals)."""
    if value is None or not np.isfinite(value):
        return "–"
    if abs(value - round(value)) < 1e-9 and abs(value) < 1e9:
        return str(int(round(value)))
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"

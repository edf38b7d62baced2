"""Finding the other discs of the spine from one: the reader labels one disc, the rest follow by order.

From the disc around `seed` (found by `discviewer.measure.detect_disc_landmarks`), the search
walks up and down the spine: the next disc is expected one disc-to-disc step further along the
current disc's axis (the normal of its endplates; the first step 36 mm, then the last measured
step, which follows the lordosis and the smaller thoracic levels); a few seeds around that
prediction (±10 mm along the axis) are tried and the detected disc nearest to the prediction is
taken if it lies at least 15 mm beyond the previous one and within 15 mm of the prediction. The
walk stops when no disc qualifies or after `max_each_way` discs.

`label_discs(volume, seed, seed_label)` names the found discs by their order along the spine
from the seed's label (`discviewer.levels.label_by_order`), dropping discs beyond the named range
(above T11/T12, below L5/S1). Positions are the discs' centres (the mean of their six endplate
landmarks) in LPS mm.

Core module: no Qt, no VTK.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIRST_STEP_MM = 36.0
SEARCH_OFFSETS_MM = tuple(np.arange(-10.0, 10.01, 2.5))
MIN_STEP_MM = 15.0
MAX_PREDICTION_ERROR_MM = 15.0


@dataclass(frozen=True)
class FoundDisc:
    centre: tuple[float, float, float]
    axis: tuple[float, float, float]  # unit vector from the lower to the upper endplate (cranial)
    confidence: float


def _disc(volume, seed) -> FoundDisc:
    from discviewer.measure import detect_disc_landmarks

    lm = detect_disc_landmarks(volume, seed)
    p = np.asarray(lm.points(), float).reshape(6, 3)
    up, lo = p[:3].mean(axis=0), p[3:].mean(axis=0)
    axis = up - lo
    axis /= np.linalg.norm(axis) or 1.0
    return FoundDisc(tuple((up + lo) / 2.0), tuple(axis), float(getattr(lm, "confidence", 0.0)))


def find_discs(volume, seed, *, max_each_way: int = 8) -> tuple[list[FoundDisc], int]:
    """(discs from cranial to caudal, index of the seed's disc). Raises ValueError when no disc is
    found at the seed."""
    first = _disc(volume, seed)
    above: list[FoundDisc] = []
    below: list[FoundDisc] = []
    for direction, out in ((+1, above), (-1, below)):
        cur, step = first, FIRST_STEP_MM
        for _ in range(max_each_way):
            c, n = np.asarray(cur.centre), np.asarray(cur.axis)
            pred = c + direction * step * n
            best = None
            for t in SEARCH_OFFSETS_MM:
                try:
                    d = _disc(volume, pred + t * n)
                except (ValueError, IndexError, FloatingPointError, np.linalg.LinAlgError):
                    continue
                dc = np.asarray(d.centre)
                if float((dc - c) @ n) * direction < MIN_STEP_MM:  # found the same disc again
                    continue
                err = float(np.linalg.norm(dc - pred))
                if best is None or err < best[0]:
                    best = (err, d)
            if best is None or best[0] > MAX_PREDICTION_ERROR_MM:
                break
            step = float(np.linalg.norm(np.asarray(best[1].centre) - c))
            cur = best[1]
            out.append(cur)
    return above[::-1] + [first] + below, len(above)


def label_discs(volume, seed, seed_label: str, *, max_each_way: int = 8) -> dict[str, tuple[float, float, float]]:
    """level → disc centre for the discs found from `seed` (named `seed_label`), cranial first."""
    from discviewer.levels import DISC_LEVELS, label_by_order

    if seed_label not in DISC_LEVELS:
        raise ValueError(f"unknown disc level {seed_label!r}; one of {', '.join(DISC_LEVELS)}")
    discs, k = find_discs(volume, seed, max_each_way=max_each_way)
    i = DISC_LEVELS.index(seed_label)
    lo, hi = max(0, k - i), min(len(discs), k + (len(DISC_LEVELS) - i))  # keep the named range only
    discs = discs[lo:hi]
    names = label_by_order([d.centre for d in discs], k - lo, seed_label, axis=discs[k - lo].axis)
    return {name: d.centre for name, d in zip(names, discs)}

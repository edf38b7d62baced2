#!/usr/bin/env python
"""Benchmark: the R2* map of a multi-echo series — discviewer's fits vs a plain log-linear reference.

Rows (seconds for one whole series of the small demo phantom, 5 echoes × 9 × 160 × 160, best of
`--repeat`, trials interleaved):
  reference        plain numpy log-linear least squares over all echoes (np.polyfit on log S, one call
                   for all voxels) — the cheapest fit there is, with none of discviewer's safeguards
  loglinear        `r2star_map(..., method="loglinear")` (echo selection, bounds, S0, RMSE)
  rician           `r2star_map(..., noise_sigma=σ)` (noise-floor-aware fit, `iterations` Gauss-Newton steps)
Ratios are this/reference. The former unit test asked for < 1 s (log-linear) and < 2 s (Rician) on
this series; those goals are printed beside the numbers.

Usage:  .venv/bin/python benchmarks/bench_r2star.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from discviewer.measure import r2star_map  # noqa: E402
from discviewer.phantom import generate_study  # noqa: E402


def reference(arrays, te_ms):
    y = np.log(np.maximum(np.stack([np.asarray(a, float) for a in arrays]), 1e-3)).reshape(len(te_ms), -1)
    slope, _ = np.polyfit(np.asarray(te_ms, float) / 1000.0, y, 1)
    return -slope


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} (run when the machine is quiet)")
    study = generate_study(patients=1, seed=0, size="small")
    v = study.patients[0].visits[1]
    gre = v.series_by_key("gre")
    arrays, te = gre.arrays, gre.echo_times
    rows = {"reference": lambda: reference(arrays, te),
            "loglinear": lambda: r2star_map(arrays, te, method="loglinear"),
            "rician": lambda: r2star_map(arrays, te, noise_sigma=v.noise_sigma)}
    best = {k: float("inf") for k in rows}
    for _ in range(a.repeat):
        for k, f in rows.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    goals = {"loglinear": 1.0, "rician": 2.0}
    print(f"series {len(arrays)} echoes × {gre.array.shape}")
    for k, t in best.items():
        extra = f"   goal < {goals[k]:.1f} s: {'met' if t < goals[k] else 'NOT met'}" if k in goals else ""
        print(f"{k:10s} {t:7.3f} s   ×{t / best['reference']:6.1f} reference{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

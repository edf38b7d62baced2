"""Registering the visits of a patient to its baseline, and resampling onto the baseline grid.

Owns the study-level rules of registration: a visit is registered once, on one series role
(default T2 sag, else the first role both visits have), and the result applies to every series of
that visit (they share its frame of reference). Results carry provenance (method, metric, ROI,
date, user) for the transform store. Core module: no Qt, no VTK.
"""
from __future__ import annotations

import datetime as _dt
import getpass
from dataclasses import dataclass, field

import numpy as np

from discviewer.registration.rigid import RegistrationResult
from discviewer.reslice import resample_volume
from discviewer.volume import Volume

DEFAULT_ROLE_ORDER = ("T2 sag", "T1 sag", "multi-echo GRE", "T2* GRE", "STIR sag")


def _role_text(role) -> str:
    return str(getattr(role, "value", role))


def pair_entries(baseline, visit, role: str | None = None):
    """(baseline entry, visit entry, role) to register on: `role` if both visits have it, else the
    first of DEFAULT_ROLE_ORDER both have; None if they share none."""
    order = ([role] if role else []) + [r for r in DEFAULT_ROLE_ORDER if r != role]
    for r in order:
        a = [e for e in baseline.series if _role_text(e.role) == r]
        b = [e for e in visit.series if _role_text(e.role) == r]
        if a and b:
            return a[0], b[0], r
    return None


@dataclass
class VisitRegistration:
    """One visit's registration to baseline, with provenance."""

    visit_id: str
    visit_label: str
    role: str
    result: RegistrationResult
    provenance: dict = field(default_factory=dict)

    @property
    def visit_to_baseline(self) -> np.ndarray:
        return np.linalg.inv(self.result.matrix)


def provenance(result: RegistrationResult, role: str, *, mode: str = "whole volume") -> dict:
    return {
        "method": "rigid 6-DOF, multi-resolution",
        "metric": result.metric,
        "metric_before": result.initial_metric,
        "metric_after": result.final_metric,
        "roi": list(result.roi) if result.roi is not None else None,
        "mode": mode,
        "series_role": role,
        "seconds": round(result.seconds, 3),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "user": _user(),
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""


def resample_to_fixed(moving: Volume, fixed: Volume, fixed_to_moving: np.ndarray, *, order: int = 1) -> Volume:
    """The moving (follow-up) volume resampled onto the fixed (baseline) grid through a registration
    result's matrix — for subtraction and side-by-side comparison on identical voxels."""
    return resample_volume(moving, fixed.affine, fixed.shape, transform=fixed_to_moving, order=order)

"""Rigid (6-DOF) registration of one volume to another — core, no Qt/VTK.

`register_rigid(fixed, moving)` returns a `RegistrationResult` whose `matrix` maps a point of the
FIXED volume's patient space (LPS mm) to the corresponding point of the MOVING volume's patient
space (ITK convention). Registering a follow-up (moving) to the baseline (fixed) therefore gives
``baseline_to_visit``; ``visit_to_baseline = inv(matrix)`` (also `result.moving_to_fixed`).
"""
from __future__ import annotations

from .rigid import (RegistrationCancelled, RegistrationError, RegistrationResult, choose_metric,
                    euler_matrix, register_rigid)
from .visits import VisitRegistration, pair_entries, provenance, resample_to_fixed

__all__ = ["RegistrationCancelled", "RegistrationError", "RegistrationResult", "choose_metric",
           "euler_matrix", "register_rigid", "VisitRegistration", "pair_entries", "provenance",
           "resample_to_fixed"]

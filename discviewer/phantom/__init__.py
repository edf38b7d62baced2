"""Synthetic serial lumbar-spine MRI phantom: the demo study and the ground truth.

Public API: `generate_study` (everything in memory) and `write_study` (DICOM files + truth.json).
Synthetic phantom — not clinical data. Core package: no Qt, no VTK.
"""
from .study import (DISCLAIMER, PhantomPatient, PhantomSeries, PhantomStudy, PhantomVisit, SIZES, VISITS,
                    generate_study)
from .dicomwrite import write_study

__all__ = ["generate_study", "write_study", "PhantomStudy", "PhantomPatient", "PhantomVisit", "PhantomSeries",
           "SIZES", "VISITS", "DISCLAIMER"]

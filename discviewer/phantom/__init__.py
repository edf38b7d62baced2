"""Synthetic serial lumbar-spine MRI phantom: the demo study and the ground truth.

Public API: `generate_study` (everything in memory) and `write_study` (DICOM files + truth.json).
Synthetic phantom — not clinical data. Core package: no Qt, no VTK.
"""
from .study import (DISCLAIMER, PhantomPatient, PhantomSeries, PhantomStudy, PhantomVisit, SIZES, VISITS,
                    generate_study)
from .dicomwrite import write_study

# Bumped whenever the generated images or truth change, so cached demo studies are regenerated
# (discviewer.ui.cli.ensure_demo_study). 2: partial-volume rendering, truth on the painted geometry,
# iron truth for the 50 % rule.
PHANTOM_VERSION = "2"

__all__ = ["PHANTOM_VERSION", "generate_study", "write_study", "PhantomStudy", "PhantomPatient", "PhantomVisit",
           "PhantomSeries", "SIZES", "VISITS", "DISCLAIMER"]

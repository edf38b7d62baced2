"""DICOM and NIfTI input: `scan` / `scan_files` (headers only → volume candidates) and `load`
(pixels → Volume).

Core package: no Qt, no VTK. See `scan.py` for grouping rules and `load.py` for the pixel path.
"""
from discviewer.io.load import LoadError, load, load_slice
from discviewer.io.nifti import load_nifti
from discviewer.io.scan import scan, scan_files
from discviewer.io.types import FrameRef, PatientNode, Problem, ScanResult, StudyNode, VolumeCandidate

__all__ = ["scan", "scan_files", "load", "load_slice", "load_nifti", "LoadError", "ScanResult", "VolumeCandidate",
           "FrameRef", "Problem", "PatientNode", "StudyNode"]

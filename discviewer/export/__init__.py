"""Exports of a workspace's measurements for analysis and for other viewers.

- `pseudonym` — `ExportPolicy`: de-identified by default (pseudonyms, days since baseline, remapped
  UIDs); identifying text only on explicit opt-in. `policy_for(workspace)` gives the default.
- `tables` — long CSV (one row per value), per-disc wide CSV, HDF5.
- `dicom_sr` — TID 1500 measurement reports (Comprehensive 3D SR) and Secondary Capture images
  (highdicom), in the patient's (or the remapped) study.

Every export carries "Research use only - not for diagnostic use". Core package: no Qt, no VTK.
"""
from discviewer.export.pseudonym import RESEARCH_USE_NOTICE, ExportPolicy, default_pseudonyms, policy_for
from discviewer.export.dicom_sr import (measurement_report, read_measurement_report, secondary_capture,
                                        write_secondary_capture, write_sr_dir)
from discviewer.export.tables import (LONG_COLUMNS, measurements_long, measurements_wide, read_hdf5, write_hdf5,
                                      write_long_csv, write_wide_csv)

__all__ = ["RESEARCH_USE_NOTICE", "ExportPolicy", "default_pseudonyms", "policy_for", "LONG_COLUMNS",
           "measurements_long", "measurements_wide", "write_long_csv", "write_wide_csv", "write_hdf5", "read_hdf5",
           "measurement_report", "read_measurement_report", "secondary_capture", "write_secondary_capture",
           "write_sr_dir"]

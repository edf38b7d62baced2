"""Synthetic volumes, affines and candidates with known values (numpy only; shared by core and UI tests)."""
from __future__ import annotations

import numpy as np

DIRECTIONS = {
    # (row cosine, column cosine, slice direction) in LPS
    "sagittal": ((0, 1, 0), (0, 0, -1), (-1, 0, 0)),
    "axial": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "coronal": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
}


def make_affine(orientation="sagittal", spacing=(0.5, 1.0, 3.0), origin=(-20.0, -50.0, 80.0)):
    """index (col, row, slice) → LPS affine with the given (col, row, slice) spacing."""
    row_cos, col_cos, normal = (np.asarray(v, dtype=float) for v in DIRECTIONS[orientation])
    a = np.eye(4)
    a[:3, 0] = row_cos * spacing[0]
    a[:3, 1] = col_cos * spacing[1]
    a[:3, 2] = normal * spacing[2]
    a[:3, 3] = origin
    return a


def make_volume(shape=(5, 40, 60), orientation="sagittal", spacing=(0.5, 1.0, 3.0), description="T2 sag", **info):
    """array[k, r, c] = 1000·k + 60·r + c — every voxel value is known and unique."""
    from discviewer.volume import SeriesInfo, Volume

    k, r, c = np.indices(shape)
    arr = (1000 * k + shape[2] * r + c).astype(np.int16)
    return Volume(arr, make_affine(orientation, spacing), SeriesInfo(series_description=description, **info))


def make_candidate(description="T2 sag", number=1, *, date="20200101", study_uid="1.2.3", shape=(5, 40, 60),
                   te=90.0, localizer=False, spacing=(0.5, 1.0, 3.0), patient_id="P1"):
    from discviewer.io.types import FrameRef, VolumeCandidate
    from discviewer.volume import SeriesInfo

    info = SeriesInfo(patient_id=patient_id, patient_name="DOE^JANE", study_uid=study_uid, study_date=date,
                      study_description="Lumbar spine", series_uid=f"{study_uid}.{number}",
                      series_number=number, series_description=description, echo_time=te, modality="MR")
    return VolumeCandidate(info=info, frames=[FrameRef(f"/fake/{study_uid}/{number}/{i}.dcm") for i in range(shape[0])],
                           rows=shape[1], columns=shape[2], spacing=spacing, affine=make_affine("sagittal", spacing),
                           label=f"{description} · TE {te:g}", is_localizer=localizer)



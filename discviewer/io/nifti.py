"""NIfTI (.nii / .nii.gz) into the same `Volume` as DICOM, converted from RAS to LPS.

NIfTI indexes voxels (i, j, k) with an affine to RAS mm; a `Volume` is array[slice, row, column]
with an affine from (column, row, slice) to LPS mm. So column = i, row = j, slice = k, the array
is transposed, and the affine is flipped in x and y. Uses nibabel. Core module: no Qt, no VTK.
"""
from __future__ import annotations

import os

import numpy as np

from discviewer.volume import SeriesInfo, Volume

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def load_nifti(path) -> Volume:
    import nibabel as nib

    path = os.fspath(path)
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:
        from discviewer.io.load import LoadError
        raise LoadError(f"{path}: NIfTI file cannot be read ({str(exc).splitlines()[0][:160]})") from None
    warnings = []
    if data.ndim > 3:
        if int(np.prod(data.shape[3:])) > 1:
            warnings.append(f"4-D NIfTI {data.shape}: only the first volume is shown")
        data = data.reshape(data.shape[:3] + (-1,))[..., 0]
    while data.ndim < 3:
        data = data[..., np.newaxis]
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    affine = LPS_FROM_RAS @ np.asarray(img.affine, dtype=np.float64)
    info = SeriesInfo(series_description=os.path.basename(path), modality="MR", source="nifti",
                      source_path=path, series_uid=os.path.abspath(path))
    return Volume(array=array, affine=affine, info=info, warnings=warnings)

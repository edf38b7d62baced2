"""Loading a volume candidate's pixels into a `Volume` with exact geometry.

Owns the pixel path: a direct read of uncompressed Pixel Data at the offset the scan found
(no second header parse), pydicom's decoders for compressed syntaxes, bit masking / sign
extension, per-frame RescaleSlope/Intercept, and NIfTI. One frame that cannot be decoded is
reported in `Volume.warnings` and left at the volume minimum; the others still load.
Core module: no Qt, no VTK.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pydicom

from discviewer.io.codecs import decoder_message, syntax_name
from discviewer.io.header import NATIVE_SYNTAXES, FrameHeader, UnusableFile, read_headers
from discviewer.io.types import VolumeCandidate
from discviewer.volume import Volume

Progress = Callable[[int, int], None]


class LoadError(Exception):
    """A volume could not be loaded; the message names the file and says what to do."""


def _dtype(h: FrameHeader) -> np.dtype:
    if h.bits_allocated not in (8, 16, 32):
        raise LoadError(f"{h.path}: {h.bits_allocated}-bit pixels are not supported")
    kind = "i" if h.pixel_representation == 1 else "u"
    return np.dtype(f"{kind}{h.bits_allocated // 8}")


def _fix_bits(a: np.ndarray, h: FrameHeader) -> np.ndarray:
    """Drop bits above BitsStored (unsigned) or sign-extend from BitsStored (signed)."""
    if h.bits_stored >= h.bits_allocated or a.dtype.itemsize == 1 and h.bits_stored >= 8:
        return a
    shift = h.bits_allocated - h.bits_stored
    if h.pixel_representation == 1:
        return ((a << shift) >> shift).astype(a.dtype, copy=False)
    return a & np.array((1 << h.bits_stored) - 1, dtype=a.dtype)


class _FrameReader:
    """Reads frames, keeping multi-frame files open / decoded once per load."""

    def __init__(self) -> None:
        self._files: dict[str, object] = {}
        self._decoded: dict[str, np.ndarray] = {}

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._decoded.clear()

    def read(self, h: FrameHeader) -> np.ndarray:
        if h.samples_per_pixel != 1:
            raise LoadError(f"{h.path}: colour images ({h.samples_per_pixel} samples per pixel, "
                            f"{h.photometric}) are not supported")
        h = self._fresh(h)
        if h.transfer_syntax in NATIVE_SYNTAXES and not h.encapsulated and h.pixel_offset is not None:
            return self._read_native(h)
        return self._read_decoded(h)

    @staticmethod
    def _fresh(h: FrameHeader) -> FrameHeader:
        """Re-read the header if the file changed since the scan (offsets may have moved)."""
        try:
            st = os.stat(h.path)
        except OSError as exc:
            raise LoadError(f"{h.path}: cannot be read ({exc.strerror}); was it moved or deleted since the scan?") \
                from None
        if st.st_size == h.file_size and st.st_mtime_ns == h.file_mtime_ns:
            return h
        try:
            frames = read_headers(h.path)
        except UnusableFile as exc:
            raise LoadError(f"{h.path}: changed since the scan and is now unusable: {exc}") from None
        if h.frame >= len(frames):
            raise LoadError(f"{h.path}: changed since the scan (frame {h.frame + 1} no longer exists); rescan")
        return frames[h.frame]

    def _read_native(self, h: FrameHeader) -> np.ndarray:
        dt = _dtype(h)
        if h.transfer_syntax == pydicom.uid.ExplicitVRBigEndian:
            dt = dt.newbyteorder(">")
        n = h.rows * h.columns
        nbytes = n * dt.itemsize
        f = self._files.get(h.path)
        if f is None:
            f = open(h.path, "rb")
            if h.number_of_frames > 1:
                self._files[h.path] = f
        try:
            f.seek(h.pixel_offset + h.frame * nbytes)
            buf = f.read(nbytes)
        finally:
            if h.number_of_frames <= 1:
                f.close()
        if len(buf) != nbytes:
            raise LoadError(f"{h.path}: pixel data ends early (frame {h.frame + 1}: {len(buf)} of {nbytes} bytes)")
        a = np.frombuffer(buf, dtype=dt).reshape(h.rows, h.columns)
        if dt.byteorder == ">":
            a = a.astype(dt.newbyteorder("="))
        return _fix_bits(a, h)

    def _read_decoded(self, h: FrameHeader) -> np.ndarray:
        arr = self._decoded.get(h.path)
        if arr is None:
            msg = decoder_message(h.transfer_syntax, h.path)
            if msg:
                raise LoadError(msg)
            try:
                ds = pydicom.dcmread(h.path, force=True)
                if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
                    ds.file_meta = ds.file_meta if hasattr(ds, "file_meta") else pydicom.dataset.FileMetaDataset()
                    ds.file_meta.TransferSyntaxUID = h.transfer_syntax
                arr = ds.pixel_array
            except LoadError:
                raise
            except Exception as exc:
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if "missing dependencies" in text or "no pixel data handlers" in text.lower():
                    raise LoadError(f"{h.path}: no decoder installed for {syntax_name(h.transfer_syntax)}: "
                                    f"{text[:200]}") from None
                raise LoadError(f"{h.path}: pixel data cannot be decoded "
                                f"({syntax_name(h.transfer_syntax)}): {text[:200]}") from None
            arr = np.asarray(arr)
            if h.number_of_frames == 1 and arr.ndim == 2:
                arr = arr[np.newaxis]
            if arr.ndim != 3:
                raise LoadError(f"{h.path}: decoded pixels have unexpected shape {arr.shape}")
            if arr.dtype.byteorder == ">":
                arr = arr.astype(arr.dtype.newbyteorder("="))
            if h.number_of_frames > 1:
                self._decoded[h.path] = arr
        return arr[h.frame]


def load(candidate: VolumeCandidate, *, progress: Progress | None = None) -> Volume:
    """Load a candidate's pixels: `Volume.array` (slices, rows, columns) with the candidate's affine.

    RescaleSlope/Intercept are applied (the array becomes float32 when any frame has a
    slope ≠ 1 or intercept ≠ 0; otherwise it keeps the stored integer type).
    """
    if candidate.private.get("nifti"):
        from discviewer.io.nifti import load_nifti
        return load_nifti(candidate.frames[0].path)
    headers = _headers(candidate)
    array, warnings = _load_frames(headers, progress)
    return Volume(array=array, affine=candidate.affine.copy(), info=candidate.info,
                  warnings=list(candidate.warnings) + warnings)


def load_slice(candidate: VolumeCandidate, index: int) -> Volume:
    """One slice of a candidate as a 1-slice `Volume` whose affine puts it at its true position.

    Cheap (one frame read): for a first image on screen before the whole series has loaded,
    and for thumbnails.
    """
    n = candidate.slice_count
    if not 0 <= index < n:
        raise IndexError(f"slice {index} out of range 0..{n - 1}")
    shift = np.eye(4)
    shift[2, 3] = index
    affine = candidate.affine @ shift
    if candidate.private.get("nifti"):
        from discviewer.io.nifti import load_nifti
        vol = load_nifti(candidate.frames[0].path)
        return Volume(array=vol.array[index:index + 1].copy(), affine=affine, info=vol.info, warnings=vol.warnings)
    array, warnings = _load_frames([_headers(candidate)[index]], None)
    return Volume(array=array, affine=affine, info=candidate.info, warnings=warnings)


def _headers(candidate: VolumeCandidate) -> list[FrameHeader]:
    headers: list[FrameHeader] | None = candidate.private.get("headers")
    if headers is None:
        raise LoadError(f"{candidate.label}: this candidate carries no header records; scan the folder again")
    return headers


def _load_frames(headers: list[FrameHeader], progress: Progress | None) -> tuple[np.ndarray, list[str]]:
    """Read and rescale frames into one (n, rows, columns) array; failed frames → blank + warning."""
    h0 = headers[0]
    rescale = any(h.rescale_slope != 1.0 or h.rescale_intercept != 0.0 for h in headers)
    out = np.empty((len(headers), h0.rows, h0.columns), dtype=np.float32 if rescale else _dtype(h0))
    failed: list[int] = []
    errors: list[str] = []
    reader = _FrameReader()
    try:
        for k, h in enumerate(headers):
            try:
                a = reader.read(h)
                if a.shape != (h0.rows, h0.columns):
                    raise LoadError(f"{h.path}: image is {a.shape[0]}×{a.shape[1]}, "
                                    f"the series is {h0.rows}×{h0.columns}")
                if rescale:
                    out[k] = (a.astype(np.float64) * h.rescale_slope + h.rescale_intercept).astype(np.float32)
                else:
                    out[k] = a
            except LoadError as exc:
                failed.append(k)
                errors.append(str(exc))
            if progress is not None:
                progress(k + 1, len(headers))
    finally:
        reader.close()
    if len(failed) == len(headers):
        raise LoadError(errors[0] if len(errors) == 1 else f"{errors[0]} (and {len(errors) - 1} more files failed)")
    warnings: list[str] = []
    if failed:
        good = np.setdiff1d(np.arange(len(headers)), failed)
        fill = out[good].min()
        for k, msg in zip(failed, errors):
            out[k] = fill
            warnings.append(f"slice {k + 1} could not be loaded and is shown blank: {msg}")
    if h0.photometric == "MONOCHROME1":
        warnings.append("MONOCHROME1 image: low values are meant to display white")
    return out, warnings

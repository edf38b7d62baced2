"""Reading one DICOM file's header into plain per-frame records (`FrameHeader`).

Owns: the header-only read (pydicom, `stop_before_pixels`), recognising unusable files with a
one-line reason (`UnusableFile`), classic vs enhanced multi-frame geometry, and locating the
Pixel Data element so the loader can read uncompressed pixels without parsing the file again.
Core module: no Qt, no VTK.
"""
from __future__ import annotations

import os
import struct
import warnings as _warnings
from dataclasses import dataclass, field

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from discviewer.io import fastheader

#: Transfer syntaxes whose pixels are stored raw (native) and can be read straight from the file.
NATIVE_SYNTAXES = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian}

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

#: SOP classes that are never images, with a user-facing name (prefix match on the UID).
NON_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.": "a structured report (SR)",
    "1.2.840.10008.5.1.4.1.1.11.": "a presentation state (PR)",
    "1.2.840.10008.5.1.4.1.1.481.": "a radiotherapy object (RT)",
    "1.2.840.10008.5.1.4.1.1.104.": "an encapsulated document (PDF/CDA)",
    "1.2.840.10008.5.1.4.1.1.66": "a raw-data / registration / segmentation object",
    "1.2.840.10008.5.1.4.1.1.9.": "a waveform",
    "1.2.840.10008.5.1.4.1.1.4.2": "MR spectroscopy",
}
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"


class UnusableFile(Exception):
    """A file the scan cannot use; `str(exc)` is a one-line reason for the user."""


@dataclass
class FrameHeader:
    """Everything the scan and the loader need about one 2-D frame (plain values)."""

    path: str
    frame: int
    number_of_frames: int
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    # identity
    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    study_description: str
    series_uid: str
    series_number: int | None
    series_description: str
    modality: str
    frame_of_reference_uid: str
    # acquisition
    sequence_name: str
    echo_time: float | None
    echo_number: int | None
    repetition_time: float | None
    inversion_time: float | None
    scanning_sequence: str
    field_strength: float | None
    image_type: tuple[str, ...]
    complex_part: str
    acquisition_number: int | None
    instance_number: int | None
    temporal_index: int | None
    stack_id: str
    # geometry
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    # pixel format
    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    rescale_slope: float
    rescale_intercept: float
    # where the pixels are
    pixel_offset: int | None  # byte offset of the Pixel Data value (native syntaxes only)
    pixel_length: int | None  # its declared length; None when encapsulated
    encapsulated: bool
    file_size: int
    file_mtime_ns: int
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# small value helpers (tolerant of missing / malformed values)

def _str(ds, keyword: str) -> str:
    try:
        v = ds.get(keyword)
    except Exception:  # malformed value
        return ""
    if v is None:
        return ""
    return str(v).strip()


def _number(ds, keyword: str, conv):
    """First value of a numeric attribute converted by `conv`, or None if missing/malformed."""
    try:
        v = ds.get(keyword)
        if v is None or v == "":
            return None
        if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
            v = v[0]
        return conv(v)
    except Exception:
        return None


def _float(ds, keyword: str) -> float | None:
    return _number(ds, keyword, float)


def _int(ds, keyword: str) -> int | None:
    return _number(ds, keyword, int)


def _floats(ds, keyword: str, n: int) -> tuple[float, ...] | None:
    try:
        v = ds.get(keyword)
        if v is None:
            return None
        vals = tuple(float(x) for x in v)
        return vals if len(vals) == n else None
    except Exception:
        return None


def _strs(ds, keyword: str) -> tuple[str, ...]:
    """A multi-valued string attribute as a tuple (a single value is a 1-tuple)."""
    try:
        v = ds.get(keyword)
    except Exception:
        return ()
    if v is None or v == "":
        return ()
    if isinstance(v, str):
        return (v.strip(),)
    return tuple(str(x).strip() for x in v)


def _item(ds, keyword: str):
    """First item of a sequence, or None."""
    try:
        seq = ds.get(keyword)
        if seq:
            return seq[0]
    except Exception:
        pass
    return None


def complex_part_from_image_type(image_type: tuple[str, ...]) -> str:
    """MAGNITUDE / PHASE / REAL / IMAGINARY from a classic ImageType (Siemens/Philips/GE conventions)."""
    vals = [v.upper() for v in image_type]
    for v in vals[2:]:
        if v in ("M", "MAGNITUDE", "M_FFE", "M_SE", "M_IR", "M_PCA"):
            return "MAGNITUDE"
        if v in ("P", "PHASE", "PHASE MAP", "P_FFE", "P_SE", "P_PCA"):
            return "PHASE"
        if v in ("R", "REAL", "R_FFE", "R_SE"):
            return "REAL"
        if v in ("I", "IMAGINARY", "I_FFE", "I_SE"):
            return "IMAGINARY"
    return ""


# ---------------------------------------------------------------------------------------------

def _locate_pixel_data(fp, little: bool, implicit: bool) -> tuple[int | None, int | None, bool]:
    """At the position where pydicom stopped, read the Pixel Data element header.

    Returns (value_offset, length, encapsulated); (None, None, False) when no Pixel Data follows.
    """
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return None, None, False
    e = "<" if little else ">"
    group, elem = struct.unpack(e + "HH", head[:4])
    if (group, elem) != (0x7FE0, 0x0010):
        return None, None, False
    if implicit:
        (length,) = struct.unpack(e + "I", head[4:8])
        off = start + 8
    else:
        vr = head[4:6]
        if vr in (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"UT", b"SQ", b"UC", b"UR"):
            if len(head) < 12:
                return None, None, False
            (length,) = struct.unpack(e + "I", head[8:12])
            off = start + 12
        else:
            (length,) = struct.unpack(e + "H", head[6:8])
            off = start + 8
    if length == 0xFFFFFFFF:
        return off, None, True
    return off, length, False


def _check_encapsulated(fp, offset: int, file_size: int, path: str) -> None:
    """Walk the fragment items of encapsulated Pixel Data; raise UnusableFile if the file ends early."""
    fp.seek(offset)
    n = 0
    while True:
        head = fp.read(8)
        if len(head) < 8:
            raise UnusableFile("compressed pixel data is cut short (file truncated before its end marker)")
        group, elem, length = struct.unpack("<HHI", head)
        if (group, elem) == (0xFFFE, 0xE0DD):
            if n <= 1:
                raise UnusableFile("compressed pixel data holds no image fragments")
            return
        if (group, elem) != (0xFFFE, 0xE000):
            raise UnusableFile("compressed pixel data is malformed (bad fragment item)")
        if fp.tell() + length > file_size:
            raise UnusableFile(
                f"compressed pixel data is cut short: a fragment needs {length} bytes, "
                f"{file_size - fp.tell()} remain"
            )
        fp.seek(length, os.SEEK_CUR)
        n += 1


def read_headers(path: str) -> list[FrameHeader]:
    """Read one file's header; one `FrameHeader` per frame. Raises `UnusableFile` with a reason."""
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")  # pydicom's value-validation chatter; problems are reported by us
        return _read_headers(path)


def _read_headers(path: str) -> list[FrameHeader]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UnusableFile(f"cannot be read ({exc.strerror})") from None
    if st.st_size < 132 and st.st_size < 16:
        raise UnusableFile("not a DICOM file (too small)")
    try:
        fp = open(path, "rb")
    except OSError as exc:
        raise UnusableFile(f"cannot be opened ({exc.strerror})") from None
    with fp:
        fast = _fast_parse(fp, st.st_size)
        if fast is not None:
            ds, pix_off, pix_len, encap = fast
            try:
                return _frames_from_dataset(ds, fp, path, st, False, pixel=(pix_off, pix_len, encap))
            except UnusableFile:
                raise
            except Exception as exc:
                raise UnusableFile(f"DICOM header is malformed ({_short(exc)})") from None
        fp.seek(0)
        forced = False
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
        except InvalidDicomError:
            fp.seek(0)
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            except Exception:
                raise UnusableFile("not a DICOM file (no 'DICM' marker and no readable DICOM header)") from None
            forced = True
        except Exception as exc:  # malformed header
            raise UnusableFile(f"DICOM header is unreadable ({_short(exc)})") from None
        try:
            return _frames_from_dataset(ds, fp, path, st, forced)
        except UnusableFile:
            raise
        except Exception as exc:
            raise UnusableFile(f"DICOM header is malformed ({_short(exc)})") from None


_FAST_FIRST_READ = 64 * 1024
_FAST_MAX_READ = 16 * 1024 * 1024


def _fast_parse(fp, size: int):
    """The byte-level header walker on the file's first bytes (more if the header is long)."""
    buf = fp.read(_FAST_FIRST_READ)
    got = fastheader.parse(buf)
    if got is None and size > len(buf) and buf[128:132] == b"DICM":
        buf += fp.read(min(size, _FAST_MAX_READ) - len(buf))
        got = fastheader.parse(buf)
    return got


def _short(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg[:160]


def _frames_from_dataset(ds, fp, path: str, st: os.stat_result, forced: bool,
                         pixel: tuple | None = None) -> list[FrameHeader]:
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    sop_class = _str(ds, "SOPClassUID") or (str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else "")

    if sop_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
        raise UnusableFile("a DICOMDIR (media index, not an image); open the DICOMDIR itself to use it")
    if forced and len(ds) < 3:
        raise UnusableFile("not a DICOM file (no 'DICM' marker and no readable DICOM header)")
    if sop_class == KEY_OBJECT_SELECTION:
        raise UnusableFile("a key object selection (KO), not an image")
    for prefix, name in NON_IMAGE_SOP_CLASSES.items():
        if sop_class.startswith(prefix):
            raise UnusableFile(f"{name}, not an image")
    if meta is not None and not ts and not forced:
        raise UnusableFile("file meta header has no Transfer Syntax UID, so its pixels cannot be decoded")

    # Where the pixel data starts (pydicom left the file positioned at the Pixel Data tag).
    little = ts != ExplicitVRBigEndian
    implicit = ts == ImplicitVRLittleEndian or (forced and not ts and getattr(ds, "is_implicit_VR", True))
    if pixel is not None:
        pix_off, pix_len, encap = pixel
        has_pixels = True
    elif ts == DeflatedExplicitVRLittleEndian:
        pix_off, pix_len, encap = None, None, False
        has_pixels = True  # checked at load time (the deflated stream hides offsets)
    else:
        if forced and not ts:
            implicit = bool(getattr(ds, "is_implicit_VR", True))
            little = bool(getattr(ds, "is_little_endian", True))
            ts = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        pix_off, pix_len, encap = _locate_pixel_data(fp, little, implicit)
        has_pixels = pix_off is not None
    if not has_pixels:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnusableFile("float pixel data is not supported yet")
        raise UnusableFile("no image in this file (no Pixel Data element)")
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    if not rows or not cols:
        raise UnusableFile("image size (Rows/Columns) is missing")

    nframes_raw = ds.get("NumberOfFrames", 1)
    try:
        nframes = int(nframes_raw) if nframes_raw not in (None, "") else 1
    except (TypeError, ValueError):
        raise UnusableFile(f"Number of Frames has an invalid value {str(nframes_raw)!r}") from None
    nframes = max(nframes, 1)
    spp = _int(ds, "SamplesPerPixel") or 1
    bits_alloc = _int(ds, "BitsAllocated") or 16
    bits_stored = _int(ds, "BitsStored") or bits_alloc
    pixrep = _int(ds, "PixelRepresentation") or 0
    photometric = _str(ds, "PhotometricInterpretation") or "MONOCHROME2"

    if pix_len is not None and pix_off is not None:
        expected = rows * cols * spp * nframes * (bits_alloc // 8 if bits_alloc >= 8 else 1)
        if bits_alloc == 1:
            expected = (rows * cols * spp * nframes + 7) // 8
        available = st.st_size - pix_off
        if pix_len > available:
            raise UnusableFile(f"pixel data is truncated: the file holds {available} of {pix_len} bytes")
        if pix_len < expected:
            raise UnusableFile(f"pixel data is too short: {pix_len} bytes for {expected} expected "
                               f"({nframes} × {rows}×{cols} × {bits_alloc} bit)")
    if encap and pix_off is not None:
        _check_encapsulated(fp, pix_off, st.st_size, path)

    image_type = _strs(ds, "ImageType")
    base = dict(
        path=path,
        number_of_frames=nframes,
        sop_class_uid=sop_class,
        sop_instance_uid=_str(ds, "SOPInstanceUID"),
        transfer_syntax=ts,
        patient_id=_str(ds, "PatientID"),
        patient_name=_str(ds, "PatientName"),
        study_uid=_str(ds, "StudyInstanceUID"),
        study_date=_str(ds, "StudyDate"),
        study_description=_str(ds, "StudyDescription"),
        series_uid=_str(ds, "SeriesInstanceUID"),
        series_number=_int(ds, "SeriesNumber"),
        series_description=_str(ds, "SeriesDescription"),
        modality=_str(ds, "Modality"),
        frame_of_reference_uid=_str(ds, "FrameOfReferenceUID"),
        sequence_name=_str(ds, "SequenceName") or _str(ds, "PulseSequenceName") or _str(ds, "ScanningSequence"),
        repetition_time=_float(ds, "RepetitionTime"),
        inversion_time=_float(ds, "InversionTime"),
        scanning_sequence="\\".join(_strs(ds, "ScanningSequence")),
        field_strength=_float(ds, "MagneticFieldStrength"),
        image_type=image_type,
        acquisition_number=_int(ds, "AcquisitionNumber"),
        instance_number=_int(ds, "InstanceNumber"),
        rows=rows,
        columns=cols,
        samples_per_pixel=spp,
        bits_allocated=bits_alloc,
        bits_stored=bits_stored,
        pixel_representation=pixrep,
        photometric=photometric,
        pixel_offset=pix_off,
        pixel_length=pix_len,
        encapsulated=encap,
        file_size=st.st_size,
        file_mtime_ns=st.st_mtime_ns,
    )
    warnings: list[str] = []
    if forced:
        warnings.append("file has no DICOM file meta header; read with a guessed transfer syntax")

    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds or nframes > 1:
        return _enhanced_frames(ds, base, nframes, warnings)

    return [FrameHeader(
        frame=0,
        echo_time=_float(ds, "EchoTime"),
        echo_number=_int(ds, "EchoNumbers"),
        complex_part=complex_part_from_image_type(image_type),
        temporal_index=_int(ds, "TemporalPositionIdentifier"),
        stack_id="",
        position=_floats(ds, "ImagePositionPatient", 3),
        orientation=_floats(ds, "ImageOrientationPatient", 6),
        pixel_spacing=_floats(ds, "PixelSpacing", 2),
        slice_thickness=_float(ds, "SliceThickness"),
        rescale_slope=_float(ds, "RescaleSlope") or 1.0,
        rescale_intercept=_float(ds, "RescaleIntercept") or 0.0,
        warnings=warnings,
        **base,
    )]


def _enhanced_frames(ds, base: dict, nframes: int, warnings: list[str]) -> list[FrameHeader]:
    """Per-frame functional groups → one FrameHeader per frame (shared groups as defaults)."""
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    try:
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    except Exception:
        per_frame = []
    if per_frame and len(per_frame) != nframes:
        warnings = warnings + [f"per-frame functional groups list {len(per_frame)} items for {nframes} frames"]
    have_geometry = False

    def lookup(frame_item, seq_kw: str, attr: str, conv):
        for src in (frame_item, shared):
            if src is None:
                continue
            it = _item(src, seq_kw)
            if it is not None:
                v = conv(it, attr)
                if v is not None and v != "":
                    return v
        return None

    # defaults from the top level (classic-style tags some writers put there)
    top_pos = _floats(ds, "ImagePositionPatient", 3)
    top_ori = _floats(ds, "ImageOrientationPatient", 6)
    top_ps = _floats(ds, "PixelSpacing", 2)
    top_te = _float(ds, "EchoTime")
    frames = []
    for i in range(nframes):
        fi = per_frame[i] if i < len(per_frame) else None
        pos = lookup(fi, "PlanePositionSequence", "ImagePositionPatient", lambda it, a: _floats(it, a, 3)) or (
            top_pos if nframes == 1 else None)
        ori = lookup(fi, "PlaneOrientationSequence", "ImageOrientationPatient", lambda it, a: _floats(it, a, 6)) or top_ori
        ps = lookup(fi, "PixelMeasuresSequence", "PixelSpacing", lambda it, a: _floats(it, a, 2)) or top_ps
        thick = lookup(fi, "PixelMeasuresSequence", "SliceThickness", _float) or _float(ds, "SliceThickness")
        te = lookup(fi, "MREchoSequence", "EffectiveEchoTime", _float)
        if te is None:
            te = top_te
        slope = lookup(fi, "PixelValueTransformationSequence", "RescaleSlope", _float)
        icpt = lookup(fi, "PixelValueTransformationSequence", "RescaleIntercept", _float)
        if slope is None:
            slope = _float(ds, "RescaleSlope")
        if icpt is None:
            icpt = _float(ds, "RescaleIntercept")
        cplx = lookup(fi, "MRImageFrameTypeSequence", "ComplexImageComponent", _str) or ""
        if not cplx:
            ftype = lookup(fi, "MRImageFrameTypeSequence", "FrameType",
                           lambda it, a: _strs(it, a) or None)
            cplx = complex_part_from_image_type(ftype or base["image_type"])
        if cplx == "MIXED":
            cplx = ""
        stack = lookup(fi, "FrameContentSequence", "StackID", _str) or ""
        tpi = lookup(fi, "FrameContentSequence", "TemporalPositionIndex", _int)
        if pos is not None and ori is not None:
            have_geometry = True
        frames.append(FrameHeader(
            frame=i,
            echo_time=te,
            echo_number=None,
            complex_part=cplx,
            temporal_index=tpi,
            stack_id=stack,
            position=pos,
            orientation=ori,
            pixel_spacing=ps,
            slice_thickness=thick,
            rescale_slope=1.0 if slope is None else slope,
            rescale_intercept=0.0 if icpt is None else icpt,
            warnings=list(warnings),
            **base,
        ))
    if not have_geometry:
        for f in frames:
            f.warnings.append("multi-frame file without per-frame geometry: frames stacked in file order, "
                              "1 mm slice spacing assumed; positions and distances are not reliable")
    return frames

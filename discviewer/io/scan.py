"""The DICOM scan: walk files, read headers only, group frames into volume candidates.

Owns `scan(path)` (folder, single file or DICOMDIR) and `scan_files(paths)` (exactly the files
given, e.g. a project's source index; one shared loop), the grouping rules that split one series
into several loadable volumes (orientation, echo, magnitude/phase, overlapping acquisitions),
the per-candidate geometry (affine from ImagePositionPatient / ImageOrientationPatient /
PixelSpacing) and the geometry warnings. Core module: no Qt, no VTK.
"""
from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import pydicom

from discviewer.io.header import FrameHeader, UnusableFile, read_headers
from discviewer.io.types import FrameRef, Problem, ScanResult, VolumeCandidate
from discviewer.volume import SeriesInfo, affine_from_dicom

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_MAX_GAP_WARNINGS = 3


def is_nifti(path: str) -> bool:
    return path.lower().endswith(NIFTI_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# file discovery

def _is_dicomdir(path: str) -> bool:
    return os.path.basename(path).upper() == "DICOMDIR"


def _files_from_dicomdir(path: str, problems: list[Problem]) -> list[str]:
    """Files referenced by a DICOMDIR (paths relative to the DICOMDIR's folder)."""
    try:
        ds = pydicom.dcmread(path)
        records = ds.DirectoryRecordSequence
    except Exception as exc:
        problems.append(Problem(path, f"DICOMDIR is unreadable ({str(exc).splitlines()[0][:120]})"))
        return []
    root = os.path.dirname(os.path.abspath(path))
    out: list[str] = []
    for rec in records:
        ref = rec.get("ReferencedFileID")
        if not ref:
            continue
        parts = [ref] if isinstance(ref, str) else list(ref)
        f = os.path.join(root, *[str(p) for p in parts])
        if not os.path.exists(f):
            # media written on case-insensitive systems: try a case-insensitive match
            alt = _case_insensitive(root, [str(p) for p in parts])
            if alt is None:
                problems.append(Problem(f, "listed in the DICOMDIR but missing on disk"))
                continue
            f = alt
        out.append(f)
    return out


def _case_insensitive(root: str, parts: list[str]) -> str | None:
    cur = root
    for p in parts:
        try:
            names = {n.upper(): n for n in os.listdir(cur)}
        except OSError:
            return None
        if p.upper() not in names:
            return None
        cur = os.path.join(cur, names[p.upper()])
    return cur


def list_files(path: str, problems: list[Problem]) -> list[str]:
    """All candidate files under `path` (a folder walked recursively, one file, or a DICOMDIR)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    if os.path.isfile(path):
        if _is_dicomdir(path):
            return _files_from_dicomdir(path, problems)
        return [path]
    files: list[str] = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in sorted(names):
            if n.startswith("."):
                continue
            files.append(os.path.join(root, n))
    return files


# ---------------------------------------------------------------------------------------------

def scan(path, *, progress: Progress | None = None, cancel: Cancel | None = None) -> ScanResult:
    """Scan a folder (recursively), a single file or a DICOMDIR; headers only.

    `progress(done, total)` is called after each file; `cancel()` is polled before each file and
    stops the scan within one file (the result then has `cancelled=True` and what was found so far).
    """
    result = ScanResult()
    files = list_files(os.fspath(path), result.problems)
    return _scan_list(files, result, progress, cancel)


def scan_files(paths: Sequence, *, progress: Progress | None = None, cancel: Cancel | None = None) -> ScanResult:
    """Scan exactly these files (no folder walk, no DICOMDIR expansion); headers only.

    Used to re-open a project from its index of source files. A path that does not exist becomes a
    `Problem` "file is missing", a folder one "is a folder, not a file"; a path listed twice is read
    once. `progress` and `cancel` as in `scan`; the grouping is the same, so the file list of a
    scanned folder gives the same candidates as the folder.
    """
    result = ScanResult()
    files: list[str] = []
    seen: set[str] = set()
    for p in paths:
        p = os.fspath(p)
        if p in seen:
            continue
        seen.add(p)
        if os.path.isfile(p):
            files.append(p)
        elif os.path.isdir(p):
            result.problems.append(Problem(p, "is a folder, not a file"))
        else:
            result.problems.append(Problem(p, "file is missing"))
    return _scan_list(files, result, progress, cancel)


def _scan_list(files: list[str], result: ScanResult, progress: Progress | None,
               cancel: Cancel | None) -> ScanResult:
    """The shared loop of `scan` and `scan_files`: read every file's headers, then group."""
    total = len(files)
    headers: list[FrameHeader] = []
    niftis: list[str] = []
    for i, f in enumerate(files):
        if cancel is not None and cancel():
            result.cancelled = True
            break
        if is_nifti(f):
            niftis.append(f)
        else:
            try:
                headers.extend(read_headers(f))
            except UnusableFile as exc:
                result.problems.append(Problem(f, str(exc)))
        result.files_seen = i + 1
        if progress is not None:
            progress(i + 1, total)
    result.series = group_frames(headers)
    for f in niftis:
        try:
            result.series.append(nifti_candidate(f))
        except UnusableFile as exc:
            result.problems.append(Problem(f, str(exc)))
    return result


def nifti_candidate(path: str) -> VolumeCandidate:
    """A candidate for a NIfTI file (header read by nibabel; pixels at load time)."""
    try:
        import nibabel as nib
        img = nib.load(path)
    except Exception as exc:
        raise UnusableFile(f"NIfTI file is unreadable ({str(exc).splitlines()[0][:120]})") from None
    shape = img.shape
    if len(shape) < 3:
        shape = tuple(shape) + (1,) * (3 - len(shape))
    affine = _LPS_FROM_RAS @ np.asarray(img.affine, dtype=np.float64)
    name = os.path.basename(path)
    info = SeriesInfo(series_description=name, modality="MR", source="nifti", source_path=path,
                      series_uid=os.path.abspath(path))
    warnings = []
    if len(img.shape) > 3 and int(np.prod(img.shape[3:])) > 1:
        warnings.append(f"4-D NIfTI {img.shape}: only the first volume is shown")
    return VolumeCandidate(
        info=info, frames=[FrameRef(path=path, frame=k) for k in range(shape[2])],
        rows=int(shape[1]), columns=int(shape[0]),
        spacing=tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)),
        affine=affine, warnings=warnings, label=f"{name} (NIfTI)", private={"nifti": True},
    )


_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


# ---------------------------------------------------------------------------------------------
# grouping

def _orientation_key(h: FrameHeader):
    if h.orientation is None:
        return None
    return tuple(round(v, 3) + 0.0 for v in h.orientation)


def _echo_key(h: FrameHeader):
    if h.echo_time is not None:
        return ("TE", round(h.echo_time, 3))
    if h.echo_number is not None:
        return ("echo", h.echo_number)
    return None


def _group_key(h: FrameHeader):
    ps = tuple(round(v, 4) for v in h.pixel_spacing) if h.pixel_spacing else None
    return (h.patient_id, h.study_uid, h.series_uid, h.sop_class_uid.startswith("1.2.840.10008.5.1.4.1.1.4.1"),
            _orientation_key(h), h.rows, h.columns, ps, _echo_key(h), h.complex_part, h.stack_id)


def _normal(orientation) -> np.ndarray:
    o = np.asarray(orientation, dtype=np.float64)
    n = np.cross(o[:3], o[3:6])
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else np.array([0.0, 0.0, 1.0])


def group_frames(headers: list[FrameHeader]) -> list[VolumeCandidate]:
    groups: dict[tuple, list[FrameHeader]] = defaultdict(list)
    for h in headers:
        groups[_group_key(h)].append(h)
    # how many echoes / parts each series has, for labels
    echoes_per_series: dict[str, set] = defaultdict(set)
    parts_per_series: dict[str, set] = defaultdict(set)
    for key in groups:
        echoes_per_series[key[2]].add(key[8])
        parts_per_series[key[2]].add(key[9])
    out: list[VolumeCandidate] = []
    for key, hs in groups.items():
        for sub, note in _split_overlapping(hs):
            out.append(_make_candidate(sub, note, multi_echo=len(echoes_per_series[key[2]]) > 1,
                                       multi_part=len(parts_per_series[key[2]]) > 1))
    out.sort(key=lambda c: (c.info.patient_id, c.info.study_date, c.info.study_uid,
                            c.info.series_number if c.info.series_number is not None else 1 << 30,
                            c.info.series_uid, c.info.echo_time or 0.0, c.info.complex_part, c.label))
    return out


def _position_key(h: FrameHeader, normal: np.ndarray) -> float | None:
    if h.position is None:
        return None
    return round(float(np.dot(h.position, normal)), 3)


def _split_overlapping(hs: list[FrameHeader]) -> list[tuple[list[FrameHeader], str]]:
    """Split frames that occupy the same slice position into separate stacks."""
    if hs[0].orientation is None or any(h.position is None for h in hs):
        return [(hs, "")]
    normal = _normal(hs[0].orientation)
    keys = [_position_key(h, normal) for h in hs]
    if len(set(keys)) == len(keys):
        return [(hs, "")]
    for attr, name in (("acquisition_number", "acq"), ("temporal_index", "time")):
        vals = {getattr(h, attr) for h in hs}
        if len(vals) > 1 and None not in vals:
            parts = defaultdict(list)
            for h in hs:
                parts[getattr(h, attr)].append(h)
            if all(len({_position_key(h, normal) for h in p}) == len(p) for p in parts.values()):
                return [(parts[v], f"{name} {v}") for v in sorted(parts)]
    # fall back: file/instance order, each frame to the first stack without its position
    ordered = sorted(hs, key=lambda h: (h.instance_number if h.instance_number is not None else 0, h.path, h.frame))
    stacks: list[tuple[set, list[FrameHeader]]] = []
    for h in ordered:
        k = _position_key(h, normal)
        for seen, lst in stacks:
            if k not in seen:
                seen.add(k)
                lst.append(h)
                break
        else:
            stacks.append(({k}, [h]))
    return [(lst, f"part {i + 1}") for i, (_, lst) in enumerate(stacks)]


def plane_name(orientation) -> str:
    """'sag', 'cor', 'ax' or 'obl' from ImageOrientationPatient (dominant axis of the normal)."""
    if orientation is None:
        return ""
    n = np.abs(_normal(orientation))
    i = int(np.argmax(n))
    if n[i] < 0.8:
        return "obl"
    return ("sag", "cor", "ax")[i]


def _make_candidate(hs: list[FrameHeader], note: str, *, multi_echo: bool, multi_part: bool) -> VolumeCandidate:
    h0 = hs[0]
    warnings: list[str] = []
    for h in hs:
        for w in h.warnings:
            if w not in warnings:
                warnings.append(w)
    geometry_ok = all(h.position is not None and h.orientation is not None and h.pixel_spacing is not None
                      for h in hs)
    if geometry_ok:
        normal = _normal(h0.orientation)
        hs = sorted(hs, key=lambda h: (float(np.dot(h.position, normal)), h.path, h.frame))
        dist = np.array([float(np.dot(h.position, normal)) for h in hs])
        ipp = np.array([h.position for h in hs], dtype=np.float64)
        if len(hs) > 1:
            step = (ipp[-1] - ipp[0]) / (len(hs) - 1)
            warnings.extend(_gap_warnings(hs, dist))
            warnings.extend(_shape_warnings(hs, ipp, step, normal))
        else:
            thick = h0.slice_thickness if h0.slice_thickness and h0.slice_thickness > 0 else 1.0
            step = normal * thick
        affine = affine_from_dicom(ipp[0], h0.orientation, h0.pixel_spacing, step)
        ref_frames = {h.frame_of_reference_uid for h in hs}
        if len(ref_frames) > 1:
            warnings.append("slices belong to different frames of reference")
    else:
        missing = sorted({name for h in hs for name, v in (("ImagePositionPatient", h.position),
                                                           ("ImageOrientationPatient", h.orientation),
                                                           ("PixelSpacing", h.pixel_spacing)) if v is None})
        already = any("without per-frame geometry" in w for w in warnings)
        if not already:
            warnings.append(f"missing geometry ({', '.join(missing)}): slices stacked in instance order, "
                            "1 mm voxels assumed where unknown — distances are in pixels, not mm")
        hs = sorted(hs, key=lambda h: (h.instance_number if h.instance_number is not None else 0, h.path, h.frame))
        ps = h0.pixel_spacing or (1.0, 1.0)
        ori = h0.orientation or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        thick = h0.slice_thickness if h0.slice_thickness and h0.slice_thickness > 0 else 1.0
        pos = h0.position or (0.0, 0.0, 0.0)
        affine = affine_from_dicom(pos, ori, ps, _normal(ori) * thick)
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    is_localizer = any(v.upper() == "LOCALIZER" for v in h0.image_type)
    info = SeriesInfo(
        patient_id=h0.patient_id, patient_name=h0.patient_name, study_uid=h0.study_uid,
        study_date=h0.study_date, study_description=h0.study_description, series_uid=h0.series_uid,
        series_number=h0.series_number, series_description=h0.series_description, modality=h0.modality,
        frame_of_reference_uid=h0.frame_of_reference_uid, sequence_name=h0.sequence_name,
        echo_time=h0.echo_time, echo_number=h0.echo_number, repetition_time=h0.repetition_time,
        inversion_time=h0.inversion_time, scanning_sequence=h0.scanning_sequence,
        field_strength=h0.field_strength, image_type=h0.image_type, complex_part=h0.complex_part,
        source="dicom", source_path=os.path.dirname(h0.path),
    )
    label = _label(info, h0.orientation, note, is_localizer, multi_echo, multi_part)
    return VolumeCandidate(
        info=info,
        frames=[FrameRef(path=h.path, frame=h.frame, position=h.position, instance_number=h.instance_number,
                         sop_uid=h.sop_instance_uid) for h in hs],
        rows=h0.rows, columns=h0.columns, spacing=spacing, affine=affine, orientation=h0.orientation,
        is_localizer=is_localizer, is_multiframe=h0.number_of_frames > 1, warnings=warnings, label=label,
        private={"headers": hs},
    )


def _label(info: SeriesInfo, orientation, note: str, localizer: bool, multi_echo: bool, multi_part: bool) -> str:
    parts = []
    head = " ".join(p for p in (str(info.series_number) if info.series_number is not None else "",
                                info.series_description or info.sequence_name or info.modality) if p)
    parts.append(head or "series")
    plane = plane_name(orientation)
    if plane:
        parts.append(plane)
    if multi_echo and info.echo_time is not None:
        parts.append(f"TE {info.echo_time:g} ms")
    if multi_part and info.complex_part:
        parts.append(info.complex_part.lower())
    if note:
        parts.append(note)
    if localizer:
        parts.append("localizer")
    return " · ".join(parts)


def _name(h: FrameHeader) -> str:
    base = os.path.basename(h.path)
    return f"{base} (frame {h.frame + 1})" if h.number_of_frames > 1 else base


def _gap_warnings(hs: list[FrameHeader], dist: np.ndarray) -> list[str]:
    gaps = np.diff(dist)
    if gaps.size == 0:
        return []
    med = float(np.median(gaps))
    out: list[str] = []
    if med <= 1e-6:
        return ["slices overlap: several images share one position"]
    tol = max(0.01 * med, 0.01)
    for i, g in enumerate(gaps):
        if abs(g - med) <= tol:
            continue
        ratio = g / med
        a, b = _name(hs[i]), _name(hs[i + 1])
        if ratio > 1.5 and abs(ratio - round(ratio)) < 0.1:
            n = int(round(ratio)) - 1
            out.append(f"missing slice: {g:.2f} mm gap between {a} and {b} where slices are {med:.2f} mm apart "
                       f"(about {n} slice{'s' if n > 1 else ''} missing)")
        else:
            out.append(f"uneven slice spacing: {g:.2f} mm between {a} and {b} (other slices are {med:.2f} mm apart)")
        if len(out) >= _MAX_GAP_WARNINGS:
            out.append("further spacing irregularities not listed")
            break
    return out


def _shape_warnings(hs, ipp: np.ndarray, step: np.ndarray, normal: np.ndarray) -> list[str]:
    out = []
    ori = np.array([h.orientation for h in hs], dtype=np.float64)
    if np.max(np.abs(ori - ori[0])) > 1e-4:
        out.append("slices are not parallel (ImageOrientationPatient varies within the stack)")
    norm = np.linalg.norm(step)
    if norm > 0:
        angle = float(np.degrees(np.arccos(min(1.0, abs(float(np.dot(step / norm, normal)))))))
        if angle > 0.05:
            out.append(f"slices are sheared by {angle:.1f}° (gantry tilt or oblique stack): "
                       "geometry follows ImagePositionPatient exactly")
    return out

"""Headless batch export of a workspace (`discviewer export`): screenshots, montages, CSV, DICOM SR.

No Qt, no display: rendering goes through VTK's EGL offscreen window. `open_workspace(path)` loads a
.dvw file the way the app does (store → `Workspace` → verify the source index → scan exactly the
indexed files → `Study` → attach), without asking anything: missing or changed sources are
reported, not fatal. `export_workspace(...)` then writes what was asked, item by item — one item
that fails (a missing series, a level without a disc label) is recorded and the rest goes on; the
`ExportSummary` lists what was written and what failed, and `ok` is False if anything failed.

Screenshots: for every patient × visit × series (localizers skipped), the acquired plane through each
slice that carries annotations of that visit (at most `max_slices_per_series`), else the middle slice;
`scale`× a `base_size` view (default 512×512 → 1536×1536 at 3×), annotations, scale bar, letters,
research-use mark. Named `<patient label>_<visit tag>_<role>[_<plane>]_s<slice>.png` (the plane
only when the role does not end with it) where, de-identified, the patient label is the pseudonym
and the visit tag "day0096"; identifying, the patient ID and the visit label. With `sr`, each screenshot and montage is also written as a DICOM Secondary Capture in the
patient's (remapped) study beside the SR files.
"""
from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from discviewer.render.figure import ViewState, render_view_info, save_image
from discviewer.render.montage import MontageError, build_montage, forbidden_strings, role_label, visit_label

DEFAULT_MONTAGE_ROLES = ("T2 sag", "T2* GRE", "multi-echo GRE")
SKIP_ROLES = ("localizer",)
MONTAGE_CELL_PX = 256  # montage cell side at scale 1


class ExportError(Exception):
    pass


@dataclass
class OpenedWorkspace:
    workspace: object
    missing: list[str] = field(default_factory=list)  # source files not found
    changed: list[str] = field(default_factory=list)  # source files whose content changed
    problems: list[str] = field(default_factory=list)  # scan problems ("path: reason")


def open_workspace(path) -> OpenedWorkspace:
    """Load a workspace file and scan its source files (no Qt; see the module docstring)."""
    from discviewer.io import scan_files
    from discviewer.study import Study
    from discviewer.workspace import store
    from discviewer.workspace.project import Workspace
    from discviewer.workspace.sources import verify_sources

    p = Path(path)
    if not p.exists():
        raise ExportError(f"{p}: no such workspace file")
    result = store.load(p)
    ws = Workspace.from_data(result.data, path=str(p))
    ws.read_only = True  # an export never writes the workspace
    out = OpenedWorkspace(ws)
    if not ws.sources:
        raise ExportError(f"{p}: the workspace lists no source files")
    report = verify_sources(ws.sources)
    out.missing = [str(getattr(f, "path", f)) for f in getattr(report, "missing", [])]
    out.changed = [str(getattr(f, "path", f)) for f in getattr(report, "changed", [])]
    paths = [s.path for s in ws.sources if os.path.exists(s.path)]
    if not paths:
        raise ExportError(f"{p}: none of its {len(ws.sources)} source files exists (relink them in the app)")
    scan = scan_files(paths)
    out.problems = [f"{pr.path}: {pr.reason}" for pr in scan.problems]
    with ws.silently():
        ws.attach_study(Study.from_scan(scan))
    return out


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(text)).strip("_") or "x"


@dataclass
class ExportSummary:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def text(self) -> str:
        lines = [f"{len(self.written)} file(s) written, {len(self.failed)} item(s) failed"]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  FAILED {item}: {why}" for item, why in self.failed]
        return "\n".join(lines)


def _visit_tag(policy, visit) -> str:
    if getattr(policy, "identifying", False):
        return safe_name(visit.label or f"visit{visit.index + 1}")
    return f"day{visit.days:04d}" if visit.days is not None else f"visit{visit.index + 1}"


def _annotated_points(annotations, visit_id: str, volume, plane: str) -> list[np.ndarray]:
    """One point per distinct slice (along the plane normal of `volume`) holding annotations of the visit."""
    from discviewer.render.slice_pipeline import plane_frame

    _, _, _, axes = plane_frame(volume.affine, plane)
    inv = np.linalg.inv(volume.affine)
    seen: dict[int, np.ndarray] = {}
    for a in annotations:
        if a.visit_id not in ("", visit_id) or not a.points or a.kind == "score":
            continue
        p = np.asarray(a.points, float).mean(axis=0)
        k = int(round((inv @ np.append(p, 1.0))[axes[2]]))
        if k not in seen:
            seen[k] = p
    return [seen[k] for k in sorted(seen)]


def screenshots_for(ws, policy, out_dir, *, scale: float = 3.0, base_size=(512, 512), load: Callable | None = None,
                    max_slices_per_series: int = 8, summary: ExportSummary | None = None,
                    sr_dir=None, log=None) -> ExportSummary:
    """Write the screenshots of every patient / visit / series (module docstring)."""
    summary = summary or ExportSummary()
    load = load or _load
    out_dir = Path(out_dir)
    w, h = (int(round(base_size[0] * scale)), int(round(base_size[1] * scale)))
    for pat in ws.study.patients:
        try:
            plabel = policy.patient_label(pat.id)
        except KeyError as exc:
            summary.failed.append((f"patient {len(summary.failed) + 1}", str(exc)))
            continue
        forbidden = () if policy.identifying else tuple(forbidden_strings(pat))
        for v in pat.visits:
            for e in v.series:
                role = str(getattr(e.role, "value", e.role))
                if role in SKIP_ROLES:
                    continue
                item = f"{plabel} {_visit_tag(policy, v)} {role}"
                try:
                    echo = (e.n_echoes - 1) // 2 if e.n_echoes > 1 else 0
                    vol = load(e.candidate(echo))
                    plane = e.plane if e.plane in ("sag", "cor", "ax") else "sag"
                    points = _annotated_points(ws.annotations, v.id, vol, plane)[:max_slices_per_series] or [None]
                    anns = tuple(a for a in ws.annotations if not a.visit_id or a.visit_id == v.id)
                    label = visit_label(policy, pat, v, extra=role_label(e, echo).replace("\n", " "))
                    for pt in points:
                        st = ViewState(plane=plane, point=None if pt is None else tuple(pt), annotations=anns)
                        info = render_view_info(vol, st, w, h, labels={"series": label}, scale=scale,
                                                forbidden=forbidden)
                        plane_tag = "" if role.lower().split()[-1:] == [plane] else f"_{plane}"  # "T2 sag" has it
                        name = (f"{safe_name(plabel)}_{_visit_tag(policy, v)}_{safe_name(role)}{plane_tag}_"
                                f"s{info.slice_index + 1:02d}.png")
                        path = save_image(out_dir / name, info.rgb, metadata={"Title": label}, forbidden=forbidden)
                        summary.written.append(path)
                        if log:
                            log(f"wrote {path}")
                        if sr_dir is not None:
                            _write_sc(ws, pat, v, policy, info.rgb, Path(sr_dir), name, label, summary, log)
                except Exception as exc:  # noqa: BLE001 - one broken item never stops the rest
                    summary.failed.append((item, _reason(exc)))
    return summary


def _write_sc(ws, pat, visit, policy, rgb, sr_dir: Path, name: str, description: str, summary, log) -> None:
    try:
        from discviewer.export.dicom_sr import write_secondary_capture

        label = safe_name(policy.patient_label(pat.id))
        # the folder layout of `write_sr_dir`: <patient label>/<visit label>/
        folder = sr_dir / label / safe_name(visit.label or f"visit {visit.index + 1}")
        path = folder / ("SC_" + Path(name).stem + ".dcm")
        p = write_secondary_capture(path, rgb, ws, pat, visit, policy, description=description,
                                    burned_in_annotation=bool(policy.identifying))
        summary.written.append(Path(p))
        if log:
            log(f"wrote {p}")
    except Exception as exc:  # noqa: BLE001
        summary.failed.append((f"secondary capture {name}", _reason(exc)))


def _reason(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    if os.environ.get("DISCVIEWER_DEBUG"):
        text += "\n" + traceback.format_exc()
    return text


def _load(candidate):
    from discviewer.io import load

    return load(candidate)


def export_workspace(path, *, screenshots=None, montage_levels: Sequence[str] = (), montage_dir=None,
                     montage_roles: Sequence[str] | None = None, csv=None, sr=None, identifying: bool = False,
                     scale: float = 3.0, base_size=(512, 512), log: Callable[[str], None] | None = None,
                     load: Callable | None = None) -> ExportSummary:
    """Everything `discviewer export` does (module docstring); never raises for one failed item."""
    from discviewer.export.pseudonym import policy_for

    summary = ExportSummary()
    try:
        opened = open_workspace(path)
    except Exception as exc:  # noqa: BLE001
        summary.failed.append((str(path), _reason(exc)))
        return summary
    ws = opened.workspace
    for m in opened.missing:
        summary.warnings.append(f"source file missing: {m}")
    for c in opened.changed:
        summary.warnings.append(f"source file changed since it was indexed: {c}")
    policy = policy_for(ws, identifying=identifying, store=False)
    if csv is not None:
        try:
            from discviewer.export.tables import write_long_csv, write_wide_csv

            p = Path(csv)
            summary.written.append(Path(write_long_csv(p, ws, policy)))
            wide = p.with_name(p.stem + "_wide" + (p.suffix or ".csv"))
            summary.written.append(Path(write_wide_csv(wide, ws, policy)))
            if log:
                log(f"wrote {p} and {wide}")
        except Exception as exc:  # noqa: BLE001
            summary.failed.append((f"CSV {csv}", _reason(exc)))
    if sr is not None:
        try:
            from discviewer.export.dicom_sr import write_sr_dir

            paths = write_sr_dir(ws, sr, policy)
            summary.written += [Path(p) for p in paths]
            if log:
                log(f"wrote {len(paths)} SR file(s) to {sr}")
        except Exception as exc:  # noqa: BLE001
            summary.failed.append((f"SR {sr}", _reason(exc)))
    if screenshots is not None:
        screenshots_for(ws, policy, screenshots, scale=scale, base_size=base_size, load=load, summary=summary,
                        sr_dir=sr, log=log)
    if montage_levels:
        out = Path(montage_dir or screenshots or ".")
        for level in montage_levels:
            for pat in ws.study.patients:
                item = f"montage {level}"
                try:
                    plabel = policy.patient_label(pat.id)
                    item = f"montage {plabel} {level}"
                    roles = _montage_roles(pat, montage_roles)
                    res = build_montage(ws, pat, level, roles, policy=policy, scale=scale,
                                        width_per_cell=int(round(MONTAGE_CELL_PX * scale)), load=load)
                    for err in res.errors:
                        summary.warnings.append(f"{item}: {err}")
                    forbidden = () if policy.identifying else tuple(forbidden_strings(pat))
                    name = f"montage_{safe_name(plabel)}_{safe_name(level.replace('/', '-'))}.png"
                    p = save_image(out / name, res.rgb, metadata={"Title": f"{plabel} {level}"}, forbidden=forbidden)
                    summary.written.append(p)
                    if log:
                        log(f"wrote {p}")
                    if sr is not None and pat.baseline is not None:
                        _write_sc(ws, pat, pat.baseline, policy, res.rgb, Path(sr), name, f"montage {level}",
                                  summary, log)
                except Exception as exc:  # noqa: BLE001
                    summary.failed.append((item, _reason(exc)))
    return summary


def _montage_roles(patient, roles) -> list[str]:
    """The roles asked for, or those of DEFAULT_MONTAGE_ROLES present in any visit of the patient."""
    if roles:
        return list(roles)
    present = {str(getattr(e.role, "value", e.role)) for v in patient.visits for e in v.series}
    found = [r for r in DEFAULT_MONTAGE_ROLES if r in present]
    if "T2* GRE" in found and "multi-echo GRE" in found:
        found.remove("multi-echo GRE")
    if not found:
        raise MontageError(f"none of the series roles {', '.join(DEFAULT_MONTAGE_ROLES)} in this patient's visits")
    return found


__all__ = ["open_workspace", "export_workspace", "screenshots_for", "ExportSummary", "OpenedWorkspace", "ExportError"]

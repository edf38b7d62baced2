"""Montages and image sequences across visits: one disc level, every visit, registered — no Qt.

`montage(source, patient, level, roles)` renders one figure: one column per visit, one row per
series role (e.g. "T2 sag" and "multi-echo GRE"), each follow-up resampled into the baseline's
patient space through the level's transform (`TransformRegistry[level]` when the level was
registered on its own, else the whole-volume transform), so the same disc sits at the same place in
every column. Every cell of a row has the same zoom (field of view `fov_mm`, centred on the disc)
and the same window/level — in *relative* units by default (`discviewer.linking.IntensityNormalizer`:
the baseline's window mapped through each visit's own 1st/99th percentiles, so the same tissue
contrast shows despite coil and gain changes; `relative_window=False` applies the same raw numbers).

Labels come from the `ExportPolicy` (`discviewer.export.pseudonym`): de-identified (the default),
columns read "P01 · day 90 (3 m)" — the pseudonym, the day relative to baseline and the default
label computed from that day (a user-typed visit label could hold a date, so it is not used);
identifying (explicit opt-in), "<patient ID> · <study date> · <visit label>". Rows are labelled with
the role (and TE for a multi-echo series). Every drawn text is also checked against the patient's
name, ID and study dates (`forbidden_strings`).

The disc: the baseline-space centre of the level's `disc_label` annotation (on the baseline, or any
visit mapped to baseline through the level's transform), or `centre=` given by the caller. No label
and no centre → `MontageError` (a figure of the wrong level would be worse than none).

Only a slab of three slices around the disc is resampled per cell (fast, whatever the volume size).
`flicker_frames` (baseline ↔ follow-up, registered, same view) and `sweep_frames` (every slice of one
view) return lists of RGB frames; `discviewer.render.figure.write_sequence` writes them as numbered PNGs.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from vtkmodules.vtkRenderingCore import vtkTextActor

from discviewer import RESEARCH_USE_NOTICE
from discviewer.display import auto_window
from discviewer.linking import WHOLE_VOLUME, IntensityNormalizer, TransformSet
from discviewer.reslice import resample_volume
from discviewer.roles import parse_role
from discviewer.volume import Volume
from discviewer.render.figure import FigureRenderer, ViewState, _redact_renderer, drawn_texts
from discviewer.render.offscreen import OffscreenRenderer
from discviewer.render.slice_pipeline import plane_frame

DEFAULT_FOV_MM = 80.0
BACKGROUND = (0.10, 0.10, 0.10)
HEADER_COLOR = (0.95, 0.95, 0.95)
NOTICE_COLOR = (1.0, 0.78, 0.31)


class MontageError(Exception):
    """A montage cannot be made (no disc label, no series of a role, unknown patient …)."""


class MontageCancelled(MontageError):
    """The `progress` callback returned False: the caller cancelled; nothing was returned."""


def _step(progress, done: int, total: int) -> None:
    """Report `done` of `total` to an optional `progress(done, total) -> keep_going` callback."""
    if progress is not None and progress(done, total) is False:
        raise MontageCancelled(f"cancelled after {done} of {total}")


# ---------------------------------------------------------------------------------------- source
@dataclass
class _Source:
    study: object
    transforms: object  # TransformRegistry or TransformSet (visit → baseline)
    annotations: tuple
    policy: object


def _source(source, policy=None) -> _Source:
    """A Workspace (study attached), a Study, or anything with .study/.transforms/.annotations."""
    if isinstance(source, _Source):
        return source if policy is None else _Source(source.study, source.transforms, source.annotations, policy)
    study = getattr(source, "study", None)
    if study is None and hasattr(source, "patients"):
        study = source
    if study is None:
        raise MontageError("the workspace has no study: its source files were not scanned")
    transforms = getattr(source, "transforms", None) or TransformSet()
    annotations = tuple(getattr(source, "annotations", None) or ())
    if policy is None:
        policy = default_policy(source)
    return _Source(study, transforms, annotations, policy)


def default_policy(source):
    """The workspace's de-identifying policy (not stored), or pseudonyms P01… for a bare study."""
    from discviewer.export.pseudonym import ExportPolicy, default_pseudonyms, policy_for

    if hasattr(source, "settings") and hasattr(source, "study"):
        return policy_for(source, store=False)
    ids = [p.id for p in getattr(source, "patients", [])]
    return ExportPolicy(identifying=False, pseudonyms=default_pseudonyms(ids), uid_salt="figure")


def _patient(study, patient):
    if patient is None:
        if not study.patients:
            raise MontageError("the study has no patient")
        return study.patients[0]
    if hasattr(patient, "visits"):
        return patient
    try:
        return study.patient(str(patient))
    except KeyError:
        raise MontageError(f"no patient {patient!r} in the study") from None


def _level_set(transforms, level: str | None) -> tuple[TransformSet, str]:
    if hasattr(transforms, "whole"):
        if level and level in transforms:
            return transforms[level], level
        return transforms.whole, WHOLE_VOLUME
    return transforms, WHOLE_VOLUME


# ---------------------------------------------------------------------------------------- labels
def visit_label(policy, patient, visit, *, extra: str = "") -> str:
    """Column / corner label of a visit under `policy` (see the module docstring)."""
    from discviewer.study import default_visit_label

    if getattr(policy, "identifying", False):
        parts = [str(patient.id)]
        if getattr(patient, "name", ""):
            parts.append(str(patient.name).replace("^", " ").strip())
        if visit.date is not None:
            parts.append(visit.date.isoformat())
        parts.append(visit.label)
    else:
        parts = [policy.pseudonym(patient.id)]
        if visit.days is not None:
            default = default_visit_label(visit.days)
            parts.append(f"day {visit.days}" + (f" ({default})" if default and not default.startswith("day") else ""))
        else:
            parts.append(f"visit {visit.index + 1}")
    if extra:
        parts.append(extra)
    return " · ".join(p for p in parts if p)


def forbidden_strings(patient, visits=None) -> list[str]:
    """Texts a de-identified figure must never draw: the patient's ID and name (DICOM order and
    spoken orders, each part of it) and every study date of its visits in common spellings."""
    from discviewer.deid import date_variants

    out: list[str] = []
    pid = str(getattr(patient, "id", "") or "")
    if pid:
        out.append(pid)
    name = str(getattr(patient, "name", "") or "")
    if name:
        parts = [p.strip() for p in name.split("^") if p.strip()]
        out += [name, " ".join(parts), " ".join(reversed(parts))] + [p for p in parts if len(p) >= 3]
    for v in visits if visits is not None else getattr(patient, "visits", []):
        date = getattr(v, "date", None)
        if date is not None:
            out += date_variants(date)
    return list(dict.fromkeys(o for o in out if o))


def role_label(entry, echo: int) -> str:
    role = str(getattr(entry.role, "value", entry.role))
    if entry.n_echoes > 1:
        te = entry.echo_times[echo]
        if te is not None:
            return f"{role}\nTE {te:g} ms"
    return role


def registration_note(transforms, patient, visits, level: str) -> tuple[str, bool]:
    """(text, all registered) saying how the follow-ups among `visits` are mapped to baseline."""
    ts, set_name = _level_set(transforms, level)
    others = [v for v in visits if v is not patient.baseline]
    done = [v for v in others if ts.is_set(v.id)]
    if not others or len(done) == len(others):
        return f"registered to baseline ({set_name})", bool(others)
    if done:
        return f"only {len(done)} of {len(others)} follow-ups registered ({set_name})", False
    return "NOT registered: each visit in its own scanner coordinates", False


# ---------------------------------------------------------------------------------------- disc and grid
def disc_centre(src: _Source, patient, level: str) -> np.ndarray:
    """Baseline-space centre of `level` from the disc_label annotations (baseline first)."""
    from discviewer.levels import labels_of

    base = patient.baseline
    ts, _ = _level_set(src.transforms, level)
    order = [base] + [v for v in patient.visits if v is not base]
    for v in order:
        labels = labels_of(src.annotations, v.id)
        if level in labels:
            p = np.asarray(labels[level], float)
            return p if v is base else np.asarray(ts.to_baseline(p, v.id), float)
    raise MontageError(f"no disc label for {level} on any visit of this patient: label the discs first "
                       f"(Measure → disc label) or give the centre")


def _entry(visit, role):
    r = parse_role(role)
    found = [e for e in visit.series if e.role == r]
    return found[0] if found else None


def _default_echo(entry) -> int:
    return (entry.n_echoes - 1) // 2 if entry.n_echoes > 1 else 0


def _slab_grid(ref_affine: np.ndarray, ref_shape, plane: str, centre, half: int = 1):
    """(affine, shape) of the slices of a grid within ±`half` of `centre` along the plane normal."""
    _, _, _, axes = plane_frame(ref_affine, plane)
    an = axes[2]
    ijk = np.linalg.inv(ref_affine) @ np.append(np.asarray(centre, float), 1.0)
    dims = (ref_shape[2], ref_shape[1], ref_shape[0])  # column, row, slice counts
    k = int(np.clip(round(ijk[an]), 0, dims[an] - 1))
    k0, k1 = max(0, k - half), min(dims[an] - 1, k + half)
    shift = np.eye(4)
    shift[an, 3] = k0
    new_dims = list(dims)
    new_dims[an] = k1 - k0 + 1
    return ref_affine @ shift, (new_dims[2], new_dims[1], new_dims[0])


@dataclass
class _Cell:
    visit: object
    entry: object
    echo: int
    volume: Volume | None  # resampled into baseline space (slab)
    window: tuple[float, float] | None
    error: str = ""


def _registered_cells(src: _Source, patient, level: str, role, visits, plane: str, centre, *, echo=None,
                      window=None, relative_window: bool = True, load=None) -> list[_Cell]:
    """One registered slab per visit for `role` (None volume with an error where missing)."""
    load = load or _default_load
    ts, _ = _level_set(src.transforms, level)
    base = patient.baseline
    entries = [(v, _entry(v, role)) for v in visits]
    ref = next(((v, e) for v, e in entries if v is base and e is not None), None) or \
        next(((v, e) for v, e in entries if e is not None), None)
    if ref is None:
        raise MontageError(f"no {role} series in the chosen visits")
    rv, re_ = ref
    rech = _default_echo(re_) if echo is None else min(int(echo), re_.n_echoes - 1)
    ref_vol = load(re_.candidate(rech))
    ref_affine = np.asarray(ref_vol.affine, float)
    if rv is not base:  # the reference grid of a visit other than baseline, placed in baseline space
        ref_affine = ts.get(rv.id) @ ref_affine
    slab_affine, slab_shape = _slab_grid(ref_affine, ref_vol.shape, plane, centre)
    ref_norm = IntensityNormalizer.from_array(ref_vol.array)
    ref_window = tuple(window) if window is not None else auto_window(ref_vol.array)
    cells = []
    for v, e in entries:
        if e is None:
            cells.append(_Cell(v, None, 0, None, None, error=f"no {role}"))
            continue
        ech = _default_echo(e) if echo is None else min(int(echo), e.n_echoes - 1)
        try:
            vol = ref_vol if (v is rv and ech == rech) else load(e.candidate(ech))
        except Exception as exc:  # noqa: BLE001 - one missing series never stops the figure
            cells.append(_Cell(v, e, ech, None, None, error=f"cannot load: {exc}"))
            continue
        to_visit = np.eye(4) if v is base else ts.inverse(v.id)  # baseline → visit space
        slab = resample_volume(vol, slab_affine, slab_shape, transform=to_visit, fill=0.0)
        if relative_window and vol is not ref_vol:
            win = ref_norm.transfer(*ref_window, IntensityNormalizer.from_array(vol.array))
        else:
            win = ref_window
        cells.append(_Cell(v, e, ech, slab, (float(win[0]), float(win[1]))))
    return cells


def _default_load(candidate):
    from discviewer.io import load

    return load(candidate)


# ---------------------------------------------------------------------------------------- montage
@dataclass
class MontageResult:
    rgb: np.ndarray
    rows: list[str]  # row labels (roles)
    columns: list[str]  # column labels (visits)
    cells: dict = field(default_factory=dict)  # (row, col) → (row0, row1, col0, col1) picture px
    disc_px: dict = field(default_factory=dict)  # (row, col) → (x, y) picture px of the disc centre
    centre: np.ndarray | None = None  # baseline LPS of the disc
    mm_per_pixel: float = 0.0
    scale_bar_mm: float = 0.0
    scale_bar_px: float = 0.0
    texts: list[str] = field(default_factory=list)
    windows: dict = field(default_factory=dict)  # (row, col) → (centre, width)
    transform_set: str = ""
    registered: bool = False  # every follow-up shown has a transform of its own
    errors: list[str] = field(default_factory=list)


def _add_text(renderer, text: str, x: float, y: float, size: int, *, color=HEADER_COLOR, bold=False,
              h="center", v="center") -> vtkTextActor:
    a = vtkTextActor()
    a.SetInput(text)
    a.SetTextScaleModeToNone()
    a.GetPositionCoordinate().SetCoordinateSystemToViewport()
    a.SetPosition(float(x), float(y))
    p = a.GetTextProperty()
    p.SetFontSize(int(size))
    p.SetBold(bool(bold))
    p.SetColor(*color)
    {"left": p.SetJustificationToLeft, "center": p.SetJustificationToCentered,
     "right": p.SetJustificationToRight}[h]()
    {"bottom": p.SetVerticalJustificationToBottom, "center": p.SetVerticalJustificationToCentered,
     "top": p.SetVerticalJustificationToTop}[v]()
    renderer.AddViewProp(a)
    return a


def _wrap(text: str, width_px: float, font_px: int) -> str:
    """`text` broken at " · " into lines that fit `width_px` (estimated 0.6 em per character)."""
    per_line = max(8, int(width_px / (0.6 * font_px)))
    lines: list[str] = []
    for part in text.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= per_line:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def build_montage(source, patient, level: str, roles: Sequence[str], *, visits=None, width_per_cell: int = 320,
                  height_per_cell: int | None = None, window=None, policy=None, plane: str = "sag",
                  fov_mm: float = DEFAULT_FOV_MM, scale: float = 1.0, centre=None, echoes: dict | None = None,
                  relative_window: bool = True, load: Callable | None = None,
                  title: str | None = None, progress: Callable | None = None) -> MontageResult:
    """`montage` with its layout and what was drawn (`MontageResult`); `title` replaces the level
    name in the top-left corner (e.g. when `centre` is not the level's disc). `progress(done, total)`,
    if given, is called once per cell (total = rows × visits) after the cell is set up; returning
    False raises `MontageCancelled`."""
    src = _source(source, policy)
    pol = src.policy
    pat = _patient(src.study, patient)
    vis = list(pat.visits) if visits is None else [v if hasattr(v, "series") else pat.visit(str(v)) for v in visits]
    if not vis:
        raise MontageError("no visit to show")
    roles = list(roles)
    if not roles:
        raise MontageError("no series role to show")
    c_base = np.asarray(centre, float) if centre is not None else disc_centre(src, pat, level)
    _, set_name = _level_set(src.transforms, level)
    forbidden = () if getattr(pol, "identifying", False) else tuple(forbidden_strings(pat))
    windows = window if isinstance(window, dict) else {r: window for r in roles}

    rows = []
    for role in roles:
        echo = (echoes or {}).get(role)
        rows.append(_registered_cells(src, pat, level, role, vis, plane, c_base, echo=echo, window=windows.get(role),
                                      relative_window=relative_window, load=load))
    s = float(scale)
    cw = int(width_per_cell)
    ch = int(height_per_cell or width_per_cell)
    gap = max(2, int(round(2 * s)))
    lw = int(round(120 * s))
    fs = max(6, int(round(14 * s)))
    col_labels = [visit_label(pol, pat, v) for v in vis]
    wrapped = [_wrap(t, cw - 8 * s, fs) for t in col_labels]
    n_lines = max(t.count("\n") + 1 for t in wrapped)
    hh = int(round(max(40 * s, n_lines * 1.3 * fs + 14 * s)))
    fh = int(round(30 * s))
    nr, nc = len(rows), len(vis)
    W = lw + nc * cw + (nc + 1) * gap
    H = hh + nr * ch + (nr + 1) * gap + fh
    off = OffscreenRenderer(W, H)
    bg = off.renderer
    bg.SetBackground(*BACKGROUND)
    row_labels = []
    figs = {}
    res = MontageResult(rgb=np.zeros((1, 1, 3), np.uint8), rows=[], columns=col_labels, centre=c_base,
                        transform_set=set_name)
    try:
        for c, text in enumerate(wrapped):
            x = lw + gap + c * (cw + gap) + cw / 2.0
            _add_text(bg, text, x, H - hh / 2.0, fs, bold=True)
        _add_text(bg, level if title is None else title, lw / 2.0, H - hh / 2.0, fs + int(round(2 * s)), bold=True)
        for r, cells in enumerate(rows):
            first = next((cell for cell in cells if cell.entry is not None), None)
            label = role_label(first.entry, first.echo) if first is not None else str(roles[r])
            row_labels.append(label)
            y = H - hh - gap - r * (ch + gap) - ch / 2.0
            _add_text(bg, label, lw / 2.0, y, fs, bold=True)
            for c, cell in enumerate(cells):
                x0 = lw + gap + c * (cw + gap)
                y_top = hh + gap + r * (ch + gap)
                res.cells[(r, c)] = (y_top, y_top + ch, x0, x0 + cw)
                if cell.volume is None:
                    _add_text(bg, cell.error or "missing", x0 + cw / 2.0, H - y_top - ch / 2.0, fs,
                              color=(0.7, 0.7, 0.7))
                    res.errors.append(f"{col_labels[c]} / {roles[r]}: {cell.error}")
                    _step(progress, r * nc + c + 1, nr * nc)
                    continue
                vp = (x0 / W, 1.0 - (y_top + ch) / H, (x0 + cw) / W, 1.0 - y_top / H)
                fig = FigureRenderer(cw, ch, scale=s, offscreen=off, renderer=off.add_renderer(vp))
                state = ViewState(plane=plane, point=tuple(c_base), window=cell.window, fov_mm=float(fov_mm),
                                  center=tuple(c_base))
                fig.show(cell.volume, state, labels={"series": ""}, scale_bar=(c == 0), letters=(c == 0),
                         ruo=False, corner_texts=False, forbidden=forbidden)
                figs[(r, c)] = fig
                res.windows[(r, c)] = cell.window
                _step(progress, r * nc + c + 1, nr * nc)
        reg, res.registered = registration_note(src.transforms, pat, vis, level)
        notice = RESEARCH_USE_NOTICE + f"   ·   {reg}; " + \
            ("W/L relative to each visit's 1st–99th percentile" if relative_window else "same raw W/L")
        _add_text(bg, notice, gap + 4 * s, fh / 2.0, max(6, int(round(12 * s))), color=NOTICE_COLOR, h="left")
        _redact_renderer(bg, forbidden)
        rgb = off.render()
        res.rgb = rgb
        res.rows = row_labels
        texts = drawn_texts(bg)
        for (r, c), fig in figs.items():
            info = fig.describe(rgb)
            texts += info.texts
            if c == 0 and r == 0:
                res.mm_per_pixel = info.mm_per_pixel
                res.scale_bar_mm, res.scale_bar_px = info.scale_bar_mm, info.scale_bar_px
            x, y = fig.pipeline.patient_to_display(c_base)
            res.disc_px[(r, c)] = (float(x), float(H - y))
        res.texts = texts
        return res
    finally:
        for fig in figs.values():
            fig.close()
        off.close()


def montage(source, patient, level: str, roles: Sequence[str], *, visits=None, width_per_cell: int = 320,
            window=None, **kw) -> np.ndarray:
    """One disc level across visits as one RGB figure (module docstring): columns = `visits` (default
    all of the patient's), rows = `roles`; `window` (centre, width) in the baseline's units (or a
    dict role → window; default automatic). Other keywords: see `build_montage` (policy, plane,
    fov_mm, scale, centre, echoes, relative_window, load)."""
    return build_montage(source, patient, level, roles, visits=visits, width_per_cell=width_per_cell,
                         window=window, **kw).rgb


# ---------------------------------------------------------------------------------------- sequences
def flicker_frames(source, patient, level: str, role: str, *, visits=None, width: int = 512, height: int = 512,
                   policy=None, plane: str = "sag", fov_mm: float = DEFAULT_FOV_MM, scale: float = 1.0, centre=None,
                   echo: int | None = None, window=None, relative_window: bool = True,
                   load: Callable | None = None, progress: Callable | None = None) -> list[np.ndarray]:
    """Registered frames of one disc for a flicker: baseline and follow-up (default: the patient's
    first and last visit; `visits` = any visits, in the order to show), same zoom, same place, same
    (relative) window, each labelled with its visit. `progress(done, total)`: as in `build_montage`,
    once per frame."""
    src = _source(source, policy)
    pat = _patient(src.study, patient)
    if visits is None:
        if len(pat.visits) < 2:
            raise MontageError("a flicker needs two visits")
        vis = [pat.visits[0], pat.visits[-1]]
    else:
        vis = [v if hasattr(v, "series") else pat.visit(str(v)) for v in visits]
    c_base = np.asarray(centre, float) if centre is not None else disc_centre(src, pat, level)
    cells = _registered_cells(src, pat, level, role, vis, plane, c_base, echo=echo, window=window,
                              relative_window=relative_window, load=load)
    forbidden = () if getattr(src.policy, "identifying", False) else tuple(forbidden_strings(pat))
    _, registered = registration_note(src.transforms, pat, vis, level)
    reg = "registered to baseline" if registered else "NOT registered"
    fig = FigureRenderer(width, height, scale=scale)
    frames = []
    try:
        for cell in cells:
            if cell.volume is None:
                raise MontageError(f"{visit_label(src.policy, pat, cell.visit)}: {cell.error}")
            label = visit_label(src.policy, pat, cell.visit, extra=role_label(cell.entry, cell.echo).replace("\n", " "))
            state = ViewState(plane=plane, point=tuple(c_base), window=cell.window, fov_mm=float(fov_mm),
                              center=tuple(c_base))
            fig.show(cell.volume, state, labels={"series": label, "slice": f"{level} · {reg}"},
                     forbidden=forbidden)
            frames.append(fig.render().rgb)
            _step(progress, len(frames), len(cells))
        return frames
    finally:
        fig.close()


def sweep_frames(volume, state: ViewState, width: int, height: int, *, step: int = 1, start: int | None = None,
                 stop: int | None = None, progress: Callable | None = None, **render_kw) -> list[np.ndarray]:
    """One frame per slice along the plane's normal (every `step`-th), same zoom, pan and window;
    keywords as `render_view` (labels, scale, forbidden …). `progress(done, total)`: as in
    `build_montage`, once per frame."""
    from discviewer.render.figure import sweep_states

    scale = render_kw.pop("scale", 1.0)
    fig = FigureRenderer(width, height, scale=scale)
    try:
        frames = []
        states = list(sweep_states(volume, state, step=step, start=start, stop=stop))
        for st in states:
            fig.show(volume, st, **render_kw)
            frames.append(fig.render().rgb)
            _step(progress, len(frames), len(states))
        return frames
    finally:
        fig.close()


__all__ = ["MontageError", "MontageCancelled", "MontageResult", "build_montage", "montage", "flicker_frames",
           "sweep_frames",
           "visit_label", "forbidden_strings", "disc_centre", "default_policy", "role_label"]

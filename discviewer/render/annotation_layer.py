"""`AnnotationLayer`: draws annotations and measurements (LPS mm) on one slice renderer — pure VTK, no Qt.

What is drawn (kinds as in `discviewer.annotations`): polylines for ruler / angle / polygon /
freehand, sampled ellipses, the two endplate lines and the three chords of disc_height and
vb_height, point markers, a level label ("L4/L5") at each disc_label point, text annotations, a
value label next to every measurement ("12.3 mm", "DHm 9.0 mm", "mean 162 ± 14, 84 mm²"), square
handles at the editable points of the selected item (of all items with `set_show_all_handles`), and
a transient *preview* item while a tool draws.

Which annotations show: those whose stored plane (`extra["plane"]` = origin + normal) is parallel to
the current plane and lies within half a slice spacing of it; for point-like kinds (point, text,
disc_label) and records without a plane, those whose points all do. Shown points are projected onto
the current plane.

Coordinates: annotation points are LPS. `set_world_matrix(m)` gives the renderer's LPS → world map
(`SlicePipeline.world_matrix()`, whose world is the plane frame (u, v, w)); the layer draws at the
current plane's world depth plus `LIFT` mm towards the camera, so the image never hides it (the
pipeline keeps its clipping range ±10 mm around the plane). `sync(pipeline)` sets both from a
`SlicePipeline`. Handles and markers keep a constant size in screen pixels: the geometry is rebuilt
at the start of a render whenever the zoom changed. Labels are vtkTextActors anchored to a world
point with a pixel offset chosen by the label layout.

Label layout (`layout_labels`, pure numpy on boxes in viewport pixels): labels are placed greedily
by priority — the item being drawn (preview / proposal), the selected item, measurements, text and
points, then disc-level labels (ties: the order given) — each at the first of a fixed list of
candidate boxes around its anchor (right, left, above, below and the diagonals, then the same
stepped outward and slid along the side, nearest first) that overlaps no label placed before it, no
annotation's handle point or marker, no other text drawn on the renderer (corner texts, orientation
letters, the notice) and stays inside the viewport — preferring, at the price of a longer way,
places that cover no drawn line or leader and that are not nearer another label's anchor than their
own (a label must not read as another item's); when none is free, the candidate overlapping least. A
label further than a few pixels beyond its default gap gets a thin leader line from the anchor to
the nearest point of its box. Text sizes come from VTK's text renderer (cached). The layout runs at
the start of a render only when the camera, the viewport or the labels changed, so it is
deterministic (same input → same layout) and costs nothing while nothing moves.
`label_layout()` returns what was placed (for tests and figure exports).

    layer = AnnotationLayer(renderer)
    layer.sync(pipeline)
    layer.set_items(annotation_set, selected_id=some_id)
    layer.set_preview("ruler", [p0, cursor], label="12.3 mm")
    ...
    layer.remove()
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from vtkmodules.vtkCommonCore import vtkPoints, vtkUnsignedCharArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkActor2D,
    vtkCoordinate,
    vtkPolyDataMapper,
    vtkPolyDataMapper2D,
    vtkTextActor,
    vtkTextRenderer,
)
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text rendering)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401

from discviewer.display import format_number

LIFT = 2.0  # mm in front of the plane (towards the camera); the crosshair sits at +1, the overlay at +0.05
HANDLE_PX = 8.0  # side of a handle square, screen pixels
SMALL_HANDLE_PX = 5.0  # handles of unselected items (select mode)
MARKER_PX = 7.0  # half size of a point marker cross
LABEL_OFFSET_PX = (10.0, 0.0)  # default label position relative to its anchor (right of the item)
LABEL_GAP_PX = LABEL_OFFSET_PX[0]  # gap between an anchor and the nearest side of its label
LABEL_STEP_PX = (10.0, 7.0)  # how far each outward ring of candidate positions moves (x, y)
LABEL_RINGS = 10  # rings of candidates: a label moves at most about GAP + RINGS × STEP px
LEADER_MIN_PX = 4.0  # a label further than GAP + this from its anchor gets a leader line
OBSTACLE_PAD_PX = 6.0  # half size of the box kept free around each handle point / marker
VIEWPORT_MARGIN_PX = 2.0
SOFT_DETOUR_PX = 40.0  # how much further a label may go to cover none of the drawn lines
AMBIGUOUS_PX = 80.0  # how much further a label may go not to sit nearer another label's anchor than its own
AMBIGUOUS_MARGIN_PX = 6.0  # ... or not clearly (by this much) nearer its own
LINE_SAMPLE_PX = 4.0  # spacing of the samples along drawn lines that labels prefer not to cover
ELLIPSE_SAMPLES = 72
FONT_SIZE = 13
PARALLEL_COS = math.cos(math.radians(3.0))  # planes within 3° count as parallel

COLOR = (1.0, 0.82, 0.18)  # items
SELECTED_COLOR = (0.25, 0.9, 1.0)
PREVIEW_COLOR = (0.35, 1.0, 0.45)
WARNING_COLOR = (1.0, 0.3, 0.3)  # handles of a proposal the detector is not sure about
LABEL_LEVEL_COLOR = (1.0, 0.6, 0.2)  # disc level labels
SHADOW_COLOR = (0.0, 0.0, 0.0)

POINT_KINDS = ("point", "text", "disc_label")
ROI_KINDS = ("ellipse", "polygon", "freehand")
SIX_POINT_KINDS = ("disc_height", "vb_height")
DRAWN_KINDS = ("point", "text", "ruler", "angle", "ellipse", "polygon", "freehand", "disc_height",
               "vb_height", "disc_label", "iron")


# ---------------------------------------------------------------------------- geometry helpers (LPS, numpy)
def ruler_length(points) -> float:
    p = np.asarray(points, float)
    return float(np.linalg.norm(p[1] - p[0]))


def angle_deg(points) -> float:
    """Angle at the middle point of three, degrees in [0, 180]."""
    a, v, b = (np.asarray(p, float) for p in points[:3])
    d1, d2 = a - v, b - v
    n1, n2 = np.linalg.norm(d1), np.linalg.norm(d2)
    if n1 == 0 or n2 == 0:
        return 0.0
    return float(np.degrees(np.arccos(np.clip(d1 @ d2 / (n1 * n2), -1.0, 1.0))))


def ellipse_outline(points, n: int = ELLIPSE_SAMPLES) -> np.ndarray:
    """(n, 3) LPS points of the ellipse with centre, end of axis a, end of axis b."""
    c, pa, pb = (np.asarray(p, float) for p in points[:3])
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return c + np.cos(t)[:, None] * (pa - c) + np.sin(t)[:, None] * (pb - c)


# ---------------------------------------------------------------------------- value labels
def _num(x, digits: int = 1) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(x):
        return "–"
    return f"{x:.{digits}f}"


def value_text(a) -> str:
    """The label drawn next to an annotation (its measured values, its text, or its level)."""
    v = a.values or {}
    u = a.units or {}
    k = a.kind
    if k == "text":
        return a.text
    if k == "disc_label":
        return a.level or a.text
    if k == "point":
        return a.text
    if k == "ruler":
        return f"{_num(v['length_mm'])} mm" if "length_mm" in v else ""
    if k == "angle":
        return f"{_num(v['angle_deg'])}°" if "angle_deg" in v else ""
    if k in ROI_KINDS:
        return roi_text(v, u)
    if k == "disc_height":
        lines = [f"{name} {_num(v[name])} mm" for name in ("DHa", "DHm", "DHp") if name in v]
        if lines and a.level:
            lines[0] = f"{a.level}  {lines[0]}"
        return "\n".join(lines)
    if k == "vb_height":
        lines = [f"{name} {_num(v[name])} mm" for name in ("VBHa", "VBHm", "VBHp") if name in v]
        vert = (a.extra or {}).get("vertebra", "")
        if lines and vert:
            lines[0] = f"{vert}  {lines[0]}"
        return "\n".join(lines)
    if k == "iron":
        parts = []
        if "void_volume_mm3" in v:
            parts.append(f"void {format_number(float(v['void_volume_mm3']))} mm³")
        if "contrast_ratio" in v:
            parts.append(f"CR {_num(v['contrast_ratio'], 2)}")
        return ", ".join(parts)
    return a.text


def _decimals(x: float) -> int:
    """Decimals that show about 3 significant digits (162 → 0, 35.2 → 1, 5.07 → 2)."""
    ax = abs(x)
    if not math.isfinite(ax) or ax >= 100 or ax == 0:
        return 0
    return min(3, 2 - int(math.floor(math.log10(ax))))


def roi_text(values: dict, units: dict | None = None) -> str:
    """"mean 162 ± 14, 84 mm²" (mean ± sd in the stored units to ~3 digits, area)."""
    units = units or {}
    parts = []
    if "mean" in values:
        mean = float(values["mean"])
        d = _decimals(mean)
        s = f"mean {_num(mean, d)}"
        if "sd" in values:
            s += f" ± {_num(values['sd'], d)}"
        unit = units.get("mean", "")
        if unit:
            s += f" {unit}"
        parts.append(s)
    if "area_mm2" in values:
        area = float(values["area_mm2"])
        parts.append(f"{_num(area, 0 if abs(area) >= 10 else 1)} mm²")
    return ", ".join(parts)


# ---------------------------------------------------------------------------- plane membership
def plane_of(a):
    """(origin, unit normal) stored in `a.extra["plane"]`, or None."""
    p = (a.extra or {}).get("plane")
    if not isinstance(p, dict) or "origin" not in p or "normal" not in p:
        return None
    o = np.asarray(p["origin"], float)
    n = np.asarray(p["normal"], float)
    norm = np.linalg.norm(n)
    if o.shape != (3,) or n.shape != (3,) or norm == 0:
        return None
    return o, n / norm


def on_plane(a, origin, normal, spacing: float) -> bool:
    """True when annotation `a` belongs on the plane (origin, normal) shown with slice `spacing` mm."""
    if not a.points:
        return False
    origin = np.asarray(origin, float)
    normal = np.asarray(normal, float)
    normal = normal / np.linalg.norm(normal)
    tol = (spacing / 2.0 if spacing and spacing > 0 else 0.5) + 1e-3
    stored = None if a.kind in POINT_KINDS else plane_of(a)
    if stored is None:
        d = (np.asarray(a.points, float) - origin) @ normal
        return bool(np.all(np.abs(d) <= tol))
    o, n = stored
    if abs(float(n @ normal)) < PARALLEL_COS:
        return False
    return abs(float((o - origin) @ normal)) <= tol


# ---------------------------------------------------------------------------- item geometry
@dataclass
class _Geom:
    """What one item draws, in LPS: polylines (points, closed), markers, handles, a label."""

    lines: list[tuple[np.ndarray, bool]] = field(default_factory=list)
    markers: list[np.ndarray] = field(default_factory=list)
    handles: list[np.ndarray] = field(default_factory=list)
    label: str = ""
    label_anchor: np.ndarray | None = None
    level_label: bool = False


def item_geometry(kind: str, points, *, closed: bool = True, extra: dict | None = None) -> _Geom:
    """Polylines/markers/handles of `kind` through `points` (LPS). `closed` False draws a polygon or
    freehand still being drawn as an open line; partial point lists (tools' previews) are allowed."""
    pts = [np.asarray(p, float) for p in points]
    g = _Geom(handles=list(pts))
    n = len(pts)
    if n == 0:
        return g
    if kind == "iron":
        roi_kind = (extra or {}).get("roi_kind", "polygon")
        sub = item_geometry(roi_kind if roi_kind in ROI_KINDS else "polygon", pts, closed=closed)
        sub.handles = list(pts)
        return sub
    if kind in POINT_KINDS:
        g.markers.append(pts[0])
        g.label_anchor = pts[0]
        g.level_label = kind == "disc_label"
        return g
    if kind == "ruler" or kind == "angle":
        if n >= 2:
            g.lines.append((np.array(pts), False))
        else:
            g.markers.append(pts[0])
        g.label_anchor = pts[1] if kind == "angle" and n >= 2 else pts[-1]
        return g
    if kind == "ellipse":
        if n >= 3:
            g.lines.append((ellipse_outline(pts), True))
        elif n == 2:  # centre and one axis end: a circle
            c, a = pts
            r = a - c
            g.lines.append((ellipse_outline([c, a, c + _perp_in_plane(r, extra)]), True))
        else:
            g.markers.append(pts[0])
        return g
    if kind in ("polygon", "freehand"):
        if n >= 2:
            g.lines.append((np.array(pts), bool(closed) and n >= 3))
        else:
            g.markers.append(pts[0])
        if kind == "freehand":
            g.handles = pts if n <= 12 else []  # a traced outline has too many points to grab each
        return g
    if kind in SIX_POINT_KINDS:
        upper, lower = pts[:3], pts[3:6]
        if len(upper) >= 2:
            g.lines.append((np.array(upper), False))
        if len(lower) >= 2:
            g.lines.append((np.array(lower), False))
        for i in range(len(lower)):
            g.lines.append((np.array([upper[i], lower[i]]), False))
        if n == 1:
            g.markers.append(pts[0])
        return g
    # unknown kind: its points as an open line
    if n >= 2:
        g.lines.append((np.array(pts), False))
    else:
        g.markers.append(pts[0])
    return g


def _perp_in_plane(r, extra) -> np.ndarray:
    p = (extra or {}).get("plane") if extra else None
    n = np.asarray(p["normal"], float) if isinstance(p, dict) and "normal" in p else np.array([1.0, 0.0, 0.0])
    v = np.cross(n, r)
    norm = np.linalg.norm(v)
    return v / norm * np.linalg.norm(r) if norm > 0 else np.zeros(3)


# ---------------------------------------------------------------------------- label layout (viewport px)
MEASUREMENT_KINDS = ("ruler", "angle", "ellipse", "polygon", "freehand", "disc_height", "vb_height", "iron")


def label_priority(kind: str, *, selected: bool = False, preview: bool = False) -> int:
    """Placement order (lower first): preview, selected, measurements, text / points, disc labels."""
    if preview:
        return 0
    if selected:
        return 1
    if kind in MEASUREMENT_KINDS:
        return 2
    if kind == "disc_label":
        return 4
    return 3


@functools.lru_cache(maxsize=512)
def _candidate_offsets(w: float, h: float, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Lower-left corners (relative to the anchor) of the candidate boxes of a w×h label, nearest
    first (ties: right, left, above, below, diagonals; then the same stepped outward), and each one's
    rank: how much further (px, in 2 px steps) it is than the ring-0 places (0 for those)."""
    g = LABEL_GAP_PX * scale
    sx, sy = LABEL_STEP_PX[0] * scale, LABEL_STEP_PX[1] * scale
    gv = 0.6 * g  # vertical gap above / below
    out = []
    for k in range(LABEL_RINGS + 1):
        dx, dy = k * sx, k * sy
        out += [(g + dx, -h / 2), (-g - w - dx, -h / 2), (-w / 2, gv + dy), (-w / 2, -gv - h - dy),
                (g + dx, gv + dy), (g + dx, -gv - h - dy), (-g - w - dx, gv + dy), (-g - w - dx, -gv - h - dy)]
        if k:  # slid along the sides (the anchor stays next to the label's edge while |dy| < h/2)
            out += [(g, -h / 2 + dy), (g, -h / 2 - dy), (-g - w, -h / 2 + dy), (-g - w, -h / 2 - dy),
                    (-w / 2 + dx, gv), (-w / 2 - dx, gv), (-w / 2 + dx, -gv - h), (-w / 2 - dx, -gv - h)]
    c = np.array(out, float)
    # by how much the box is further from the anchor (0, 0) than a ring-0 diagonal, in 2 px steps;
    # equal ones keep the order above (so the ring-0 places come first: right, left, above, below)
    nx = np.clip(0.0, c[:, 0], c[:, 0] + w)
    ny = np.clip(0.0, c[:, 1], c[:, 1] + h)
    d = np.ceil(np.maximum(0.0, np.hypot(nx, ny) - math.hypot(g, gv) - 1e-6) / (2.0 * scale))
    order = np.argsort(d, kind="stable")
    c, r = c[order], d[order] * 2.0 * scale
    c.setflags(write=False)  # cached: shared by every call with this size
    r.setflags(write=False)
    return c, r


def _box_distance(box, x: float, y: float) -> tuple[float, tuple[float, float]]:
    """Distance from (x, y) to the nearest point of box (x0, y0, x1, y1), and that point."""
    nx = min(max(x, box[0]), box[2])
    ny = min(max(y, box[1]), box[3])
    return math.hypot(nx - x, ny - y), (nx, ny)


def layout_labels(labels, obstacles=(), viewport=(0.0, 0.0, 1e9, 1e9), *, soft=(), scale: float = 1.0):
    """Place labels so that none overlaps another, an obstacle, or leaves the viewport.

    labels      sequence of (anchor (x, y), (w, h), priority) in viewport pixels (y up)
    obstacles   boxes (x0, y0, x1, y1) to keep free (handle points, other texts)
    viewport    (x0, y0, x1, y1) the labels must stay inside (less `VIEWPORT_MARGIN_PX`)
    soft        points (x, y) better not covered (samples along the drawn lines): a free candidate
                covering one costs `SOFT_DETOUR_PX` more (as does one whose leader would cross a placed
                label), one nearer another label's anchor than its own `AMBIGUOUS_PX` more; the
                cheapest free candidate is taken
    scale       multiplies every gap and step (figure exports)
    Returns one dict per label, in the given order: "box" (x0, y0, x1, y1), "leader" (None or
    ((ax, ay), (bx, by)) from the anchor to the nearest point of the box), "free" (False when every
    candidate overlapped something: the least-overlapping one was taken). Deterministic."""
    m = VIEWPORT_MARGIN_PX * scale
    vx0, vy0, vx1, vy1 = (viewport[0] + m, viewport[1] + m, viewport[2] - m, viewport[3] - m)
    obs = np.asarray(list(obstacles), float).reshape(-1, 4)
    soft = np.asarray(soft, float).reshape(-1, 2)
    placed = np.zeros((0, 4))
    anchors = np.array([lab[0] for lab in labels], float).reshape(-1, 2)
    result: list[dict | None] = [None] * len(labels)
    order = sorted(range(len(labels)), key=lambda i: (labels[i][2], i))
    gap = LABEL_GAP_PX * scale
    for i in order:
        (ax, ay), (w, h), _ = labels[i]
        offs, rank = _candidate_offsets(float(w), float(h), scale)
        boxes = np.column_stack([ax + offs[:, 0], ay + offs[:, 1], ax + offs[:, 0] + w, ay + offs[:, 1] + h])
        if not (vx0 <= ax <= vx1 and vy0 <= ay <= vy1):  # off screen: the default place, blocking nothing
            result[i] = {"box": tuple(float(v) for v in boxes[0]), "leader": None, "free": True}
            continue
        inside = (boxes[:, 0] >= vx0) & (boxes[:, 2] <= vx1) & (boxes[:, 1] >= vy0) & (boxes[:, 3] <= vy1)
        # only what lies in reach of the candidates matters (keeps this cheap with many labels)
        rx0, ry0 = boxes[:, 0].min(), boxes[:, 1].min()
        rx1, ry1 = boxes[:, 2].max(), boxes[:, 3].max()
        near_p = placed[(placed[:, 0] < rx1) & (placed[:, 2] > rx0) & (placed[:, 1] < ry1) & (placed[:, 3] > ry0)]
        near_o = obs[(obs[:, 0] < rx1) & (obs[:, 2] > rx0) & (obs[:, 1] < ry1) & (obs[:, 3] > ry0)]
        blockers = np.vstack([near_p, near_o])
        ox = np.minimum(boxes[:, None, 2], blockers[None, :, 2]) - np.maximum(boxes[:, None, 0], blockers[None, :, 0])
        oy = np.minimum(boxes[:, None, 3], blockers[None, :, 3]) - np.maximum(boxes[:, None, 1], blockers[None, :, 1])
        free = inside & ~((ox > 0) & (oy > 0)).any(axis=1)
        ok = np.flatnonzero(free)
        if len(ok):
            # among the free places the cheapest: its distance (rank order) plus a detour for covering a
            # drawn line or a leader or drawing its own leader through a placed label, and a larger one
            # for sitting nearer another label's anchor than its own (it would read as that one's)
            b = boxes[ok]
            cost = rank[ok].copy()
            sp = 2.0 * scale
            if len(soft):
                lo, hi = b.min(axis=0) - sp, b.max(axis=0) + sp
                near = soft[(soft[:, 0] >= lo[0]) & (soft[:, 0] <= hi[2])
                            & (soft[:, 1] >= lo[1]) & (soft[:, 1] <= hi[3])]
                covers = ((near[None, :, 0] > b[:, None, 0] - sp) & (near[None, :, 0] < b[:, None, 2] + sp)
                          & (near[None, :, 1] > b[:, None, 1] - sp)
                          & (near[None, :, 1] < b[:, None, 3] + sp)).any(axis=1)
            else:
                covers = np.zeros(len(ok), bool)
            nx = np.clip(ax, b[:, 0], b[:, 2])
            ny = np.clip(ay, b[:, 1], b[:, 3])
            if len(near_p):
                t = np.linspace(0.05, 0.95, 10)
                lx = ax + t[None, :] * (nx - ax)[:, None]
                ly = ay + t[None, :] * (ny - ay)[:, None]
                covers |= ((lx[:, :, None] > near_p[None, None, :, 0]) & (lx[:, :, None] < near_p[None, None, :, 2])
                           & (ly[:, :, None] > near_p[None, None, :, 1])
                           & (ly[:, :, None] < near_p[None, None, :, 3])).any(axis=(1, 2))
            cost += SOFT_DETOUR_PX * scale * covers
            others = anchors[np.hypot(anchors[:, 0] - ax, anchors[:, 1] - ay) > 1.0]
            if len(others):
                d_own = np.hypot(nx - ax, ny - ay)
                ox_ = np.clip(others[None, :, 0], b[:, None, 0], b[:, None, 2]) - others[None, :, 0]
                oy_ = np.clip(others[None, :, 1], b[:, None, 1], b[:, None, 3]) - others[None, :, 1]
                d_other = np.hypot(ox_, oy_).min(axis=1)
                # graded: 0 when clearly nearer its own anchor, up to AMBIGUOUS_PX when on another's
                reach = d_own + AMBIGUOUS_MARGIN_PX * scale
                cost += AMBIGUOUS_PX * scale * np.clip((reach - d_other) / reach, 0.0, 1.0)
            j, is_free = int(ok[np.argmin(cost)]), True  # argmin: the first of equal costs
        else:
            # every candidate hits something: the one overlapping least (labels count fully, points half)
            area = np.clip(ox, 0, None) * np.clip(oy, 0, None)
            wts = np.concatenate([np.ones(len(near_p)), np.full(len(near_o), 0.5)])
            cost = (area * wts).sum(axis=1)
            cand = np.flatnonzero(inside)
            if not len(cand):
                cand = np.arange(len(boxes))
            j, is_free = int(cand[np.argmin(cost[cand])]), False  # argmin: the first of equal costs
        box = tuple(float(v) for v in boxes[j])
        dist, near_pt = _box_distance(box, ax, ay)
        leader = ((float(ax), float(ay)), near_pt) if dist > gap + LEADER_MIN_PX * scale else None
        result[i] = {"box": box, "leader": leader, "free": is_free}
        placed = np.vstack([placed, boxes[j][None, :]])
        if leader is not None:  # later labels had better not cover this leader either
            t = np.linspace(0.0, 1.0, max(2, int(dist / (LINE_SAMPLE_PX * scale)) + 1))[:, None]
            soft = np.vstack([soft, np.array(leader[0]) + t * (np.array(leader[1]) - np.array(leader[0]))])
    return result


# ---------------------------------------------------------------------------- VTK helpers
def _line_actor(width: float, z_shift: float = 0.0) -> tuple[vtkActor, vtkPolyDataMapper]:
    mapper = vtkPolyDataMapper()
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.LightingOff()
    prop.SetLineWidth(width)
    actor.SetPickable(False)
    if z_shift:
        t = vtkTransform()
        t.Translate(0.0, 0.0, z_shift)
        actor.SetUserTransform(t)
    return actor, mapper


class _Builder:
    """Accumulates world points, line/poly cells and per-cell colours for one vtkPolyData."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float, float]] = []
        self.lines: list[list[int]] = []
        self.polys: list[list[int]] = []
        self.line_colors: list[tuple[int, int, int]] = []
        self.poly_colors: list[tuple[int, int, int]] = []

    def _add_points(self, pts) -> list[int]:
        i0 = len(self.points)
        self.points.extend(tuple(float(c) for c in p) for p in pts)
        return list(range(i0, i0 + len(pts)))

    def line(self, pts, color, closed: bool = False) -> None:
        ids = self._add_points(pts)
        if closed and len(ids) > 2:
            ids.append(ids[0])
        self.lines.append(ids)
        self.line_colors.append(tuple(int(round(255 * c)) for c in color))

    def poly(self, pts, color) -> None:
        self.polys.append(self._add_points(pts))
        self.poly_colors.append(tuple(int(round(255 * c)) for c in color))

    def polydata(self) -> vtkPolyData:
        pd = vtkPolyData()
        pts = vtkPoints()
        pts.SetNumberOfPoints(len(self.points))
        for i, p in enumerate(self.points):
            pts.SetPoint(i, *p)
        pd.SetPoints(pts)
        colors = vtkUnsignedCharArray()
        colors.SetNumberOfComponents(3)
        colors.SetName("colors")
        if self.lines:
            ca = vtkCellArray()
            for ids in self.lines:
                ca.InsertNextCell(len(ids))
                for i in ids:
                    ca.InsertCellPoint(i)
            pd.SetLines(ca)
        if self.polys:
            ca = vtkCellArray()
            for ids in self.polys:
                ca.InsertNextCell(len(ids))
                for i in ids:
                    ca.InsertCellPoint(i)
            pd.SetPolys(ca)
        # cell order in vtkPolyData: verts, lines, polys, strips
        for c in self.line_colors + self.poly_colors:
            colors.InsertNextTuple3(*c)
        pd.GetCellData().SetScalars(colors)
        return pd


def _text_actor(font_file: str | None) -> vtkTextActor:
    a = vtkTextActor()
    a.SetTextScaleModeToNone()
    coord = a.GetPositionCoordinate()
    coord.SetCoordinateSystemToViewport()
    ref = vtkCoordinate()
    ref.SetCoordinateSystemToWorld()
    coord.SetReferenceCoordinate(ref)
    coord.SetValue(*LABEL_OFFSET_PX)
    p = a.GetTextProperty()
    p.SetFontSize(FONT_SIZE)
    if font_file:
        p.SetFontFamily(4)  # VTK_FONT_FILE
        p.SetFontFile(font_file)
    p.SetBackgroundColor(0.0, 0.0, 0.0)
    p.SetBackgroundOpacity(0.55)
    p.SetJustificationToLeft()
    p.SetVerticalJustificationToBottom()  # the layout places the box's lower-left corner
    a.SetPickable(False)
    a.SetVisibility(False)
    return a


def _find_font() -> str | None:
    """DejaVu Sans when installed (it has ², ³, ±, °, ⁻¹), else VTK's built-in font."""
    from discviewer.render.overlays import unicode_font_file

    return unicode_font_file()


# ---------------------------------------------------------------------------- the layer
class AnnotationLayer:
    """Annotation items on one slice renderer (see the module docstring)."""

    def __init__(self, renderer) -> None:
        self.renderer = renderer
        self._world = np.eye(4)
        self._plane_origin: np.ndarray | None = None
        self._plane_normal: np.ndarray | None = None
        self._spacing = 1.0
        self._items: list = []  # every annotation given (filtered on build)
        self._visible: list = []  # annotations drawn (with overrides applied)
        self._selected: str | None = None
        self._override: dict[str, tuple] = {}
        self._preview: dict | None = None
        self._all_handles = False
        self._visible_flag = True
        self._mm_per_px = 0.0
        self._font = _find_font()

        self._shadow, self._shadow_mapper = _line_actor(4.0, z_shift=-0.1)
        self._shadow.GetProperty().SetColor(*SHADOW_COLOR)
        self._lines, self._lines_mapper = _line_actor(2.0)
        self._handles, self._handles_mapper = _line_actor(1.0, z_shift=0.1)
        for m in (self._lines_mapper, self._handles_mapper):
            m.SetScalarModeToUseCellData()
            m.SetColorModeToDirectScalars()
            m.ScalarVisibilityOn()
        self._shadow_mapper.ScalarVisibilityOff()
        for a in (self._shadow, self._lines, self._handles):
            a.SetVisibility(False)
            renderer.AddActor(a)
        # leader lines (viewport pixels): a dark backing under a thin line in the label's colour
        self._leader_pd = vtkPolyData()
        self._leaders: list[vtkActor2D] = []
        for width, scalars in ((3.0, False), (1.0, True)):
            mapper = vtkPolyDataMapper2D()
            mapper.SetInputData(self._leader_pd)
            coord = vtkCoordinate()
            coord.SetCoordinateSystemToViewport()
            mapper.SetTransformCoordinate(coord)
            if scalars:
                mapper.SetScalarModeToUseCellData()
                mapper.SetColorModeToDirectScalars()
                mapper.ScalarVisibilityOn()
            else:
                mapper.ScalarVisibilityOff()
            actor = vtkActor2D()
            actor.SetMapper(mapper)
            actor.GetProperty().SetLineWidth(width)
            actor.GetProperty().SetColor(*SHADOW_COLOR)
            actor.GetProperty().SetOpacity(0.7 if not scalars else 1.0)
            actor.SetPickable(False)
            actor.SetVisibility(False)
            renderer.AddViewProp(actor)  # added before any label: drawn under them
            self._leaders.append(actor)
        self._labels: list[vtkTextActor] = []
        self._label_info: list[tuple[str, str]] = []  # (annotation id or "preview", text) of shown labels
        self._label_entries: list[tuple] = []  # (id, text, anchor world, colour, priority) of shown labels
        self._obstacle_world: list[np.ndarray] = []  # world points kept free of labels (handles, markers)
        self._line_world: list[tuple[np.ndarray, bool]] = []  # drawn polylines (world): better not covered
        self._labels_version = 0
        self._layout_key = None
        self._layout: list[dict] = []
        self._size_cache: dict = {}
        self._coord = vtkCoordinate()
        self._coord.SetCoordinateSystemToWorld()
        self._observer = renderer.AddObserver("StartEvent", self._on_render_start, -1.0)
        self._removed = False

    # ------------------------------------------------------------------ configuration
    def set_world_matrix(self, matrix) -> None:
        """The renderer's LPS → world 4×4 (identity: world is LPS)."""
        self._world = np.asarray(matrix, float).copy()

    def set_plane(self, origin, normal, spacing: float | None = None) -> None:
        """The shown plane (a point on it and its normal, LPS) and its slice spacing (mm)."""
        if origin is None or normal is None:
            self._plane_origin = self._plane_normal = None
            return
        n = np.asarray(normal, float)
        self._plane_origin = np.asarray(origin, float).copy()
        self._plane_normal = n / np.linalg.norm(n)
        if spacing is not None:
            self._spacing = float(spacing)

    def sync(self, pipeline) -> None:
        """Take the world matrix and the current plane from a `SlicePipeline` (no volume: nothing shows)."""
        if pipeline.volume is None:
            self.set_plane(None, None)
        else:
            self.set_world_matrix(pipeline.world_matrix())
            self.set_plane(pipeline.plane_origin(), pipeline.frame()[2], pipeline.slice_spacing())
        self._rebuild()

    def plane(self):
        """{"origin": [...], "normal": [...]} of the current plane, or None."""
        if self._plane_origin is None:
            return None
        return {"origin": [float(v) for v in self._plane_origin], "normal": [float(v) for v in self._plane_normal]}

    def set_items(self, annotations: Iterable, plane=None, spacing: float | None = None,
                  selected_id: str | None = ...) -> None:
        """Show `annotations` (those on the plane). `plane`: {"origin", "normal"} dict or (origin, normal);
        None keeps the current plane. `selected_id` (default: unchanged) is highlighted with handles."""
        self._items = [a for a in annotations]
        if plane is not None:
            if isinstance(plane, dict):
                self.set_plane(plane["origin"], plane["normal"], spacing)
            else:
                self.set_plane(plane[0], plane[1], spacing)
        elif spacing is not None:
            self._spacing = float(spacing)
        if selected_id is not ...:
            self._selected = selected_id or None
        self._rebuild()

    def set_selected(self, annotation_id: str | None) -> None:
        if (annotation_id or None) != self._selected:
            self._selected = annotation_id or None
            self._rebuild()

    @property
    def selected_id(self) -> str | None:
        return self._selected

    def set_override(self, annotation_id: str, points) -> None:
        """Draw `annotation_id` through `points` instead of its stored ones (a handle being dragged);
        None ends the override."""
        if points is None:
            self._override.pop(annotation_id, None)
        else:
            self._override[annotation_id] = tuple(tuple(float(c) for c in p) for p in points)
        self._rebuild()

    def clear_overrides(self) -> None:
        if self._override:
            self._override.clear()
            self._rebuild()

    def set_preview(self, kind: str | None, points=(), *, label: str = "", closed: bool = False,
                    extra: dict | None = None, handle_color=None) -> None:
        """A transient item being drawn (green, with handles); kind None or no points clears it.
        `handle_color` (e.g. `WARNING_COLOR` for a proposal the detector is unsure of) colours its handles."""
        if not kind or not points:
            if self._preview is not None:
                self._preview = None
                self._rebuild()
            return
        self._preview = {"kind": kind, "points": [np.asarray(p, float) for p in points], "label": label,
                         "closed": closed, "extra": extra,
                         "handle_color": None if handle_color is None else tuple(float(c) for c in handle_color)}
        self._rebuild()

    def clear_preview(self) -> None:
        self.set_preview(None)

    def set_show_all_handles(self, on: bool) -> None:
        if bool(on) != self._all_handles:
            self._all_handles = bool(on)
            self._rebuild()

    def set_visible(self, visible: bool) -> None:
        self._visible_flag = bool(visible)
        self._rebuild()

    # ------------------------------------------------------------------ queries
    def visible_items(self) -> list:
        """The annotations drawn now (dragged ones with their temporary points)."""
        return list(self._visible)

    def visible_ids(self) -> list[str]:
        return [a.id for a in self._visible]

    def label_texts(self) -> list[str]:
        """Texts of the labels shown now."""
        return [t for _, t in self._label_info]

    def label_for(self, annotation_id: str) -> str:
        return "\n".join(t for i, t in self._label_info if i == annotation_id)

    def preview(self) -> dict | None:
        return None if self._preview is None else dict(self._preview)

    def label_actors(self) -> list[vtkTextActor]:
        return [a for a in self._labels if a.GetVisibility()]

    def label_layout(self) -> list[dict]:
        """Where the labels are now (laid out first if the view or the labels changed): one dict per
        shown label with "id", "text", "anchor" (x, y), "box" (x0, y0, x1, y1) and "leader" (None or
        ((x, y), (x, y))), in viewport pixels with y up; "free" is False when no candidate was free."""
        self._ensure_layout()
        return [dict(d) for d in self._layout]

    # ------------------------------------------------------------------ building
    def _to_world(self, pts) -> np.ndarray:
        """LPS (n, 3) → world (n, 3) projected onto the plane and lifted towards the camera."""
        p = np.atleast_2d(np.asarray(pts, float))
        w = p @ self._world[:3, :3].T + self._world[:3, 3]
        z = float(self._world[:3, :3][2] @ self._plane_origin + self._world[2, 3]) if self._plane_origin is not None \
            else 0.0
        w[:, 2] = z + LIFT
        return w

    def _screen_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """World directions of screen-right and screen-up (the camera looks down world −z for slices)."""
        cam = self.renderer.GetActiveCamera()
        up = np.asarray(cam.GetViewUp(), float)
        dop = np.asarray(cam.GetDirectionOfProjection(), float)
        right = np.cross(dop, up)
        nr = np.linalg.norm(right)
        if nr == 0:
            return np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
        return right / nr, up / np.linalg.norm(up)

    def _current_mm_per_px(self) -> float:
        _, h = self.renderer.GetSize()
        cam = self.renderer.GetActiveCamera()
        return 2.0 * cam.GetParallelScale() / max(h, 1)

    def _rebuild(self) -> None:
        if self._removed:
            return
        self._mm_per_px = self._current_mm_per_px()
        px = self._mm_per_px
        lines, handles = _Builder(), _Builder()
        labels: list[tuple[str, str, np.ndarray, tuple, int]] = []
        self._visible = []
        self._obstacle_world = []
        self._line_world = []
        show = self._visible_flag and self._plane_origin is not None
        if show:
            rx, uy = self._screen_axes()
            for a in self._items:
                if a.kind not in DRAWN_KINDS or not a.points:
                    continue
                if not on_plane(a, self._plane_origin, self._plane_normal, self._spacing):
                    continue
                pts = self._override.get(a.id, a.points)
                if pts is not a.points:
                    import dataclasses

                    a = dataclasses.replace(a, points=pts)
                self._visible.append(a)
                selected = a.id == self._selected
                color = SELECTED_COLOR if selected else COLOR
                g = item_geometry(a.kind, pts, extra=a.extra)
                g.label = value_text(a)
                handle_px = HANDLE_PX if selected else (SMALL_HANDLE_PX if self._all_handles else 0.0)
                self._emit_geom(g, color, handle_px, lines, handles, labels, a.id, px, rx, uy,
                                priority=label_priority(a.kind, selected=selected))
            if self._preview is not None:
                pv = self._preview
                g = item_geometry(pv["kind"], pv["points"], closed=pv["closed"], extra=pv["extra"])
                g.label = pv["label"]
                self._emit_geom(g, PREVIEW_COLOR, HANDLE_PX, lines, handles, labels, "preview", px, rx, uy,
                                priority=label_priority(pv["kind"], preview=True),
                                handle_color=pv.get("handle_color") or PREVIEW_COLOR)
        self._apply(lines, self._lines, self._lines_mapper, shadow=True)
        self._apply(handles, self._handles, self._handles_mapper)
        self._apply_labels(labels)

    def _emit_geom(self, g: _Geom, color, handle_px: float, lines: _Builder, handles: _Builder,
                   labels: list, item_id: str, px: float, rx, uy, *, priority: int = 2,
                   handle_color=None) -> None:
        all_w = []
        for p in list(g.handles) + list(g.markers):  # labels keep clear of every item's points
            self._obstacle_world.append(self._to_world(p)[0])
        for pts, closed in g.lines:
            w = self._to_world(pts)
            lines.line(w, color, closed)
            all_w.append(w)
            self._line_world.append((w, bool(closed)))
        for m in g.markers:
            c = self._to_world(m)[0]
            s = MARKER_PX * px
            gap = 2.0 * px
            for d in (rx, uy):
                lines.line([c - s * d, c - gap * d], color)
                lines.line([c + gap * d, c + s * d], color)
            all_w.append(c[None, :])
        if handle_px > 0:
            h = handle_px * px / 2.0
            dark = (0.0, 0.0, 0.0)
            for p in g.handles:
                c = self._to_world(p)[0]
                corners = [c - h * rx - h * uy, c + h * rx - h * uy, c + h * rx + h * uy, c - h * rx + h * uy]
                handles.poly(corners, handle_color or color)
                handles.line([q + np.array([0, 0, 0.05]) for q in corners], dark, closed=True)
        if g.label:
            if g.label_anchor is not None:
                anchor = self._to_world(g.label_anchor)[0]
            elif all_w:
                w = np.vstack(all_w)
                anchor = w[int(np.argmax(w @ rx))]  # rightmost point: the label goes right of the item
            else:
                return
            label_color = LABEL_LEVEL_COLOR if g.level_label and color == COLOR else color
            labels.append((item_id, g.label, anchor, label_color, priority))

    def _apply(self, b: _Builder, actor, mapper, *, shadow: bool = False) -> None:
        has = bool(b.points)
        if has:
            pd = b.polydata()
            mapper.SetInputData(pd)
            if shadow:
                sh = vtkPolyData()
                sh.SetPoints(pd.GetPoints())
                sh.SetLines(pd.GetLines())
                self._shadow_mapper.SetInputData(sh)
        actor.SetVisibility(has)
        if shadow:
            self._shadow.SetVisibility(has)

    def _apply_labels(self, labels) -> None:
        while len(self._labels) < len(labels):
            a = _text_actor(self._font)
            self.renderer.AddViewProp(a)
            self._labels.append(a)
        self._label_info = []
        fs = self._font_size()
        s = self._px_scale()
        for i, actor in enumerate(self._labels):
            if i < len(labels):
                item_id, text, anchor, color, _ = labels[i]
                if actor.GetInput() != text:
                    actor.SetInput(text)
                tp = actor.GetTextProperty()
                tp.SetColor(*color)
                tp.SetBold(color == LABEL_LEVEL_COLOR)
                if tp.GetFontSize() != fs:
                    tp.SetFontSize(fs)
                actor.GetPositionCoordinate().GetReferenceCoordinate().SetValue(*(float(c) for c in anchor))
                actor.GetPositionCoordinate().SetValue(LABEL_OFFSET_PX[0] * s, LABEL_OFFSET_PX[1] * s)
                actor.SetVisibility(True)
                self._label_info.append((item_id, text))
            elif actor.GetVisibility():
                actor.SetVisibility(False)
        self._label_entries = list(labels)
        self._labels_version += 1
        self._layout_key = None
        self._layout = []
        if not labels:
            for a in self._leaders:
                a.SetVisibility(False)

    # ------------------------------------------------------------------ label layout
    def _px_scale(self) -> float:
        """Multiplier of every pixel size of the labels (figure exports: their scale)."""
        return 1.0

    def _font_size(self) -> int:
        return max(6, int(round(FONT_SIZE * self._px_scale())))

    def _dpi(self) -> int:
        win = self.renderer.GetRenderWindow()
        return int(win.GetDPI()) if win is not None else 72

    def _text_bbox(self, prop, text: str, dpi: int) -> tuple[int, int, int, int]:
        """(x0, x1, y0, y1) of `text` drawn with `prop`, relative to the actor's position (cached)."""
        key = (text, prop.GetFontSize(), bool(prop.GetBold()), prop.GetJustification(),
               prop.GetVerticalJustification(), prop.GetFontFile() or "", dpi)
        bb = self._size_cache.get(key)
        if bb is None:
            out = [0, 0, 0, 0]
            if not text or not vtkTextRenderer.GetInstance().GetBoundingBox(prop, text, out, dpi):
                out = [0, 0, 0, 0]
            bb = tuple(int(v) for v in out)
            if len(self._size_cache) > 2000:
                self._size_cache.clear()
            self._size_cache[key] = bb
        return bb

    def _label_bbox(self, prop, text: str, dpi: int) -> tuple[float, float, float, float]:
        """The box a label takes (relative to its actor's position); see `_text_bbox`."""
        return self._text_bbox(prop, text, dpi)

    def _to_viewport(self, world) -> tuple[float, float]:
        self._coord.SetValue(*(float(c) for c in world))
        x, y = self._coord.GetComputedDoubleViewportValue(self.renderer)
        return float(x), float(y)

    def _viewport_map(self, z: float):
        """(A, b): viewport (x, y) = A @ (world x, world y) + b for world points at depth z (the layer
        draws everything at one depth and slice cameras are parallel, so the map is affine)."""
        o = np.array(self._to_viewport((0.0, 0.0, z)))
        ex = np.array(self._to_viewport((1.0, 0.0, z))) - o
        ey = np.array(self._to_viewport((0.0, 1.0, z))) - o
        return np.column_stack([ex, ey]), o

    def _line_samples(self, A, b, step: float) -> np.ndarray:
        """Points every `step` px (at most) along the drawn polylines (viewport px)."""
        starts, deltas = [], []
        for w, closed in self._line_world:
            p = w[:, :2] @ A.T + b
            if closed and len(p) > 2:
                p = np.vstack([p, p[:1]])
            if len(p) < 2:
                starts.append(p)
                deltas.append(np.zeros_like(p))
                continue
            starts.append(p)  # every vertex (the last one with a zero step)
            deltas.append(np.vstack([np.diff(p, axis=0), np.zeros((1, 2))]))
        if not starts:
            return np.zeros((0, 2))
        a0, d = np.vstack(starts), np.vstack(deltas)
        n = np.maximum(1, np.ceil(np.hypot(d[:, 0], d[:, 1]) / step)).astype(int)
        seg = np.repeat(np.arange(len(n)), n)
        first = np.repeat(np.cumsum(n) - n, n)
        t = (np.arange(len(seg)) - first) / n[seg]
        return a0[seg] + t[:, None] * d[seg]

    def _foreign_texts(self):
        """Visible texts drawn on the renderer by others (corner texts, letters, notice):
        (signature, box) each, in viewport pixels."""
        mine = {id(a) for a in self._labels}
        out = []
        dpi = self._dpi()
        props = self.renderer.GetViewProps()
        props.InitTraversal()
        for _ in range(props.GetNumberOfItems()):
            p = props.GetNextProp()
            if not isinstance(p, vtkTextActor) or id(p) in mine or not p.GetVisibility():
                continue
            text = p.GetInput()
            if not text:
                continue
            x, y = p.GetPositionCoordinate().GetComputedDoubleViewportValue(self.renderer)
            bx0, bx1, by0, by1 = self._text_bbox(p.GetTextProperty(), text, dpi)
            out.append(((text, round(x, 1), round(y, 1)), (x + bx0, y + by0, x + bx1, y + by1)))
        return out

    def _ensure_layout(self) -> None:
        if self._removed:
            return
        cam = self.renderer.GetActiveCamera()
        foreign = self._foreign_texts() if self._label_entries else []
        key = (tuple(round(v, 6) for v in cam.GetPosition()), tuple(round(v, 6) for v in cam.GetFocalPoint()),
               tuple(round(v, 6) for v in cam.GetViewUp()), round(cam.GetParallelScale(), 6),
               tuple(self.renderer.GetSize()), tuple(self.renderer.GetOrigin()), self._dpi(),
               self._labels_version, tuple(f[0] for f in foreign))
        if key == self._layout_key:
            return
        self._layout_key = key
        self._do_layout(foreign)

    def _do_layout(self, foreign) -> None:
        s = self._px_scale()
        dpi = self._dpi()
        w, h = self.renderer.GetSize()
        pad = OBSTACLE_PAD_PX * s
        z = float(self._label_entries[0][2][2]) if self._label_entries else 0.0
        A, b = self._viewport_map(z)
        obstacles = [f[1] for f in foreign]
        if self._obstacle_world:
            pts = np.asarray(self._obstacle_world, float)[:, :2] @ A.T + b
            obstacles += [(x - pad, y - pad, x + pad, y + pad) for x, y in pts]
        entries = []
        bbs = []
        actors = self._labels[:len(self._label_entries)]
        for actor, (item_id, text, anchor, _, prio) in zip(actors, self._label_entries):
            bb = self._label_bbox(actor.GetTextProperty(), text, dpi)
            bbs.append(bb)
            ax, ay = A @ np.asarray(anchor, float)[:2] + b
            entries.append(((float(ax), float(ay)), (bb[1] - bb[0], bb[3] - bb[2]), prio))
        soft = self._line_samples(A, b, LINE_SAMPLE_PX * s)
        placed = layout_labels(entries, obstacles, (0.0, 0.0, float(w), float(h)), soft=soft, scale=s)
        self._layout = []
        leaders = _Builder()
        for actor, entry, bb, res, (item_id, text, _, color, _) in zip(actors, entries, bbs, placed,
                                                                          self._label_entries):
            (ax, ay), _, _ = entry
            x0, y0 = res["box"][0], res["box"][1]
            actor.GetPositionCoordinate().SetValue(x0 - ax - bb[0], y0 - ay - bb[2])
            if res["leader"] is not None:
                (lx0, ly0), (lx1, ly1) = res["leader"]
                leaders.line([(lx0, ly0, 0.0), (lx1, ly1, 0.0)], color)
            self._layout.append({"id": item_id, "text": text, "anchor": (ax, ay), "box": res["box"],
                                 "leader": res["leader"], "free": res["free"]})
        has = bool(leaders.points)
        if has:
            self._leader_pd.DeepCopy(leaders.polydata())
            self._leader_pd.Modified()
        for a in self._leaders:
            a.SetVisibility(has)

    def _on_render_start(self, obj, event) -> None:
        # handles and markers keep their pixel size: rebuild when the zoom (mm per pixel) changed
        px = self._current_mm_per_px()
        if self._mm_per_px <= 0 or abs(px - self._mm_per_px) > 1e-3 * self._mm_per_px:
            self._rebuild()
        self._ensure_layout()

    # ------------------------------------------------------------------ teardown
    def remove(self) -> None:
        """Take every actor out of the renderer and stop observing it (idempotent)."""
        if self._removed:
            return
        self._removed = True
        self.renderer.RemoveObserver(self._observer)
        for a in (self._shadow, self._lines, self._handles):
            self.renderer.RemoveActor(a)
        for a in self._leaders:
            self.renderer.RemoveViewProp(a)
        for a in self._labels:
            self.renderer.RemoveViewProp(a)
        self._labels = []
        self._label_info = []

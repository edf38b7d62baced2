"""Lumbar-spine anatomy of the phantom, in anatomical (= baseline patient, LPS mm) coordinates.

Owns the tissue labels, the per-patient anatomy parameters (sizes, disc heights, which discs are
degenerated), the vertebral chain (vertebral bodies T10–S4 stacked through wedge-shaped discs, which
makes the lordosis), disc landmarks / heights, and `paint()`, which labels sample points with tissues
(plus a continuous nucleus weight for discs). Core module: numpy only.

One geometry, painted and measured: a disc's upper/lower surface is the same concave endplate
surface as the adjacent vertebra's inferior/superior endplate (`Element.surf_top/surf_bottom`), the
vertebral body's outline is exact away from its rounded corners (radius VERTEBRA_CORNER_RADIUS_MM),
and the truth landmarks (`endplate_corners`, `endplate_landmarks`, `disc_landmarks`) are computed
analytically on exactly those painted surfaces.

Conventions: +x patient left, +y posterior, +z superior. The spine's mid-sagittal plane is x = 0.
Each vertebra / disc has a sagittal frame: `u` (unit, anterior), `n` (unit, superior).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .sampling import SampleGrid

# ---- tissue labels ------------------------------------------------------------------------------
AIR, FAT, MUSCLE, VISCERA, VESSEL, CSF, CORD, ROOT, EPIDURAL_FAT, LIGAMENT, CORTEX, POST_MARROW, JOINT = range(13)
VERTEBRA_BASE = 20  # marrow of vertebra k: 20 + k (k indexes VERTEBRAE)
ANNULUS_BASE = 40  # disc k (k indexes DISCS): annulus 40 + k, painted with nucleus weight w
NUCLEUS_BASE = 60  # in voxel label maps: disc k voxels whose centre has w > 0.5

TISSUE_NAMES = {AIR: "air", FAT: "fat", MUSCLE: "muscle", VISCERA: "viscera", VESSEL: "vessel",
                CSF: "csf", CORD: "cord", ROOT: "nerve root", EPIDURAL_FAT: "epidural fat",
                LIGAMENT: "ligament", CORTEX: "cortical bone", POST_MARROW: "posterior element marrow",
                JOINT: "facet joint fluid"}

VERTEBRAE = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1", "S2", "S3", "S4")
DISCS = tuple(f"{a}/{b}" for a, b in zip(VERTEBRAE[:-1], VERTEBRAE[1:]))
DISC_LEVELS = ("T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")  # the levels the truth covers
FUSED = {"S1/S2", "S2/S3", "S3/S4"}

# vertebra: anterior height, posterior height, AP depth, lateral width (mm)
_VERT = {
    "T10": (21.0, 22.0, 29.0, 36.0), "T11": (22.0, 23.0, 30.0, 38.0), "T12": (23.0, 24.5, 32.0, 40.0),
    "L1": (25.0, 26.0, 34.0, 42.0), "L2": (26.5, 27.0, 36.0, 44.0), "L3": (27.0, 27.0, 38.0, 47.0),
    "L4": (27.0, 26.5, 40.0, 49.0), "L5": (27.5, 24.0, 40.0, 50.0), "S1": (25.0, 28.0, 40.0, 46.0),
    "S2": (20.0, 23.0, 31.0, 36.0), "S3": (16.0, 18.0, 25.0, 28.0), "S4": (12.0, 13.0, 19.0, 22.0),
}
# disc: anterior height, posterior height (mm), healthy
_DISC = {
    "T10/T11": (5.0, 4.5), "T11/T12": (5.5, 4.5), "T12/L1": (7.0, 5.5), "L1/L2": (8.5, 6.0),
    "L2/L3": (10.0, 6.5), "L3/L4": (11.5, 7.0), "L4/L5": (13.5, 7.5), "L5/S1": (14.5, 6.5),
    "S1/S2": (1.5, 1.5), "S2/S3": (1.2, 1.2), "S3/S4": (1.0, 1.0),
}
# bony canal semi-axes (AP, lateral) at each vertebra (mm)
_CANAL = {"T10": (8.0, 8.5), "T11": (8.0, 9.0), "T12": (8.5, 10.0), "L1": (8.5, 11.0), "L2": (8.5, 11.5),
          "L3": (8.5, 12.0), "L4": (8.5, 12.5), "L5": (8.5, 13.0), "S1": (7.0, 13.0), "S2": (5.0, 10.0),
          "S3": (4.0, 7.0), "S4": (3.0, 5.0)}

ENDPLATE_CONCAVITY_MM = 0.8  # each endplate bulges this far into its vertebral body at the centre
CORTEX_MM = 1.0
LANDMARK_INSET_MM = 2.0  # anterior/posterior landmarks sit this far inside the endplate corners
VERTEBRA_CORNER_RADIUS_MM = 1.5  # the body's outline is rounded with this radius where endplate meets wall


@dataclass
class PatientAnatomy:
    """Everything about one patient's anatomy that does not change between visits (plus rates)."""

    scale: float
    disc_scale: dict[str, float]  # per disc level height factor (includes degeneration)
    degenerated: tuple[str, ...]
    injected: tuple[str, ...]
    height_loss_mm_per_year: dict[str, float]  # for degenerated discs
    phi0_deg: float  # tilt of the T10 superior endplate (positive: anterior end down)
    l3_centre: tuple[float, float]  # (y, z) of the L3 body centre at baseline
    fat_mm: float
    back_mm: float  # canal centre → posterior skin
    nucleus_t2_ms: dict[str, float]
    pfirrmann: dict[str, int]


def make_patient_anatomy(rng: np.random.Generator, *, injected: tuple[str, ...],
                         degenerated: tuple[str, ...]) -> PatientAnatomy:
    disc_scale, loss, t2, grade = {}, {}, {}, {}
    for d in DISCS:
        f = float(rng.uniform(0.95, 1.05))
        if d in degenerated:
            # lower, but the posterior height stays ≥ 4.9 mm (≥ 4.3 mm after 2 years of loss)
            f = max(f * float(rng.uniform(0.62, 0.74)), 4.9 / (_DISC[d][1] * 0.94))
            loss[d] = float(rng.uniform(0.1, 0.3))
            t2[d] = float(rng.uniform(58.0, 72.0))
            grade[d] = 4 if f < 0.68 else 3
        else:
            t2[d] = float(rng.uniform(140.0, 170.0)) - (10.0 if d in ("L4/L5", "L5/S1") else 0.0)
            grade[d] = 2 if d in ("L3/L4", "L4/L5", "L5/S1") else 1
        disc_scale[d] = f
    return PatientAnatomy(
        scale=float(rng.uniform(0.94, 1.06)), disc_scale=disc_scale, degenerated=tuple(degenerated),
        injected=tuple(injected), height_loss_mm_per_year=loss, phi0_deg=float(rng.uniform(-12.0, -8.0)),
        l3_centre=(float(rng.uniform(-18.0, -10.0)), float(rng.uniform(8.0, 20.0))),
        fat_mm=float(rng.uniform(10.0, 22.0)), back_mm=float(rng.uniform(66.0, 78.0)),
        nucleus_t2_ms=t2, pfirrmann=grade)


# ---- the vertebral chain ------------------------------------------------------------------------
def _frame(phi: float):
    """(u, n) for a sagittal tilt phi (radians): u anterior, n superior, both with x = 0."""
    u = np.array([0.0, -np.cos(phi), -np.sin(phi)])
    n = np.array([0.0, -np.sin(phi), np.cos(phi)])
    return u, n


@dataclass
class Plane:
    """An endplate: centre `c`, anterior unit `u`, superior unit `n`, half depth/width of its body."""

    c: np.ndarray
    u: np.ndarray
    n: np.ndarray
    half_d: float
    half_w: float


@dataclass
class Element:
    """A vertebral body or a disc, between its top and bottom plane."""

    name: str
    kind: str  # "vertebra" | "disc"
    top: Plane
    bottom: Plane
    depth: float
    width: float
    index: int  # index in VERTEBRAE or DISCS
    # the planes whose concave endplate surfaces bound the element above / below: a vertebra's own
    # planes; for a disc, the inferior plane of the vertebra above and the superior plane of the one
    # below (so the disc and the bone share one surface — no gap, no overlap)
    surf_top: Plane | None = None
    surf_bottom: Plane | None = None

    @property
    def mid(self):
        c = (self.top.c + self.bottom.c) / 2
        u = self.top.u + self.bottom.u
        u /= np.linalg.norm(u)
        n = np.array([0.0, -u[2], u[1]])  # ⟂ u in the sagittal plane
        if n[2] < 0:
            n = -n
        return c, u, n

    @property
    def height(self) -> float:
        return float(np.dot(self.top.c - self.bottom.c, self.mid[2]))


@dataclass
class Spine:
    """The chain for one visit (anatomical coordinates)."""

    elements: list[Element]
    vertebrae: dict[str, Element] = field(default_factory=dict)
    discs: dict[str, Element] = field(default_factory=dict)
    canal_pts: np.ndarray | None = None  # (k, 3) canal centre line, one point per endplate plane
    canal_radii: np.ndarray | None = None  # (k, 2) bony canal semi-axes (AP, lateral) at those points
    ant_pts: np.ndarray | None = None  # (k, 3) anterior vertebral line (anterior endplate corners)


def disc_heights_at(anat: PatientAnatomy, days: float) -> dict[str, tuple[float, float]]:
    """Anterior / posterior disc heights (mm) for every disc at `days` after baseline."""
    out = {}
    for d in DISCS:
        ha, hp = _DISC[d]
        f = anat.disc_scale[d] * (anat.scale if d not in FUSED else 1.0)
        ha, hp = ha * f, hp * f
        if d in anat.height_loss_mm_per_year:
            # uniform loss keeps the wedge angle, so the spine above only settles (translates)
            loss = min(anat.height_loss_mm_per_year[d] * max(days, 0.0) / 365.25, 0.3 * hp)
            ha, hp = ha - loss, hp - loss
        out[d] = (ha, hp)
    return out


def _chain(anat: PatientAnatomy, heights) -> list[Element]:
    s = anat.scale
    phi = np.deg2rad(anat.phi0_deg)
    u, n = _frame(phi)
    c = np.zeros(3)
    elements: list[Element] = []
    names = []
    for i, v in enumerate(VERTEBRAE):
        names.append(("vertebra", v, i))
        if i < len(DISCS):
            names.append(("disc", DISCS[i], i))
    prev_post = None  # posterior corner of previous bottom plane
    for kind, name, idx in names:
        if kind == "vertebra":
            ha, hp, d, w = (x * s for x in _VERT[name])
        else:
            ha, hp = heights[name]
            va, vb = _VERT[VERTEBRAE[idx]], _VERT[VERTEBRAE[idx + 1]]
            d = s * (va[2] + vb[2]) / 2
            w = s * (va[3] + vb[3]) / 2
        if prev_post is not None:
            c = prev_post + u * d / 2  # posterior walls flush
        top = Plane(c.copy(), u.copy(), n.copy(), d / 2, w / 2)
        a_top = c + u * d / 2
        p_top = c - u * d / 2
        a_bot = a_top - n * ha
        p_bot = p_top - n * hp
        ub = a_bot - p_bot
        ub /= np.linalg.norm(ub)
        nb = np.array([0.0, ub[2], -ub[1]])
        if np.dot(nb, n) < 0:
            nb = -nb
        cb = (a_bot + p_bot) / 2
        bottom = Plane(cb, ub, nb, d / 2, w / 2)
        elements.append(Element(name, kind, top, bottom, d, w, idx))
        u, n, prev_post = ub, nb, p_bot
    return elements


def build_spine(anat: PatientAnatomy, days: float) -> Spine:
    """The chain at `days` after baseline, placed so the S1 superior endplate stays where it is at
    baseline (disc height loss moves the spine above it down a little)."""
    base = _chain(anat, disc_heights_at(anat, 0.0))
    l3 = next(e for e in base if e.name == "L3")
    target = np.array([0.0, anat.l3_centre[0], anat.l3_centre[1]])
    shift0 = target - (l3.top.c + l3.bottom.c) / 2
    s1_anchor = next(e for e in base if e.name == "S1").top.c + shift0
    elements = base if days == 0 else _chain(anat, disc_heights_at(anat, days))
    shift = s1_anchor - next(e for e in elements if e.name == "S1").top.c
    for e in elements:
        for p in (e.top, e.bottom):
            p.c = p.c + shift
    sp = Spine(elements)
    sp.vertebrae = {e.name: e for e in elements if e.kind == "vertebra"}
    sp.discs = {e.name: e for e in elements if e.kind == "disc"}
    for e in elements:
        if e.kind == "vertebra":
            e.surf_top, e.surf_bottom = e.top, e.bottom
        else:
            e.surf_top = sp.vertebrae[VERTEBRAE[e.index]].bottom
            e.surf_bottom = sp.vertebrae[VERTEBRAE[e.index + 1]].top
    # canal centre line and anterior line: one point per plane (tops and the last bottom)
    pts, radii, ant = [], [], []
    for e in elements:
        v = e.name if e.kind == "vertebra" else VERTEBRAE[e.index]
        nxt = v if e.kind == "vertebra" else VERTEBRAE[e.index + 1]
        for p, vname in ((e.top, v), (e.bottom, nxt)):
            rap, rl = _CANAL[vname]
            rap, rl = rap * anat.scale, rl * anat.scale
            cc = p.c - p.u * (e.depth / 2 + rap)
            pts.append(cc)
            radii.append((rap, rl))
            ant.append(p.c + p.u * e.depth / 2)
    sp.canal_pts = np.array(pts)
    sp.canal_radii = np.array(radii)
    sp.ant_pts = np.array(ant)
    return sp


# ---- endplate surfaces, landmarks, disc heights -------------------------------------------------
def _q(a, x, half_d, half_w):
    """Endplate concavity profile: 1 at the centre, 0 at and beyond the rim."""
    return np.maximum(0.0, 1.0 - (a / half_d) ** 2 - (x / half_w) ** 2)


def endplate_point(plane: Plane, a: float, lower_surface_of_disc: bool) -> np.ndarray:
    """Point of the endplate surface at offset `a` (mm, along plane.u) in the mid-sagittal plane x = 0.

    The inferior endplate of the vertebra above a disc (the disc's upper surface) bulges up by
    κ·q; the superior endplate of the vertebra below (the disc's lower surface) bulges down. These
    are exactly the surfaces `_paint_body` and `_paint_disc` paint (same plane, same q)."""
    k = ENDPLATE_CONCAVITY_MM * float(_q(a, 0.0, plane.half_d, plane.half_w))
    sign = -1.0 if lower_surface_of_disc else 1.0
    return plane.c + plane.u * a + plane.n * sign * k


def _endplate_tangent(plane: Plane, a: float, lower_surface_of_disc: bool) -> np.ndarray:
    """d/da of `endplate_point`."""
    dq = -2.0 * a / plane.half_d ** 2 if float(_q(a, 0.0, plane.half_d, plane.half_w)) > 0 else 0.0
    sign = -1.0 if lower_surface_of_disc else 1.0
    return plane.u + plane.n * sign * ENDPLATE_CONCAVITY_MM * dq


def endplate_corners(v: Element, which: str) -> dict[str, np.ndarray]:
    """The anterior and posterior corners of a vertebral endplate (`which` "superior" | "inferior") in the
    mid-sagittal plane: where the endplate surface meets the outer surface of the body's wall, i.e. the
    corners of the body outline `_paint_body` paints before its corners are rounded (radius
    VERTEBRA_CORNER_RADIUS_MM). The wall is |a_mid| = depth/2 in the body's mid frame (x = 0).
    Returns {"anterior": point, "posterior": point, "a_anterior": a, "a_posterior": a} (a along plane.u)."""
    plane, lower = (v.top, True) if which == "superior" else (v.bottom, False)
    c_m, u_m, _ = v.mid
    out = {}
    for pos, sgn in (("anterior", 1.0), ("posterior", -1.0)):
        target = sgn * v.depth / 2
        a = target
        for _ in range(50):
            f = float(np.dot(endplate_point(plane, a, lower) - c_m, u_m)) - target
            da = f / float(np.dot(_endplate_tangent(plane, a, lower), u_m))
            a -= da
            if abs(da) < 1e-12:
                break
        out[pos] = endplate_point(plane, a, lower)
        out["a_" + pos] = a
    return out


def endplate_landmarks(v: Element, which: str, inset_mm: float = LANDMARK_INSET_MM) -> dict[str, np.ndarray]:
    """Anterior / middle / posterior landmarks of one vertebral endplate (mid-sagittal plane, anatomical
    coordinates), computed on the painted surface: the chord joins the endplate's posterior and anterior
    corners (`endplate_corners`); the anterior/posterior points are the surface points whose projections on
    the chord lie `inset_mm` inside the corners, the middle point the one projecting on the chord's
    midpoint. Also returns the corners ("corner_anterior", "corner_posterior")."""
    plane, lower = (v.top, True) if which == "superior" else (v.bottom, False)
    cr = endplate_corners(v, which)
    p0, p1 = cr["posterior"], cr["anterior"]
    chord = float(np.linalg.norm(p1 - p0))
    e = (p1 - p0) / chord
    out = {"corner_anterior": p1, "corner_posterior": p0}
    for pos, dist, a in (("anterior", chord - inset_mm, cr["a_anterior"] - inset_mm),
                         ("middle", chord / 2, (cr["a_anterior"] + cr["a_posterior"]) / 2),
                         ("posterior", inset_mm, cr["a_posterior"] + inset_mm)):
        for _ in range(50):
            f = float(np.dot(endplate_point(plane, a, lower) - p0, e)) - dist
            da = f / float(np.dot(_endplate_tangent(plane, a, lower), e))
            a -= da
            if abs(da) < 1e-12:
                break
        out[pos] = endplate_point(plane, a, lower)
    return out


def disc_landmarks(spine: Spine, level: str, *, with_corners: bool = False) -> dict[str, np.ndarray]:
    """The 6 landmarks of a disc (anatomical coordinates): upper endplate (the inferior endplate of the
    vertebra above) and lower endplate (the superior endplate of the vertebra below) × anterior / middle /
    posterior (`endplate_landmarks`). With `with_corners`, also "upper_corner_anterior" … ."""
    e = spine.discs[level]
    up = endplate_landmarks(spine.vertebrae[VERTEBRAE[e.index]], "inferior")
    lo = endplate_landmarks(spine.vertebrae[VERTEBRAE[e.index + 1]], "superior")
    out = {}
    for which, d in (("upper", up), ("lower", lo)):
        for k in ("anterior", "middle", "posterior") + (("corner_anterior", "corner_posterior")
                                                         if with_corners else ()):
            out[f"{which}_{k}"] = d[k]
    return out


def vertebra_landmarks(spine: Spine, name: str) -> dict[str, np.ndarray]:
    """The 6 landmarks of a vertebral body: its superior ("upper") and inferior ("lower") endplate ×
    anterior/middle/posterior (`endplate_landmarks`, anatomical coordinates)."""
    v = spine.vertebrae[name]
    out = {}
    for which, side in (("upper", "superior"), ("lower", "inferior")):
        d = endplate_landmarks(v, side)
        for k in ("anterior", "middle", "posterior"):
            out[f"{which}_{k}"] = d[k]
    return out


def disc_heights_from_landmarks(lm: dict[str, np.ndarray]) -> dict[str, float]:
    return {f"DH{k[0]}": float(np.linalg.norm(lm[f"upper_{k}"] - lm[f"lower_{k}"]))
            for k in ("anterior", "middle", "posterior")}


def disc_centre(spine: Spine, level: str) -> np.ndarray:
    lm = disc_landmarks(spine, level)
    return (lm["upper_middle"] + lm["lower_middle"]) / 2


def disc_surface_distances(e: Element, p) -> tuple[float, float]:
    """(distance below the upper surface, distance above the lower surface) of point `p` of disc `e`,
    measured along each surface plane's normal (mm, both > 0 inside the disc)."""
    p = np.asarray(p, float)
    ut, lb = e.surf_top, e.surf_bottom
    at, ht = float(np.dot(p - ut.c, ut.u)), float(np.dot(p - ut.c, ut.n))
    ab, hb = float(np.dot(p - lb.c, lb.u)), float(np.dot(p - lb.c, lb.n))
    up = ENDPLATE_CONCAVITY_MM * float(_q(at, p[0], ut.half_d, ut.half_w)) - ht
    lo = hb + ENDPLATE_CONCAVITY_MM * float(_q(ab, p[0], lb.half_d, lb.half_w))
    return up, lo


# ---- nucleus shape ------------------------------------------------------------------------------
def nucleus_params(anat: PatientAnatomy, level: str, depth: float, width: float):
    """(a0, Na, Nt, Nx): nucleus centre offset (mm, anterior +) and semi-axes (mm, fraction, mm)."""
    if level in anat.degenerated:
        return -0.08 * depth, 0.27 * depth, 0.30, 0.26 * width
    return -0.06 * depth, 0.37 * depth, 0.48, 0.36 * width


# ---- painting -----------------------------------------------------------------------------------
def _rounded_intersection(r, *terms):
    """Intersection of the regions {d_i < 0} with its edges rounded by radius r: exactly max(d_i)
    wherever at most one term is within r of zero (so each face is exact up to r from an edge), a
    circular arc of radius r where two meet (the standard rounded-box distance)."""
    m = terms[0]
    for t in terms[1:]:
        m = np.maximum(m, t)
    s = np.zeros_like(m)
    for t in terms:
        s += np.maximum(t + r, 0.0) ** 2
    return np.minimum(m, -r) + np.sqrt(s)


def _interp_line(z, pts_z, vals):
    order = np.argsort(pts_z)
    return np.interp(z, pts_z[order], vals[order])


def _plane_coords(plane: Plane, Y, Z):
    dy, dz = Y - plane.c[1], Z - plane.c[2]
    return dy * plane.u[1] + dz * plane.u[2], dy * plane.n[1] + dz * plane.n[2]


def paint(grid: SampleGrid, anat: PatientAnatomy, spine: Spine) -> None:
    """Label every sample point of `grid` (painter's order: later structures win)."""
    _paint_soft_tissue(grid, anat, spine)
    _paint_canal(grid, anat, spine)
    _paint_posterior_elements(grid, anat, spine)
    for e in spine.elements:
        if e.kind == "vertebra":
            _paint_body(grid, e)
    for e in spine.elements:
        if e.kind == "disc":
            _paint_disc(grid, anat, e)


def _paint_soft_tissue(grid, anat, spine) -> None:
    sl, X, Y, Z = grid.all()
    cz, cy = spine.canal_pts[:, 2], spine.canal_pts[:, 1]
    yc = _interp_line(Z, cz, cy)
    ya = _interp_line(Z, spine.ant_pts[:, 2], spine.ant_pts[:, 1])
    y_skin = yc + anat.back_mm + 4.0 * np.sin(Z / 37.0)
    lab = np.full(X.shape, AIR, dtype=np.uint8)
    body = (Y < y_skin) & (Y > -185.0)
    lab[body] = FAT
    lab[body & (Y < y_skin - anat.fat_mm) & (Y > ya - 4.0)] = MUSCLE
    visc = body & (Y < ya - 9.0) & (Y > -165.0)
    lab[visc] = VISCERA
    # midline interspinous / supraspinous ligament band between the canal and the fat
    lab[body & (np.abs(X) < 1.5) & (Y > yc + 12.0) & (Y < np.minimum(yc + 40.0, y_skin - anat.fat_mm))] = LIGAMENT
    # aorta (left) down to L4, IVC (right) down to L5
    for xc, zlow in ((10.0, spine.vertebrae["L4"].bottom.c[2] + 8), (-20.0, spine.vertebrae["L5"].bottom.c[2])):
        vessel = ((X - xc) ** 2 + (Y - (ya - 20.0)) ** 2 < 10.0**2) & (Z > zlow)
        lab[vessel] = VESSEL
    grid.labels[sl] = lab
    grid.w[sl] = 0.0


def _canal_coords(spine, X, Y, Z):
    """(ap, lateral) coordinates in the canal frame (ap > 0 anterior), and interpolated radii."""
    p = spine.canal_pts
    yc = _interp_line(Z, p[:, 2], p[:, 1])
    # local tilt of the canal line
    dz = np.gradient(p[:, 2])
    dy = np.gradient(p[:, 1])
    tilt = np.arctan2(dy, -dz)  # 0 for a vertical canal
    t = _interp_line(Z, p[:, 2], tilt)
    ap = (yc - Y) * np.cos(t)
    rap = _interp_line(Z, p[:, 2], spine.canal_radii[:, 0])
    rl = _interp_line(Z, p[:, 2], spine.canal_radii[:, 1])
    return ap, X, rap, rl


def _paint_canal(grid, anat, spine) -> None:
    p = spine.canal_pts
    zs = p[:, 2]
    margin = 16.0
    lo = [-20.0, p[:, 1].min() - margin, zs.min() - 5]
    hi = [20.0, p[:, 1].max() + margin, zs.max() + 5]
    # paint in z bands so the culling stays tight around the curved canal
    edges = np.linspace(zs.min() - 5, zs.max() + 5, 13)
    s2_z = spine.vertebrae["S2"].mid[0][2]
    conus_z = spine.discs["L1/L2"].mid[0][2]
    top_z = zs.max()
    for z0, z1 in zip(edges[:-1], edges[1:]):
        band = (p[:, 2] >= z0 - 30) & (p[:, 2] <= z1 + 30)
        ylo, yhi = p[band, 1].min() - margin, p[band, 1].max() + margin
        b = grid.block([lo[0], ylo, z0], [hi[0], yhi, z1])
        if b is None:
            continue
        sl, X, Y, Z = b
        inz = (Z >= z0) & (Z < z1)
        ap, x, rap, rl = _canal_coords(spine, X, Y, Z)
        bony = inz & ((ap / rap) ** 2 + (x / rl) ** 2 < 1.0)
        # ligamentum flavum: a band behind the canal
        flav = inz & (ap < -rap + 0.5) & (ap > -rap - 3.5) & (np.abs(x) < rl * 0.9)
        grid.paint(sl, flav, LIGAMENT)
        grid.paint(sl, bony, EPIDURAL_FAT)
        # dural sac: slightly anterior in the canal, ends at S2
        sac_rap, sac_rl = rap - 1.6, rl - 1.8
        taper = np.clip((Z - s2_z) / 15.0, 0.0, 1.0)
        sac = inz & (((ap - 0.9) / np.maximum(sac_rap * taper, 1e-3)) ** 2
                     + (x / np.maximum(sac_rl * taper, 1e-3)) ** 2 < 1.0)
        grid.paint(sl, sac, CSF)
        # cauda equina roots: thin tubes, layered dorsally (patient supine)
        below_conus = Z < conus_z + 8
        for rx, ra in ((-1.6, -2.6), (1.6, -2.6), (-3.8, -1.4), (3.8, -1.4), (-5.5, 0.3), (5.5, 0.3),
                       (-2.6, -4.2), (2.6, -4.2), (0.0, -3.6)):
            root = sac & below_conus & ((x - rx) ** 2 + (ap - ra) ** 2 < 0.75**2)
            grid.paint(sl, root, ROOT)
        # spinal cord down to the conus (tip at L1/L2)
        rc = 4.3 * np.clip((Z - conus_z) / 22.0, 0.0, 1.0) ** 0.5
        cord = sac & (Z < top_z) & ((x / np.maximum(rc * 1.2, 1e-3)) ** 2
                                    + ((ap - 0.5) / np.maximum(rc, 1e-3)) ** 2 < 1.0)
        grid.paint(sl, cord, CORD)


def _bone(grid, sl, sd, inside_label):
    """Paint a bony shape given a signed distance (mm, < 0 inside): cortex rim and marrow."""
    inside = sd < 0
    grid.paint(sl, inside & (sd > -CORTEX_MM), CORTEX)
    grid.paint(sl, inside & (sd <= -CORTEX_MM), inside_label)


def _local_box(e: Element, a_rng, h_rng, x_half):
    c, u, n = e.mid
    pts = []
    for a in a_rng:
        for h in h_rng:
            pts.append(c + u * a + n * h)
    pts = np.array(pts)
    lo = pts.min(axis=0)
    hi = pts.max(axis=0)
    lo[0], hi[0] = -x_half, x_half
    return lo - 1.0, hi + 1.0


def _paint_posterior_elements(grid, anat, spine) -> None:
    verts = [spine.vertebrae[v] for v in VERTEBRAE]
    joints, bones = [], []
    for i, e in enumerate(verts):
        c, u, n = e.mid
        H = e.height
        rap, rl = (r * anat.scale for r in _CANAL[e.name])
        apw = -e.depth / 2
        back = apw - 2 * rap  # posterior edge of the canal
        d_above = spine.discs[DISCS[i - 1]].height if i > 0 else 5.0
        d_below = spine.discs[DISCS[i]].height if i < len(DISCS) else 2.0
        sacral = e.name.startswith("S")
        bones.append((e, c, u, n, H, rl, apw, back, d_above, d_below, sacral))
        if not sacral:
            joints.append((e, c, u, n, H, rl, back, d_above, d_below))
    # facet joint fluid first, then all bone
    for e, c, u, n, H, rl, back, d_above, d_below in joints:
        lo, hi = _local_box(e, (back - 6, back + 8), (-H / 2 - d_below, H / 2 + d_above), rl + 12)
        b = grid.block(lo, hi)
        if b is None:
            continue
        sl, X, Y, Z = b
        a = (Y - c[1]) * u[1] + (Z - c[2]) * u[2]
        h = (Y - c[1]) * n[1] + (Z - c[2]) * n[2]
        for s in (-1, 1):
            xc = s * (rl + 5.0)
            m = (np.abs(X - xc) < 4.5) & (a > back - 4) & (a < back + 6) & \
                (h > -H / 2 - d_below / 2 - 0.8) & (h < H / 2 + d_above / 2 + 0.8)
            grid.paint(sl, m, JOINT)
    for e, c, u, n, H, rl, apw, back, d_above, d_below, sacral in bones:
        lo, hi = _local_box(e, (back - 40, apw + 4), (-H / 2 - 20, H / 2 + d_above), rl + 12)
        b = grid.block(lo, hi)
        if b is None:
            continue
        sl, X, Y, Z = b
        a = (Y - c[1]) * u[1] + (Z - c[2]) * u[2]
        h = (Y - c[1]) * n[1] + (Z - c[2]) * n[2]
        ax = np.abs(X)
        sds = []
        if sacral:
            # fused laminae roof the sacral canal over the whole height; short median crest
            lam = np.maximum.reduce([np.abs(a - (back - 3.0)) - 3.0, ax - (rl + 6.0),
                                     np.abs(h) - (H / 2 + d_below / 2 + 0.5)])
            sds.append(lam)
            sds.append(_capsule_sd(a, h, ax, (back - 4, 0.0), (back - 12, -3.0), 5.0, 3.5))
        else:
            # pedicles
            for s in (-1, 1):
                xc = s * (rl + 3.5)
                r = np.sqrt(((X - xc) / 4.2) ** 2 + ((h - H * 0.18) / 6.5) ** 2)
                sds.append(np.maximum((r - 1.0) * 4.2, np.abs(a - (apw + back) / 2) - ((apw - back) / 2 + 2.0)))
            # articular pillars (superior and inferior processes), split by the facet joint
            for s in (-1, 1):
                xc = s * (rl + 5.0)
                box = np.maximum.reduce([np.abs(X - xc) - 4.5, np.abs(a - (back + 1.0)) - 5.0,
                                         np.maximum(h - (H / 2 + d_above / 2 - 0.8),
                                                    -(H / 2 + d_below / 2 - 0.8) - h)])
                sds.append(box)
            # laminae (sloping down behind the canal)
            lam = np.maximum.reduce([np.abs(a - (back - 2.5)) - 3.0, ax - (rl + 7.0),
                                     np.abs(h - (-4.0)) - (H / 2 - 1.0)])
            sds.append(lam)
            # spinous process: a capsule running posteriorly and a little down, thin in x
            sds.append(_capsule_sd(a, h, ax, (back - 3.0, -4.0), (back - 30.0 * anat.scale, -13.0), 9.0, 3.5))
        sd = np.minimum.reduce(sds)
        _bone(grid, sl, sd, POST_MARROW)


def _capsule_sd(a, h, ax, p0, p1, r, half_x):
    """Signed distance of a slab-capsule: distance to segment p0–p1 in (a, h) < r, and |x| < half_x."""
    pa, ph = p0
    da, dh = p1[0] - p0[0], p1[1] - p0[1]
    L2 = da * da + dh * dh
    t = np.clip(((a - pa) * da + (h - ph) * dh) / L2, 0.0, 1.0)
    d = np.sqrt((a - pa - t * da) ** 2 + (h - ph - t * dh) ** 2)
    # taper the radius towards the tip
    rr = r * (1.0 - 0.35 * t)
    return np.maximum(d - rr, ax - half_x)


def _paint_body(grid, e: Element) -> None:
    c, u, n = e.mid
    lo, hi = _local_box(e, (-e.depth / 2 - 2, e.depth / 2 + 2), (-e.height / 2 - 4, e.height / 2 + 4), e.width / 2 + 1)
    b = grid.block(lo, hi)
    if b is None:
        return
    sl, X, Y, Z = b
    k = ENDPLATE_CONCAVITY_MM
    at, ht = _plane_coords(e.top, Y, Z)
    ab, hb = _plane_coords(e.bottom, Y, Z)
    s_top = ht + k * _q(at, X, e.top.half_d, e.top.half_w)
    s_bot = k * _q(ab, X, e.bottom.half_d, e.bottom.half_w) - hb
    am = (Y - c[1]) * u[1] + (Z - c[2]) * u[2]
    rho = np.sqrt((am / (e.depth / 2)) ** 2 + (X / (e.width / 2)) ** 2)
    s_rad = (rho - 1.0) * min(e.depth, e.width) / 2
    sd = _rounded_intersection(VERTEBRA_CORNER_RADIUS_MM, s_top, s_bot, s_rad)
    _bone(grid, sl, sd, VERTEBRA_BASE + e.index)


def _paint_disc(grid, anat, e: Element) -> None:
    c, u, n = e.mid
    bulge = 1.0
    post_bulge = 2.5 if e.name in anat.degenerated else 0.8
    lo, hi = _local_box(e, (-e.depth / 2 - 4, e.depth / 2 + 3), (-e.height / 2 - 4, e.height / 2 + 4), e.width / 2 + 3)
    b = grid.block(lo, hi)
    if b is None:
        return
    sl, X, Y, Z = b
    k = ENDPLATE_CONCAVITY_MM
    ut, lb = e.surf_top, e.surf_bottom  # the adjacent vertebrae's endplate planes (shared surfaces)
    at, ht = _plane_coords(ut, Y, Z)
    ab, hb = _plane_coords(lb, Y, Z)
    d_up = ht - k * _q(at, X, ut.half_d, ut.half_w)  # < 0 below the upper endplate surface
    d_lo = hb + k * _q(ab, X, lb.half_d, lb.half_w)  # > 0 above the lower surface
    between = (d_up < 0) & (d_lo > 0)
    if e.name in FUSED:
        grid.paint(sl, between & (np.sqrt((((Y - c[1]) * u[1] + (Z - c[2]) * u[2]) / (e.depth / 2)) ** 2
                                          + (X / (e.width / 2)) ** 2) < 1.0), CORTEX)
        return
    denom = np.where(between, d_lo - d_up, 1.0)
    t = np.where(between, d_lo / denom, 0.0)  # 0 at the lower endplate, 1 at the upper
    am = (Y - c[1]) * u[1] + (Z - c[2]) * u[2]
    prof = 4.0 * t * (1.0 - t)
    ra = e.depth / 2 + np.where(am < 0, post_bulge, bulge) * prof
    rx = e.width / 2 + bulge * prof
    inside = between & ((am / ra) ** 2 + (X / rx) ** 2 < 1.0)
    a0, na, nt, nx = nucleus_params(anat, e.name, e.depth, e.width)
    r = np.sqrt(((am - a0) / na) ** 2 + ((t - 0.5) / nt) ** 2 + (X / nx) ** 2)
    w = np.clip((1.0 - r) / 0.35, 0.0, 1.0)
    w = w * w * (3.0 - 2.0 * w)
    if e.name not in anat.degenerated:
        # faint intranuclear cleft (Pfirrmann II)
        w = w * (1.0 - 0.35 * np.exp(-(((t - 0.5) / 0.06) ** 2)))
    grid.paint(sl, inside, ANNULUS_BASE + e.index, w.astype(np.float32))

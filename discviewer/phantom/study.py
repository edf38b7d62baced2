"""The phantom study: patients → visits → series, generated in memory, with the ground-truth dict.

Owns the protocol (series, sizes), the per-patient choices drawn from the seed (injected and
degenerated discs, visit days, repositioning, gain, noise), rendering a visit (each voxel averaged
over its extent in-plane and through-plane, iron, texture, coil shading, PSF, Rician noise) and the
truth.
Core module: numpy/scipy only (DICOM writing lives in `dicomwrite`).
"""
from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
from scipy import ndimage, stats

from ..volume import SeriesInfo, Volume
from . import anatomy as A
from . import signal as S
from .geometry import SlabGeometry, apply, plan_slab, rigid_inverse, rigid_matrix, rotation_angle_deg
from ..measure.r2star import rician_mean
from ..measure.roi import PlaneROI, roi_mask
from .sampling import PointGrid, SampleGrid

GENERATOR_NAME = "discviewer.phantom"
GENERATOR_VERSION = "2.0"
DISCLAIMER = "synthetic phantom — not clinical data"
MANUFACTURER = "discviewer phantom"
FIELD_STRENGTH_T = 1.5
DEPOSIT_MARGIN_MM = 0.5  # the deposit sphere stays this far inside the endplate surfaces

VISITS = (("baseline", 0, "V1_baseline"), ("3 m", 90, "V2_3m"), ("6 m", 180, "V3_6m"),
          ("12 m", 365, "V4_12m"), ("24 m", 730, "V5_24m"))

SIZES = {
    "small": dict(rows=160, columns=160, pixel_mm=1.875, n_slices=9, slice_mm=4.0, n_sub=3, n_fine=23, psf_px=0.75),
    "full": dict(rows=512, columns=512, pixel_mm=0.5859375, n_slices=15, slice_mm=4.0, n_sub=3, n_fine=23,
                 psf_px=0.7),
}


@dataclass(frozen=True)
class Protocol:
    """One series of the protocol."""

    key: str
    number: int
    description: str
    role: str
    folder: str
    sequence: S.Sequence
    sequence_name: str
    scanning_sequence: str
    sequence_variant: str
    echo_train_length: int


PROTOCOL = (
    Protocol("t2", 1, "T2 TSE SAG", "T2 sag", "01_T2_SAG",
             S.Sequence("FSE", 4000.0, (100.0,), 150.0, 2200.0), "*tse2d1_17", "SE", "SK\\SP\\OSP", 17),
    Protocol("t1", 2, "T1 TSE SAG", "T1 sag", "02_T1_SAG",
             S.Sequence("FSE", 550.0, (10.0,), 150.0, 1800.0), "*tse2d1_3", "SE", "SK\\SP\\OSP", 3),
    Protocol("gre", 3, "ME-GRE SAG", "GRE multi-echo sag", "03_MEGRE_SAG",
             S.Sequence("GRE", 700.0, (4.0, 9.0, 14.0, 19.0, 24.0), 25.0, 3600.0), "*fl2d5", "GR", "SP\\SS", 1),
)


@dataclass
class PhantomSeries:
    """One series of one visit. `arrays` holds one uint16 (slices, rows, columns) array per echo."""

    key: str
    number: int
    uid: str
    description: str
    role: str
    folder: str  # relative to the study's output folder
    protocol: Protocol
    geometry: SlabGeometry
    affine: np.ndarray  # index (column, row, slice) → this visit's patient LPS mm, exactly as written
    arrays: list[np.ndarray]
    windows: list[tuple[float, float]]  # (centre, width) per echo
    series_time: str

    @property
    def array(self) -> np.ndarray:
        """The first (for FSE the only) echo."""
        return self.arrays[0]

    @property
    def echo_times(self) -> tuple[float, ...]:
        return self.protocol.sequence.te_ms

    @property
    def repetition_time(self) -> float:
        return self.protocol.sequence.tr_ms

    def volume(self, echo: int = 0, *, visit: "PhantomVisit | None" = None,
               patient: "PhantomPatient | None" = None) -> Volume:
        """This series (one echo) as a core `Volume`."""
        info = SeriesInfo(
            patient_id=patient.patient_id if patient else "", patient_name=patient.patient_name if patient else "",
            study_uid=visit.study_uid if visit else "", study_date=visit.study_date if visit else "",
            study_description=visit.study_description if visit else "", series_uid=self.uid,
            series_number=self.number, series_description=self.description, modality="MR",
            frame_of_reference_uid=visit.frame_uid if visit else "", sequence_name=self.protocol.sequence_name,
            echo_time=self.echo_times[echo], echo_number=echo + 1, repetition_time=self.repetition_time,
            field_strength=FIELD_STRENGTH_T, image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
            complex_part="MAGNITUDE", source="phantom")
        return Volume(self.arrays[echo], self.affine.copy(), info)


@dataclass
class PhantomVisit:
    index: int
    label: str
    folder: str
    days: int
    study_uid: str
    frame_uid: str
    study_date: str
    study_time: str
    study_description: str
    accession: str
    gain: float
    noise_sigma: float
    visit_to_baseline: np.ndarray
    baseline_to_visit: np.ndarray
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    series: list[PhantomSeries]
    labels: np.ndarray  # uint8 tissue label at each voxel centre (anatomy.py label codes)
    truth: dict = field(default_factory=dict)

    def series_by_key(self, key: str) -> PhantomSeries:
        return next(s for s in self.series if s.key == key)


@dataclass
class PhantomPatient:
    index: int
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    folder: str
    injected: tuple[str, ...]
    degenerated: tuple[str, ...]
    anatomy: A.PatientAnatomy
    visits: list[PhantomVisit]
    truth: dict = field(default_factory=dict)


@dataclass
class PhantomStudy:
    seed: int
    size: str
    patients: list[PhantomPatient]
    truth: dict


# ---- helpers ------------------------------------------------------------------------------------
def _uid(seed: int, size: str, *parts) -> str:
    """Deterministic "2.25." UID from a name-based (version 5) UUID.

    (pydicom's `generate_uid(prefix=None, entropy_srcs=…)` ignores the entropy and returns a random
    UUID, so it cannot give reproducible UIDs.)"""
    name = "/".join(["discviewer-phantom", str(seed), size] + [str(p) for p in parts])
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, name).int}"


def _r(x, nd=6):
    return round(float(x), nd)


def _vec(v, nd=6):
    return [_r(x, nd) for x in np.asarray(v, dtype=np.float64).ravel()]


def _mat(m, nd=9):
    return [[_r(x, nd) for x in row] for row in np.asarray(m, dtype=np.float64)]


def _choose_discs(rng, patient_index: int):
    """Injected discs (1–2; patient 0 always includes L4/L5) and degenerated discs (1–2, ⊇ injected)."""
    if patient_index == 0:
        first = "L4/L5"
    else:
        first = str(rng.choice(["L3/L4", "L4/L5", "L5/S1"], p=[0.2, 0.55, 0.25]))
    injected = [first]
    if rng.random() < 0.3:
        others = [d for d in ("L3/L4", "L4/L5", "L5/S1") if d != first]
        injected.append(str(rng.choice(others)))
    degenerated = list(injected)
    if len(degenerated) == 1 and rng.random() < 0.6:
        others = [d for d in ("L2/L3", "L3/L4", "L4/L5", "L5/S1") if d not in degenerated]
        degenerated.append(str(rng.choice(others)))
    order = {d: i for i, d in enumerate(A.DISCS)}
    return tuple(sorted(injected, key=order.get)), tuple(sorted(degenerated, key=order.get))


def _repositioning(rng, visit_index: int):
    if visit_index == 0:
        return (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    while True:
        rot = rng.uniform(-1.8, 1.8, 3)
        m = rigid_matrix(rot, (0, 0, 0))
        if 0.4 <= rotation_angle_deg(m) <= 3.0:
            break
    d = rng.standard_normal(3)
    d /= np.linalg.norm(d)
    t = d * rng.uniform(2.0, 10.0)
    return tuple(float(_r(x, 4)) for x in rot), tuple(float(_r(x, 4)) for x in t)


# ---- patient-level generation -------------------------------------------------------------------
def _iter_patients(patients: int, seed: int, size: str, progress=None) -> Iterator[PhantomPatient]:
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    total = patients * len(VISITS)
    done = 0
    for p in range(patients):
        rng = np.random.default_rng([seed, p, 0])
        injected, degenerated = _choose_discs(rng, p)
        anat = A.make_patient_anatomy(rng, injected=injected, degenerated=degenerated)
        texture = S.Texture(np.random.default_rng([seed, p, 1]))
        pid = f"DVPH{seed}-{p + 1:02d}"
        birth = _dt.date(1955, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 365 * 35)))
        sex = str(rng.choice(["F", "M"]))
        start = _dt.date(2019, 1, 7) + _dt.timedelta(days=int(rng.integers(0, 700)))
        injection_day = int(rng.integers(3, 15))
        deposit_params = {}
        for d in injected:
            deposit_params[d] = dict(
                radius=float(rng.uniform(2.5, 3.3)), r2s_peak=float(rng.uniform(330.0, 450.0)),
                tau_days=float(rng.uniform(170.0, 240.0)), offset=(float(rng.uniform(-2.0, 2.0)),
                                                                    float(rng.uniform(-3.0, 3.0)),
                                                                    float(rng.uniform(-0.4, 0.4))))
        patient = PhantomPatient(index=p, patient_id=pid, patient_name=f"PHANTOM^S{seed}P{p + 1:02d}",
                                 birth_date=birth.strftime("%Y%m%d"), sex=sex, folder=f"P{p + 1:02d}",
                                 injected=injected, degenerated=degenerated, anatomy=anat, visits=[])
        visit_rng_draws = []
        for v, (label, nominal, vfolder) in enumerate(VISITS):
            jitter = 0 if v == 0 else int(rng.integers(-7, 8) if v == 1 else rng.integers(-14, 15))
            rot, trans = _repositioning(rng, v)
            gain = float(rng.uniform(0.6, 1.5))
            sigma = float(gain * rng.uniform(12.0, 20.0))
            hour = int(rng.integers(7, 19))
            minute = int(rng.integers(0, 60))
            fov_jitter = rng.uniform(-3.0, 3.0, 2)
            plan_jitter = float(rng.uniform(-1.0, 1.0))
            visit_rng_draws.append((label, nominal + jitter, vfolder, rot, trans, gain, sigma, hour, minute,
                                    fov_jitter, plan_jitter))
        _fit_deposits_in_discs(anat, deposit_params, visit_rng_draws[-1][1])
        for v, (label, days, vfolder, rot, trans, gain, sigma, hour, minute, fov_jitter, plan_jitter) in \
                enumerate(visit_rng_draws):
            visit = _make_visit(seed, size, patient, anat, texture, v, label, days, vfolder, rot, trans, gain,
                                sigma, hour, minute, fov_jitter, plan_jitter, start, injection_day,
                                deposit_params)
            patient.visits.append(visit)
            done += 1
            if progress is not None:
                progress(done, total)
        patient.truth = _patient_truth(patient, injection_day, deposit_params)
        yield patient


def _deposit_centre(spine: A.Spine, anat, level: str, prm) -> np.ndarray:
    """The deposit centre: the nucleus centre of the disc's mid frame plus the drawn offset."""
    e = spine.discs[level]
    c, u, n = e.mid
    a0 = A.nucleus_params(anat, level, e.depth, e.width)[0]
    dx, da, dh = prm["offset"]
    return c + u * (a0 + da) + n * dh + np.array([dx, 0.0, 0.0])


def _fit_deposits_in_discs(anat, params, days_last: float) -> None:
    """Keep each deposit (the sphere of labelled cells) inside its disc — cells injected into the
    nucleus stay in the disc: radius ≤ (distance from the centre to the nearer endplate surface) −
    DEPOSIT_MARGIN_MM, on the last visit's (thinnest) disc. The field around the deposit (blooming)
    still reaches into the bone, as it physically does."""
    spine = A.build_spine(anat, float(days_last))
    for level, prm in params.items():
        up, lo = A.disc_surface_distances(spine.discs[level], _deposit_centre(spine, anat, level, prm))
        prm["radius_drawn"] = prm["radius"]
        prm["radius"] = float(max(1.0, min(prm["radius"], min(up, lo) - DEPOSIT_MARGIN_MM)))


def _deposits_at(spine: A.Spine, anat, days: int, injection_day: int, params) -> dict[str, S.IronDeposit]:
    out = {}
    for d, prm in params.items():
        if days < injection_day:
            continue
        centre = _deposit_centre(spine, anat, d, prm)
        r2s = prm["r2s_peak"] * np.exp(-(days - injection_day) / prm["tau_days"])
        out[d] = S.IronDeposit(tuple(float(x) for x in centre), prm["radius"], float(r2s))
    return out


def _make_visit(seed, size, patient, anat, texture, v, label, days, vfolder, rot, trans, gain, sigma,
                hour, minute, fov_jitter, plan_jitter, start, injection_day, deposit_params) -> PhantomVisit:
    cfg = SIZES[size]
    v2b = rigid_matrix(rot, trans)
    b2v = rigid_inverse(v2b)
    spine = A.build_spine(anat, float(days))
    deposits = _deposits_at(spine, anat, days, injection_day, deposit_params)
    # slab planning: slices centred on the spine's midline as seen in this visit, FOV near-fixed
    l3 = spine.vertebrae["L3"].mid[0]
    centre_v = apply(b2v, l3)
    geom = plan_slab(rows=cfg["rows"], columns=cfg["columns"], n_slices=cfg["n_slices"],
                     pixel_mm=cfg["pixel_mm"], slice_mm=cfg["slice_mm"],
                     centre_lps=(centre_v[0] + plan_jitter, -5.0 + fov_jitter[0], 0.0 + fov_jitter[1]))
    images, labels = _render(anat, spine, deposits, geom, v2b, cfg, texture, gain)
    date = start + _dt.timedelta(days=int(days))
    pid = patient.patient_id
    study_uid = _uid(seed, size, pid, "study", v)
    visit = PhantomVisit(
        index=v, label=label, folder=vfolder, days=int(days), study_uid=study_uid,
        frame_uid=_uid(seed, size, pid, "frame", v), study_date=date.strftime("%Y%m%d"),
        study_time=f"{hour:02d}{minute:02d}00", study_description="MR LUMBAR SPINE",
        accession=f"A{abs(seed) % 10000:04d}{patient.index + 1:02d}{v + 1:02d}",
        gain=gain, noise_sigma=sigma, visit_to_baseline=v2b, baseline_to_visit=b2v, rotation_deg=rot,
        translation_mm=trans, series=[], labels=labels)
    for k, prot in enumerate(PROTOCOL):
        noise_free = images[prot.key]
        arrays, windows = [], []
        for e, img in enumerate(noise_free):
            nrng = np.random.default_rng([seed, patient.index, 2, v, prot.number, e])
            arr = S.rician(img, sigma, nrng)
            arrays.append(arr)
            hi = float(np.percentile(arr, 99.5))
            windows.append((round(hi / 2, 1), round(max(hi, 1.0), 1)))
        series_minute = minute + 2 + 5 * k
        visit.series.append(PhantomSeries(
            key=prot.key, number=prot.number, uid=_uid(seed, size, pid, "series", v, prot.key),
            description=prot.description, role=prot.role,
            folder=f"{patient.folder}/{vfolder}/{prot.folder}", protocol=prot, geometry=geom,
            affine=geom.affine, arrays=arrays, windows=windows,
            series_time=f"{(hour + series_minute // 60) % 24:02d}{series_minute % 60:02d}00"))
    visit.truth = _visit_truth(visit, patient, anat, spine, deposits, images, geom, cfg)
    return visit


# Rank-1 lattices for the sub-voxel points of boundary voxels: N → (row generator, slice generator).
# Every point has its own column, row and slice offset (so an edge parallel to a grid axis is
# resolved to 1/N of the voxel), and the generators were chosen for the smallest area-fraction error
# over random straight edges in the (column, row), (column, slice) and (row, slice) projections
# (N = 23: ≤ 0.10, RMS 0.025 of the voxel).
_LATTICES = {23: (17, 13), 31: (6, 5)}
IRON_FINE_DELTA = 0.02  # fine-sample voxels whose iron attenuation varies more than this over their window
_CHUNK_POINTS = 1.6e6  # sample points painted at once (memory ~ 0.3 kB per point at the peak)


def _lattice(n: int) -> np.ndarray:
    """(3, n) sub-voxel offsets (column, row, slice) in voxel units, in [−½, ½)."""
    g1, g2 = _LATTICES[n]
    i = np.arange(n)
    return np.stack([(i + 0.5) / n, ((i * g1) % n + 0.5) / n, ((i * g2) % n + 0.5) / n]) - 0.5


def _fine_sums(rr, cc, lab, w, dr, n_fine: int):
    """Per-voxel sums of one slice's lattice points, grouped so that every image costs O(pairs), not
    O(points): the iron-free points as (voxel, label) pairs with their count and Σw, the points in an
    iron field (ΔR2* > 0) kept one by one (voxel, label, w, ΔR2*). Returns (rr, cc, pair voxel, pair
    label, count, Σw, iron points or None)."""
    nv = rr.size
    vox = np.repeat(np.arange(nv), n_fine)
    irn = None
    if dr is not None:
        hot = dr > 0
        if hot.any():
            irn = (vox[hot], lab[hot], w[hot], dr[hot])
            vox, lab, w = vox[~hot], lab[~hot], w[~hot]
    present = np.flatnonzero(np.bincount(lab, minlength=256))  # the few labels in this slice
    code = np.zeros(256, np.intp)
    code[present] = np.arange(present.size)
    key = vox * present.size + code[lab]
    cnt = np.bincount(key, minlength=nv * present.size)
    wsum = np.bincount(key, weights=w, minlength=nv * present.size)
    k = np.flatnonzero(cnt)
    return (rr, cc, k // present.size, present[k % present.size].astype(np.uint8), cnt[k].astype(np.float32),
            wsum[k].astype(np.float32), irn)


def _render(anat, spine, deposits, geom: SlabGeometry, v2b, cfg, texture: S.Texture, gain: float):
    """Noise-free images {key: [per-echo float32 (slices, rows, cols)]} and the centre label map.

    Each voxel's value is the mean of the signal model over the voxel's extent (partial volume
    in-plane and through-plane):
    1. every slice is labelled on `n_sub` planes spread over its thickness at the pixel centres;
    2. a voxel is a *boundary voxel* when the labels are not all equal over its own planes, one plane
       beyond each face and its 8 in-plane neighbours (so any tissue boundary passing through the voxel
       is caught: it changes the label between two of those samples), or when the iron attenuation at
       the longest TE varies by more than IRON_FINE_DELTA over the same samples (near a deposit);
    3. boundary voxels are re-sampled at `n_fine` points of a rank-1 lattice filling the voxel
       (distinct column, row and slice offsets) and averaged; the others average their `n_sub` planes
       (their tissue is uniform; the nucleus weight and any iron field there vary smoothly);
    4. texture (fixed to the anatomy) is 1 + a_f(tissue)·f + a_c(tissue)·c with the amplitudes
       averaged over the voxel's sub-samples (weighted by their signal) and the fields at the voxel
       centre; receive-coil shading (scanner-fixed) and gain at the voxel centre;
    5. then the in-plane Gaussian PSF (`psf_px`)."""
    n_sub, n_fine = cfg["n_sub"], cfg["n_fine"]
    ns, nr, nc = geom.n_slices, geom.rows, geom.columns
    tables = S.tissue_tables(anat)
    luts = {p.key: S.signal_luts(tables, p.sequence) for p in PROTOCOL}
    images = {p.key: [np.zeros((ns, nr, nc), np.float32) for _ in p.sequence.te_ms] for p in PROTOCOL}
    labels = np.zeros((ns, nr, nc), np.uint8)
    plane_aff = v2b @ geom.plane_affine(n_sub)
    vox_aff = v2b @ geom.affine
    te_max = max(max(p.sequence.te_ms) for p in PROTOCOL)
    # painting works on chunks of slices (fewer, larger array operations; bounded memory)
    chunk = max(1, int(_CHUNK_POINTS // (n_sub * nr * nc)))
    chunks = [(c0, min(c0 + chunk, ns)) for c0 in range(0, ns, chunk)]
    # 1. labels on the sub-planes of every slice
    lab_all = np.zeros((ns * n_sub, nr, nc), np.uint8)
    w_all = np.zeros((ns * n_sub, nr, nc), np.float32)
    for c0, c1 in chunks:
        grid = SampleGrid(plane_aff, ((c1 - c0) * n_sub, nr, nc), plane0=c0 * n_sub)
        A.paint(grid, anat, spine)
        lab_all[c0 * n_sub:c1 * n_sub] = grid.labels
        w_all[c0 * n_sub:c1 * n_sub] = grid.w
    # 2. boundary voxels: a tissue boundary, or a steep iron field (the longest-TE GRE attenuation
    #    exp(−TE·ΔR2*) varying by more than IRON_FINE_DELTA over the same window)
    mixed = np.zeros((ns, nr, nc), bool)
    iron_c = {s: [] for s in range(ns)}
    att_all = np.ones((ns * n_sub, nr, nc), np.float32) if deposits else None
    for s in range(ns):
        grid = SampleGrid(plane_aff, (n_sub, nr, nc), plane0=s * n_sub)
        for dep in deposits.values():
            rc = dep.cutoff_mm(te_max)
            b = grid.block(np.array(dep.centre) - rc, np.array(dep.centre) + rc)
            if b is not None:
                sl = (slice(0, n_sub), b[0][1], b[0][2])  # all sub-planes of the block's rows/columns
                _, X, Y, Z = grid._points(sl)
                dr = dep.delta_r2s(X, Y, Z).astype(np.float32)
                iron_c[s].append((sl[1:], dr))
                att_all[(slice(s * n_sub, (s + 1) * n_sub),) + sl[1:]] *= np.exp(-te_max / 1000.0 * dr)
    for s in range(ns):
        planes = slice(max(s * n_sub - 1, 0), (s + 1) * n_sub + 1)
        win = lab_all[planes]
        mixed[s] = ndimage.maximum_filter(win.max(axis=0), size=3, mode="nearest") != \
            ndimage.minimum_filter(win.min(axis=0), size=3, mode="nearest")
        if att_all is not None:
            win = att_all[planes]
            mixed[s] |= (ndimage.maximum_filter(win.max(axis=0), size=3, mode="nearest")
                         - ndimage.minimum_filter(win.min(axis=0), size=3, mode="nearest")) > IRON_FINE_DELTA
    # 3. the boundary voxels' lattice points, slice-major (each voxel's n_fine points consecutive)
    off = _lattice(n_fine)
    off[2] *= geom.slice_thickness / geom.slice_spacing
    off32 = off.astype(np.float32)
    fine = {}
    for c0, c1 in chunks:
        ss, rr, cc = np.nonzero(mixed[c0:c1])
        if not ss.size:
            continue
        ss = ss + c0
        index = np.empty((3, ss.size * n_fine), np.float32)
        for k, base in enumerate((cc, rr, ss)):
            index[k] = (base.astype(np.float32)[:, None] + off32[k]).ravel()
        row_key = np.repeat(rr.astype(np.int16), n_fine)
        order = np.argsort(row_key, kind="stable")  # PointGrid wants the points sorted by row (radix sort)
        pg = PointGrid(vox_aff, index[:, order], row_key[order])
        A.paint(pg, anat, spine)
        lab_f = np.empty_like(pg.labels)
        w_f = np.empty_like(pg.w)
        lab_f[order] = pg.labels
        w_f[order] = pg.w
        dr_f = np.zeros(lab_f.size, np.float32) if deposits else None
        for dep in deposits.values():
            rc = dep.cutoff_mm(te_max)
            b = pg.block(np.array(dep.centre) - rc, np.array(dep.centre) + rc)
            if b is not None:
                sel, X, Y, Z = b
                dr_f[order[sel]] += dep.delta_r2s(X, Y, Z).astype(np.float32)
        bounds = np.searchsorted(ss, np.arange(c0, c1 + 1))
        for s in range(c0, c1):
            v0, v1 = bounds[s - c0], bounds[s + 1 - c0]
            if v1 > v0:
                p0, p1 = v0 * n_fine, v1 * n_fine
                fine[s] = _fine_sums(rr[v0:v1], cc[v0:v1], lab_f[p0:p1], w_f[p0:p1],
                                     None if dr_f is None else dr_f[p0:p1], n_fine)
    # 4. per slice: signals, texture, coil shading, gain
    amp = texture.amp
    jj, ii = np.mgrid[0:nr, 0:nc].astype(np.float32)
    seqs = [(p, e, p.sequence.te_ms[e] / 1000.0, 1.0 if p.sequence.kind == "GRE" else S.IRON_FSE_FRACTION)
            for p in PROTOCOL for e in range(len(p.sequence.te_ms))]
    for s in range(ns):
        lab = lab_all[s * n_sub:(s + 1) * n_sub]
        w = w_all[s * n_sub:(s + 1) * n_sub]
        # uniform voxels: one label over the voxel, so the mean over the sub-planes is
        # LUT[label] + mean(w)·ΔLUT[label]; inside an iron block the attenuation is averaged per sub-plane
        lab_c = lab[n_sub // 2]
        w_mean = w.mean(axis=0)
        pv = [vox_aff[k, 0] * ii + vox_aff[k, 1] * jj + (vox_aff[k, 2] * s + vox_aff[k, 3]) for k in range(3)]
        f_tex, c_tex = texture.fields(*pv)
        ga = geom.affine
        yv = ga[1, 0] * ii + ga[1, 1] * jj + (ga[1, 2] * s + ga[1, 3])
        zv = ga[2, 0] * ii + ga[2, 1] * jj + (ga[2, 2] * s + ga[2, 3])
        mult = S.coil_shading(yv, zv) * np.float32(gain)
        amp_c = amp[lab_c]
        for p, e, te, frac in seqs:
            lut, dlut = luts[p.key][e]
            sig = lut[lab_c] + w_mean * dlut[lab_c]
            for sl2, dr in iron_c[s]:
                sub = lut[lab[(slice(None),) + sl2]] + w[(slice(None),) + sl2] * dlut[lab[(slice(None),) + sl2]]
                sig[sl2] = (sub * np.exp(-te * frac * dr)).mean(axis=0)
            sf = amp_c[..., 0] * sig
            sc = amp_c[..., 1] * sig
            if s in fine:
                rr, cc, pv_i, pl, cnt, wsum, irn = fine[s]
                # iron-free points: per (voxel, label) pair count·LUT + Σw·ΔLUT; iron points one by one
                per = cnt * lut[pl] + wsum * dlut[pl]
                vals = [np.bincount(pv_i, weights=per * a, minlength=rr.size) for a in (1.0, amp[pl, 0], amp[pl, 1])]
                if irn is not None:
                    iv, il, iw, idr = irn
                    sp = (lut[il] + iw * dlut[il]) * np.exp(-te * frac * idr)
                    for k, a in enumerate((1.0, amp[il, 0], amp[il, 1])):
                        vals[k] += np.bincount(iv, weights=sp * a, minlength=rr.size)
                sig[rr, cc], sf[rr, cc], sc[rr, cc] = (x / n_fine for x in vals)
            images[p.key][e][s] = np.maximum(sig + f_tex * sf + c_tex * sc, 0.1 * sig) * mult
        centre = lab_c.copy()
        disc = (centre >= A.ANNULUS_BASE) & (centre < A.ANNULUS_BASE + len(A.DISCS)) & (w[n_sub // 2] > 0.5)
        centre[disc] += A.NUCLEUS_BASE - A.ANNULUS_BASE
        labels[s] = centre
    # 5. PSF
    for key, imgs in images.items():
        for e in range(len(imgs)):
            imgs[e] = S.psf(imgs[e], cfg["psf_px"])
    return images, labels


# ---- truth ----------------------------------------------------------------------------------------
def _visit_truth(visit: PhantomVisit, patient: PhantomPatient, anat, spine, deposits, images, geom, cfg=None) -> dict:
    b2v = visit.baseline_to_visit
    inv_aff = np.linalg.inv(geom.affine)
    t2 = images["t2"][0]
    discs = {}
    tables = S.tissue_tables(anat)
    gre = PROTOCOL[2].sequence
    for level in A.DISC_LEVELS:
        k = A.DISCS.index(level)
        lm_all = A.disc_landmarks(spine, level, with_corners=True)
        lm = {k: p for k, p in lm_all.items() if "corner" not in k}
        dh = A.disc_heights_from_landmarks(lm)
        lm_v = {name: apply(b2v, p) for name, p in lm.items()}
        corners_v = {name.replace("corner_", ""): apply(b2v, p) for name, p in lm_all.items() if "corner" in name}
        centre_v = (lm_v["upper_middle"] + lm_v["lower_middle"]) / 2
        mid = int(np.clip(np.rint((inv_aff[:3, :3] @ centre_v + inv_aff[:3, 3])[2]), 0, geom.n_slices - 1))
        mask = visit.labels[mid] == A.NUCLEUS_BASE + k
        nucleus = float(t2[mid][mask].mean()) if mask.any() else None
        entry = {
            "DHa": _r(dh["DHa"]), "DHm": _r(dh["DHm"]), "DHp": _r(dh["DHp"]),
            "landmarks": {name: _vec(p) for name, p in lm_v.items()},
            "endplate_corners": {name: _vec(p) for name, p in corners_v.items()},
            "centre": _vec(centre_v), "mid_sagittal_slice": mid,
            "nucleus_signal_t2": None if nucleus is None else _r(nucleus, 3),
            "nucleus_voxels_mid_slice": int(mask.sum()),
            "degenerated": level in patient.degenerated, "injected": level in patient.injected,
            "pfirrmann": anat.pfirrmann[level],
        }
        if level in patient.injected:
            base_r2s = 1000.0 / tables[1][A.ANNULUS_BASE + k][3]
            dep = deposits.get(level)
            iron = {"present": dep is not None and dep.r2s_in > 0,
                    "tissue_r2s_per_s": _r(base_r2s, 3), "model": "ΔR2* = const inside sphere, "
                    "ΔR2*·(r0/r)^3 outside; FSE sees ΔR2 = %.2f·ΔR2*" % S.IRON_FSE_FRACTION,
                    "void_definition": "ΔR2*·TE ≥ ln 2 (GRE signal ≤ 50% of the surrounding tissue)"}
            if dep is None:
                iron.update(volume_mm3=0.0, radius_mm=0.0, r2s_per_s=_r(base_r2s, 3), delta_r2s_per_s=0.0,
                            centre=None, void_volume_mm3_by_te={str(te): 0.0 for te in gre.te_ms})
            else:
                iron.update(volume_mm3=_r(dep.volume_mm3(), 4), radius_mm=_r(dep.radius_mm, 4),
                            r2s_per_s=_r(base_r2s + dep.r2s_in, 3), delta_r2s_per_s=_r(dep.r2s_in, 3),
                            centre=_vec(apply(b2v, dep.centre)),
                            void_volume_mm3_by_te={str(te): _r(dep.void_volume_mm3(te), 4) for te in gre.te_ms})
            if dep is not None and cfg is not None:
                iron["void_volume_voxels_mm3_by_te"] = _voxel_void_volumes(dep, geom, visit.visit_to_baseline,
                                                                           cfg["n_sub"], gre.te_ms)
            rule = _iron_rule_truth(lm_v, centre_v, None if dep is None else apply(b2v, dep.centre), dep,
                                    images["gre"], geom, visit.visit_to_baseline, gre.te_ms, visit.noise_sigma)
            iron["void_volume_rule50_mm3_by_te"] = rule.pop("volume_mm3_by_te")
            iron["rule50"] = rule
            entry["iron"] = iron
        rois = _signal_rois(spine, anat, level, geom, b2v, mid, t2)
        if rois:
            entry["signal_rois_t2"] = rois
        discs[level] = entry
    return {
        "label": visit.label, "folder": f"{patient.folder}/{visit.folder}", "days_since_baseline": visit.days,
        "study_uid": visit.study_uid, "frame_of_reference_uid": visit.frame_uid, "study_date": visit.study_date,
        "gain": _r(visit.gain), "noise_sigma": _r(visit.noise_sigma),
        "visit_to_baseline": _mat(visit.visit_to_baseline), "baseline_to_visit": _mat(visit.baseline_to_visit),
        "rotation_deg": list(visit.rotation_deg), "translation_mm": list(visit.translation_mm),
        "rotation_angle_deg": _r(rotation_angle_deg(visit.visit_to_baseline)),
        "transform_convention": "x_baseline = R·x_visit + t, R = Rz·Ry·Rx (rotation_deg = [rx, ry, rz])",
        "vertebrae": _vertebra_truth(spine, b2v),
        "series": [{"uid": s.uid, "number": s.number, "description": s.description, "role": s.role,
                    "te_ms": list(s.echo_times), "tr_ms": s.repetition_time,
                    "flip_deg": s.protocol.sequence.flip_deg, "folder": s.folder,
                    "noise_sigma": _r(visit.noise_sigma), "affine": _mat(s.affine, 9),
                    "shape": list(s.array.shape)} for s in visit.series],
        "discs": discs,
    }


def _vertebra_truth(spine, b2v) -> dict:
    """Vertebral body heights (6-point method, landmarks 2 mm inside the corners) for T12–S1."""
    out = {}
    for name in ("T12", "L1", "L2", "L3", "L4", "L5", "S1"):
        lm = A.vertebra_landmarks(spine, name)
        h = A.disc_heights_from_landmarks(lm)
        out[name] = {"VBHa": _r(h["DHa"]), "VBHm": _r(h["DHm"]), "VBHp": _r(h["DHp"]),
                     "landmarks": {k: _vec(apply(b2v, p)) for k, p in lm.items()}}
    return out


def _signal_rois(spine, anat, level, geom, b2v, mid, t2) -> dict:
    """Two ellipse ROIs on the disc's mid-sagittal T2 slice and their noise-free mean signal: the
    nucleus (centred on the nucleus, semi-axes 0.2·depth along the disc and 0.2·height across) and
    the CSF in the anterior part of the dural sac behind the disc (centre 1.5 mm anterior of the
    canal centre, semi-axes 1.8 mm AP and 4 mm along the canal; levels below the conus only).
    Points (centre, end of axis a, end of axis b) are in visit LPS, projected onto the slice plane;
    a voxel counts when its centre lies inside (the `discviewer.measure.roi` rule)."""
    e = spine.discs[level]
    c, u, n = e.mid
    a0 = A.nucleus_params(anat, level, e.depth, e.width)[0]
    h = e.height
    out = {}
    ellipses = {"nucleus": (c + u * a0, u * 0.2 * e.depth, n * 0.2 * h)}
    if A.DISCS.index(level) >= A.DISCS.index("L2/L3"):
        cc, rap = [], []
        for plane, vname in ((e.top, A.VERTEBRAE[e.index]), (e.bottom, A.VERTEBRAE[e.index + 1])):
            r = A._CANAL[vname][0] * anat.scale
            cc.append(plane.c - plane.u * (e.depth / 2 + r))
            rap.append(r)
        centre = np.mean(cc, axis=0) + u * 1.5
        ellipses["csf"] = (centre, u * 1.8, n * 4.0)
    aff = geom.affine
    normal = aff[:3, 2] / np.linalg.norm(aff[:3, 2])
    origin = aff[:3, :3] @ np.array([0.0, 0.0, float(mid)]) + aff[:3, 3]
    nr, nc = t2.shape[1:]
    jj, ii = np.mgrid[0:nr, 0:nc]
    pts = (aff[:3, 0][:, None, None] * ii + aff[:3, 1][:, None, None] * jj + origin[:, None, None])
    for name, (ctr, va, vb) in ellipses.items():
        ps = [apply(b2v, ctr), apply(b2v, ctr + va), apply(b2v, ctr + vb)]
        ps = [p - normal * np.dot(p - origin, normal) for p in ps]  # onto the slice plane
        ca, cb = ps[1] - ps[0], ps[2] - ps[0]
        la = np.linalg.norm(ca)
        ah = ca / la
        cb = cb - ah * np.dot(cb, ah)
        lb = np.linalg.norm(cb)
        d = pts - ps[0][:, None, None]
        inside = (np.tensordot(ah, d, 1) / la) ** 2 + (np.tensordot(cb / lb, d, 1) / lb) ** 2 <= 1.0
        if not inside.any():
            continue
        out[name] = {"points": [_vec(p) for p in ps], "slice": int(mid), "n_voxels": int(inside.sum()),
                     "signal_t2": _r(float(t2[mid][inside].mean()), 4)}
    return out


IRON_RULE_PERCENT = 50.0
IRON_SEARCH_SLAB_MM = 8.0  # the search ROI covers the slices within ±(8 mm + half a slice) of the deposit
IRON_SEARCH_INSET_MM = (2.0, 1.0)  # search polygon: inside the landmarks along the chord, off the endplates
IRON_REFERENCE_OFFSET_MM = 12.0  # the reference ellipses lie on the planes ±12 mm from the deposit's plane
IRON_REFERENCE_AXES = (0.25, 0.25)  # reference semi-axes: × landmark chord (along the disc), × DHm (across)


def _iron_rois(lm_v: dict, centre_v, origin_v, normal) -> tuple[PlaneROI, list[PlaneROI], dict]:
    """The search ROI and the two reference ROIs of the iron rule truth (visit LPS; see
    `_iron_rule_truth`), and their description for truth.json."""
    da, dn = IRON_SEARCH_INSET_MM
    pts = {}
    for which, other in (("upper", "lower"), ("lower", "upper")):
        a, m, p = (np.asarray(lm_v[f"{which}_{k}"], float) for k in ("anterior", "middle", "posterior"))
        c = (a - p) / np.linalg.norm(a - p)
        inward = np.asarray(lm_v[f"{other}_middle"], float) - m
        inward -= c * np.dot(inward, c)
        inward /= np.linalg.norm(inward)
        pts[which] = (a - c * da + inward * dn, m + inward * dn, p + c * da + inward * dn)
    poly = [*pts["upper"], *pts["lower"][::-1]]
    search = PlaneROI("polygon", tuple(map(tuple, poly)), tuple(origin_v), tuple(normal), IRON_SEARCH_SLAB_MM)
    chords = [np.asarray(lm_v[f"{w}_anterior"], float) - np.asarray(lm_v[f"{w}_posterior"], float)
              for w in ("upper", "lower")]
    ah = chords[0] / np.linalg.norm(chords[0]) + chords[1] / np.linalg.norm(chords[1])
    ah /= np.linalg.norm(ah)
    bh = np.asarray(lm_v["upper_middle"], float) - np.asarray(lm_v["lower_middle"], float)
    dhm = float(np.linalg.norm(bh))
    bh -= ah * np.dot(bh, ah)
    bh /= np.linalg.norm(bh)
    la = IRON_REFERENCE_AXES[0] * float(np.mean([np.linalg.norm(c) for c in chords]))
    lb = IRON_REFERENCE_AXES[1] * dhm
    c = np.asarray(centre_v, float)
    ell = (tuple(c), tuple(c + ah * la), tuple(c + bh * lb))
    planes = [np.asarray(origin_v, float) + sgn * IRON_REFERENCE_OFFSET_MM * np.asarray(normal, float)
              for sgn in (-1.0, 1.0)]
    refs = [PlaneROI("ellipse", ell, tuple(o), tuple(normal), 0.0) for o in planes]
    desc = {
        "search_roi": {"kind": "polygon", "points": [_vec(q) for q in poly], "plane_origin": _vec(origin_v),
                       "plane_normal": _vec(normal, 9), "slab_mm": IRON_SEARCH_SLAB_MM},
        "reference_roi": {"kind": "ellipse", "points": [_vec(q) for q in ell],
                          "planes": [{"plane_origin": _vec(o), "plane_normal": _vec(normal, 9), "slab_mm": 0.0}
                                     for o in planes]},
    }
    return search, refs, desc


def _iron_rule_truth(lm_v, centre_v, dep_centre_v, dep, gre_images, geom: SlabGeometry, v2b, te_list,
                     sigma: float) -> dict:
    """The void volume *by the rule the tool applies* (`discviewer.measure.hypointense_region` with
    IronRule("percent_of_reference", 50)), computed on the noise-free rendered GRE of each echo:

        threshold = 0.50 × mean(noise-free GRE over the reference ROI voxels)
        void      = voxels of the search ROI whose noise-free GRE ≤ threshold
        volume    = void voxel count × |det A|  (mm³)

    Voxels are selected by `discviewer.measure.roi.roi_mask` (voxel-centre rule), so a test or a
    user drawing the same ROIs gets the same voxels. The search ROI ("disc ROI") is the polygon of the
    six disc landmarks moved 2 mm along each endplate chord towards the middle and 1 mm off the
    endplates into the disc, on the plane through the deposit centre (the disc centre when there is no
    deposit) parallel to the slices, slab ±8 mm — so the truth is defined within the disc ROI: the
    field that blooms into the bone is not counted. The reference ROI is an ellipse of disc tissue
    (centred on the disc centre, semi-axes 0.25 × the landmark chord along the disc and 0.25 × DHm
    across) on the two planes 12 mm either side of the deposit's plane (one slice each). The deposit's
    field still darkens it slightly at long TE with fresh iron: `reference_iron_attenuation_by_te` is
    the mean exp(−TE·ΔR2*) over its voxel centres (1.0 = untouched).

    Thresholding noisy voxels shifts the count wherever many voxels sit near the threshold (thick
    slices cut the void's rim tangentially; at short TE the whole void is shallow), so the truth also
    gives what the rule yields *on average* on this visit's Rician magnitude (σ = the visit's noise):
    `expected_with_noise_mm3_by_te` = Σ P(|s_i + n| ≤ t)·|det A| with t = 0.5 × the mean Rician
    expectation over the reference, and its standard deviation `noise_sd_mm3_by_te` =
    sqrt(Σ p_i(1 − p_i))·|det A| (the reference's own noise and the 26-connectivity of the tool are
    negligible next to these)."""
    normal = geom.affine[:3, 2] / np.linalg.norm(geom.affine[:3, 2])
    origin = centre_v if dep_centre_v is None else dep_centre_v
    search, refs, desc = _iron_rois(lm_v, centre_v, origin, normal)
    vol = Volume(gre_images[0], geom.affine)
    smask = roi_mask(vol, search)
    rmask = np.zeros_like(smask)
    for r in refs:
        rmask |= roi_mask(vol, r)
    vox = abs(float(np.linalg.det(geom.affine[:3, :3])))
    att = {}
    if dep is not None:
        kk, rr, cc = np.nonzero(rmask)
        pts = apply(v2b, np.stack([cc, rr, kk], axis=1).astype(float) @ geom.affine[:3, :3].T + geom.affine[:3, 3])
        dr = dep.delta_r2s(pts[:, 0], pts[:, 1], pts[:, 2])
        att = {str(te): _r(float(np.mean(np.exp(-te / 1000.0 * dr))), 4) for te in te_list}
    box = ndimage.find_objects(smask.astype(np.uint8))[0] if smask.any() else (slice(0, 0),) * 3
    ref_mean, thr, n_void, n_comp, volume, expected, sd = {}, {}, {}, {}, {}, {}, {}
    for te, img in zip(te_list, gre_images):
        k = str(te)
        m = float(img[rmask].mean())
        t = IRON_RULE_PERCENT / 100.0 * m
        void = smask & (img <= t)
        n = int(void.sum())
        ref_mean[k], thr[k], n_void[k] = _r(m, 4), _r(t, 4), n
        n_comp[k] = int(ndimage.label(void[box], structure=np.ones((3, 3, 3), bool))[1])
        volume[k] = _r(n * vox, 4)
        # the same rule on this visit's Rician magnitude: the threshold from the expected reference
        # magnitude, each search voxel below it with probability P(|s + noise| ≤ threshold)
        t_noisy = IRON_RULE_PERCENT / 100.0 * float(np.mean(rician_mean(img[rmask], sigma)))
        prob = stats.rice.cdf(t_noisy, np.asarray(img[smask], np.float64) / sigma, scale=sigma)
        expected[k] = _r(float(prob.sum()) * vox, 4)
        sd[k] = _r(float(np.sqrt(np.sum(prob * (1.0 - prob)))) * vox, 4)
    desc.update(rule="percent_of_reference", percent=IRON_RULE_PERCENT,
                search_voxels=int(smask.sum()), reference_voxels=int(rmask.sum()),
                reference_mean_by_te=ref_mean, threshold_by_te=thr, void_voxels_by_te=n_void,
                void_components_by_te=n_comp, reference_iron_attenuation_by_te=att,
                noise_sigma=_r(sigma, 4), expected_with_noise_mm3_by_te=expected, noise_sd_mm3_by_te=sd,
                volume_mm3_by_te=volume)
    return desc


def _voxel_void_volumes(dep, geom, v2b, n_sub: int, te_list) -> dict:
    """Volume (mm³) of the GRE voxels whose through-plane-averaged iron attenuation
    mean_j exp(−TE·ΔR2*(x_j)) is ≤ 0.5 (the void rule on the voxel grid, before the in-plane PSF),
    per echo time; the sub-samples x_j are the renderer's through-plane supersampling points."""
    te_max = max(te_list)
    rc = dep.cutoff_mm(te_max)
    vox = abs(float(np.linalg.det(geom.affine[:3, :3])))
    plane_aff = v2b @ geom.plane_affine(n_sub)
    att = {te: 0 for te in te_list}
    for s in range(geom.n_slices):
        grid = SampleGrid(plane_aff, (n_sub, geom.rows, geom.columns), plane0=s * n_sub)
        b = grid.block(np.array(dep.centre) - rc, np.array(dep.centre) + rc)
        if b is None:
            continue
        sl, X, Y, Z = b
        if sl[0].stop - sl[0].start != n_sub:
            full = (slice(0, n_sub), sl[1], sl[2])
            sl, X, Y, Z = grid._points(full)
        dr = dep.delta_r2s(X, Y, Z)
        for te in te_list:
            a = np.exp(-te / 1000.0 * dr).mean(axis=0)
            att[te] += int((a <= 0.5).sum())
    return {str(te): _r(n * vox, 4) for te, n in att.items()}


def _patient_truth(patient: PhantomPatient, injection_day: int, deposit_params) -> dict:
    return {
        "id": patient.patient_id, "name": patient.patient_name, "folder": patient.folder,
        "injected_levels": list(patient.injected), "degenerated_levels": list(patient.degenerated),
        "injection_day": injection_day,
        "iron_decay_tau_days": {d: _r(p["tau_days"], 3) for d, p in deposit_params.items()},
        "iron_deposit_radius_mm": {d: _r(p["radius"], 4) for d, p in deposit_params.items()},
        "visits": [v.truth for v in patient.visits],
    }


def study_truth(seed: int, size: str, patients: list[dict]) -> dict:
    return {
        "generator": {"name": GENERATOR_NAME, "version": GENERATOR_VERSION, "seed": seed, "size": size},
        "disclaimer": DISCLAIMER,
        "coordinates": "DICOM patient coordinates, LPS, mm; each visit's values in that visit's space",
        "disc_height_method": (
            "6-point, corresponding points, computed analytically on the painted geometry in the anatomical "
            "mid-sagittal plane (x = 0) and mapped to each visit: the disc's upper surface IS the inferior "
            "endplate surface of the vertebra above and its lower surface the superior endplate surface of the "
            "vertebra below (one shared surface each, concave by %.1f mm at the centre). Each endplate's "
            "corners (endplate_corners) are where that endplate surface meets the outer surface of its own "
            "vertebral body's anterior/posterior wall (the body outline before its %.1f mm corner rounding). "
            "On each endplate the anterior/posterior landmarks are the surface points whose projections on "
            "the corner-to-corner chord lie %.1f mm inside the corners, the middle landmark the one projecting "
            "on the chord's midpoint. DHa/DHm/DHp = distances between the upper and lower landmarks."
            % (A.ENDPLATE_CONCAVITY_MM, A.VERTEBRA_CORNER_RADIUS_MM, A.LANDMARK_INSET_MM)),
        "nucleus_signal": "noise-free T2 (stored units, after gain and coil shading) averaged over the "
                          "nucleus voxels of the disc's mid-sagittal slice",
        "field_strength_T": FIELD_STRENGTH_T,
        "r2s_per_s_by_tissue": S.r2s_by_tissue(),
        "signal_rois_t2": "per disc: nucleus and CSF ellipses on the mid-sagittal T2 slice (points: centre, "
                          "end of axis a, end of axis b, projected onto the slice plane) and the noise-free mean "
                          "T2 signal of the voxels whose centres lie inside",
        "vertebral_height_method": "6-point, as disc_height_method on the body's own superior and inferior "
                                   "endplates (anterior/posterior points %.1f mm inside each endplate's corners "
                                   "along its chord, middle at the chord's midpoint)" % A.LANDMARK_INSET_MM,
        "void_volume_voxels": "void_volume_voxels_mm3_by_te: GRE voxels whose through-plane-averaged iron "
                              "attenuation exp(-TE*dR2*) is <= 0.5 (before the in-plane PSF), x voxel volume",
        "void_volume_rule50": (
            "void_volume_rule50_mm3_by_te: the void by the tool's rule (hypointense_region, IronRule "
            "percent_of_reference 50 %%) on the noise-free rendered GRE of each echo: voxels of iron.rule50."
            "search_roi whose noise-free signal <= 0.5 x the noise-free mean over iron.rule50.reference_roi, "
            "x voxel volume; ROIs by the voxel-centre rule of discviewer.measure.roi. Search ROI: the six disc "
            "landmarks moved %.1f mm along each endplate chord towards the middle and %.1f mm off the endplates, "
            "on the plane through the deposit centre parallel to the slices, slab +-%.1f mm (the truth is "
            "defined within this disc ROI; blooming into the bone is not counted). Reference ROI: an ellipse "
            "of disc tissue (centre = disc centre, semi-axes %.2f x landmark chord along the disc and %.2f x DHm "
            "across) on the planes +-%.1f mm from the deposit's plane; reference_iron_attenuation_by_te says "
            "how much the deposit's field still darkens it (mean exp(-TE*dR2*), 1 = none). Deposits are kept "
            "%.1f mm inside the endplates (cells injected into the nucleus stay in the disc). rule50 also gives "
            "expected_with_noise_mm3_by_te / noise_sd_mm3_by_te: the mean and SD of the same rule on this "
            "visit's Rician magnitude (per-voxel Rician CDF at the threshold from the expected reference "
            "magnitude), since thresholding noisy voxels near the threshold shifts the count."
            % (IRON_SEARCH_INSET_MM + (IRON_SEARCH_SLAB_MM,) + IRON_REFERENCE_AXES
               + (IRON_REFERENCE_OFFSET_MM, DEPOSIT_MARGIN_MM))),
        "patients": patients,
    }


def generate_study(*, patients: int = 1, seed: int = 0, size: str = "small",
                   progress: Callable[[int, int], None] | None = None) -> PhantomStudy:
    """Build the whole phantom study in memory (deterministic for `seed`)."""
    pts = list(_iter_patients(patients, seed, size, progress))
    return PhantomStudy(seed=seed, size=size, patients=pts, truth=study_truth(seed, size, [p.truth for p in pts]))

"""The phantom study: patients → visits → series, generated in memory, with the ground-truth dict.

Owns the protocol (series, sizes), the per-patient choices drawn from the seed (injected and
degenerated discs, visit days, repositioning, gain, noise), rendering a visit (through-plane
supersampled partial volume, iron, texture, coil shading, PSF, Rician noise) and the truth.
Core module: numpy/scipy only (DICOM writing lives in `dicomwrite`).
"""
from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..volume import SeriesInfo, Volume
from . import anatomy as A
from . import signal as S
from .geometry import SlabGeometry, apply, plan_slab, rigid_inverse, rigid_matrix, rotation_angle_deg
from .sampling import SampleGrid

GENERATOR_NAME = "discviewer.phantom"
GENERATOR_VERSION = "1.0"
DISCLAIMER = "synthetic phantom — not clinical data"
MANUFACTURER = "discviewer phantom"
FIELD_STRENGTH_T = 1.5

VISITS = (("baseline", 0, "V1_baseline"), ("3 m", 90, "V2_3m"), ("6 m", 180, "V3_6m"),
          ("12 m", 365, "V4_12m"), ("24 m", 730, "V5_24m"))

SIZES = {
    "small": dict(rows=160, columns=160, pixel_mm=1.875, n_slices=9, slice_mm=4.0, n_sub=3, psf_px=0.75),
    "full": dict(rows=512, columns=512, pixel_mm=0.5859375, n_slices=15, slice_mm=4.0, n_sub=5, psf_px=0.7),
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


def _deposits_at(spine: A.Spine, anat, days: int, injection_day: int, params) -> dict[str, S.IronDeposit]:
    out = {}
    for d, prm in params.items():
        if days < injection_day:
            continue
        e = spine.discs[d]
        c, u, n = e.mid
        a0 = A.nucleus_params(anat, d, e.depth, e.width)[0]
        dx, da, dh = prm["offset"]
        centre = c + u * (a0 + da) + n * dh + np.array([dx, 0.0, 0.0])
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


def _render(anat, spine, deposits, geom: SlabGeometry, v2b, cfg, texture: S.Texture, gain: float):
    """Noise-free images {key: [per-echo float32 (slices, rows, cols)]} and the centre label map."""
    n_sub = cfg["n_sub"]
    ns, nr, nc = geom.n_slices, geom.rows, geom.columns
    tables = S.tissue_tables(anat)
    luts = {p.key: S.signal_luts(tables, p.sequence) for p in PROTOCOL}
    images = {p.key: [np.zeros((ns, nr, nc), np.float32) for _ in p.sequence.te_ms] for p in PROTOCOL}
    labels = np.zeros((ns, nr, nc), np.uint8)
    plane_aff = v2b @ geom.plane_affine(n_sub)
    te_max = max(max(p.sequence.te_ms) for p in PROTOCOL)
    for s in range(ns):
        grid = SampleGrid(plane_aff, (n_sub, nr, nc), plane0=s * n_sub)
        A.paint(grid, anat, spine)
        lab, w = grid.labels, grid.w
        iron_blocks = []
        for dep in deposits.values():
            rc = dep.cutoff_mm(te_max)
            b = grid.block(np.array(dep.centre) - rc, np.array(dep.centre) + rc)
            if b is not None:
                sl, X, Y, Z = b
                iron_blocks.append((sl, dep.delta_r2s(X, Y, Z).astype(np.float32)))
        for p in PROTOCOL:
            for e, (lut, dlut) in enumerate(luts[p.key]):
                per = lut[lab]
                per += w * dlut[lab]
                te = p.sequence.te_ms[e] / 1000.0
                frac = 1.0 if p.sequence.kind == "GRE" else S.IRON_FSE_FRACTION
                for sl, dr in iron_blocks:
                    per[sl] *= np.exp(-te * frac * dr)
                images[p.key][e][s] = per.mean(axis=0)
        centre = lab[n_sub // 2].copy()
        disc = (centre >= A.ANNULUS_BASE) & (centre < A.ANNULUS_BASE + len(A.DISCS)) & (w[n_sub // 2] > 0.5)
        centre[disc] += A.NUCLEUS_BASE - A.ANNULUS_BASE
        labels[s] = centre
    # texture (fixed to the anatomy), coil shading (fixed to the scanner), gain, PSF
    aff = geom.affine
    kk, rr, cc = np.meshgrid(np.arange(ns, dtype=np.float32), np.arange(nr, dtype=np.float32),
                             np.arange(nc, dtype=np.float32), indexing="ij")
    pts_v = [aff[i, 0] * cc + aff[i, 1] * rr + aff[i, 2] * kk + aff[i, 3] for i in range(3)]
    pts_a = [v2b[i, 0] * pts_v[0] + v2b[i, 1] * pts_v[1] + v2b[i, 2] * pts_v[2] + v2b[i, 3] for i in range(3)]
    mult = texture.factor(labels, *pts_a) * S.coil_shading(pts_v[1], pts_v[2]) * np.float32(gain)
    del pts_a, pts_v, kk, rr, cc
    for key, imgs in images.items():
        for e in range(len(imgs)):
            imgs[e] = S.psf(imgs[e] * mult, cfg["psf_px"])
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
        lm = A.disc_landmarks(spine, level)
        dh = A.disc_heights_from_landmarks(lm)
        lm_v = {name: apply(b2v, p) for name, p in lm.items()}
        centre_v = (lm_v["upper_middle"] + lm_v["lower_middle"]) / 2
        mid = int(np.clip(np.rint((inv_aff[:3, :3] @ centre_v + inv_aff[:3, 3])[2]), 0, geom.n_slices - 1))
        mask = visit.labels[mid] == A.NUCLEUS_BASE + k
        nucleus = float(t2[mid][mask].mean()) if mask.any() else None
        entry = {
            "DHa": _r(dh["DHa"]), "DHm": _r(dh["DHm"]), "DHp": _r(dh["DHp"]),
            "landmarks": {name: _vec(p) for name, p in lm_v.items()},
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
        "visits": [v.truth for v in patient.visits],
    }


def study_truth(seed: int, size: str, patients: list[dict]) -> dict:
    return {
        "generator": {"name": GENERATOR_NAME, "version": GENERATOR_VERSION, "seed": seed, "size": size},
        "disclaimer": DISCLAIMER,
        "coordinates": "DICOM patient coordinates, LPS, mm; each visit's values in that visit's space",
        "disc_height_method": "6-point: anterior/posterior points %.1f mm inside the endplate corners, "
                              "middle at the endplate centre, mid-sagittal plane" % A.LANDMARK_INSET_MM,
        "nucleus_signal": "noise-free T2 (stored units, after gain and coil shading) averaged over the "
                          "nucleus voxels of the disc's mid-sagittal slice",
        "field_strength_T": FIELD_STRENGTH_T,
        "r2s_per_s_by_tissue": S.r2s_by_tissue(),
        "signal_rois_t2": "per disc: nucleus and CSF ellipses on the mid-sagittal T2 slice (points: centre, "
                          "end of axis a, end of axis b, projected onto the slice plane) and the noise-free mean "
                          "T2 signal of the voxels whose centres lie inside",
        "vertebral_height_method": "6-point: anterior/posterior points %.1f mm inside the corners of each "
                                   "endplate, middle at the endplate centre" % A.LANDMARK_INSET_MM,
        "void_volume_voxels": "void_volume_voxels_mm3_by_te: GRE voxels whose through-plane-averaged iron "
                              "attenuation exp(-TE*dR2*) is <= 0.5 (before the in-plane PSF), x voxel volume",
        "patients": patients,
    }


def generate_study(*, patients: int = 1, seed: int = 0, size: str = "small",
                   progress: Callable[[int, int], None] | None = None) -> PhantomStudy:
    """Build the whole phantom study in memory (deterministic for `seed`)."""
    pts = list(_iter_patients(patients, seed, size, progress))
    return PhantomStudy(seed=seed, size=size, patients=pts, truth=study_truth(seed, size, [p.truth for p in pts]))

"""MR signal model of the phantom: tissue relaxation properties, signal equations, iron, noise.

Owns per-tissue PD/T1/T2/T2* (1.5 T), the FSE and spoiled-GRE signal equations, the per-label
lookup tables used to turn painted labels into noise-free signal, the iron ΔR2* field (deposit plus
(r0/r)^3 blooming fall-off), anatomical texture, receive-coil shading, the in-plane PSF, and Rician
noise. Core module: numpy + scipy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import anatomy as A

# (PD, T1 ms, T2 ms (FSE apparent), T2* ms)
TISSUE = {
    A.AIR: (0.0, 1000.0, 1.0, 1.0),
    A.FAT: (1.0, 260.0, 130.0, 45.0),
    A.MUSCLE: (0.8, 870.0, 50.0, 28.0),
    A.VISCERA: (0.8, 900.0, 75.0, 35.0),
    A.VESSEL: (0.9, 300.0, 8.0, 150.0),  # flow void on FSE, inflow-bright on GRE
    A.CSF: (1.0, 4000.0, 2000.0, 300.0),
    A.CORD: (0.8, 750.0, 80.0, 50.0),
    A.ROOT: (0.75, 800.0, 70.0, 45.0),
    A.EPIDURAL_FAT: (1.0, 260.0, 130.0, 45.0),
    A.LIGAMENT: (0.35, 800.0, 25.0, 12.0),
    A.CORTEX: (0.05, 1000.0, 5.0, 1.0),
    A.POST_MARROW: (0.9, 550.0, 85.0, 12.0),
    A.JOINT: (1.0, 3000.0, 1000.0, 200.0),
}
MARROW = (0.9, 550.0, 85.0, 12.0)
ANNULUS = (0.7, 1000.0, 45.0, 20.0)
NUCLEUS_HEALTHY = (0.95, 1200.0, None, 55.0)  # T2 per level from the anatomy
NUCLEUS_DEGENERATED = (0.78, 1000.0, None, 25.0)

# texture amplitudes (fine, coarse) by tissue, as a fraction of the signal
_TEXTURE = {A.FAT: (0.04, 0.03), A.MUSCLE: (0.06, 0.04), A.VISCERA: (0.12, 0.25), A.CSF: (0.0, 0.02),
            A.LIGAMENT: (0.10, 0.0), A.POST_MARROW: (0.10, 0.06), A.EPIDURAL_FAT: (0.04, 0.0),
            A.CORD: (0.03, 0.0)}
_TEXTURE_MARROW = (0.10, 0.06)
_TEXTURE_DISC = (0.04, 0.02)

IRON_FSE_FRACTION = 0.06  # ΔR2 seen by the refocused FSE = this × ΔR2*


@dataclass(frozen=True)
class Sequence:
    """Acquisition parameters that enter the signal equation."""

    kind: str  # "FSE" | "GRE"
    tr_ms: float
    te_ms: tuple[float, ...]
    flip_deg: float
    scale: float  # arbitrary receiver scale so stored values use a sensible uint16 range


def fse_signal(pd, t1, t2, tr, te):
    """S = PD·(1 − e^{−TR/T1})·e^{−TE/T2}."""
    return pd * (1.0 - np.exp(-tr / t1)) * np.exp(-te / t2)


def gre_signal(pd, t1, t2s, tr, te, flip_deg):
    """Spoiled GRE: S = PD·sinα·(1 − E1)/(1 − cosα·E1)·e^{−TE/T2*}, E1 = e^{−TR/T1}."""
    a = np.deg2rad(flip_deg)
    e1 = np.exp(-tr / t1)
    return pd * np.sin(a) * (1.0 - e1) / (1.0 - np.cos(a) * e1) * np.exp(-te / t2s)


def tissue_tables(anat: A.PatientAnatomy):
    """Per-label property tables: base (annulus for discs) and nucleus (equal to base elsewhere).

    Returns two (256, 4) arrays of (PD, T1, T2, T2*)."""
    base = np.tile(np.array(TISSUE[A.AIR]), (256, 1))
    for lab, p in TISSUE.items():
        base[lab] = p
    for k in range(len(A.VERTEBRAE)):
        base[A.VERTEBRA_BASE + k] = MARROW
    nuc = base.copy()
    for k, d in enumerate(A.DISCS):
        base[A.ANNULUS_BASE + k] = ANNULUS
        src = NUCLEUS_DEGENERATED if d in anat.degenerated else NUCLEUS_HEALTHY
        nuc[A.ANNULUS_BASE + k] = (src[0], src[1], anat.nucleus_t2_ms[d], src[3])
        base[A.NUCLEUS_BASE + k] = nuc[A.ANNULUS_BASE + k]
        nuc[A.NUCLEUS_BASE + k] = nuc[A.ANNULUS_BASE + k]
    return base, nuc


def r2s_by_tissue() -> dict[str, float]:
    """True R2* (s⁻¹ = 1000/T2* ms) of the main tissues, before iron."""
    t = {"annulus": ANNULUS[3], "nucleus_healthy": NUCLEUS_HEALTHY[3], "nucleus_degenerated": NUCLEUS_DEGENERATED[3],
         "marrow": MARROW[3], "muscle": TISSUE[A.MUSCLE][3], "fat": TISSUE[A.FAT][3], "csf": TISSUE[A.CSF][3]}
    return {k: round(1000.0 / v, 6) for k, v in t.items()}


def signal_luts(tables, seq: Sequence) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each echo: (base LUT, nucleus − base LUT), float32[256], signal in `seq.scale` units."""
    out = []
    for te in seq.te_ms:
        per = []
        for tab in tables:
            pd, t1, t2, t2s = tab.T
            if seq.kind == "FSE":
                s = fse_signal(pd, t1, t2, seq.tr_ms, te)
            else:
                s = gre_signal(pd, t1, t2s, seq.tr_ms, te, seq.flip_deg)
            per.append((s * seq.scale).astype(np.float32))
        out.append((per[0], (per[1] - per[0]).astype(np.float32)))
    return out


def tissue_signal(tables, seq: Sequence, label: int, w: float = 0.0, echo: int = 0) -> float:
    """Noise-free signal (seq.scale units, before gain/shading/texture) of one tissue label."""
    lut, dlut = signal_luts(tables, seq)[echo]
    return float(lut[label] + w * dlut[label])


# ---- iron -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IronDeposit:
    """A spherical deposit of iron-labelled cells. ΔR2* = r2s_in inside, r2s_in·(r0/r)^3 outside."""

    centre: tuple[float, float, float]  # anatomical coordinates (LPS mm)
    radius_mm: float
    r2s_in: float  # s⁻¹ added inside the deposit

    def cutoff_mm(self, te_max_ms: float) -> float:
        """Radius beyond which ΔR2*·TE_max < 0.002 (signal change < 0.2 %)."""
        if self.r2s_in <= 0:
            return 0.0
        ratio = self.r2s_in * te_max_ms / 1000.0 / 0.002
        return float(min(self.radius_mm * max(ratio, 1.0) ** (1.0 / 3.0), 45.0))

    def delta_r2s(self, X, Y, Z):
        r = np.sqrt((X - self.centre[0]) ** 2 + (Y - self.centre[1]) ** 2 + (Z - self.centre[2]) ** 2)
        r = np.maximum(r, 1e-6)
        return np.where(r <= self.radius_mm, self.r2s_in, self.r2s_in * (self.radius_mm / r) ** 3)

    def volume_mm3(self) -> float:
        return float(4.0 / 3.0 * np.pi * self.radius_mm**3)

    def void_volume_mm3(self, te_ms: float) -> float:
        """Volume where ΔR2*·TE ≥ ln 2 (signal ≤ half the surrounding tissue's), analytic."""
        x = self.r2s_in * te_ms / 1000.0 / np.log(2.0)
        return float(self.volume_mm3() * x) if x >= 1.0 else 0.0


# ---- texture, shading, PSF, noise ----------------------------------------------------------------
class Texture:
    """Two smooth random fields fixed to the anatomy (so texture moves with the patient)."""

    origin = np.array([-70.0, -200.0, -220.0])
    step = 2.0
    shape = (71, 201, 221)

    def __init__(self, rng: np.random.Generator):
        fine = ndimage.gaussian_filter(rng.standard_normal(self.shape, dtype=np.float32), 0.7)
        coarse = ndimage.gaussian_filter(rng.standard_normal(self.shape, dtype=np.float32), 4.0)
        self.fine = fine / fine.std()
        self.coarse = coarse / coarse.std()
        self.amp = np.zeros((256, 2), dtype=np.float32)
        for lab, a in _TEXTURE.items():
            self.amp[lab] = a
        for k in range(len(A.VERTEBRAE)):
            self.amp[A.VERTEBRA_BASE + k] = _TEXTURE_MARROW
        for k in range(len(A.DISCS)):
            self.amp[A.ANNULUS_BASE + k] = _TEXTURE_DISC
            self.amp[A.NUCLEUS_BASE + k] = _TEXTURE_DISC

    def fields(self, X, Y, Z) -> tuple[np.ndarray, np.ndarray]:
        """The (fine, coarse) unit random fields at anatomical points (trilinear, float32)."""
        shape = np.shape(X)
        idx = [(X - self.origin[0]) / self.step, (Y - self.origin[1]) / self.step,
               (Z - self.origin[2]) / self.step]
        coords = np.stack([np.asarray(i, dtype=np.float32).ravel() for i in idx])
        f = ndimage.map_coordinates(self.fine, coords, order=1, mode="nearest").reshape(shape)
        c = ndimage.map_coordinates(self.coarse, coords, order=1, mode="nearest").reshape(shape)
        return f, c

    def factor(self, labels: np.ndarray, X, Y, Z) -> np.ndarray:
        """Multiplicative texture 1 + a_f·f + a_c·c (≥ 0.1) at anatomical points of tissue `labels`."""
        f, c = self.fields(X, Y, Z)
        amp = self.amp[labels]
        return np.maximum(1.0 + amp[..., 0] * f + amp[..., 1] * c, 0.1).astype(np.float32)


def coil_shading(Y, Z) -> np.ndarray:
    """Receive sensitivity of a posterior spine array (scanner-fixed): brighter near the table."""
    return ((0.45 + 0.55 * np.exp(-(110.0 - Y) / 150.0)) * (1.0 - 0.12 * (Z / 150.0) ** 2)).astype(np.float32)


def psf(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """In-plane blur of a (slices, rows, columns) stack (k-space truncation / reconstruction), applied
    after each voxel has been averaged over its own extent (so the total in-plane response is the
    pixel box convolved with this Gaussian)."""
    if sigma_px <= 0:
        return img
    return ndimage.gaussian_filter(img, (0.0, sigma_px, sigma_px), mode="nearest")


def rician(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """|img + σ·(n1 + i·n2)|, then rounded and clipped to uint16."""
    n1 = rng.standard_normal(img.shape, dtype=np.float32)
    n2 = rng.standard_normal(img.shape, dtype=np.float32)
    n1 *= sigma
    n1 += img
    n2 *= sigma
    mag = np.hypot(n1, n2)
    return np.clip(np.rint(mag), 0, 65535).astype(np.uint16)

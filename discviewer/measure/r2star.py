"""R2* (= 1/T2*) maps from a multi-echo gradient echo, noise-floor aware, vectorised over voxels.

Model: S(TE) = S0 · exp(−R2*·TE), TE in ms on input, R2* in s⁻¹ on output (R2* = 1000 · rate per ms).
Magnitude images do not decay to 0 but to the Rician noise floor (mean σ·√(π/2) ≈ 1.25σ), so a
plain fit of late, dark echoes underestimates R2* — worst in iron, where it matters (DOMAIN.md §1).

Methods (`method`):
- `"loglinear"`: weighted least squares of ln S on TE with weights S² (var(ln S) ≈ σ²/S²):
      slope = (Σw·Σw t y − Σw t·Σw y) / (Σw·Σw t² − (Σw t)²),  R2* = −1000·slope,
      S0 = exp((Σw y − slope·Σw t)/Σw),   y = ln S, t = TE.
  With `noise_sigma` σ, echoes with S < `min_snr`·σ are excluded (weight 0) — the "exclude echoes
  near the floor" remedy. A voxel keeps at least its first two echoes.
- `"rician"`: the exact Rician mean as the model of the measured magnitude,
      E[M] = σ·√(π/2)·[(1 + 2z)·I0e(z) + 2z·I1e(z)],  z = A²/(4σ²),  A = S0·exp(−R2*·TE)
  (I0e, I1e exponentially scaled Bessel functions; E[M] → A + σ²/(2A) when A ≫ σ and → 1.2533σ when
  A → 0), fitted per voxel by damped Gauss–Newton (Levenberg–Marquardt, `iterations` steps) on all
  echoes, started from the log-linear fit. Needs σ: the Gaussian noise SD of each channel (for a
  magnitude background ROI: σ = mean/√(π/2), or SD/0.655 — `discviewer.measure.signal`). Voxels whose
  darkest echo is ≥ 10σ keep the log-linear fit (there E[M] = A + σ²/(2A) is within 0.5 % of A), which
  keeps the method fast.
- `"auto"`: `"rician"` when `noise_sigma` is given, else `"loglinear"`.

R2* is clipped to [0, `max_r2s`] (default 2000 s⁻¹); voxels outside `mask` are NaN, and so are voxels
whose first echo is below `min_snr`·σ when σ is given (background: nothing to fit). Fit quality is the
RMS residual of the fitted model over the echoes used (stored units).

Core module: numpy + scipy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import i0e, i1e

from discviewer.volume import Volume

__all__ = ["R2StarMap", "r2star_map", "rician_mean"]

_SQRT_HALF_PI = float(np.sqrt(np.pi / 2.0))
_RICIAN_REFINE_SNR = 10.0  # voxels whose darkest echo is below this many σ get the Rician fit


@dataclass(frozen=True)
class R2StarMap:
    """Per-voxel fit results, each shaped like one echo; NaN outside the mask."""

    r2s_per_s: np.ndarray
    s0: np.ndarray
    rmse: np.ndarray
    n_echoes: np.ndarray  # echoes used per voxel (all of them for "rician")
    method: str
    echo_times_ms: tuple[float, ...]
    noise_sigma: float | None = None

    @property
    def t2s_ms(self) -> np.ndarray:
        """T2* = 1000 / R2* (ms)."""
        with np.errstate(divide="ignore"):
            return 1000.0 / self.r2s_per_s

    def volume(self, like: Volume) -> Volume:
        """The R2* map as a `Volume` on the echoes' geometry."""
        return Volume(self.r2s_per_s.astype(np.float32), like.affine.copy(), like.info)


def rician_mean(a, sigma: float) -> np.ndarray:
    """E[M] of a Rician magnitude with underlying amplitude `a` and Gaussian σ (see module doc)."""
    a = np.minimum(np.abs(np.asarray(a, dtype=np.float64)), 1e150)
    z = a * a / (4.0 * sigma * sigma)
    return sigma * _SQRT_HALF_PI * ((1.0 + 2.0 * z) * i0e(z) + 2.0 * z * i1e(z))


def _stack(echoes) -> np.ndarray:
    if isinstance(echoes, np.ndarray):
        arr = echoes
    else:
        arr = np.stack([np.asarray(e.array if isinstance(e, Volume) else e) for e in echoes])
    if arr.ndim < 2:
        raise ValueError("echoes must be a list of arrays/volumes or an array with the echo axis first")
    return arr.astype(np.float64)


def _loglinear(y_s: np.ndarray, te: np.ndarray, use: np.ndarray):
    """Weighted log-linear fit over axis 0 (echo). y_s: signals (E, N); use: bool (E, N)."""
    s = np.maximum(y_s, 1e-6)
    y = np.log(s)
    w = np.where(use, s * s, 0.0)
    t = te[:, None]
    sw = w.sum(0)
    st = (w * t).sum(0)
    sy = (w * y).sum(0)
    stt = (w * t * t).sum(0)
    sty = (w * t * y).sum(0)
    den = sw * stt - st * st
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(den > 0, (sw * sty - st * sy) / den, np.nan)
        ln_s0 = np.where(sw > 0, (sy - slope * st) / sw, np.nan)
    return ln_s0, -slope  # rate per ms


def r2star_map(echoes, echo_times_ms, *, mask=None, method: str = "auto", noise_sigma: float | None = None,
               min_snr: float = 3.0, iterations: int = 10, max_r2s: float = 2000.0) -> R2StarMap:
    """Fit S = S0·exp(−R2*·TE) per voxel. `echoes`: a list of `Volume`s or arrays (one per echo) or
    an array with the echo axis first; `echo_times_ms` one TE per echo (ms). See the module doc."""
    data = _stack(echoes)
    te = np.asarray(echo_times_ms, dtype=np.float64).ravel()
    if te.size != data.shape[0]:
        raise ValueError(f"{data.shape[0]} echoes but {te.size} echo times")
    if te.size < 2:
        raise ValueError("at least two echoes are needed")
    if np.any(np.diff(np.sort(te)) <= 0):
        raise ValueError("echo times must be distinct")
    if method == "auto":
        method = "rician" if noise_sigma else "loglinear"
    if method not in ("loglinear", "rician"):
        raise ValueError(f"method must be 'auto', 'loglinear' or 'rician', got {method!r}")
    if method == "rician" and not noise_sigma:
        raise ValueError("the 'rician' method needs noise_sigma")
    shape = data.shape[1:]
    m = np.ones(shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != shape:
        raise ValueError("mask must have the shape of one echo")
    y = data[:, m]  # (E, N)
    order = np.argsort(te)
    te_s = te[order]
    y = y[order]
    # echoes used by the log-linear fit: above the floor (if σ known), at least the first two
    if noise_sigma:
        use = y >= min_snr * float(noise_sigma)
        use[:2] = True
    else:
        use = np.ones_like(y, dtype=bool)
    ln_s0, rate = _loglinear(y, te_s, use)
    rate = np.clip(np.nan_to_num(rate, nan=0.0), 0.0, max_r2s / 1000.0)
    ln_s0 = np.nan_to_num(ln_s0, nan=0.0)
    n_used = use.sum(0)
    if method == "rician":
        sig = float(noise_sigma)
        # only voxels whose darkest echo comes near the floor need the Rician model; elsewhere
        # E[M] = A + σ²/(2A) differs from A by < 0.5 % and the log-linear fit stands
        near = (y.min(0) < _RICIAN_REFINE_SNR * sig) & (y[0] >= min_snr * sig)
        ln_s0_all, rate_all = ln_s0, rate
        yf = y[:, near]
        ln_s0, rate = ln_s0_all[near], rate_all[near]
        lam = np.full(rate.shape, 1e-3)

        def cost(l0, r):
            a = np.exp(np.clip(l0[None] - r[None] * te_s[:, None], -50.0, 50.0))
            res = yf - rician_mean(a, sig)
            return res, a, (res * res).sum(0)

        res, a, c = cost(ln_s0, rate)
        for _ in range(iterations):
            z = a * a / (4.0 * sig * sig)
            dmda = _SQRT_HALF_PI * a / (2.0 * sig) * (i0e(z) + i1e(z))
            j0 = dmda * a  # ∂E/∂ln S0
            j1 = -dmda * a * te_s[:, None]  # ∂E/∂rate
            a00 = (j0 * j0).sum(0)
            a01 = (j0 * j1).sum(0)
            a11 = (j1 * j1).sum(0)
            g0 = (j0 * res).sum(0)
            g1 = (j1 * res).sum(0)
            b00 = a00 * (1 + lam)
            b11 = a11 * (1 + lam)
            det = b00 * b11 - a01 * a01
            with np.errstate(divide="ignore", invalid="ignore"):
                d0 = np.where(det > 0, (b11 * g0 - a01 * g1) / det, 0.0)
                d1 = np.where(det > 0, (b00 * g1 - a01 * g0) / det, 0.0)
            l_new = ln_s0 + d0
            r_new = np.clip(rate + d1, 0.0, max_r2s / 1000.0)
            res_n, a_n, c_n = cost(l_new, r_new)
            better = c_n < c
            ln_s0 = np.where(better, l_new, ln_s0)
            rate = np.where(better, r_new, rate)
            lam = np.where(better, lam / 3.0, lam * 10.0)
            res = np.where(better[None], res_n, res)
            a = np.where(better[None], a_n, a)
            c = np.where(better, c_n, c)
        ln_s0_all[near], rate_all[near] = ln_s0, rate
        ln_s0, rate = ln_s0_all, rate_all
        model = np.exp(ln_s0[None] - rate[None] * te_s[:, None])
        model[:, near] = rician_mean(model[:, near], sig)
        rmse = np.sqrt(((y - model) ** 2).mean(0))
        n_used = np.full(rate.shape, te_s.size)
    else:
        model = np.exp(ln_s0[None] - rate[None] * te_s[:, None])
        r2 = np.where(use, (y - model) ** 2, 0.0).sum(0)
        rmse = np.sqrt(r2 / np.maximum(n_used, 1))
    out_r = np.full(shape, np.nan)
    out_s0 = np.full(shape, np.nan)
    out_q = np.full(shape, np.nan)
    out_n = np.zeros(shape, dtype=np.int16)
    if noise_sigma:  # no signal even at the first echo: background, no fit
        rate = np.where(y[0] >= min_snr * float(noise_sigma), rate, np.nan)
    out_r[m] = rate * 1000.0
    out_s0[m] = np.exp(ln_s0)
    out_q[m] = rmse
    out_n[m] = n_used
    return R2StarMap(out_r, out_s0, out_q, out_n, method, tuple(float(t) for t in te), noise_sigma)

"""Signal ratios, SNR and CNR from ROI statistics.

**Why ratios.** Raw MR intensities are not comparable between visits (or scanners): receiver gain,
coil loading and position, and the scanner's scaling change them by tens of percent (the phantom
draws a gain of 0.6–1.5 per visit). A ratio of two ROIs on the *same slice of the same series*
cancels every factor that multiplies the whole image (gain, scaling) and, with nearby ROIs, most of
the coil shading. So disc signal is followed as SI(nucleus)/SI(reference) with a reference that
does not change with disease: CSF, vertebral body marrow or fat (DOMAIN.md §2).

    ratio = mean_disc / mean_reference
    se    = ratio · √((sd_disc/mean_disc)²/n_disc + (sd_ref/mean_ref)²/n_ref)     (first-order, independent
                                                                                 voxels — an underestimate
                                                                                 where the PSF correlates them)

**SNR / CNR** (noise SD from a background ROI in air):
    SNR = mean / SD_noise,    CNR = (mean_a − mean_b) / SD_noise.
A magnitude image's background is Rayleigh distributed: its SD is √(2 − π/2) ≈ 0.655 of the
underlying Gaussian σ (`RAYLEIGH_SD_FACTOR`). Pass `rayleigh_factor=RAYLEIGH_SD_FACTOR` to use
SD_noise = SD_background / factor; by default the background SD is used as is (no correction), the
same default as `discviewer.measure_table`. Alternatively σ = mean_background / √(π/2)
(`noise_sigma_from_background`).

Core module: numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .roi import RoiStats

__all__ = ["SignalRatio", "signal_ratio", "snr", "cnr", "noise_sd", "noise_sigma_from_background",
           "RAYLEIGH_SD_FACTOR"]

RAYLEIGH_SD_FACTOR = float(np.sqrt(2.0 - np.pi / 2.0))  # 0.6551: SD of a Rayleigh variable / σ


@dataclass(frozen=True)
class SignalRatio:
    """SI(disc)/SI(reference) of two ROIs on the same slice and series."""

    ratio: float
    se: float  # first-order standard error (see module doc)
    numerator_mean: float
    denominator_mean: float
    numerator_n: int
    denominator_n: int
    method: str = "mean ratio"

    def values(self) -> dict[str, float]:
        return {"signal_ratio": self.ratio}


def signal_ratio(disc_stats: RoiStats, reference_stats: RoiStats) -> SignalRatio:
    """ratio = mean_disc / mean_reference; se = ratio·√((sd_d/mean_d)²/n_d + (sd_r/mean_r)²/n_r).
    Raises ValueError when the reference mean is not positive."""
    md, mr = float(disc_stats.mean), float(reference_stats.mean)
    if not mr > 0:
        raise ValueError("the reference ROI's mean must be positive")
    r = md / mr
    terms = 0.0
    if md != 0 and disc_stats.n_voxels > 0:
        terms += (disc_stats.sd / md) ** 2 / disc_stats.n_voxels
    if reference_stats.n_voxels > 0:
        terms += (reference_stats.sd / mr) ** 2 / reference_stats.n_voxels
    return SignalRatio(r, abs(r) * float(np.sqrt(terms)), md, mr, int(disc_stats.n_voxels),
                       int(reference_stats.n_voxels))


def noise_sd(background: RoiStats | float, rayleigh_factor: float | None = None) -> float:
    """SD_noise = SD_background (a RoiStats' sd, or a number) / rayleigh_factor (when given)."""
    sd = float(background.sd if isinstance(background, RoiStats) else background)
    if rayleigh_factor:
        sd /= float(rayleigh_factor)
    if not sd > 0:
        raise ValueError("the noise SD must be positive")
    return sd


def noise_sigma_from_background(background: RoiStats) -> float:
    """Gaussian σ of a magnitude image from the mean of a signal-free (Rayleigh) region:
    σ = mean / √(π/2)."""
    return float(background.mean) / float(np.sqrt(np.pi / 2.0))


def snr(stats: RoiStats, background: RoiStats | float, *, rayleigh_factor: float | None = None) -> float:
    """SNR = mean / SD_noise."""
    return float(stats.mean) / noise_sd(background, rayleigh_factor)


def cnr(a: RoiStats | float, b: RoiStats | float, background: RoiStats | float, *,
        rayleigh_factor: float | None = None) -> float:
    """CNR = (mean_a − mean_b) / SD_noise (means of RoiStats or numbers)."""
    ma = float(a.mean if isinstance(a, RoiStats) else a)
    mb = float(b.mean if isinstance(b, RoiStats) else b)
    return (ma - mb) / noise_sd(background, rayleigh_factor)

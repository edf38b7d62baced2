"""Iron-labelled cells as a hypointense region: threshold rule, area, volume, contrast, CNR, score.

Iron oxide shortens T2*: labelled cells appear as a dark signal void that grows with echo time and
field strength (DOMAIN.md §1). Its size is comparable between visits only at the same TE, field
strength and voxel size, so every `IronResult` carries them (`acquisition`).

**Rule** (`IronRule`, named and stored with the value):
- `percent_of_reference` (p %): void where SI ≤ p/100 · mean_reference. With p = 50 and the
  reference = iron-free disc tissue this approximates "GRE signal ≤ 50 % of the surrounding tissue"
  (ΔR2*·TE ≥ ln 2); it equals it only where the tissue is as bright as the reference. The phantom's
  truth for this rule (`iron.void_volume_rule50_mm3_by_te`, with the search and reference ROIs in
  `iron.rule50`) applies exactly this function's rule to its noise-free images.
- `mean_minus_k_sd` (k): void where SI ≤ mean_reference − k·SD_reference (a statistical outlier rule;
  it depends on the reference's noise and texture, so it is not comparable across SNR).

**Region** (`hypointense_region`): the voxels of the search ROI (`roi_mask`, voxel-centre rule)
at or below the threshold; with `connected=True` only the 3-D 26-connected components that touch
the darkest voxel (or a given `seed`) are kept, so that scattered dark noise voxels do not count.

    area_mm2 (per slice)  = voxel count in the slice × column spacing × row spacing
    volume_mm3            = voxel count × |det A|   (= Σ areas × slice interval for a slice stack;
                                                    the slice interval is the affine's, from
                                                    ImagePositionPatient, never SliceThickness)
    contrast_ratio        = (SI_void − SI_ref) / SI_ref                (−1 … 0 for a void)
    cnr                   = (SI_ref − SI_void) / SD_noise              (SD_noise from a background ROI;
                                                                        `rayleigh_factor` as in
                                                                        `discviewer.measure.signal`)
SI_void is the mean of the void voxels, SI_ref the reference mean.

**Suggested score** (`suggested_iron_score`): the ordinal 0–3 presence score is a *reader's*
judgement (0 none, 1 equivocal, 2 definite focal, 3 extensive). As a starting suggestion only:
0 when the void holds fewer than `min_voxels` voxels, 1 below `focal_mm3`, 2 below `extensive_mm3`,
else 3 (defaults 3 voxels, 10 mm³, 500 mm³ *(verify; tune per protocol and TE)*).

Core module: numpy + scipy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from discviewer.volume import Volume

from .roi import PlaneROI, RoiStats, roi_mask
from .signal import noise_sd

__all__ = ["IronRule", "IronResult", "hypointense_region", "suggested_iron_score", "IRON_RULE_KINDS"]

IRON_RULE_KINDS = ("percent_of_reference", "mean_minus_k_sd")


@dataclass(frozen=True)
class IronRule:
    """Threshold rule for the void: `kind` "percent_of_reference" (uses `percent`) or
    "mean_minus_k_sd" (uses `k`)."""

    kind: str = "percent_of_reference"
    percent: float = 50.0
    k: float = 2.0

    def __post_init__(self) -> None:
        if self.kind not in IRON_RULE_KINDS:
            raise ValueError(f"iron rule kind must be one of {IRON_RULE_KINDS}, got {self.kind!r}")
        if self.kind == "percent_of_reference" and not 0 < self.percent < 100:
            raise ValueError("percent must be in (0, 100)")

    def threshold(self, reference: RoiStats) -> float:
        """p/100·mean_ref, or mean_ref − k·SD_ref."""
        if self.kind == "percent_of_reference":
            return self.percent / 100.0 * float(reference.mean)
        return float(reference.mean) - self.k * float(reference.sd)

    def text(self) -> str:
        if self.kind == "percent_of_reference":
            return f"SI ≤ {self.percent:g} % of the reference mean"
        return f"SI ≤ reference mean − {self.k:g}·SD"


@dataclass(frozen=True)
class IronResult:
    """A hypointense region and its quantities (see the module doc for the formulas)."""

    mask: np.ndarray  # bool (slices, rows, columns)
    area_mm2_per_slice: tuple[tuple[int, float], ...]  # (slice index, area) for slices with void voxels
    volume_mm3: float
    n_voxels: int
    mean_void: float
    reference_mean: float
    contrast_ratio: float
    cnr: float | None
    threshold: float
    rule: str
    acquisition: dict  # echo_time_ms, field_strength_T, voxel_mm (column, row, slice)

    @property
    def area_mm2_max(self) -> float:
        return max((a for _, a in self.area_mm2_per_slice), default=0.0)

    def values(self) -> dict[str, float]:
        """The values of an `iron` annotation (`discviewer.annotations`)."""
        out = {"void_volume_mm3": self.volume_mm3, "void_area_mm2": self.area_mm2_max,
               "contrast_ratio": self.contrast_ratio}
        if self.cnr is not None:
            out["cnr"] = self.cnr
        return out

    units = {"void_volume_mm3": "mm³", "void_area_mm2": "mm²", "contrast_ratio": "", "cnr": ""}


def hypointense_region(volume: Volume, roi: PlaneROI | np.ndarray, reference_stats: RoiStats,
                       rule: IronRule = IronRule(), *, background_stats: RoiStats | float | None = None,
                       rayleigh_factor: float | None = None, connected: bool = True, seed=None) -> IronResult:
    """The void inside the search `roi` (a `PlaneROI` or a boolean mask shaped like the volume):
    voxels with SI ≤ `rule.threshold(reference_stats)`, optionally limited to the 26-connected
    components touching the darkest voxel or the `seed` point (LPS mm). See the module doc."""
    arr = np.asarray(volume.array)
    search = roi_mask(volume, roi) if isinstance(roi, PlaneROI) else np.asarray(roi, bool)
    if search.shape != arr.shape:
        raise ValueError("the search mask must have the volume's shape")
    thr = rule.threshold(reference_stats)
    void = search & (arr <= thr)
    if connected and void.any():
        lab, _ = ndimage.label(void, structure=np.ones((3, 3, 3), bool))
        if seed is not None:
            c, r, k = np.rint(volume.patient_to_index(np.asarray(seed, float))).astype(int)
            keep = {int(lab[k, r, c])} if (0 <= k < arr.shape[0] and 0 <= r < arr.shape[1]
                                          and 0 <= c < arr.shape[2]) else set()
            keep.discard(0)
        else:
            vals = np.where(void, arr, np.inf)
            keep = {int(lab.flat[int(np.argmin(vals))])}
        void = np.isin(lab, list(keep)) if keep else np.zeros_like(void)
    aff = volume.affine
    col, row = (float(np.linalg.norm(aff[:3, k])) for k in (0, 1))
    det = abs(float(np.linalg.det(aff[:3, :3])))
    per = tuple((int(k), float(void[k].sum() * col * row)) for k in np.flatnonzero(void.any(axis=(1, 2))))
    n = int(void.sum())
    ref = float(reference_stats.mean)
    mean_void = float(arr[void].mean()) if n else float("nan")
    contrast = (mean_void - ref) / ref if n and ref else float("nan")
    c = None
    if background_stats is not None and n:
        c = (ref - mean_void) / noise_sd(background_stats, rayleigh_factor)
    info = volume.info
    acq = {"echo_time_ms": info.echo_time, "field_strength_T": info.field_strength,
           "voxel_mm": tuple(float(np.linalg.norm(aff[:3, k])) for k in range(3))}
    return IronResult(void, per, float(n * det), n, mean_void, ref, float(contrast), c, float(thr), rule.text(), acq)


def suggested_iron_score(result: IronResult | float, *, min_voxels: int = 3, focal_mm3: float = 10.0,
                         extensive_mm3: float = 500.0) -> int:
    """A *suggestion* for the reader's 0–3 iron score from the void volume (module doc)."""
    if isinstance(result, IronResult):
        if result.n_voxels < min_voxels:
            return 0
        vol = result.volume_mm3
    else:
        vol = float(result)
        if vol <= 0:
            return 0
    if vol < focal_mm3:
        return 1
    if vol < extensive_mm3:
        return 2
    return 3

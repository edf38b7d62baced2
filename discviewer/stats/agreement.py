"""Agreement of continuous measurements: Bland–Altman bias and limits of agreement, and measurement
error (SEM, smallest detectable change) for inter-reader or intra-reader (re-read) data.

Owns: the formulas below; the ANOVA mean squares come from :mod:`discviewer.stats.icc`.

Bland–Altman (Bland & Altman 1986, 1999). d_i = a_i − b_i over the n complete pairs,
    bias d̄ = mean d_i,  SD = sample SD of d_i (ddof = 1)
    95 % limits of agreement  LoA = d̄ ± 1.96 · SD
    95 % CIs (Bland & Altman 1999, Stat Methods Med Res 8:135), t = t_0.975(n − 1):
        bias:  d̄ ± t · SD / √n
        each limit:  LoA ± t · SD · √(1/n + 1.96² / (2 (n − 1)))
    (The 1986 paper's rougher √(3 SD²/n) is the large-n form of the same SE.)

Measurement error (de Vet, Terwee, Knol & Bouter 2006, J Clin Epidemiol 59:1033), from the two-way
ANOVA of subjects × k repeated measurements (readers, or reads of one reader):
    σ²_error  = MS_error
    σ²_raters = (MS_cols − MS_error) / n      (truncated at 0 when negative)
    SEM_agreement   = √(σ²_raters + σ²_error)     — systematic differences between readers/reads count
    SEM_consistency = √(σ²_error)                 — they do not
    SDC = 1.96 · √2 · SEM   (smallest detectable change of one subject between two measurements)
With k = 2, SEM_consistency = SD(a − b)/√2. The matching ICCs are ICC(A,1) (agreement) and ICC(C,1)
(consistency), reported as ``icc_used``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from .icc import icc

__all__ = ["BlandAltmanResult", "MeasurementError", "bland_altman", "measurement_error"]

LOA_Z = 1.96


@dataclass(frozen=True)
class BlandAltmanResult:
    """Bias (mean of a − b), SD of differences, 95 % limits of agreement and their 95 % CIs
    (each CI a (low, high) tuple)."""

    n: int
    bias: float
    sd: float
    loa_low: float
    loa_high: float
    bias_ci: tuple[float, float]
    loa_low_ci: tuple[float, float]
    loa_high_ci: tuple[float, float]


@dataclass(frozen=True)
class MeasurementError:
    """SEM and SDC in the units of the data. ``method`` is ``"agreement"`` or ``"consistency"``;
    ``icc_used`` the value of the matching ICC (ICC(A,1) or ICC(C,1))."""

    sem: float
    sdc: float
    icc_used: float
    method: str


def bland_altman(a, b) -> BlandAltmanResult:
    """Bland–Altman statistics of paired measurements ``a`` and ``b`` (differences a − b).

    Pairs with NaN in either are dropped. With fewer than 2 pairs SD and all intervals are NaN.
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a and b differ in length ({a.size} vs {b.size})")
    d = (a - b)[~(np.isnan(a) | np.isnan(b))]
    n = int(d.size)
    nan2 = (math.nan, math.nan)
    if n == 0:
        return BlandAltmanResult(0, math.nan, math.nan, math.nan, math.nan, nan2, nan2, nan2)
    bias = float(d.mean())
    if n < 2:
        return BlandAltmanResult(n, bias, math.nan, math.nan, math.nan, nan2, nan2, nan2)
    sd = float(d.std(ddof=1))
    lo, hi = bias - LOA_Z * sd, bias + LOA_Z * sd
    t = float(_st.t.ppf(0.975, n - 1))
    se_bias = sd / math.sqrt(n)
    se_loa = sd * math.sqrt(1.0 / n + LOA_Z ** 2 / (2.0 * (n - 1)))
    return BlandAltmanResult(
        n, bias, sd, lo, hi,
        (bias - t * se_bias, bias + t * se_bias),
        (lo - t * se_loa, lo + t * se_loa),
        (hi - t * se_loa, hi + t * se_loa),
    )


def measurement_error(data, kind: str = "agreement") -> MeasurementError:
    """SEM and SDC of ``data`` (subjects × repeated measurements: readers or re-reads; rows with NaN
    dropped). ``kind="agreement"`` (default; systematic reader/read differences are error) or
    ``"consistency"``. Formulas in the module docstring (de Vet et al. 2006)."""
    if kind not in ("agreement", "consistency"):
        raise ValueError(f"kind must be 'agreement' or 'consistency', not {kind!r}")
    table = icc(data)
    var_err = table.ms_error
    if kind == "agreement":
        var_raters = max((table.ms_cols - table.ms_error) / table.n, 0.0)
        sem = math.sqrt(var_raters + var_err)
        icc_used = table["ICC(A,1)"].value
    else:
        sem = math.sqrt(var_err)
        icc_used = table["ICC(C,1)"].value
    return MeasurementError(sem, LOA_Z * math.sqrt(2.0) * sem, icc_used, kind)

"""Intraclass correlation coefficients for continuous measurements (n subjects × k readers or reads).

Owns: the one- and two-way ANOVA mean squares of a complete subjects × raters table and the six ICC
forms of Shrout & Fleiss (1979), named as in McGraw & Wong (1996), with F tests and 95 % intervals.

Mean squares (x_ij, i = 1…n subjects/rows, j = 1…k raters/columns, ḡ grand mean):
    SS_rows = k Σ_i (x̄_i. − ḡ)²     MS_rows  (MSB, "between targets") = SS_rows / (n − 1)
    SS_cols = n Σ_j (x̄_.j − ḡ)²     MS_cols  (MSJ, "judges")          = SS_cols / (k − 1)
    SS_err  = SS_tot − SS_rows − SS_cols     MS_error (MSE)             = SS_err / ((n − 1)(k − 1))
    SS_within = SS_tot − SS_rows             MS_within (MSW, one-way)   = SS_within / (n (k − 1))

ICCs (S&F name in brackets):
    ICC(1,1)            = (MSB − MSW) / (MSB + (k − 1) MSW)
    ICC(A,1) [ICC(2,1)] = (MSB − MSE) / (MSB + (k − 1) MSE + k (MSJ − MSE) / n)   ← absolute agreement
    ICC(C,1) [ICC(3,1)] = (MSB − MSE) / (MSB + (k − 1) MSE)                        ← consistency
    ICC(1,k)            = (MSB − MSW) / MSB
    ICC(A,k) [ICC(2,k)] = (MSB − MSE) / (MSB + (MSJ − MSE) / n)
    ICC(C,k) [ICC(3,k)] = (MSB − MSE) / MSB

F tests of ICC = 0: one-way forms F = MSB/MSW on (n − 1, n(k − 1)) df; two-way forms F = MSB/MSE on
(n − 1, (n − 1)(k − 1)) df; p = upper tail of F.

95 % intervals (McGraw & Wong 1996, Table 7; Shrout & Fleiss 1979), α = 0.05, F_q(a, b) the q-quantile:
    one-way / consistency:  F_L = F / F_0.975(df1, df2),  F_U = F · F_0.975(df2, df1)
        single:  (F_L − 1)/(F_L + k − 1) … (F_U − 1)/(F_U + k − 1);   average:  1 − 1/F_L … 1 − 1/F_U
    absolute agreement (ρ = ICC(A,1), F_J = MSJ/MSE), Satterthwaite df
        a = n (1 + (k − 1) ρ) − k ρ,   v = (n − 1)(k − 1) (k ρ F_J + a)² / ((n − 1) k² ρ² F_J² + a²)
        F* = F_0.975(n − 1, v),  F** = F_0.975(v, n − 1)
        low  = n (MSB − F* MSE) / (F* (k MSJ + (k n − k − n) MSE) + n MSB)
        high = n (F** MSB − MSE) / (k MSJ + (k n − k − n) MSE + n F** MSB)
        ICC(A,k) interval: the single-measure limits through Spearman–Brown  L·k / (1 + (k − 1) L).
These are the formulas pingouin ``intraclass_corr`` and R ``psych::ICC`` use.

Rows with any NaN are dropped (listwise), as ICC needs a complete two-way table. Zero variance gives
NaN values (0/0), never an exception.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

__all__ = ["ICCResult", "ICCTable", "icc", "ICC_NAMES", "anova_mean_squares"]

ICC_NAMES = ("ICC(1,1)", "ICC(A,1)", "ICC(C,1)", "ICC(1,k)", "ICC(A,k)", "ICC(C,k)")
_ALIASES = {"ICC(2,1)": "ICC(A,1)", "ICC(3,1)": "ICC(C,1)", "ICC(2,k)": "ICC(A,k)", "ICC(3,k)": "ICC(C,k)",
            "ICC1": "ICC(1,1)", "ICC2": "ICC(A,1)", "ICC3": "ICC(C,1)",
            "ICC1k": "ICC(1,k)", "ICC2k": "ICC(A,k)", "ICC3k": "ICC(C,k)"}


@dataclass(frozen=True)
class ICCResult:
    """One ICC form: value, 95 % CI, and the F test of ICC = 0 (F on df1, df2 degrees, p upper tail)."""

    name: str
    value: float
    ci_low: float
    ci_high: float
    f: float
    df1: float
    df2: float
    p: float


@dataclass(frozen=True)
class ICCTable:
    """All six ICC forms of one table plus its mean squares.

    ``table["ICC(A,1)"]`` looks a form up by McGraw–Wong name; Shrout–Fleiss names (``"ICC(2,1)"``,
    ``"ICC(3,k)"``, ``"ICC(1,4)"`` with the actual k) and pingouin's old names (``"ICC2"``) work too.
    """

    results: list[ICCResult]
    ms_rows: float
    ms_cols: float
    ms_error: float
    ms_within: float
    n: int
    k: int
    n_dropped: int = 0

    def __getitem__(self, name: str) -> ICCResult:
        key = name.replace(" ", "")
        key = _ALIASES.get(key, key)
        if key.endswith(f",{self.k})") and not key.endswith(",1)"):
            key = key[: -len(f"{self.k})")] + "k)"
            key = _ALIASES.get(key, key)
        for r in self.results:
            if r.name == key:
                return r
        raise KeyError(f"{name!r} is not one of {ICC_NAMES}")


def _as_complete(data) -> tuple[np.ndarray, int]:
    x = np.asarray(data, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"data must be 2-D (subjects × raters), got shape {x.shape}")
    keep = ~np.isnan(x).any(axis=1)
    return x[keep], int((~keep).sum())


def anova_mean_squares(x: np.ndarray) -> tuple[float, float, float, float]:
    """(MS_rows, MS_cols, MS_error, MS_within) of a complete n × k table (formulas in module docstring)."""
    n, k = x.shape
    g = x.mean()
    ss_tot = float(((x - g) ** 2).sum())
    ss_rows = float(k * ((x.mean(axis=1) - g) ** 2).sum())
    ss_cols = float(n * ((x.mean(axis=0) - g) ** 2).sum())
    ss_err = max(ss_tot - ss_rows - ss_cols, 0.0)
    ss_within = max(ss_tot - ss_rows, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ms_rows = ss_rows / (n - 1) if n > 1 else math.nan
        ms_cols = ss_cols / (k - 1) if k > 1 else math.nan
        ms_err = ss_err / ((n - 1) * (k - 1)) if n > 1 and k > 1 else math.nan
        ms_within = ss_within / (n * (k - 1)) if k > 1 else math.nan
    return ms_rows, ms_cols, ms_err, ms_within


def _div(a: float, b: float) -> float:
    """a / b with NaN (not an exception) for 0/0 and ±inf for x/0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b))


def icc(data) -> ICCTable:
    """All six ICCs of ``data`` (n subjects × k raters, float) with 95 % CIs; see the module docstring.

    Rows containing NaN are dropped (``n_dropped``). Needs n ≥ 2 complete rows and k ≥ 2 columns.
    """
    x, dropped = _as_complete(data)
    n, k = x.shape
    if k < 2:
        raise ValueError("ICC needs at least two raters/measurements (columns)")
    if n < 2:
        raise ValueError(f"ICC needs at least two complete subjects (rows), got {n}")
    msb, msj, mse, msw = (np.float64(v) for v in anova_mean_squares(x))  # x/0 → inf/nan, no exception

    icc1 = _div(msb - msw, msb + (k - 1) * msw)
    icc2 = _div(msb - mse, msb + (k - 1) * mse + k * (msj - mse) / n)
    icc3 = _div(msb - mse, msb + (k - 1) * mse)
    icc1k = _div(msb - msw, msb)
    icc2k = _div(msb - mse, msb + (msj - mse) / n)
    icc3k = _div(msb - mse, msb)

    df1 = n - 1
    df2_one = n * (k - 1)
    df2_two = (n - 1) * (k - 1)
    f1 = _div(msb, msw)
    f2 = _div(msb, mse)
    p1 = float(_st.f.sf(f1, df1, df2_one))
    p2 = float(_st.f.sf(f2, df1, df2_two))

    q = 0.975
    with np.errstate(divide="ignore", invalid="ignore"):
        f1l = f1 / _st.f.ppf(q, df1, df2_one)
        f1u = f1 * _st.f.ppf(q, df2_one, df1)
        f3l = f2 / _st.f.ppf(q, df1, df2_two)
        f3u = f2 * _st.f.ppf(q, df2_two, df1)
        l1, u1 = (f1l - 1) / (f1l + k - 1), (f1u - 1) / (f1u + k - 1)
        l3, u3 = (f3l - 1) / (f3l + k - 1), (f3u - 1) / (f3u + k - 1)
        l1k, u1k = 1 - 1 / f1l, 1 - 1 / f1u
        l3k, u3k = 1 - 1 / f3l, 1 - 1 / f3u

        fj = msj / mse
        a = n * (1 + (k - 1) * icc2) - k * icc2
        v = df2_two * (k * icc2 * fj + a) ** 2 / (df1 * k ** 2 * icc2 ** 2 * fj ** 2 + a ** 2)
        f_star = _st.f.ppf(q, df1, v)
        f_2star = _st.f.ppf(q, v, df1)
        l2 = n * (msb - f_star * mse) / (f_star * (k * msj + (k * n - k - n) * mse) + n * msb)
        u2 = n * (f_2star * msb - mse) / (k * msj + (k * n - k - n) * mse + n * f_2star * msb)
        l2k = l2 * k / (1 + l2 * (k - 1))
        u2k = u2 * k / (1 + u2 * (k - 1))

    def res(name, value, lo, hi, f, d2, p):
        return ICCResult(name, float(value), float(lo), float(hi), float(f), float(df1), float(d2), float(p))

    results = [
        res("ICC(1,1)", icc1, l1, u1, f1, df2_one, p1),
        res("ICC(A,1)", icc2, l2, u2, f2, df2_two, p2),
        res("ICC(C,1)", icc3, l3, u3, f2, df2_two, p2),
        res("ICC(1,k)", icc1k, l1k, u1k, f1, df2_one, p1),
        res("ICC(A,k)", icc2k, l2k, u2k, f2, df2_two, p2),
        res("ICC(C,k)", icc3k, l3k, u3k, f2, df2_two, p2),
    ]
    return ICCTable(results, msb, msj, mse, msw, n, k, dropped)

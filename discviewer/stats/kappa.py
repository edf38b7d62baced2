"""Chance-corrected agreement of categorical ratings: Cohen's κ (unweighted, linear, quadratic) for two
readers and Fleiss' κ for two or more readers.

Owns: the contingency/count tables built from label lists over the **full ordered category list** of
the scale, the κ estimates, their asymptotic standard errors and 95 % Wald intervals.

Formulas (K categories c_1 < … < c_K in the order given; positions i, j = 0 … K−1):

Cohen (1960, 1968). p_ij = O_ij / n (pairs), row marginals p_i., column marginals p_.j.
    Disagreement weights  w_ij = 0 if i = j else 1                    (unweighted)
                          w_ij = |i − j| / (K − 1)                    (linear, Cicchetti–Allison)
                          w_ij = (i − j)² / (K − 1)²                  (quadratic, Fleiss–Cohen)
    Agreement weights     a_ij = 1 − w_ij
    p_o = Σ a_ij p_ij,  p_e = Σ a_ij p_i. p_.j,  κ = (p_o − p_e) / (1 − p_e)
                                                (≡ 1 − Σ w_ij p_ij / Σ w_ij p_i. p_.j)
    Weights use category *positions* in the scale, not label values and not just the labels observed.
    An unused grade inside the observed range (Pfirrmann 3 when only 1, 2, 4, 5 occur) stretches the
    distances around it and changes linear/quadratic κ. An unused grade at either end only rescales all
    weights by the same factor, which cancels out of κ_w; p_o and p_e as reported still change.
    SE: large-sample (non-null) variance of Fleiss, Cohen & Everitt (1969), as in SAS PROC FREQ "ASE"
    and statsmodels ``cohens_kappa().std_kappa``:
        ā_i = Σ_j p_.j a_ij,  ā_j = Σ_i p_i. a_ij
        Var(κ) = [Σ_ij p_ij (a_ij − (ā_i + ā_j)(1 − κ))² − (κ − p_e (1 − κ))²] / (n (1 − p_e)²)

Fleiss (1971). N subjects, m raters each, n_ij = raters putting subject i in category j.
    P_i = (Σ_j n_ij² − m) / (m (m − 1)),  P̄ = mean P_i,  p_j = Σ_i n_ij / (N m),  P̄_e = Σ_j p_j²
    κ = (P̄ − P̄_e) / (1 − P̄_e)
    SE: Fleiss, Nee & Landis (1979) standard error under H0 (κ = 0) — the one Fleiss gives for this
    statistic (Fleiss, Levin & Paik 2003, ch. 18; R ``irr::kappam.fleiss``), with q_j = 1 − p_j:
        SE = √(2 / (N m (m − 1))) · √((Σ p_j q_j)² − Σ p_j q_j (q_j − p_j)) / Σ p_j q_j
    It is exact only near κ = 0; the 95 % interval built from it is a conventional approximation.

95 % interval: κ ± z_0.975 · SE (z = 1.959964…), not truncated to [−1, 1] (as SAS and statsmodels).

Degenerate data: when p_e = 1 (every rating in one and the same category, or only one category on
the scale) κ is 0/0 and undefined; the functions return κ = NaN with a ``note`` saying so instead of
raising. No usable pairs/subjects likewise give NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Sequence

import numpy as np
from scipy import stats as _st

__all__ = ["KappaResult", "cohen_kappa", "fleiss_kappa", "contingency_table", "is_missing"]

_Z975 = float(_st.norm.ppf(0.975))
_WEIGHTS = (None, "linear", "quadratic")


@dataclass(frozen=True)
class KappaResult:
    """One κ estimate.

    ``observed_agreement``/``expected_agreement`` are p_o and p_e (weighted ones for weighted κ;
    P̄ and P̄_e for Fleiss). ``se`` is the asymptotic SE named in the module docstring; ``ci_low``,
    ``ci_high`` the 95 % Wald interval. ``n`` = pairs (Cohen) or subjects (Fleiss) used.
    ``note`` is empty unless κ is NaN or something was dropped, and then says why.
    """

    kappa: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    n_categories: int
    weights: str | None
    observed_agreement: float
    expected_agreement: float
    note: str = ""


def is_missing(x: Any) -> bool:
    """A rating is missing when it is None or a float NaN (Python or numpy)."""
    if x is None:
        return True
    if isinstance(x, (float, np.floating)):
        return math.isnan(x)
    return False


def _category_index(observed: Iterable[Hashable], categories: Sequence[Hashable] | None) -> list:
    """The ordered category list: ``categories`` as given (checked to cover every observed label), or
    the sorted union of the observed labels."""
    observed = set(observed)
    if categories is None:
        try:
            return sorted(observed)
        except TypeError as exc:
            raise ValueError("labels of mixed types cannot be sorted; pass categories= in scale order") from exc
    cats = list(categories)
    if len(set(cats)) != len(cats):
        raise ValueError(f"categories contain duplicates: {cats!r}")
    unknown = [x for x in observed if x not in set(cats)]
    if unknown:
        raise ValueError(f"ratings {sorted(map(repr, unknown))} are not in categories {cats!r}")
    return cats


def _nan_result(n: int, k: int, weights: str | None, note: str, po: float = math.nan,
                pe: float = math.nan) -> KappaResult:
    return KappaResult(math.nan, math.nan, math.nan, math.nan, n, k, weights, po, pe, note)


def _disagreement_weights(k: int, weights: str | None) -> np.ndarray:
    i = np.arange(k, dtype=float)
    d = np.abs(i[:, None] - i[None, :])
    if weights is None:
        return (d > 0).astype(float)
    if k < 2:
        return np.zeros((k, k))
    if weights == "linear":
        return d / (k - 1)
    return d ** 2 / (k - 1) ** 2


def contingency_table(r1: Sequence, r2: Sequence, categories: Sequence) -> np.ndarray:
    """K×K float counts O[i, j] = pairs with r1 = categories[i] and r2 = categories[j], over the full
    category list (unused categories give zero rows/columns). Pairs with a missing label are skipped;
    a label outside ``categories`` raises ValueError."""
    pos = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for x, y in zip(r1, r2):
        if is_missing(x) or is_missing(y):
            continue
        try:
            table[pos[x], pos[y]] += 1
        except KeyError as exc:
            raise ValueError(f"rating {exc.args[0]!r} is not in categories {list(categories)!r}") from None
    return table


def cohen_kappa(r1: Sequence, r2: Sequence, *, categories: Sequence | None = None,
                weights: str | None = None) -> KappaResult:
    """Cohen's κ of two readers' labels for the same subjects (formulas in the module docstring).

    ``r1``, ``r2``: equal-length sequences of labels (ints, strings, …). Pairs in which either label
    is missing (None / NaN) are dropped; ``n`` reports the pairs used.
    ``categories``: the full ordered label set of the scale (e.g. ``[1, 2, 3, 4, 5]`` for Pfirrmann even
    when only 2 and 3 were used). Default: the sorted union of observed labels — for weighted κ pass
    the scale, since unused categories change the weights. A label outside ``categories`` raises
    ValueError.
    ``weights``: None (unweighted), ``"linear"`` or ``"quadratic"``.

    κ is NaN (never ZeroDivisionError) when no pairs remain or p_e = 1 (all ratings in one category).
    """
    if weights not in _WEIGHTS:
        raise ValueError(f"weights must be one of {_WEIGHTS}, not {weights!r}")
    r1, r2 = list(r1), list(r2)
    if len(r1) != len(r2):
        raise ValueError(f"r1 and r2 differ in length ({len(r1)} vs {len(r2)})")
    pairs = [(x, y) for x, y in zip(r1, r2) if not (is_missing(x) or is_missing(y))]
    dropped = len(r1) - len(pairs)
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    cats = _category_index(a + b, categories)
    k = len(cats)
    n = len(pairs)
    drop_note = f"{dropped} pair(s) with a missing rating dropped" if dropped else ""
    if n == 0:
        return _nan_result(0, k, weights, _join("no complete pairs", drop_note))

    table = contingency_table(a, b, cats)
    p = table / n
    row = p.sum(axis=1)
    col = p.sum(axis=0)
    agree_w = 1.0 - _disagreement_weights(k, weights)
    po = float((agree_w * p).sum())
    pe = float((agree_w * np.outer(row, col)).sum())
    if k < 2 or 1.0 - pe <= 1e-12:
        return _nan_result(n, k, weights, _join(
            "expected agreement is 1 (all ratings in one category): kappa undefined", drop_note), po, pe)
    kappa = (po - pe) / (1.0 - pe)

    # Fleiss, Cohen & Everitt (1969) large-sample variance
    a_row = agree_w @ col            # ā_i = Σ_j p_.j a_ij
    a_col = row @ agree_w            # ā_j = Σ_i p_i. a_ij
    term = (p * (agree_w - (a_row[:, None] + a_col[None, :]) * (1.0 - kappa)) ** 2).sum()
    var = (term - (kappa - pe * (1.0 - kappa)) ** 2) / (n * (1.0 - pe) ** 2)
    se = math.sqrt(max(var, 0.0))
    return KappaResult(float(kappa), se, kappa - _Z975 * se, kappa + _Z975 * se, n, k, weights, po, pe,
                       drop_note)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def fleiss_kappa(ratings: Sequence[Sequence], *, categories: Sequence | None = None) -> KappaResult:
    """Fleiss' κ for ``ratings`` shaped subjects × raters (labels; formulas in the module docstring).

    Every subject must be rated by the same number m ≥ 2 of raters, so **subjects with any missing
    rating (None / NaN) are dropped** (listwise); ``n`` reports the subjects used and ``note`` how many
    were dropped. ``categories`` as in :func:`cohen_kappa` (unused categories do not change Fleiss' κ,
    which is unweighted, but count in ``n_categories``). κ is NaN when no subject remains or all
    ratings fall in one category (P̄_e = 1). SE is the Fleiss–Nee–Landis (1979) SE under H0.
    """
    rows = [list(r) for r in ratings]
    if rows and len({len(r) for r in rows}) != 1:
        raise ValueError("ratings must be a rectangular subjects × raters table")
    m = len(rows[0]) if rows else 0
    if rows and m < 2:
        raise ValueError("Fleiss' kappa needs at least two raters (columns)")
    complete = [r for r in rows if not any(is_missing(x) for x in r)]
    dropped = len(rows) - len(complete)
    cats = _category_index([x for r in complete for x in r], categories)
    k = len(cats)
    n_sub = len(complete)
    drop_note = f"{dropped} subject(s) with a missing rating dropped" if dropped else ""
    if n_sub == 0:
        return _nan_result(0, k, None, _join("no subject with complete ratings", drop_note))

    pos = {c: i for i, c in enumerate(cats)}
    counts = np.zeros((n_sub, k))
    for i, r in enumerate(complete):
        for x in r:
            counts[i, pos[x]] += 1
    p_i = ((counts ** 2).sum(axis=1) - m) / (m * (m - 1.0))
    p_bar = float(p_i.mean())
    p_j = counts.sum(axis=0) / (n_sub * m)
    pe = float((p_j ** 2).sum())
    if 1.0 - pe <= 1e-12:
        return _nan_result(n_sub, k, None, _join(
            "expected agreement is 1 (all ratings in one category): kappa undefined", drop_note), p_bar, pe)
    kappa = (p_bar - pe) / (1.0 - pe)
    pq = p_j * (1.0 - p_j)
    s = pq.sum()
    var0 = 2.0 / (n_sub * m * (m - 1.0)) * (s ** 2 - (pq * ((1.0 - p_j) - p_j)).sum()) / s ** 2
    se = math.sqrt(max(var0, 0.0))
    return KappaResult(float(kappa), se, kappa - _Z975 * se, kappa + _Z975 * se, n_sub, k, None, p_bar, pe,
                       drop_note)

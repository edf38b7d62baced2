"""Agreement report of a reading session: per question, the right statistics, inter-reader (read 1)
and intra-reader (read 1 vs the re-read, per reader).

`agreement_report(session)` → list of `AgreementRow`; `agreement_csv(report, path)` writes it.
Which statistics (from `discviewer.stats`):

| question | inter-reader (read 1) | intra-reader (per reader) |
|---|---|---|
| choice, ordinal (Pfirrmann, iron) | 2 readers: Cohen κ unweighted, linear, quadratic; > 2 readers: Fleiss κ and the pairwise Cohen κs | Cohen κ unweighted, linear, quadratic |
| choice, nominal (Modic); yes/no | 2 readers: Cohen κ; > 2: Fleiss κ and pairwise Cohen κ | Cohen κ |
| number, measurement | ICC (all six forms), SEM and SDC (agreement), Bland–Altman per reader pair (bias, limits) | the same over (read 1, read 2) |
| multi, text | — (no row) | — |

κ uses the question's full category list (unused categories change the weights). Only cases with
a non-empty answer from every reader involved are used (`n`). Bands: κ after Landis & Koch (≤ .20
slight, ≤ .40 fair, ≤ .60 moderate, ≤ .80 substantial, else almost perfect; < 0 poor); ICC after Koo
& Li (< .5 poor, < .75 moderate, < .9 good, else excellent). Where a statistic cannot be computed
(too few cases, all answers alike) the row has value NaN and a `note` saying why.

Core module: numpy + stdlib (+ discviewer.stats, numpy/scipy).
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from discviewer import stats
from discviewer.reading.export import rating_matrix, reread_pairs
from discviewer.reading.session import ReadingSession

COLUMNS = ("question", "scope", "readers", "statistic", "value", "ci_low", "ci_high", "n", "band", "note")


@dataclass(frozen=True)
class AgreementRow:
    """One statistic: `scope` "inter" (read 1, between readers) or "intra" (one reader, read 1 vs 2);
    `readers` "rk, am" (all readers), "rk vs am" (a pair) or "rk" (intra)."""

    question: str
    scope: str
    readers: str
    statistic: str
    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int = 0
    band: str = ""
    note: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def kappa_band(k: float) -> str:
    """Landis & Koch (1977)."""
    if k is None or not math.isfinite(k):
        return ""
    if k < 0:
        return "poor"
    for limit, name in ((0.20, "slight"), (0.40, "fair"), (0.60, "moderate"), (0.80, "substantial")):
        if k <= limit:
            return name
    return "almost perfect"


def icc_band(v: float) -> str:
    """Koo & Li (2016)."""
    if v is None or not math.isfinite(v):
        return ""
    for limit, name in ((0.5, "poor"), (0.75, "moderate"), (0.9, "good")):
        if v < limit:
            return name
    return "excellent"


_KAPPA_NAMES = {None: "Cohen kappa", "linear": "Cohen kappa (linear)", "quadratic": "Cohen kappa (quadratic)"}


def _kappa_ci(r) -> tuple[float, float, str]:
    """κ's Wald 95 % CI (κ ± 1.96·SE, as `discviewer.stats` and SAS/statsmodels give it) clipped to κ's
    range [−1, 1] for the report, with a note when it was clipped."""
    lo, hi = float(r.ci_low), float(r.ci_high)
    if math.isnan(lo) or math.isnan(hi) or (-1.0 <= lo and hi <= 1.0):
        return lo, hi, ""
    return max(lo, -1.0), min(hi, 1.0), "Wald CI clipped to [−1, 1]"


def _kappa_rows(q, scope, who, a, b, cats) -> list[AgreementRow]:
    rows = []
    weights = (None, "linear", "quadratic") if (q.ordinal and q.type == "choice") else (None,)
    for w in weights:
        r = stats.cohen_kappa(a, b, categories=cats, weights=w)
        lo, hi, clip = _kappa_ci(r)
        rows.append(AgreementRow(q.id, scope, who, _KAPPA_NAMES[w], r.kappa, lo, hi, r.n,
                                 kappa_band(r.kappa), _join(r.note, clip)))
    return rows


def _numeric_rows(q, scope, who, data: np.ndarray, names: list[str]) -> list[AgreementRow]:
    rows: list[AgreementRow] = []
    n = int(data.shape[0])
    try:
        table = stats.icc(data)
    except ValueError as e:
        return [AgreementRow(q.id, scope, who, "ICC(A,1)", math.nan, n=n, note=str(e))]
    for r in table.results:
        rows.append(AgreementRow(q.id, scope, who, r.name, r.value, r.ci_low, r.ci_high, table.n, icc_band(r.value)))
    unit = f" ({q.unit})" if q.unit else ""
    me = stats.measurement_error(data)
    rows.append(AgreementRow(q.id, scope, who, "SEM" + unit, me.sem, n=table.n,
                             note=f"{me.method}; ICC {me.icc_used:.3f}"))
    rows.append(AgreementRow(q.id, scope, who, "SDC" + unit, me.sdc, n=table.n, note="1.96·√2·SEM"))
    for i, j in itertools.combinations(range(data.shape[1]), 2):
        ba = stats.bland_altman(data[:, i], data[:, j])
        pair = f"{names[i]} vs {names[j]}" if scope == "inter" else who
        rows.append(AgreementRow(q.id, scope, pair, "Bland-Altman bias" + unit, ba.bias, *ba.bias_ci, n=ba.n,
                                 note=f"{names[i]} − {names[j]}"))
        rows.append(AgreementRow(q.id, scope, pair, "Bland-Altman lower limit" + unit, ba.loa_low, *ba.loa_low_ci,
                                 n=ba.n))
        rows.append(AgreementRow(q.id, scope, pair, "Bland-Altman upper limit" + unit, ba.loa_high,
                                 *ba.loa_high_ci, n=ba.n))
    return rows


def question_rows(session: ReadingSession, question_id: str) -> list[AgreementRow]:
    """The agreement rows of one question (see the module docstring)."""
    q = session.question(question_id)
    rows: list[AgreementRow] = []
    if not (q.is_categorical or q.is_numeric):
        return rows
    # inter-reader, read 1
    codes, readers, data, cats = rating_matrix(session, q.id, 1)
    if len(readers) >= 2:
        everyone = ", ".join(readers)
        if q.is_numeric:
            rows += _numeric_rows(q, "inter", everyone, data, readers)
        else:
            if len(readers) > 2:
                r = stats.fleiss_kappa(data.tolist(), categories=cats)
                lo, hi, clip = _kappa_ci(r)
                rows.append(AgreementRow(q.id, "inter", everyone, "Fleiss kappa", r.kappa, lo, hi, r.n,
                                         kappa_band(r.kappa),
                                         _join("CI from the SE under H0 (Fleiss, Nee & Landis)", r.note, clip)))
            for i, j in itertools.combinations(range(len(readers)), 2):
                rows += _kappa_rows(q, "inter", f"{readers[i]} vs {readers[j]}", list(data[:, i]), list(data[:, j]),
                                    cats)
    # intra-reader
    if session.reread_codes:
        for reader in session.readers:
            codes2, v1, v2 = reread_pairs(session, q.id, reader)
            if not codes2:
                continue
            if q.is_numeric:
                rows += _numeric_rows(q, "intra", reader, np.column_stack([v1, v2]), ["read 1", "read 2"])
            else:
                rows += _kappa_rows(q, "intra", reader, v1, v2, cats if cats is not None else q.categories())
    return rows


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def agreement_report(session: ReadingSession) -> list[AgreementRow]:
    """Agreement rows for every question of the session, in question order."""
    rows: list[AgreementRow] = []
    for q in session.questions:
        rows += question_rows(session, q.id)
    return rows


def _cell(v):
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return v


def agreement_csv(report, path) -> Path:
    """Write the report (one row per statistic, columns `COLUMNS`; NaN as empty)."""
    p = Path(path)
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in report:
            d = r.to_dict() if isinstance(r, AgreementRow) else r
            w.writerow([_cell(d[c]) for c in COLUMNS])
    return p

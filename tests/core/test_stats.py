"""discviewer.stats against independent references: scikit-learn, statsmodels and pingouin (test-only
dependencies), SAS / R irr printouts, and published worked examples (Shrout & Fleiss 1979, Fleiss
1971, Bland & Altman 1986, Wikipedia). Nothing here compares the module with its own output.

Tolerances: 1e-6 against reference implementations (in practice ~1e-12); published examples at the
precision they were printed in. pingouin rounds its CI95 column to 2 decimals by default, so CIs are
checked both at that precision (default options) and at 1e-6 with the rounding option switched off.
"""
from __future__ import annotations

import math
import statistics
import warnings

import numpy as np
import pytest

from discviewer import stats as S

sklearn_metrics = pytest.importorskip("sklearn.metrics")
ir = pytest.importorskip("statsmodels.stats.inter_rater")
pd = pytest.importorskip("pandas")
pg = pytest.importorskip("pingouin")

TOL = 1e-6

# --------------------------------------------------------------------------------------------- data
# Shrout & Fleiss (1979), Table 2: 6 targets × 4 judges.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
                         float)
# Published (S&F 1979, Table 4 and text): ICC values to 2 decimals, mean squares of Table 3.
SF_ICC = {"ICC(1,1)": 0.17, "ICC(2,1)": 0.29, "ICC(3,1)": 0.71, "ICC(1,4)": 0.44, "ICC(2,4)": 0.62, "ICC(3,4)": 0.91}
SF_MS = {"ms_rows": 11.24, "ms_within": 6.26, "ms_cols": 32.49, "ms_error": 1.02}

# Fleiss (1971): 30 patients × 6 psychiatrists, 5 diagnoses (as in statsmodels' and R irr's `diagnoses`).
DIAGNOSES = np.array([
    [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5], [2, 2, 2, 4, 4, 4],
    [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4], [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5],
    [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4], [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5],
    [3, 3, 3, 3, 3, 5], [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4], [1, 4, 4, 4, 4, 5],
    [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4], [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5]])

# Wikipedia "Fleiss' kappa" worked example: 10 subjects × 5 categories, 14 raters (counts); κ = 0.210.
WIKI_FLEISS_COUNTS = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])

# R irr `anxiety` (20 subjects × 3 raters, scale 1–6, grade 5 never given by raters 2 and 3).
ANXIETY = np.array([
    [3, 3, 2], [3, 6, 1], [3, 4, 4], [4, 6, 4], [5, 2, 3], [5, 4, 2], [2, 2, 1], [3, 4, 6], [5, 3, 1],
    [2, 3, 1], [2, 2, 1], [6, 3, 2], [1, 3, 3], [5, 3, 3], [2, 2, 1], [2, 2, 1], [1, 1, 3], [2, 3, 3],
    [4, 3, 2], [3, 4, 2]])

# Bland & Altman (1986) Lancet: PEFR (l/min) by Wright and mini Wright meters, first readings, 17 subjects.
PEFR_WRIGHT = [494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427]
PEFR_MINI = [512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451]


def _expand(table, labels):
    """Rating lists whose cross-tabulation is ``table`` (rows = reader 1)."""
    r1, r2 = [], []
    for i, row in enumerate(np.asarray(table, int)):
        for j, c in enumerate(row):
            r1 += [labels[i]] * c
            r2 += [labels[j]] * c
    return r1, r2


def _crosstab(r1, r2, labels):
    """Independent cross-tabulation via pandas, reindexed to the full label set."""
    t = pd.crosstab(pd.Series(r1, name="a"), pd.Series(r2, name="b"))
    return t.reindex(index=labels, columns=labels, fill_value=0).to_numpy(float)


def _random_pairs(seed, n, labels, p1=None, p2=None, agree=0.5):
    rng = np.random.default_rng(seed)
    a = rng.choice(labels, size=n, p=p1)
    b = np.where(rng.random(n) < agree, a, rng.choice(labels, size=n, p=p2))
    return a.tolist(), b.tolist()


SM_WT = {None: None, "linear": "linear", "quadratic": "quadratic"}


def _check_against_refs(r1, r2, labels, weights):
    res = S.cohen_kappa(r1, r2, categories=labels, weights=weights)
    sk = sklearn_metrics.cohen_kappa_score(r1, r2, labels=labels, weights=weights)
    sm = ir.cohens_kappa(_crosstab(r1, r2, labels), wt=SM_WT[weights])
    assert res.kappa == pytest.approx(sk, abs=TOL)
    assert res.kappa == pytest.approx(sm.kappa, abs=TOL)
    assert res.se == pytest.approx(sm.std_kappa, abs=TOL)       # same FCE 1969 definition
    assert res.ci_low == pytest.approx(sm.kappa_low, abs=TOL)
    assert res.ci_high == pytest.approx(sm.kappa_upp, abs=TOL)
    assert res.n == len(r1) and res.n_categories == len(labels) and res.weights == weights
    return res


# ------------------------------------------------------------------------------------------ Cohen κ
DATASETS = {
    # name: (seed, n, labels, p1, p2, agree)
    "pfirrmann_all_used": (1, 80, [1, 2, 3, 4, 5], None, None, 0.6),
    "pfirrmann_ties_skewed": (2, 40, [1, 2, 3, 4, 5], [0.05, 0.4, 0.4, 0.1, 0.05], [0.05, 0.1, 0.4, 0.4, 0.05], 0.4),
    "grade_1_and_5_unused": (3, 50, [1, 2, 3, 4, 5], [0, 0.3, 0.4, 0.3, 0], [0, 0.5, 0.3, 0.2, 0], 0.5),
    "grade_3_unused": (4, 60, [1, 2, 3, 4, 5], [0.3, 0.3, 0, 0.2, 0.2], [0.2, 0.2, 0, 0.3, 0.3], 0.5),
    "one_reader_only_uses_5": (5, 45, [1, 2, 3, 4, 5], [0.2, 0.3, 0.3, 0.2, 0], [0.1, 0.2, 0.3, 0.2, 0.2], 0.3),
    "binary_small": (6, 12, [0, 1], None, None, 0.5),
    "modic_0_to_3": (7, 30, [0, 1, 2, 3], [0.5, 0.3, 0.2, 0], [0.4, 0.3, 0.2, 0.1], 0.7),
}


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_cohen_matches_sklearn_and_statsmodels(name, weights):
    seed, n, labels, p1, p2, agree = DATASETS[name]
    r1, r2 = _random_pairs(seed, n, labels, p1, p2, agree)
    _check_against_refs(r1, r2, labels, weights)


def test_cohen_wikipedia_yes_no_example():
    # Wikipedia "Cohen's kappa": 50 proposals; yes/yes 20, yes/no 5, no/yes 10, no/no 15 → p_o .7, p_e .5, κ .4
    r1, r2 = _expand([[20, 5], [10, 15]], ["yes", "no"])
    res = S.cohen_kappa(r1, r2)
    assert res.observed_agreement == pytest.approx(0.7, abs=1e-12)
    assert res.expected_agreement == pytest.approx(0.5, abs=1e-12)
    assert res.kappa == pytest.approx(0.4, abs=1e-12)
    assert res.n == 50 and res.n_categories == 2


def test_cohen_sas_printout_with_ase_and_ci():
    # SAS PROC FREQ agreement example (printed in statsmodels' tests): 3 × 3 table, first category never
    # chosen by reader 1. Simple κ 0.4842 ASE 0.1380 CI 0.2137–0.7547; weighted (Cicchetti–Allison =
    # linear) κ 0.4701 ASE 0.1457 CI 0.1845–0.7558.
    r1, r2 = _expand([[0, 4, 1], [0, 8, 0], [0, 1, 5]], ["a", "b", "c"])
    simple = S.cohen_kappa(r1, r2, categories=["a", "b", "c"])
    linear = S.cohen_kappa(r1, r2, categories=["a", "b", "c"], weights="linear")
    for res, ref in ((simple, (0.4842, 0.1380, 0.2137, 0.7547)), (linear, (0.4701, 0.1457, 0.1845, 0.7558))):
        assert (res.kappa, res.se, res.ci_low, res.ci_high) == pytest.approx(ref, abs=5e-5)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_observed_and_expected_agreement_by_hand(weights):
    # p_o, p_e with SAS agreement weights: 1 − |i−j|/(K−1) (Cicchetti–Allison), 1 − (i−j)²/(K−1)²
    # (Fleiss–Cohen), computed with plain loops over the pairs.
    scale = [1, 2, 3, 4, 5]
    r1, r2 = _random_pairs(13, 35, scale, [0.1, 0.3, 0.3, 0.3, 0.0], None, 0.5)
    pos = {c: i for i, c in enumerate(scale)}
    K, n = len(scale), len(r1)

    def agree(i, j):
        if weights is None:
            return float(i == j)
        d = abs(i - j) / (K - 1)
        return 1 - (d if weights == "linear" else d * d)

    po = sum(agree(pos[x], pos[y]) for x, y in zip(r1, r2)) / n
    m1 = [r1.count(c) / n for c in scale]
    m2 = [r2.count(c) / n for c in scale]
    pe = sum(agree(i, j) * m1[i] * m2[j] for i in range(K) for j in range(K))
    res = S.cohen_kappa(r1, r2, categories=scale, weights=weights)
    assert (res.observed_agreement, res.expected_agreement) == pytest.approx((po, pe), abs=1e-12)
    assert res.kappa == pytest.approx((po - pe) / (1 - pe), abs=1e-12)


@pytest.mark.parametrize("weights,irr_value", [(None, -0.006289308), ("linear", 0.1459075),
                                               ("quadratic", 0.2520325)])
def test_cohen_r_irr_observed_levels_vs_full_scale(weights, irr_value):
    # R irr::kappa2(anxiety[, 2:3], weight) uses only the observed levels {1, 2, 3, 4, 6}: that is our
    # default (categories=None). Over the full 1–6 scale the gap at 5 changes the weighted κ.
    r1, r2 = ANXIETY[:, 1].tolist(), ANXIETY[:, 2].tolist()
    observed = S.cohen_kappa(r1, r2, weights=weights)
    assert observed.kappa == pytest.approx(irr_value, abs=5e-7)
    assert observed.n_categories == 5
    full = _check_against_refs(r1, r2, [1, 2, 3, 4, 5, 6], weights)
    if weights is None:
        assert full.kappa == pytest.approx(observed.kappa, abs=1e-12)
    else:
        assert abs(full.kappa - observed.kappa) > 0.01


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_full_label_set_matters_for_an_interior_unused_grade(weights):
    # Pfirrmann grades 1, 2, 4, 5 used, 3 never: the scale's distances differ from the observed-only ones.
    # disagreements never cross the gap, so stretching it raises the expected disagreement only
    r1 = [1, 1, 2, 2, 2, 4, 4, 5, 5, 5, 1, 2, 4, 5, 2, 4]
    r2 = [1, 2, 2, 1, 2, 4, 5, 5, 4, 5, 2, 2, 4, 4, 1, 5]
    scale = [1, 2, 3, 4, 5]
    full = _check_against_refs(r1, r2, scale, weights)
    used_only = S.cohen_kappa(r1, r2, weights=weights)
    sk_used_only = sklearn_metrics.cohen_kappa_score(r1, r2, labels=[1, 2, 4, 5], weights=weights)
    assert used_only.kappa == pytest.approx(sk_used_only, abs=TOL)
    assert full.kappa - used_only.kappa > 0.1


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_unused_end_grades_rescale_weights_only(weights):
    # Grades 1 and 5 unused: both references agree with us for either label set, and κ_w is unchanged
    # because all weights scale by one factor — but the reported p_o, p_e do change.
    r1, r2 = _random_pairs(11, 40, [2, 3, 4])
    full = _check_against_refs(r1, r2, [1, 2, 3, 4, 5], weights)
    used_only = _check_against_refs(r1, r2, [2, 3, 4], weights)
    assert full.kappa == pytest.approx(used_only.kappa, abs=1e-10)
    assert full.expected_agreement != pytest.approx(used_only.expected_agreement, abs=1e-6)


def test_string_labels_follow_scale_order_not_alphabet():
    scale = ["none", "mild", "moderate", "severe"]
    r1, r2 = _random_pairs(21, 50, scale, agree=0.4)
    for w in (None, "linear", "quadratic"):
        _check_against_refs(r1, r2, scale, w)
    # alphabetical order (mild, moderate, none, severe) gives a different weighted κ
    alpha = S.cohen_kappa(r1, r2, weights="quadratic")
    assert alpha.kappa == pytest.approx(
        sklearn_metrics.cohen_kappa_score(r1, r2, labels=sorted(scale), weights="quadratic"), abs=TOL)
    assert abs(alpha.kappa - S.cohen_kappa(r1, r2, categories=scale, weights="quadratic").kappa) > 1e-3


def test_missing_pairs_are_dropped():
    r1 = [1, 2, None, 3, 4, float("nan"), 2, 3, 5, 4, np.nan, 1]
    r2 = [1, 3, 2, 3, None, 2, 2, 4, 5, 4, 3, 2]
    keep = [i for i in range(len(r1)) if r1[i] is not None and r2[i] is not None
            and not (isinstance(r1[i], float) and math.isnan(r1[i]))]
    a, b = [r1[i] for i in keep], [r2[i] for i in keep]
    assert len(a) == 8
    for w in (None, "linear", "quadratic"):
        res = S.cohen_kappa(r1, r2, categories=[1, 2, 3, 4, 5], weights=w)
        assert res.n == 8
        assert "4 pair(s)" in res.note
        assert res.kappa == pytest.approx(
            sklearn_metrics.cohen_kappa_score(a, b, labels=[1, 2, 3, 4, 5], weights=w), abs=TOL)
    # a float array with NaN (numpy reads) works too
    fa = np.array([1, 2, np.nan, 3, 3], float)
    fb = np.array([1, 2, 2, 3, np.nan], float)
    assert S.cohen_kappa(fa, fb, categories=[1, 2, 3]).n == 3


def test_cohen_degenerate_constant_ratings_give_nan_not_error():
    for weights in (None, "linear", "quadratic"):
        res = S.cohen_kappa([3] * 10, [3] * 10, categories=[1, 2, 3, 4, 5], weights=weights)
        assert math.isnan(res.kappa) and math.isnan(res.se) and math.isnan(res.ci_low)
        assert res.expected_agreement == pytest.approx(1.0)
        assert "expected agreement is 1" in res.note
    res = S.cohen_kappa([2] * 5, [2] * 5)   # single observed category
    assert math.isnan(res.kappa) and res.n_categories == 1
    res = S.cohen_kappa([None, None], [1, 2], categories=[1, 2])
    assert res.n == 0 and math.isnan(res.kappa)
    # each reader constant but different: p_o = p_e = 0 → κ = 0, a defined value (sklearn agrees)
    res = S.cohen_kappa([1] * 6, [2] * 6, categories=[1, 2])
    assert res.kappa == pytest.approx(sklearn_metrics.cohen_kappa_score([1] * 6, [2] * 6, labels=[1, 2]))


def test_contingency_table_full_scale_against_pandas():
    scale = [1, 2, 3, 4, 5]
    r1, r2 = _random_pairs(17, 30, [2, 3, 4])
    table = S.contingency_table(r1 + [None, 2], r2 + [3, float("nan")], scale)   # missing pairs skipped
    assert table.shape == (5, 5) and table.sum() == 30
    np.testing.assert_array_equal(table, _crosstab(r1, r2, scale))
    with pytest.raises(ValueError):
        S.contingency_table([1, 9], [1, 2], scale)


def test_cohen_input_errors():
    with pytest.raises(ValueError):
        S.cohen_kappa([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        S.cohen_kappa([1, 7], [1, 2], categories=[1, 2, 3])
    with pytest.raises(ValueError):
        S.cohen_kappa([1, 2], [1, 2], weights="cubic")


# ------------------------------------------------------------------------------------------ Fleiss κ
def _counts_to_labels(counts, labels):
    return [[labels[j] for j, c in enumerate(row) for _ in range(int(c))] for row in counts]


def test_fleiss_wikipedia_example():
    ratings = _counts_to_labels(WIKI_FLEISS_COUNTS, [1, 2, 3, 4, 5])
    res = S.fleiss_kappa(ratings)
    assert round(res.kappa, 3) == 0.210                    # published
    assert round(res.observed_agreement, 3) == 0.378       # P̄ = 0.378 (Wikipedia)
    assert round(res.expected_agreement, 3) == 0.213       # P̄_e = 0.213
    assert res.kappa == pytest.approx(ir.fleiss_kappa(WIKI_FLEISS_COUNTS), abs=TOL)
    assert res.n == 10 and res.n_categories == 5


def test_fleiss_1971_diagnoses_example_and_irr_z():
    res = S.fleiss_kappa(DIAGNOSES.tolist())
    assert round(res.kappa, 3) == 0.430                    # Fleiss (1971)
    table, _ = ir.aggregate_raters(DIAGNOSES)
    assert res.kappa == pytest.approx(ir.fleiss_kappa(table), abs=TOL)
    # R irr::kappam.fleiss(diagnoses) prints "Kappa = 0.43, z = 17.7" (z = κ / SE under H0, FNL 1979)
    assert round(res.kappa / res.se, 1) == 17.7


@pytest.mark.parametrize("seed,n,m,labels", [(31, 25, 3, [1, 2, 3, 4, 5]), (32, 40, 4, ["a", "b", "c"]),
                                              (33, 15, 7, [0, 1, 2]), (34, 60, 2, [1, 2, 3, 4])])
def test_fleiss_matches_statsmodels_with_unused_categories(seed, n, m, labels):
    rng = np.random.default_rng(seed)
    used = labels[:-1]                          # the last category is never used by anyone
    base = rng.choice(len(used), size=n)
    idx = np.where(rng.random((n, m)) < 0.5, base[:, None], rng.choice(len(used), size=(n, m)))
    ratings = [[used[i] for i in row] for row in idx]
    res = S.fleiss_kappa(ratings, categories=labels)
    table, cats = ir.aggregate_raters(idx, n_cat=len(labels))
    assert table.shape[1] == len(labels) and table[:, -1].sum() == 0
    assert res.kappa == pytest.approx(ir.fleiss_kappa(table), abs=TOL)
    assert res.n_categories == len(labels) and res.n == n
    # an unused category does not change (unweighted) Fleiss' κ or its SE
    obs = S.fleiss_kappa(ratings)
    assert obs.kappa == pytest.approx(res.kappa, abs=1e-12) and obs.se == pytest.approx(res.se, abs=1e-12)


def test_fleiss_se_under_null_by_simulation():
    # Independent check of the Fleiss–Nee–Landis H0 standard error: random ratings with fixed marginal
    # probabilities; the spread of κ over replications must match the formula (Monte Carlo, 3000 reps).
    rng = np.random.default_rng(41)
    p = np.array([0.1, 0.2, 0.3, 0.4])
    n_sub, m, reps = 50, 5, 3000
    sims = rng.choice(4, size=(reps, n_sub, m), p=p)
    kappas = np.empty(reps)
    ses = np.empty(reps)
    for r in range(reps):
        res = S.fleiss_kappa(sims[r].tolist(), categories=[0, 1, 2, 3])
        kappas[r], ses[r] = res.kappa, res.se
    assert abs(kappas.mean()) < 0.01
    assert kappas.std(ddof=1) == pytest.approx(np.median(ses), rel=0.06)


def test_fleiss_missing_subjects_dropped_and_degenerate():
    ratings = DIAGNOSES.tolist()
    ratings[3][2] = None
    ratings[7][0] = float("nan")
    res = S.fleiss_kappa(ratings)
    keep = np.delete(DIAGNOSES, [3, 7], axis=0)
    assert res.n == 28 and "2 subject(s)" in res.note
    assert res.kappa == pytest.approx(ir.fleiss_kappa(ir.aggregate_raters(keep)[0]), abs=TOL)
    const = S.fleiss_kappa([[2, 2, 2]] * 6, categories=[1, 2, 3])
    assert math.isnan(const.kappa) and math.isnan(const.se) and "expected agreement is 1" in const.note
    assert math.isnan(S.fleiss_kappa([[None, 1], [2, None]]).kappa)
    with pytest.raises(ValueError):
        S.fleiss_kappa([[1], [2]])


# -------------------------------------------------------------------------------------------- ICC
PG_NAMES = ["ICC(1,1)", "ICC(A,1)", "ICC(C,1)", "ICC(1,k)", "ICC(A,k)", "ICC(C,k)"]


def _pingouin_icc(data, rounded):
    n, k = data.shape
    long = pd.DataFrame({"target": np.repeat(np.arange(n), k), "rater": np.tile(np.arange(k), n),
                         "score": data.ravel()})
    old = dict(pg.options)
    try:
        if not rounded:
            pg.options["round.column.CI95"] = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = pg.intraclass_corr(long, targets="target", raters="rater", ratings="score", nan_policy="omit")
    finally:
        pg.options.clear()
        pg.options.update(old)
    return out.set_index("Type")


def _icc_datasets():
    rng = np.random.default_rng(51)
    subj = rng.normal(50, 10, size=(30, 1))
    yield "shrout_fleiss", SHROUT_FLEISS
    wine = pg.read_dataset("icc")           # 8 wines × 4 judges, integer scores
    yield "pingouin_wine", wine.pivot(index="Wine", columns="Judge", values="Scores").to_numpy(float)
    yield "continuous_3_readers_bias", subj + rng.normal(0, 3, size=(30, 3)) + np.array([0.0, 2.0, -1.0])
    # integer grades → many ties
    yield "ties_integer_grades", np.clip(np.round(subj / 10 + rng.normal(0, 0.7, size=(30, 4))), 1, 8)
    yield "two_reads", subj + rng.normal(0, 2, size=(30, 2))
    with_nan = subj + rng.normal(0, 4, size=(30, 3))
    with_nan[[2, 9, 17], [0, 2, 1]] = np.nan
    yield "missing_values", with_nan


ICC_SETS = dict(_icc_datasets())


@pytest.mark.parametrize("name", sorted(ICC_SETS))
def test_icc_matches_pingouin(name):
    data = ICC_SETS[name]
    ours = S.icc(data)
    full = _pingouin_icc(data, rounded=False)
    rounded = _pingouin_icc(data, rounded=True)
    complete = data[~np.isnan(data).any(axis=1)]
    assert (ours.n, ours.k) == complete.shape and ours.n_dropped == len(data) - len(complete)
    assert [r.name for r in ours.results] == PG_NAMES
    for r in ours.results:
        ref = full.loc[r.name]
        assert r.value == pytest.approx(ref["ICC"], abs=TOL)
        assert r.f == pytest.approx(ref["F"], rel=TOL)
        assert (r.df1, r.df2) == (ref["df1"], ref["df2"])
        assert r.p == pytest.approx(ref["pval"], abs=TOL)
        assert (r.ci_low, r.ci_high) == pytest.approx(tuple(ref["CI95"]), abs=TOL)
        # at pingouin's default 2-decimal rounding of CI95
        assert (round(r.ci_low, 2), round(r.ci_high, 2)) == pytest.approx(tuple(rounded.loc[r.name]["CI95"]),
                                                                          abs=1e-9)


@pytest.mark.parametrize("name", sorted(ICC_SETS))
def test_icc_mean_squares_match_statsmodels_anova(name):
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    data = ICC_SETS[name]
    data = data[~np.isnan(data).any(axis=1)]
    n, k = data.shape
    df = pd.DataFrame({"t": np.repeat(np.arange(n), k).astype(str), "r": np.tile(np.arange(k), n).astype(str),
                       "y": data.ravel()})
    two = anova_lm(ols("y ~ C(t) + C(r)", df).fit())
    one = anova_lm(ols("y ~ C(t)", df).fit())
    ours = S.icc(data)
    assert ours.ms_rows == pytest.approx(two.loc["C(t)", "mean_sq"], rel=TOL)
    assert ours.ms_cols == pytest.approx(two.loc["C(r)", "mean_sq"], rel=TOL, abs=1e-12)
    assert ours.ms_error == pytest.approx(two.loc["Residual", "mean_sq"], rel=TOL)
    assert ours.ms_within == pytest.approx(one.loc["Residual", "mean_sq"], rel=TOL)


def test_icc_shrout_fleiss_published_values():
    t = S.icc(SHROUT_FLEISS)
    for name, value in SF_ICC.items():
        assert round(t[name].value, 2) == value, name       # Shrout–Fleiss names resolve via aliases
    for attr, value in SF_MS.items():
        assert round(getattr(t, attr), 2) == value, attr
    assert t["ICC(2,1)"] is t["ICC(A,1)"] and t["ICC(3,k)"] is t["ICC(C,k)"] and t["ICC1k"] is t["ICC(1,k)"]
    with pytest.raises(KeyError):
        t["ICC(9,9)"]


def test_icc_degenerate_and_errors():
    const = S.icc(np.full((5, 3), 4.0))
    assert all(math.isnan(r.value) for r in const.results)
    with pytest.raises(ValueError):
        S.icc(np.ones((5, 1)))
    with pytest.raises(ValueError):
        S.icc(np.array([[1.0, np.nan], [2.0, 3.0]]))


# ---------------------------------------------------------------------------------- Bland–Altman
def test_bland_altman_1986_pefr_example():
    res = S.bland_altman(PEFR_WRIGHT, PEFR_MINI)
    assert res.n == 17
    assert round(res.bias, 1) == -2.1 and round(res.sd, 1) == 38.8      # published
    # the 1986 paper used d̄ ± 2 s with the rounded numbers: −79.7 and 75.5 l/min
    assert res.bias - 2 * res.sd == pytest.approx(-79.7, abs=0.1)
    assert res.bias + 2 * res.sd == pytest.approx(75.5, abs=0.1)


@pytest.mark.parametrize("seed,n", [(61, 17), (62, 40), (63, 5)])
def test_bland_altman_against_independent_computation(seed, n):
    from scipy import stats as st

    rng = np.random.default_rng(seed)
    a = rng.normal(100, 15, n)
    b = a + rng.normal(1.5, 4, n)
    res = S.bland_altman(a, b)
    d = [x - y for x, y in zip(a.tolist(), b.tolist())]
    bias, sd = statistics.fmean(d), statistics.stdev(d)
    assert (res.bias, res.sd) == pytest.approx((bias, sd), abs=TOL)
    assert (res.loa_low, res.loa_high) == pytest.approx((bias - 1.96 * sd, bias + 1.96 * sd), abs=TOL)
    ci = st.ttest_1samp(d, 0.0).confidence_interval(0.95)       # CI of the mean difference
    assert res.bias_ci == pytest.approx((ci.low, ci.high), abs=TOL)
    t = st.t.ppf(0.975, n - 1)
    half = t * math.sqrt(sd ** 2 / n + 1.96 ** 2 * sd ** 2 / (2 * (n - 1)))   # Bland & Altman 1999
    assert res.loa_low_ci == pytest.approx((res.loa_low - half, res.loa_low + half), abs=TOL)
    assert res.loa_high_ci == pytest.approx((res.loa_high - half, res.loa_high + half), abs=TOL)


def test_bland_altman_loa_se_by_simulation():
    # Var(d̄ + 1.96 s) ≈ σ² (1/n + 1.96²/(2(n − 1))): check the approximation behind the LoA CI.
    rng = np.random.default_rng(71)
    n, reps, sigma = 30, 20000, 2.0
    d = rng.normal(0.5, sigma, size=(reps, n))
    upper = d.mean(axis=1) + 1.96 * d.std(axis=1, ddof=1)
    assert upper.std(ddof=1) == pytest.approx(sigma * math.sqrt(1 / n + 1.96 ** 2 / (2 * (n - 1))), rel=0.03)


def test_bland_altman_missing_and_tiny():
    res = S.bland_altman([1.0, np.nan, 3.0, 4.0], [1.5, 2.0, np.nan, 3.0])
    assert res.n == 2 and res.bias == pytest.approx((-0.5 + 1.0) / 2)
    one = S.bland_altman([1.0], [2.0])
    assert one.n == 1 and one.bias == -1.0 and math.isnan(one.sd) and math.isnan(one.loa_low_ci[0])
    assert S.bland_altman([], []).n == 0


# ------------------------------------------------------------------------------- SEM and SDC
def test_sem_two_reads_equals_sd_of_differences_over_root_two():
    # intra-reader: one reader measuring disc height twice
    rng = np.random.default_rng(81)
    true = rng.normal(9.0, 1.5, 25)
    reads = np.column_stack([true + rng.normal(0, 0.3, 25), true + 0.2 + rng.normal(0, 0.3, 25)])
    d = (reads[:, 0] - reads[:, 1]).tolist()
    cons = S.measurement_error(reads, kind="consistency")
    assert cons.sem == pytest.approx(statistics.stdev(d) / math.sqrt(2), abs=TOL)
    assert cons.sdc == pytest.approx(1.96 * math.sqrt(2) * cons.sem, abs=TOL)
    assert cons.sdc == pytest.approx(1.96 * statistics.stdev(d), abs=TOL)
    assert cons.method == "consistency"
    assert cons.icc_used == pytest.approx(_pingouin_icc(reads, rounded=True).loc["ICC(C,1)", "ICC"], abs=TOL)


@pytest.mark.parametrize("name", ["continuous_3_readers_bias", "ties_integer_grades", "two_reads", "shrout_fleiss"])
def test_sem_agreement_from_independent_variance_components(name):
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    data = ICC_SETS[name]
    n, k = data.shape
    df = pd.DataFrame({"t": np.repeat(np.arange(n), k).astype(str), "r": np.tile(np.arange(k), n).astype(str),
                       "y": data.ravel()})
    aov = anova_lm(ols("y ~ C(t) + C(r)", df).fit())
    ms_r, ms_e = aov.loc["C(r)", "mean_sq"], aov.loc["Residual", "mean_sq"]
    ms_t = aov.loc["C(t)", "mean_sq"]
    var_raters = max((ms_r - ms_e) / n, 0.0)
    agr = S.measurement_error(data)                     # default kind = agreement
    assert agr.method == "agreement"
    assert agr.sem == pytest.approx(math.sqrt(var_raters + ms_e), abs=TOL)
    assert agr.sdc == pytest.approx(1.96 * math.sqrt(2) * math.sqrt(var_raters + ms_e), abs=TOL)
    assert S.measurement_error(data, kind="consistency").sem == pytest.approx(math.sqrt(ms_e), abs=TOL)
    icc_a = _pingouin_icc(data, rounded=True).loc["ICC(A,1)", "ICC"]
    assert agr.icc_used == pytest.approx(icc_a, abs=TOL)
    if ms_r > ms_e:   # then SEM² = (σ²_s + σ²_r + σ²_e)(1 − ICC(A,1)) exactly (de Vet 2006)
        var_s = (ms_t - ms_e) / k
        assert agr.sem ** 2 == pytest.approx((var_s + var_raters + ms_e) * (1 - icc_a), rel=1e-9)
    with pytest.raises(ValueError):
        S.measurement_error(data, kind="absolute")


def test_public_api_is_plain_core():
    import discviewer.stats as mod

    for name in ("cohen_kappa", "fleiss_kappa", "KappaResult", "icc", "ICCTable", "ICCResult", "bland_altman",
                 "BlandAltmanResult", "measurement_error", "MeasurementError"):
        assert name in mod.__all__ and hasattr(mod, name)
    for sub in ("kappa", "icc", "agreement"):
        src = __import__(f"discviewer.stats.{sub}", fromlist=["x"])
        assert src.__doc__ and len(src.__doc__) > 200
    import ast
    from pathlib import Path

    for f in Path(mod.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                assert n.split(".")[0] not in ("pandas", "PySide6", "pyqtgraph", "vtkmodules", "vtk", "sklearn",
                                               "statsmodels", "pingouin"), (f.name, n)

"""Agreement statistics for reader studies, as plain numpy/scipy functions (no Qt, VTK or pandas).

Categorical answers (``kappa``):
    Cohen's κ = (p_o − p_e) / (1 − p_e) over the full ordered category list of the scale; weighted κ with
    disagreement weights |i − j|/(K − 1) (linear) or (i − j)²/(K − 1)² (quadratic) on category positions,
    κ_w = 1 − Σ w_ij p_ij / Σ w_ij p_i. p_.j. SE: Fleiss, Cohen & Everitt (1969).
        Cohen J (1960) Educ Psychol Meas 20:37; Cohen J (1968) Psychol Bull 70:213;
        Fleiss JL, Cohen J, Everitt BS (1969) Psychol Bull 72:323.
    Fleiss' κ = (P̄ − P̄_e) / (1 − P̄_e) for m ≥ 2 raters; SE under H0: Fleiss, Nee & Landis (1979).
        Fleiss JL (1971) Psychol Bull 76:378; Fleiss JL, Nee JCM, Landis JR (1979) Psychol Bull 86:974.
Continuous measurements (``icc``, ``agreement``):
    ICC(1,1), ICC(A,1), ICC(C,1), ICC(1,k), ICC(A,k), ICC(C,k) from one-/two-way ANOVA mean squares with
    F tests and F-based 95 % CIs. Shrout PE, Fleiss JL (1979) Psychol Bull 86:420; McGraw KO, Wong SP
    (1996) Psychol Methods 1:30.
    Bland–Altman bias, 95 % limits d̄ ± 1.96 SD and their t-based CIs. Bland JM, Altman DG (1986) Lancet
    i:307; (1999) Stat Methods Med Res 8:135.
    SEM_agreement = √(σ²_raters + σ²_error), SEM_consistency = √σ²_error, SDC = 1.96·√2·SEM.
        de Vet HCW, Terwee CB, Knol DL, Bouter LM (2006) J Clin Epidemiol 59:1033.
Inter-reader data: one column per reader; intra-reader data: one column per read of the same reader.
Missing values: Cohen drops incomplete pairs; Fleiss, ICC and SEM drop incomplete subjects (rows).
Each module's docstring gives the exact formulas.
"""
from .agreement import BlandAltmanResult, MeasurementError, bland_altman, measurement_error
from .icc import ICC_NAMES, ICCResult, ICCTable, anova_mean_squares, icc
from .kappa import KappaResult, cohen_kappa, contingency_table, fleiss_kappa, is_missing

__all__ = [
    "KappaResult", "cohen_kappa", "fleiss_kappa", "contingency_table", "is_missing",
    "ICCResult", "ICCTable", "ICC_NAMES", "icc", "anova_mean_squares",
    "BlandAltmanResult", "MeasurementError", "bland_altman", "measurement_error",
]

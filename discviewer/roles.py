"""Series roles ("T2 sag", "multi-echo GRE", …) and the rules that guess a role from header facts.

A *role* says what a series is for in the review: hanging protocols ask for roles, never for
series descriptions (which differ by site, vendor and year). The guess is only a default; the
user corrects it (`SeriesEntry.set_role`) and every guess carries a one-line reason.

Roles: "T2 sag", "T1 sag", "T2* GRE", "multi-echo GRE", "STIR sag", "T2 ax", "localizer", "other".

The rules of `guess_role`, applied in this order (TR, TE, TI in ms; the first rule that decides wins):

1. **Localizer** — `is_localizer` (ImageType contains LOCALIZER), or the description contains
   "localizer", "localiser", "scout", "survey", "pilot", "tripilot", "3-plane" or a "loc" word.
   **Projections** (ImageType PROJECTION IMAGE, or "mip"/"angio"/"projected" in the description)
   → "other".
   **Diffusion / EPI** → "other": the description names "dwi", "dti", "diffusion", "adc", "trace",
   "epi" or the sequence name is an EPI ("*ep…", "ep2d", "epse", "epfid").
2. **Sequence family**, from the header first:
   - gradient echo (GRE): ScanningSequence contains "GR" without "SE"; or the sequence name
     contains "fl<digit>" (Siemens *fl2d/*fl3d FLASH), "gre", "ffe", "fgre", "spgr", "fisp",
     "me2d"/"me3d" (Siemens MEDIC), "swi" — and no spin-echo marker;
   - inversion recovery (IR, checked first): ScanningSequence contains "IR", or the sequence name
     contains "tir"/"ir2d"/"ir3d"; an IR without TI and without STIR evidence is judged as a spin echo;
   - spin echo (SE/FSE/TSE): ScanningSequence contains "SE"; or the sequence name contains "tse",
     "fse", "se2d"/"se3d", "spc", "haste";
   - if the header says nothing, the description keywords decide the family ("gre", "t2*", "t2star",
     "swi", "medic", "merge", "flash", "ffe", "hemo" → GRE; "tse", "fse", "spin" → SE; "stir" → IR);
   - TR < 100 ms → GRE (a spin echo cannot repeat that fast);
   - several echoes (≥ 2) with a short first TE (< 30 ms) and no spin-echo evidence → GRE.
3. **STIR** — IR family with a short TI (< 300 ms; STIR uses ~130–250 ms, FLAIR ~2000 ms), or the
   description contains "stir" (or a Siemens "tir" sequence without TI whose description does not
   say FLAIR). Sagittal → "STIR sag", other planes → "other".
4. **GRE** — ≥ 2 echoes → "multi-echo GRE" (any plane). One echo: description says T2*-type
   ("t2*", "t2star", "swi", "medic", "merge", "hemo") or TE ≥ 10 ms → "T2* GRE"; TE < 10 ms and
   TR < 1000 ms → a T1-weighted spoiled GRE (FLASH/SPGR): "T1 sag" when sagittal, else "other"
   (the short TE gives almost no T2* weighting, so it is useless for iron; as an anatomical
   sagittal it is closest to the T1). No TE → "T2* GRE" with the reason saying so.
5. **Spin echo** or unknown family, by TR/TE: TR > 1500 and TE ≥ 60 → T2-weighted ("T2 sag" when
   sagittal, "T2 ax" when axial, else "other"); TR < 1000 and TE < 30 → T1-weighted ("T1 sag" when
   sagittal, else "other"; for an unknown family the reason says the sequence type was not
   recorded); TR > 1500 and TE < 30 → proton density ("other").
6. **Description keywords** as the tie-breaker when TR/TE are missing or in between: "stir",
   "t2*"-type words (→ "T2* GRE" or "multi-echo GRE"), "me"/"multi-echo"/"multiecho" (→ "multi-echo
   GRE", only with ≥ 2 echoes), "t2"/"t2w" as a word (→ "T2 sag"/"T2 ax"), "t1"/"t1w" (→ "T1 sag").
7. Otherwise "other".

Header physics beats the description: a series described "T2" with TR 500 / TE 10 is called
"T1 sag", and the reason says that the description disagrees.

`SeriesInfo` does not (yet) carry ScanningSequence or InversionTime; `guess_role` reads them from
the info when present (`scanning_sequence`, `inversion_time`) or from the keyword arguments.
Core module: stdlib only.
"""
from __future__ import annotations

import re
from enum import Enum


class Role(str, Enum):
    """What a series is for; the value is the display text (and compares equal to it)."""

    T2_SAG = "T2 sag"
    T1_SAG = "T1 sag"
    T2STAR_GRE = "T2* GRE"
    MULTI_ECHO_GRE = "multi-echo GRE"
    STIR_SAG = "STIR sag"
    T2_AX = "T2 ax"
    LOCALIZER = "localizer"
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


ROLES: tuple[str, ...] = tuple(r.value for r in Role)

#: thresholds of the rules above (ms)
T2_MIN_TR = 1500.0
T2_MIN_TE = 60.0
T1_MAX_TR = 1000.0
T1_MAX_TE = 30.0
T2STAR_MIN_TE = 10.0
STIR_MAX_TI = 300.0
MULTI_ECHO_MAX_FIRST_TE = 30.0


def parse_role(value: str | Role) -> Role:
    """A `Role` from its text ("T2 sag"), case-insensitively, or from its enum name ("T2_SAG")."""
    if isinstance(value, Role):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a role must be text, got {value!r}")
    text = value.strip()
    for r in Role:
        if text.lower() == r.value.lower() or text.upper() == r.name:
            return r
    raise ValueError(f"unknown role {value!r}; known roles: {', '.join(ROLES)}")


# -------------------------------------------------------------------------------------------------
# keyword helpers

_GRE_SEQ = re.compile(r"fl\d|fl[23]d|^\*?fl|gre|ffe|fgre|spgr|me[23]d|swi|medic|merge|flash|fisp", re.I)
_SE_SEQ = re.compile(r"tse|fse|se[23]d|spc|haste|tir|^\*?se", re.I)
_IR_SEQ = re.compile(r"tir|ir[23]d|stir", re.I)
_T2STAR_WORDS = re.compile(r"t2\s*\*|t2star|t2s([^a-z0-9]|$)|\bswi\b|medic|merge|hemo|haemo|susc", re.I)
_GRE_WORDS = re.compile(r"gre\b|gre[_\s-]|\bgre|flash|ffe|fl2d|fl3d|spgr|fgre", re.I)
_SE_WORDS = re.compile(r"tse|fse|spin", re.I)
_ME_WORDS = re.compile(r"(^|[^a-z0-9])me([^a-z0-9]|$)|multi[\s_-]?echo|multiecho|mgre|me[\s_-]?gre", re.I)
_DWI_WORDS = re.compile(r"(^|[^a-z])(dwi|dti|adc|trace|epi|diff(usion)?)([^a-z]|$)|ep2d"
                        r"|(^|[^a-z])b\d{3,4}([^0-9]|$)", re.I)
_EPI_SEQ = re.compile(r"^\*?ep|ep2d|epse|epfid|epi", re.I)
_LOC_WORDS = re.compile(r"locali[sz]er|scout|survey|(^|[^a-z])loc([^a-z]|$)|pilot|3[\s_-]?plane", re.I)
_PROJ_WORDS = re.compile(r"(^|[^a-z])(mip|angio|projected|projection)([^a-z]|$)", re.I)
GRE_MAX_TR = 100.0


def _word(pattern: str, text: str) -> bool:
    return re.search(rf"(^|[^a-z0-9]){pattern}([^a-z0-9*]|$)", text, re.I) is not None


def _fmt(v: float | None) -> str:
    return "?" if v is None else f"{v:g}"


def guess_role(info, *, n_echoes: int = 1, plane: str = "", is_localizer: bool = False,
               scanning_sequence: str | None = None, inversion_time: float | None = None) -> tuple[Role, str]:
    """Guess the role of a series from its header facts; returns (role, one-line reason).

    `info` is a `SeriesInfo` (of the first echo); `n_echoes` the number of echoes of the series;
    `plane` "sag"/"cor"/"ax"/"obl"/"" (acquisition plane). See the module docstring for the rules.
    """
    desc = (getattr(info, "series_description", "") or "").strip()
    seq = (getattr(info, "sequence_name", "") or "").strip()
    ss = (scanning_sequence if scanning_sequence is not None else getattr(info, "scanning_sequence", "")) or ""
    ss = str(ss).upper()
    ti = inversion_time if inversion_time is not None else getattr(info, "inversion_time", None)
    tr = getattr(info, "repetition_time", None)
    te = getattr(info, "echo_time", None)
    image_type = tuple(str(v).upper() for v in (getattr(info, "image_type", ()) or ()))
    plane = plane or ""
    facts = f"TR {_fmt(tr)} ms, TE {_fmt(te)} ms" + (f", {n_echoes} echoes" if n_echoes > 1 else "")
    dlow = desc.lower()

    # 1. localizer
    if is_localizer or "LOCALIZER" in image_type:
        return Role.LOCALIZER, "ImageType says LOCALIZER"
    if _LOC_WORDS.search(desc):
        return Role.LOCALIZER, f"description {desc!r} names a localizer"

    if "PROJECTION IMAGE" in image_type or _PROJ_WORDS.search(desc):
        return Role.OTHER, f"a projection image ({desc or 'ImageType PROJECTION IMAGE'})"
    if _DWI_WORDS.search(desc) or (seq and _EPI_SEQ.search(seq)) or \
            any(t in image_type for t in ("DIFFUSION", "ADC", "TRACEW", "FA")):
        return Role.OTHER, f"diffusion / echo-planar series ({desc or seq})"

    # 2. family
    family, family_why = "", ""
    ss_parts = set(re.split(r"[\\/ ,]+", ss)) - {""}
    if "IR" in ss_parts or (seq and _IR_SEQ.search(seq)):
        family, family_why = "IR", f"inversion recovery ({'ScanningSequence ' + ss if 'IR' in ss_parts else seq})"
    elif "GR" in ss_parts and "SE" not in ss_parts:
        family, family_why = "GRE", f"gradient echo (ScanningSequence {ss})"
    elif "SE" in ss_parts:
        family, family_why = "SE", f"spin echo (ScanningSequence {ss})"
    elif seq and _GRE_SEQ.search(seq) and not _SE_SEQ.search(seq):
        family, family_why = "GRE", f"gradient echo (sequence {seq})"
    elif seq and _SE_SEQ.search(seq):
        family, family_why = "SE", f"spin echo (sequence {seq})"
    elif "stir" in dlow:
        family, family_why = "IR", f"description {desc!r} says STIR"
    elif _T2STAR_WORDS.search(desc) or _GRE_WORDS.search(desc):
        family, family_why = "GRE", f"description {desc!r} names a gradient echo"
    elif _SE_WORDS.search(desc):
        family, family_why = "SE", f"description {desc!r} names a spin echo"
    elif tr is not None and tr < GRE_MAX_TR:
        family, family_why = "GRE", f"TR {tr:g} ms < {GRE_MAX_TR:g} ms: only a gradient echo repeats that fast"
    elif n_echoes >= 2 and te is not None and te < MULTI_ECHO_MAX_FIRST_TE:
        family, family_why = "GRE", f"{n_echoes} echoes with a short first TE and no spin-echo evidence"

    t2star_words = bool(_T2STAR_WORDS.search(desc))

    # 3. STIR
    if family == "IR":
        short_ti = ti is not None and ti < STIR_MAX_TI
        if short_ti or "stir" in dlow or (ti is None and seq and "tir" in seq.lower() and not _word("flair", desc)):
            why = f"{family_why}, TI {_fmt(ti)} ms" if ti is not None else family_why
            if plane == "sag":
                return Role.STIR_SAG, f"STIR: {why}"
            return Role.OTHER, f"STIR but acquired {plane or 'in an unknown plane'} ({why})"
        if ti is not None:
            return Role.OTHER, f"{family_why} with TI {_fmt(ti)} ms (not a STIR, e.g. FLAIR)"
        # an IR without TI and without STIR evidence: judge it as a spin echo by TR/TE
        family = "SE"

    # 4. GRE
    if family == "GRE":
        if n_echoes >= 2:
            return Role.MULTI_ECHO_GRE, f"{family_why}, {facts}"
        if t2star_words:
            return Role.T2STAR_GRE, f"{family_why}, description {desc!r} names a T2*-weighted sequence"
        if te is None:
            return Role.T2STAR_GRE, f"{family_why}, single echo, no TE recorded"
        if te >= T2STAR_MIN_TE:
            return Role.T2STAR_GRE, f"{family_why}, {facts}: TE ≥ {T2STAR_MIN_TE:g} ms gives T2* weighting"
        if tr is not None and tr < T1_MAX_TR:
            why = (f"{family_why}, {facts}: a T1-weighted spoiled gradient echo (TE < {T2STAR_MIN_TE:g} ms "
                   f"gives almost no T2* weighting)")
            if plane == "sag":
                return Role.T1_SAG, why
            return Role.OTHER, f"{why}, acquired {plane or 'in an unknown plane'}"
        return Role.T2STAR_GRE, f"{family_why}, {facts}: short TE, weak T2* weighting"

    # 5. spin echo (or unknown family) by TR/TE
    disagree = ""
    if tr is not None and te is not None:
        if tr > T2_MIN_TR and te >= T2_MIN_TE:
            if _word("t1w?", desc):
                disagree = f"; the description {desc!r} says T1, the header wins"
            why = f"T2-weighted ({facts}" + (f", {family_why})" if family else ")") + disagree
            if plane == "sag":
                return Role.T2_SAG, why
            if plane == "ax":
                return Role.T2_AX, why
            return Role.OTHER, f"{why}, acquired {plane or 'in an unknown plane'}"
        if tr < T1_MAX_TR and te < T1_MAX_TE:
            if _word("t2w?", desc):
                disagree = f"; the description {desc!r} says T2, the header wins"
            src = family_why if family else "sequence type not recorded"
            why = f"T1-weighted ({facts}, {src})" + disagree
            if plane == "sag":
                return Role.T1_SAG, why
            return Role.OTHER, f"{why}, acquired {plane or 'in an unknown plane'}"
        if tr > T2_MIN_TR and te < T1_MAX_TE and not (_word("t2w?", desc) or _word("t1w?", desc)):
            return Role.OTHER, f"proton-density weighted ({facts})"

    # 6. description keywords
    if t2star_words:
        if n_echoes >= 2:
            return Role.MULTI_ECHO_GRE, f"description {desc!r} names a T2*-weighted sequence, {n_echoes} echoes"
        return Role.T2STAR_GRE, f"description {desc!r} names a T2*-weighted sequence ({facts})"
    if _ME_WORDS.search(desc) and n_echoes >= 2:
        return Role.MULTI_ECHO_GRE, f"description {desc!r} names a multi-echo sequence"
    if _word("t2w?", desc):
        why = f"description {desc!r} says T2 ({facts})"
        if plane == "sag":
            return Role.T2_SAG, why
        if plane == "ax":
            return Role.T2_AX, why
        return Role.OTHER, f"{why}, acquired {plane or 'in an unknown plane'}"
    if _word("t1w?", desc):
        why = f"description {desc!r} says T1 ({facts})"
        if plane == "sag":
            return Role.T1_SAG, why
        return Role.OTHER, f"{why}, acquired {plane or 'in an unknown plane'}"
    return Role.OTHER, f"no rule matched ({facts}{', ' + family_why if family else ''})"

"""Questions of a blinded reading session: the `Question` record, answer validation, and the templates.

A `Question` has a machine `id` (CSV column / answer key, unique in a session), the `text` shown to
the reader, a `type` and type-specific settings:

| type | answer value (JSON) | settings |
|---|---|---|
| "choice" | one option value (int or str) | `options`; `ordinal` (ordered categories → weighted κ) |
| "multi" | list of distinct option values (stored in option order) | `options` |
| "number" | int or float | `min`, `max`, `step` (grid from `min`, else from 0), `unit` |
| "yesno" | bool | — |
| "text" | str (stripped) | — |
| "measurement" | {"value": number, …} (a bare number is accepted and wrapped) | `measurement` kind (`MEASUREMENT_KINDS`: "disc_height", "signal_ratio", "ruler", …), `min`/`max`/`step`, `unit` |

A measurement answer is a dict so that the tool can keep what it measured beside the value
(components such as {"DHa": 8.1, "DHm": 9.0, "DHp": 6.2}, the method, the points in LPS mm); the
number that agreement statistics and the CSV `answer` column use is `"value"`. Everything else
in the dict must be plain JSON.

**Empty answers.** None, "", whitespace-only text and [] are empty. A `required` question must not
be empty; an empty optional answer needs an explicit confirmation (`ReaderProgress.submit(...,
confirm_empty=True)`).

**Confidence.** A question may carry a `confidence` scale (options, e.g. the 4-point "definitely
present" … "definitely absent"); its answer is then stored as {"value": v, "confidence": c}.
`confidence_required` (default True) makes the confidence compulsory whenever the value is not empty.

**Templates** (`TEMPLATES`, `template(name)`; each is a list of questions):
- "pfirrmann": Pfirrmann grade I–V (Pfirrmann et al., Spine 2001), values 1–5, ordinal, each option
  with the grading criteria (structure; nucleus/annulus distinction; signal; height).
- "modic": **two questions**, "modic_upper" (cranial endplate of the disc level) and "modic_lower"
  (caudal endplate), each 0 none / 1 / 2 / 3 (Modic et al., Radiology 1988) — two questions rather
  than one with parts so every answer stays a single category and κ can be computed per endplate;
  the names match the `score` annotation values. Modic types are nominal (not ordered), so only the
  unweighted κ is reported. Mixed types: answer the dominant type (say so in the free text).
- "iron_presence": ordinal 0 none, 1 equivocal, 2 definite focal, 3 extensive, with the 4-point
  confidence scale 4 "definitely present", 3 "probably present", 2 "probably absent",
  1 "definitely absent".
- "disc_height": measurement "disc_height" (mm; the value is DH = (DHa + DHm + DHp)/3).
- "signal_ratio": measurement "signal_ratio" (SI nucleus / SI CSF on the same slice; no unit).
- "free_text": optional text "comment".

Core module: stdlib only.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

QUESTION_TYPES: tuple[str, ...] = ("choice", "multi", "number", "yesno", "text", "measurement")
#: measurement kind → what its answer's "value" is (the other keys of the answer are free: components,
#: method, points). The kinds are those of the measurement tools (`discviewer.annotations`).
MEASUREMENT_KINDS: dict[str, str] = {
    "disc_height": "DH = (DHa + DHm + DHp) / 3, mm (6-point tool)",
    "signal_ratio": "SI(nucleus) / SI(reference ROI), no unit",
    "ruler": "length, mm",
    "angle": "angle, degrees",
    "vb_height": "mean vertebral body height (VBHa + VBHm + VBHp) / 3, mm",
    "iron": "hypointense void volume, mm³",
    "roi_area": "ROI area, mm²",
}
STEP_TOLERANCE = 1e-6  # relative to the step


class AnswerError(ValueError):
    """An answer value that the question does not accept (the message says why)."""


@dataclass(frozen=True)
class Option:
    """One answer option: the stored `value`, the `label` shown, and optional `criteria` text."""

    value: int | str | float
    label: str
    criteria: str = ""

    def to_dict(self) -> dict:
        d = {"value": self.value, "label": self.label}
        if self.criteria:
            d["criteria"] = self.criteria
        return d

    @classmethod
    def from_dict(cls, d) -> "Option":
        if isinstance(d, Option):
            return d
        if isinstance(d, (list, tuple)):
            return cls(*d)
        return cls(d["value"], str(d.get("label", d["value"])), str(d.get("criteria", "")))


def _options(items) -> tuple[Option, ...]:
    return tuple(Option.from_dict(o) for o in (items or ()))


def is_empty(value) -> bool:
    """None, "", whitespace-only text, [] and {} (and a measurement dict whose value is None) are empty."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, set)):
        return len(value) == 0
    if isinstance(value, dict):
        return len(value) == 0 or ("value" in value and value["value"] is None)
    return False


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _json_number(v):
    """int stays int; numpy scalars and floats become float/int."""
    if hasattr(v, "item") and not isinstance(v, (int, float)):
        v = v.item()
    return v


@dataclass(frozen=True)
class Question:
    """One question of a reading session (see the module docstring)."""

    id: str
    text: str
    type: str = "choice"
    options: tuple[Option, ...] = ()
    min: float | None = None
    max: float | None = None
    step: float | None = None
    unit: str = ""
    required: bool = True
    measurement: str = ""
    confidence: tuple[Option, ...] = ()
    confidence_required: bool = True
    ordinal: bool = False
    help: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _options(self.options))
        object.__setattr__(self, "confidence", _options(self.confidence))
        if not isinstance(self.id, str) or not self.id.strip():
            raise ValueError("a question needs a non-empty id")
        if self.type not in QUESTION_TYPES:
            raise ValueError(f"question {self.id!r}: unknown type {self.type!r}; one of {', '.join(QUESTION_TYPES)}")
        if self.type in ("choice", "multi"):
            if not self.options:
                raise ValueError(f"question {self.id!r}: a {self.type} question needs options")
            values = [o.value for o in self.options]
            if len(set(map(_key, values))) != len(values):
                raise ValueError(f"question {self.id!r}: option values repeat: {values}")
        if self.type == "measurement" and self.measurement not in MEASUREMENT_KINDS:
            raise ValueError(f"question {self.id!r}: a measurement question needs a measurement kind, one of "
                             f"{', '.join(MEASUREMENT_KINDS)}; got {self.measurement!r}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"question {self.id!r}: min {self.min} > max {self.max}")
        if self.step is not None and not self.step > 0:
            raise ValueError(f"question {self.id!r}: step must be > 0")
        cvals = [o.value for o in self.confidence]
        if len(set(map(_key, cvals))) != len(cvals):
            raise ValueError(f"question {self.id!r}: confidence values repeat: {cvals}")

    # ------------------------------------------------------------------ categories
    @property
    def is_categorical(self) -> bool:
        """Answers are categories (κ statistics): choice and yes/no."""
        return self.type in ("choice", "yesno")

    @property
    def is_numeric(self) -> bool:
        """Answers are numbers (ICC, Bland–Altman): number and measurement."""
        return self.type in ("number", "measurement")

    def categories(self) -> list:
        """The full category list for agreement statistics (all options, even unused ones, in order)."""
        if self.type == "yesno":
            return [False, True]
        return [o.value for o in self.options]

    def label_of(self, value) -> str:
        for o in self.options:
            if _key(o.value) == _key(value):
                return o.label
        if self.type == "yesno" and isinstance(value, bool):
            return "yes" if value else "no"
        return "" if value is None else str(value)

    # ------------------------------------------------------------------ validation
    def validate(self, value):
        """The answer value in its stored form, or `AnswerError` saying why it is not accepted.
        Empty values (see `is_empty`) are returned as None (whether that is allowed is the caller's rule)."""
        if is_empty(value):
            return None
        t = self.type
        where = f"question {self.id!r}"
        if t == "choice":
            return self._option_value(value, where)
        if t == "multi":
            if not isinstance(value, (list, tuple, set)):
                raise AnswerError(f"{where}: expects a list of options, got {value!r}")
            chosen = [self._option_value(v, where) for v in value]
            if len(set(map(_key, chosen))) != len(chosen):
                raise AnswerError(f"{where}: an option is chosen twice: {list(value)!r}")
            keys = set(map(_key, chosen))
            return [o.value for o in self.options if _key(o.value) in keys]
        if t == "yesno":
            if not isinstance(value, bool):
                raise AnswerError(f"{where}: expects yes/no (True/False), got {value!r}")
            return value
        if t == "text":
            if not isinstance(value, str):
                raise AnswerError(f"{where}: expects text, got {value!r}")
            return value.strip()
        if t == "number":
            return self._number(_json_number(value), where)
        # measurement
        if isinstance(value, dict):
            if "value" not in value:
                raise AnswerError(f"{where}: a measurement answer needs a 'value'")
            rest = {str(k): v for k, v in value.items() if k != "value"}
            try:
                json.dumps(rest, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise AnswerError(f"{where}: measurement details must be plain JSON ({e})") from None
            return {"value": self._number(_json_number(value["value"]), where), **rest}
        return {"value": self._number(_json_number(value), where)}

    def _option_value(self, value, where):
        for o in self.options:
            if _key(o.value) == _key(value):
                return o.value
        allowed = ", ".join(f"{o.value!r} ({o.label})" for o in self.options)
        raise AnswerError(f"{where}: {value!r} is not an option; options: {allowed}")

    def _number(self, v, where):
        if not _is_number(v):
            raise AnswerError(f"{where}: expects a finite number, got {v!r}")
        if self.min is not None and v < self.min:
            raise AnswerError(f"{where}: {v:g} is below the minimum {self.min:g}{self._unit_text()}")
        if self.max is not None and v > self.max:
            raise AnswerError(f"{where}: {v:g} is above the maximum {self.max:g}{self._unit_text()}")
        if self.step is not None:
            k = (v - (self.min if self.min is not None else 0.0)) / self.step
            if abs(k - round(k)) > STEP_TOLERANCE:
                raise AnswerError(f"{where}: {v:g} is not a multiple of the step {self.step:g}")
        return v

    def _unit_text(self) -> str:
        return f" {self.unit}" if self.unit else ""

    def validate_confidence(self, confidence):
        """The confidence in stored form (None when empty), or `AnswerError`."""
        if is_empty(confidence):
            return None
        if not self.confidence:
            raise AnswerError(f"question {self.id!r} has no confidence scale")
        for o in self.confidence:
            if _key(o.value) == _key(confidence):
                return o.value
        allowed = ", ".join(f"{o.value!r} ({o.label})" for o in self.confidence)
        raise AnswerError(f"question {self.id!r}: confidence {confidence!r} is not on the scale; scale: {allowed}")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        d: dict = {"id": self.id, "text": self.text, "type": self.type, "required": self.required}
        if self.options:
            d["options"] = [o.to_dict() for o in self.options]
        for k in ("min", "max", "step"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.unit:
            d["unit"] = self.unit
        if self.measurement:
            d["measurement"] = self.measurement
        if self.confidence:
            d["confidence"] = [o.to_dict() for o in self.confidence]
            d["confidence_required"] = self.confidence_required
        if self.ordinal:
            d["ordinal"] = True
        if self.help:
            d["help"] = self.help
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Question":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"question {d.get('id')!r}: unknown keys {sorted(unknown)}")
        return cls(**d)


def _key(v):
    """Comparison key that keeps True apart from 1 and 1 equal to 1.0."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, float)):
        return ("num", float(v))
    return (type(v).__name__, v)


# ------------------------------------------------------------------------------------------------ templates

PFIRRMANN_OPTIONS: tuple[Option, ...] = (
    Option(1, "I", "Structure homogeneous, bright white; nucleus/annulus distinction clear; signal hyperintense, "
                   "isointense to CSF; height normal."),
    Option(2, "II", "Structure inhomogeneous, with or without horizontal bands; distinction clear; signal "
                    "hyperintense, isointense to CSF; height normal."),
    Option(3, "III", "Structure inhomogeneous, grey; distinction unclear; signal intermediate; height normal to "
                     "slightly decreased."),
    Option(4, "IV", "Structure inhomogeneous, grey to black; distinction lost; signal intermediate to hypointense; "
                    "height normal to moderately decreased."),
    Option(5, "V", "Structure inhomogeneous, black; distinction lost; signal hypointense; disc space collapsed."),
)

MODIC_OPTIONS: tuple[Option, ...] = (
    Option(0, "none", "No endplate marrow signal change."),
    Option(1, "type 1", "T1 hypointense, T2 hyperintense (oedema; active)."),
    Option(2, "type 2", "T1 hyperintense, T2 iso- to hyperintense (fatty replacement)."),
    Option(3, "type 3", "Hypointense on T1 and T2 (sclerosis)."),
)

IRON_OPTIONS: tuple[Option, ...] = (
    Option(0, "none", "No hypointense signal void attributable to iron-labelled cells."),
    Option(1, "equivocal", "A possible small void; could be gas, calcification or degeneration."),
    Option(2, "definite focal", "A definite focal signal void with blooming (strongest on T2* GRE)."),
    Option(3, "extensive", "Extensive or multiple signal voids."),
)

CONFIDENCE_4: tuple[Option, ...] = (
    Option(4, "definitely present"),
    Option(3, "probably present"),
    Option(2, "probably absent"),
    Option(1, "definitely absent"),
)

TEMPLATES: dict[str, tuple[Question, ...]] = {
    "pfirrmann": (
        Question("pfirrmann", "Pfirrmann grade (mid-sagittal T2)", "choice", PFIRRMANN_OPTIONS, ordinal=True,
                 help="Pfirrmann et al., Spine 2001;26:1873. Grade on the mid-sagittal T2-weighted slice."),
    ),
    "modic": (
        Question("modic_upper", "Modic change, cranial endplate", "choice", MODIC_OPTIONS,
                 help="Modic et al., Radiology 1988. Mixed types: answer the dominant type."),
        Question("modic_lower", "Modic change, caudal endplate", "choice", MODIC_OPTIONS,
                 help="Modic et al., Radiology 1988. Mixed types: answer the dominant type."),
    ),
    "iron_presence": (
        Question("iron_presence", "Iron (signal void of labelled cells)", "choice", IRON_OPTIONS, ordinal=True,
                 confidence=CONFIDENCE_4,
                 help="Score 0–3; confidence that iron is present on the 4-point scale."),
    ),
    "disc_height": (
        Question("disc_height", "Disc height (DH = mean of DHa, DHm, DHp)", "measurement", min=0.0, max=40.0,
                 unit="mm", measurement="disc_height",
                 help="6-point tool on the mid-sagittal slice: anterior, middle and posterior points on each "
                      "endplate."),
    ),
    "signal_ratio": (
        Question("signal_ratio", "Signal ratio nucleus / CSF", "measurement", min=0.0, measurement="signal_ratio",
                 help="ROI in the nucleus and in the CSF on the same slice and series."),
    ),
    "free_text": (
        Question("comment", "Comment", "text", required=False),
    ),
}


def template(name: str, **changes) -> list[Question]:
    """The questions of template `name` (see `TEMPLATES`), with `changes` applied to each
    (e.g. `required=False`)."""
    try:
        qs = TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown question template {name!r}; templates: {', '.join(TEMPLATES)}") from None
    if "id" in changes:
        raise ValueError("template(): the id of a template question cannot be changed here")
    return [dataclasses.replace(q, **changes) if changes else q for q in qs]


def questions_from(items) -> list[Question]:
    """Questions from template names and/or `Question`s / question dicts, in order; ids must be unique."""
    out: list[Question] = []
    for it in items:
        if isinstance(it, str):
            out.extend(template(it))
        elif isinstance(it, Question):
            out.append(it)
        else:
            out.append(Question.from_dict(it))
    ids = [q.id for q in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"question ids repeat: {', '.join(dup)}")
    return out


__all__ = ["Question", "Option", "AnswerError", "QUESTION_TYPES", "MEASUREMENT_KINDS", "TEMPLATES", "template",
           "questions_from", "is_empty", "PFIRRMANN_OPTIONS", "MODIC_OPTIONS", "IRON_OPTIONS", "CONFIDENCE_4"]

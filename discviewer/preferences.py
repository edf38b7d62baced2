"""User preferences: a plain dataclass with defaults, validation and a JSON-friendly dict form.

Core module (stdlib only): the Qt side (`discviewer.ui.preferences_ui`) stores it in QSettings and
applies it to the running app; scripts and tests use it without Qt.

Fields (defaults in brackets):
- `mouse_scheme` ["pacs"]: left-drag window/level ("pacs", DESIGN.md §6) or left-drag crosshair
  ("crosshair"); middle/right/wheel are the same in both.
- `wl_presets`: absolute window/level presets, each a `WindowPreset(name, centre, width)`; they appear
  in View → Window/level presets after the built-in relative ones.
- `hanging_protocol` [""]: name of the default hanging protocol ("" = the first built-in one).
- `autosave_interval_s` [60]: the periodic autosave timer (10–3600 s).
- `export_scale` [3.0]: resolution factor of exported images over the view (1–8).
- `export_deidentified` [True]: exports leave out identifying text unless the user opts in.
- `reader_name` [""]: recorded as the reader of new annotations and in the audit log ("" = the
  login name).
- `acknowledged_version` [""]: the app version whose research-use notice the user accepted.
- `pacs_nodes` [[]]: the remote DICOM nodes of File → Query/Retrieve…, each a
  `discviewer.pacs.RemoteNode.to_dict()` dict (name, host, port, called / calling AE title, transport,
  URL, retrieve method, C-MOVE port, timeout). Here only "a list of JSON-able objects" is checked; the
  app's store (`discviewer.ui.preferences_ui.PreferencesStore`) keeps the entries that pass
  `RemoteNode.validated()`, edited on the Preferences dialog's PACS page.

`validate()` returns the problems as texts (empty when valid); `from_dict` is lenient — it keeps the
defaults for missing, unknown or invalid fields (a settings file from another version must never
stop the app) and `from_dict(..., strict=True)` raises `PreferencesError` instead.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field, fields

MOUSE_SCHEMES = ("pacs", "crosshair")
MOUSE_SCHEME_TITLES = {"pacs": "PACS: left-drag window/level", "crosshair": "Crosshair: left-drag places the crosshair"}
AUTOSAVE_RANGE_S = (10, 3600)
EXPORT_SCALE_RANGE = (1.0, 8.0)


class PreferencesError(ValueError):
    """Invalid preferences (the message lists every problem)."""


@dataclass(frozen=True)
class WindowPreset:
    """An absolute window/level preset (stored values of the image, e.g. MR signal units)."""

    name: str
    centre: float
    width: float

    def problems(self, where: str = "preset") -> list[str]:
        out = []
        if not isinstance(self.name, str) or not self.name.strip():
            out.append(f"{where}: the name must be a non-empty text")
        finite = True
        for k in ("centre", "width"):
            v = getattr(self, k)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                out.append(f"{where}: {k} must be a finite number, got {v!r}")
                finite = finite and k != "width"
        if finite and isinstance(self.width, (int, float)) and self.width <= 0:
            out.append(f"{where}: width must be positive, got {self.width:g}")
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "centre": float(self.centre), "width": float(self.width)}

    @classmethod
    def from_dict(cls, d) -> "WindowPreset":
        if isinstance(d, (list, tuple)) and len(d) == 3:
            name, c, w = d
        elif isinstance(d, dict):
            name, c, w = d.get("name"), d.get("centre", d.get("center")), d.get("width")
        else:
            raise PreferencesError(f"a window/level preset must be (name, centre, width), got {d!r}")
        try:
            return cls(str(name) if name is not None else "", float(c), float(w))
        except (TypeError, ValueError):
            raise PreferencesError(f"window/level preset {name!r}: centre and width must be numbers") from None


DEFAULT_WL_PRESETS = (
    WindowPreset("Spine T2 (C 500, W 1000)", 500.0, 1000.0),
    WindowPreset("Spine T1 (C 600, W 1200)", 600.0, 1200.0),
    WindowPreset("Bright fluid (C 1000, W 2000)", 1000.0, 2000.0),
)


@dataclass
class Preferences:
    mouse_scheme: str = "pacs"
    wl_presets: list[WindowPreset] = field(default_factory=lambda: list(DEFAULT_WL_PRESETS))
    hanging_protocol: str = ""
    autosave_interval_s: int = 60
    export_scale: float = 3.0
    export_deidentified: bool = True
    reader_name: str = ""
    acknowledged_version: str = ""
    pacs_nodes: list[dict] = field(default_factory=list)

    # ------------------------------------------------------------------ validation
    def validate(self) -> list[str]:
        """Every problem as a text; empty when valid."""
        out = []
        if self.mouse_scheme not in MOUSE_SCHEMES:
            out.append(f"mouse_scheme must be one of {', '.join(MOUSE_SCHEMES)}, got {self.mouse_scheme!r}")
        names = set()
        for i, p in enumerate(self.wl_presets):
            if not isinstance(p, WindowPreset):
                out.append(f"wl_presets[{i}] is not a WindowPreset")
                continue
            out += p.problems(f"wl_presets[{i}] ({p.name!r})")
            if p.name in names:
                out.append(f"wl_presets[{i}]: the name {p.name!r} is used twice")
            names.add(p.name)
        if not isinstance(self.hanging_protocol, str):
            out.append("hanging_protocol must be a text")
        lo, hi = AUTOSAVE_RANGE_S
        if isinstance(self.autosave_interval_s, bool) or not isinstance(self.autosave_interval_s, int) \
                or not lo <= self.autosave_interval_s <= hi:
            out.append(f"autosave_interval_s must be a whole number of seconds in {lo}–{hi}, "
                       f"got {self.autosave_interval_s!r}")
        lo, hi = EXPORT_SCALE_RANGE
        if isinstance(self.export_scale, bool) or not isinstance(self.export_scale, (int, float)) \
                or not math.isfinite(self.export_scale) or not lo <= self.export_scale <= hi:
            out.append(f"export_scale must be in {lo:g}–{hi:g}, got {self.export_scale!r}")
        if not isinstance(self.export_deidentified, bool):
            out.append("export_deidentified must be true or false")
        if not isinstance(self.reader_name, str) or "\n" in self.reader_name:
            out.append("reader_name must be a one-line text")
        if not isinstance(self.acknowledged_version, str):
            out.append("acknowledged_version must be a text")
        if not isinstance(self.pacs_nodes, list) or not all(isinstance(n, dict) for n in self.pacs_nodes):
            out.append("pacs_nodes must be a list of objects")
        else:
            try:
                json.dumps(self.pacs_nodes)
            except (TypeError, ValueError) as exc:
                out.append(f"pacs_nodes must be JSON-serialisable: {exc}")
        return out

    def check(self) -> "Preferences":
        problems = self.validate()
        if problems:
            raise PreferencesError("invalid preferences: " + "; ".join(problems))
        return self

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> dict:
        """Plain JSON-able values (presets as dicts)."""
        return {
            "mouse_scheme": self.mouse_scheme,
            "wl_presets": [p.to_dict() for p in self.wl_presets],
            "hanging_protocol": self.hanging_protocol,
            "autosave_interval_s": int(self.autosave_interval_s),
            "export_scale": float(self.export_scale),
            "export_deidentified": bool(self.export_deidentified),
            "reader_name": self.reader_name,
            "acknowledged_version": self.acknowledged_version,
            "pacs_nodes": copy.deepcopy(self.pacs_nodes),
        }

    @classmethod
    def from_dict(cls, data: dict | None, *, strict: bool = False) -> "Preferences":
        """Preferences from `to_dict` output. Lenient by default: a missing, unknown or invalid field
        keeps its default (so an old or hand-edited settings file never stops the app)."""
        data = dict(data or {})
        prefs = cls()
        problems: list[str] = []
        known = {f.name for f in fields(cls)}
        for key in sorted(set(data) - known):
            problems.append(f"unknown field {key!r}")
        for key in known & set(data):
            value = data[key]
            try:
                value = _coerce(key, value)
            except (PreferencesError, TypeError, ValueError) as exc:
                problems.append(f"{key}: {exc}")
                continue
            trial = copy.copy(prefs)
            setattr(trial, key, value)
            bad = [p for p in trial.validate() if p.startswith(key)]
            if bad:
                problems += bad
                continue
            setattr(prefs, key, value)
        if strict and problems:
            raise PreferencesError("invalid preferences: " + "; ".join(problems))
        return prefs

    def copy(self) -> "Preferences":
        return Preferences.from_dict(self.to_dict())

    def is_acknowledged(self, version: str) -> bool:
        """The research-use notice was accepted for this app version (a new major.minor asks again)."""
        return bool(self.acknowledged_version) and _major_minor(self.acknowledged_version) == _major_minor(version)


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def _coerce(key: str, value):
    """Settings stores turn values into texts (QSettings INI files): convert back by field type."""
    if key == "wl_presets":
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else []
        return [WindowPreset.from_dict(p) for p in value]
    if key == "pacs_nodes":
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else []
        if not isinstance(value, list):
            raise PreferencesError("a list of objects is needed")
        return copy.deepcopy(value)
    if key == "autosave_interval_s":
        f = float(value)
        if not math.isfinite(f) or f != int(f):
            raise PreferencesError(f"a whole number of seconds is needed, got {value!r}")
        return int(f)
    if key == "export_scale":
        return float(value)
    if key == "export_deidentified":
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise PreferencesError(f"true or false is needed, got {value!r}")
        if isinstance(value, (bool, int)):
            return bool(value)
        raise PreferencesError(f"true or false is needed, got {value!r}")
    if value is None:
        return ""
    return str(value)

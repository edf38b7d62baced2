"""Hanging protocols as data: which series of which visits go into which viewport.

A protocol is a JSON file (built-ins in `resources/hanging/`). Schema, version 1:

```
{
  "version": 1,                           optional; only 1 is understood
  "name": "T2 sag across visits",         required, non-empty text
  "description": "…",                     optional text
  "layout": "auto",                       optional (default "auto"), or {"rows": R, "cols": C}
  "visits": "all",                        optional (default "all"), or a non-empty list of visit
                                          labels (case-insensitive) and the tokens "first" / "last"
  "rows": [                               required, non-empty: one entry per *viewport row spec*
    {
      "role": "T2 sag",                   required: a role of discviewer.roles
      "fallback": ["T1 sag"],             optional: roles tried in order when `role` is missing
      "plane": "sag",                     optional (default "sag"): "sag", "cor" or "ax" — the plane
                                          the viewport shows (reformatted if acquired otherwise)
      "echo": "first",                    optional (default "first"): "first", "last" or an
                                          integer index (0 = shortest TE; negative counts from the end)
      "title": "T2"                       optional: replaces the role name in viewport titles
    }
  ]
}
```
Unknown keys are errors (they are usually typos). Every error names the file and the field,
e.g. `t2.json: rows[1].plane: must be one of "sag", "cor", "ax", got "axial"`.

Applying a protocol to a patient (`apply`, `apply_layout`): each row spec gives one viewport per
selected visit, so the visits run along the columns. The visits of one spec form a block:
- layout "auto": N visits → 1×N up to 3 visits, 2×3 up to 6, else ceil(N/3) rows of 3;
- layout {"rows": R, "cols": C}: C columns, ceil(N/C) rows per block;
blocks are stacked top to bottom in spec order. With an explicit layout, viewports that fall
below row R are not shown (`Layout.left_out`). In each visit the series is chosen as: entries
whose role is the spec's role (else the first fallback role that exists, …), preferring those
acquired in the viewport's plane, and among equals the highest series number (a repeated series
is normally the better one). A visit without any of them gives an empty viewport whose `reason`
says so ("no T2 sag in 6 m"). An echo index beyond the series' echoes uses the nearest existing
echo and says so in `note`; a spec row whose chosen echo times differ between visits gets a note
on each viewport (iron blooming grows with TE).
Core module: stdlib + the core model only.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from discviewer.resources import resources_dir
from discviewer.roles import ROLES, Role, parse_role

SCHEMA_VERSION = 1
PLANES = ("sag", "cor", "ax")
_TOP_KEYS = {"version", "name", "description", "layout", "visits", "rows"}
_ROW_KEYS = {"role", "fallback", "plane", "echo", "title"}


class ProtocolError(ValueError):
    """A hanging protocol file that does not follow the schema; the message names file and field."""


@dataclass(frozen=True)
class ViewportSpec:
    role: Role
    fallback: tuple[Role, ...] = ()
    plane: str = "sag"
    echo: str | int = "first"
    title: str = ""


@dataclass(frozen=True)
class HangingProtocol:
    name: str
    rows: tuple[ViewportSpec, ...]
    description: str = ""
    layout: str | tuple[int, int] = "auto"  # "auto" or (rows, cols)
    visits: str | tuple[str, ...] = "all"
    path: str = ""


@dataclass
class Viewport:
    """One cell of the layout: what to show, or why it is empty."""

    row: int
    col: int
    spec_index: int
    plane: str
    title: str
    visit: object | None = None  # study.Visit
    entry: object | None = None  # study.SeriesEntry
    echo_index: int | None = None
    role: Role | None = None  # the role actually shown (the spec's or a fallback)
    requested_role: Role | None = None
    reason: str = ""  # why the viewport is empty
    note: str = ""  # a caveat (fallback used, echo clamped, TE differs between visits)

    @property
    def is_empty(self) -> bool:
        return self.entry is None

    @property
    def candidate(self):
        if self.entry is None or self.echo_index is None:
            return None
        return self.entry.candidate(self.echo_index)

    @property
    def echo_time(self) -> float | None:
        c = self.candidate
        return c.info.echo_time if c is not None else None


@dataclass
class Layout:
    protocol: HangingProtocol
    rows: int
    cols: int
    viewports: list[Viewport] = field(default_factory=list)
    left_out: list[Viewport] = field(default_factory=list)


# -------------------------------------------------------------------------------------------------
# reading and validating


def _err(src: str, fld: str, msg: str) -> ProtocolError:
    return ProtocolError(f"{src}: {fld}: {msg}" if fld else f"{src}: {msg}")


def _role(src: str, fld: str, value) -> Role:
    try:
        return parse_role(value)
    except ValueError:
        raise _err(src, fld, f"unknown role {value!r}; known roles: {', '.join(ROLES)}") from None


def protocol_from_dict(data, source: str = "<protocol>") -> HangingProtocol:
    """Validate a parsed JSON object; `source` (a file name) prefixes every error message."""
    if not isinstance(data, dict):
        raise _err(source, "", f"the top level must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise _err(source, unknown[0], f"unknown field (allowed: {', '.join(sorted(_TOP_KEYS))})")
    version = data.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise _err(source, "version", f"only version {SCHEMA_VERSION} is understood, got {version!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _err(source, "name", "required, a non-empty text")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _err(source, "description", f"must be text, got {description!r}")

    layout = data.get("layout", "auto")
    if isinstance(layout, dict):
        extra = sorted(set(layout) - {"rows", "cols"})
        if extra:
            raise _err(source, f"layout.{extra[0]}", "unknown field (allowed: rows, cols)")
        dims = []
        for k in ("rows", "cols"):
            v = layout.get(k)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 12:
                raise _err(source, f"layout.{k}", f"must be an integer from 1 to 12, got {v!r}")
            dims.append(v)
        layout = (dims[0], dims[1])
    elif layout != "auto":
        raise _err(source, "layout", f'must be "auto" or {{"rows": R, "cols": C}}, got {layout!r}')

    visits = data.get("visits", "all")
    if isinstance(visits, list):
        if not visits:
            raise _err(source, "visits", 'an empty list selects nothing; use "all" or name visits')
        for i, v in enumerate(visits):
            if not isinstance(v, str) or not v.strip():
                raise _err(source, f"visits[{i}]", f"must be a visit label or first/last, got {v!r}")
        visits = tuple(v.strip() for v in visits)
    elif visits != "all":
        raise _err(source, "visits", f'must be "all" or a list of visit labels, got {visits!r}')

    rows = data.get("rows")
    if not isinstance(rows, list) or not rows:
        raise _err(source, "rows", "required, a non-empty list of viewport specs")
    specs = []
    for i, r in enumerate(rows):
        where = f"rows[{i}]"
        if not isinstance(r, dict):
            raise _err(source, where, f"must be an object, got {r!r}")
        extra = sorted(set(r) - _ROW_KEYS)
        if extra:
            raise _err(source, f"{where}.{extra[0]}", f"unknown field (allowed: {', '.join(sorted(_ROW_KEYS))})")
        if "role" not in r:
            raise _err(source, f"{where}.role", "required")
        role = _role(source, f"{where}.role", r["role"])
        fb = r.get("fallback", [])
        if isinstance(fb, str):
            fb = [fb]
        if not isinstance(fb, list):
            raise _err(source, f"{where}.fallback", f"must be a list of roles, got {fb!r}")
        fallback = tuple(_role(source, f"{where}.fallback[{j}]", v) for j, v in enumerate(fb))
        plane = r.get("plane", "sag")
        if plane not in PLANES:
            raise _err(source, f"{where}.plane", f"must be one of {', '.join(map(json.dumps, PLANES))}, "
                                                 f"got {json.dumps(plane)}")
        echo = r.get("echo", "first")
        if not (echo in ("first", "last") or (isinstance(echo, int) and not isinstance(echo, bool))):
            raise _err(source, f"{where}.echo", f'must be "first", "last" or an integer index, got {echo!r}')
        title = r.get("title", "")
        if not isinstance(title, str):
            raise _err(source, f"{where}.title", f"must be text, got {title!r}")
        specs.append(ViewportSpec(role=role, fallback=fallback, plane=plane, echo=echo, title=title.strip()))
    return HangingProtocol(name=name.strip(), rows=tuple(specs), description=description, layout=layout,
                           visits=visits, path="" if source.startswith("<") else source)


def load_protocol(path) -> HangingProtocol:
    """Read and validate one protocol file; errors are `ProtocolError` naming the file and field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProtocolError(f"{p}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    proto = protocol_from_dict(data, str(p))
    return proto


def builtin_dir() -> Path:
    return resources_dir() / "hanging"


def builtin_protocols() -> list[HangingProtocol]:
    """The protocols in resources/hanging/, "default.json" first, then by file name."""
    files = sorted(builtin_dir().glob("*.json"), key=lambda f: (f.name != "default.json", f.name))
    return [load_protocol(f) for f in files]


# -------------------------------------------------------------------------------------------------
# applying


def block_shape(protocol: HangingProtocol, n_visits: int) -> tuple[int, int]:
    """(rows, cols) of the block of one spec row for `n_visits` visits."""
    n = max(n_visits, 1)
    if protocol.layout == "auto":
        if n <= 3:
            return 1, n
        return math.ceil(n / 3), 3  # 2×3 up to 6 visits, then rows of 3
    cols = protocol.layout[1]
    return math.ceil(n / cols), cols


def _select_visits(protocol: HangingProtocol, patient) -> list[tuple[object | None, str]]:
    """[(visit or None, label asked for)] in display order."""
    visits = list(patient.visits)
    if protocol.visits == "all":
        return [(v, v.label) for v in visits]
    out: list[tuple[object | None, str]] = []
    used: set[int] = set()
    for token in protocol.visits:
        t = token.lower()
        v = None
        if t == "first":
            v = visits[0] if visits else None
        elif t == "last":
            v = visits[-1] if visits else None
        else:
            v = next((x for x in visits if x.label.lower() == t), None)
        if v is not None:
            if id(v) in used:
                continue
            used.add(id(v))
        out.append((v, v.label if v is not None else token))
    return out


def _pick_entry(visit, spec: ViewportSpec):
    for role in (spec.role, *spec.fallback):
        found = [e for e in visit.series if e.role == role]
        if found:
            same_plane = [e for e in found if e.plane == spec.plane]
            pool = same_plane or found
            best = max(pool, key=lambda e: (e.series_number if e.series_number is not None else -1))
            return best, role
    return None, None


def _echo_index(entry, echo) -> tuple[int, str]:
    n = entry.n_echoes
    if echo == "first":
        return 0, ""
    if echo == "last":
        return n - 1, ""
    i = int(echo)
    j = i if i >= 0 else n + i
    if 0 <= j < n:
        return j, ""
    k = min(max(j, 0), n - 1)
    return k, f"echo {i} not acquired ({n} echo(es)); showing echo {k}"


def _role_list(spec: ViewportSpec) -> str:
    names = [spec.role.value, *(r.value for r in spec.fallback)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def apply_layout(protocol: HangingProtocol, patient) -> Layout:
    """Place the protocol's viewports for one `study.Patient` (see the module docstring)."""
    selected = _select_visits(protocol, patient)
    brows, bcols = block_shape(protocol, len(selected))
    total_rows = brows * len(protocol.rows)
    max_rows = total_rows if protocol.layout == "auto" else protocol.layout[0]
    layout = Layout(protocol, rows=min(total_rows, max_rows), cols=bcols)
    for s, spec in enumerate(protocol.rows):
        name = spec.title or spec.role.value
        row_vps = []
        for j, (visit, asked) in enumerate(selected):
            row, col = s * brows + j // bcols, j % bcols
            vp = Viewport(row=row, col=col, spec_index=s, plane=spec.plane, title="", visit=visit,
                          requested_role=spec.role)
            if visit is None:
                vp.title = f"{asked} · {name}"
                vp.reason = f"no visit labelled {asked!r}"
            else:
                entry, role = _pick_entry(visit, spec)
                if entry is None:
                    vp.title = f"{visit.label} · {name}"
                    vp.reason = f"no {_role_list(spec)} in {visit.label}"
                else:
                    vp.entry, vp.role = entry, role
                    vp.echo_index, vp.note = _echo_index(entry, spec.echo)
                    shown = name if role == spec.role else f"{role.value} (no {spec.role.value})"
                    if role != spec.role:
                        fb = f"fallback: no {spec.role.value} in {visit.label}"
                        vp.note = "; ".join(x for x in (vp.note, fb) if x)
                    title = f"{visit.label} · {shown}"
                    te = vp.echo_time
                    if entry.n_echoes > 1 and te is not None:
                        title += f" · TE {te:g} ms"
                    vp.title = title
                    row_vps.append(vp)
            (layout.viewports if row < layout.rows else layout.left_out).append(vp)
        tes = {vp.echo_time for vp in row_vps if vp.echo_time is not None}
        if len(tes) > 1:
            msg = "TE differs between visits (" + ", ".join(f"{t:g}" for t in sorted(tes)) + " ms)"
            for vp in row_vps:
                vp.note = "; ".join(x for x in (vp.note, msg) if x)
    return layout


def apply(protocol: HangingProtocol, patient) -> list[Viewport]:
    """The viewports shown for `patient`, in reading order (row by row); see `apply_layout`."""
    return sorted(apply_layout(protocol, patient).viewports, key=lambda v: (v.row, v.col))

"""Upgrades of older workspace files to the current schema, one version step at a time.

Owns the schema history. `store.load` reads any file into the raw form below, calls `upgrade` when
the file's `schema_version` is older than `data.SCHEMA_VERSION`, then decodes the result exactly as
if it had been written by this app. Upgrades happen in memory only: the file on disk is untouched
until the user saves (which writes the current schema). A file newer than this app is never
"downgraded" here; `store.load` opens it read-only instead.

Raw form (the HDF5 tree as plain Python; shared with `store`)
    group   = {"attrs": {name: value}, "groups": {name: group}, "datasets": {name: dataset}}
    dataset = {"data": value, "attrs": {name: value}}
    values: str (scalar text), list[str] (text column), numpy array (numbers), int/float attributes.

Schema history
--------------
1  The first layout. Like schema 2 except:
   - ONE transform set only (the whole volume): `/transforms/<k>` are the 4×4 float64 datasets
     themselves (attrs visit_id, method, details), and the baseline visit is the ROOT attribute
     `baseline_id`, with "" meaning no baseline chosen (schema 1 could not tell None from "").
   - annotation groups have no `level` and no `units` attributes.
   - `/audit` has no `target` column.
2  Current (see `store`): named transform sets `/transforms/<i>/` (attrs name, baseline_id — absent
   for none) holding the per-visit matrices; annotations with `level` and `units` (JSON text);
   audit column `target`.

Adding schema N+1: write `migrate_vN_to_vN1(tree)` below, register it in `MIGRATIONS`, bump
`data.SCHEMA_VERSION`, and store a small file written by the old code under tests/data.

Core module: stdlib only.
"""
from __future__ import annotations

from discviewer.workspace.data import SCHEMA_VERSION

#: the name schema 1's single transform set gets
WHOLE_VOLUME = "whole volume"


class MigrationError(ValueError):
    """The file claims an old schema but does not have that schema's shape."""


def _need(node: dict, key: str, where: str):
    if key not in node["groups"]:
        raise MigrationError(f"group {where}/{key} is missing")
    return node["groups"][key]


def migrate_v1_to_v2(tree: dict) -> dict:
    """Schema 1 → 2, in place; returns `tree`.

    1. The root attribute `baseline_id` is removed; "" becomes None (no baseline chosen).
    2. The datasets directly under `/transforms` become the transform set `/transforms/0` named
       "whole volume" with that baseline (attribute absent when None). The set is created even when
       schema 1 held no matrices: schema 1 always had exactly this one set.
    3. Every annotation gets `level` = "" and `units` = "{}" (not recorded in schema 1).
    4. `/audit` gets a `target` column of "" (not recorded in schema 1).
    5. The root attribute `schema_version` becomes 2.
    """
    attrs = tree["attrs"]
    base = attrs.pop("baseline_id", "")
    if not isinstance(base, str):
        raise MigrationError(f"root attribute baseline_id is {base!r}, not text")
    old = _need(tree, "transforms", "")
    if old["groups"]:
        raise MigrationError("/transforms holds groups; schema 1 stored matrices directly")
    set_attrs = {"name": WHOLE_VOLUME}
    if base:
        set_attrs["baseline_id"] = base
    new = {"attrs": {}, "groups": {"0": {"attrs": set_attrs, "groups": {}, "datasets": old["datasets"]}},
           "datasets": {}}
    tree["groups"]["transforms"] = new

    for name, ann in _need(tree, "annotations", "")["groups"].items():
        ann["attrs"].setdefault("level", "")
        ann["attrs"].setdefault("units", "{}")

    audit = _need(tree, "audit", "")
    time_col = audit["datasets"].get("time")
    if time_col is None or not isinstance(time_col["data"], list):
        raise MigrationError("/audit/time is missing or not a text column")
    audit["datasets"].setdefault("target", {"data": [""] * len(time_col["data"]), "attrs": {}})

    attrs["schema_version"] = 2
    return tree


#: from-version → function upgrading the raw form by one version
MIGRATIONS = {
    1: migrate_v1_to_v2,
}


def upgrade(tree: dict, from_version: int) -> dict:
    """Apply every step from `from_version` to `SCHEMA_VERSION`; raises MigrationError."""
    v = from_version
    while v < SCHEMA_VERSION:
        step = MIGRATIONS.get(v)
        if step is None:
            raise MigrationError(f"no upgrade from schema {v} is known")
        tree = step(tree)
        v += 1
        if tree["attrs"].get("schema_version") != v:
            raise MigrationError(f"upgrade step to schema {v} did not set schema_version")
    return tree

"""AnnotationSet keeps only finite values, so every record stays saveable (JSON has no NaN)."""
from __future__ import annotations

import math

import numpy as np

from discviewer.annotations import AnnotationSet
from discviewer.workspace import store
from discviewer.workspace.data import Annotation
from discviewer.workspace.project import Workspace


def _iron(values, extra=None):
    return Annotation(id="", kind="iron", level="L4/L5", points=((0.0, 0.0, 0.0),), values=values,
                      units={k: "mm³" if "volume" in k else "" for k in values}, extra=extra or {})


def test_undefined_values_are_left_out_and_extra_becomes_plain_json():
    s = AnnotationSet()
    a = s.add(_iron({"void_volume_mm3": 0.0, "contrast_ratio": float("nan"), "cnr": np.float64(np.inf),
                     "n": np.int64(3)},
                    extra={"threshold": np.float32(12.5), "bad": float("-inf"), "per": [[1, np.float64(2.0)]]}))
    assert a.values == {"void_volume_mm3": 0.0, "n": 3.0}
    assert set(a.units) == {"void_volume_mm3", "n"}
    assert a.extra == {"threshold": 12.5, "bad": None, "per": [[1, 2.0]]}
    b = s.update(a.__class__(**{**a.__dict__, "values": {"void_volume_mm3": float("nan")}}))
    assert b and "void_volume_mm3" not in s.get(a.id).values


def test_an_empty_iron_void_can_be_saved_and_loaded(tmp_path):
    ws = Workspace(name="t")
    a = ws.annotations.add(_iron({"void_volume_mm3": 0.0, "contrast_ratio": float("nan")}))
    path = tmp_path / "p.dvw"
    store.save(ws.to_data(), path)
    back = Workspace.from_data(store.load(path).data)
    got = back.annotations.get(a.id)
    assert got.values == {"void_volume_mm3": 0.0}
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in got.values.values())

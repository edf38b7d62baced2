"""Preferences dataclass: defaults, validation, dict round trip (core: no Qt)."""
from __future__ import annotations

import json

import pytest

from discviewer.preferences import DEFAULT_WL_PRESETS, Preferences, PreferencesError, WindowPreset


def test_defaults_are_valid():
    p = Preferences()
    assert p.validate() == []
    assert p.mouse_scheme == "pacs" and p.export_scale == 3.0 and p.export_deidentified is True
    assert p.autosave_interval_s == 60 and p.reader_name == "" and p.acknowledged_version == ""
    assert p.wl_presets == list(DEFAULT_WL_PRESETS) and p.pacs_nodes == []


def test_round_trip_through_json():
    p = Preferences(mouse_scheme="crosshair", wl_presets=[WindowPreset("Disc", 420.0, 900.5)],
                    hanging_protocol="T2 and GRE", autosave_interval_s=300, export_scale=2.5,
                    export_deidentified=False, reader_name="Reader A", acknowledged_version="0.1.0",
                    pacs_nodes=[{"ae_title": "ORTHANC", "host": "localhost", "port": 4242}])
    back = Preferences.from_dict(json.loads(json.dumps(p.to_dict())), strict=True)
    assert back == p
    assert back.copy() == p and back.copy() is not p


def test_validation_names_each_problem():
    p = Preferences(mouse_scheme="trackball", wl_presets=[WindowPreset("", 1, 0), WindowPreset("a", 1, 1),
                                                          WindowPreset("a", float("nan"), 2)],
                    autosave_interval_s=1, export_scale=20.0, export_deidentified="yes")
    problems = " | ".join(p.validate())
    for part in ("mouse_scheme", "wl_presets[0]", "width must be positive", "used twice", "finite",
                 "autosave_interval_s", "export_scale", "export_deidentified"):
        assert part in problems
    with pytest.raises(PreferencesError):
        p.check()


def test_from_dict_is_lenient_by_default_and_strict_on_request():
    data = {"mouse_scheme": "nonsense", "autosave_interval_s": "120", "export_scale": "2",
            "export_deidentified": "false", "wl_presets": '[["Soft", 40, 400]]', "future_field": 1,
            "reader_name": None}
    p = Preferences.from_dict(data)
    assert p.mouse_scheme == "pacs"  # invalid: the default stays
    assert p.autosave_interval_s == 120 and p.export_scale == 2.0 and p.export_deidentified is False
    assert p.wl_presets == [WindowPreset("Soft", 40.0, 400.0)] and p.reader_name == ""
    with pytest.raises(PreferencesError, match="future_field"):
        Preferences.from_dict(data, strict=True)
    assert Preferences.from_dict(None) == Preferences()


def test_acknowledgement_is_per_major_minor_version():
    assert not Preferences().is_acknowledged("0.1.0")
    p = Preferences(acknowledged_version="0.1.0")
    assert p.is_acknowledged("0.1.0") and p.is_acknowledged("0.1.7")
    assert not p.is_acknowledged("0.2.0")

"""The command line: `discviewer scan PATH --json` and `discviewer demo-data`, run as real processes."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.core.dicom_factory import write_stack


def run_cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "discviewer", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_scan_json(tmp_path):
    write_stack(tmp_path / "s", [0.0, 4.0, 8.0, 12.0])
    (tmp_path / "s" / "readme.txt").write_text("not an image")
    r = run_cli("scan", tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    (s,) = data["series"]
    assert s["shape"] == [4, 12, 10]
    assert s["spacing_mm"] == pytest.approx([0.8, 0.5, 4.0])
    assert s["affine"][0][2] == pytest.approx(-4.0)
    assert s["echo_time_ms"] == 90.0
    assert [p["path"].rsplit("/", 1)[-1] for p in data["problems"]] == ["readme.txt"]
    assert "not a DICOM file" in data["problems"][0]["reason"]
    assert "Research use only" in data["notice"]


def test_scan_text_and_missing_path(tmp_path):
    write_stack(tmp_path, [0.0, 4.0, 9.0])
    r = run_cli("scan", tmp_path)
    assert r.returncode == 0 and "3×12×10" in r.stdout and "uneven slice spacing" in r.stdout
    r = run_cli("scan", tmp_path / "nope")
    assert r.returncode == 2 and "no such file or folder" in r.stderr


@pytest.mark.realdata
def test_scan_json_on_real_data(real_data):
    r = run_cli("scan", real_data / "dcm_qa_fmap_siemens", "--json")
    data = json.loads(r.stdout)
    assert [s["echo_time_ms"] for s in data["series"]] == [5.19, 7.65]
    assert all(s["shape"] == [36, 64, 64] for s in data["series"])


def test_demo_study_is_generated_once_and_cached(tmp_path, monkeypatch):
    from discviewer.ui import cli

    monkeypatch.setenv("DISCVIEWER_CACHE", str(tmp_path / "cache"))
    first = cli.ensure_demo_study("small", quiet=True)
    assert (first / "truth.json").exists()
    stamp = (first / "truth.json").stat().st_mtime_ns
    calls = []
    monkeypatch.setattr("discviewer.phantom.write_study", lambda *a, **k: calls.append(a))
    again = cli.ensure_demo_study("small", quiet=True)
    assert again == first and not calls and (first / "truth.json").stat().st_mtime_ns == stamp
    # no temporary folders left beside the cache
    assert [p.name for p in first.parent.iterdir()] == [first.name]


def test_interrupted_demo_generation_leaves_no_cache(tmp_path, monkeypatch):
    from discviewer.ui import cli

    monkeypatch.setenv("DISCVIEWER_CACHE", str(tmp_path / "cache"))

    def boom(outdir, **kw):
        (outdir / "partial.dcm").write_bytes(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr("discviewer.phantom.write_study", boom)
    with pytest.raises(KeyboardInterrupt):
        cli.ensure_demo_study("small", quiet=True)
    assert list((tmp_path / "cache" / "discviewer").iterdir()) == []


def test_demo_data_command_writes_dicom_and_truth(tmp_path):
    r = run_cli("demo-data", tmp_path / "out", "--size", "small", "--seed", "2")
    assert r.returncode == 0, r.stderr
    truth = json.loads((tmp_path / "out" / "truth.json").read_text())
    assert truth["generator"]["seed"] == 2
    assert len(list((tmp_path / "out").rglob("*.dcm"))) >= 5 * 3 * 9


def test_register_json_recovers_the_phantom_transform(tmp_path):
    from discviewer.phantom import write_study

    out = write_study(tmp_path / "demo", size="small", seed=3)
    truth = json.loads((out / "truth.json").read_text())["patients"][0]["visits"]
    fixed = out / "P01" / "V1_baseline" / "01_T2_SAG"
    moving = out / "P01" / "V2_3m" / "01_T2_SAG"
    r = run_cli("register", fixed, moving, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    m = np.array(data["matrix"])
    expected = np.array(truth[1]["baseline_to_visit"])
    centre = np.array(truth[0]["discs"]["L4/L5"]["centre"])
    corners = centre + np.array([[sx, sy, sz] for sx in (-15, 15) for sy in (-25, 25) for sz in (-25, 25)])
    err = np.linalg.norm((corners @ m[:3, :3].T + m[:3, 3]) - (corners @ expected[:3, :3].T + expected[:3, 3]), axis=1)
    assert np.sqrt((err ** 2).mean()) < 0.5
    assert data["final_metric"] > data["initial_metric"]
    assert "fixed volume's patient space" in data["convention"]
    bad = run_cli("register", fixed, moving, "--roi", "1,2,3")
    assert bad.returncode == 2 and "six numbers" in bad.stderr

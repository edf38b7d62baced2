"""Packaging files: desktop entry, MIME type, icons, the desktop install script and the wheel's resources.

No display, no Qt. The slow parts — the wheel/sdist in a fresh venv (packaging/check_wheel.sh) and the
PyInstaller bundle (packaging/build_bundle.sh) — are scripts run by hand, not tests.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RES = ROOT / "resources"
DESKTOP = RES / "discviewer.desktop"
MIME_XML = RES / "discviewer-mime.xml"
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"
MIME_TYPE = "application/x-discviewer-project"
SIZES = (16, 32, 48, 64, 128, 256, 512)

sys.path.insert(0, str(ROOT / "packaging"))
import make_icons  # noqa: E402


def _desktop_entries(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if line and not line.startswith("#"))


def test_desktop_entry_fields():
    e = _desktop_entries(DESKTOP)
    assert e["Type"] == "Application"
    assert e["Exec"] == "discviewer %F"
    assert e["Icon"] == "discviewer"
    assert MIME_TYPE in e["MimeType"].split(";")
    assert {"Science", "MedicalSoftware"} <= set(e["Categories"].split(";"))
    assert "research use only" in e["Comment"].lower()


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_desktop_entry_validates():
    proc = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "error" not in (proc.stdout + proc.stderr).lower()


def test_mime_xml_names_dvw_and_hdf5_magic():
    root = ET.parse(MIME_XML).getroot()
    assert root.tag == f"{MIME_NS}mime-info"
    types = root.findall(f"{MIME_NS}mime-type")
    assert [t.get("type") for t in types] == [MIME_TYPE]
    t = types[0]
    assert [g.get("pattern") for g in t.findall(f"{MIME_NS}glob")] == ["*.dvw"]
    glob_weight = int(t.find(f"{MIME_NS}glob").get("weight", "50"))
    magic = t.find(f"{MIME_NS}magic")
    match = magic.find(f"{MIME_NS}match")
    assert match.get("offset") == "0" and "HDF" in match.get("value")
    assert int(magic.get("priority", "50")) < 50 < glob_weight  # the name decides; the magic only backs it up


@pytest.mark.skipif(shutil.which("update-mime-database") is None, reason="shared-mime-info not installed")
def test_mime_xml_compiles(tmp_path):
    (tmp_path / "packages").mkdir()
    shutil.copy(MIME_XML, tmp_path / "packages")
    proc = subprocess.run(["update-mime-database", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"{MIME_TYPE}:*.dvw" in (tmp_path / "globs2").read_text()


def test_icon_svg_and_pngs():
    ET.parse(RES / "discviewer.svg")  # well-formed
    assert make_icons.check() == []
    for size in SIZES:
        assert make_icons.png_size(RES / "icons" / f"discviewer-{size}.png") == (size, size)


def test_install_desktop_script(tmp_path):
    """Installs into XDG_DATA_HOME (never the real one) and uninstalls again."""
    exe = tmp_path / "bin dir" / "discviewer"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    data = tmp_path / "data"
    env = dict(os.environ, XDG_DATA_HOME=str(data), HOME=str(tmp_path))
    env.pop("DISCVIEWER_RESOURCES", None)
    script = ROOT / "packaging" / "install_desktop.sh"
    proc = subprocess.run(["bash", str(script), "--exec", str(exe)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = data / "applications" / "discviewer.desktop"
    assert _desktop_entries(entry)["Exec"] == f'"{exe}" %F'
    assert (data / "mime" / "packages" / "discviewer-mime.xml").is_file()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "discviewer.svg").is_file()
    for size in SIZES:
        assert (data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "discviewer.png").is_file()
    if shutil.which("update-mime-database"):
        assert f"{MIME_TYPE}:*.dvw" in (data / "mime" / "globs2").read_text()
    if shutil.which("desktop-file-validate"):
        v = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
        assert v.returncode == 0, v.stdout + v.stderr
    proc = subprocess.run(["bash", str(script), "--uninstall"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not entry.exists()
    assert not (data / "icons" / "hicolor" / "48x48" / "apps" / "discviewer.png").exists()


def test_wheel_ships_resources_inside_the_package():
    """setup.py maps resources/ to discviewer/_resources, which discviewer.resources looks for first."""
    from discviewer import resources

    pkg = Path(resources.__file__).resolve().parent
    assert pkg / "_resources" in resources.candidate_dirs()
    setup_py = (ROOT / "setup.py").read_text()
    assert '"discviewer._resources": "resources"' in setup_py
    assert "graft resources" in (ROOT / "MANIFEST.in").read_text()


def test_build_outputs_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {"build/", "dist/"} <= set(ignored)

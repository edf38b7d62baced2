"""The user guide's screenshot script (`docs/make_screenshots.py`) still drives the app: its first two
steps (open the demo study, hang the visits) run into tmp_path and write non-blank PNGs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "make_screenshots.py"


def load_script():
    spec = importlib.util.spec_from_file_location("make_screenshots", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pixels(path: Path) -> np.ndarray:
    from PySide6 import QtGui

    img = QtGui.QImage(str(path)).convertToFormat(QtGui.QImage.Format.Format_RGB888)
    assert not img.isNull(), path
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, img.bytesPerLine())
    return buf[:, :3 * w].reshape(h, w, 3).copy()


def test_first_steps_write_the_screenshots(qapp, demo, tmp_path, monkeypatch):
    mod = load_script()
    # the script points settings, autosaves and logs at its work folder: undone after the test
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "DISCVIEWER_LOG_DIR", "DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE"):
        monkeypatch.setenv(var, "")
    work = tmp_path / "work"
    mod.setup_environment(work)
    g = mod.Guide(tmp_path / "img", demo=demo, work=work)
    try:
        written = mod.STEPS[1](g) + mod.STEPS[2](g)
        frames = g.window.review.view_frames()
        assert g.window.review.mode == "hanging" and len(frames) == 5
        assert all(f.view.capture().std() > 5 for f in frames)  # every visit really shows an image
    finally:
        g.close()
    assert [p.name for p in written] == ["01_open_study.png", "02_hang_visits.png"]
    assert g.written == written
    for p in written:
        rgb = pixels(p)
        h, w = rgb.shape[:2]
        assert w <= mod.MAX_WIDTH and h > 300
        # the right part of the window is the image area: the VTK views painted in, not blank or black
        views = rgb[h // 8:h - h // 8, int(w * 0.45):].astype(float)
        assert views.std() > 20, p.name
        assert 20 < views.mean() < 235, p.name

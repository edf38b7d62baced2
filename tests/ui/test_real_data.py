"""The window on real DICOM (a sagittal head from dcm_qa_decubitus), with the real `discviewer.io`."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtGui

import discviewer

pytestmark = pytest.mark.realdata
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hfs(real_data):
    path = real_data / "dcm_qa_decubitus" / "HFS"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


def test_run_window_on_real_sagittal_series(qtbot, qapp, hfs):
    from discviewer.ui.app import create_main_window

    window = None
    try:
        window = create_main_window([hfs])  # default scan/load = discviewer.io
        qtbot.addWidget(window)
        with qtbot.waitSignal(window.volume_shown, timeout=30000):
            pass
        view = window.slice_view
        assert qapp.applicationName() == "discviewer"
        assert view.slice_count == 35 and view.slice_index == 17  # middle sagittal slice
        assert view.orientation_labels() == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
        u0, u1, v0, v1 = view.pipeline.image_bounds()
        col_mm, row_mm, _ = view.volume.spacing
        assert u1 - u0 == pytest.approx(256 * col_mm) and v1 - v0 == pytest.approx(256 * row_mm)
        assert window.browser.first_loadable() is window.current_candidate
        assert view.overlay_text("notice") == discviewer.RESEARCH_USE_NOTICE
        c, w = view.window()
        lo, hi = np.percentile(view.volume.array, [1, 99])
        assert (c, w) == pytest.approx(((lo + hi) / 2, hi - lo), rel=0.02)
    finally:
        if window is not None:
            window.shutdown()


def test_screenshot_smoke_subprocess(hfs, tmp_path):
    """`python -m discviewer.ui.app PATH` with DISCVIEWER_SCREENSHOT: grabs the window and exits 0."""
    shot = tmp_path / "window.png"
    env = dict(os.environ, DISCVIEWER_SCREENSHOT=str(shot), PYQTGRAPH_QT_LIB="PySide6",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "discviewer.ui.app", str(hfs)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr[-2000:]
    img = QtGui.QImage(str(shot))
    assert not img.isNull() and img.width() >= 800 and img.height() >= 500
    # not blank: the image area holds many grey levels
    values = {QtGui.QColor(img.pixel(x, y)).value() for x in range(img.width() // 2, img.width(), 17)
              for y in range(60, img.height() - 60, 17)}
    assert len(values) > 20

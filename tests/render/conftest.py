"""Render tests: offscreen VTK through EGL (no Qt, no display). Every test here is marked `render`.

`OffscreenRenderer` creates `vtkEGLRenderWindow` explicitly; the environment variable is set as well
(only while these tests run) so anything that asks VTK for a default window also gets EGL — it is not
left set for the Qt tests, whose QVTKRenderWindowInteractor needs the X11 window class.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.render)
            item.add_marker(pytest.mark.timeout(120))


@pytest.fixture(autouse=True)
def _egl_default_window(monkeypatch):
    monkeypatch.setenv("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


@pytest.fixture
def offscreen():
    from discviewer.render.offscreen import OffscreenRenderer

    made = []

    def make(width=400, height=400):
        off = OffscreenRenderer(width, height)
        made.append(off)
        return off

    yield make
    for off in made:
        off.close()


@pytest.fixture(scope="session")
def phantom_volume():
    from discviewer.phantom import generate_study

    return generate_study(size="small").patients[0].visits[0].series[0].volume(0)


def blob_centroid(rgb, threshold=200, channel=None):
    """(x, y) pixel centroid (row 0 = top) of pixels brighter than `threshold` in every channel."""
    img = rgb if channel is None else rgb[..., channel:channel + 1]
    mask = np.all(img >= threshold, axis=-1)
    ys, xs = np.nonzero(mask)
    assert xs.size, "no bright pixels"
    return float(xs.mean()), float(ys.mean()), mask

"""`OffscreenRenderer`: a headless render window (EGL, no Qt, no X) that returns RGB numpy arrays.

Used by the render tests, the benchmarks and (later) image export. The EGL window is created
explicitly (`vtkEGLRenderWindow`), so the process-wide default window class (X11 for the Qt
widgets) is left alone and both can live in one process. If EGL is unavailable the default
render window with off-screen rendering is used.

    off = OffscreenRenderer(800, 800)
    pipe = SlicePipeline(off.renderer, plane="sag")
    pipe.set_volume(volume)
    rgb = off.render()          # (height, width, 3) uint8, row 0 = top of the picture
    off.save_png("/tmp/sag.png")
"""
from __future__ import annotations

import os

import numpy as np
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkIOImage import vtkPNGWriter
from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow, vtkWindowToImageFilter
import vtkmodules.vtkRenderingFreeType  # noqa: F401
import vtkmodules.vtkRenderingOpenGL2 as _gl


def make_offscreen_window(width: int, height: int):
    """A render window that never shows on screen: EGL when available, else the default class off-screen."""
    cls = getattr(_gl, "vtkEGLRenderWindow", None)
    if cls is not None and os.environ.get("DISCVIEWER_NO_EGL") != "1":
        win = cls()
    else:  # pragma: no cover - platform dependent
        win = vtkRenderWindow()
    win.SetOffScreenRendering(1)
    win.SetSize(int(width), int(height))
    win.SetMultiSamples(0)
    return win


def capture_rgb(render_window, *, render: bool = True) -> np.ndarray:
    """(height, width, 3) uint8 of what `render_window` shows (row 0 = top). Reads the back buffer."""
    f = vtkWindowToImageFilter()
    f.SetInput(render_window)
    f.SetInputBufferTypeToRGB()
    f.ReadFrontBufferOff()
    f.SetShouldRerender(bool(render))
    f.Update()
    img = f.GetOutput()
    w, h, _ = img.GetDimensions()
    arr = vtk_to_numpy(img.GetPointData().GetScalars()).reshape(h, w, -1)
    return np.ascontiguousarray(arr[::-1, :, :3])


class OffscreenRenderer:
    """One headless render window of `width`×`height` px with one full-window renderer (`renderer`).

    More renderers (e.g. a 2×2 layout) can be added with `add_renderer(viewport)`.
    """

    def __init__(self, width: int = 512, height: int = 512) -> None:
        self.window = make_offscreen_window(width, height)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.window.AddRenderer(self.renderer)
        self.renders = 0

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.window.GetSize()
        return int(w), int(h)

    def set_size(self, width: int, height: int) -> None:
        self.window.SetSize(int(width), int(height))

    def add_renderer(self, viewport=(0.0, 0.0, 1.0, 1.0)) -> vtkRenderer:
        """Another renderer over `viewport` (xmin, ymin, xmax, ymax, normalised, y up)."""
        r = vtkRenderer()
        r.SetViewport(*viewport)
        r.SetBackground(0.0, 0.0, 0.0)
        self.window.AddRenderer(r)
        return r

    def render_only(self) -> None:
        """Render without reading the pixels back (for timing)."""
        self.window.Render()
        self.renders += 1

    def render(self) -> np.ndarray:
        """Render and return the picture as (height, width, 3) uint8, row 0 = top."""
        self.render_only()
        return capture_rgb(self.window, render=False)

    def save_png(self, path, rgb: np.ndarray | None = None) -> np.ndarray:
        """Render (unless `rgb` is given) and write a PNG; returns the pixels written."""
        from vtkmodules.util.numpy_support import numpy_to_vtk
        from vtkmodules.vtkCommonDataModel import vtkImageData

        if rgb is None:
            rgb = self.render()
        h, w, _ = rgb.shape
        img = vtkImageData()
        img.SetDimensions(w, h, 1)
        flat = np.ascontiguousarray(rgb[::-1]).reshape(-1, 3)
        arr = numpy_to_vtk(flat, deep=True)
        img.GetPointData().SetScalars(arr)
        wr = vtkPNGWriter()
        wr.SetFileName(str(path))
        wr.SetInputData(img)
        wr.Write()
        return rgb

    def close(self) -> None:
        self.window.Finalize()

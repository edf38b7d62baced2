#!/usr/bin/env python
"""Benchmark: scrolling a 512² × 15 series in VTK slice views — discviewer vs a plain vtkImageSliceMapper.

Rows (frames per second = slice steps per second; every step changes the slice, the scroll bounces
between the first and last slice, and a verification pass reads back every frame of one sweep to check
that each counted frame really changed):

  offscreen (EGL, no Qt):
    1 view 800×800   reference        vtkImageSliceMapper on the 3-D image, SetSliceNumber, W/L property,
                                      linear interpolation, same camera framing, no overlays
    1 view 800×800   discviewer full  SlicePipeline, linear, overlays (letters, texts, scale bar, notice)
    1 view 800×800   discviewer LOD   the same with the interactive level of detail (nearest filtering)
    1 view 800×800   discviewer + overlay  full, with a same-grid overlay blended at 50 % (hot colormap)
                                      — only when the pipeline has `set_overlay`
    4 views 800×450  (1600×900 in all) the same rows, four linked views (4 render windows, one render
                                      each per step)
  Qt under a display (--qt, e.g. `xvfb-run -a`): the same rows with VtkSliceView widgets
    (QVTKRenderWindowInteractor) and the coalesced render (QTimer.singleShot(0)), counting renders.
    The Qt reference uses the same window settings as VtkSliceView (no multisampling), so the ratio
    compares pipelines, not MSAA.

The load average is printed first: run when the machine is quiet, and compare rows within one run.
To compare two versions of the code, run this script with PYTHONPATH pointing at each checkout.

Trials are interleaved (round-robin, `--rounds`) so background load hits all rows alike; best and median
are printed, and ratios this/reference from the best values.

Usage:  .venv/bin/python benchmarks/bench_slice.py [--seconds 1.5] [--rounds 3] [--qt]
        xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/bench_slice.py --qt
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

try:  # run from a checkout without installing
    import discviewer  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkRenderingCore import vtkImageSlice, vtkImageSliceMapper

from discviewer.render.offscreen import OffscreenRenderer, capture_rgb
from discviewer.render.slice_pipeline import SlicePipeline
from discviewer.volume import Volume


def make_volume(size: int, slices: int) -> Volume:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 600 + 300 * np.sin(6 * xx) * np.cos(5 * yy)
    arr = np.stack([base * (1 + 0.05 * k) + rng.normal(0, 40, base.shape) for k in range(slices)])
    arr = np.clip(arr, 0, 4095).astype(np.uint16)
    aff = np.array([[0, 0, -4.0, 0], [0.5, 0, 0, -128], [0, -0.5, 0, 128], [0, 0, 0, 1]])  # sagittal, 4 mm
    return Volume(arr, aff)


class Bouncer:
    """Next slice index, bouncing between 0 and n-1 so that every step changes the slice."""

    def __init__(self, n: int, start: int = 0) -> None:
        self.n, self.k, self.d = n, start, 1

    def __call__(self) -> int:
        if not 0 <= self.k + self.d < self.n:
            self.d = -self.d
        self.k += self.d
        return self.k


# ---------------------------------------------------------------------------- offscreen scenes
class RefScene:
    """Plain vtkImageSliceMapper on the whole 3-D image (the reference)."""

    def __init__(self, vol: Volume, width: int, height: int, fit_scale: float) -> None:
        self.off = OffscreenRenderer(width, height)
        ns, nr, nc = vol.array.shape
        img = vtkImageData()
        img.SetDimensions(nc, nr, ns)
        img.SetSpacing(0.5, 0.5, 4.0)
        img.GetPointData().SetScalars(numpy_to_vtk(vol.array.reshape(-1), deep=False))
        self._keep = (vol.array, img)
        self.mapper = vtkImageSliceMapper()
        self.mapper.SetInputData(img)
        self.mapper.SetOrientationToZ()
        actor = vtkImageSlice()
        actor.SetMapper(self.mapper)
        actor.GetProperty().SetColorWindow(1200)
        actor.GetProperty().SetColorLevel(650)
        actor.GetProperty().SetInterpolationTypeToLinear()
        r = self.off.renderer
        r.AddViewProp(actor)
        r.ResetCamera()
        cam = r.GetActiveCamera()
        cam.ParallelProjectionOn()
        cam.SetParallelScale(fit_scale)  # same framing as the discviewer view
        self.n = ns
        self.bounce = Bouncer(ns)

    def step(self) -> None:
        self.mapper.SetSliceNumber(self.bounce())

    def render(self) -> None:
        self.off.render_only()

    def grab(self):
        return capture_rgb(self.off.window, render=False)


def overlay_volume(vol: Volume) -> Volume:
    """A same-grid overlay (what the review passes: a volume resampled onto the base grid)."""
    return Volume(np.ascontiguousarray(vol.array[:, :, ::-1]).astype(np.float32), vol.affine)


def has_overlay() -> bool:
    return hasattr(SlicePipeline, "set_overlay")


class DvScene:
    def __init__(self, vol: Volume, width: int, height: int, lod: bool, overlay: Volume | None = None) -> None:
        self.off = OffscreenRenderer(width, height)
        self.pipe = SlicePipeline(self.off.renderer, plane="sag")
        self.pipe.set_volume(vol, label="bench · T2 sag")
        if overlay is not None:
            self.pipe.set_overlay(overlay, opacity=0.5, colormap="hot")
        if lod:
            if hasattr(self.pipe, "set_interactive"):
                self.pipe.set_interactive(True)
            else:  # older pipelines
                self.pipe.set_display_interpolation("nearest")
        self.off.render_only()
        self.bounce = Bouncer(self.pipe.slice_count(), self.pipe.slice_index())

    @property
    def fit_scale(self) -> float:
        return self.pipe.view_state()[2]

    def step(self) -> None:
        self.pipe.set_slice(self.bounce())

    def render(self) -> None:
        self.off.render_only()

    def grab(self):
        return capture_rgb(self.off.window, render=False)


def verify_changes(scenes) -> tuple[int, int]:
    """One sweep over all slices, reading every frame back: (frames changed, frames) for scene 0."""
    s = scenes[0]
    sweeps = 2 * (s.bounce.n - 1)
    prev = None
    changed = 0
    for _ in range(sweeps):
        for sc in scenes:
            sc.step()
            sc.render()
        img = s.grab()
        if prev is not None and not np.array_equal(img, prev):
            changed += 1
        prev = img
    return changed, sweeps - 1


def time_scenes(scenes, seconds: float) -> float:
    for sc in scenes:  # warm-up
        sc.step()
        sc.render()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for sc in scenes:
            sc.step()
        for sc in scenes:
            sc.render()
        n += 1
    return n / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------- Qt scenes
class QtDvScene:
    def __init__(self, app, vol, layout, lod, overlay=None):
        from PySide6 import QtWidgets

        from discviewer.ui.vtk_slice_view import VtkSliceView

        self.app = app
        self.win = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(self.win)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(0)
        n = 1 if layout == 1 else 4
        self.views = []
        for i in range(n):
            v = VtkSliceView(plane="sag")
            v.interactive_lod = lod
            grid.addWidget(v, i // 2, i % 2)
            self.views.append(v)
        self.win.resize(*((800, 800) if n == 1 else (1600, 900)))
        self.win.show()
        for v in self.views:
            v.set_volume(vol, label="bench")
            if overlay is not None:
                v.set_overlay(overlay, opacity=0.5, colormap="hot")
        for _ in range(5):
            app.processEvents()
            time.sleep(0.02)
        self.lod = lod
        self.bounce = Bouncer(self.views[0].slice_count, self.views[0].slice_index)
        self.n = self.bounce.n

    def step(self) -> None:
        k = self.bounce()
        for v in self.views:
            if self.lod:
                v._begin_interaction()  # what a wheel event does
            v.set_slice(k)

    def render(self) -> None:
        self.app.processEvents()  # the coalesced renders run here

    def renders(self) -> int:
        return sum(v.render_count for v in self.views)

    def grab(self):
        return self.views[0].capture()

    def close(self):
        for v in self.views:
            v.shutdown()
        self.win.close()


class QtRefScene:
    def __init__(self, app, vol, layout, fit_scale):
        from PySide6 import QtWidgets
        from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
        from vtkmodules.vtkInteractionStyle import vtkInteractorStyleUser
        from vtkmodules.vtkRenderingCore import vtkRenderer

        self.app = app
        self.win = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(self.win)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(0)
        n = 1 if layout == 1 else 4
        ns, nr, nc = vol.array.shape
        img = vtkImageData()
        img.SetDimensions(nc, nr, ns)
        img.SetSpacing(0.5, 0.5, 4.0)
        img.GetPointData().SetScalars(numpy_to_vtk(vol.array.reshape(-1), deep=False))
        self._keep = (vol.array, img)
        self.widgets, self.mappers = [], []
        for i in range(n):
            w = QVTKRenderWindowInteractor(self.win)
            w.GetRenderWindow().SetMultiSamples(0)  # as VtkSliceView
            grid.addWidget(w, i // 2, i % 2)
            ren = vtkRenderer()
            w.GetRenderWindow().AddRenderer(ren)
            w.GetRenderWindow().GetInteractor().SetInteractorStyle(vtkInteractorStyleUser())
            w.Initialize()
            m = vtkImageSliceMapper()
            m.SetInputData(img)
            m.SetOrientationToZ()
            a = vtkImageSlice()
            a.SetMapper(m)
            a.GetProperty().SetColorWindow(1200)
            a.GetProperty().SetColorLevel(650)
            ren.AddViewProp(a)
            ren.ResetCamera()
            ren.GetActiveCamera().ParallelProjectionOn()
            ren.GetActiveCamera().SetParallelScale(fit_scale)
            self.widgets.append(w)
            self.mappers.append(m)
        self.win.resize(*((800, 800) if n == 1 else (1600, 900)))
        self.win.show()
        for _ in range(5):
            app.processEvents()
            time.sleep(0.02)
        self.bounce = Bouncer(ns)
        self.n = ns

    def step(self) -> None:
        k = self.bounce()
        for m in self.mappers:
            m.SetSliceNumber(k)

    def render(self) -> None:
        for w in self.widgets:
            w.GetRenderWindow().Render()
        self.app.processEvents()

    def close(self):
        for w in self.widgets:
            w.Finalize()
        self.win.close()


def time_qt(scene, seconds: float) -> float:
    scene.step()
    scene.render()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        scene.step()
        scene.render()
        n += 1
    return n / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------- main
def report(title, results, ref_key):
    print(f"\n{title}")
    print(f"  {'row':38s} {'best fps':>9s} {'median':>8s} {'×ref':>6s}")
    ref = max(results[ref_key])
    for key, vals in results.items():
        best = max(vals)
        print(f"  {key:38s} {best:9.1f} {statistics.median(vals):8.1f} {best / ref:6.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--slices", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=1.5, help="per trial")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--qt", action="store_true", help="also the Qt widgets (needs a display, e.g. xvfb-run)")
    args = ap.parse_args(argv)

    vol = make_volume(args.size, args.slices)
    over = overlay_volume(vol) if has_overlay() else None
    import discviewer as _dv
    la = os.getloadavg()
    print(f"discviewer bench_slice — {args.slices} × {args.size}² uint16, {platform.machine()}, "
          f"{os.cpu_count()} cores, python {platform.python_version()}, load average "
          f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f}, code: {Path(_dv.__file__).parent}")

    # ---- offscreen
    for layout, (w, h), title in ((1, (800, 800), "offscreen EGL, 1 view 800×800"),
                                  (4, (800, 450), "offscreen EGL, 4 linked views 800×450 (1600×900)")):
        full = [DvScene(vol, w, h, lod=False) for _ in range(layout)]
        lod = [DvScene(vol, w, h, lod=True) for _ in range(layout)]
        ref = [RefScene(vol, w, h, full[0].fit_scale) for _ in range(layout)]
        groups = {"reference vtkImageSliceMapper": ref, "discviewer full (linear)": full,
                  "discviewer interactive LOD (nearest)": lod}
        if over is not None:
            groups["discviewer + overlay 50% (linear)"] = [DvScene(vol, w, h, lod=False, overlay=over)
                                                           for _ in range(layout)]
        if layout == 1:
            caps = full[0].off.window.ReportCapabilities() or ""
            print("GL:", next((ln.strip() for ln in caps.splitlines() if "renderer" in ln.lower()), "?"))
        checks = {k: verify_changes(v) for k, v in groups.items()}
        results = {k: [] for k in groups}
        for _ in range(args.rounds):
            for k, sc in groups.items():
                results[k].append(time_scenes(sc, args.seconds))
        report(title, results, "reference vtkImageSliceMapper")
        print("  frames changed in the verification sweep: " +
              ", ".join(f"{k.split()[0]} {c}/{n}" for k, (c, n) in checks.items()))
        if layout == 1:
            print(f"  one view: full {max(results['discviewer full (linear)']):.1f} fps, "
                  f"LOD {max(results['discviewer interactive LOD (nearest)']):.1f} fps (goal ≥ 60)")
        else:
            print(f"  four views: full {max(results['discviewer full (linear)']):.1f} steps/s, "
                  f"LOD {max(results['discviewer interactive LOD (nearest)']):.1f} steps/s (goal ≥ 30)")
        for scs in groups.values():
            for sc in scs:
                sc.off.close()

    # ---- Qt
    if args.qt:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            print("\nQt rows skipped: no display (run under xvfb-run -a)")
            return 0
        os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
        from PySide6 import QtWidgets

        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
        for layout, title in ((1, "Qt (QVTKRenderWindowInteractor), 1 view 800×800"),
                              (4, "Qt, 4 linked views in 1600×900 (coalesced: one render per view per step)")):
            full = QtDvScene(app, vol, layout, lod=False)
            lodsc = QtDvScene(app, vol, layout, lod=True)
            ref = QtRefScene(app, vol, layout, full.views[0].pipeline.view_state()[2])
            groups = {"reference vtkImageSliceMapper": ref, "discviewer full (linear)": full,
                      "discviewer interactive LOD (nearest)": lodsc}
            if over is not None:
                groups["discviewer + overlay 50% (linear)"] = QtDvScene(app, vol, layout, lod=False, overlay=over)
            results = {k: [] for k in groups}
            renders = {}
            for _ in range(args.rounds):
                for k, sc in groups.items():
                    r0 = sc.renders() if hasattr(sc, "renders") else 0
                    t0 = time.perf_counter()
                    fps = time_qt(sc, args.seconds)
                    if hasattr(sc, "renders"):
                        renders[k] = (sc.renders() - r0) / (time.perf_counter() - t0) / len(sc.views)
                    results[k].append(fps)
            report(title, results, "reference vtkImageSliceMapper")
            print("  renders per view per second (last trial): " +
                  ", ".join(f"{k.split()[1]} {v:.1f}" for k, v in renders.items()))
            for sc in groups.values():
                sc.close()
            app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())

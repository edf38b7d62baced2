"""Volume rendering speed: rotation fps at interactive LOD vs full quality, CPU vs GPU mapper.

A synthetic 512×512×300 MR-like volume (uint16: a noisy elliptic body with a brighter spine-like
column, dark voids and a dark background; 0.6 × 0.6 × 1.0 mm voxels), rendered offscreen
(vtkEGLRenderWindow, 800×800) by `VolumePipeline`, the camera turned by `--step` degrees of azimuth
per frame; fps = 1 / median frame time. All numbers come from the same run, so ratios compare
like with like. The load average is printed: other processes on a 2-core machine skew everything.

    .venv/bin/python benchmarks/bench_volume.py [--frames 12] [--full-frames 4] [--size 512 512 300]
                                                 [--presets "MR soft tissue" MIP] [--no-gpu] [--smart]

Issue goal: ≥ 10 fps at the interactive LOD on software GL, full quality on release.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vtkmodules.vtkRenderingCore import vtkRenderer  # noqa: E402

from discviewer.render.gl_info import is_software_gl, renderer_string  # noqa: E402
from discviewer.render.offscreen import make_offscreen_window  # noqa: E402
from discviewer.render.volume_pipeline import VolumePipeline, choose_mapper  # noqa: E402
from discviewer.volume import Volume  # noqa: E402


def synthetic_volume(nx: int = 512, ny: int = 512, nz: int = 300, seed: int = 0) -> Volume:
    """(slices=nz, rows=ny, columns=nx) uint16, axial-like geometry, 0.6 mm in-plane, 1 mm slices."""
    rng = np.random.default_rng(seed)
    z = np.linspace(-1, 1, nz, dtype=np.float32)[:, None, None]
    y = np.linspace(-1, 1, ny, dtype=np.float32)[None, :, None]
    x = np.linspace(-1, 1, nx, dtype=np.float32)[None, None, :]
    arr = np.zeros((nz, ny, nx), np.float32)
    body = (x / 0.8) ** 2 + (y / 0.6) ** 2 < 1.0
    arr += 300.0 * body
    arr += 500.0 * (((x) / 0.12) ** 2 + ((y - 0.3) / 0.12) ** 2 < 1.0)  # "spine"
    arr += 250.0 * np.sin(6 * z) ** 2 * body
    for cz, cy, cx in ((0.2, 0.3, 0.0), (-0.4, -0.1, 0.3)):
        arr *= ~(((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) < 0.01)  # dark voids
    arr += rng.normal(0, 20, size=(1, ny, nx)).astype(np.float32)  # cheap noise: one plane broadcast
    arr = np.clip(np.abs(arr), 0, 4000).astype(np.uint16)
    aff = np.diag([0.6, 0.6, 1.0, 1.0])
    aff[:3, 3] = (-0.6 * nx / 2, -0.6 * ny / 2, -nz / 2)
    return Volume(arr, aff)


def fps(rw, ren, frames: int, step: float) -> float:
    """Frames per second from the median frame time (robust to other processes on a 2-core machine)."""
    cam = ren.GetActiveCamera()
    rw.Render()  # warm-up (first render prepares the mapper's data)
    times = []
    for _ in range(frames):
        cam.Azimuth(step)
        ren.ResetCameraClippingRange()
        t0 = time.perf_counter()
        rw.Render()
        times.append(time.perf_counter() - t0)
    return 1.0 / float(np.median(times))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=3, default=(512, 512, 300), metavar=("NX", "NY", "NZ"))
    ap.add_argument("--window", type=int, default=800)
    ap.add_argument("--frames", type=int, default=12, help="frames per interactive measurement")
    ap.add_argument("--full-frames", type=int, default=4, help="frames per full-quality measurement")
    ap.add_argument("--gpu-frames", type=int, default=2)
    ap.add_argument("--step", type=float, default=5.0)
    ap.add_argument("--presets", nargs="+", default=["MR soft tissue", "MIP"])
    ap.add_argument("--no-gpu", action="store_true", help="skip the GPU mapper (slow on software GL)")
    ap.add_argument("--smart", action="store_true", help="also vtkSmartVolumeMapper forced to CPU")
    a = ap.parse_args(argv)

    t = time.perf_counter()
    vol = synthetic_volume(*a.size)
    print(f"volume {vol.shape[2]}×{vol.shape[1]}×{vol.shape[0]} uint16 made in {time.perf_counter() - t:.1f} s")
    rw = make_offscreen_window(a.window, a.window)
    ren = vtkRenderer()
    rw.AddRenderer(ren)
    gl = renderer_string(rw, initialize=True)
    print(f"GL renderer: {gl!r}  software: {is_software_gl(gl)}  choose_mapper → {choose_mapper(rw)}")
    import os

    print(f"window {a.window}×{a.window}, azimuth step {a.step}°, load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} CPUs")

    results: dict[tuple[str, str, str], float] = {}
    kinds = ["cpu"] + ([] if a.no_gpu else ["gpu"])
    for kind in kinds:
        pl = VolumePipeline(ren, mapper=kind)
        t = time.perf_counter()
        pl.set_volume(vol, preset=a.presets[0])
        pl.set_interactive(True)
        print(f"[{kind}] set_volume {time.perf_counter() - t:.2f} s; coarse input "
              f"{pl.coarse_mapper.GetInput().GetDimensions()}, interactive image sample distance "
              f"{pl.coarse_mapper.GetImageSampleDistance():.2f} px")
        for preset in a.presets:
            pl.set_preset(preset)
            pl.reset_camera("anterior")
            pl.set_interactive(True)
            n_i = a.gpu_frames if kind == "gpu" else a.frames
            results[(kind, preset, "interactive")] = f_i = fps(rw, ren, n_i, a.step)
            pl.set_interactive(False)
            n_f = a.gpu_frames if kind == "gpu" else a.full_frames
            results[(kind, preset, "full")] = f_f = fps(rw, ren, n_f, a.step)
            print(f"[{kind}] {preset:15s} interactive {f_i:6.2f} fps   full {f_f:6.2f} fps   "
                  f"interactive/full ×{f_i / f_f:.1f}")
        pl.close()

    if a.smart:
        from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

        pl = VolumePipeline(ren, mapper="cpu")
        pl.set_volume(vol, preset=a.presets[0])
        pl.reset_camera("anterior")
        smart = vtkSmartVolumeMapper()
        smart.SetRequestedRenderModeToRayCast()  # = the fixed-point CPU ray caster
        smart.SetInputData(pl.full_mapper.GetInput())
        smart.SetAutoAdjustSampleDistances(0)
        smart.SetSampleDistance(pl.full_mapper.GetSampleDistance())
        pl.actor.SetMapper(smart)
        f_s = fps(rw, ren, a.full_frames, a.step)
        pl.actor.SetMapper(pl.full_mapper)
        f_c = fps(rw, ren, a.full_frames, a.step)
        print(f"[cpu] {a.presets[0]}: vtkSmartVolumeMapper(RayCast) full {f_s:.2f} fps vs "
              f"vtkFixedPointVolumeRayCastMapper full {f_c:.2f} fps")
        pl.close()

    if "gpu" in kinds:
        for preset in a.presets:
            for lod in ("interactive", "full"):
                c, g = results[("cpu", preset, lod)], results[("gpu", preset, lod)]
                print(f"{preset:15s} {lod:11s}: cpu {c:6.2f} fps, gpu {g:6.2f} fps, cpu/gpu ×{c / g:.1f}")
    print(f"load average at the end {__import__('os').getloadavg()[0]:.2f}")
    goal = min(results[("cpu", p, "interactive")] for p in a.presets)
    print(f"goal ≥ 10 fps interactive on software GL: {'met' if goal >= 10 else 'NOT met'} "
          f"(slowest preset {goal:.1f} fps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Cold start of any discviewer executable (the PyInstaller bundle, a venv's script) to its main window on screen.

`benchmarks/bench_startup.py` measures the venv start from inside the process (it runs Python code in the child),
which a frozen bundle does not allow. This measures from outside, the same way for every executable, so
they compare: t0 just before the process is started (no arguments, nothing to open), end when the X server
reports a viewable top-level window of at least 400×300 px whose name or class contains "discviewer" (the
main window mapped). The window being mapped comes just before the first paint that bench_startup waits for,
so read these numbers as "window on screen", a little less than bench_startup's "usable". Each trial
gets fresh settings/data folders and DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE=1; the process is terminated once its
window is seen. One untimed warm-up per executable first (page cache, as at a second start); trials interleave.

Usage (needs an X display; Xvfb is fine):
    xvfb-run -a -s "-screen 0 1600x1000x24" python packaging/bench_bundle_start.py [--repeat 5] EXE [EXE …]
Linux/X11 only (libX11 through ctypes; the stdlib is enough).
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

MIN_W, MIN_H = 400, 300


class _XWindowAttributes(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("width", ctypes.c_int), ("height", ctypes.c_int),
                ("border_width", ctypes.c_int), ("depth", ctypes.c_int), ("visual", ctypes.c_void_p),
                ("root", ctypes.c_ulong), ("c_class", ctypes.c_int), ("bit_gravity", ctypes.c_int),
                ("win_gravity", ctypes.c_int), ("backing_store", ctypes.c_int), ("backing_planes", ctypes.c_ulong),
                ("backing_pixel", ctypes.c_ulong), ("save_under", ctypes.c_int), ("colormap", ctypes.c_ulong),
                ("map_installed", ctypes.c_int), ("map_state", ctypes.c_int), ("all_event_masks", ctypes.c_long),
                ("your_event_mask", ctypes.c_long), ("do_not_propagate_mask", ctypes.c_long),
                ("override_redirect", ctypes.c_int), ("screen", ctypes.c_void_p)]


class _XClassHint(ctypes.Structure):
    _fields_ = [("res_name", ctypes.c_char_p), ("res_class", ctypes.c_char_p)]


class XWatcher:
    """Finds a viewable top-level window by name/class substring (no window manager needed)."""

    IS_VIEWABLE = 2

    def __init__(self):
        path = ctypes.util.find_library("X11")
        if not path:
            raise SystemExit("bench_bundle_start: libX11 not found")
        x = self.x = ctypes.CDLL(path)
        x.XOpenDisplay.restype = ctypes.c_void_p
        x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x.XDefaultRootWindow.restype = ctypes.c_ulong
        x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong),
                                 ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)),
                                 ctypes.POINTER(ctypes.c_uint)]
        x.XGetWindowAttributes.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(_XWindowAttributes)]
        x.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_char_p)]
        x.XGetClassHint.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(_XClassHint)]
        x.XFree.argtypes = [ctypes.c_void_p]
        self.dpy = x.XOpenDisplay(None)
        if not self.dpy:
            raise SystemExit("bench_bundle_start: cannot open the X display (run under xvfb-run)")
        self.root = x.XDefaultRootWindow(self.dpy)

    def _text(self, win) -> str:
        x, out = self.x, []
        name = ctypes.c_char_p()
        if x.XFetchName(self.dpy, win, ctypes.byref(name)) and name.value:
            out.append(name.value.decode("latin-1"))
        hint = _XClassHint()
        if x.XGetClassHint(self.dpy, win, ctypes.byref(hint)):
            out += [(v or b"").decode("latin-1") for v in (hint.res_name, hint.res_class)]
        return " ".join(out).lower()

    def find(self, needle: str = "discviewer") -> bool:
        x = self.x
        root_ret, parent, n = ctypes.c_ulong(), ctypes.c_ulong(), ctypes.c_uint()
        children = ctypes.POINTER(ctypes.c_ulong)()
        if not x.XQueryTree(self.dpy, self.root, ctypes.byref(root_ret), ctypes.byref(parent),
                            ctypes.byref(children), ctypes.byref(n)):
            return False
        try:
            for i in range(n.value):
                win = children[i]
                attrs = _XWindowAttributes()
                if not x.XGetWindowAttributes(self.dpy, win, ctypes.byref(attrs)):
                    continue
                if attrs.map_state != self.IS_VIEWABLE or attrs.width < MIN_W or attrs.height < MIN_H:
                    continue
                if needle in self._text(win):
                    return True
        finally:
            if children:
                x.XFree(children)
        return False


def trial(watcher: XWatcher, exe: str, timeout: float = 60.0) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as tmp:
        env = dict(os.environ, DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE="1",
                   DISCVIEWER_SETTINGS=os.path.join(tmp, "settings.ini"), DISCVIEWER_LOG_DIR=os.path.join(tmp, "logs"),
                   XDG_DATA_HOME=os.path.join(tmp, "data"), XDG_CONFIG_HOME=os.path.join(tmp, "config"),
                   XDG_CACHE_HOME=os.path.join(tmp, "cache"), PYQTGRAPH_QT_LIB="PySide6")
        env.pop("DISCVIEWER_SCREENSHOT", None)
        t0 = time.perf_counter()
        proc = subprocess.Popen([exe], env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while True:
                if watcher.find():
                    return time.perf_counter() - t0
                if proc.poll() is not None:
                    raise RuntimeError(f"{exe} exited ({proc.returncode}) before showing a window:\n"
                                       f"{proc.stderr.read().decode(errors='replace')[-3000:]}")
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"{exe}: no window after {timeout:.0f} s")
                time.sleep(0.005)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            # let the window go away before the next trial looks for one
            deadline = time.perf_counter() + 5
            while watcher.find() and time.perf_counter() < deadline:
                time.sleep(0.01)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("exes", nargs="+", help="executables to start (no arguments are passed)")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    exes = [os.path.abspath(e) if os.sep in e else e for e in a.exes]
    watcher = XWatcher()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"# discviewer cold start to the main window on screen (outside measurement) — {platform.node()}, "
          f"{os.cpu_count()} CPUs, load average {load:.2f}")
    for exe in exes:  # warm-up
        trial(watcher, exe)
    times: dict[str, list[float]] = {e: [] for e in exes}
    for _ in range(a.repeat):
        for exe in exes:
            times[exe].append(trial(watcher, exe))
    print(f"{'executable':60s} {'best s':>7s} {'median s':>9s}   all")
    for exe, ts in times.items():
        print(f"{exe[-60:]:60s} {min(ts):7.3f} {statistics.median(ts):9.3f}   "
              + " ".join(f"{t:.3f}" for t in ts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

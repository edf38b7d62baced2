#!/usr/bin/env python
"""Benchmark: cold start of the desktop app to a usable window.

Issue goal: ≤ 1.5 s from the venv, process start → main window shown and the event loop idle.

Each trial is a fresh process started from this script (t0 = just before `subprocess.Popen`); the
child reports, with the wall clock, when the window is usable: the window is exposed on screen and
a zero-timer of the running event loop has fired after that (all start-up events handled). Measured:

| row | what the child runs |
|---|---|
| `reference: bare Qt window` | `python -c`: import PySide6.QtWidgets, QApplication, a QWidget shown — the floor for any Qt app |
| `discviewer` | the real entry point `discviewer.ui.cli.main([])` (logging, settings, research-use check skipped by `DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE=1`, `MainWindow`, `show`, `app.exec()`), with fresh temporary settings / data folders |

The child also reports when the imports finished and when the window was built (parts of the
discviewer row). Trials are interleaved (reference, discviewer, reference, …; `--repeat` each, one
untimed warm-up of each first so the page cache is warm — the usual case of a second start); best
and median are printed, the ratio to the reference and the verdict against the 1.5 s goal.
`--importtime` prints the 15 slowest imports of one start (`python -X importtime`).

Usage:  xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_startup.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GOAL_S = 1.5

_PROBE = r'''
import json, sys, time
T_START = time.time()

def _probe(window, app, QtCore, marks):
    state = {"exposed": None}

    def check():
        handle = window.windowHandle()
        if handle is None or not handle.isExposed():
            QtCore.QTimer.singleShot(1, check)
            return
        if state["exposed"] is None:
            state["exposed"] = time.time()
            QtCore.QTimer.singleShot(0, check)  # one more turn: the events queued by exposure are handled
            return
        marks["usable"] = time.time()
        marks["exposed"] = state["exposed"]
        print("BENCH " + json.dumps(marks), flush=True)
        app.exit(0)

    QtCore.QTimer.singleShot(0, check)
'''

REFERENCE = _PROBE + r'''
from PySide6 import QtCore, QtWidgets
marks = {"interpreter": T_START, "imports": time.time()}
app = QtWidgets.QApplication(sys.argv[:1])
w = QtWidgets.QWidget()
w.resize(1280, 800)
w.show()
marks["window"] = time.time()
_probe(w, app, QtCore, marks)
sys.exit(app.exec())
'''

DISCVIEWER = _PROBE + r'''
import discviewer.ui.app as app_mod
from discviewer.ui import cli
marks = {"interpreter": T_START, "imports": time.time()}
_create = app_mod.create_main_window

def create(*args, **kwargs):
    window = _create(*args, **kwargs)
    marks["window"] = time.time()
    from PySide6 import QtCore, QtWidgets
    _probe(window, QtWidgets.QApplication.instance(), QtCore, marks)
    return window

app_mod.create_main_window = create
sys.exit(cli.main([]))
'''


def _env(tmp: str) -> dict:
    env = dict(os.environ)
    env.update({"DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE": "1", "DISCVIEWER_SETTINGS": os.path.join(tmp, "settings.ini"),
                "XDG_DATA_HOME": os.path.join(tmp, "data"), "XDG_CONFIG_HOME": os.path.join(tmp, "config"),
                "XDG_CACHE_HOME": os.path.join(tmp, "cache"), "PYQTGRAPH_QT_LIB": "PySide6"})
    env.pop("DISCVIEWER_SCREENSHOT", None)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def trial(code: str, env: dict, timeout: float = 60.0) -> dict:
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(ROOT), capture_output=True, text=True,
                          timeout=timeout)
    t_end = time.time()
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"child failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    m = json.loads(line[6:])
    return {"total": m["usable"] - t0, "interpreter": m["interpreter"] - t0, "imports": m["imports"] - t0,
            "window": m["window"] - t0, "exposed": m["exposed"] - t0, "exit": t_end - m["usable"]}


def importtime(env: dict, top: int = 15) -> list[tuple[float, float, str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", DISCVIEWER], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        try:
            self_us, cum_us, name = line.split(":", 1)[1].split("|")
            rows.append((int(cum_us) / 1e6, int(self_us) / 1e6, name.rstrip()))
        except ValueError:
            continue
    return sorted(rows, reverse=True)[:top]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--importtime", action="store_true", help="also list the slowest imports of one start")
    a = ap.parse_args(argv)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and sys.platform.startswith("linux"):
        print("no display: run under Xvfb (xvfb-run -a -s '-screen 0 1600x1000x24' …)", file=sys.stderr)
        return 2
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"# discviewer cold start to a usable window — {platform.node()}, {os.cpu_count()} CPUs, "
          f"load average {load:.2f}, python {platform.python_version()}, {sys.executable}")
    results: dict[str, list[dict]] = {"reference: bare Qt window": [], "discviewer": []}
    codes = {"reference: bare Qt window": REFERENCE, "discviewer": DISCVIEWER}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = _env(tmp)
        for code in codes.values():  # warm-up: page cache, .pyc files
            trial(code, env)
        for _ in range(a.repeat):
            for name, code in codes.items():
                results[name].append(trial(code, env))
        if a.importtime:
            imports = importtime(env)
    print(f"{'row':28s} {'best s':>7s} {'median s':>9s} {'×ref':>6s}   parts (median s from process start: "
          "interpreter / imports / window built / exposed)")
    ref_best = min(r["total"] for r in results["reference: bare Qt window"])
    for name, rs in results.items():
        tot = [r["total"] for r in rs]
        parts = " / ".join(f"{statistics.median(r[k] for r in rs):.3f}" for k in ("interpreter", "imports", "window",
                                                                                  "exposed"))
        print(f"{name:28s} {min(tot):7.3f} {statistics.median(tot):9.3f} {min(tot) / ref_best:6.2f}   {parts}")
    med = statistics.median(r["total"] for r in results["discviewer"])
    print(f"goal: usable window ≤ {GOAL_S:.1f} s — median {med:.3f} s: {'MET' if med <= GOAL_S else 'NOT MET'} "
          f"({med / GOAL_S:.2f} × the goal)")
    if a.importtime:
        print("\n# slowest imports of one start (cumulative s, self s, module)")
        for cum, own, name in imports:
            print(f"{cum:8.3f} {own:8.3f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Render the application icon `resources/discviewer.svg` to PNGs at the freedesktop sizes.

Writes `resources/icons/discviewer-<N>.png` for N in SIZES (square, RGBA, transparent corners) with
Qt's own SVG renderer (PySide6-Essentials ships QtSvg; no Inkscape or librsvg needed). The PNGs are
committed; rerun this after editing the SVG and look at the result:

    .venv/bin/python packaging/make_icons.py            # render
    .venv/bin/python packaging/make_icons.py --check    # only check that every size exists with its dimensions

Windows (.ico) and macOS (.icns) icons are not kept: PyInstaller converts the 256 / 512 px PNG on
those platforms when Pillow is installed (see packaging/discviewer.spec).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "resources" / "discviewer.svg"
ICON_DIR = ROOT / "resources" / "icons"
SIZES = (16, 32, 48, 64, 128, 256, 512)


def png_path(size: int, icon_dir: Path = ICON_DIR) -> Path:
    return icon_dir / f"discviewer-{size}.png"


def render(svg: Path = SVG, icon_dir: Path = ICON_DIR, sizes=SIZES) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtGui, QtSvg

    app = QtGui.QGuiApplication.instance() or QtGui.QGuiApplication(sys.argv[:1])  # noqa: F841 (kept alive)
    renderer = QtSvg.QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: {svg} is not a valid SVG for Qt")
    icon_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for size in sizes:
        image = QtGui.QImage(size, size, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(QtCore.Qt.GlobalColor.transparent)
        painter = QtGui.QPainter(image)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, True)
        renderer.render(painter, QtCore.QRectF(0, 0, size, size))
        painter.end()
        path = png_path(size, icon_dir)
        if not image.convertToFormat(QtGui.QImage.Format.Format_ARGB32).save(str(path), "PNG"):
            raise SystemExit(f"make_icons: could not write {path}")
        out.append(path)
    return out


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk (stdlib only)."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def check(icon_dir: Path = ICON_DIR, sizes=SIZES) -> list[str]:
    problems = []
    for size in sizes:
        path = png_path(size, icon_dir)
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif png_size(path) != (size, size):
            problems.append(f"{path}: {png_size(path)} instead of {(size, size)}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="check the PNGs instead of rendering them")
    a = ap.parse_args(argv)
    if not a.check:
        for path in render():
            print(path.relative_to(ROOT))
    problems = check()
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

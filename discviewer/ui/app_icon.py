"""The application icon (`resources/discviewer.svg` and its PNG renderings in `resources/icons/`).

`app_icon()` returns a QIcon with every PNG size present, 16 to 512 px (Qt picks the nearest size
per use: title bar, task switcher, dock; PNGs need no SVG plugin in a bundle). It never raises:
missing files give an empty icon, never a failed start. `packaging/make_icons.py` renders the PNGs.
"""
from __future__ import annotations

from PySide6 import QtGui

SIZES = (16, 32, 48, 64, 128, 256, 512)


def app_icon() -> QtGui.QIcon:
    icon = QtGui.QIcon()
    try:
        from discviewer.resources import resources_dir

        root = resources_dir()
    except OSError:  # no resources folder (FileNotFoundError)
        return icon
    for size in SIZES:
        png = root / "icons" / f"discviewer-{size}.png"
        if png.is_file():
            icon.addFile(str(png))
    return icon

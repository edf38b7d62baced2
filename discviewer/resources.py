"""Where the data files shipped with discviewer live (hanging protocols, …).

`resources_dir()` returns the first existing folder of:
1. `$DISCVIEWER_RESOURCES` (an override for tests and for unusual installs; must exist);
2. `discviewer/_resources/` inside the installed package (a wheel, an sdist install or the PyInstaller
   bundle: setup.py maps the top-level `resources/` folder there);
3. `resources/` at the top of the source tree, next to the `discviewer/` package (a checkout or an
   editable install);
4. `<sys.prefix>/share/discviewer/resources` (a data-files install).
Core module: stdlib only.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "DISCVIEWER_RESOURCES"
_PKG = Path(__file__).resolve().parent


def candidate_dirs() -> list[Path]:
    """The places `resources_dir` looks, in order."""
    out = []
    env = os.environ.get(ENV_VAR)
    if env:
        out.append(Path(env))
    out += [_PKG / "_resources", _PKG.parent / "resources", Path(sys.prefix) / "share" / "discviewer" / "resources"]
    return out


def resources_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    if env and not Path(env).is_dir():
        raise FileNotFoundError(f"{ENV_VAR}={env} is not a folder")
    for d in candidate_dirs():
        if d.is_dir():
            return d
    tried = ", ".join(str(d) for d in candidate_dirs())
    raise FileNotFoundError(f"discviewer resources folder not found (looked in: {tried})")


def resource_path(*parts: str) -> Path:
    """A path inside the resources folder (not checked for existence)."""
    return resources_dir().joinpath(*parts)

"""Which compressed transfer syntaxes can be decoded here, and what to install when one cannot.

Owns the user-facing message for a missing pixel decoder (which package to install).
Core module: no Qt, no VTK.
"""
from __future__ import annotations

import importlib.util

from pydicom.uid import UID

# transfer syntax UID → (human name, pip packages that decode it through pydicom's pylibjpeg plugin)
_DECODERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "1.2.840.10008.1.2.4.50": ("JPEG Baseline", ("pylibjpeg", "pylibjpeg-libjpeg")),
    "1.2.840.10008.1.2.4.51": ("JPEG Extended", ("pylibjpeg", "pylibjpeg-libjpeg")),
    "1.2.840.10008.1.2.4.57": ("JPEG Lossless", ("pylibjpeg", "pylibjpeg-libjpeg")),
    "1.2.840.10008.1.2.4.70": ("JPEG Lossless SV1", ("pylibjpeg", "pylibjpeg-libjpeg")),
    "1.2.840.10008.1.2.4.80": ("JPEG-LS Lossless", ("pylibjpeg", "pylibjpeg-libjpeg")),
    "1.2.840.10008.1.2.4.81": ("JPEG-LS Near-lossless", ("pylibjpeg", "pylibjpeg-libjpeg")),
    "1.2.840.10008.1.2.4.90": ("JPEG 2000 Lossless", ("pylibjpeg", "pylibjpeg-openjpeg")),
    "1.2.840.10008.1.2.4.91": ("JPEG 2000", ("pylibjpeg", "pylibjpeg-openjpeg")),
    "1.2.840.10008.1.2.4.201": ("HTJ2K Lossless", ("pylibjpeg", "pylibjpeg-openjpeg")),
    "1.2.840.10008.1.2.4.202": ("HTJ2K Lossless RPCL", ("pylibjpeg", "pylibjpeg-openjpeg")),
    "1.2.840.10008.1.2.4.203": ("HTJ2K", ("pylibjpeg", "pylibjpeg-openjpeg")),
    "1.2.840.10008.1.2.5": ("RLE Lossless", ()),  # pydicom decodes RLE itself (numpy)
}

_MODULE_OF = {"pylibjpeg": "pylibjpeg", "pylibjpeg-libjpeg": "libjpeg", "pylibjpeg-openjpeg": "openjpeg",
              "pylibjpeg-rle": "rle"}


def syntax_name(ts: str) -> str:
    if ts in _DECODERS:
        return _DECODERS[ts][0]
    try:
        name = UID(ts).name
        return name if name and name != ts else ts
    except Exception:
        return ts


def missing_packages(ts: str) -> list[str]:
    """The pip packages still needed to decode transfer syntax `ts` (empty: nothing missing / unknown)."""
    pkgs = _DECODERS.get(ts, ("", ()))[1]
    return [p for p in pkgs if importlib.util.find_spec(_MODULE_OF.get(p, p)) is None]


def decoder_message(ts: str, path: str) -> str | None:
    """A clear message when no decoder for `ts` is installed, else None."""
    missing = missing_packages(ts)
    if not missing:
        return None
    return (f"{path}: pixels are compressed as {syntax_name(ts)} ({ts}) and no decoder for it is installed. "
            f"Install it with: pip install {' '.join(missing)}")

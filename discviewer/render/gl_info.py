"""What OpenGL implementation a VTK render window runs on, and a headless EGL window for tests/benchmarks.

`renderer_string(rw)` reads the "OpenGL renderer string" from `ReportCapabilities()` (the window must
have a GL context: it is initialised here only when `initialize=True`, never for an unmapped on-screen
window). `is_software_gl(text_or_window)` is true for Mesa's llvmpipe/softpipe, OpenGL SWR, Microsoft's
"GDI Generic"/"Basic Render Driver", SwiftShader and anything that calls itself "Software" — the
renderers on which the GPU ray caster crawls (DESIGN.md §5: < 1 fps at 800², 256×256×200).

Render layer: vtkmodules only, no Qt.
"""
from __future__ import annotations

import re

SOFTWARE_GL_MARKERS = ("llvmpipe", "softpipe", "swr", "software", "swiftshader", "gdi generic",
                       "basic render driver")

_RENDERER_RE = re.compile(r"^[ \t]*OpenGL renderer string:[ \t]*(.*?)[ \t]*$", re.MULTILINE)


def renderer_string(render_window, *, initialize: bool = False) -> str:
    """The GL renderer string of `render_window` ("" when it has no context yet and `initialize` is False)."""
    caps = render_window.ReportCapabilities() or ""
    m = _RENDERER_RE.search(caps)
    if m is None and initialize:
        render_window.Initialize()
        caps = render_window.ReportCapabilities() or ""
        m = _RENDERER_RE.search(caps)
    return m.group(1) if m else ""


def is_software_gl(renderer) -> bool:
    """True for a software rasteriser. `renderer`: a renderer string or a VTK render window."""
    text = renderer if isinstance(renderer, str) else renderer_string(renderer, initialize=True)
    low = text.lower()
    return any(re.search(r"\b" + re.escape(k) + r"\b", low) for k in SOFTWARE_GL_MARKERS)

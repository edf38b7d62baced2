"""Figures: any slice view rendered offscreen at a chosen resolution, and written as PNG or TIFF.

No Qt. A view is described by a plain `ViewState` (plane, point, window, zoom, pan, overlay,
annotations, corner labels) — taken from a live view with `ViewState.from_pipeline(view.pipeline)` —
and `render_view(volume, state, width, height, …)` draws it in a headless EGL window
(`OffscreenRenderer`), so the picture never depends on the window on screen: only on the state and
the requested size.

Zoom is the *field of view*: `ViewState.fov_mm` is the height of the picture in mm (None: the
whole plane fitted), so a 3× export of a 400×300 view (`render_view(…, 1200, 900, scale=3)`) shows
exactly what the view shows with three times the pixels; `scale` also multiplies the size of every
text, line, marker and margin, so the export looks like the view, only sharper.

What is drawn (the same overlays as the view): the image (and optional colour overlay), the
annotations and measurements (`AnnotationLayer`; their labels laid out so that none overlaps
another, as in the view — `RenderedView.annotation_labels` says where), corner labels (top-left:
the caller's label — a pseudonym and "day N" in a de-identified export, never the series
description from the DICOM header; then the slice; top-right: W/L), the orientation letters, a
scale bar, an optional legend (text lines) and colour bar, and the "Research use only — not for
diagnosis" mark.

Scale bar: a round length (`discviewer.display.SCALE_BAR_CHOICES_MM`, the largest that fits in a
quarter of the width) drawn as filled rectangles whose outer extent is exactly `length_mm /
mm_per_pixel` output pixels — `RenderedView.scale_bar_box` gives that extent in picture pixels.

De-identification: every text drawn is checked at render time against `forbidden` strings (names,
IDs, dates — see `discviewer.export.pseudonym`); a hit is replaced by "[removed]", and the texts
actually drawn are returned (`RenderedView.texts`) so tests can check them.

Files: `save_image` writes PNG (own writer: IHDR, pHYs for the dpi, iTXt "Software" =
"discviewer <version> — research use only", IDAT, IEND — no tIME or other chunk) or TIFF (own
writer: baseline RGB, deflate-compressed, resolution tags, Software, optional ImageDescription — no
DateTime, Artist or HostComputer). Own writers rather than Pillow or tifffile, so that exactly the
chunks and tags listed here end up in the file and nothing else (a library default adding a date or
a host name would be a leak).
"""
from __future__ import annotations

import dataclasses
import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from vtkmodules.vtkCommonCore import vtkPoints, vtkUnsignedCharArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor
from vtkmodules.vtkRenderingCore import vtkTextActor

import discviewer
from discviewer import RESEARCH_USE_NOTICE
from discviewer.display import format_number, scale_bar_length
from discviewer.render import annotation_layer as _al
from discviewer.render.annotation_layer import AnnotationLayer
from discviewer.render.offscreen import OffscreenRenderer
from discviewer.render.overlays import TEXT_COLOR, ColorBar, SliceOverlays, _text
from discviewer.render.slice_pipeline import SlicePipeline, colormap_table, normalize_plane

SOFTWARE = f"discviewer {discviewer.__version__} — research use only"
REMOVED = "[removed]"
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
BASE_FONT = 13  # the view's corner-text font size at scale 1


# ---------------------------------------------------------------------------------------- state
@dataclass
class ViewState:
    """What a slice view shows, as plain data (resolution independent).

    plane       "sag" / "cor" / "ax"
    point       LPS (mm) the plane passes through (None: the volume centre)
    window      (centre, width) in the volume's units (None: automatic 1st–99th percentile)
    fov_mm      height of the picture in mm (None: the whole plane fitted)
    center      LPS (mm) shown at the picture centre (None: the plane's centre); only its projection
                onto the plane matters
    annotations records to draw (those on the plane show, as in the view)
    labels      corner texts: "series" (top-left), "slice", "window" (None for a name: the pipeline's
                own slice / W-L text; "" hides it)
    overlay     a second volume blended over the image (`SlicePipeline.set_overlay`), with its
                colormap, opacity and window
    """

    plane: str = "sag"
    point: tuple | None = None
    window: tuple[float, float] | None = None
    inverted: bool = False
    interpolation: str = "linear"
    fov_mm: float | None = None
    center: tuple | None = None
    annotations: tuple = ()
    labels: dict = field(default_factory=dict)
    overlay: object = None
    overlay_colormap: str = "hot"
    overlay_opacity: float = 0.5
    overlay_window: tuple[float, float] | None = None
    crosshair: tuple | None = None

    @classmethod
    def from_pipeline(cls, pipeline, *, annotations: Iterable = (), labels: dict | None = None) -> "ViewState":
        """The state of a live `SlicePipeline` (e.g. `VtkSliceView.pipeline`): plane, point, window,
        camera (zoom and pan), overlay. Labels are *not* taken from the view (its title may name
        the series or the patient): pass them (see `discviewer.render.montage.visit_label`)."""
        if pipeline.volume is None:
            raise ValueError("the view shows no volume")
        fx, fy, scale = pipeline.view_state()
        ov = pipeline.overlay()
        return cls(plane=pipeline.plane, point=_tuple(pipeline.point()), window=tuple(pipeline.window()),
                   inverted=bool(pipeline.inverted), interpolation=pipeline.interpolation,
                   fov_mm=2.0 * float(scale), center=_tuple(pipeline.plane_to_patient(fx, fy)),
                   annotations=tuple(annotations), labels=dict(labels or {}), overlay=ov,
                   overlay_colormap=pipeline.overlay_colormap(), overlay_opacity=pipeline.overlay_opacity(),
                   overlay_window=tuple(pipeline.overlay_window()) if ov is not None else None,
                   crosshair=_tuple(pipeline.crosshair()))

    def replace(self, **changes) -> "ViewState":
        return dataclasses.replace(self, **changes)


def _tuple(p):
    return None if p is None else tuple(float(v) for v in np.asarray(p, float).ravel())


# ---------------------------------------------------------------------------------------- result
@dataclass
class RenderedView:
    """A rendered picture and what was drawn on it (for tests and for callers that place things)."""

    rgb: np.ndarray  # (height, width, 3) uint8, row 0 = top
    mm_per_pixel: float
    scale_bar_mm: float = 0.0
    scale_bar_px: float = 0.0  # length in output pixels (= scale_bar_mm / mm_per_pixel)
    scale_bar_box: tuple[float, float, float, float] | None = None  # x0, x1, row top, row bottom (picture px)
    texts: list[str] = field(default_factory=list)  # every text drawn (after redaction)
    letters: dict = field(default_factory=dict)  # edge → orientation letter
    slice_index: int = 0
    slice_count: int = 0
    # the annotation labels as laid out: {"id", "text", "box": (x0, row0, x1, row1) picture px, row 0 = top,
    # "anchor": (x, row), "leader": None or ((x, row), (x, row))}
    annotation_labels: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------- scaled overlays
class ScaledOverlays(SliceOverlays):
    """`SliceOverlays` with every size (fonts, margins, bar) multiplied by `scale`, and a scale bar
    made of filled rectangles (black backing, white bar) whose outer extent is exactly its length."""

    def __init__(self, renderer, *, scale: float = 1.0) -> None:
        self.scale = float(scale)
        super().__init__(renderer, font_size=max(6, int(round(BASE_FONT * self.scale))))
        self.MARGIN = int(round(6 * self.scale))
        self.texts["legend"] = _text(max(6, int(round((BASE_FONT - 1) * self.scale))), h="right", v="top")
        renderer.AddViewProp(self.texts["legend"])
        self.texts["legend"].SetVisibility(False)
        # the bar: cell-coloured polygons in viewport pixels
        self._bar_pd = vtkPolyData()
        self._bar_pts = vtkPoints()
        self._bar_pd.SetPoints(self._bar_pts)
        self._bar_pd.SetPolys(vtkCellArray())
        mapper = self.scale_bar.GetMapper()
        mapper.SetInputData(self._bar_pd)
        mapper.SetScalarModeToUseCellData()
        mapper.SetColorModeToDirectScalars()
        mapper.ScalarVisibilityOn()
        self.scale_bar_box: tuple[float, float, float, float] | None = None  # viewport px x0, x1, y0, y1

    def set_legend(self, lines: Sequence[str] | None) -> None:
        text = "\n".join(lines or ())
        self.set_text("legend", text)
        self.texts["legend"].SetVisibility(bool(text))

    def layout(self, width: int, height: int, mm_per_px: float) -> None:
        super().layout(width, height, mm_per_px)
        t = self.texts
        fs = t["series"].GetTextProperty().GetFontSize()
        line = fs + 6
        # the W/L text moves below a long second line too (the base layout only looks at the first)
        x, y = t["window"].GetPosition()
        slice_w = 0.6 * fs * len(t["slice"].GetInput() or "")
        window_w = 0.6 * fs * len(t["window"].GetInput() or "")
        if y < height - self.MARGIN - 0.5 and slice_w + window_w + 3 * self.MARGIN > width:
            t["window"].SetPosition(x, height - self.MARGIN - 2 * line)
        line = t["window"].GetTextProperty().GetFontSize() + 6 * self.scale
        x, y = t["window"].GetPosition()
        t["legend"].SetPosition(width - self.MARGIN, y - 1.4 * line)

    def _layout_scale_bar(self, w: float, h: float, mm_per_px: float) -> None:
        if not (mm_per_px > 0) or w <= 0:
            return
        s = self.scale
        length_mm = scale_bar_length(self.SCALE_FRACTION * w * mm_per_px)
        length_px = length_mm / mm_per_px
        x0 = float(round(self.MARGIN + 4 * s))
        y0 = float(round(self.MARGIN + 20 * s))
        x1 = x0 + length_px
        t = float(max(2, round(2 * s)))  # bar thickness
        tick = float(max(3, round(5 * s)))
        b = float(max(1, round(s)))  # black backing around the white bar
        white = [(x0, y0, x1, y0 + t), (x0, y0, x0 + t, y0 + t + tick), (x1 - t, y0, x1, y0 + t + tick)]
        black = [(r[0] - b, r[1] - b, r[2] + b, r[3] + b) for r in white]
        pts = vtkPoints()
        polys = vtkCellArray()
        colors = vtkUnsignedCharArray()
        colors.SetNumberOfComponents(3)
        for rects, col in ((black, (0, 0, 0)), (white, tuple(int(round(255 * c)) for c in TEXT_COLOR))):
            for xa, ya, xb, yb in rects:
                ids = []
                for x, y in ((xa, ya), (xb, ya), (xb, yb), (xa, yb)):
                    ids.append(pts.InsertNextPoint(x, y, 0.0))
                polys.InsertNextCell(4)
                for i in ids:
                    polys.InsertCellPoint(i)
                colors.InsertNextTuple3(*col)
        self._bar_pd.SetPoints(pts)
        self._bar_pd.SetPolys(polys)
        self._bar_pd.GetCellData().SetScalars(colors)
        self._bar_pd.Modified()
        self.set_text("scale", f"{format_number(length_mm)} mm")
        self.texts["scale"].SetPosition(x0 + length_px / 2.0, self.MARGIN)
        self.scale_bar_mm = length_mm
        self.scale_bar_px = length_px
        self.scale_bar_box = (x0, x1, y0, y0 + t + tick)


class ScaledAnnotationLayer(AnnotationLayer):
    """`AnnotationLayer` whose pixel sizes (line widths, markers, handles, label font, label layout
    gaps and leader lines) are multiplied by `scale` (markers and handles are sized through the
    layer's mm-per-pixel)."""

    def __init__(self, renderer, *, scale: float = 1.0) -> None:
        self.scale = float(scale)
        super().__init__(renderer)
        self._shadow.GetProperty().SetLineWidth(4.0 * self.scale)
        self._lines.GetProperty().SetLineWidth(2.0 * self.scale)
        self._handles.GetProperty().SetLineWidth(max(1.0, self.scale))

    def _current_mm_per_px(self) -> float:
        return super()._current_mm_per_px() * self.scale

    def _px_scale(self) -> float:  # label font, gaps, steps and leader offsets (see AnnotationLayer)
        return self.scale

    def _label_bbox(self, prop, text: str, dpi: int):
        # a label takes at least its view size × scale (fonts do not scale exactly), so the export is
        # laid out like the view it comes from
        bb = super()._label_bbox(prop, text, dpi)
        if self.scale == 1.0:
            return bb
        fs = prop.GetFontSize()
        prop.SetFontSize(_al.FONT_SIZE)
        try:
            base = super()._label_bbox(prop, text, dpi)
        finally:
            prop.SetFontSize(fs)
        s = self.scale
        return (min(bb[0], base[0] * s), max(bb[1], base[1] * s), min(bb[2], base[2] * s), max(bb[3], base[3] * s))


# ---------------------------------------------------------------------------------------- texts
def drawn_texts(renderer) -> list[str]:
    """Every text a renderer draws now: visible vtkTextActors' inputs and scalar-bar titles."""
    out = []
    props = renderer.GetViewProps()
    props.InitTraversal()
    for _ in range(props.GetNumberOfItems()):
        p = props.GetNextProp()
        if not p.GetVisibility():
            continue
        if isinstance(p, vtkTextActor):
            if p.GetInput():
                out.append(p.GetInput())
        elif isinstance(p, vtkScalarBarActor):
            if p.GetTitle():
                out.append(p.GetTitle())
    return out


def _needle(f: str):
    pattern = re.escape(f)
    if f[0].isalnum():
        pattern = r"(?<![0-9A-Za-z])" + pattern
    if f[-1].isalnum():
        pattern += r"(?![0-9A-Za-z])"
    return re.compile(pattern, re.IGNORECASE)


def redact(text: str, forbidden: Iterable[str]) -> str:
    """`text` with every occurrence of a forbidden string (case-insensitive, as a whole word or
    number, so an ID "12" does not eat "W 120") replaced by "[removed]"."""
    for f in forbidden:
        f = str(f).strip()
        if len(f) >= 2 and f.lower() in text.lower():
            text = _needle(f).sub(REMOVED, text)
    return text


def _redact_renderer(renderer, forbidden: Sequence[str]) -> None:
    if not forbidden:
        return
    props = renderer.GetViewProps()
    props.InitTraversal()
    for _ in range(props.GetNumberOfItems()):
        p = props.GetNextProp()
        if isinstance(p, vtkTextActor) and p.GetInput():
            new = redact(p.GetInput(), forbidden)
            if new != p.GetInput():
                p.SetInput(new)
        elif isinstance(p, vtkScalarBarActor) and p.GetTitle():
            new = redact(p.GetTitle(), forbidden)
            if new != p.GetTitle():
                p.SetTitle(new)


# ---------------------------------------------------------------------------------------- the renderer
class FigureRenderer:
    """One slice view in an offscreen window (or a viewport of one): pipeline, overlays, annotation
    layer and colour bar, all scaled by `scale`. Reused for many pictures (sweeps, montages)."""

    def __init__(self, width: int, height: int, *, scale: float = 1.0, offscreen: OffscreenRenderer | None = None,
                 renderer=None) -> None:
        self.own = offscreen is None
        self.offscreen = offscreen or OffscreenRenderer(int(width), int(height))
        self.renderer = renderer if renderer is not None else self.offscreen.renderer
        self.scale = float(scale)
        self.pipeline = SlicePipeline(self.renderer, overlays=False)
        self.overlays = ScaledOverlays(self.renderer, scale=self.scale)
        self.overlays.set_has_image(False)
        self.pipeline.overlays = self.overlays
        self.layer = ScaledAnnotationLayer(self.renderer, scale=self.scale)
        self.colorbar: ColorBar | None = None
        self.forbidden: tuple[str, ...] = ()
        self.options = dict(scale_bar=True, letters=True, ruo=True, corner_texts=True)
        self._obs = self.renderer.AddObserver("StartEvent", self._on_start, -10.0)

    def _on_start(self, *args) -> None:
        # after the pipeline's and the layer's own start hooks (higher priorities)
        o = self.options
        ov = self.overlays
        has = self.pipeline.volume is not None
        for name in ("left", "right", "top", "bottom"):
            ov.texts[name].SetVisibility(has and o["letters"])
        ov.texts["scale"].SetVisibility(has and o["scale_bar"])
        ov.scale_bar.SetVisibility(has and o["scale_bar"])
        ov.texts["notice"].SetVisibility(bool(o["ruo"]))
        for name in ("series", "slice", "window"):
            ov.texts[name].SetVisibility(has and o["corner_texts"] and bool(ov.text(name)))
        _redact_renderer(self.renderer, self.forbidden)

    def show(self, volume, state: ViewState, *, labels: dict | None = None, scale_bar: bool = True,
             letters: bool = True, colorbar=None, ruo: bool = True, legend: Sequence[str] | None = None,
             forbidden: Sequence[str] = (), corner_texts: bool = True) -> None:
        """Set up the view for `volume` and `state` (see `render_view`); `render()` draws it."""
        pipe = self.pipeline
        plane = normalize_plane(state.plane)
        if pipe.plane != plane:
            pipe.set_plane(plane)
        lab = dict(state.labels or {})
        lab.update(labels or {})
        pipe.set_volume(volume, label=str(lab.get("series", "") or ""), point=state.point, window=state.window)
        if state.inverted != pipe.inverted:
            pipe.set_inverted(state.inverted)
        if state.interpolation and state.interpolation != pipe.interpolation:
            pipe.set_interpolation(state.interpolation)
        pipe.set_interactive(False)
        if state.overlay is not None:
            pipe.set_overlay(state.overlay, opacity=state.overlay_opacity, colormap=state.overlay_colormap,
                             window=state.overlay_window)
        else:
            pipe.set_overlay(None)
        pipe.set_crosshair(state.crosshair)
        if state.fov_mm is not None or state.center is not None:
            if state.center is not None:
                fu, fv = pipe.patient_to_plane(state.center)
            else:
                u0, u1, v0, v1 = pipe.image_bounds()
                fu, fv = (u0 + u1) / 2.0, (v0 + v1) / 2.0
            if state.fov_mm is not None:
                half = float(state.fov_mm) / 2.0
            else:
                pipe._fit_camera()
                half = pipe.view_state()[2]
            pipe.set_view_state((fu, fv, half))
        for name in ("slice", "window"):
            if lab.get(name) is not None:
                self.overlays.set_text(name, str(lab[name]))
        self.overlays.set_legend(legend)
        self.layer.sync(pipe)
        self.layer.set_items(tuple(state.annotations or ()), selected_id=None)
        self._set_colorbar(colorbar, state)
        self.forbidden = tuple(str(f) for f in forbidden if str(f).strip())
        self.options = dict(scale_bar=scale_bar, letters=letters, ruo=ruo, corner_texts=corner_texts)

    def _set_colorbar(self, colorbar, state: ViewState) -> None:
        if not colorbar:
            if self.colorbar is not None:
                self.colorbar.set_visible(False)
            return
        spec = dict(colorbar) if isinstance(colorbar, dict) else {}
        cmap = spec.get("colormap") or state.overlay_colormap
        if state.overlay_window is not None:
            c, w = state.overlay_window
        elif state.overlay is not None:
            c, w = self.pipeline.overlay_window()
        else:
            c, w = self.pipeline.window()
        if self.colorbar is None:
            self.colorbar = ColorBar(self.renderer, font_size=max(6, int(round(12 * self.scale))))
        self.colorbar.set_colormap(colormap_table(cmap))
        self.colorbar.set_range(spec.get("vmin", c - w / 2.0), spec.get("vmax", c + w / 2.0))
        self.colorbar.set_title(str(spec.get("title", "")))
        self.colorbar.set_visible(True)

    def render(self) -> RenderedView:
        """Draw (the whole window) and return this view's part of the picture and what was drawn."""
        rgb = self.offscreen.render()
        return self.describe(rgb)

    def viewport_rect(self, window_rgb_shape) -> tuple[int, int, int, int]:
        """(row0, row1, col0, col1) of this renderer's viewport in a picture of the whole window."""
        h, w = window_rgb_shape[:2]
        x0, y0, x1, y1 = self.renderer.GetViewport()
        c0, c1 = int(round(x0 * w)), int(round(x1 * w))
        r0, r1 = int(round((1 - y1) * h)), int(round((1 - y0) * h))
        return r0, r1, c0, c1

    def describe(self, window_rgb: np.ndarray) -> RenderedView:
        r0, r1, c0, c1 = self.viewport_rect(window_rgb.shape)
        rgb = np.ascontiguousarray(window_rgb[r0:r1, c0:c1])
        pipe, ov = self.pipeline, self.overlays
        vh = rgb.shape[0]
        box = None
        if ov.scale_bar_box is not None and self.options["scale_bar"]:
            x0, x1, y0, y1 = ov.scale_bar_box
            box = (x0, x1, vh - y1, vh - y0)
        return RenderedView(rgb=rgb, mm_per_pixel=pipe.mm_per_pixel() if pipe.volume is not None else 0.0,
                            scale_bar_mm=ov.scale_bar_mm if self.options["scale_bar"] else 0.0,
                            scale_bar_px=ov.scale_bar_px if self.options["scale_bar"] else 0.0,
                            scale_bar_box=box, texts=drawn_texts(self.renderer),
                            letters={k: ov.text(k) for k in ("left", "right", "top", "bottom")}
                            if self.options["letters"] else {},
                            slice_index=pipe.slice_index() if pipe.volume is not None else 0,
                            slice_count=pipe.slice_count() if pipe.volume is not None else 0,
                            annotation_labels=self._label_boxes(vh))

    def _label_boxes(self, vh: int) -> list[dict]:
        def flip(p):
            return (p[0], vh - p[1])

        out = []
        for d in self.layer.label_layout():
            x0, y0, x1, y1 = d["box"]
            out.append({"id": d["id"], "text": redact(d["text"], self.forbidden), "box": (x0, vh - y1, x1, vh - y0),
                        "anchor": flip(d["anchor"]),
                        "leader": None if d["leader"] is None else tuple(flip(p) for p in d["leader"])})
        return out

    def close(self) -> None:
        self.renderer.RemoveObserver(self._obs)
        self.layer.remove()
        if self.colorbar is not None:
            self.colorbar.remove()
        self.pipeline.close()
        if self.own:
            self.offscreen.close()


def render_view_info(volume, state: ViewState, width: int, height: int, *, labels: dict | None = None,
                     scale_bar: bool = True, letters: bool = True, colorbar=None, ruo: bool = True,
                     legend: Sequence[str] | None = None, scale: float = 1.0, forbidden: Sequence[str] = (),
                     corner_texts: bool = True) -> RenderedView:
    """`render_view` returning the picture with what was drawn (`RenderedView`)."""
    fig = FigureRenderer(width, height, scale=scale)
    try:
        fig.show(volume, state, labels=labels, scale_bar=scale_bar, letters=letters, colorbar=colorbar, ruo=ruo,
                 legend=legend, forbidden=forbidden, corner_texts=corner_texts)
        return fig.render()
    finally:
        fig.close()


def render_view(volume, state: ViewState, width: int, height: int, *, labels: dict | None = None,
                scale_bar: bool = True, letters: bool = True, colorbar=None, ruo: bool = True,
                legend: Sequence[str] | None = None, scale: float = 1.0, forbidden: Sequence[str] = (),
                corner_texts: bool = True) -> np.ndarray:
    """`volume` shown as `state` describes, rendered offscreen at `width`×`height` px → RGB uint8
    (height, width, 3), row 0 = top.

    labels      corner texts (override `state.labels`): "series" (top-left: e.g. "P-3F9A · day 90 ·
                T2 sag"), "slice", "window" (default: the pipeline's own slice and W/L texts)
    scale_bar   a scale bar of a round length in mm, drawn exactly that long
    letters     orientation letters on the edges
    colorbar    None/False, True (the overlay's colormap and window) or {"title", "colormap", "vmin", "vmax"}
    ruo         the "Research use only — not for diagnosis" mark
    legend      text lines at the top right, below the W/L text
    scale       multiplies fonts, line widths, markers and margins (3 for a 3× export of a view)
    forbidden   strings never drawn (replaced by "[removed]"): patient names, IDs, dates
    """
    return render_view_info(volume, state, width, height, labels=labels, scale_bar=scale_bar, letters=letters,
                            colorbar=colorbar, ruo=ruo, legend=legend, scale=scale, forbidden=forbidden,
                            corner_texts=corner_texts).rgb


# ---------------------------------------------------------------------------------------- 3-D views
@dataclass
class VolumeViewState:
    """What a 3-D view (`VolumePipeline`) shows, as plain data: preset, window (data units), opacity
    points, colour map, clip box (LPS mm) and the camera (position, focal point, view up, view angle,
    parallel projection and scale)."""

    preset: str = "MR soft tissue"
    window: tuple[float, float] | None = None
    opacity_points: tuple | None = None
    colormap: str | None = None
    clip_box: tuple | None = None
    camera: dict | None = None
    labels: dict = field(default_factory=dict)

    @classmethod
    def from_pipeline(cls, pipeline, *, labels: dict | None = None) -> "VolumeViewState":
        cam = pipeline.renderer.GetActiveCamera()
        return cls(preset=pipeline.preset.name, window=tuple(pipeline.window),
                   opacity_points=tuple(pipeline.opacity_points), colormap=pipeline.colormap,
                   clip_box=None if pipeline.clip_box is None else tuple(pipeline.clip_box),
                   camera=dict(position=cam.GetPosition(), focal_point=cam.GetFocalPoint(), view_up=cam.GetViewUp(),
                               view_angle=cam.GetViewAngle(), parallel=bool(cam.GetParallelProjection()),
                               parallel_scale=cam.GetParallelScale()),
                   labels=dict(labels or {}))


def render_volume_view_info(volume, state: VolumeViewState, width: int, height: int, *, labels: dict | None = None,
                            ruo: bool = True, letters: bool = True, scale: float = 1.0, forbidden: Sequence[str] = (),
                            mapper: str = "auto") -> RenderedView:
    """A 3-D view rendered offscreen at `width`×`height`: same camera (so the same framing whatever the
    size: VTK's view angle / parallel scale are relative to the picture height), preset, window and
    clip box; corner label, orientation letters of the screen axes and the research-use mark. A scale
    bar only in parallel projection (in perspective no single mm-per-pixel exists)."""
    from discviewer.display import orientation_letter
    from discviewer.render.volume_pipeline import VolumePipeline

    off = OffscreenRenderer(int(width), int(height))
    ren = off.renderer
    pipe = VolumePipeline(ren, mapper=mapper)
    ov = ScaledOverlays(ren, scale=scale)
    try:
        pipe.set_volume(volume, preset=state.preset)
        if state.window is not None:
            pipe.set_window(*state.window)
        if state.opacity_points:
            pipe.set_opacity_points(state.opacity_points)
        if state.colormap:
            pipe.set_colormap(state.colormap)
        pipe.set_clip_box(state.clip_box)
        pipe.set_interactive(False)
        cam = ren.GetActiveCamera()
        c = state.camera
        if c:
            cam.SetPosition(*c["position"])
            cam.SetFocalPoint(*c["focal_point"])
            cam.SetViewUp(*c["view_up"])
            cam.SetViewAngle(float(c.get("view_angle", 30.0)))
            cam.SetParallelProjection(bool(c.get("parallel", False)))
            cam.SetParallelScale(float(c.get("parallel_scale", 1.0)))
        ren.ResetCameraClippingRange()
        lab = dict(state.labels or {})
        lab.update(labels or {})
        ov.set_has_image(True)
        ov.set_text("series", str(lab.get("series", "") or ""))
        ov.set_text("slice", str(lab.get("slice", "") or ""))
        ov.set_text("window", str(lab.get("window", "") or ""))
        up = np.asarray(cam.GetViewUp(), float)
        dop = np.asarray(cam.GetDirectionOfProjection(), float)
        right = np.cross(dop, up)
        ov.set_letters({"left": orientation_letter(-right), "right": orientation_letter(right),
                        "top": orientation_letter(up), "bottom": orientation_letter(-up)})
        parallel = bool(cam.GetParallelProjection())
        mm_px = 2.0 * cam.GetParallelScale() / height if parallel else 0.0
        ov.layout(int(width), int(height), mm_px)
        for name in ("left", "right", "top", "bottom"):
            ov.texts[name].SetVisibility(bool(letters))
        ov.texts["scale"].SetVisibility(parallel)
        ov.scale_bar.SetVisibility(parallel)
        ov.texts["notice"].SetVisibility(bool(ruo))
        for name in ("series", "slice", "window"):
            ov.texts[name].SetVisibility(bool(ov.text(name)))
        _redact_renderer(ren, tuple(str(f) for f in forbidden if str(f).strip()))
        rgb = off.render()
        box = None
        if parallel and ov.scale_bar_box is not None:
            x0, x1, y0, y1 = ov.scale_bar_box
            box = (x0, x1, height - y1, height - y0)
        return RenderedView(rgb=rgb, mm_per_pixel=mm_px, scale_bar_mm=ov.scale_bar_mm if parallel else 0.0,
                            scale_bar_px=ov.scale_bar_px if parallel else 0.0, scale_bar_box=box,
                            texts=drawn_texts(ren),
                            letters={k: ov.text(k) for k in ("left", "right", "top", "bottom")} if letters else {})
    finally:
        ov.remove()
        pipe.close()
        off.close()


def sweep_states(volume, state: ViewState, *, step: int = 1, start: int | None = None,
                 stop: int | None = None) -> list[ViewState]:
    """One state per slice along the plane's normal (every `step`-th, `start`..`stop` inclusive),
    same zoom, pan and window — for a slice sweep."""
    probe = FigureRenderer(8, 8)
    try:
        probe.show(volume, state)
        n = probe.pipeline.slice_count()
        out = []
        a = 0 if start is None else max(0, int(start))
        b = n - 1 if stop is None else min(n - 1, int(stop))
        for k in range(a, b + 1, max(1, int(step))):
            probe.pipeline.set_slice(k)
            out.append(state.replace(point=_tuple(probe.pipeline.plane_origin())))
        return out
    finally:
        probe.close()


# ---------------------------------------------------------------------------------------- files
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(rgb: np.ndarray, *, dpi: float = 300.0, text: dict | None = None) -> bytes:
    """A PNG of an (h, w, 3) uint8 array (or (h, w) grey): IHDR, pHYs, iTXt per `text` item, IDAT, IEND."""
    a = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    if a.ndim == 2:
        color, h, w = 0, a.shape[0], a.shape[1]
        rows = a.reshape(h, w)
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        color = 2 if a.shape[2] == 3 else 6
        h, w = a.shape[:2]
        rows = a.reshape(h, -1)
    else:
        raise ValueError(f"expected (h, w), (h, w, 3) or (h, w, 4) uint8, got shape {a.shape}")
    raw = np.hstack([np.zeros((h, 1), np.uint8), rows]).tobytes()  # filter type 0 per row
    ppm = int(round(float(dpi) / 0.0254))
    out = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)),
           _png_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))]
    for k, v in (text or {}).items():
        key = str(k).encode("latin-1")[:79]
        out.append(_png_chunk(b"iTXt", key + b"\x00\x00\x00" + b"\x00" + b"\x00" + str(v).encode("utf-8")))
    out.append(_png_chunk(b"IDAT", zlib.compress(raw, 6)))
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


def tiff_bytes(rgb: np.ndarray, *, dpi: float = 300.0, software: str = "", description: str = "") -> bytes:
    """A little-endian baseline TIFF (RGB or grey, 8 bit, one deflate strip) with resolution tags,
    Software and (when given) ImageDescription — no date, artist or host tags."""
    a = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    if a.ndim == 2:
        spp = 1
    elif a.ndim == 3 and a.shape[2] == 3:
        spp = 3
    else:
        raise ValueError(f"expected (h, w) or (h, w, 3) uint8, got shape {a.shape}")
    h, w = a.shape[:2]
    data = zlib.compress(a.tobytes(), 6)

    def ascii_(s: str) -> bytes:
        return s.encode("ascii", "replace") + b"\x00"

    entries = []  # (tag, type, count, value bytes)
    SHORT, LONG, RATIONAL, ASCII = 3, 4, 5, 2
    entries.append((256, LONG, 1, struct.pack("<I", w)))
    entries.append((257, LONG, 1, struct.pack("<I", h)))
    entries.append((258, SHORT, spp, struct.pack("<" + "H" * spp, *([8] * spp))))
    entries.append((259, SHORT, 1, struct.pack("<H", 8)))  # Adobe deflate
    entries.append((262, SHORT, 1, struct.pack("<H", 2 if spp == 3 else 1)))
    if description:
        d = ascii_(description)
        entries.append((270, ASCII, len(d), d))
    entries.append((273, LONG, 1, b"STRIP"))  # strip offset, patched below
    entries.append((277, SHORT, 1, struct.pack("<H", spp)))
    entries.append((278, LONG, 1, struct.pack("<I", h)))
    entries.append((279, LONG, 1, struct.pack("<I", len(data))))
    res = (int(round(float(dpi) * 1000)), 1000)
    entries.append((282, RATIONAL, 1, struct.pack("<II", *res)))
    entries.append((283, RATIONAL, 1, struct.pack("<II", *res)))
    entries.append((284, SHORT, 1, struct.pack("<H", 1)))
    entries.append((296, SHORT, 1, struct.pack("<H", 2)))  # inch
    if software:
        s = ascii_(software)
        entries.append((305, ASCII, len(s), s))
    entries.sort(key=lambda e: e[0])
    ifd_offset = 8
    ifd_size = 2 + 12 * len(entries) + 4
    extra_offset = ifd_offset + ifd_size
    extra = b""
    strip_offset_pos = None
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if value == b"STRIP":
            strip_offset_pos = len(ifd)
            ifd += struct.pack("<HHI", tag, typ, count) + b"\x00\x00\x00\x00"
            continue
        if len(value) <= 4:
            ifd += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\x00")
        else:
            if (extra_offset + len(extra)) % 2:
                extra += b"\x00"
            ifd += struct.pack("<HHI", tag, typ, count) + struct.pack("<I", extra_offset + len(extra))
            extra += value
    ifd += struct.pack("<I", 0)
    if (extra_offset + len(extra)) % 2:
        extra += b"\x00"
    data_offset = extra_offset + len(extra)
    ifd = ifd[:strip_offset_pos + 8] + struct.pack("<I", data_offset) + ifd[strip_offset_pos + 12:]
    return b"II*\x00" + struct.pack("<I", ifd_offset) + ifd + extra + data


def save_image(path, rgb: np.ndarray, *, dpi: float = 300.0, metadata: dict | None = None,
               forbidden: Sequence[str] = ()) -> Path:
    """Write `rgb` as PNG (.png) or TIFF (.tif/.tiff) with only non-identifying metadata.

    Always written: the resolution (`dpi`) and Software = "discviewer <version> — research use
    only". `metadata` adds text items (PNG iTXt keys; in a TIFF they are joined into
    ImageDescription as "key: value" lines); a value containing one of `forbidden` (names, IDs,
    dates) raises ValueError rather than being written. Written to a temporary name and renamed."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{p.name}: an image is written as .png, .tif or .tiff")
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    for k, v in meta.items():
        for f in forbidden:
            f = str(f).strip()
            if len(f) >= 2 and (f.lower() in v.lower() or f.lower() in k.lower()):
                raise ValueError(f"metadata {k!r} contains identifying text; not written")
    if suffix == ".png":
        blob = png_bytes(rgb, dpi=dpi, text={"Software": SOFTWARE, **meta})
    else:
        desc = "\n".join(f"{k}: {v}" for k, v in meta.items())
        blob = tiff_bytes(rgb, dpi=dpi, software=SOFTWARE.replace("—", "-"), description=desc)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_bytes(blob)
    tmp.replace(p)
    return p


def write_sequence(frames: Sequence[np.ndarray], folder, prefix: str = "frame", *, dpi: float = 300.0,
                   metadata: dict | None = None, forbidden: Sequence[str] = ()) -> list[Path]:
    """Frames as numbered PNGs `<prefix>_000.png`, `<prefix>_001.png`, … in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digits = max(3, len(str(max(len(frames) - 1, 0))))
    return [save_image(folder / f"{prefix}_{i:0{digits}d}.png", f, dpi=dpi, metadata=metadata, forbidden=forbidden)
            for i, f in enumerate(frames)]


__all__ = ["ViewState", "RenderedView", "FigureRenderer", "render_view", "render_view_info", "sweep_states",
           "VolumeViewState", "render_volume_view_info",
           "save_image", "write_sequence", "png_bytes", "tiff_bytes", "drawn_texts", "redact", "SOFTWARE",
           "RESEARCH_USE_NOTICE"]

"""Screen-fixed 2-D overlays for a slice renderer: orientation letters, corner texts, scale bar, notice;
and `ColorBar`, a colour scale (vtkScalarBarActor) for a coloured overlay such as an R2* map.

Pure VTK (no Qt). Everything is laid out in *viewport pixels* by `SliceOverlays.layout()`, which the
owning pipeline calls at the start of every render (so resizing a window or changing the zoom needs
no extra bookkeeping). Text actors only re-rasterise when their text changes.

Layout (same as the pyqtgraph `SliceView`):
    top-left     series / visit label, then "Slice k/N"
    top-right    "W … L …" (+ "INV")
    edges        orientation letters (bold), centred on each edge
    bottom-left  scale bar with its length in mm
    bottom-right the permanent research-use notice
"""
from __future__ import annotations

import os

import numpy as np
from vtkmodules.vtkCommonCore import vtkLookupTable, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor
from vtkmodules.vtkRenderingCore import vtkActor2D, vtkCoordinate, vtkPolyDataMapper2D, vtkTextActor

from discviewer import RESEARCH_USE_NOTICE
from discviewer.display import format_number, scale_bar_length

TEXT_COLOR = (0.92, 0.92, 0.92)
NOTICE_COLOR = (1.0, 0.78, 0.31)
BACKING_OPACITY = 0.55


def _text(size: int, *, bold: bool = False, color=TEXT_COLOR, h: str = "left", v: str = "bottom") -> vtkTextActor:
    a = vtkTextActor()
    a.SetTextScaleModeToNone()
    a.GetPositionCoordinate().SetCoordinateSystemToViewport()
    p = a.GetTextProperty()
    p.SetFontSize(size)
    p.SetBold(bool(bold))
    p.SetColor(*color)
    p.SetBackgroundColor(0.0, 0.0, 0.0)
    p.SetBackgroundOpacity(BACKING_OPACITY)
    p.SetFrame(False)
    {"left": p.SetJustificationToLeft, "center": p.SetJustificationToCentered,
     "right": p.SetJustificationToRight}[h]()
    {"bottom": p.SetVerticalJustificationToBottom, "center": p.SetVerticalJustificationToCentered,
     "top": p.SetVerticalJustificationToTop}[v]()
    a.SetPickable(False)
    return a


class SliceOverlays:
    """The overlay actors of one slice renderer. `texts` maps a name to its vtkTextActor."""

    MARGIN = 6  # px between overlays and the viewport edge
    SCALE_FRACTION = 0.25  # the scale bar is at most this fraction of the viewport width

    def __init__(self, renderer, *, font_size: int = 13) -> None:
        self.renderer = renderer
        fs = font_size
        self.texts: dict[str, vtkTextActor] = {
            "series": _text(fs, h="left", v="top"),
            "slice": _text(fs, h="left", v="top"),
            "window": _text(fs, h="right", v="top"),
            "left": _text(fs + 3, bold=True, h="left", v="center"),
            "right": _text(fs + 3, bold=True, h="right", v="center"),
            "top": _text(fs + 3, bold=True, h="center", v="top"),
            "bottom": _text(fs + 3, bold=True, h="center", v="bottom"),
            "scale": _text(fs - 1, h="center", v="bottom"),
            "notice": _text(fs - 2, color=NOTICE_COLOR, h="right", v="bottom"),
        }
        self.texts["notice"].SetInput(RESEARCH_USE_NOTICE)
        for a in self.texts.values():
            renderer.AddViewProp(a)

        # scale bar: a polyline ⊔-shaped bar in viewport pixels
        self._bar_points = vtkPoints()
        self._bar_points.SetNumberOfPoints(4)
        for i in range(4):
            self._bar_points.SetPoint(i, 0.0, 0.0, 0.0)
        lines = vtkCellArray()
        lines.InsertNextCell(4)
        for i in range(4):
            lines.InsertCellPoint(i)
        self._bar_poly = vtkPolyData()
        self._bar_poly.SetPoints(self._bar_points)
        self._bar_poly.SetLines(lines)
        mapper = vtkPolyDataMapper2D()
        mapper.SetInputData(self._bar_poly)
        coord = vtkCoordinate()
        coord.SetCoordinateSystemToViewport()
        mapper.SetTransformCoordinate(coord)
        self.scale_bar = vtkActor2D()
        self.scale_bar.SetMapper(mapper)
        self.scale_bar.GetProperty().SetColor(*TEXT_COLOR)
        self.scale_bar.GetProperty().SetLineWidth(2)
        self.scale_bar.SetPickable(False)
        renderer.AddViewProp(self.scale_bar)
        self.scale_bar_mm = 0.0
        self.scale_bar_px = 0.0
        self._has_image = False

    # ------------------------------------------------------------------ content
    def set_text(self, name: str, text: str) -> None:
        a = self.texts[name]
        if a.GetInput() != text:
            a.SetInput(text)

    def text(self, name: str) -> str:
        return self.texts[name].GetInput() or ""

    def set_letters(self, letters: dict[str, str]) -> None:
        for edge in ("left", "right", "top", "bottom"):
            self.set_text(edge, letters.get(edge, ""))

    def set_has_image(self, has: bool) -> None:
        self._has_image = bool(has)
        for name in ("series", "slice", "window", "left", "right", "top", "bottom", "scale"):
            self.texts[name].SetVisibility(self._has_image)
        self.scale_bar.SetVisibility(self._has_image)

    def set_visible(self, visible: bool) -> None:
        """Show/hide everything except the research-use notice (which always stays)."""
        for name, a in self.texts.items():
            if name != "notice":
                a.SetVisibility(bool(visible) and self._has_image)
        self.scale_bar.SetVisibility(bool(visible) and self._has_image)

    # ------------------------------------------------------------------ layout
    def layout(self, width: int, height: int, mm_per_px: float) -> None:
        """Place every overlay for a viewport of `width`×`height` px showing `mm_per_px` mm per pixel."""
        m = self.MARGIN
        w, h = float(width), float(height)
        t = self.texts
        t["series"].SetPosition(m, h - m)
        fs = t["series"].GetTextProperty().GetFontSize()
        line = fs + 6
        t["slice"].SetPosition(m, h - m - (line if t["series"].GetInput() else 0))
        # narrow viewports (grids of visits): keep the corner texts and the top letter apart.
        # Widths are estimated (~0.6 em per character) so the layout needs no text rendering.
        series_w = 0.6 * fs * len(t["series"].GetInput() or "")
        window_w = 0.6 * fs * len(t["window"].GetInput() or "")
        window_row = 0 if series_w + window_w + 3 * m <= w else 1
        t["window"].SetPosition(w - m, h - m - window_row * line)
        crowded = series_w > w / 2 - fs or (window_row == 0 and window_w > w / 2 - fs)
        t["left"].SetPosition(m, h / 2)
        t["right"].SetPosition(w - m, h / 2)
        t["top"].SetPosition(w / 2, h - m - (2 * line if crowded else 0))
        t["bottom"].SetPosition(w / 2, m + line + 2)  # above the notice / scale-bar row
        # the research-use mark always stays readable: a shorter form when the view is narrow
        nfs = t["notice"].GetTextProperty().GetFontSize()
        notice = RESEARCH_USE_NOTICE if 0.6 * nfs * len(RESEARCH_USE_NOTICE) + 2 * m <= w else "Research use only"
        self.set_text("notice", notice)
        t["notice"].SetPosition(w - m, m)
        self._layout_scale_bar(w, h, mm_per_px)

    def _layout_scale_bar(self, w: float, h: float, mm_per_px: float) -> None:
        if not (mm_per_px > 0) or w <= 0:
            return
        length_mm = scale_bar_length(self.SCALE_FRACTION * w * mm_per_px)
        length_px = length_mm / mm_per_px
        x0 = self.MARGIN + 4.0
        y = self.MARGIN + 20.0
        pts = ((x0, y + 5), (x0, y), (x0 + length_px, y), (x0 + length_px, y + 5))
        for i, (x, yy) in enumerate(pts):
            self._bar_points.SetPoint(i, x, yy, 0.0)
        self._bar_points.Modified()
        self.set_text("scale", f"{format_number(length_mm)} mm")
        self.texts["scale"].SetPosition(x0 + length_px / 2.0, self.MARGIN)
        self.scale_bar_mm = length_mm
        self.scale_bar_px = length_px

    def remove(self) -> None:
        for a in self.texts.values():
            self.renderer.RemoveViewProp(a)
        self.renderer.RemoveViewProp(self.scale_bar)


_FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf",
               "/usr/share/fonts/TTF/DejaVuSans.ttf")


def unicode_font_file() -> str | None:
    """A TrueType font with the symbols used in titles and labels (², ³, ±, °, ⁻¹), or None (VTK's own)."""
    return next((p for p in _FONT_FILES if os.path.exists(p)), None)


def _use_font(prop, font_file: str | None) -> None:
    if font_file:
        prop.SetFontFamily(4)  # VTK_FONT_FILE
        prop.SetFontFile(font_file)


class ColorBar:
    """A vertical colour scale at the right edge of a renderer, for a coloured overlay.

        bar = ColorBar(renderer, title="R2* (s⁻¹)")
        bar.set_colormap(colormap_table("hot"))      # (n, 3) RGB in [0, 1]
        bar.set_range(0.0, 80.0)                      # the values at the bottom and the top
        bar.remove()

    Pure VTK; positions are fractions of the viewport, so it follows resizes by itself.
    """

    def __init__(self, renderer, *, title: str = "", table=None, vmin: float = 0.0, vmax: float = 1.0,
                 font_size: int = 12, labels: int = 5) -> None:
        self.renderer = renderer
        self.lut = vtkLookupTable()
        self.actor = vtkScalarBarActor()
        self.actor.SetLookupTable(self.lut)
        self.actor.SetOrientationToVertical()
        self.actor.SetNumberOfLabels(int(labels))
        self.actor.SetLabelFormat("%-#6.3g")
        # upper right, between the W/L text and the right orientation letter
        self.actor.SetPosition(0.86, 0.545)
        self.actor.SetWidth(0.11)
        self.actor.SetHeight(0.37)
        self.actor.SetBarRatio(0.3)
        self.actor.UnconstrainedFontSizeOn()
        self.actor.SetPickable(False)
        font = unicode_font_file()
        for prop in (self.actor.GetTitleTextProperty(), self.actor.GetLabelTextProperty()):
            _use_font(prop, font)
            prop.SetFontSize(font_size)
            prop.SetColor(*TEXT_COLOR)
            prop.SetShadow(False)
            prop.SetItalic(False)
            prop.SetBold(False)
        self.actor.GetTitleTextProperty().SetBold(True)
        self.actor.DrawBackgroundOn()  # readable over any image
        bg = self.actor.GetBackgroundProperty()
        bg.SetColor(0.0, 0.0, 0.0)
        bg.SetOpacity(BACKING_OPACITY)
        self.set_colormap(table if table is not None else np.column_stack([np.linspace(0, 1, 256)] * 3))
        self.set_range(vmin, vmax)
        self.set_title(title)
        renderer.AddViewProp(self.actor)

    def set_colormap(self, table) -> None:
        """(n, 3) RGB rows in [0, 1], bottom to top."""
        t = np.asarray(table, float)
        self.lut.SetNumberOfTableValues(len(t))
        for i, (r, g, b) in enumerate(t):
            self.lut.SetTableValue(i, float(r), float(g), float(b), 1.0)
        self.lut.Build()
        self.lut.Modified()

    def set_range(self, vmin: float, vmax: float) -> None:
        lo, hi = float(vmin), float(vmax)
        if not hi > lo:
            hi = lo + 1e-6
        self.lut.SetRange(lo, hi)
        self.lut.SetTableRange(lo, hi)
        self.lut.Modified()

    def range(self) -> tuple[float, float]:
        lo, hi = self.lut.GetRange()
        return float(lo), float(hi)

    def set_title(self, title: str) -> None:
        self.actor.SetTitle(str(title))

    def title(self) -> str:
        return self.actor.GetTitle() or ""

    def set_visible(self, visible: bool) -> None:
        self.actor.SetVisibility(bool(visible))

    def visible(self) -> bool:
        return bool(self.actor.GetVisibility())

    def remove(self) -> None:
        self.renderer.RemoveViewProp(self.actor)

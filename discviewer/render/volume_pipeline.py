"""`VolumePipeline`: 3-D rendering of a `Volume` into a given vtkRenderer, in patient space (LPS mm).

No Qt here; the widget is `discviewer.ui.volume_view.VolumeView`.

Geometry
--------
World coordinates are DICOM patient coordinates (LPS, mm). The affine (index → LPS) is split into
spacing (lengths of its columns), a rotation (the normalised columns) and the origin (first voxel
centre). `volume_to_image_data` builds a vtkImageData carrying all three (origin, spacing, direction
matrix) — exact, anisotropic voxels included. The ray casters are fed the same scalars with the
rotation and origin moved into the vtkVolume's user matrix instead, because
vtkFixedPointVolumeRayCastMapper (VTK 9.7) ignores an image's direction matrix (measured: the
volume is drawn off its bounds); the GPU mapper honours both, and both agree with the user matrix.
An affine with a negative determinant (left-handed index axes) is first made right-handed by
reversing the slice axis (same voxels, same LPS positions), so the matrix is a pure rotation.

Presets (data: `PRESETS`)
-------------------------
Windows come from percentiles of the volume, so a preset looks the same whatever the scanner gain.
Opacity points are (t, opacity) with t relative to the window: t = 0 at `lo`, 1 at `hi` —
`set_window` moves the whole ramp, `set_opacity_points` reshapes it.

* "MR soft tissue" — composite, warm colour map, unshaded (gradient shading of noisy MR turns every
  surface into gravel, and costs a gradient volume); window p20–p99.5 of the body voxels, opacity
  rising from 0 at the window's low end, so air, noise and dark tissue stay transparent.
* "MIP" — maximum intensity, grey; window p(5)–p(99.9) of the body voxels.
* "MinIP" — minimum intensity, grey; makes T2* iron voids (dark) visible. Air outside the body
  would otherwise be the minimum of every ray that touches it, so MinIP renders a masked copy:
  voxels outside a *body mask* are replaced by a fill value above the data and made fully
  transparent (rays through air alone show the background). The body mask (`body_mask`) is:
  3×3 in-plane box mean → threshold (a quarter of the Otsu threshold of the mean image, at least
  3× the mean of the darkest 10 % — below real tissue, above air noise) → per slice, keep
  the voxels that lie between the first and last foreground voxel both along their row and along
  their column. That fills enclosed dark structures — the iron void itself, cortical bone,
  ligaments — while air around the body stays outside. Window p(0.5)–p(60) of the body voxels.

Level of detail
---------------
Two mappers share the vtkVolume's property: the *full* one (full-resolution data, one ray per
pixel, half-voxel sample distance) and the *coarse* one (a strided copy, every 2nd voxel along
each axis that has ≥ `COARSE_MIN_DIM` voxels; one ray per `image_sample_distance` pixels, chosen
so the longer side of the viewport gets about `interactive_rays` (default 220: 3.6 pixels per ray
at 800², at least 2) — the CPU ray caster's cost is proportional to the rays, so the frame rate
holds whatever the window size; sample distance one coarse voxel). `set_interactive(True)` swaps
the coarse mapper in (cheap: each mapper keeps its own prepared data), `set_interactive(False)`
swaps the full one back. Automatic sample-distance adjustment is off so both states are
deterministic.

Mapper choice: `choose_mapper(render_window)` → "gpu" on a hardware GL, "cpu"
(vtkFixedPointVolumeRayCastMapper) on llvmpipe/softpipe/SWR/"Software" renderers or when the
renderer string cannot be read. vtkSmartVolumeMapper forced to CPU *is* the fixed-point mapper
plus an automatic resample, so we drive the fixed-point mapper directly (benchmarks/bench_volume.py
measures both).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import (
    vtkCellArray,
    vtkImageData,
    vtkPiecewiseFunction,
    vtkPlane,
    vtkPlaneCollection,
    vtkPolyData,
    vtkPolyLine,
)
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkColorTransferFunction,
    vtkCoordinate,
    vtkPolyDataMapper,
    vtkVolume,
    vtkVolumeProperty,
)
from vtkmodules.vtkRenderingVolume import vtkFixedPointVolumeRayCastMapper, vtkGPUVolumeRayCastMapper

import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (OpenGL overrides for the polydata mapper)
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (the OpenGL GPU ray caster)

from discviewer.render.gl_info import is_software_gl, renderer_string
from discviewer.volume import Volume

# ---------------------------------------------------------------------------------------- data
COLORMAPS: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    # (t in window, r, g, b)
    "gray": ((0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0)),
    "mr": ((0.0, 0.45, 0.22, 0.15), (0.4, 0.85, 0.55, 0.42), (0.75, 1.0, 0.88, 0.75), (1.0, 1.0, 1.0, 1.0)),
    "bone": ((0.0, 0.0, 0.0, 0.0), (0.375, 0.32, 0.32, 0.45), (0.75, 0.65, 0.78, 0.78), (1.0, 1.0, 1.0, 1.0)),
    "hot": ((0.0, 0.0, 0.0, 0.0), (0.4, 0.9, 0.0, 0.0), (0.8, 1.0, 0.9, 0.0), (1.0, 1.0, 1.0, 1.0)),
}


@dataclass(frozen=True)
class VolumePreset:
    """A rendering preset. Percentiles are of the whole volume (`region="all"`) or the body mask."""

    name: str
    blend: str  # "composite" | "mip" | "minip"
    window_percentiles: tuple[float, float]
    opacity_points: tuple[tuple[float, float], ...]  # (t in window, opacity)
    colormap: str = "gray"
    region: str = "all"  # "all" | "body"
    shade: bool = False
    body_masked: bool = False  # render the body-masked copy (air transparent)


PRESETS: dict[str, VolumePreset] = {p.name: p for p in (
    VolumePreset("MR soft tissue", "composite", (20.0, 99.5),
                 ((0.0, 0.0), (0.3, 0.05), (0.7, 0.35), (1.0, 0.8)), colormap="mr", region="body"),
    VolumePreset("MIP", "mip", (5.0, 99.9), ((0.0, 0.0), (0.15, 1.0), (1.0, 1.0)), colormap="gray",
                 region="body"),
    VolumePreset("MinIP", "minip", (0.5, 60.0), ((0.0, 1.0), (1.0, 1.0)), colormap="gray", region="body",
                 body_masked=True),
)}
DEFAULT_PRESET = "MR soft tissue"

COARSE_MIN_DIM = 64  # axes with fewer voxels are not downsampled for the interactive copy
PERCENTILE_SAMPLES = 2_000_000  # percentiles from at most this many voxels (strided)

# camera views: name → (direction from focal point to camera, view-up), LPS
VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "left": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),  # from the patient's left: anterior on screen left
    "right": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "anterior": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "posterior": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "superior": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
    "inferior": ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),
}
# plane outline colours by the patient axis closest to the plane normal (3D Slicer's convention)
PLANE_COLORS = {0: (0.93, 0.84, 0.27), 1: (0.43, 0.69, 0.38), 2: (0.95, 0.33, 0.31)}  # sag, cor, axial


# ------------------------------------------------------------------------------------ geometry
def right_handed(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """(array, affine) with the slice axis reversed if the affine is left-handed (same LPS voxels)."""
    arr, aff = volume.array, np.asarray(volume.affine, dtype=np.float64)
    if np.linalg.det(aff[:3, :3]) < 0:
        n = arr.shape[0]
        aff = aff.copy()
        aff[:3, 3] = aff[:3, 3] + (n - 1) * aff[:3, 2]
        aff[:3, 2] = -aff[:3, 2]
        arr = arr[::-1]
    return arr, aff


def _split_affine(aff: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    direction = aff[:3, :3] / spacing
    return spacing, direction, aff[:3, 3].copy()


def _vtk_scalars_array(arr: np.ndarray) -> np.ndarray:
    if arr.dtype not in (np.uint8, np.int8, np.uint16, np.int16, np.float32):
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)


def _image(arr: np.ndarray, spacing, origin=(0.0, 0.0, 0.0), direction=None) -> vtkImageData:
    """vtkImageData over `arr` (slices, rows, columns) → VTK (x = column, y = row, z = slice)."""
    arr = _vtk_scalars_array(arr)
    img = vtkImageData()
    img.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    img.SetSpacing(*[float(s) for s in spacing])
    img.SetOrigin(*[float(o) for o in origin])
    if direction is not None:
        img.SetDirectionMatrix([float(v) for v in np.asarray(direction).ravel()])
    scalars = numpy_to_vtk(arr.ravel(), deep=False)
    scalars.SetName("scalars")
    img.GetPointData().SetScalars(scalars)
    img._numpy_keepalive = arr  # numpy_to_vtk(deep=False) shares memory: keep it alive with the image
    return img


def volume_to_image_data(volume: Volume) -> vtkImageData:
    """vtkImageData with origin, spacing and direction matrix from the affine: its points are at the
    voxel centres in LPS mm (for consumers honouring the direction matrix; the ray casters use the
    same data with a user matrix, see the module docstring)."""
    arr, aff = right_handed(volume)
    spacing, direction, origin = _split_affine(aff)
    return _image(arr, spacing, origin, direction)


def _matrix(direction: np.ndarray, origin: np.ndarray) -> vtkMatrix4x4:
    m = vtkMatrix4x4()
    for i in range(3):
        for j in range(3):
            m.SetElement(i, j, float(direction[i, j]))
        m.SetElement(i, 3, float(origin[i]))
    return m


def coarse_factors(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Stride per array axis (slices, rows, columns) of the interactive copy."""
    return tuple(2 if n >= COARSE_MIN_DIM else 1 for n in shape)  # type: ignore[return-value]


def body_mask(arr: np.ndarray) -> np.ndarray:
    """Boolean mask (same shape) of the body: see the module docstring (MinIP)."""
    a = arr.astype(np.float32, copy=False)
    pad = np.pad(a, ((0, 0), (1, 1), (1, 1)), mode="edge")
    sm = np.zeros(a.shape, np.float32)
    for dr in range(3):
        for dc in range(3):
            sm += pad[:, dr:dr + a.shape[1], dc:dc + a.shape[2]]
    sm /= 9.0
    sample = sm.ravel()[:: max(1, sm.size // PERCENTILE_SAMPLES)]
    dark = np.sort(sample)[: max(1, sample.size // 10)].mean()
    thr = max(0.25 * _otsu(sample), 3.0 * float(dark))
    fg = sm > thr
    del sm, pad
    idx_c = np.arange(a.shape[2])
    idx_r = np.arange(a.shape[1])
    # along rows (over columns): between first and last foreground column
    any_r = fg.any(axis=2)
    first_c = np.where(any_r, fg.argmax(axis=2), a.shape[2])
    last_c = np.where(any_r, a.shape[2] - 1 - fg[:, :, ::-1].argmax(axis=2), -1)
    span_r = (idx_c[None, None, :] >= first_c[..., None]) & (idx_c[None, None, :] <= last_c[..., None])
    any_c = fg.any(axis=1)
    first_r = np.where(any_c, fg.argmax(axis=1), a.shape[1])
    last_r = np.where(any_c, a.shape[1] - 1 - fg[:, ::-1, :].argmax(axis=1), -1)
    span_c = (idx_r[None, :, None] >= first_r[:, None, :]) & (idx_r[None, :, None] <= last_r[:, None, :])
    return span_r & span_c


def _otsu(x: np.ndarray, bins: int = 256) -> float:
    hist, edges = np.histogram(x, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m = np.cumsum(hist * centres)
    mu0 = m / np.maximum(w0, 1)
    mu1 = (m[-1] - m) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between))])


def world_to_display(renderer, point) -> tuple[float, float]:
    """Display (pixel) coordinates of a world (LPS) point; origin bottom-left, as VTK."""
    c = vtkCoordinate()
    c.SetCoordinateSystemToWorld()
    c.SetValue(*[float(v) for v in point])
    x, y = c.GetComputedDoubleDisplayValue(renderer)
    return float(x), float(y)


def choose_mapper(render_window) -> str:
    """"gpu" for a hardware OpenGL renderer, "cpu" for a software one (or an unreadable string)."""
    text = renderer_string(render_window, initialize=True)
    if not text or is_software_gl(text):
        return "cpu"
    return "gpu"


def _new_mapper(kind: str):
    if kind == "gpu":
        m = vtkGPUVolumeRayCastMapper()
    elif kind == "cpu":
        m = vtkFixedPointVolumeRayCastMapper()
    else:
        raise ValueError(f"mapper kind must be 'gpu' or 'cpu', got {kind!r}")
    m.SetAutoAdjustSampleDistances(0)
    return m


# ------------------------------------------------------------------------------------ pipeline
@dataclass
class _Data:
    """Prepared inputs of one volume: raw and body-masked, full and coarse (vtkImageData, local space)."""

    spacing: np.ndarray
    direction: np.ndarray
    origin: np.ndarray
    shape: tuple[int, int, int]
    full: vtkImageData
    coarse: vtkImageData
    arr: np.ndarray
    coarse_arr: np.ndarray
    percentiles: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    coarse_mask: np.ndarray | None = None
    masked_full: vtkImageData | None = None
    masked_coarse: vtkImageData | None = None
    fill_value: float = 0.0


class VolumePipeline:
    """Volume rendering of one `Volume` into `renderer` (world = LPS mm). No Qt; call Render yourself."""

    def __init__(self, renderer, mapper: str = "auto", *, interactive_rays: int = 220,
                 interactive_image_sample_distance: float | None = None, full_sample_fraction: float = 0.5) -> None:
        """`mapper`: "auto" (by the GL renderer string at `set_volume`), "cpu" or "gpu".
        `interactive_image_sample_distance` fixes the coarse level's pixels per ray (default: from
        `interactive_rays` and the viewport size); `full_sample_fraction`: full-quality sample distance
        along the ray as a fraction of the smallest voxel size."""
        self.renderer = renderer
        self._mapper_request = mapper
        self.mapper_kind: str | None = None
        self.interactive_rays = int(interactive_rays)
        self.interactive_image_sample_distance = interactive_image_sample_distance
        self.full_sample_fraction = float(full_sample_fraction)
        self.volume: Volume | None = None
        self._data: _Data | None = None
        self._interactive = False
        self.preset: VolumePreset = PRESETS[DEFAULT_PRESET]
        self.window: tuple[float, float] = (0.0, 1.0)
        self.opacity_points: tuple[tuple[float, float], ...] = self.preset.opacity_points
        self.colormap = self.preset.colormap
        self.clip_box: tuple[float, ...] | None = None
        self.plane_point: tuple[float, float, float] | None = None

        self.prop = vtkVolumeProperty()
        self.prop.SetInterpolationTypeToLinear()
        self.prop.SetAmbient(0.35)
        self.prop.SetDiffuse(0.75)
        self.prop.SetSpecular(0.15)
        self.prop.SetSpecularPower(12.0)
        self.color_tf = vtkColorTransferFunction()
        self.opacity_tf = vtkPiecewiseFunction()
        self.prop.SetColor(self.color_tf)
        self.prop.SetScalarOpacity(self.opacity_tf)
        self.actor = vtkVolume()
        self.actor.SetProperty(self.prop)
        self.full_mapper = None
        self.coarse_mapper = None
        self._clip_planes = vtkPlaneCollection()

        self.outline_actor = self._line_actor((0.55, 0.55, 0.6), 1.0)
        self.clip_outline_actor = self._line_actor((0.3, 0.8, 1.0), 1.5)
        self.plane_actors = [self._line_actor(PLANE_COLORS[a], 2.0) for a in range(3)]
        for a in (self.outline_actor, self.clip_outline_actor, *self.plane_actors):
            a.SetVisibility(False)

    # ------------------------------------------------------------------------------ set-up
    @staticmethod
    def _line_actor(color, width) -> vtkActor:
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(vtkPolyData())
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*color)
        actor.GetProperty().SetLineWidth(width)
        actor.GetProperty().LightingOff()
        actor.PickableOff()
        return actor

    def _resolve_mapper_kind(self) -> str:
        if self._mapper_request in ("gpu", "cpu"):
            return self._mapper_request
        rw = self.renderer.GetRenderWindow()
        return choose_mapper(rw) if rw is not None else "cpu"

    def set_mapper_kind(self, kind: str) -> None:
        """Force "gpu" / "cpu" (or "auto": by the GL renderer string) and rebuild the mappers."""
        self._mapper_request = kind
        if self._data is not None:
            self._build_mappers()

    def set_volume(self, volume: Volume | None, *, preset: str | None = None, reset_camera: bool = True) -> None:
        """Show `volume` (None clears). Applies `preset` (default: the current one) from its percentiles."""
        self.volume = volume
        if volume is None:
            self._data = None
            for a in (self.actor, self.outline_actor, self.clip_outline_actor, *self.plane_actors):
                self.renderer.RemoveViewProp(a)
            return
        arr, aff = right_handed(volume)
        arr = _vtk_scalars_array(arr)
        spacing, direction, origin = _split_affine(aff)
        f = coarse_factors(arr.shape)
        coarse = np.ascontiguousarray(arr[:: f[0], :: f[1], :: f[2]])
        self._data = _Data(spacing=spacing, direction=direction, origin=origin, shape=tuple(arr.shape),
                           full=_image(arr, spacing), coarse=_image(coarse, spacing * np.array(f[::-1])),
                           arr=arr, coarse_arr=coarse)
        self.actor.SetUserMatrix(_matrix(direction, origin))
        self.prop.SetScalarOpacityUnitDistance(float(spacing.min()))
        self._build_mappers()
        self._update_outline()
        for a in (self.actor, self.outline_actor, self.clip_outline_actor, *self.plane_actors):
            if not self.renderer.HasViewProp(a):
                self.renderer.AddViewProp(a)
        self.outline_actor.SetVisibility(True)
        self.set_preset(preset or self.preset.name)
        self.set_clip_box(self.clip_box if self.clip_box is not None and self._box_overlaps(self.clip_box) else None)
        if self.plane_point is not None:
            self.set_planes(self.plane_point)
        if reset_camera:
            self.reset_camera()

    def _build_mappers(self) -> None:
        d = self._data
        self.mapper_kind = self._resolve_mapper_kind()
        self.full_mapper = _new_mapper(self.mapper_kind)
        self.coarse_mapper = _new_mapper(self.mapper_kind)
        smin = float(d.spacing.min())
        self.full_mapper.SetSampleDistance(smin * self.full_sample_fraction)
        self.full_mapper.SetImageSampleDistance(1.0)
        cmin = float(min(d.coarse.GetSpacing()))
        self.coarse_mapper.SetSampleDistance(cmin)
        self.coarse_mapper.SetImageSampleDistance(self._interactive_isd())
        for m in (self.full_mapper, self.coarse_mapper):
            m.SetClippingPlanes(self._clip_planes)
        self._apply_inputs()
        self._apply_blend()
        self.actor.SetMapper(self.coarse_mapper if self._interactive else self.full_mapper)

    def _apply_inputs(self) -> None:
        d = self._data
        if d is None or self.full_mapper is None:
            return
        if self.preset.body_masked:
            self._ensure_masked()
            full, coarse = d.masked_full, d.masked_coarse
        else:
            full, coarse = d.full, d.coarse
        if self.full_mapper.GetInput() is not full:
            self.full_mapper.SetInputData(full)
        if self.coarse_mapper.GetInput() is not coarse:
            self.coarse_mapper.SetInputData(coarse)

    def _apply_blend(self) -> None:
        for m in (self.full_mapper, self.coarse_mapper):
            if m is None:
                continue
            {"composite": m.SetBlendModeToComposite, "mip": m.SetBlendModeToMaximumIntensity,
             "minip": m.SetBlendModeToMinimumIntensity}[self.preset.blend]()

    def _ensure_mask(self, coarse: bool = False) -> np.ndarray:
        d = self._data
        if coarse:
            if d.coarse_mask is None:
                d.coarse_mask = body_mask(d.coarse_arr)
            return d.coarse_mask
        if d.mask is None:
            d.mask = body_mask(d.arr)
        return d.mask

    def _ensure_masked(self) -> None:
        d = self._data
        if d.masked_full is not None:
            return
        mask = self._ensure_mask()
        hi = float(d.arr.max())
        arr = d.arr
        fill = hi + 1.0
        if np.issubdtype(arr.dtype, np.integer) and fill > np.iinfo(arr.dtype).max:
            arr = arr.astype(np.float32)
        masked = np.where(mask, arr, np.asarray(fill).astype(arr.dtype))
        d.fill_value = fill
        f = coarse_factors(d.shape)
        d.masked_full = _image(masked, d.spacing)
        d.masked_coarse = _image(np.ascontiguousarray(masked[:: f[0], :: f[1], :: f[2]]),
                                 d.spacing * np.array(f[::-1]))

    def percentile(self, q: float, region: str = "all") -> float:
        """Percentile of the volume ("all") or of the body-mask voxels ("body", from the coarse copy); cached."""
        d = self._data
        key = (float(q), region)
        if key not in d.percentiles:
            if region == "body":
                vals = d.coarse_arr[self._ensure_mask(coarse=True)]
            else:
                vals = d.arr.ravel()
            vals = vals[:: max(1, vals.size // PERCENTILE_SAMPLES)]
            d.percentiles[key] = float(np.percentile(vals, q)) if vals.size else 0.0
        return d.percentiles[key]

    # ------------------------------------------------------------------------ transfer functions
    def set_preset(self, name: str) -> None:
        """Apply a preset from `PRESETS`: blend mode, percentile window, opacity points, colour map, shading."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        self.preset = PRESETS[name]
        self.opacity_points = self.preset.opacity_points
        self.colormap = self.preset.colormap
        self.prop.SetShade(1 if self.preset.shade else 0)
        if self._data is None:
            return
        self._apply_inputs()
        self._apply_blend()
        lo, hi = (self.percentile(q, self.preset.region) for q in self.preset.window_percentiles)
        if hi <= lo:
            hi = lo + 1.0
        self.set_window(lo, hi)

    def set_window(self, lo: float, hi: float) -> None:
        """Map data values [lo, hi] onto the colour map and the opacity points (data units)."""
        lo, hi = float(lo), float(hi)
        if hi <= lo:
            hi = lo + 1e-3
        self.window = (lo, hi)
        self._update_tf()

    def set_opacity_points(self, points) -> None:
        """Opacity as (t, opacity) pairs, t relative to the window (0 = lo, 1 = hi; may exceed [0, 1])."""
        pts = tuple(sorted((float(t), float(np.clip(o, 0.0, 1.0))) for t, o in points))
        if not pts:
            raise ValueError("need at least one opacity point")
        self.opacity_points = pts
        self._update_tf()

    def set_colormap(self, name: str) -> None:
        if name not in COLORMAPS:
            raise KeyError(f"unknown colour map {name!r}; known: {sorted(COLORMAPS)}")
        self.colormap = name
        self._update_tf()

    def _update_tf(self) -> None:
        lo, hi = self.window
        span = hi - lo
        self.color_tf.RemoveAllPoints()
        for t, r, g, b in COLORMAPS[self.colormap]:
            self.color_tf.AddRGBPoint(lo + t * span, r, g, b)
        self.color_tf.ClampingOn()
        self.opacity_tf.RemoveAllPoints()
        for t, o in self.opacity_points:
            self.opacity_tf.AddPoint(lo + t * span, o)
        self.opacity_tf.ClampingOn()
        d = self._data
        if self.preset.body_masked and d is not None and d.masked_full is not None:
            # the fill value (outside the body) is transparent; everything below keeps its opacity
            fill = d.fill_value
            last_t, last_o = self.opacity_points[-1]
            if fill - 0.5 > lo + last_t * span:
                self.opacity_tf.AddPoint(fill - 0.5, last_o)
            self.opacity_tf.AddPoint(fill, 0.0)

    # ------------------------------------------------------------------------------- clip box
    def _box_overlaps(self, box) -> bool:
        b = self.bounds()
        return b is not None and all(box[2 * i] < b[2 * i + 1] and box[2 * i + 1] > b[2 * i] for i in range(3))

    def set_clip_box(self, bounds_lps=None) -> None:
        """Show only (xmin, xmax, ymin, ymax, zmin, zmax) in LPS mm (six clipping planes); None = all."""
        self._clip_planes.RemoveAllItems()
        if bounds_lps is None:
            self.clip_box = None
            self.clip_outline_actor.SetVisibility(False)
        else:
            b = tuple(float(v) for v in bounds_lps)
            if len(b) != 6 or any(b[2 * i] >= b[2 * i + 1] for i in range(3)):
                raise ValueError(f"clip box must be (xmin, xmax, ymin, ymax, zmin, zmax), got {bounds_lps!r}")
            self.clip_box = b
            for axis in range(3):
                for side, sign in ((0, 1.0), (1, -1.0)):
                    p = vtkPlane()
                    origin = [0.0, 0.0, 0.0]
                    origin[axis] = b[2 * axis + side]
                    normal = [0.0, 0.0, 0.0]
                    normal[axis] = sign  # the kept side is where the normal points
                    p.SetOrigin(origin)
                    p.SetNormal(normal)
                    self._clip_planes.AddItem(p)
            lo = np.array(b[0::2])
            hi = np.array(b[1::2])
            corners = np.array([[hi[0] if i & 1 else lo[0], hi[1] if i & 2 else lo[1], hi[2] if i & 4 else lo[2]]
                                for i in range(8)])
            self._set_lines(self.clip_outline_actor, corners, _BOX_EDGES)
            self.clip_outline_actor.SetVisibility(True)
        for m in (self.full_mapper, self.coarse_mapper):
            if m is not None:
                m.SetClippingPlanes(self._clip_planes)
                m.Modified()

    def bounds(self) -> tuple[float, ...] | None:
        """Axis-aligned LPS bounds of the voxel centres (xmin, xmax, ymin, ymax, zmin, zmax)."""
        if self._data is None:
            return None
        c = self._index_corners()
        return tuple(float(v) for pair in zip(c.min(axis=0), c.max(axis=0)) for v in pair)

    def centre(self) -> np.ndarray | None:
        c = self._index_corners() if self._data is not None else None
        return None if c is None else c.mean(axis=0)

    def _index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        d = self._data
        return (np.asarray(ijk, dtype=np.float64) * d.spacing) @ d.direction.T + d.origin

    def _index_corners(self) -> np.ndarray:
        ns, nr, nc = self._data.shape
        ext = np.array([nc - 1, nr - 1, ns - 1], dtype=np.float64)
        ijk = np.array([[ext[0] if i & 1 else 0, ext[1] if i & 2 else 0, ext[2] if i & 4 else 0] for i in range(8)])
        return self._index_to_lps(ijk)

    # ------------------------------------------------------------------------- outline, planes
    @staticmethod
    def _set_lines(actor, points: np.ndarray, polylines) -> None:
        pts = vtkPoints()
        for p in points:
            pts.InsertNextPoint(*[float(v) for v in p])
        cells = vtkCellArray()
        for line in polylines:
            pl = vtkPolyLine()
            pl.GetPointIds().SetNumberOfIds(len(line))
            for i, pid in enumerate(line):
                pl.GetPointIds().SetId(i, pid)
            cells.InsertNextCell(pl)
        poly = vtkPolyData()
        poly.SetPoints(pts)
        poly.SetLines(cells)
        actor.GetMapper().SetInputData(poly)

    def _update_outline(self) -> None:
        self._set_lines(self.outline_actor, self._index_corners(), _BOX_EDGES)

    def set_planes(self, point_lps=None) -> None:
        """Outline the three index planes (slice, row and column planes) through `point_lps`; None hides."""
        if point_lps is None or self._data is None:
            self.plane_point = None if point_lps is None else tuple(float(v) for v in point_lps)
            for a in self.plane_actors:
                a.SetVisibility(False)
            return
        self.plane_point = tuple(float(v) for v in point_lps)
        d = self._data
        ns, nr, nc = d.shape
        ext = np.array([nc - 1, nr - 1, ns - 1], dtype=np.float64)
        ijk = np.linalg.solve(d.direction * d.spacing, np.asarray(self.plane_point) - d.origin)
        ijk = np.clip(ijk, 0.0, ext)
        for axis, actor in enumerate(self.plane_actors):
            u, v = [a for a in range(3) if a != axis]
            corners = []
            for cu, cv in ((0, 0), (1, 0), (1, 1), (0, 1)):
                q = np.zeros(3)
                q[axis] = ijk[axis]
                q[u] = ext[u] * cu
                q[v] = ext[v] * cv
                corners.append(q)
            pts = self._index_to_lps(np.array(corners))
            self._set_lines(actor, pts, [(0, 1, 2, 3, 0)])
            normal = d.direction[:, axis]
            actor.GetProperty().SetColor(*PLANE_COLORS[int(np.argmax(np.abs(normal)))])
            actor.SetVisibility(True)

    def plane_colors(self) -> list[tuple[float, float, float]]:
        return [tuple(a.GetProperty().GetColor()) for a in self.plane_actors]

    # --------------------------------------------------------------------------------- LOD
    @property
    def interactive(self) -> bool:
        return self._interactive

    def _interactive_isd(self) -> float:
        if self.interactive_image_sample_distance is not None:
            return float(self.interactive_image_sample_distance)
        w, h = self.renderer.GetSize()
        return max(2.0, max(w, h) / max(1, self.interactive_rays))

    def set_interactive(self, flag: bool) -> None:
        """True: render the coarse copy with fewer rays (while dragging); False: full quality."""
        self._interactive = bool(flag)
        if self.full_mapper is not None:
            if self._interactive:
                self.coarse_mapper.SetImageSampleDistance(self._interactive_isd())
            self.actor.SetMapper(self.coarse_mapper if self._interactive else self.full_mapper)

    @property
    def active_mapper(self):
        return self.actor.GetMapper()

    @property
    def active_input(self) -> vtkImageData | None:
        m = self.actor.GetMapper()
        return None if m is None else m.GetInput()

    # ------------------------------------------------------------------------------ camera
    def reset_camera(self, view: str = "left") -> None:
        """Look at the whole volume from `view` (see `VIEWS`; "left" = lateral, anterior on screen left)."""
        if self._data is None:
            return
        direction, up = VIEWS[view]
        cam = self.renderer.GetActiveCamera()
        c = self.centre()
        cam.SetFocalPoint(*c)
        cam.SetPosition(*(c + 1000.0 * np.asarray(direction)))
        cam.SetViewUp(*up)
        cam.ParallelProjectionOff()
        self.renderer.ResetCamera(*self.bounds())
        self.renderer.ResetCameraClippingRange()

    def close(self) -> None:
        """Remove everything this pipeline added to the renderer."""
        self.set_volume(None)


_BOX_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]

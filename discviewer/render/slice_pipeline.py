"""`SlicePipeline`: one plane (sagittal / coronal / axial) of a `Volume` in a vtkRenderer — MPR, no Qt.

Geometry
--------
The volume's voxels go to VTK in *index space* (origin 0, spacing 1, identity direction) and a
vtkImageReslice maps the output plane to it with `ResliceAxes = inverse(affine) · P`, where `P` maps
plane coordinates (u, v, w in mm) to patient LPS: ``LPS = O + u·R + v·U + w·N`` (R = screen-right,
U = screen-up, N = R × U towards the viewer, O = the volume centre). That is exact for any affine
(oblique, anisotropic, left-handed, even sheared) — the same geometry a direction matrix would carry,
without depending on how each VTK filter honours vtkImageData's direction.

The plane frame is aligned to the *acquisition*: R, U and N are the volume's own (orthonormalised)
axes, chosen and signed to be closest to the radiological convention of the requested plane:

    ax   R = patient Left  (R on screen-left),  U = Anterior   (viewed from the feet)
    cor  R = patient Left  (R on screen-left),  U = Superior
    sag  R = Posterior     (A on screen-left),  U = Superior

So the native plane of a slightly oblique acquisition shows the acquired slices exactly, and the other
planes are true reformats along the acquisition's axes (as most PACS MPRs do). The output grid has the
volume's own spacing along R and U and is centred on voxels, so nothing is resampled in-plane for an
aligned plane and a reformat of 4 mm sagittal slices to axial shows 4 mm-wide pixels, never squashed.
The plane position is snapped to voxel centres along N (`slice_index()` of `slice_count()`).

Renderer world coordinates are the plane coordinates (u, v) — x right, y up, in mm — and the camera is
parallel (`ParallelScale` = half the viewport height in mm), so the physical aspect is always kept.

Overlay layer
-------------
`set_overlay(volume)` shows a second image (e.g. a follow-up resampled onto the baseline's grid) over
the base image, cut by the same plane, through its own colormap ("hot", "green", "magenta", "gray"),
window and opacity (plain alpha blending: shown = a·colormap(overlay) + (1 − a)·base). An overlay on
the base's own grid (same shape and affine, e.g. from `discviewer.reslice.resample_volume`) uses the
same fast path as the base (same slice of the same index space, same placement matrix). Any other
overlay — other grid, other orientation, other field of view — is resampled by its own
vtkImageReslice onto the base plane's pixel grid (exact for any affine; outside its volume it is
transparent). It sits `OVERLAY_LIFT` mm in front of the base plane so the two never z-fight, and it
follows set_point / step / set_plane / zoom / interpolation like the base.

Display coordinates used here (`display_to_patient`, `zoom(center=…)`, `pan`) are VTK's: pixels from the
bottom-left corner of the render window.
"""
from __future__ import annotations

import math

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonCore import vtkLookupTable, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkImagingCore import vtkImageReslice
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkImageProperty,
    vtkImageSlice,
    vtkImageSliceMapper,
    vtkPolyDataMapper,
)
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text rendering for the overlays)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (OpenGL overrides: mappers, render windows)

from discviewer.display import auto_window, data_range, format_number, orientation_letter
from discviewer.render.overlays import SliceOverlays

PLANES = ("sag", "cor", "ax")
PLANE_NAMES = {"sag": "sagittal", "cor": "coronal", "ax": "axial"}
# (screen-right, screen-up) targets in LPS; the normal towards the viewer is right × up
PLANE_TARGETS = {
    "ax": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "cor": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "sag": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
}
_ALIASES = {"sagittal": "sag", "coronal": "cor", "axial": "ax", "transverse": "ax", "tra": "ax"}
CAMERA_DISTANCE = 1000.0  # mm from the plane; clipping range is fixed around it
OVERLAY_LIFT = 0.05  # mm the overlay layer sits in front of the base plane (towards the camera)
OVERLAY_COLORMAPS = ("hot", "green", "magenta", "gray")


def normalize_plane(plane: str) -> str:
    p = _ALIASES.get(str(plane).lower(), str(plane).lower())
    if p not in PLANES:
        raise ValueError(f"plane must be one of {PLANES} (or sagittal/coronal/axial), got {plane!r}")
    return p


def volume_basis(affine) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal frame of a volume: (3×3 matrix whose columns e0, e1, e2 follow the column, row and
    slice axes; per-axis spacing along them in mm). e2 is the slice-plane normal, signed like the slice step."""
    a = np.asarray(affine, dtype=np.float64)[:3, :3]
    c0, c1, c2 = a[:, 0], a[:, 1], a[:, 2]
    e0 = c0 / np.linalg.norm(c0)
    e1 = c1 - (c1 @ e0) * e0
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e0, e1)
    if c2 @ e2 < 0:
        e2 = -e2
    spacing = np.array([abs(c0 @ e0), abs(c1 @ e1), abs(c2 @ e2)])
    return np.column_stack([e0, e1, e2]), spacing


def plane_frame(affine, plane: str):
    """(R, U, N, axes) for `plane` of a volume: unit vectors in LPS and the volume axis (0 column,
    1 row, 2 slice) each of R, U and N follows."""
    basis, _ = volume_basis(affine)
    r_t, u_t = (np.asarray(v) for v in PLANE_TARGETS[normalize_plane(plane)])
    free = [0, 1, 2]
    dots = [abs(basis[:, i] @ r_t) for i in free]
    ar = free[int(np.argmax(dots))]
    free.remove(ar)
    r = basis[:, ar] * (1.0 if basis[:, ar] @ r_t >= 0 else -1.0)
    dots = [abs(basis[:, i] @ u_t) for i in free]
    au = free[int(np.argmax(dots))]
    free.remove(au)
    u = basis[:, au] * (1.0 if basis[:, au] @ u_t >= 0 else -1.0)
    n = np.cross(r, u)
    return r, u, n, (ar, au, free[0])


def _set_matrix(vtk_matrix, m) -> None:
    for i in range(4):
        for j in range(4):
            vtk_matrix.SetElement(i, j, float(m[i][j]))
    vtk_matrix.Modified()


def colormap_table(name: str, n: int = 256) -> np.ndarray:
    """(n, 3) RGB in [0, 1] of an overlay colormap: "hot" (black → red → yellow → white), "green",
    "magenta" (black → colour) or "gray"."""
    x = np.linspace(0.0, 1.0, n)
    z = np.zeros(n)
    if name == "hot":
        return np.column_stack([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1), np.clip(3 * x - 2, 0, 1)])
    if name == "green":
        return np.column_stack([z, x, z])
    if name == "magenta":
        return np.column_stack([x, z, x])
    if name == "gray":
        return np.column_stack([x, x, x])
    raise ValueError(f"overlay colormap must be one of {OVERLAY_COLORMAPS}, got {name!r}")


def _vtk_image(arr: np.ndarray) -> vtkImageData:
    """(slices, rows, columns) array → vtkImageData in index space, sharing `arr`'s memory."""
    ns, nr, nc = arr.shape
    img = vtkImageData()
    img.SetDimensions(nc, nr, ns)
    img.SetOrigin(0.0, 0.0, 0.0)
    img.SetSpacing(1.0, 1.0, 1.0)
    vtk_arr = numpy_to_vtk(arr.reshape(-1), deep=False)
    vtk_arr.SetName("scalars")
    img.GetPointData().SetScalars(vtk_arr)
    return img


def _display_array(volume) -> np.ndarray:
    """The volume's voxels as a native-endian, C-contiguous array VTK can share (float64 → float32)."""
    arr = np.asarray(volume.array)
    if arr.dtype.kind not in "uif" or not arr.dtype.isnative or arr.dtype.itemsize > 4 and arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)


def _image_slice(lut) -> tuple:
    """A 2-D image layer: (property, mapper, prop, user matrix) with `lut` applied, linear
    interpolation, and the slice chosen by the pipeline (not by the camera); starts hidden."""
    prop = vtkImageProperty()
    prop.SetLookupTable(lut)
    prop.UseLookupTableScalarRangeOff()
    prop.SetInterpolationTypeToLinear()
    mapper = vtkImageSliceMapper()
    mapper.SliceAtFocalPointOff()
    mapper.SliceFacesCameraOff()
    actor = vtkImageSlice()
    actor.SetMapper(mapper)
    actor.SetProperty(prop)
    actor.SetVisibility(False)
    user_matrix = vtkMatrix4x4()
    actor.SetUserMatrix(user_matrix)
    return prop, mapper, actor, user_matrix


class _OverlayLayer:
    """The VTK objects of the overlay image: its own mapper, prop, property, LUT and reslice."""

    def __init__(self) -> None:
        self.volume = None
        self.array = None
        self.image = None
        self.inv_affine = None
        self.opacity = 0.5
        self.colormap = "hot"
        self.window = (0.5, 1.0)
        self.auto = (0.5, 1.0)
        self.direct = True
        self.lut = vtkLookupTable()
        self.lut.SetNumberOfTableValues(256)
        self.lut.SetNanColor(0.0, 0.0, 0.0, 0.0)  # outside the overlay volume (reslice path): transparent
        self.property, self.mapper, self.actor, self.user_matrix = _image_slice(self.lut)
        self.actor.SetPickable(False)
        self.reslice = vtkImageReslice()
        self.reslice.SetOutputDimensionality(2)
        self.reslice.SetInterpolationModeToLinear()
        self.reslice.SetOutputScalarType(10)  # VTK_FLOAT: NaN background = transparent
        self.reslice.SetBackgroundLevel(float("nan"))
        self.reslice.AutoCropOutputOff()
        self.axes = vtkMatrix4x4()
        self.reslice.SetResliceAxes(self.axes)

    def set_colormap(self, name: str) -> None:
        table = colormap_table(name, self.lut.GetNumberOfTableValues())
        for i, (r, g, b) in enumerate(table):
            self.lut.SetTableValue(i, float(r), float(g), float(b), 1.0)
        self.lut.SetRange(0.0, 1.0)
        self.lut.Modified()
        self.colormap = name

    def set_window(self, center: float, width: float) -> None:
        self.window = (float(center), float(width))
        self.property.SetColorWindow(self.window[1])
        self.property.SetColorLevel(self.window[0])

    def set_opacity(self, opacity: float) -> None:
        self.opacity = float(np.clip(opacity, 0.0, 1.0))
        self.property.SetOpacity(self.opacity)


class SlicePipeline:
    """Shows one plane of a `Volume` in `renderer`, with crosshair and overlays. No Qt."""

    def __init__(self, renderer, *, plane: str = "sag", overlays: bool = True) -> None:
        self.renderer = renderer
        self._plane = normalize_plane(plane)
        self._volume = None
        self._label = ""
        self._center = 0.5
        self._width = 1.0
        self._auto = (0.5, 1.0)
        self._range = (0.0, 1.0)
        self._inverted = False
        self._interpolation = "linear"
        self._point = None  # LPS the plane passes through (np.ndarray)
        self._crosshair = None
        self._slice = 0
        self._fit = True  # camera follows the viewport size until the user zooms/pans
        self._view_serial = 0  # bumps on every camera change (for view linking)
        self.force_reslice = False  # True: always resample with vtkImageReslice (testing / comparison)
        self._interactive = False  # interactive level of detail (see set_interactive)

        self._image = vtkImageData()
        self._reslice = vtkImageReslice()
        self._reslice.SetInputData(self._image)
        self._reslice.SetOutputDimensionality(2)
        self._reslice.SetInterpolationModeToLinear()
        self._reslice.SetBackgroundLevel(0.0)
        self._reslice.AutoCropOutputOff()
        self._axes = vtkMatrix4x4()
        self._reslice.SetResliceAxes(self._axes)

        self._lut = vtkLookupTable()
        self._lut.SetNumberOfTableValues(256)
        self._build_lut()
        self.image_property, self.mapper, self.image_actor, self._user_matrix = _image_slice(self._lut)
        self._direct = True
        self._w = 0.0
        renderer.AddViewProp(self.image_actor)
        self._ov = _OverlayLayer()
        renderer.AddViewProp(self._ov.actor)
        self._index_to_plane = np.eye(4)

        self._cross_points = vtkPoints()
        self._cross_points.SetNumberOfPoints(4)
        for i in range(4):
            self._cross_points.SetPoint(i, 0.0, 0.0, 0.0)
        lines = vtkCellArray()
        for a, b in ((0, 1), (2, 3)):
            lines.InsertNextCell(2)
            lines.InsertCellPoint(a)
            lines.InsertCellPoint(b)
        poly = vtkPolyData()
        poly.SetPoints(self._cross_points)
        poly.SetLines(lines)
        cmap = vtkPolyDataMapper()
        cmap.SetInputData(poly)
        self.crosshair_actor = vtkActor()
        self.crosshair_actor.SetMapper(cmap)
        self.crosshair_actor.GetProperty().SetColor(0.25, 0.9, 0.35)
        self.crosshair_actor.GetProperty().SetLineWidth(1.0)
        self.crosshair_actor.GetProperty().LightingOff()
        self.crosshair_actor.SetVisibility(False)
        self.crosshair_actor.SetPickable(False)
        renderer.AddActor(self.crosshair_actor)

        self.overlays = SliceOverlays(renderer) if overlays else None
        if self.overlays is not None:
            self.overlays.set_has_image(False)

        cam = renderer.GetActiveCamera()
        cam.ParallelProjectionOn()
        renderer.SetBackground(0.0, 0.0, 0.0)
        # one translucent layer (the overlay) over an opaque image: plain alpha blending in draw order
        # is exact, and order-independent translucency's extra passes only cost time (llvmpipe)
        renderer.SetUseOIT(False)
        self._start_observer = renderer.AddObserver("StartEvent", self._on_render_start)

    # ------------------------------------------------------------------ volume
    @property
    def volume(self):
        return self._volume

    @property
    def plane(self) -> str:
        return self._plane

    @property
    def label(self) -> str:
        return self._label

    def set_volume(self, volume, *, label: str | None = None, point=None, window=None) -> None:
        """Show `volume`: auto window (1st–99th percentile) unless `window`, plane through `point`
        (default the volume centre), camera fitted."""
        arr = _display_array(volume)
        self._volume = volume
        self._array = arr  # keep alive: VTK shares its memory
        self._label = label if label is not None else (getattr(volume.info, "series_description", "") or "")
        ns, nr, nc = arr.shape
        img = _vtk_image(arr)
        self._image = img
        self._reslice.SetInputData(img)
        self._inv_affine = np.linalg.inv(volume.affine)
        self._origin = volume.index_to_patient(np.array([(nc - 1) / 2.0, (nr - 1) / 2.0, (ns - 1) / 2.0]))
        self._auto = auto_window(arr)
        self._range = data_range(arr)
        c, w = window if window is not None else self._auto
        self._center, self._width = float(c), max(float(w), self._min_width())
        self._apply_window()
        self._point = self._origin.copy() if point is None else np.asarray(point, dtype=np.float64)
        self._setup_plane()
        self.image_actor.SetVisibility(True)
        if self.overlays is not None:
            self.overlays.set_has_image(True)
        self.reset_camera()
        self._update_texts()

    def clear(self) -> None:
        """Show nothing (the overlay, if any, is kept and shows again with the next volume)."""
        self._volume = None
        self.image_actor.SetVisibility(False)
        self._ov.actor.SetVisibility(False)
        self.crosshair_actor.SetVisibility(False)
        if self.overlays is not None:
            self.overlays.set_has_image(False)

    def set_label(self, label: str) -> None:
        self._label = str(label)
        self._update_texts()

    # ------------------------------------------------------------------ plane
    def set_plane(self, plane: str) -> None:
        """Switch to "sag", "cor" or "ax" through the current point; the camera is refitted."""
        p = normalize_plane(plane)
        if p == self._plane:
            return
        self._plane = p
        if self._volume is not None:
            self._setup_plane()
            self.reset_camera()
            self._update_texts()

    def frame(self):
        """(R, U, N) unit vectors (LPS) of screen-right, screen-up and the normal towards the viewer."""
        return self._R.copy(), self._U.copy(), self._N.copy()

    def is_native(self) -> bool:
        """True when the plane is the acquired slice plane (normal along the slice axis)."""
        return self._volume is not None and self._axes_idx[2] == 2

    def _setup_plane(self) -> None:
        vol = self._volume
        self._R, self._U, self._N, self._axes_idx = plane_frame(vol.affine, self._plane)
        _, spacing = volume_basis(vol.affine)
        ar, au, an = self._axes_idx
        self._du, self._dv = float(spacing[ar]), float(spacing[au])
        self._step_mm = float(spacing[an])
        ns, nr, nc = self._array.shape
        self._dims = (nc, nr, ns)
        # voxel-centre corners projected on R and U → output extent
        corners = np.array([[i, j, k] for i in (0, nc - 1) for j in (0, nr - 1) for k in (0, ns - 1)], float)
        rel = vol.index_to_patient(corners) - self._origin
        u, v = rel @ self._R, rel @ self._U
        self._u0, self._v0 = float(u.min()), float(v.min())
        self._nu = int(round((u.max() - u.min()) / self._du)) + 1
        self._nv = int(round((v.max() - v.min()) / self._dv)) + 1
        # index → plane (u, v, w) coordinates; a scaled signed permutation unless the volume is sheared
        p0 = np.eye(4)
        p0[:3, 0], p0[:3, 1], p0[:3, 2] = self._R, self._U, self._N
        p0[:3, 3] = self._origin
        m = np.linalg.inv(p0) @ vol.affine
        lin = m[:3, :3]
        sheared = np.count_nonzero(np.abs(lin) > 1e-6 * np.abs(lin).max()) > 3
        self._direct = not (sheared or self.force_reslice)
        self._index_to_plane = m
        if self._direct:
            # fast path: the slice mapper cuts the index-space volume along the normal's axis and the
            # prop matrix places it — no resampling, no intermediate image
            self.mapper.SetInputData(self._image)
            self.mapper.SetOrientation(an)
            _set_matrix(self._user_matrix, m)
        else:
            r = self._reslice
            r.SetOutputSpacing(self._du, self._dv, 1.0)
            r.SetOutputOrigin(self._u0, self._v0, 0.0)
            r.SetOutputExtent(0, self._nu - 1, 0, self._nv - 1, 0, 0)
            self.mapper.SetInputConnection(r.GetOutputPort())
            self.mapper.SetOrientation(2)
            self.mapper.SetSliceNumber(0)
        if self.overlays is not None:
            self.overlays.set_letters(self.orientation_labels())
        self._setup_overlay()
        self._place_at(self._point)

    def uses_reslice(self) -> bool:
        """True when the plane is resampled by vtkImageReslice (sheared volumes), False on the direct path."""
        return not self._direct

    def _index_along_normal(self, lps) -> float:
        ijk = np.asarray(lps, float) @ self._inv_affine[:3, :3].T + self._inv_affine[:3, 3]
        return float(ijk[self._axes_idx[2]])

    def _place_at(self, lps, *, snap: bool = True) -> None:
        """Put the plane through `lps`, snapped to the nearest voxel centre along the normal."""
        an = self._axes_idx[2]
        n = self._dims[an]
        k = int(np.clip(round(self._index_along_normal(lps)), 0, n - 1))
        ijk = np.array([(d - 1) / 2.0 for d in self._dims])
        ijk[an] = k
        q = self._volume.index_to_patient(ijk)
        self._slice = k
        self._w = float((q - self._origin) @ self._N)
        if self._direct:
            self.mapper.SetSliceNumber(k)
        else:
            p = np.zeros((4, 4))
            p[:3, 0], p[:3, 1], p[:3, 2] = self._R, self._U, self._N
            p[:3, 3] = self._origin + self._w * self._N
            p[3, 3] = 1.0
            _set_matrix(self._axes, self._inv_affine @ p)
            self._reslice.Modified()
            shift = np.eye(4)
            shift[2, 3] = self._w
            _set_matrix(self._user_matrix, shift)
        self._place_overlay()
        self._update_camera_depth()
        self._update_crosshair()

    def set_point(self, lps) -> None:
        """Make the plane pass through patient point `lps` (snapped to the nearest voxel centre / acquired slice)."""
        self._point = np.asarray(lps, dtype=np.float64).copy()
        if self._volume is not None:
            self._place_at(self._point)
            self._update_texts()

    def point(self):
        return None if self._point is None else self._point.copy()

    def world_matrix(self) -> np.ndarray:
        """4×4 mapping homogeneous LPS (mm) to this renderer's world coordinates (u, v, w): rows R, U, N
        about the volume centre. The current plane lies at world z = w (`plane_world_z()`)."""
        m = np.eye(4)
        if self._volume is None:
            return m
        m[0, :3], m[1, :3], m[2, :3] = self._R, self._U, self._N
        m[:3, 3] = -(m[:3, :3] @ self._origin)
        return m

    def plane_world_z(self) -> float:
        """World z of the current plane (the image lies there; layers above it sit at larger z)."""
        return float(self._w)

    def plane_origin(self) -> np.ndarray:
        """LPS of the plane's (u, v) = (0, 0): the volume centre moved onto the current plane."""
        return self._origin + self._w * self._N

    def slice_index(self) -> int:
        """Index of the shown plane along the normal's volume axis (0-based; native plane = acquired slice)."""
        return self._slice

    def slice_count(self) -> int:
        return 0 if self._volume is None else int(self._dims[self._axes_idx[2]])

    def slice_spacing(self) -> float:
        """mm between successive planes along the normal."""
        return self._step_mm if self._volume is not None else 0.0

    def set_slice(self, index: int) -> bool:
        """Show plane `index` (clamped); returns True when it changed."""
        if self._volume is None:
            return False
        k = int(np.clip(int(index), 0, self.slice_count() - 1))
        if k == self._slice:
            return False
        # move the point along the volume axis of the normal by whole voxels
        an = self._axes_idx[2]
        ijk = self._point @ self._inv_affine[:3, :3].T + self._inv_affine[:3, 3]
        ijk[an] = k
        self._point = self._volume.index_to_patient(ijk)
        self._place_at(self._point)
        self._update_texts()
        return True

    def step(self, n: int = 1) -> bool:
        """Move by `n` planes (one slice spacing each) along the volume axis of the normal; True if moved.
        Positive n moves towards the viewer (+N)."""
        if self._volume is None:
            return False
        an = self._axes_idx[2]
        e = self._volume.affine[:3, an]
        sign = 1 if e @ self._N >= 0 else -1
        return self.set_slice(self._slice + sign * int(n))

    # ------------------------------------------------------------------ window / LUT / interpolation
    def window(self) -> tuple[float, float]:
        return self._center, self._width

    def auto_window_values(self) -> tuple[float, float]:
        return self._auto

    def data_range(self) -> tuple[float, float]:
        return self._range

    def _min_width(self) -> float:
        lo, hi = self._range
        return max((hi - lo) * 1e-4, 1e-6)

    def set_window(self, center: float, width: float) -> bool:
        """Display window (center, width); width kept positive. True when it changed."""
        width = max(float(width), self._min_width())
        center = float(center)
        if (center, width) == (self._center, self._width):
            return False
        self._center, self._width = center, width
        self._apply_window()
        self._update_texts()
        return True

    def _apply_window(self) -> None:
        self.image_property.SetColorWindow(self._width)
        self.image_property.SetColorLevel(self._center)

    def _build_lut(self) -> None:
        n = 256
        for i in range(n):
            g = i / (n - 1)
            if self._inverted:
                g = 1.0 - g
            self._lut.SetTableValue(i, g, g, g, 1.0)
        self._lut.SetRange(0.0, 1.0)
        self._lut.Modified()

    @property
    def inverted(self) -> bool:
        return self._inverted

    def set_inverted(self, inverted: bool) -> None:
        if bool(inverted) == self._inverted:
            return
        self._inverted = bool(inverted)
        self._build_lut()
        self._update_texts()

    @property
    def interpolation(self) -> str:
        return self._interpolation

    def set_interpolation(self, mode: str) -> None:
        """"nearest" or "linear": both the reformat and the on-screen magnification."""
        if mode not in ("nearest", "linear"):
            raise ValueError(f"interpolation must be 'nearest' or 'linear', got {mode!r}")
        self._interpolation = mode
        shown = "nearest" if self._interactive else mode  # the interactive LOD keeps nearest until refined
        for reslice, prop in ((self._reslice, self.image_property), (self._ov.reslice, self._ov.property)):
            if mode == "nearest":
                reslice.SetInterpolationModeToNearestNeighbor()
            else:
                reslice.SetInterpolationModeToLinear()
            if shown == "nearest":
                prop.SetInterpolationTypeToNearest()
            else:
                prop.SetInterpolationTypeToLinear()

    # ------------------------------------------------------------------ interactive level of detail
    def set_interactive(self, interactive: bool) -> None:
        """Interactive level of detail on/off (the view turns it on while the wheel turns or a drag
        moves, and off ~150 ms after the last event): nearest-neighbour magnification of the base and
        the overlay while on; the chosen interpolation when off.

        (A 2× in-plane subsampled texture while interacting was measured too — benchmarks/README.md —
        and gave no gain on llvmpipe, where the per-pixel texture sampling, the clears/blits and the
        buffer swap dominate, not the colour mapping or upload of the slice; so it is not used.)"""
        interactive = bool(interactive)
        if interactive == self._interactive:
            return
        self._interactive = interactive
        self.set_display_interpolation("nearest" if interactive else self._interpolation)

    @property
    def interactive(self) -> bool:
        return self._interactive

    def set_display_interpolation(self, mode: str) -> None:
        """Only the on-screen magnification filter (used as the cheap level of detail while interacting)."""
        for prop in (self.image_property, self._ov.property):
            if mode == "nearest":
                if prop.GetInterpolationType() != 0:
                    prop.SetInterpolationTypeToNearest()
            elif prop.GetInterpolationType() != 1:
                prop.SetInterpolationTypeToLinear()

    # ------------------------------------------------------------------ overlay layer
    def set_overlay(self, volume, *, opacity: float = 0.5, colormap: str = "hot", window=None) -> None:
        """Show `volume` over the base image, cut by the same plane; None removes it.

        `opacity` in [0, 1] (0 hides it, 1 covers the base), `colormap` one of OVERLAY_COLORMAPS,
        `window` (center, width) of the overlay's values (default: its own 1st–99th percentile).
        A volume on the base's grid (same shape and affine) takes the fast path; any other affine or
        shape is resampled onto the base plane (its outside is transparent)."""
        ov = self._ov
        if volume is None:
            ov.volume = ov.array = ov.image = None
            ov.actor.SetVisibility(False)
            ov.mapper.RemoveAllInputConnections(0)
            ov.reslice.RemoveAllInputConnections(0)
            return
        if colormap not in OVERLAY_COLORMAPS:
            raise ValueError(f"overlay colormap must be one of {OVERLAY_COLORMAPS}, got {colormap!r}")
        arr = _display_array(volume)
        if arr.ndim != 3:
            raise ValueError(f"overlay volume must be 3-D (slices, rows, columns), got shape {arr.shape}")
        ov.volume, ov.array = volume, arr
        ov.image = _vtk_image(arr)
        ov.inv_affine = np.linalg.inv(np.asarray(volume.affine, float))
        ov.reslice.SetInputData(ov.image)
        ov.auto = auto_window(arr)
        c, w = window if window is not None else ov.auto
        ov.set_window(float(c), max(float(w), 1e-6))
        ov.set_colormap(colormap)
        ov.set_opacity(opacity)
        ov.property.SetInterpolationType(self.image_property.GetInterpolationType())
        if self._volume is not None:
            self._setup_overlay()
            self._place_overlay()

    def overlay(self):
        """The overlay volume shown (None when there is none)."""
        return self._ov.volume

    def overlay_opacity(self) -> float:
        return self._ov.opacity

    def set_overlay_opacity(self, opacity: float) -> bool:
        """Overlay opacity in [0, 1] (clamped; 0 = not drawn at all). True when it changed."""
        ov = self._ov
        a = float(np.clip(opacity, 0.0, 1.0))
        if a == ov.opacity:
            return False
        ov.set_opacity(a)
        self._update_overlay_visibility()
        return True

    def overlay_window(self) -> tuple[float, float]:
        return self._ov.window

    def set_overlay_window(self, center: float, width: float) -> bool:
        """(center, width) of the overlay's values mapped onto its colormap. True when it changed."""
        w = max(float(width), 1e-6)
        if (float(center), w) == self._ov.window:
            return False
        self._ov.set_window(center, w)
        return True

    def overlay_colormap(self) -> str:
        return self._ov.colormap

    def set_overlay_colormap(self, name: str) -> None:
        if name not in OVERLAY_COLORMAPS:
            raise ValueError(f"overlay colormap must be one of {OVERLAY_COLORMAPS}, got {name!r}")
        if name != self._ov.colormap:
            self._ov.set_colormap(name)

    def overlay_uses_reslice(self) -> bool:
        """True when the overlay is resampled onto the base plane (other grid, or a sheared base)."""
        return self._ov.volume is not None and not self._ov.direct

    def _overlay_on_base_grid(self) -> bool:
        ov = self._ov
        return (ov.array.shape == self._array.shape
                and np.allclose(np.asarray(ov.volume.affine, float), np.asarray(self._volume.affine, float),
                                rtol=0.0, atol=1e-4))

    def _setup_overlay(self) -> None:
        """Choose the overlay's path for the current base volume and plane (called by _setup_plane)."""
        ov = self._ov
        if ov.volume is None or self._volume is None:
            return
        ov.direct = self._direct and self._overlay_on_base_grid()
        if ov.direct:
            ov.mapper.SetInputData(ov.image)
            ov.mapper.SetOrientation(self._axes_idx[2])
            lift = np.eye(4)
            lift[2, 3] = OVERLAY_LIFT
            _set_matrix(ov.user_matrix, lift @ self._index_to_plane)
        else:
            r = ov.reslice
            r.SetOutputSpacing(self._du, self._dv, 1.0)
            r.SetOutputOrigin(self._u0, self._v0, 0.0)
            r.SetOutputExtent(0, self._nu - 1, 0, self._nv - 1, 0, 0)
            ov.mapper.SetInputConnection(r.GetOutputPort())
            ov.mapper.SetOrientation(2)
            ov.mapper.SetSliceNumber(0)

    def _place_overlay(self) -> None:
        """Cut the overlay with the current plane (called by _place_at)."""
        ov = self._ov
        if ov.volume is None or self._volume is None:
            self._update_overlay_visibility()
            return
        if ov.direct:
            if ov.mapper.GetSliceNumber() != self._slice:
                ov.mapper.SetSliceNumber(self._slice)
        else:
            p = np.eye(4)
            p[:3, 0], p[:3, 1], p[:3, 2] = self._R, self._U, self._N
            p[:3, 3] = self._origin + self._w * self._N
            _set_matrix(ov.axes, ov.inv_affine @ p)
            ov.reslice.Modified()
            shift = np.eye(4)
            shift[2, 3] = self._w + OVERLAY_LIFT
            _set_matrix(ov.user_matrix, shift)
        self._update_overlay_visibility()

    def _update_overlay_visibility(self) -> None:
        ov = self._ov
        show = ov.volume is not None and self._volume is not None and ov.opacity > 0.0
        if bool(ov.actor.GetVisibility()) != show:
            ov.actor.SetVisibility(show)

    # ------------------------------------------------------------------ crosshair
    def set_crosshair(self, lps) -> None:
        """Draw two lines through `lps` (projected onto the plane); None hides them."""
        self._crosshair = None if lps is None else np.asarray(lps, dtype=np.float64).copy()
        self._update_crosshair()

    def crosshair(self):
        return None if self._crosshair is None else self._crosshair.copy()

    def _update_crosshair(self) -> None:
        if self._crosshair is None or self._volume is None:
            self.crosshair_actor.SetVisibility(False)
            return
        x, y = self.patient_to_plane(self._crosshair)
        u0, v0 = self._u0 - self._du / 2, self._v0 - self._dv / 2
        u1, v1 = u0 + self._nu * self._du, v0 + self._nv * self._dv
        z = self._w + 1.0  # towards the camera, above the image
        for i, pt in enumerate(((u0, y, z), (u1, y, z), (x, v0, z), (x, v1, z))):
            self._cross_points.SetPoint(i, *pt)
        self._cross_points.Modified()
        self.crosshair_actor.SetVisibility(True)

    # ------------------------------------------------------------------ coordinates
    def patient_to_plane(self, lps) -> tuple[float, float]:
        """(u, v) world (mm) of the projection of `lps` onto the plane."""
        rel = np.asarray(lps, float) - self._origin
        return float(rel @ self._R), float(rel @ self._U)

    def plane_to_patient(self, u: float, v: float) -> np.ndarray:
        return self._origin + self._w * self._N + u * self._R + v * self._U

    def _viewport_px(self) -> tuple[float, float, float, float]:
        """(x0, y0, width, height) of the renderer's viewport in display pixels."""
        w, h = self.renderer.GetSize()
        x0, y0 = self.renderer.GetOrigin()
        return float(x0), float(y0), float(max(w, 1)), float(max(h, 1))

    def mm_per_pixel(self) -> float:
        _, _, _, h = self._viewport_px()
        return 2.0 * self.renderer.GetActiveCamera().GetParallelScale() / h

    def display_to_plane(self, x: float, y: float) -> tuple[float, float]:
        x0, y0, w, h = self._viewport_px()
        cam = self.renderer.GetActiveCamera()
        fx, fy, _ = cam.GetFocalPoint()
        s = self.mm_per_pixel()
        return fx + (x - x0 - w / 2.0) * s, fy + (y - y0 - h / 2.0) * s

    def plane_to_display(self, u: float, v: float) -> tuple[float, float]:
        x0, y0, w, h = self._viewport_px()
        fx, fy, _ = self.renderer.GetActiveCamera().GetFocalPoint()
        s = self.mm_per_pixel()
        return x0 + w / 2.0 + (u - fx) / s, y0 + h / 2.0 + (v - fy) / s

    def display_to_patient(self, x: float, y: float) -> np.ndarray:
        """LPS (mm) on the current plane under display pixel (x, y) (VTK display: origin bottom-left)."""
        return self.plane_to_patient(*self.display_to_plane(x, y))

    def patient_to_display(self, lps) -> tuple[float, float]:
        return self.plane_to_display(*self.patient_to_plane(lps))

    def value_at(self, lps):
        """Value of the voxel nearest to `lps`, or None outside the volume."""
        if self._volume is None:
            return None
        ijk = np.rint(np.asarray(lps, float) @ self._inv_affine[:3, :3].T + self._inv_affine[:3, 3]).astype(int)
        nc, nr, ns = self._dims
        c, r, k = (int(v) for v in ijk)
        if not (0 <= c < nc and 0 <= r < nr and 0 <= k < ns):
            return None
        return float(self._array[k, r, c])

    def voxel_at(self, lps):
        """(column, row, slice) of the voxel nearest to `lps`, or None outside."""
        if self._volume is None:
            return None
        ijk = np.rint(np.asarray(lps, float) @ self._inv_affine[:3, :3].T + self._inv_affine[:3, 3]).astype(int)
        if all(0 <= int(v) < d for v, d in zip(ijk, self._dims)):
            return tuple(int(v) for v in ijk)
        return None

    # ------------------------------------------------------------------ camera
    def image_bounds(self) -> tuple[float, float, float, float]:
        """(u0, u1, v0, v1) world mm of the image's outer voxel edges."""
        u0, v0 = self._u0 - self._du / 2, self._v0 - self._dv / 2
        return u0, u0 + self._nu * self._du, v0, v0 + self._nv * self._dv

    def reset_camera(self) -> None:
        """Fit the whole plane in the viewport (2 % padding); the fit follows later viewport resizes."""
        self._fit = True
        self._fit_camera()
        self._view_serial += 1

    def _fit_camera(self) -> None:
        if self._volume is None:
            return
        u0, u1, v0, v1 = self.image_bounds()
        _, _, w, h = self._viewport_px()
        aspect = w / h
        scale = 1.02 * max((v1 - v0) / 2.0, (u1 - u0) / 2.0 / aspect)
        self._set_camera((u0 + u1) / 2.0, (v0 + v1) / 2.0, scale)

    def _set_camera(self, fx: float, fy: float, scale: float) -> None:
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(fx, fy, self._w)
        cam.SetPosition(fx, fy, self._w + CAMERA_DISTANCE)
        cam.SetViewUp(0.0, 1.0, 0.0)
        cam.SetParallelScale(scale)
        cam.SetClippingRange(CAMERA_DISTANCE - 10.0, CAMERA_DISTANCE + 10.0)

    def _update_camera_depth(self) -> None:
        """Keep the camera CAMERA_DISTANCE in front of the current plane (the image lies at z = w)."""
        cam = self.renderer.GetActiveCamera()
        fx, fy, _ = cam.GetFocalPoint()
        cam.SetFocalPoint(fx, fy, self._w)
        cam.SetPosition(fx, fy, self._w + CAMERA_DISTANCE)
        cam.SetClippingRange(CAMERA_DISTANCE - 10.0, CAMERA_DISTANCE + 10.0)

    def view_state(self) -> tuple[float, float, float]:
        """(focal u, focal v, parallel scale) — for linking views."""
        cam = self.renderer.GetActiveCamera()
        fx, fy, _ = cam.GetFocalPoint()
        return float(fx), float(fy), float(cam.GetParallelScale())

    def set_view_state(self, state) -> None:
        fx, fy, scale = state
        self._fit = False
        self._set_camera(fx, fy, scale)
        self._view_serial += 1

    def zoom(self, factor: float, center=None) -> None:
        """Magnify by `factor` (> 1 zooms in), keeping display point `center` (x, y) fixed if given."""
        if self._volume is None or not (factor > 0):
            return
        fx, fy, scale = self.view_state()
        if center is not None:
            cu, cv = self.display_to_plane(*center)
            fx = cu + (fx - cu) / factor
            fy = cv + (fy - cv) / factor
        self._fit = False
        self._set_camera(fx, fy, scale / factor)
        self._view_serial += 1

    def pan(self, dx: float, dy: float) -> None:
        """Move the image by (dx, dy) display pixels (y up)."""
        if self._volume is None:
            return
        fx, fy, scale = self.view_state()
        s = self.mm_per_pixel()
        self._fit = False
        self._set_camera(fx - dx * s, fy - dy * s, scale)
        self._view_serial += 1

    # ------------------------------------------------------------------ texts / render hook
    def orientation_labels(self) -> dict[str, str]:
        if self._volume is None:
            return {"left": "", "right": "", "top": "", "bottom": ""}
        return {"left": orientation_letter(-self._R), "right": orientation_letter(self._R),
                "top": orientation_letter(self._U), "bottom": orientation_letter(-self._U)}

    def slice_text(self) -> str:
        return f"{PLANE_NAMES[self._plane].capitalize()} {self._slice + 1}/{self.slice_count()}" \
            if self._volume is not None else ""

    def window_text(self) -> str:
        if self._volume is None:
            return ""
        t = f"W {format_number(self._width)}  L {format_number(self._center)}"
        return t + ("  INV" if self._inverted else "")

    def _update_texts(self) -> None:
        if self.overlays is None:
            return
        self.overlays.set_text("series", self._label)
        self.overlays.set_text("slice", self.slice_text())
        self.overlays.set_text("window", self.window_text())

    def overlay_text(self, name: str) -> str:
        return "" if self.overlays is None else self.overlays.text(name)

    def _on_render_start(self, obj, event) -> None:
        if self._volume is None:
            return
        if self._fit:
            self._fit_camera()
        if self.overlays is not None:
            _, _, w, h = self._viewport_px()
            self.overlays.layout(int(w), int(h), self.mm_per_pixel())

    def close(self) -> None:
        """Remove every prop from the renderer and drop the observer."""
        self.renderer.RemoveObserver(self._start_observer)
        self.renderer.RemoveViewProp(self.image_actor)
        self.renderer.RemoveViewProp(self._ov.actor)
        self.renderer.RemoveActor(self.crosshair_actor)
        if self.overlays is not None:
            self.overlays.remove()
        self._volume = None

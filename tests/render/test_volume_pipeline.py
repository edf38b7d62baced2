"""VolumePipeline rendered offscreen (vtkEGLRenderWindow, no Qt): presets, geometry, MinIP iron void,
clip box, planes, level of detail and mapper choice."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.render

vtk_rc = pytest.importorskip("vtkmodules.vtkRenderingCore")

from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402

from discviewer.render.gl_info import is_software_gl, renderer_string  # noqa: E402
from discviewer.render.offscreen import make_offscreen_window  # noqa: E402
from discviewer.render.volume_pipeline import (  # noqa: E402
    PRESETS,
    VolumePipeline,
    body_mask,
    choose_mapper,
    volume_to_image_data,
    world_to_display,
)
from discviewer.volume import Volume  # noqa: E402

SIZE = 400


class Scene:
    def __init__(self, size=SIZE, mapper="auto"):
        self.rw = make_offscreen_window(size, size)
        self.ren = vtk_rc.vtkRenderer()
        self.rw.AddRenderer(self.ren)
        self.pipeline = VolumePipeline(self.ren, mapper=mapper)

    def grab(self) -> np.ndarray:
        """(rows, cols, 3) uint8, row 0 at the top."""
        self.rw.Render()
        w = vtk_rc.vtkWindowToImageFilter()
        w.SetInput(self.rw)
        w.ReadFrontBufferOff()
        w.Update()
        im = w.GetOutput()
        nx, ny, _ = im.GetDimensions()
        return vtk_to_numpy(im.GetPointData().GetScalars()).reshape(ny, nx, -1)[::-1, :, :3].copy()

    def pixel(self, point) -> tuple[int, int]:
        """(row, col) in a grab() image of a world point."""
        x, y = world_to_display(self.ren, point)
        return int(round(self.rw.GetSize()[1] - 1 - y)), int(round(x))

    def finalize(self):
        self.pipeline.close()
        self.rw.Finalize()


@pytest.fixture
def scene():
    s = Scene()
    yield s
    s.finalize()


@pytest.fixture(scope="module")
def gre_visit():
    from discviewer.phantom import generate_study

    visit = generate_study(size="small").patients[0].visits[1]  # "3 m": iron in the L4/L5 disc
    return visit


@pytest.fixture(scope="module")
def gre(gre_visit):
    return gre_visit.series[2].volume(4)  # late echo: the iron void is large and dark


def patch(img, rc, r=1):
    row, col = rc
    return img[row - r:row + r + 1, col - r:col + r + 1].astype(float).mean()


# ------------------------------------------------------------------------------ mapper choice
def test_software_gl_strings():
    for s in ("llvmpipe (LLVM 15.0.6, 256 bits)", "softpipe", "Gallium 0.4 on SWR", "Software Rasterizer",
              "Google SwiftShader", "GDI Generic"):
        assert is_software_gl(s), s
    for s in ("NVIDIA GeForce RTX 3080/PCIe/SSE2", "AMD Radeon Pro 5500M", "Mesa Intel(R) UHD Graphics 620 (KBL GT2)",
              "Apple M1"):
        assert not is_software_gl(s), s


class FakeWindow:
    def __init__(self, renderer):
        self.caps = f"OpenGL vendor string:  X\nOpenGL renderer string:  {renderer}\nOpenGL version string:  4.5\n"
        self.initialized = False

    def ReportCapabilities(self):
        return self.caps if self.initialized else "Display ID not set"

    def Initialize(self):
        self.initialized = True


def test_choose_mapper_mocked():
    assert choose_mapper(FakeWindow("NVIDIA GeForce RTX 3080/PCIe/SSE2")) == "gpu"
    assert choose_mapper(FakeWindow("llvmpipe (LLVM 15.0.6, 256 bits)")) == "cpu"
    assert choose_mapper(FakeWindow("")) == "cpu"  # unreadable: the safe choice
    w = FakeWindow("llvmpipe")
    assert renderer_string(w) == ""  # no context yet and not asked to initialise
    assert renderer_string(w, initialize=True) == "llvmpipe"


def test_choose_mapper_on_this_machine(scene):
    text = renderer_string(scene.rw, initialize=True)
    assert text
    assert choose_mapper(scene.rw) == ("cpu" if is_software_gl(text) else "gpu")
    if "llvmpipe" in text.lower():
        assert choose_mapper(scene.rw) == "cpu"


# ---------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("handed", ["right", "left"])
def test_image_data_points_are_voxel_centres(handed):
    arr = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)
    aff = np.array([[0.0, 0.0, -4.0, 15.0], [1.875, 0.0, 0.0, -50.0], [0.0, -1.5, 0.0, 40.0], [0, 0, 0, 1]])
    if handed == "left":
        aff[:3, 2] *= -1
    vol = Volume(arr, aff)
    img = volume_to_image_data(vol)
    for ijk in ((0, 0, 0), (5, 4, 3), (2, 1, 3)):
        flat = img.ComputePointId(ijk)
        value = img.GetPointData().GetScalars().GetValue(flat)
        p = [0.0, 0.0, 0.0]
        img.TransformIndexToPhysicalPoint(*ijk, p)
        np.testing.assert_allclose(img.GetPoint(flat), p, atol=1e-9)
        # the voxel with this value sits at this LPS position in the original volume
        k, r, c = np.argwhere(arr == value)[0]
        np.testing.assert_allclose(p, vol.index_to_patient([c, r, k]), atol=1e-9)


@pytest.mark.parametrize("mapper", ["cpu", "gpu"])
@pytest.mark.parametrize("handed", ["right", "left"])
def test_bright_blob_projects_where_the_affine_says(mapper, handed):
    """An oblique, anisotropic (and possibly left-handed) volume lands exactly in patient space."""
    arr = np.zeros((20, 30, 40), np.uint16)
    arr[15:18, 5:8, 30:34] = 1000  # centre index (column 31.5, row 6, slice 16)
    arr[2:4, 20:24, 5:8] = 600
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.array([[0, 0, -1.0], [1, 0, 0], [0, -1, 0]])
    aff = np.eye(4)
    aff[:3, :3] = rot * np.array([1.875, 1.5, 4.0])
    aff[:3, 3] = (15.0, -50.0, 40.0)
    if handed == "left":
        aff[:3, 3] += 19 * aff[:3, 2]
        aff[:3, 2] *= -1
        arr = arr[::-1].copy()
    vol = Volume(arr, aff)
    sc = Scene(size=200, mapper=mapper)
    try:
        sc.pipeline.set_volume(vol, preset="MIP")
        sc.pipeline.outline_actor.SetVisibility(False)
        sc.pipeline.set_window(0, 1000)
        sc.pipeline.set_opacity_points([(0, 0), (0.5, 1), (1, 1)])
        img = sc.grab()
        assert sc.pipeline.mapper_kind == mapper
        k = 16 if handed == "right" else 3
        expected = sc.pixel(vol.index_to_patient([31.5, 6.0, k]))
        bright = np.argwhere(img[..., 0] > 200)
        assert len(bright) > 3
        np.testing.assert_allclose(bright.mean(axis=0), expected, atol=2.0)
    finally:
        sc.finalize()


# ------------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("preset", list(PRESETS))
def test_each_preset_renders_something(scene, gre, preset):
    scene.pipeline.set_volume(gre, preset=preset)
    img = scene.grab()
    lum = img.mean(axis=2)
    assert (lum > 20).mean() > 0.10, f"{preset}: almost blank"
    assert lum.std() > 10, f"{preset}: flat image"
    assert scene.pipeline.preset.name == preset


def test_preset_window_is_gain_independent(scene, gre):
    doubled = Volume((gre.array.astype(np.uint32) * 2).astype(np.uint16), gre.affine)
    for name in PRESETS:
        scene.pipeline.set_volume(gre, preset=name)
        a = scene.grab().astype(int)
        w1 = scene.pipeline.window
        scene.pipeline.set_volume(doubled, preset=name)
        b = scene.grab().astype(int)
        np.testing.assert_allclose(scene.pipeline.window, np.array(w1) * 2, rtol=0.02)
        assert np.abs(a - b).mean() < 2.0, name


def test_minip_shows_iron_void(scene, gre_visit, gre):
    discs = gre_visit.truth["discs"]
    iron = discs["L4/L5"]["iron"]["centre"]
    clean = discs["L3/L4"]["centre"]  # no iron there
    pl = scene.pipeline
    pl.set_volume(gre, preset="MinIP")
    minip = scene.grab().mean(axis=2)
    pl.set_preset("MIP")
    mip = scene.grab().mean(axis=2)
    at_iron = scene.pixel(iron)
    v_min, v_max = patch(minip, at_iron), patch(mip, at_iron)
    v_clean = patch(minip, scene.pixel(clean))
    assert v_min < v_max - 10, (v_min, v_max)
    assert v_min < 0.5 * v_clean, (v_min, v_clean)  # the void, not just a darker projection
    # the body mask keeps air from swamping MinIP: most of the volume's footprint is brighter than the void
    footprint = minip > 0
    assert footprint.mean() > 0.2
    assert (minip[footprint] > v_min + 20).mean() > 0.8


def test_body_mask_fills_the_void_and_excludes_air(gre_visit, gre):
    mask = body_mask(gre.array)
    ijk = np.rint(gre.patient_to_index(gre_visit.truth["discs"]["L4/L5"]["iron"]["centre"])).astype(int)
    assert mask[ijk[2], ijk[1], ijk[0]]  # the void is inside the body
    assert gre.array[ijk[2], ijk[1], ijk[0]] < np.percentile(gre.array[mask], 5)  # and really dark
    assert 0.2 < mask.mean() < 0.95
    assert not mask[:, :, -1].all()  # posterior air (columns run anterior → posterior) is outside


# ---------------------------------------------------------------------------- transfer function
def test_window_opacity_and_colormap_api(scene, gre):
    pl = scene.pipeline
    pl.set_volume(gre, preset="MR soft tissue")
    pl.set_window(100, 600)
    pl.set_opacity_points([(0.0, 0.0), (1.0, 0.5)])
    assert pl.opacity_tf.GetValue(350) == pytest.approx(0.25, abs=1e-6)
    assert pl.opacity_tf.GetValue(600) == pytest.approx(0.5, abs=1e-6)
    pl.set_colormap("gray")
    assert pl.color_tf.GetColor(600) == pytest.approx((1, 1, 1))
    assert pl.color_tf.GetColor(100) == pytest.approx((0, 0, 0))
    before = scene.grab()
    pl.set_window(300, 1200)
    assert np.abs(scene.grab().astype(int) - before).mean() > 1
    with pytest.raises(KeyError):
        pl.set_colormap("nope")
    with pytest.raises(KeyError):
        pl.set_preset("nope")


# ------------------------------------------------------------------------------ clip box, planes
def test_clip_box_changes_image(scene, gre):
    pl = scene.pipeline
    pl.set_volume(gre, preset="MIP")
    full = scene.grab().mean(axis=2)
    b = pl.bounds()
    ymid = (b[2] + b[3]) / 2  # keep the anterior half (LPS: y grows posteriorly)
    pl.set_clip_box((b[0] - 1, b[1] + 1, b[2] - 1, ymid, b[4] - 1, b[5] + 1))
    pl.clip_outline_actor.SetVisibility(False)
    clipped = scene.grab().mean(axis=2)
    assert np.abs(full - clipped).mean() > 2
    post = scene.pixel((0.0, b[2] + 0.8 * (b[3] - b[2]), (b[4] + b[5]) / 2))
    ant = scene.pixel((0.0, b[2] + 0.2 * (b[3] - b[2]), (b[4] + b[5]) / 2))
    assert patch(clipped, post, 3) < 5 < patch(full, post, 3)  # posterior half is gone
    assert patch(clipped, ant, 3) == pytest.approx(patch(full, ant, 3), abs=3)
    pl.set_clip_box(None)
    assert np.abs(scene.grab().mean(axis=2) - full).mean() < 0.5
    with pytest.raises(ValueError):
        pl.set_clip_box((1, 0, 0, 1, 0, 1))


def test_planes_pass_through_the_point(scene, gre):
    pl = scene.pipeline
    pl.set_volume(gre, preset="MIP")
    point = gre.index_to_patient([80.0, 70.0, 4.0])
    pl.set_planes(point)
    for actor in pl.plane_actors:
        assert actor.GetVisibility()
        poly = actor.GetMapper().GetInput()
        pts = vtk_to_numpy(poly.GetPoints().GetData())
        assert len(pts) == 4
        n = np.cross(pts[1] - pts[0], pts[3] - pts[0])
        n /= np.linalg.norm(n)
        assert abs(np.dot(point - pts[0], n)) < 1e-6  # the point lies in the plane
    colours = pl.plane_colors()
    assert len(set(colours)) == 3
    before = scene.grab()
    pl.set_planes(None)
    assert not any(a.GetVisibility() for a in pl.plane_actors)
    assert np.abs(scene.grab().astype(int) - before).sum() > 0


# ------------------------------------------------------------------------------------------ LOD
def test_interactive_lod_uses_coarse_data(scene):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 1000, size=(100, 128, 128), dtype=np.uint16)
    vol = Volume(arr, np.diag([0.8, 0.8, 1.2, 1.0]))
    pl = scene.pipeline
    pl.set_volume(vol, preset="MR soft tissue")
    assert not pl.interactive
    assert pl.active_input.GetDimensions() == (128, 128, 100)
    assert pl.active_mapper.GetImageSampleDistance() == 1.0
    scene.grab()
    t = time.perf_counter()
    scene.grab()
    t_full = time.perf_counter() - t

    pl.set_interactive(True)
    assert pl.interactive
    assert pl.active_input.GetDimensions() == (64, 64, 50)
    assert pl.active_input.GetSpacing() == pytest.approx((1.6, 1.6, 2.4))
    assert pl.active_mapper.GetImageSampleDistance() > 1.0
    assert pl.active_mapper.GetAutoAdjustSampleDistances() == 0
    coarse_img = scene.grab()
    t = time.perf_counter()
    scene.grab()
    t_lod = time.perf_counter() - t
    print(f"full {t_full * 1000:.0f} ms, interactive {t_lod * 1000:.0f} ms, ×{t_full / max(t_lod, 1e-6):.1f}")
    assert coarse_img.mean() > 5  # still shows the volume

    pl.set_interactive(False)
    assert pl.active_input.GetDimensions() == (128, 128, 100)
    assert pl.active_mapper.GetImageSampleDistance() == 1.0


def test_thin_axes_are_not_downsampled(scene, gre):
    scene.pipeline.set_volume(gre)  # 9 sagittal slices of 160×160
    scene.pipeline.set_interactive(True)
    assert scene.pipeline.active_input.GetDimensions() == (80, 80, 9)


def test_set_volume_none_removes_props(scene, gre):
    scene.pipeline.set_volume(gre)
    assert scene.ren.GetVolumes().GetNumberOfItems() == 1
    scene.pipeline.set_volume(None)
    assert scene.ren.GetVolumes().GetNumberOfItems() == 0
    assert scene.ren.GetActors().GetNumberOfItems() == 0

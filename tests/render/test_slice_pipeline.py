"""SlicePipeline rendered offscreen (EGL): geometry, orientation, aspect, window/level, interpolation."""
from __future__ import annotations

import numpy as np
import pytest

from discviewer import RESEARCH_USE_NOTICE
from discviewer.render.slice_pipeline import SlicePipeline, plane_frame
from discviewer.volume import Volume
from tests.render.conftest import blob_centroid
from tests.synthetic import make_affine


def marker_volume(orientation="sagittal", spacing=(0.5, 1.0, 3.0), shape=(9, 60, 80), marker=(6, 10, 12), size=3):
    """Dark volume (value 10) with one bright cube (value 1000) starting at index (slice, row, column) `marker`."""
    arr = np.full(shape, 10, dtype=np.int16)
    k, r, c = marker
    arr[k:k + 1, r:r + size, c:c + size] = 1000
    vol = Volume(arr, make_affine(orientation, spacing))
    centre_index = np.array([c + (size - 1) / 2, r + (size - 1) / 2, k], float)
    return vol, vol.index_to_patient(centre_index)


def render(off, pipe):
    pipe.set_window(505.0, 990.0)  # 10 → black, 1000 → white
    return off.render()


def predicted_pixel(off, pipe, lps):
    x, y = pipe.patient_to_display(lps)
    _, h = off.size
    return x, h - y


def test_render_not_blank_and_overlays(offscreen, phantom_volume):
    off = offscreen(400, 400)
    pipe = SlicePipeline(off.renderer, plane="sag")
    pipe.set_volume(phantom_volume, label="P1 baseline T2")
    rgb = off.render()
    assert rgb.shape == (400, 400, 3)
    assert rgb.std() > 20 and rgb.mean() > 20
    assert pipe.orientation_labels() == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert pipe.overlay_text("notice") == RESEARCH_USE_NOTICE
    assert pipe.overlay_text("series") == "P1 baseline T2"
    assert pipe.overlay_text("slice") == f"Sagittal {pipe.slice_index() + 1}/{pipe.slice_count()}"
    assert pipe.overlay_text("window").startswith("W ")
    assert pipe.overlay_text("scale").endswith(" mm")
    # the scale bar length matches the camera: its pixel length × mm/pixel = its label
    ov = pipe.overlays
    assert ov.scale_bar_px * pipe.mm_per_pixel() == pytest.approx(ov.scale_bar_mm)
    assert ov.scale_bar_px <= 0.25 * 400 + 1e-6


@pytest.mark.parametrize("plane,letters", [
    ("sag", {"left": "A", "right": "P", "top": "S", "bottom": "I"}),
    ("cor", {"left": "R", "right": "L", "top": "S", "bottom": "I"}),
    ("ax", {"left": "R", "right": "L", "top": "A", "bottom": "P"}),
])
@pytest.mark.parametrize("orientation", ["sagittal", "axial", "coronal"])
def test_letters_follow_radiological_convention_for_any_acquisition(offscreen, plane, letters, orientation):
    vol, _ = marker_volume(orientation)
    pipe = SlicePipeline(offscreen(64, 64).renderer, plane=plane)
    pipe.set_volume(vol)
    assert pipe.orientation_labels() == letters
    assert pipe.is_native() == ({"sagittal": "sag", "axial": "ax", "coronal": "cor"}[orientation] == plane)


def test_sagittal_marker_anterior_superior_shows_top_left(offscreen):
    # sagittal acquisition: columns run A→P, rows S→I; the marker is near column 0 / row 0 = anterior-superior
    vol, lps = marker_volume("sagittal", marker=(4, 8, 10))
    off = offscreen(400, 400)
    pipe = SlicePipeline(off.renderer, plane="sag", overlays=False)
    pipe.set_volume(vol, point=lps)
    assert pipe.slice_index() == 4 and pipe.is_native()
    rgb = render(off, pipe)
    x, y, _ = blob_centroid(rgb)
    assert x < 200 and y < 200  # A on the left, S at the top
    px, py = predicted_pixel(off, pipe, lps)
    assert (x, y) == pytest.approx((px, py), abs=1.5)
    # the marker is anterior & superior of the volume centre in patient terms too
    centre = vol.index_to_patient(np.array([39.5, 29.5, 4.0]))
    assert lps[1] < centre[1] and lps[2] > centre[2]


@pytest.mark.parametrize("plane", ["ax", "cor"])
def test_reformat_of_sagittal_puts_point_at_right_place(offscreen, plane):
    vol, lps = marker_volume("sagittal", marker=(6, 12, 15))
    off = offscreen(400, 300)
    pipe = SlicePipeline(off.renderer, plane=plane, overlays=False)
    pipe.set_volume(vol, point=lps)
    assert not pipe.is_native()
    rgb = render(off, pipe)
    x, y, _ = blob_centroid(rgb)
    px, py = predicted_pixel(off, pipe, lps)
    assert (x, y) == pytest.approx((px, py), abs=2.0)
    # independent of the pipeline's own mapping: sides from patient directions
    centre = vol.index_to_patient((np.array(vol.shape[::-1]) - 1) / 2.0)
    cx, cy = predicted_pixel(off, pipe, centre)
    d = lps - centre
    if plane == "ax":  # patient Left (+x) on screen-right, Anterior (−y) at the top
        assert np.sign(x - cx) == np.sign(d[0]) and np.sign(cy - y) == np.sign(-d[1])
    else:  # coronal: Left on screen-right, Superior at the top
        assert np.sign(x - cx) == np.sign(d[0]) and np.sign(cy - y) == np.sign(d[2])
    # the pipeline maps the screen position back to the same patient point
    back = pipe.display_to_patient(*pipe.patient_to_display(lps))
    assert np.allclose(back[[0, 1, 2]], lps, atol=1e-6 + abs(np.dot(lps - back, pipe.frame()[2])))
    assert pipe.value_at(lps) == 1000.0


def test_anisotropic_voxels_not_squashed(offscreen):
    # sphere of radius 20 mm in a sagittal volume with 4 mm slices and 0.8 mm pixels
    spacing = (0.8, 0.8, 4.0)
    shape = (21, 80, 80)
    aff = make_affine("sagittal", spacing)
    vol0 = Volume(np.zeros(shape, np.int16), aff)
    ijk = np.stack(np.meshgrid(np.arange(shape[2]), np.arange(shape[1]), np.arange(shape[0]), indexing="ij"), -1)
    xyz = vol0.index_to_patient(ijk.reshape(-1, 3))
    centre = vol0.index_to_patient(np.array([39.5, 39.5, 10.0]))
    inside = (np.linalg.norm(xyz - centre, axis=1) <= 20.0).reshape(shape[2], shape[1], shape[0])
    arr = np.where(inside.transpose(2, 1, 0), 1000, 10).astype(np.int16)
    vol = Volume(arr, aff)
    for plane in ("sag", "ax", "cor"):
        off = offscreen(400, 400)
        pipe = SlicePipeline(off.renderer, plane=plane, overlays=False)
        pipe.set_volume(vol, point=centre)
        pipe.set_interpolation("nearest")
        rgb = render(off, pipe)
        _, _, mask = blob_centroid(rgb)
        ys, xs = np.nonzero(mask)
        w_mm = (xs.max() - xs.min() + 1) * pipe.mm_per_pixel()
        h_mm = (ys.max() - ys.min() + 1) * pipe.mm_per_pixel()
        # true diameter 40 mm; sampling adds at most one voxel (4 mm along the slice axis)
        assert 35.0 <= w_mm <= 44.5 and 35.0 <= h_mm <= 44.5, (plane, w_mm, h_mm)
        assert abs(w_mm - h_mm) <= 4.5, (plane, w_mm, h_mm)


def test_window_level_and_invert(offscreen):
    arr = np.zeros((3, 40, 40), np.int16)
    arr[:, :, :20] = 100
    arr[:, :, 20:] = 300
    vol = Volume(arr, make_affine("axial", (1.0, 1.0, 1.0)))
    off = offscreen(200, 200)
    pipe = SlicePipeline(off.renderer, plane="ax", overlays=False)
    pipe.set_volume(vol)

    def sides():
        rgb = off.render().astype(float)
        return rgb[90:110, 40:60].mean(), rgb[90:110, 140:160].mean()  # column 0 side is screen-left (R)

    pipe.set_window(200.0, 400.0)  # 100 → 25 %, 300 → 75 %
    left, right = sides()
    assert left == pytest.approx(255 * 0.25, abs=6) and right == pytest.approx(255 * 0.75, abs=6)
    pipe.set_window(300.0, 400.0)  # everything darker
    l2, r2 = sides()
    assert l2 < left - 40 and r2 < right - 40
    pipe.set_window(200.0, 100.0)  # narrow: 100 → black, 300 → white
    l3, r3 = sides()
    assert l3 < 3 and r3 > 252
    pipe.set_inverted(True)
    l4, r4 = sides()
    assert l4 > 252 and r4 < 3
    assert "INV" in pipe.window_text()


def test_nearest_and_linear_differ_on_checkerboard(offscreen):
    k, r, c = np.indices((1, 8, 8))
    arr = np.where((r + c) % 2 == 0, 0, 1000).astype(np.int16)
    vol = Volume(arr, make_affine("axial", (1.0, 1.0, 1.0)))
    off = offscreen(256, 256)
    pipe = SlicePipeline(off.renderer, plane="ax", overlays=False)
    pipe.set_volume(vol)
    pipe.set_window(500.0, 1000.0)
    pipe.set_interpolation("nearest")
    near = off.render()
    pipe.set_interpolation("linear")
    lin = off.render()
    inner = (slice(60, 196), slice(60, 196))
    n_levels = np.unique(near[inner][..., 0])
    assert set(n_levels.tolist()) <= {0, 255}  # nearest: only the two checker values
    mid = ((lin[inner][..., 0] > 30) & (lin[inner][..., 0] < 225)).mean()
    assert mid > 0.2  # linear: blended transitions
    assert np.abs(near.astype(int) - lin.astype(int)).mean() > 10


def test_step_snap_and_point(offscreen):
    vol, lps = marker_volume("sagittal")
    pipe = SlicePipeline(offscreen(64, 64).renderer, plane="sag")
    pipe.set_volume(vol)
    n = pipe.slice_count()
    assert n == 9 and pipe.slice_spacing() == pytest.approx(3.0)
    pipe.set_point(lps + pipe.frame()[2] * 1.2)  # 1.2 mm off the slice: snaps back to it
    assert pipe.slice_index() == 6
    moved = pipe.step(1)  # one slice towards the viewer
    assert moved
    assert pipe.point() @ pipe.frame()[2] == pytest.approx(lps @ pipe.frame()[2] + 3.0)  # onto the next slice
    assert not pipe.set_slice(pipe.slice_index())
    pipe.set_slice(100)
    assert pipe.slice_index() == n - 1
    pipe.set_plane("ax")
    assert pipe.slice_count() == 60 and pipe.slice_spacing() == pytest.approx(1.0)


def test_crosshair_drawn(offscreen):
    vol, lps = marker_volume("axial", spacing=(1.0, 1.0, 1.0))
    off = offscreen(300, 300)
    pipe = SlicePipeline(off.renderer, plane="ax", overlays=False)
    pipe.set_volume(vol)
    pipe.set_window(-1000.0, 10.0)  # image all white
    before = off.render()
    pipe.set_crosshair(pipe.point())
    after = off.render()
    x, y = predicted_pixel(off, pipe, pipe.point())
    col = after[int(round(y)) + 20, int(x) - 1:int(x) + 2]  # on the vertical line, below the centre
    assert (np.abs(after.astype(int) - before.astype(int)).sum(axis=-1) > 0).sum() > 200
    assert (col[:, 0] < 200).any() and (col[:, 1] > 200).all()  # green line over white
    pipe.set_crosshair(None)
    assert np.array_equal(off.render(), before)


def test_reslice_path_matches_direct_path(offscreen, phantom_volume):
    for plane in ("sag", "ax"):
        imgs = []
        for force in (False, True):
            off = offscreen(300, 300)
            pipe = SlicePipeline(off.renderer, plane=plane, overlays=False)
            pipe.force_reslice = force
            pipe.set_volume(phantom_volume)
            pipe.set_interpolation("nearest")
            assert pipe.uses_reslice() == force
            imgs.append(off.render().astype(int))
        assert np.abs(imgs[0] - imgs[1]).mean() < 1.0, plane


def test_sheared_volume_uses_reslice(offscreen):
    aff = make_affine("axial", (1.0, 1.0, 2.0))
    aff[1, 2] = 0.5  # gantry tilt: slice step has an in-plane component
    vol = Volume(np.arange(4 * 20 * 20, dtype=np.int16).reshape(4, 20, 20), aff)
    off = offscreen(100, 100)
    pipe = SlicePipeline(off.renderer, plane="ax")
    pipe.set_volume(vol)
    assert pipe.uses_reslice()
    assert off.render().std() > 5
    r, u, n, axes = plane_frame(aff, "ax")
    assert axes[2] == 2 and abs(n[2]) == pytest.approx(1.0)


def test_zoom_pan_and_display_mapping(offscreen, phantom_volume):
    off = offscreen(400, 300)
    pipe = SlicePipeline(off.renderer, plane="sag")
    pipe.set_volume(phantom_volume)
    off.render()
    p = pipe.display_to_patient(100, 120)
    s0 = pipe.mm_per_pixel()
    pipe.zoom(2.0, center=(100, 120))
    assert pipe.mm_per_pixel() == pytest.approx(s0 / 2)
    assert np.allclose(pipe.display_to_patient(100, 120), p)  # zoom keeps the anchor
    pipe.pan(10, -5)
    assert np.allclose(pipe.patient_to_display(p), (110, 115))
    pipe.reset_camera()
    assert pipe.mm_per_pixel() == pytest.approx(s0)


def test_offscreen_save_png(offscreen, phantom_volume, tmp_path):
    off = offscreen(120, 100)
    pipe = SlicePipeline(off.renderer, plane="cor")
    pipe.set_volume(phantom_volume)
    rgb = off.save_png(tmp_path / "x.png")
    data = (tmp_path / "x.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and rgb.shape == (100, 120, 3)


# ---------------------------------------------------------------------------- overlay layer
def overlay_scene(offscreen, *, colormap="green", plane="sag"):
    """Grey base (500 → 128 with window 500/1000) and an overlay on the same grid that is 0 except a
    bright square (1000) on slice 2; returns (off, pipe, base render, overlay volume, square centre LPS)."""
    aff = make_affine("sagittal", (1.0, 1.0, 3.0))
    base = Volume(np.full((5, 60, 60), 500, np.int16), aff)
    arr = np.zeros((5, 60, 60), np.float32)
    arr[2, 20:40, 20:40] = 1000
    over = Volume(arr, aff)
    off = offscreen(300, 300)
    pipe = SlicePipeline(off.renderer, plane=plane, overlays=False)
    pipe.set_volume(base, window=(500.0, 1000.0))
    centre = base.index_to_patient(np.array([29.5, 29.5, 2.0]))
    pipe.set_point(centre)
    return off, pipe, off.render(), over, centre


def square_pixel(off, pipe, lps):
    x, y = predicted_pixel(off, pipe, lps)
    return int(round(y)), int(round(x))


@pytest.mark.parametrize("colormap,top", [("green", (0, 255, 0)), ("magenta", (255, 0, 255)),
                                          ("hot", (255, 255, 255)), ("gray", (255, 255, 255))])
def test_overlay_opacity_blends_colormap(offscreen, colormap, top):
    off, pipe, base_rgb, over, centre = overlay_scene(offscreen, colormap=colormap)
    r, c = square_pixel(off, pipe, centre)
    assert tuple(base_rgb[r, c]) == (128, 128, 128)
    pipe.set_overlay(over, opacity=0.0, colormap=colormap, window=(500.0, 1000.0))
    assert pipe.overlay() is over and not pipe.overlay_uses_reslice()
    assert np.array_equal(off.render(), base_rgb)  # opacity 0: the base exactly
    pipe.set_overlay_opacity(0.5)
    rgb = off.render()
    expect = 0.5 * np.array(top) + 0.5 * 128
    assert np.allclose(rgb[r, c], expect, atol=3)
    assert np.allclose(rgb[r + 80, c], 64, atol=3)  # outside the square: overlay value 0 → black, half blended
    pipe.set_overlay_opacity(1.0)
    rgb = off.render()
    assert tuple(rgb[r, c]) == top
    assert tuple(rgb[r + 80, c]) == (0, 0, 0)
    # removing it restores the base image exactly
    pipe.set_overlay(None)
    assert pipe.overlay() is None
    assert np.array_equal(off.render(), base_rgb)


def test_overlay_follows_step_and_plane(offscreen):
    off, pipe, base_rgb, over, centre = overlay_scene(offscreen)
    pipe.set_overlay(over, opacity=1.0, colormap="green", window=(500.0, 1000.0))
    r, c = square_pixel(off, pipe, centre)
    assert tuple(off.render()[r, c]) == (0, 255, 0)
    pipe.step(1)  # slice 1 or 3: the overlay there is 0 → black at opacity 1
    assert pipe.slice_index() != 2
    assert tuple(off.render()[r, c]) == (0, 0, 0)
    pipe.set_point(centre)
    assert tuple(off.render()[r, c]) == (0, 255, 0)
    # the other planes cut the same square (3 mm thick along the sagittal normal)
    for plane in ("ax", "cor"):
        pipe.set_plane(plane)
        pipe.set_point(centre)
        rgb = off.render()
        r2, c2 = square_pixel(off, pipe, centre)
        red, green, blue = (int(v) for v in rgb[r2, c2])
        assert green > 200 and red < 20 and blue < 20, plane
        x, y, mask = blob_centroid(rgb, threshold=200, channel=1)
        assert abs(x - c2) < 3 and abs(y - r2) < 3
    # zoom keeps it registered with the base
    pipe.set_plane("sag")
    pipe.set_point(centre)
    pipe.zoom(2.0)
    rgb = off.render()
    r3, c3 = square_pixel(off, pipe, centre)
    assert tuple(rgb[r3, c3]) == (0, 255, 0)


def test_overlay_interpolation_follows_base(offscreen):
    off, pipe, base_rgb, over, centre = overlay_scene(offscreen)
    pipe.set_overlay(over, opacity=1.0)
    assert pipe._ov.property.GetInterpolationType() == 1
    pipe.set_interpolation("nearest")
    assert pipe._ov.property.GetInterpolationType() == 0
    pipe.set_display_interpolation("linear")
    assert pipe._ov.property.GetInterpolationType() == 1


def test_overlay_other_grid_is_resampled_and_transparent_outside(offscreen):
    off, pipe, base_rgb, over, centre = overlay_scene(offscreen)
    aff = np.asarray(over.affine, float)
    # 2× finer grid over the same field: the same square, resampled onto the base plane
    fine_aff = aff.copy()
    fine_aff[:3, :3] *= 0.5
    fine_aff[:3, 3] -= 0.25 * (aff[:3, 0] + aff[:3, 1] + aff[:3, 2])  # same outer edges
    fine = np.zeros((10, 120, 120), np.float32)
    fine[4:6, 40:80, 40:80] = 1000
    pipe.set_overlay(Volume(fine, fine_aff), opacity=1.0, colormap="green", window=(500.0, 1000.0))
    assert pipe.overlay_uses_reslice()
    r, c = square_pixel(off, pipe, centre)
    rgb = off.render()
    assert tuple(rgb[r, c]) == (0, 255, 0)
    assert tuple(rgb[r + 80, c]) == (0, 0, 0)
    # an overlay covering only part of the base: outside its volume the base shows through
    shifted = aff.copy()
    shifted[:3, 3] += 30.0 * aff[:3, 1] / np.linalg.norm(aff[:3, 1])  # 30 mm along the rows
    pipe.set_overlay(Volume(np.full((5, 60, 60), 1000, np.float32), shifted), opacity=1.0, colormap="magenta",
                     window=(500.0, 1000.0))
    rgb = off.render()
    inside = pipe.patient_to_display(shifted[:3, 3] + 10.0 * aff[:3, 1] + 20.0 * aff[:3, 0] + 2 * aff[:3, 2])
    outside = pipe.patient_to_display(aff[:3, 3] + 10.0 * aff[:3, 1] + 20.0 * aff[:3, 0] + 2 * aff[:3, 2])
    h = off.size[1]
    assert tuple(rgb[int(h - inside[1]), int(inside[0])]) == (255, 0, 255)
    assert tuple(rgb[int(h - outside[1]), int(outside[0])]) == (128, 128, 128)


def test_overlay_window_colormap_and_errors(offscreen):
    off, pipe, base_rgb, over, centre = overlay_scene(offscreen)
    with pytest.raises(ValueError):
        pipe.set_overlay(over, colormap="jet")
    pipe.set_overlay(over, opacity=1.0, colormap="gray")
    assert pipe.overlay_window() == pytest.approx(pipe._ov.auto)
    assert pipe.set_overlay_window(1500.0, 1000.0)  # the square (1000) is now at the bottom: black
    assert not pipe.set_overlay_window(1500.0, 1000.0)
    r, c = square_pixel(off, pipe, centre)
    assert tuple(off.render()[r, c]) == (0, 0, 0)
    pipe.set_overlay_window(500.0, 1000.0)
    pipe.set_overlay_colormap("magenta")
    assert tuple(off.render()[r, c]) == (255, 0, 255)
    assert pipe.set_overlay_opacity(7.0) is False  # clamped to 1, unchanged
    assert pipe.overlay_opacity() == 1.0
    # the overlay survives clear() + a new base volume and is removed with close()
    pipe.clear()
    assert not pipe._ov.actor.GetVisibility()
    pipe.set_volume(Volume(np.full((5, 60, 60), 500, np.int16), over.affine), window=(500.0, 1000.0))
    pipe.set_point(centre)
    assert tuple(off.render()[r, c]) == (255, 0, 255)
    pipe.close()
    assert off.renderer.GetViewProps().GetNumberOfItems() == 0


def test_interactive_level_of_detail(offscreen):
    off, pipe, base_rgb, over, centre = overlay_scene(offscreen)
    pipe.set_overlay(over, opacity=0.5)
    assert pipe.interpolation == "linear" and not pipe.interactive
    pipe.set_interactive(True)
    assert pipe.image_property.GetInterpolationType() == 0 and pipe._ov.property.GetInterpolationType() == 0
    pipe.set_interpolation("linear")  # a mode change while interacting keeps the cheap filter until refined
    assert pipe.image_property.GetInterpolationType() == 0
    pipe.set_interactive(False)
    assert pipe.image_property.GetInterpolationType() == 1 and pipe._ov.property.GetInterpolationType() == 1
    pipe.set_interpolation("nearest")
    pipe.set_interactive(True)
    pipe.set_interactive(False)
    assert pipe.image_property.GetInterpolationType() == 0

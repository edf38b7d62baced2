"""AnnotationLayer rendered offscreen (EGL): items where expected, labels, plane filtering, selection,
preview, constant-size handles, teardown; and the overlay ColorBar."""
from __future__ import annotations

import numpy as np
import pytest

from discviewer.render.annotation_layer import (
    COLOR,
    PREVIEW_COLOR,
    SELECTED_COLOR,
    AnnotationLayer,
    angle_deg,
    on_plane,
    ruler_length,
    value_text,
)
from discviewer.render.overlays import ColorBar
from discviewer.render.slice_pipeline import SlicePipeline, colormap_table
from discviewer.volume import Volume
from discviewer.workspace.data import Annotation
from tests.synthetic import make_affine

W, H = 400, 400


def dark_volume(spacing=(0.5, 1.0, 3.0)):
    return Volume(np.full((7, 80, 100), 10, dtype=np.int16), make_affine("sagittal", spacing))


@pytest.fixture
def scene(offscreen):
    off = offscreen(W, H)
    pipe = SlicePipeline(off.renderer, plane="sag")
    pipe.set_volume(dark_volume())
    pipe.set_window(505.0, 990.0)  # the image is black
    pipe.overlays.set_visible(False)
    layer = AnnotationLayer(off.renderer)
    layer.sync(pipe)
    yield off, pipe, layer
    layer.remove()


def pixel(off, pipe, lps):
    x, y = pipe.patient_to_display(lps)
    return int(round(x)), int(round(H - y))


def near_color(rgb, xy, color, radius=2, tol=60):
    x, y = xy
    patch = rgb[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1].reshape(-1, 3).astype(int)
    target = np.array([round(255 * c) for c in color])
    return bool(np.any(np.abs(patch - target).max(axis=1) <= tol))


def ann(id_, kind, points, layer, **kw):
    extra = kw.pop("extra", {"plane": layer.plane(), "plane_name": "sag"})
    return Annotation(id_, kind, points=tuple(tuple(float(c) for c in p) for p in points), extra=extra, **kw)


def test_ruler_drawn_where_expected_with_label(scene):
    off, pipe, layer = scene
    a = pipe.plane_to_patient(-15.0, -10.0)
    b = pipe.plane_to_patient(15.0, 10.0)
    r = ann("r", "ruler", [a, b], layer, values={"length_mm": ruler_length([a, b])}, units={"length_mm": "mm"})
    layer.set_items([r])
    rgb = off.render()
    for t in (0.2, 0.5, 0.8):
        assert near_color(rgb, pixel(off, pipe, a + t * (b - a)), COLOR), f"ruler not drawn at t={t}"
    assert not near_color(rgb, pixel(off, pipe, pipe.plane_to_patient(-15.0, 10.0)), COLOR, radius=3)
    assert layer.visible_ids() == ["r"]
    assert layer.label_texts() == [f"{ruler_length([a, b]):.1f} mm"]
    actors = layer.label_actors()
    assert [x.GetInput() for x in actors] == ["36.1 mm"]
    # the label's text pixels are to the right of the ruler's right end, not on the left
    xe, ye = pixel(off, pipe, b)
    right = rgb[ye - 8:ye + 8, xe + 8:xe + 60]
    assert right.max() > 150


def test_items_off_plane_hidden_and_follow_slice(scene):
    off, pipe, layer = scene
    spacing = pipe.slice_spacing()
    assert spacing == pytest.approx(3.0)
    _, _, n = pipe.frame()
    here = layer.plane()
    a, b = pipe.plane_to_patient(-10, 0), pipe.plane_to_patient(10, 0)
    shifted = {"origin": list(np.asarray(here["origin"]) + 0.4 * spacing * n), "normal": here["normal"]}
    far = {"origin": list(np.asarray(here["origin"]) + 1.0 * spacing * n), "normal": here["normal"]}
    axial = {"origin": here["origin"], "normal": [0.0, 0.0, 1.0]}
    items = [ann("on", "ruler", [a, b], layer),
             ann("near", "ruler", [a, b], layer, extra={"plane": shifted}),
             ann("far", "ruler", [a, b], layer, extra={"plane": far}),
             ann("axial", "ruler", [a, b], layer, extra={"plane": axial}),
             ann("pt_on", "point", [a + 0.3 * spacing * n], layer),
             ann("pt_off", "point", [a + 0.7 * spacing * n], layer),
             ann("lvl", "disc_label", [b], layer, level="L4/L5"),
             ann("score", "score", [], layer)]
    layer.set_items(items)
    assert layer.visible_ids() == ["on", "near", "pt_on", "lvl"]
    assert "L4/L5" in layer.label_texts()
    # next slice (+N, one spacing on): the ruler stored there and the point 0.3 spacing from it
    assert pipe.step(1)
    layer.sync(pipe)
    assert layer.visible_ids() == ["far", "pt_off"]
    assert not on_plane(items[0], pipe.plane_origin(), n, spacing)
    pipe.set_plane("ax")  # another orientation: the ruler drawn on an axial plane, none of the sagittal ones
    layer.sync(pipe)
    ids = layer.visible_ids()
    assert "axial" in ids and not {"on", "near", "far"} & set(ids)
    layer.set_items([])
    assert off.render()[:-30].max() < 60  # nothing drawn on the black image (overlays hidden but the notice)


def test_selected_highlight_handles_and_preview(scene):
    off, pipe, layer = scene
    a, b = pipe.plane_to_patient(-20, 15), pipe.plane_to_patient(20, 15)
    c, d = pipe.plane_to_patient(-20, -15), pipe.plane_to_patient(20, -15)
    layer.set_items([ann("x", "ruler", [a, b], layer), ann("y", "ruler", [c, d], layer)], selected_id="x")
    rgb = off.render()
    mid_x = pixel(off, pipe, (a + b) / 2)
    mid_y = pixel(off, pipe, (c + d) / 2)
    assert near_color(rgb, mid_x, SELECTED_COLOR) and not near_color(rgb, mid_x, COLOR, radius=1, tol=40)
    assert near_color(rgb, mid_y, COLOR)
    # a handle square at each end of the selected ruler (about HANDLE_PX wide), none on the other
    xa, ya = pixel(off, pipe, a)
    square = rgb[ya - 2:ya + 3, xa - 2:xa + 3].reshape(-1, 3).astype(int)
    assert (np.abs(square - np.array([64, 230, 255])).max(axis=1) < 60).sum() >= 15
    xc, yc = pixel(off, pipe, c)
    assert (np.abs(rgb[yc - 2:yc + 3, xc - 2:xc + 3].reshape(-1, 3).astype(int)
                   - np.array([64, 230, 255])).max(axis=1) < 60).sum() == 0
    # a preview polygon in progress, then cleared
    p = [pipe.plane_to_patient(u, v) for u, v in ((-30, -30), (-10, -35), (-5, -25))]
    layer.set_preview("polygon", p, label="drawing")
    rgb = off.render()
    assert near_color(rgb, pixel(off, pipe, (p[0] + p[1]) / 2), PREVIEW_COLOR)
    assert "drawing" in layer.label_texts()
    layer.clear_preview()
    rgb = off.render()
    assert not near_color(rgb, pixel(off, pipe, (p[0] + p[1]) / 2), PREVIEW_COLOR)
    assert "drawing" not in layer.label_texts()


def test_override_moves_drawing_not_model(scene):
    off, pipe, layer = scene
    a, b = pipe.plane_to_patient(-20, 0), pipe.plane_to_patient(0, 0)
    r = ann("r", "ruler", [a, b], layer)
    layer.set_items([r], selected_id="r")
    b2 = pipe.plane_to_patient(0, 20)
    layer.set_override("r", [a, b2])
    rgb = off.render()
    assert near_color(rgb, pixel(off, pipe, (a + b2) / 2), SELECTED_COLOR)
    assert not near_color(rgb, pixel(off, pipe, (a + 0.5 * (b - a)) + (b - a) * 0.3), SELECTED_COLOR, radius=1)
    assert r.points[1] == tuple(b)  # the record itself is untouched
    layer.set_override("r", None)
    assert layer.visible_items()[0].points == r.points


def test_every_kind_draws_and_labels(scene):
    off, pipe, layer = scene
    P = pipe.plane_to_patient
    items = [
        ann("pt", "point", [P(-30, 30)], layer),
        ann("tx", "text", [P(-30, 20)], layer, text="note"),
        ann("an", "angle", [P(0, 30), P(-10, 20), P(10, 20)], layer, values={"angle_deg": 90.0}),
        ann("el", "ellipse", [P(20, 20), P(28, 20), P(20, 25)], layer,
            values={"mean": 162.4, "sd": 14.0, "area_mm2": 84.2}),
        ann("pg", "polygon", [P(-30, -10), P(-20, -10), P(-25, -2)], layer, values={"mean": 5.0, "area_mm2": 40.0}),
        ann("fh", "freehand", [P(10 + 5 * np.cos(t), -5 + 5 * np.sin(t)) for t in np.linspace(0, 6, 30)], layer),
        ann("dh", "disc_height", [P(-10, -20), P(0, -19), P(10, -20), P(-10, -29), P(0, -30), P(10, -29)], layer,
            level="L4/L5", values={"DHa": 9.0, "DHm": 11.0, "DHp": 9.0, "depth_mm": 20.0}),
        ann("vb", "vb_height", [P(20, -10), P(30, -10), P(40, -10), P(20, -30), P(30, -30), P(40, -30)], layer,
            values={"VBHa": 20.0, "VBHm": 19.5, "VBHp": 20.0}, extra={"plane": layer.plane(), "vertebra": "L4"}),
        ann("dl", "disc_label", [P(0, -25)], layer, level="L4/L5"),
    ]
    layer.set_items(items)
    assert layer.visible_ids() == [a.id for a in items]
    texts = layer.label_texts()
    assert "note" in texts and "90.0°" in texts and "mean 162 ± 14, 84 mm²" in texts and "mean 5.00, 40 mm²" in texts
    assert "L4/L5  DHa 9.0 mm\nDHm 11.0 mm\nDHp 9.0 mm" in texts
    assert "L4  VBHa 20.0 mm\nVBHm 19.5 mm\nVBHp 20.0 mm" in texts and "L4/L5" in texts
    rgb = off.render()
    # the disc-height chord in the middle and the ellipse outline at the end of axis a
    assert near_color(rgb, pixel(off, pipe, P(0, -24.5)), COLOR)
    assert near_color(rgb, pixel(off, pipe, P(28, 20)), COLOR)
    assert near_color(rgb, pixel(off, pipe, P(20, 25)), COLOR)


def test_handles_keep_pixel_size_when_zoomed(scene):
    off, pipe, layer = scene
    a, b = pipe.plane_to_patient(-10, 0), pipe.plane_to_patient(10, 0)
    layer.set_items([ann("r", "ruler", [a, b], layer)], selected_id="r")

    def handle_pixels():
        rgb = off.render()
        x, y = pixel(off, pipe, a)
        patch = rgb[y - 10:y + 11, x - 10:x + 11].reshape(-1, 3).astype(int)
        return int((np.abs(patch - np.array([64, 230, 255])).max(axis=1) < 50).sum())

    n1 = handle_pixels()
    pipe.zoom(3.0)
    n2 = handle_pixels()
    assert n1 > 20 and abs(n2 - n1) <= 0.35 * n1


def test_remove_takes_everything_out(offscreen):
    off = offscreen(200, 200)
    pipe = SlicePipeline(off.renderer, plane="sag")
    pipe.set_volume(dark_volume())
    before = off.renderer.GetViewProps().GetNumberOfItems()
    layer = AnnotationLayer(off.renderer)
    layer.sync(pipe)
    layer.set_items([ann("t", "text", [pipe.plane_to_patient(0, 0)], layer, text="hello")])
    off.render()
    assert off.renderer.GetViewProps().GetNumberOfItems() > before
    layer.remove()
    layer.remove()
    assert off.renderer.GetViewProps().GetNumberOfItems() == before
    off.render()  # the removed observer is not called


def test_value_text_and_geometry_helpers():
    assert ruler_length([(0, 0, 0), (3, 4, 0)]) == pytest.approx(5.0)
    assert angle_deg([(1, 0, 0), (0, 0, 0), (0, 2, 0)]) == pytest.approx(90.0)
    a = Annotation("i", "ellipse", values={"mean": 161.6, "sd": 13.8, "area_mm2": 84.4}, units={"mean": ""})
    assert value_text(a) == "mean 162 ± 14, 84 mm²"
    a = Annotation("i", "polygon", values={"mean": 35.24, "sd": 3.31, "area_mm2": 4.44}, units={"mean": "s⁻¹"})
    assert value_text(a) == "mean 35.2 ± 3.3 s⁻¹, 4.4 mm²"
    a = Annotation("i", "disc_height", values={"DHm": 9.04})
    assert value_text(a) == "DHm 9.0 mm"
    assert value_text(Annotation("i", "ruler")) == ""


def test_color_bar_renders(offscreen):
    off = offscreen(400, 400)
    off.renderer.SetBackground(0.0, 0.0, 0.0)
    bar = ColorBar(off.renderer, title="R2* (s⁻¹)", table=colormap_table("hot"), vmin=0.0, vmax=80.0)
    rgb = off.render()
    assert bar.title() == "R2* (s⁻¹)" and bar.range() == (0.0, 80.0)
    region = rgb[:, int(0.86 * 400):]
    red = (region[..., 0].astype(int) - region[..., 2].astype(int)) > 100  # hot colours: red/orange
    assert red.sum() > 100
    ys = np.nonzero(red)[0]
    assert ys.min() > 20 and ys.max() < 200  # the upper right, clear of the notice row
    # the top of the bar is brighter than the bottom (hot: black → white)
    col = region[:, np.nonzero(red.any(axis=0))[0][0] + 2].astype(int).sum(axis=1)
    assert col[ys.min() + 2] > col[ys.max() - 2]
    bar.set_visible(False)
    assert not (off.render()[:, int(0.86 * 400):, 0] > 150).any()
    bar.remove()


# ---------------------------------------------------------------------------- label layout
def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _distance(box, x, y) -> float:
    nx, ny = min(max(x, box[0]), box[2]), min(max(y, box[1]), box[3])
    return float(np.hypot(nx - x, ny - y))


def crowded_disc(layer, P):
    """A disc with its level label, a disc height, an ROI and an iron result on that ROI, and a ruler
    ending at the disc: at their default places (right of each anchor) the labels overlap."""
    return [
        ann("dh", "disc_height", [P(-10, 5), P(0, 6), P(10, 5), P(-10, -4), P(0, -5), P(10, -4)], layer,
            level="L4/L5", values={"DHa": 9.1, "DHm": 9.3, "DHp": 3.9}),
        ann("lvl", "disc_label", [P(8, 0)], layer, level="L4/L5"),
        ann("roi", "ellipse", [P(0, 0), P(6, 0), P(0, 3)], layer, values={"mean": 162.4, "sd": 14.0, "area_mm2": 84.2}),
        ann("fe", "iron", [P(0, 0), P(6, 0), P(0, 3)], layer,
            values={"void_volume_mm3": 211.0, "contrast_ratio": -0.73},
            extra={"plane": layer.plane(), "roi_kind": "ellipse"}),
        ann("r", "ruler", [P(-30, 12), P(9, 2)], layer, values={"length_mm": 40.3}),
        ann("txt", "text", [P(9, -1)], layer, text="annulus tear?"),
    ]


def check_layout(layout, size, scale=1.0):
    """No two label boxes intersect; each stays in the viewport, near its anchor, with a leader
    line to it when it had to move away."""
    from discviewer.render.annotation_layer import LABEL_GAP_PX, LABEL_RINGS, LABEL_STEP_PX, LEADER_MIN_PX

    w, h = size
    bound = (LABEL_GAP_PX + LABEL_RINGS * max(LABEL_STEP_PX) + 2) * scale
    for i, a in enumerate(layout):
        x0, y0, x1, y1 = a["box"]
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, a
        for b in layout[i + 1:]:
            assert not _overlap(a["box"], b["box"]), (a["text"], b["text"])
        d = _distance(a["box"], *a["anchor"])
        assert d <= bound, (a["text"], d)
        if d > (LABEL_GAP_PX + LEADER_MIN_PX) * scale:
            assert a["leader"] is not None, a["text"]
            (ax, ay), (bx, by) = a["leader"]
            assert (ax, ay) == pytest.approx(a["anchor"]) and _distance(a["box"], bx, by) < 1e-6
        else:
            assert a["leader"] is None, a["text"]


def test_labels_laid_out_without_overlaps(scene):
    off, pipe, layer = scene
    P = pipe.plane_to_patient
    items = crowded_disc(layer, P)
    layer.set_items(items)
    rgb = off.render()
    layout = layer.label_layout()
    assert [d["id"] for d in layout] == ["dh", "lvl", "roi", "fe", "r", "txt"]
    # at their default places (right of the anchor, vertically centred) they would overlap
    default = [(d["anchor"][0] + 10, d["anchor"][1] - (d["box"][3] - d["box"][1]) / 2,
                d["anchor"][0] + 10 + d["box"][2] - d["box"][0], d["anchor"][1] + (d["box"][3] - d["box"][1]) / 2)
               for d in layout]
    assert sum(_overlap(a, b) for i, a in enumerate(default) for b in default[i + 1:]) >= 3
    check_layout(layout, (W, H))
    assert all(d["free"] for d in layout)
    moved = [d for d in layout if d["leader"] is not None]
    assert moved
    # the text is drawn in its box (bright pixels inside), and a leader line is drawn
    for d in layout:
        x0, y0, x1, y1 = (int(round(v)) for v in d["box"])
        assert rgb[H - y1:H - y0, x0:x1].max() > 150, d["text"]
    (ax, ay), (bx, by) = moved[0]["leader"]
    mid = (int(round((ax + bx) / 2)), int(round(H - (ay + by) / 2)))
    assert rgb[mid[1] - 1:mid[1] + 2, mid[0] - 1:mid[0] + 2].max() > 120
    # labels keep clear of every item's points (handles and markers)
    for a in items:
        for p in a.points:
            x, y = pipe.patient_to_display(p)
            for d in layout:
                x0, y0, x1, y1 = d["box"]
                assert not (x0 + 3 < x < x1 - 3 and y0 + 3 < y < y1 - 3), (d["text"], a.id)
    # stable: another render keeps it, and a fresh layer with the same input lays out the same
    off.render()
    assert layer.label_layout() == layout
    other = AnnotationLayer(off.renderer)
    other.sync(pipe)
    layer.set_visible(False)
    other.set_items(items)
    off.render()
    assert np.allclose([d["box"] for d in other.label_layout()], [d["box"] for d in layout], atol=1e-6)
    other.remove()
    layer.set_visible(True)
    # the selected item's label is placed first: nearer its anchor than when it came last
    before = next(d for d in layout if d["id"] == "lvl")
    layer.set_items(items, selected_id="lvl")
    off.render()
    sel = next(d for d in layer.label_layout() if d["id"] == "lvl")
    assert _distance(sel["box"], *sel["anchor"]) < _distance(before["box"], *before["anchor"])
    check_layout(layer.label_layout(), (W, H))


def test_label_layout_follows_camera_only_when_it_changes(scene):
    off, pipe, layer = scene
    layer.set_items(crowded_disc(layer, pipe.plane_to_patient))
    off.render()
    first = layer.label_layout()
    calls = []
    real = layer._do_layout
    layer._do_layout = lambda *a: (calls.append(1), real(*a))[1]
    off.render()
    off.render()
    assert calls == [] and layer.label_layout() == first
    pipe.zoom(0.5)  # zoomed out: the items crowd more, still no overlaps
    off.render()
    assert len(calls) == 1
    check_layout(layer.label_layout(), (W, H))
    pipe.zoom(4.0)  # zoomed in
    off.render()
    assert len(calls) == 2
    check_layout(layer.label_layout(), (W, H))
    pipe.pan(30.0, 0.0)
    off.render()
    assert len(calls) == 3
    check_layout(layer.label_layout(), (W, H))


def test_label_layout_at_export_scale_3(offscreen):
    from discviewer.render.figure import ViewState, render_view_info

    off = offscreen(W, H)
    pipe = SlicePipeline(off.renderer, plane="sag")
    vol = dark_volume()
    pipe.set_volume(vol)
    layer = AnnotationLayer(off.renderer)
    layer.sync(pipe)
    items = crowded_disc(layer, pipe.plane_to_patient)
    state = ViewState(plane="sag", point=tuple(pipe.point()), window=(505.0, 990.0), annotations=tuple(items),
                      fov_mm=60.0)
    layer.remove()
    small = render_view_info(vol, state, 400, 300)
    big = render_view_info(vol, state, 1200, 900, scale=3)
    for info, scale in ((small, 1.0), (big, 3.0)):
        labels = info.annotation_labels
        assert sorted(d["id"] for d in labels) == sorted(a.id for a in items)
        w, h = info.rgb.shape[1], info.rgb.shape[0]
        # picture rows (row 0 = top) back to y-up for the shared checks
        check_layout([dict(d, box=(d["box"][0], h - d["box"][3], d["box"][2], h - d["box"][1]),
                           anchor=(d["anchor"][0], h - d["anchor"][1]),
                           leader=None if d["leader"] is None else
                           tuple((p[0], h - p[1]) for p in d["leader"])) for d in labels], (w, h), scale)
        for d in labels:
            x0, r0, x1, r1 = (int(round(v)) for v in d["box"])
            assert info.rgb[r0:r1, x0:x1].max() > 150, d["text"]
    # the 3× export is laid out like the view (same places, three times the pixels; a label's box is
    # at least its view size × 3, as fonts do not scale exactly)
    for a, b in zip(sorted(small.annotation_labels, key=lambda d: d["id"]),
                    sorted(big.annotation_labels, key=lambda d: d["id"])):
        assert np.asarray(b["anchor"]) == pytest.approx(3 * np.asarray(a["anchor"]), abs=3)
        assert np.asarray(b["box"]) == pytest.approx(3 * np.asarray(a["box"]), abs=6), a["text"]
        assert (b["leader"] is None) == (a["leader"] is None), a["text"]

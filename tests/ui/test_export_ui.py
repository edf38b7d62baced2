"""File → Export in the main window (under Xvfb): the active view exported at 3× from its state (not a
screen grab) shows the same annotations and overlays as the view on screen; de-identified by default
with an explicit opt-in; the montage and sequence actions write their files."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtWidgets

from discviewer import RESEARCH_USE_NOTICE
from discviewer.render.annotation_layer import COLOR
from discviewer.workspace.data import Annotation


def yellow(rgb, tol=40):
    target = np.array([round(255 * c) for c in COLOR])
    return np.abs(rgb.astype(int) - target).max(axis=-1) <= tol


def segment_extent(rgb, a, b, band):
    ys, xs = np.nonzero(yellow(rgb))
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = (b - a) / np.linalg.norm(b - a)
    rel = np.column_stack([xs + 0.5, ys + 0.5]) - a
    t = rel @ d
    dist = np.abs(rel @ np.array([-d[1], d[0]]))
    keep = (dist <= band) & (t > -band) & (t < np.linalg.norm(b - a) + band)
    assert keep.sum() > 10
    return float(t[keep].min()), float(t[keep].max())


def png_texts(path) -> dict[str, str]:
    raw = Path(path).read_bytes()
    out, i = {}, 8
    while i < len(raw):
        n = struct.unpack(">I", raw[i:i + 4])[0]
        kind, data = raw[i + 4:i + 8], raw[i + 8:i + 8 + n]
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            k, rest = data.split(b"\x00", 1)
            if kind == b"iTXt":
                comp, rest = rest[0], rest[2:]
                rest = rest.split(b"\x00", 2)[2]
                out[k.decode()] = (zlib.decompress(rest) if comp else rest).decode("utf-8")
            elif kind == b"zTXt":
                out[k.decode()] = zlib.decompress(rest[1:]).decode("latin-1")
            else:
                out[k.decode()] = rest.decode("latin-1")
        i += 12 + n
    return out


def identifying_strings(demo):
    from discviewer.deid import date_variants

    t = json.loads((demo / "truth.json").read_text())["patients"][0]
    out = [t["id"], t["name"], *t["name"].split("^")]
    for v in t["visits"]:
        out += date_variants(v["study_date"])
    return out


def hits(texts, forbidden):
    return [(t, f) for t in texts for f in forbidden if f.lower() in str(t).lower()]


def add_ruler(w):
    """A ruler on the active view's plane, of the visit it shows; returns (annotation, view)."""
    view = w.slice_view
    frame = w.review.active
    pipe = view.pipeline
    a, b = pipe.plane_to_patient(-25.0, 35.0), pipe.plane_to_patient(20.0, -15.0)
    ann = Annotation("", "ruler", visit_id=frame.visit.id, series_uid=frame.candidate.info.series_uid,
                     points=(tuple(a), tuple(b)), values={"length_mm": float(np.linalg.norm(b - a))},
                     units={"length_mm": "mm"}, extra={"plane": view.slice_plane(), "plane_name": pipe.plane})
    ann = w.project.workspace.annotations.add(ann)
    return ann, view


def wait_drawn(qtbot, w, view, ann):
    tools = w.measure.tools.tools_for(view)
    qtbot.waitUntil(lambda: ann.id in tools.layer.visible_ids(), timeout=5000)
    view.render_now()


def test_export_menu_and_current_view_at_3x(demo_window, qtbot, demo, tmp_path):
    w = demo_window
    file_menu = next(a.menu() for a in w.menuBar().actions() if a.text().replace("&", "") == "File")
    export = next(a.menu() for a in file_menu.actions() if a.menu() is not None and "Export" in a.text())
    texts = [a.text() for a in export.actions()]
    assert texts == ["Current view as image…", "Montage of this level…", "3D view as image…",
                     "Flicker/sweep sequence…"]
    assert w.actions_by_name["export_view"].shortcut().toString() == "Ctrl+E"

    ann, view = add_ruler(w)
    view.zoom(1.6)
    view.pipeline.pan(30, -20)
    view.set_window(500.0, 900.0)
    wait_drawn(qtbot, w, view, ann)
    shown = view.capture()
    h, wv = shown.shape[:2]
    ui = w.export
    info = ui.export_view(tmp_path / "view.png", scale=3)
    assert info.rgb.shape == (3 * h, 3 * wv, 3)
    assert (tmp_path / "view.png").exists()
    # the same zoom: 3× the pixels over the same field of view
    assert info.mm_per_pixel == pytest.approx(view.pipeline.mm_per_pixel() / 3, rel=1e-6)
    # the same annotations, at the same places (the ruler's ends, scaled by 3)
    tools = w.measure.tools.tools_for(view)
    for label in tools.layer.label_texts():
        assert label in info.texts
    ends = [view.pipeline.patient_to_display(p) for p in ann.points]
    ends_v = [(x, h - y) for x, y in ends]
    v0, v1 = segment_extent(shown, *ends_v, 3.0)
    b0, b1 = segment_extent(info.rgb, *[(3 * x, 3 * y) for x, y in ends_v], 9.0)
    assert abs(b0 / 3 - v0) < 1.5 and abs(b1 / 3 - v1) < 1.5
    # the same overlays: letters, window text, research-use mark; scale bar exactly its label long
    assert info.letters == view.orientation_labels()
    assert view.overlay_text("window") in info.texts and RESEARCH_USE_NOTICE in info.texts
    assert f"{info.scale_bar_mm:g} mm" in info.texts
    assert info.scale_bar_px == pytest.approx(info.scale_bar_mm / info.mm_per_pixel)
    x0, x1, r0, r1 = info.scale_bar_box
    sub = info.rgb[int(r0):int(np.ceil(r1)), int(x0) - 4:int(np.ceil(x1)) + 5]
    cols = np.nonzero(np.all(sub >= 215, axis=-1).any(axis=0))[0]
    assert abs((cols.max() - cols.min() + 1) - info.scale_bar_px) <= 1.0
    # the image: the export averaged over 3×3 blocks is the view
    down = info.rgb.reshape(h, 3, wv, 3, 3).mean(axis=(1, 3))
    assert np.corrcoef(down.ravel(), shown.astype(float).ravel())[0, 1] > 0.8

    # de-identified by default: pseudonym and day, no name / ID / date drawn or written
    forbidden = identifying_strings(demo)
    assert any(t.startswith("P01 · day ") for t in info.texts)
    assert not hits(info.texts, forbidden)
    assert not hits(png_texts(tmp_path / "view.png").values(), forbidden)
    assert not [f for f in forbidden if f.encode() in (tmp_path / "view.png").read_bytes()]
    # identifying only on explicit opt-in
    info_id = ui.export_view(tmp_path / "view_id.tif", scale=1, identifying=True)
    assert hits(info_id.texts, forbidden)


def test_export_dialog_defaults_and_writes(demo_window, qtbot, tmp_path):
    w = demo_window
    w.actions_by_name["export_view"].trigger()
    d = w.export.dialog
    assert d is not None and d.scale == 3.0 and not d.identifying
    assert d.identifying_box.text().startswith("Include identifying text")
    d.path_edit.setText(str(tmp_path / "dlg.png"))
    d.scale_spin.setValue(2.0)
    d.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: (tmp_path / "dlg.png").exists(), timeout=10000)
    h, wv = w.slice_view.capture().shape[:2]
    assert w.export.last_result.rgb.shape == (2 * h, 2 * wv, 3)


def test_montage_and_sequences_from_the_window(demo_window, qtbot, demo, tmp_path):
    w = demo_window
    ui = w.export
    forbidden = identifying_strings(demo)
    patient = w.controller.locate(w.review.active.candidate)[0]
    res = ui.export_montage(tmp_path / "m.png", level="L4/L5", roles=["T2 sag", "multi-echo GRE"], scale=1)
    assert (tmp_path / "m.png").exists()
    assert len(res.cells) == 2 * len(patient.visits) and len(res.columns) == len(patient.visits)
    assert res.columns[0].startswith("P01 · day 0") and not hits(res.texts, forbidden)
    # the demo has neither disc labels nor a registration: the figure says so
    assert "view centre" in res.texts and not res.registered
    assert "NOT registered" in " ".join(res.texts)
    # same place in every column (the disc, or here the view's centre: the demo has no disc labels)
    for (r, c), (x, y) in res.disc_px.items():
        r0, r1, c0, c1 = res.cells[(r, c)]
        assert abs(x - (c0 + c1) / 2) <= 1 and abs(y - (r0 + r1) / 2) <= 1
    sweep = ui.export_sequence(tmp_path / "sweep", kind="sweep", scale=1)
    assert len(sweep) == w.slice_view.slice_count and sweep[0].name == "sweep_000.png"
    flick = ui.export_sequence(tmp_path / "flick", kind="flicker", scale=1)
    assert [p.name for p in flick] == ["flicker_000.png", "flicker_001.png"]
    # the dialogs open with the opt-in unchecked
    w.actions_by_name["export_montage"].trigger()
    assert w.export.dialog is not None and not w.export.dialog.identifying
    w.export.dialog.reject()
    w.actions_by_name["export_sequence"].trigger()
    assert w.export.dialog is not None and w.export.dialog.folder
    w.export.dialog.reject()


def test_3d_view_export(demo_window, qtbot, demo, tmp_path):
    w = demo_window
    with pytest.raises(ValueError):
        w.export.export_3d(tmp_path / "none.png")
    w.show_3d()
    vv = w.volume_view
    qtbot.waitUntil(lambda: vv.pipeline.volume is not None, timeout=5000)
    vv.render_now()
    shown = vv.grab_image()
    h, wv = shown.shape[:2]
    info = w.export.export_3d(tmp_path / "v3d.png", scale=2)
    assert info.rgb.shape == (2 * h, 2 * wv, 3) and (tmp_path / "v3d.png").exists()
    assert RESEARCH_USE_NOTICE in info.texts and any(t.startswith("P01 · day ") for t in info.texts)
    assert not hits(info.texts, identifying_strings(demo))
    # the same camera: the rendering (without the corner texts) matches the view's, downsampled
    down = info.rgb.reshape(h, 2, wv, 2, 3).mean(axis=(1, 3))
    assert np.corrcoef(down.ravel(), shown.astype(float).ravel())[0, 1] > 0.8


def test_montage_progress_once_per_cell_and_cancel_writes_nothing(demo_window, qtbot, tmp_path):
    w = demo_window
    ui = w.export
    calls = []

    def record(done, total):
        calls.append((done, total))
        return True

    res = ui.export_montage(tmp_path / "m.png", level="L4/L5", roles=["T2 sag", "multi-echo GRE"], scale=1,
                            progress=record)
    n = len(res.cells)
    assert n > 1 and calls == [(i, n) for i in range(1, n + 1)]
    # Cancel (the callback says stop after the first cell): no file, nothing returned
    calls.clear()
    out = ui.export_montage(tmp_path / "c.png", level="L4/L5", roles=["T2 sag", "multi-echo GRE"], scale=1,
                            progress=lambda d, t: calls.append((d, t)) or False)
    assert out is None and calls == [(1, n)] and not (tmp_path / "c.png").exists()
    assert ui.last_result is res


def test_montage_progress_dialog_cancel(demo_window, qtbot, tmp_path):
    """Default: a window-modal progress dialog with Cancel; the event loop runs between cells, so the
    Cancel button works and nothing is written."""
    from PySide6 import QtCore

    w = demo_window
    ui = w.export
    seen = []

    def poke():
        d = ui.progress_dialog
        if d is not None and not seen:
            seen.append((d.isVisible(), d.isModal(), d.maximum()))
            d.cancel()  # what the Cancel button does

    timer = QtCore.QTimer()
    timer.timeout.connect(poke)
    timer.start(0)
    try:
        out = ui.export_montage(tmp_path / "d.png", level="L4/L5", roles=["T2 sag", "multi-echo GRE"], scale=1)
    finally:
        timer.stop()
    assert seen and seen[0][0] and seen[0][1]
    assert out is None and not (tmp_path / "d.png").exists() and ui.progress_dialog is None
    # and without cancelling, the dialog goes away and the file is written
    out = ui.export_montage(tmp_path / "e.png", level="L4/L5", roles=["T2 sag"], scale=1)
    assert out is not None and (tmp_path / "e.png").exists() and ui.progress_dialog is None


def test_sequence_progress_and_cancel(demo_window, qtbot, tmp_path):
    w = demo_window
    ui = w.export
    calls = []
    paths = ui.export_sequence(tmp_path / "sw", kind="sweep", scale=1, step=4,
                               progress=lambda d, t: calls.append((d, t)) or True)
    n = len(paths)
    assert n > 1 and calls == [(i, n) for i in range(1, n + 1)]
    out = ui.export_sequence(tmp_path / "sw2", kind="sweep", scale=1, step=4, progress=lambda d, t: d < 2)
    assert out is None and not (tmp_path / "sw2").exists()
    calls.clear()
    out = ui.export_sequence(tmp_path / "fl", kind="flicker", scale=1,
                             progress=lambda d, t: calls.append((d, t)) or False)
    assert out is None and calls == [(1, 2)] and not (tmp_path / "fl").exists()

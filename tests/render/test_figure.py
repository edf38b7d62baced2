"""Figure export rendered offscreen (EGL, no Qt, no display): a 3× export shows what the view shows,
the scale bar is exactly as long as its label says, letters and the research-use mark are drawn,
de-identified exports draw and write no name, ID or date (drawn texts, PNG chunks, TIFF tags),
montages put the same disc at the same place in every column, sequences, and `discviewer export` run
without a display."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from discviewer import RESEARCH_USE_NOTICE
from discviewer.render.annotation_layer import COLOR
from discviewer.render.figure import (SOFTWARE, ViewState, redact, render_view, render_view_info, save_image,
                                      write_sequence)
from discviewer.workspace.data import Annotation
from tests.core.phantom_cache import phantom_scan

REPO = Path(__file__).resolve().parents[2]
NAME, PID = "DOE^JANE", "PAT-123456"
DATES = ("20190812", "2019-08-12", "12.08.2019")


# ---------------------------------------------------------------------------------------- helpers
def yellow_mask(rgb, tol=40):
    target = np.array([round(255 * c) for c in COLOR])
    return np.abs(rgb.astype(int) - target).max(axis=-1) <= tol


def centroid(mask):
    ys, xs = np.nonzero(mask)
    assert xs.size, "no pixels"
    return float(xs.mean()), float(ys.mean())


def picture_px(volume, state, w, h, lps):
    """Where patient point `lps` shows in a `w`×`h` picture of `state` (x, row; row 0 = top)."""
    from discviewer.render.figure import FigureRenderer

    fig = FigureRenderer(w, h)
    try:
        fig.show(volume, state)
        x, y = fig.pipeline.patient_to_display(lps)
        return float(x), float(h - y)
    finally:
        fig.close()


def segment_extent(rgb, a, b, band):
    """(first, last) position along a→b (px from a) of the yellow pixels within `band` px of the segment."""
    ys, xs = np.nonzero(yellow_mask(rgb))
    a, b = np.asarray(a), np.asarray(b)
    d = (b - a) / np.linalg.norm(b - a)
    rel = np.column_stack([xs + 0.5, ys + 0.5]) - a
    t = rel @ d
    dist = np.abs(rel @ np.array([-d[1], d[0]]))
    keep = (dist <= band) & (t > -band) & (t < np.linalg.norm(b - a) + band)
    assert keep.sum() > 10
    return float(t[keep].min()), float(t[keep].max())


def bar_extent(rgb, box, thr=215):
    """Columns (first, last) of the bright scale-bar pixels inside its box (picture px)."""
    x0, x1, r0, r1 = box
    sub = rgb[int(r0):int(np.ceil(r1)), max(int(x0) - 4, 0):int(np.ceil(x1)) + 5]
    cols = np.nonzero(np.all(sub >= thr, axis=-1).any(axis=0))[0]
    off = max(int(x0) - 4, 0)
    return off + cols.min(), off + cols.max()


def png_chunks(path) -> list[tuple[bytes, bytes]]:
    raw = Path(path).read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    out, i = [], 8
    while i < len(raw):
        n = struct.unpack(">I", raw[i:i + 4])[0]
        kind, data = raw[i + 4:i + 8], raw[i + 8:i + 8 + n]
        assert struct.unpack(">I", raw[i + 8 + n:i + 12 + n])[0] == zlib.crc32(kind + data) & 0xFFFFFFFF
        out.append((kind, data))
        i += 12 + n
    return out


def png_texts(path) -> dict[str, str]:
    texts = {}
    for kind, data in png_chunks(path):
        if kind == b"tEXt":
            k, v = data.split(b"\x00", 1)
            texts[k.decode("latin-1")] = v.decode("latin-1")
        elif kind == b"iTXt":
            k, rest = data.split(b"\x00", 1)
            comp, _method, rest = rest[0], rest[1], rest[2:]
            _lang, rest = rest.split(b"\x00", 1)
            _tkey, text = rest.split(b"\x00", 1)
            texts[k.decode("latin-1")] = (zlib.decompress(text) if comp else text).decode("utf-8")
        elif kind == b"zTXt":
            k, rest = data.split(b"\x00", 1)
            texts[k.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
    return texts


def tiff_tags(path) -> dict[int, object]:
    raw = Path(path).read_bytes()
    assert raw[:4] == b"II*\x00"
    (ifd,) = struct.unpack("<I", raw[4:8])
    (n,) = struct.unpack("<H", raw[ifd:ifd + 2])
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8}
    tags = {}
    for k in range(n):
        tag, typ, count = struct.unpack("<HHI", raw[ifd + 2 + 12 * k:ifd + 10 + 12 * k])
        size = sizes[typ] * count
        at = ifd + 10 + 12 * k
        data = raw[at:at + size] if size <= 4 else raw[struct.unpack("<I", raw[at:at + 4])[0]:][:size]
        tags[tag] = data.rstrip(b"\x00").decode("ascii") if typ == 2 else data
    return tags


def forbidden_hits(texts, forbidden=(NAME, "DOE", "JANE", PID) + DATES):
    return [(t, f) for t in texts for f in forbidden if f.lower() in str(t).lower()]


@pytest.fixture
def volume(phantom_volume):
    return phantom_volume


def ruler_on(volume, state_point=None):
    """A ruler and a text annotation on the middle sagittal slice of `volume`."""
    from discviewer.render.figure import FigureRenderer

    fig = FigureRenderer(64, 64)
    fig.show(volume, ViewState(plane="sag", point=state_point))
    pipe = fig.pipeline
    a, b = pipe.plane_to_patient(-20.0, 30.0), pipe.plane_to_patient(25.0, -10.0)
    t = pipe.plane_to_patient(-40.0, -50.0)
    plane = {"origin": list(pipe.plane_origin()), "normal": list(pipe.frame()[2])}
    fig.close()
    extra = {"plane": plane, "plane_name": "sag"}
    return (Annotation("r1", "ruler", points=(tuple(a), tuple(b)), values={"length_mm": float(np.linalg.norm(b - a))},
                       extra=extra),
            Annotation("t1", "text", points=(tuple(t),), text=f"note for {NAME} {PID} on 2019-08-12", extra=extra))


# ---------------------------------------------------------------------------------------- view ↔ export
def test_export_at_3x_shows_what_the_view_shows(volume):
    anns = ruler_on(volume)
    state = ViewState(plane="sag", annotations=anns, fov_mm=220.0, center=None,
                      labels={"series": "P01 · day 0 (baseline) · T2 sag"})
    view = render_view_info(volume, state, 320, 240)
    big = render_view_info(volume, state, 960, 720, scale=3)
    assert big.rgb.shape == (720, 960, 3) and view.rgb.shape == (240, 320, 3)
    assert big.mm_per_pixel == pytest.approx(view.mm_per_pixel / 3, rel=1e-6)
    # the same texts (labels, annotation values, letters, scale bar, notice)
    assert sorted(big.texts) == sorted(view.texts)
    assert f"{np.linalg.norm(np.subtract(anns[0].points[1], anns[0].points[0])):.1f} mm" in view.texts
    # annotation pixels at the same place: the ruler's yellow pixels (near its segment, so its label is
    # left out), scaled
    ends_v = [picture_px(volume, state, 320, 240, p) for p in anns[0].points]
    ends_b = [picture_px(volume, state, 960, 720, p) for p in anns[0].points]
    assert np.allclose(np.array(ends_b) / 3, ends_v, atol=0.5)
    (v0, v1), (b0, b1) = segment_extent(view.rgb, *ends_v, 3.0), segment_extent(big.rgb, *ends_b, 9.0)
    assert abs(b0 / 3 - v0) < 1.5 and abs(b1 / 3 - v1) < 1.5
    length_px = np.hypot(*np.subtract(ends_v[1], ends_v[0]))
    assert abs((v1 - v0) - length_px) < 3 and abs((b1 - b0) / 3 - length_px) < 1.5
    # and the picture itself: the 3× export averaged over 3×3 blocks is the view (the image alone
    # closely; with the overlays, whose glyphs rasterise differently at each size, roughly)
    def corr(big_rgb, small_rgb):
        down = big_rgb.reshape(240, 3, 320, 3, 3).mean(axis=(1, 3))
        return np.corrcoef(down.ravel(), small_rgb.astype(float).ravel())[0, 1]

    bare = dict(letters=False, scale_bar=False, ruo=False, corner_texts=False)
    plain = state.replace(annotations=())
    assert corr(render_view(volume, plain, 960, 720, scale=3, **bare), render_view(volume, plain, 320, 240, **bare)) \
        > 0.98
    assert corr(big.rgb, view.rgb) > 0.8


@pytest.mark.parametrize("size,fov,scale", [((400, 400), None, 1), ((1200, 900), 150.0, 3), ((777, 500), 61.0, 2)])
def test_scale_bar_is_as_long_as_its_label(volume, size, fov, scale):
    info = render_view_info(volume, ViewState(plane="sag", fov_mm=fov), *size, scale=scale)
    label = next(t for t in info.texts if t.endswith(" mm"))
    mm = float(label.split()[0])
    assert mm == info.scale_bar_mm and mm in (1, 2, 5, 10, 20, 50, 100, 200, 500)
    expected_px = mm / info.mm_per_pixel
    assert info.scale_bar_px == pytest.approx(expected_px)
    first, last = bar_extent(info.rgb, info.scale_bar_box)
    assert abs((last - first + 1) - expected_px) <= 1.0
    if fov is not None:
        assert info.mm_per_pixel == pytest.approx(fov / size[1])


def test_letters_notice_legend_and_colorbar(volume):
    info = render_view_info(volume, ViewState(plane="sag"), 500, 400, legend=["ROI: disc", "ref: CSF"],
                            colorbar={"title": "R2* (s⁻¹)", "colormap": "hot", "vmin": 0, "vmax": 80})
    assert info.letters == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    for t in ("A", "P", "S", "I", RESEARCH_USE_NOTICE, "ROI: disc\nref: CSF", "R2* (s⁻¹)"):
        assert t in info.texts
    bare = render_view_info(volume, ViewState(plane="sag"), 500, 400, letters=False, ruo=False, scale_bar=False)
    assert not ({"A", "P", "S", "I", RESEARCH_USE_NOTICE} & set(bare.texts))
    assert not any(t.endswith(" mm") for t in bare.texts) and bare.scale_bar_box is None
    # the letters are drawn: the left edge's middle differs between the two pictures
    assert np.abs(info.rgb[180:220, 4:30].astype(int) - bare.rgb[180:220, 4:30].astype(int)).max() > 100
    ax = render_view_info(volume, ViewState(plane="ax"), 300, 300)
    assert ax.letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}


def test_deidentified_render_draws_no_name_id_or_date(volume):
    from discviewer.render.montage import forbidden_strings, visit_label

    patient = SimpleNamespace(id=PID, name=NAME)
    import datetime as dt

    visit = SimpleNamespace(date=dt.date(2019, 8, 12), days=96, label="2019-08-12 follow-up", index=1)
    patient.visits = [visit]
    policy = SimpleNamespace(identifying=False, pseudonym=lambda pid: "P07")
    label = visit_label(policy, patient, visit, extra="T2 sag")
    assert label == "P07 · day 96 (3 m) · T2 sag"
    forbidden = forbidden_strings(patient)
    anns = ruler_on(volume)
    info = render_view_info(volume, ViewState(annotations=anns), 400, 400, labels={"series": label},
                            forbidden=forbidden)
    assert label in info.texts and not forbidden_hits(info.texts)
    assert any("[removed]" in t for t in info.texts)  # the free-text note was scrubbed, not dropped silently
    # identifying is an explicit opt-in: then the strings are drawn
    policy_id = SimpleNamespace(identifying=True)
    label_id = visit_label(policy_id, patient, visit)
    assert PID in label_id and "2019-08-12" in label_id
    info_id = render_view_info(volume, ViewState(annotations=anns), 400, 400, labels={"series": label_id})
    assert forbidden_hits(info_id.texts)
    # whole words only: an ID "12" does not eat "W 120"
    assert redact("W 120  L 12", ["12"]) == "W 120  L [removed]"


# ---------------------------------------------------------------------------------------- files
def test_png_and_tiff_carry_no_identifying_metadata(volume, tmp_path):
    rgb = render_view(volume, ViewState(), 300, 200, labels={"series": "P07 · day 96"})
    png = save_image(tmp_path / "a.png", rgb, dpi=600, metadata={"Title": "P07 · day 96 · T2 sag"},
                     forbidden=(NAME, PID) + DATES)
    kinds = [k for k, _ in png_chunks(png)]
    assert set(kinds) <= {b"IHDR", b"pHYs", b"iTXt", b"IDAT", b"IEND"}
    texts = png_texts(png)
    assert texts == {"Software": SOFTWARE, "Title": "P07 · day 96 · T2 sag"}
    assert "research use only" in texts["Software"]
    assert not forbidden_hits(texts.values())
    (phys,) = [d for k, d in png_chunks(png) if k == b"pHYs"]
    assert struct.unpack(">IIB", phys) == (23622, 23622, 1)  # 600 dpi in pixels per metre
    tif = save_image(tmp_path / "a.tif", rgb, metadata={"Title": "P07"}, forbidden=(NAME, PID))
    tags = tiff_tags(tif)
    assert not {306, 315, 316, 33432} & set(tags)  # DateTime, Artist, HostComputer, Copyright
    assert tags[305].startswith("discviewer") and "research use only" in tags[305]
    assert not forbidden_hits([v for v in tags.values() if isinstance(v, str)])
    # pixels read back unchanged (by a reader we did not write)
    PIL = pytest.importorskip("PIL.Image")
    assert np.array_equal(np.asarray(PIL.open(png).convert("RGB")), rgb)
    assert np.array_equal(np.asarray(PIL.open(tif).convert("RGB")), rgb)
    # identifying metadata is refused, not written
    with pytest.raises(ValueError):
        save_image(tmp_path / "b.png", rgb, metadata={"Title": f"{PID}"}, forbidden=(PID,))
    assert not (tmp_path / "b.png").exists()


def test_sweep_frames_and_sequence_files(volume, tmp_path):
    from discviewer.render.montage import sweep_frames

    frames = sweep_frames(volume, ViewState(plane="sag"), 160, 160)
    assert len(frames) == volume.shape[0] and all(f.shape == (160, 160, 3) for f in frames)
    assert not np.array_equal(frames[0], frames[len(frames) // 2])
    paths = write_sequence(frames, tmp_path / "seq", "sweep")
    assert [p.name for p in paths][:2] == ["sweep_000.png", "sweep_001.png"] and all(p.exists() for p in paths)


# ---------------------------------------------------------------------------------------- montage (phantom)
def build_workspace(folder, scan_result, *, labels=("L3/L4", "L4/L5"), truth_transforms=True):
    """A Workspace over the phantom: truth registration, disc labels from the truth, one ruler."""
    from discviewer.levels import disc_label_annotation
    from discviewer.study import Study
    from discviewer.workspace.project import Workspace
    from discviewer.workspace.sources import index_sources

    truth = json.loads((Path(folder) / "truth.json").read_text())["patients"][0]
    ws = Workspace(user="tester")
    ws.sources = index_sources(scan_result.series)
    ws.attach_study(Study.from_scan(scan_result))
    pat = ws.study.patients[0]
    for v in pat.visits:
        tv = next(x for x in truth["visits"] if x["study_uid"] == v.id)
        if truth_transforms and v is not pat.baseline:
            ws.transforms.whole.set(v.id, np.array(tv["visit_to_baseline"]), "phantom truth")
        for lvl in labels:
            ws.annotations.add(disc_label_annotation(lvl, tv["discs"][lvl]["centre"], v.id))
    return ws, truth


def shift_between(a, b, r: int = 8):
    """(dy, dx) shift of picture b relative to a (|shift| ≤ r): the best normalised correlation."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    core = a[r:-r, r:-r]
    core = (core - core.mean()) / (core.std() + 1e-9)
    best, arg = -2.0, (0, 0)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            w = b[r + dy:b.shape[0] - r + dy, r + dx:b.shape[1] - r + dx]
            c = float(((w - w.mean()) / (w.std() + 1e-9) * core).mean())
            if c > best:
                best, arg = c, (dy, dx)
    return arg


@pytest.fixture(scope="module")
def phantom_ws(tmp_path_factory):
    folder, result = phantom_scan(tmp_path_factory)
    return folder, result


def test_montage_rows_columns_and_the_disc_in_place(phantom_ws, tmp_path):
    from discviewer.render.montage import build_montage, forbidden_strings

    folder, result = phantom_ws
    ws, truth = build_workspace(folder, result)
    pat = ws.study.patients[0]
    res = build_montage(ws, pat, "L4/L5", ["T2 sag", "multi-echo GRE"], width_per_cell=200)
    nv = len(pat.visits)
    assert len(res.cells) == 2 * nv and res.errors == []
    assert res.rows[0] == "T2 sag" and res.rows[1].startswith("multi-echo GRE")
    assert res.columns[0] == "P01 · day 0 (baseline)" and res.columns[1].startswith("P01 · day ")
    assert not forbidden_hits(res.texts, forbidden_strings(pat))
    assert RESEARCH_USE_NOTICE in " ".join(res.texts) and res.registered
    assert "registered to baseline (whole volume)" in " ".join(res.texts)
    # the disc's truth centre (each visit's own space → baseline through the truth) lands at the same
    # place of every cell
    for c, v in enumerate(pat.visits):
        tv = next(x for x in truth["visits"] if x["study_uid"] == v.id)
        p = np.array(tv["visit_to_baseline"]) @ np.append(tv["discs"]["L4/L5"]["centre"], 1.0)
        # (the phantom's discs change height over the visits, so their centres move a little)
        assert np.linalg.norm(p[:3] - res.centre) / res.mm_per_pixel < 1.5
        for r in range(2):
            r0, r1, c0, c1 = res.cells[(r, c)]
            x, y = res.disc_px[(r, c)]
            assert abs(x - (c0 + c1) / 2) <= 1.0 and abs(y - (r0 + r1) / 2) <= 1.0
    # and the images agree: every follow-up cell is aligned with the baseline cell
    grey = res.rgb.astype(float).mean(axis=-1)

    def cell(r, c):
        r0, r1, c0, c1 = res.cells[(r, c)]
        return grey[r0 + 30:r1 - 30, c0 + 30:c1 - 30]

    for c in range(1, nv):
        dy, dx = shift_between(cell(0, 0), cell(0, c))
        assert abs(dy) <= 1 and abs(dx) <= 1, (c, dy, dx)
    # without the registration the phantom's repositioning shows
    ws_raw, _ = build_workspace(folder, result, truth_transforms=False)
    raw = build_montage(ws_raw, ws_raw.study.patients[0], "L4/L5", ["T2 sag"], width_per_cell=200,
                        centre=res.centre)
    assert not raw.registered and "NOT registered" in " ".join(raw.texts)
    g2 = raw.rgb.astype(float).mean(axis=-1)
    moved = []
    for c in range(1, nv):
        r0, r1, c0, c1 = raw.cells[(0, c)]
        b0 = raw.cells[(0, 0)]
        moved.append(max(abs(s) for s in shift_between(g2[b0[0] + 30:b0[1] - 30, b0[2] + 30:b0[3] - 30],
                                                       g2[r0 + 30:r1 - 30, c0 + 30:c1 - 30])))
    assert max(moved) >= 2
    save_image(tmp_path / "montage.png", res.rgb)


def test_montage_needs_a_disc_label(phantom_ws):
    from discviewer.render.montage import MontageError, build_montage

    folder, result = phantom_ws
    ws, _ = build_workspace(folder, result, labels=("L4/L5",))
    with pytest.raises(MontageError, match="no disc label for L1/L2"):
        build_montage(ws, None, "L1/L2", ["T2 sag"])


def test_flicker_frames_are_registered(phantom_ws):
    from discviewer.render.montage import flicker_frames

    folder, result = phantom_ws
    ws, _ = build_workspace(folder, result)
    pat = ws.study.patients[0]
    frames = flicker_frames(ws, pat, "L4/L5", "T2 sag", width=240, height=240)
    assert len(frames) == 2 and frames[0].shape == frames[1].shape == (240, 240, 3)
    g = [f.astype(float).mean(axis=-1)[40:200, 40:200] for f in frames]
    dy, dx = shift_between(g[0], g[1])
    assert abs(dy) <= 1 and abs(dx) <= 1


# ---------------------------------------------------------------------------------------- CLI, headless
def test_cli_export_headless(phantom_ws, tmp_path):
    from discviewer.render.montage import forbidden_strings
    from discviewer.workspace import store

    folder, result = phantom_ws
    ws, _ = build_workspace(folder, result)
    dvw = tmp_path / "p.dvw"
    store.save(ws.to_data(), dvw)
    forbidden = forbidden_strings(ws.study.patients[0])
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "VTK_DEFAULT_OPENGL_WINDOW")}
    cmd = [sys.executable, "-m", "discviewer", "export", str(dvw), "--screenshots", str(tmp_path / "shots"),
           "--montage", "L4/L5", "--montage", "L1/L2", "--csv", str(tmp_path / "m.csv"), "--scale", "1", "--quiet"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=REPO)
    # L1/L2 has no disc label: that item fails, the rest is written, the exit status says so
    assert run.returncode == 1, run.stderr
    assert "FAILED montage P01 L1/L2" in run.stderr + run.stdout
    shots = sorted((tmp_path / "shots").glob("*.png"))
    names = [p.name for p in shots]
    assert "montage_P01_L4-L5.png" in names
    assert any(n.startswith("P01_day0000_T2_sag_s") for n in names)
    assert len([n for n in names if not n.startswith("montage")]) >= 3 * len(ws.study.patients[0].visits)
    assert (tmp_path / "m.csv").exists()
    for p in shots:
        blob = p.read_bytes()
        assert not [f for f in forbidden if f.encode() in blob]
        assert not forbidden_hits(png_texts(p).values(), forbidden)
    # a clean run exits 0
    run = subprocess.run(cmd[:5] + ["--montage", "L3/L4", "--montage", "L4/L5", "--montage-dir", str(tmp_path / "m"),
                                    "--scale", "1"],
                         env=env, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "m" / "montage_P01_L3-L4.png").exists()
    # a missing workspace: a clear error, non-zero
    run = subprocess.run([sys.executable, "-m", "discviewer", "export", str(tmp_path / "nope.dvw"), "--csv",
                          str(tmp_path / "x.csv")], env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 1 and "no such workspace file" in run.stderr


def test_3d_view_export_same_camera(volume):
    from discviewer.render.figure import VolumeViewState, render_volume_view_info
    from discviewer.render.offscreen import OffscreenRenderer
    from discviewer.render.volume_pipeline import VolumePipeline

    off = OffscreenRenderer(200, 160)
    pipe = VolumePipeline(off.renderer, mapper="cpu")
    try:
        pipe.set_volume(volume)
        off.renderer.GetActiveCamera().Azimuth(30)
        shown = off.render()
        state = VolumeViewState.from_pipeline(pipe)
    finally:
        pipe.close()
        off.close()
    bare = render_volume_view_info(volume, state, 600, 480, scale=3, mapper="cpu", letters=False, ruo=False)
    assert bare.texts == [] and bare.scale_bar_box is None  # perspective: no scale bar
    down = bare.rgb.reshape(160, 3, 200, 3, 3).mean(axis=(1, 3))
    assert np.corrcoef(down.ravel(), shown.astype(float).ravel())[0, 1] > 0.95
    info = render_volume_view_info(volume, state, 600, 480, scale=3, mapper="cpu", labels={"series": "P01"})
    assert "P01" in info.texts and set(info.letters.values()) <= set("LRAPSI")
    assert any(t.startswith("Research use only") for t in info.texts)  # (the short form in narrow pictures)

"""Screenshots of the user guide (`docs/guide.md`), made by driving the real app on the demo phantom.

Run under Xvfb from the repository root (the VTK views need a real X display — DESIGN.md §5):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py [--out DIR] [--until N]

Every step does what a user does — triggers the same menu/toolbar actions (`QAction.trigger()`), sets
the same widgets, clicks into the views with synthetic mouse events — and then saves the window
(`MainWindow.grab_with_views()`, which paints the VTK views from their own renders) or the dialog
(`QWidget.grab()`). The steps build on each other (2 needs 1, 3 needs 2, …), as in the guide.

The PNGs are at most 1400 px wide and quantised to 256 colours with Pillow when it is installed.
`tests/ui/test_guide_script.py` runs steps 1–2 so this script cannot rot silently.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

MAX_WIDTH = 1400
WINDOW_SIZE = (1400, 900)


# ---------------------------------------------------------------------------- waiting without pytest-qt
def app():
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance()


def pump(ms: int = 50) -> None:
    """Run the event loop for `ms` milliseconds."""
    from PySide6 import QtCore

    end = time.monotonic() + ms / 1000.0
    while True:
        app().processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if time.monotonic() >= end:
            break
        time.sleep(0.005)


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        pump(20)


class Waiter:
    """`with Waiter(signal): action.trigger()` — returns once `signal` was emitted (its args in `.args`)."""

    def __init__(self, signal, timeout: float = 60.0, what: str = "signal") -> None:
        self.signal, self.timeout, self.what = signal, timeout, what
        self.args = None

    def _slot(self, *args) -> None:
        self.args = args

    def __enter__(self):
        self.signal.connect(self._slot)
        return self

    def __exit__(self, exc_type, *_):
        try:
            if exc_type is None:
                wait_until(lambda: self.args is not None, self.timeout, self.what)
        finally:
            self.signal.disconnect(self._slot)
        return False


# ---------------------------------------------------------------------------- simulated input
def _mouse(widget, kind: str, pos, button=None, buttons=None, modifiers=None) -> None:
    from PySide6 import QtCore, QtGui

    Qt = QtCore.Qt
    types = {"press": QtCore.QEvent.Type.MouseButtonPress, "move": QtCore.QEvent.Type.MouseMove,
             "release": QtCore.QEvent.Type.MouseButtonRelease}
    local = QtCore.QPointF(pos)
    glob = QtCore.QPointF(widget.mapToGlobal(local.toPoint()))
    ev = QtGui.QMouseEvent(types[kind], local, glob, button or Qt.MouseButton.NoButton,
                           buttons if buttons is not None else Qt.MouseButton.NoButton,
                           modifiers or Qt.KeyboardModifier.NoModifier)
    app().sendEvent(widget, ev)


def click_view(view, lps) -> None:
    """A left click into a slice view at patient point `lps` (what a user's click does)."""
    from PySide6 import QtCore

    left = QtCore.Qt.MouseButton.LeftButton
    pos = view.widget_point_for_patient(lps)
    vp = view.viewport()
    _mouse(vp, "move", pos)
    _mouse(vp, "press", pos, left, left)
    _mouse(vp, "release", pos, left, None)
    pump(30)


def drag_view(view, start_lps, end_lps, steps: int = 6) -> None:
    """A left drag in a slice view between two patient points."""
    from PySide6 import QtCore

    left = QtCore.Qt.MouseButton.LeftButton
    a, b = view.widget_point_for_patient(start_lps), view.widget_point_for_patient(end_lps)
    vp = view.viewport()
    _mouse(vp, "press", a, left, left)
    for i in range(1, steps + 1):
        _mouse(vp, "move", a + (b - a) * (i / steps), None, left)
    _mouse(vp, "release", b, left, None)
    pump(30)


def centre_on(view, lps, zoom: float = 1.0) -> None:
    """Middle-drag (pan) the patient point `lps` to the middle of the view, then zoom (as Ctrl+wheel does)."""
    from PySide6 import QtCore

    mid = QtCore.Qt.MouseButton.MiddleButton
    vp = view.viewport()
    a = view.widget_point_for_patient(lps)
    b = QtCore.QPointF(vp.width() / 2, vp.height() / 2)
    _mouse(vp, "press", a, mid, mid)
    for i in range(1, 7):
        _mouse(vp, "move", a + (b - a) * (i / 6), None, mid)
    _mouse(vp, "release", b, mid, None)
    if zoom != 1.0:
        view.zoom(zoom)
    pump(50)


def key(widget, k) -> None:
    from PySide6.QtTest import QTest

    QTest.keyClick(widget, k)
    pump(30)


def click_widget(widget, pos=None) -> None:
    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    QTest.mouseClick(widget, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier,
                     pos if pos is not None else widget.rect().center())
    pump(30)


def click_item(view, item) -> None:
    """Click a row of a QTreeWidget or a cell of a QTableWidget (scrolled into view first)."""
    view.scrollToItem(item)
    pump(20)
    click_widget(view.viewport(), view.visualItemRect(item).center())


# ---------------------------------------------------------------------------- saving pictures
def save_png(image, path: Path, max_width: int = MAX_WIDTH) -> Path:
    """Save a QImage or an RGB numpy array as an optimised PNG, at most `max_width` wide."""
    import numpy as np
    from PySide6 import QtCore, QtGui

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, np.ndarray):
        rgb = np.ascontiguousarray(image[..., :3].astype(np.uint8))
        h, w = rgb.shape[:2]
        image = QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()
    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    if image.width() > max_width:
        image = image.scaledToWidth(max_width, QtCore.Qt.TransformationMode.SmoothTransformation)
    try:
        from PIL import Image
    except ImportError:  # plain Qt PNG
        image.save(str(path), "PNG")
        return path
    buf = QtCore.QBuffer()
    buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    pil = Image.open(io.BytesIO(bytes(buf.data()))).convert("RGB")
    pil = pil.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pil.save(path, optimize=True)
    return path


# ---------------------------------------------------------------------------- the guide's session
class Guide:
    """The state the steps share: the app's main window on the demo study and where pictures go."""

    def __init__(self, out: Path, demo: Path | None = None, work: Path | None = None) -> None:
        self.out = Path(out)
        self.work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="discviewer-guide-"))
        self.demo = Path(demo) if demo is not None else self.work / "demo"
        self.window = None
        self.written: list[Path] = []

    # -- helpers
    def truth(self) -> dict:
        return json.loads((self.demo / "truth.json").read_text())["patients"][0]

    def save_window(self, name: str, window=None) -> Path:
        w = window or self.window
        pump(150)
        for f in getattr(getattr(w, "review", None), "view_frames", lambda: [])():
            if f.view is not None and f.isVisible():
                f.view.render_now()
        pump(50)
        return self._record(save_png(w.grab_with_views(), self.out / name))

    def save_widget(self, name: str, widget) -> Path:
        pump(100)
        return self._record(save_png(widget.grab().toImage(), self.out / name))

    def _record(self, p: Path) -> Path:
        self.written.append(p)
        print(f"wrote {p} ({p.stat().st_size // 1024} KiB)", flush=True)
        return p

    def close(self) -> None:
        if self.window is not None:
            rw = getattr(self.window.reading, "reader_window", None)
            if rw is not None:
                rw.close()
            self.window.shutdown()
            self.window.hide()
            self.window.deleteLater()
            self.window = None
            pump(50)


def setup_environment(work: Path) -> None:
    """Keep the user's own settings, autosaves and logs out of it."""
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("DISCVIEWER_LOG_DIR", "logs")):
        os.environ[var] = str(work / sub)
    os.environ["DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE"] = "1"


# ---------------------------------------------------------------------------- the steps
def step1_open(g: Guide) -> list[Path]:
    """1. The demo study opened: the study browser and the first sagittal T2."""
    from PySide6 import QtCore

    from discviewer.ui.app import create_app
    from discviewer.ui.main_window import MainWindow

    create_app()
    if not (g.demo / "truth.json").exists():
        from discviewer.phantom import write_study  # what `discviewer demo-data DIR --size small` writes

        write_study(g.demo, size="small")
    settings = QtCore.QSettings(str(g.work / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    g.window = w
    w.resize(*WINDOW_SIZE)
    w.show()
    wait_until(w.isVisible, 10, "the main window")
    pump(200)
    # File → Open folder… asks for a folder, then opens it: the same call
    with Waiter(w.volume_shown, 60, "the first series"):
        w.open_path(g.demo)
    wait_until(lambda: not w.is_loading(), 60, "the series to load")
    browser = w.browser
    browser.tree.expandAll()
    pump(500)  # thumbnails
    return [g.save_window("01_open_study.png")]


def step2_hang(g: Guide) -> list[Path]:
    """2. Hang visits (H): the T2 sag of every visit side by side, in date order, linked."""
    w = g.window
    w.splitter.setSizes([300, WINDOW_SIZE[0] - 300])  # the splitter dragged left: more room for the views
    with Waiter(w.controller.all_loaded, 60, "every visit to load"):
        w.actions_by_name["hang"].trigger()
    return [g.save_window("02_hang_visits.png")]


def step3_register(g: Guide) -> list[Path]:
    """3. Register (Ctrl+R), then the crosshair (X) on L4/L5 of the baseline follows in every visit."""
    w = g.window
    with Waiter(w.controller.registration_finished, 300, "the registration"):
        w.actions_by_name["register"].trigger()
    from PySide6 import QtCore

    w.resizeDocks([w.registration_dock], [210], QtCore.Qt.Orientation.Vertical)  # the dock's splitter dragged
    frames = w.review.view_frames()
    base = frames[0]
    w.review.set_active(base)
    w.actions_by_name["crosshair"].trigger()  # X: left-drag places a crosshair, linked across visits
    centre = g.truth()["visits"][0]["discs"]["L4/L5"]["centre"]
    click_view(base.view, centre)
    pump(200)
    return [g.save_window("03_register.png")]


def browser_item(g: Guide, visit_index: int, role: str):
    """The study browser's row of a visit's series of `role`."""
    w = g.window
    visit = w.study.patients[0].visits[visit_index]
    entry = visit.entries(role)[0]
    b = w.browser
    return b._entry_items[b._entries.index(entry)]


def open_series(g: Guide, visit_index: int, role: str) -> None:
    """Click a series in the study browser (a single viewport shows it)."""
    w = g.window
    item = browser_item(g, visit_index, role)
    with Waiter(w.controller.all_loaded, 60, f"{role} of visit {visit_index}"):
        click_item(w.browser.tree, item)
    pump(100)


def step4_measure(g: Guide) -> list[Path]:
    """4. Measuring in the hung visits: disc labels on the baseline (B on L4/L5, then Ctrl+B), propagated
    to every visit (Ctrl+Shift+B); a semi-automatic disc height (6: one click in the disc, Enter) in each visit;
    the Measurements dock with the table and the trend of L4/L5's heights."""
    from PySide6 import QtCore

    from discviewer.ui.measurement_panel import FIXED_COLUMNS, KEY_ROLE

    w = g.window
    visits = g.truth()["visits"]
    discs = visits[0]["discs"]
    if w.actions_by_name["crosshair"].isChecked():
        w.actions_by_name["crosshair"].trigger()  # back to the PACS mouse scheme
    if getattr(w, "registration_dock", None) is not None:
        w.registration_dock.close()  # the dock's close button
    frames = w.review.view_frames()
    base = frames[0]
    w.review.set_active(base)
    view = base.view
    view.set_point(discs["L4/L5"]["centre"])
    # disc labels: Level box L4/L5, B, one click on that disc; Ctrl+B finds and labels the discs above and below
    w.measure.set_level("L4/L5")
    w.actions_by_name["tool_disc_label"].trigger()
    click_view(view, discs["L4/L5"]["centre"])
    w.actions_by_name["label_all"].trigger()
    w.actions_by_name["propagate_labels"].trigger()  # Ctrl+Shift+B: to every visit, through the registration
    # disc height: 6, then in each visit one click inside L4/L5 proposes the six endplate points, Enter accepts
    w.actions_by_name["tool_disc_height"].trigger()
    for f, tv in zip(frames, visits):
        w.review.set_active(f)
        click_view(f.view, tv["discs"]["L4/L5"]["centre"])
        key(f.view.vtk_widget, QtCore.Qt.Key.Key_Return)
    w.actions_by_name["tool_none"].trigger()  # Esc
    w.review.set_active(base)
    # the Measurements dock (opened by the first tool): click L4/L5 DHm at baseline → its trend
    w.actions_by_name["measurements"].trigger()
    pump(300)
    panel = w.measure.measurement_panel
    table = panel.view
    for r in range(table.rowCount()):
        level, measure, _ = table.item(r, 1).data(KEY_ROLE)
        if level == "L4/L5" and measure == "DHm":
            click_item(table, table.item(r, len(FIXED_COLUMNS)))
            break
    show_in_trend(panel, ("DHa", "DHm", "DHp"))
    return [g.save_window("04_measure_disc_height.png")]


def show_in_trend(panel, measures) -> None:
    """Tick only `measures` in the trend's Measures list (the user's check boxes)."""
    from PySide6 import QtCore

    lst = panel.trend.measure_list
    for i in range(lst.count()):
        it = lst.item(i)
        on = it.text().split(" ")[0] in measures
        it.setCheckState(QtCore.Qt.CheckState.Checked if on else QtCore.Qt.CheckState.Unchecked)


def step5_iron(g: Guide) -> list[Path]:
    """5. Iron: on the 3-month gradient echo, a disc ROI and a reference ROI (G), then Ctrl+I."""
    import numpy as np
    from PySide6 import QtCore

    w = g.window
    truth = g.truth()
    level = truth["injected_levels"][0]
    vi = next(i for i, v in enumerate(truth["visits"]) if v["discs"][level]["iron"]["present"])
    disc = truth["visits"][vi]["discs"][level]
    open_series(g, vi, "multi-echo GRE")
    # the echo box in the toolbar: TE 14 ms
    combo = w.echo_combo
    with Waiter(w.controller.all_loaded, 60, "the echo"):
        combo.setCurrentIndex(2)
        combo.activated.emit(2)
    view = w.slice_view
    centre = np.asarray(disc["iron"]["centre"] or disc["centre"], float)
    view.set_point(centre)
    w.resizeDocks([w.measure.measurements_dock], [230], QtCore.Qt.Orientation.Vertical)  # dock splitter dragged down
    pump(50)
    centre_on(view, disc["centre"], zoom=3.0)
    # a disc ROI around the disc (ROI box: disc), dragged with the ellipse tool
    w.actions_by_name["tool_ellipse"].trigger()
    w.measure.roi_role_combo.setCurrentText("disc")
    dc = np.asarray(disc["centre"], float)
    dc[0] = centre[0]
    drag_view(view, dc - [0, 15, 3.5], dc + [0, 15, 3.5])
    # a reference ROI in the disc tissue posterior of the deposit, same slice (ROI box: reference)
    rc = centre + [0, 9.0, 0]
    dy, dz = 3.0, 1.5
    w.measure.roi_role_combo.setCurrentText("reference")
    drag_view(view, rc - [0, dy, dz], rc + [0, dy, dz])
    ws = w.project.workspace
    roi = next(a for a in ws.annotations if a.kind == "ellipse" and a.extra.get("roi_role") == "disc")
    # select the disc ROI (S) and Ctrl+I
    w.actions_by_name["tool_select"].trigger()
    w.measure.tools.select(roi.id)
    w.actions_by_name["iron"].trigger()
    w.actions_by_name["tool_none"].trigger()
    pump(300)
    # the table: the disc ROI's cell shows its histogram
    from discviewer.ui.measurement_panel import FIXED_COLUMNS, KEY_ROLE

    panel = w.measure.measurement_panel
    table = panel.view
    for r in range(table.rowCount()):
        lv, measure, _ = table.item(r, 1).data(KEY_ROLE)
        if lv == level and measure == "void_volume_mm3":
            click_item(table, table.item(r, len(FIXED_COLUMNS) + vi))
            break
    show_in_trend(panel, ("void_volume_mm3",))
    view.set_point(centre)
    return [g.save_window("05_measure_iron.png")]


def step6_reading(g: Guide) -> list[Path]:
    """6. Reading → New reading session… (the setup dialog), then Start reading… (the reader's window)."""
    from PySide6 import QtCore

    w = g.window
    out: list[Path] = []
    state: dict = {}

    def fill_dialog():
        dlg = w.reading.setup_dialog
        try:
            fill(dlg)
        except BaseException as exc:  # never leave the modal dialog open: the script would hang
            state["error"] = exc
            dlg.reject()

    def fill(dlg):
        dlg.name_edit.setText("Iron round 1")
        dlg.tabs.setCurrentIndex(2)  # Readers: type an id, Add
        for r in ("R1", "R2"):
            dlg.reader_edit.setText(r)
            click_widget(dlg.add_reader_button)
        dlg.per_level_box.setChecked(True)
        for i in range(dlg.level_list.count()):
            it = dlg.level_list.item(i)
            it.setCheckState(QtCore.Qt.CheckState.Checked if it.text() == "L4/L5"
                             else QtCore.Qt.CheckState.Unchecked)
        keys = [dlg.template_list.item(i).data(QtCore.Qt.ItemDataRole.UserRole)
                for i in range(dlg.template_list.count())]
        dlg.template_list.setCurrentRow(keys.index("disc_height"))
        click_widget(dlg.add_template_button)
        dlg.tabs.setCurrentIndex(0)
        pump(100)
        out.append(g.save_widget("06_reading_setup_cases.png", dlg))
        dlg.tabs.setCurrentIndex(1)
        pump(100)
        out.append(g.save_widget("06_reading_setup_questions.png", dlg))
        # Options: what each case shows — T2 sag and the multi-echo gradient echo, sagittal
        dlg.set_hanging(["T2 sag", "multi-echo GRE"], ["sag"])
        dlg.seed_spin.setValue(2024)
        dlg.tabs.setCurrentIndex(3)
        pump(100)
        out.append(g.save_widget("06_reading_setup_options.png", dlg))
        state["filled"] = True
        click_widget(dlg.ok_button)

    QtCore.QTimer.singleShot(300, fill_dialog)
    w.actions_by_name["reading_new_session"].trigger()  # modal: returns when the dialog is closed
    if "error" in state:
        raise state["error"]
    if not state.get("filled"):
        raise RuntimeError("the reading setup dialog was not filled")
    # Start reading…: the main window hides, the reader identifies in the reader window
    w.actions_by_name["reading_start_reading"].trigger()
    rw = w.reading.reader_window
    wait_until(lambda: rw.reader_dialog is not None and rw.reader_dialog.isVisible(), 10, "the reader dialog")
    dlg = rw.reader_dialog
    dlg.combo.setCurrentText("R1")
    with Waiter(rw.case_shown, 60, "the first case"):
        click_widget(dlg.buttons.button(dlg.buttons.StandardButton.Ok))
    rw.resize(*WINDOW_SIZE)
    pump(300)
    # answer the first question like a reader: Pfirrmann III (a click; the number key 3 does the same)
    q = rw.questions.widgets["pfirrmann"]
    q.buttons[2].click()
    pump(100)
    out.append(g.save_window("06_reading_window.png", rw))
    rw.close()  # the main window comes back
    wait_until(lambda: w.isVisible() and w.reading.reader_window is None, 10, "the main window")
    return out


def step7_export(g: Guide) -> list[Path]:
    """7. File → Export → Current view as image… (Ctrl+E) at 3×, and the montage of L4/L5 across visits."""
    w = g.window
    out: list[Path] = []
    open_series(g, 0, "T2 sag")
    view = w.slice_view
    discs = g.truth()["visits"][0]["discs"]
    view.set_point(discs["L4/L5"]["centre"])
    view.zoom(1.6)
    export_dir = g.work / "export"
    export_dir.mkdir(exist_ok=True)
    w.actions_by_name["export_view"].trigger()
    d = w.export.dialog
    d.path_edit.setText(str(export_dir / "view.png"))
    out.append(g.save_widget("07_export_dialog.png", d))
    click_widget(d.buttons.button(d.buttons.StandardButton.Ok))
    wait_until(lambda: (export_dir / "view.png").exists(), 30, "the exported view")
    from PySide6 import QtGui

    img = QtGui.QImage(str(export_dir / "view.png"))
    print(f"exported view: {img.width()}×{img.height()}")
    out.append(g._record(save_png(img, g.out / "07_export_view.png", max_width=900)))
    # File → Export → Montage of this level…: L4/L5, the first two roles (T2 sag, GRE) checked
    w.measure.set_level("L4/L5")
    w.actions_by_name["export_montage"].trigger()
    d = w.export.dialog
    d.path_edit.setText(str(export_dir / "montage_L4-L5.png"))
    out.append(g.save_widget("07_montage_dialog.png", d))
    click_widget(d.buttons.button(d.buttons.StandardButton.Ok))
    wait_until(lambda: (export_dir / "montage_L4-L5.png").exists(), 60, "the montage")
    img = QtGui.QImage(str(export_dir / "montage_L4-L5.png"))
    print(f"montage: {img.width()}×{img.height()}")
    out.append(g._record(save_png(img, g.out / "07_export_montage.png", max_width=1200)))
    return out


STEPS = {1: step1_open, 2: step2_hang, 3: step3_register, 4: step4_measure, 5: step5_iron, 6: step6_reading,
         7: step7_export}


def run(steps, out: Path, demo: Path | None = None, work: Path | None = None) -> list[Path]:
    """Run `steps` (numbers of `STEPS`, in order) writing the PNGs to `out`; returns their paths.
    `work` (default: a temporary folder, removed afterwards) holds the demo study, settings and exports."""
    import shutil

    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="discviewer-guide-")) if own_work else Path(work)
    setup_environment(work)
    g = Guide(out, demo=demo, work=work)
    try:
        for n in sorted(steps):
            t0 = time.monotonic()
            STEPS[n](g)
            print(f"step {n} done in {time.monotonic() - t0:.1f} s", flush=True)
    finally:
        g.close()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    return g.written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(HERE / "img"), help="folder of the PNGs (default docs/img)")
    p.add_argument("--until", type=int, default=max(STEPS), help="run steps 1 … UNTIL (each needs the ones before)")
    p.add_argument("--demo", default=None, help="an existing demo study folder (default: written to a temp folder)")
    a = p.parse_args(argv)
    written = run(range(1, a.until + 1), Path(a.out), demo=Path(a.demo) if a.demo else None)
    total = sum(p.stat().st_size for p in written)
    print(f"{len(written)} screenshots, {total / 1e6:.2f} MB in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

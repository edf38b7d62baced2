"""`ReadingWindow`: the reader's blinded reading flow — one reader, one session, one case at a time.

A window of its own (never the `MainWindow`: that shows the study browser, paths and dates). The
rules live in the reading core (`discviewer.reading`): the order (`ReadingSession.order_for`),
submit / lock / resume / re-read gate (`ReaderProgress`), neutral titles and what must never show
(`blinding`). This window only shows and collects.

Flow
- **Identify**: without a `reader`, a `ReaderDialog` asks who reads (a session reader from a list;
  a new id may be typed when `allow_new_reader`, by default only when the session names no readers;
  a new reader is registered through `ReaderProgress.identify`). Cancel closes the window.
- **Resume**: the reader's first unanswered case in their own order (`ReaderProgress.next_case`), so a
  restart or crash continues where it stopped. Read 1 first; when it is complete and the session has
  a re-read subset, the re-read is offered once the washout passed — before that the window says only
  "Your re-read opens on YYYY-MM-DD." (`ReaderProgress.reread_opens_at`).
- **A case**: the series of the session's hanging (`options.hanging`: every role × every plane, one
  view each; roles missing in the visit give an empty slot "No T2 sagittal in this case"), with the
  patient's baseline beside it when `session.shows_baseline(case)` (iron question) — the columns are
  titled "Case" and "Reference", never by visit label. Views are `VtkSliceView`s (PACS mouse: left
  W/L, middle pan, right zoom, wheel slice); a case of one disc level names the level beside its code
  ("Case C417 — disc L4/L5"). A multi-echo series shows its first echo; a TE box above the view picks
  another (every view of that row follows, and the choice holds for the next cases). The views' only
  corner texts are the neutral series title
  (`neutral_series_title`: role + plane), slice number, window and orientation letters. Beside the
  images the `QuestionsPanel`, "case n of N", and a per-case timer.
- **Measurements**: a measurement question's "Measure" button arms the existing annotation tool on the
  case's first image (`AnnotationToolGroup`; "disc_height": the 6-point tool, one click proposes the
  points where the detector finds the disc, Shift+click places them by hand, Enter accepts; the value
  is the mean of DHa, DHm, DHp; "signal_ratio": two ellipse ROIs, nucleus then CSF, value = mean
  nucleus / mean CSF). What was drawn stays in a scratch annotation set of this case only (never the
  project's annotations); its components, method and points travel in the answer. Typing a number
  works too.
- **Submit** (button, Ctrl+Enter): required questions left empty block with a message; empty optional
  ones ask for a confirmation that lists them; the answers go to `ReaderProgress.submit` with the time
  spent on the case, then `persist()` writes them to disk at once. After a submit the form is read-only
  (unless `options.allow_change_after_submit`: then "Submit changes" stores a change, audited by the
  core) and "Next case" (PageDown) moves on.

Blinding: the window title is `blinded_title(...)` (or "Blinded read" between cases); the status bar
shows only fixed texts with case codes; load or save errors never show their exception text (it may
hold paths) — it goes to stderr. Other readers' answers are never read.

Constructor:
    ReadingWindow(session, study, *, reader=None, workspace=None, persist=None, project=None,
                  load_fn=None, clock=None, monotonic=None, ask=None, allow_new_reader=None, parent=None)
- `session`: the `ReadingSession`; `study`: the `Study` whose series entries the cases name (keys).
- `workspace`: the `Workspace` that keeps the session document (`ReaderProgress` writes it there on
  every submit); `persist()`: called after every submit / identification to write it to disk (returns
  False or raises on failure). `project`: a `ProjectController` — gives both (its workspace; persist =
  save the project file when it has one, else its autosave), with its message boxes silenced.
- `load_fn(candidate, *, progress=None) -> Volume` (default `discviewer.io.load`).
- `clock() -> datetime` (UTC) for timestamps and the washout gate; `monotonic() -> float` for the
  timer; `ask(kind, title, text, buttons) -> button` for message boxes (tests inject both).

Signals: `case_shown(code)`, `submitted(code)`, `finished_read(read)`, `reader_identified(reader)`.
"""
from __future__ import annotations

import datetime as _dt
import sys
import time
import traceback

from PySide6 import QtCore, QtGui, QtWidgets

from discviewer.reading.answers import (AnswerLockedError, EmptyAnswersError, MissingAnswersError, ReaderProgress,
                                        ReadGateError)
from discviewer.reading.blinding import APP_TITLE, REREAD_TITLE, blinded_title, neutral_series_title
from discviewer.reading.questions import AnswerError
from discviewer.reading.session import ReadingError, entries_for_role
from discviewer.ui import project_controller
from discviewer.ui.reading_questions import QuestionsPanel
from discviewer.ui.vtk_slice_view import VtkSliceView

Qt = QtCore.Qt


def _log(msg: str) -> None:
    print(f"discviewer reading: {msg}", file=sys.stderr)


def project_persist(project):
    """persist() for a `ProjectController`: save the project file when it has one (its own message
    boxes silenced — they name paths), else write its autosave. True when written."""
    def persist() -> bool:
        ws = project.workspace
        if ws.path and not ws.read_only:
            saved_ask, messages = project.ask, []
            project.ask = lambda kind, title, text, buttons: (messages.append(text), buttons[-1] if buttons else "")[1]
            try:
                ok = project.save()
            finally:
                project.ask = saved_ask
            if not ok:
                _log("saving the project failed: " + " | ".join(m.splitlines()[0] for m in messages if m))
            return ok
        project._autosaved_clean = False  # the reading document changed outside the undo history
        return project.autosave()

    return persist


class ReaderDialog(QtWidgets.QDialog):
    """Who reads: a session reader from the list, or (when allowed) a new id typed in."""

    def __init__(self, readers, *, allow_new: bool, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Reader")
        self.setObjectName("reader_dialog")
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(QtWidgets.QLabel("Who is reading? Choose your reader id." if not allow_new else
                                       "Who is reading? Choose your reader id or type a new one."))
        self.combo = QtWidgets.QComboBox()
        self.combo.setEditable(allow_new)
        self.combo.addItems(list(readers))
        if allow_new and not readers:
            self.combo.setCurrentText("")
        if self.combo.lineEdit() is not None:
            self.combo.lineEdit().setPlaceholderText("reader id, e.g. your initials")
        lay.addWidget(self.combo)
        self.buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                                  | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

    def reader(self) -> str:
        return self.combo.currentText().strip()

    def _accept(self) -> None:
        if self.reader():
            self.accept()


class CaseViewFrame(QtWidgets.QFrame):
    """One image slot: a neutral title and a `VtkSliceView` (or the reason the slot is empty)."""

    def __init__(self, title: str, plane: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet("CaseViewFrame { background: black; border: 1px solid #303030; }")
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.setSpacing(0)
        head = QtWidgets.QWidget()
        head.setStyleSheet("background: #181818;")
        hl = QtWidgets.QHBoxLayout(head)
        hl.setContentsMargins(0, 0, 4, 0)
        self.title_label = QtWidgets.QLabel(title)
        self.title_label.setStyleSheet("color: #d0d0d0; padding: 2px 6px;")
        hl.addWidget(self.title_label, 1)
        self.echo_combo = QtWidgets.QComboBox()  # multi-echo series: which echo (TE) is shown
        self.echo_combo.setToolTip("Echo shown (multi-echo series); the row's views follow")
        self.echo_combo.setStyleSheet("color: #d0d0d0; background: #262626;")
        self.echo_combo.hide()
        hl.addWidget(self.echo_combo)
        lay.addWidget(head)
        self.entry = None  # the SeriesEntry shown
        self.stack = QtWidgets.QStackedWidget()
        self.view = VtkSliceView(plane=plane)
        self.empty_label = QtWidgets.QLabel("")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setStyleSheet("color: #aaaaaa; background: black;")
        self.stack.addWidget(self.view)
        self.stack.addWidget(self.empty_label)
        lay.addWidget(self.stack, 1)

    def show_volume(self, volume, label: str) -> None:
        self.stack.setCurrentWidget(self.view)
        self.view.set_volume(volume, label=label)

    def set_echoes(self, entry, index: int) -> None:
        """Offer the echoes of a multi-echo `entry` (hidden for one echo), `index` chosen."""
        self.entry = entry
        combo = self.echo_combo
        with QtCore.QSignalBlocker(combo):
            combo.clear()
            if entry is not None and entry.n_echoes > 1:
                for i, te in enumerate(entry.echo_times):
                    combo.addItem(f"TE {te:g} ms" if te is not None else f"echo {i + 1}")
                combo.setCurrentIndex(index)
                combo.show()
            else:
                combo.hide()

    def show_empty(self, reason: str) -> None:
        self.entry = None
        self.echo_combo.hide()
        self.view.clear()
        self.empty_label.setText(reason)
        self.stack.setCurrentWidget(self.empty_label)

    def shutdown(self) -> None:
        self.view.shutdown()


class ReadingWindow(QtWidgets.QMainWindow):
    """The blinded reading flow of one reader (see the module docstring)."""

    case_shown = QtCore.Signal(str)
    submitted = QtCore.Signal(str)
    finished_read = QtCore.Signal(int)
    reader_identified = QtCore.Signal(str)

    def __init__(self, session, study, *, reader: str | None = None, workspace=None, persist=None, project=None,
                 load_fn=None, clock=None, monotonic=None, ask=None, allow_new_reader: bool | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.study = study
        if project is not None:
            workspace = project.workspace if workspace is None else workspace
            persist = project_persist(project) if persist is None else persist
        self.workspace = workspace
        self.progress = ReaderProgress(session, workspace)
        self._persist = persist
        self._load_fn = load_fn
        self.clock = clock or (lambda: _dt.datetime.now(_dt.timezone.utc))
        self.monotonic = monotonic or time.monotonic
        self.ask = ask or project_controller.default_ask(self)  # a modal message box
        self.allow_new_reader = (not session.readers) if allow_new_reader is None else bool(allow_new_reader)
        self.reader: str | None = None
        self.read = 1
        self.case = None  # the Case on screen
        self.record = None  # its AnswerRecord once submitted
        self._started = 0.0
        self._volumes: dict[int, object] = {}
        self.reader_dialog: ReaderDialog | None = None
        self.last_save_ok: bool | None = None

        self.setWindowTitle(APP_TITLE)
        self.resize(1500, 950)
        self._build()
        self._build_actions()
        self._tick = QtCore.QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update_timer)
        self.statusBar().showMessage("Identify yourself to start")
        if reader is not None:
            QtCore.QTimer.singleShot(0, lambda: self.start(reader))
        else:
            QtCore.QTimer.singleShot(0, self.identify)

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        split = QtWidgets.QSplitter(Qt.Orientation.Horizontal)
        self.splitter = split
        self.images = QtWidgets.QWidget()
        self.images.setStyleSheet("background: black;")
        self.grid = QtWidgets.QGridLayout(self.images)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.frames: list[CaseViewFrame] = []
        self._build_frames()
        split.addWidget(self.images)

        side = QtWidgets.QWidget()
        side.setMinimumWidth(420)
        lay = QtWidgets.QVBoxLayout(side)
        self.case_label = QtWidgets.QLabel("")
        self.case_label.setStyleSheet("font-size: 15pt; font-weight: bold;")
        lay.addWidget(self.case_label)
        row = QtWidgets.QHBoxLayout()
        self.progress_label = QtWidgets.QLabel("")
        self.timer_label = QtWidgets.QLabel("")
        self.timer_label.setToolTip("Time on this case (recorded when you submit)")
        row.addWidget(self.progress_label)
        row.addStretch(1)
        row.addWidget(self.timer_label)
        for w in (self.case_label, self.progress_label, self.timer_label):  # never squeezed by the questions
            w.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed)
            w.setMinimumHeight(w.fontMetrics().height() + 4)
        lay.addLayout(row)
        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(8)
        lay.addWidget(self.progress_bar)

        self.pages = QtWidgets.QStackedWidget()
        # page 0: the questions of a case
        case_page = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(case_page)
        cl.setContentsMargins(0, 0, 0, 0)
        self.questions = QuestionsPanel(self.session.questions)
        cl.addWidget(self.questions, 1)
        self.locked_label = QtWidgets.QLabel("")
        self.locked_label.setWordWrap(True)
        self.locked_label.setStyleSheet("color: #1d6b2a; font-weight: bold;")
        cl.addWidget(self.locked_label)
        buttons = QtWidgets.QHBoxLayout()
        self.submit_button = QtWidgets.QPushButton("Submit")
        self.submit_button.setToolTip("Store the answers of this case (Ctrl+Enter)")
        self.submit_button.clicked.connect(self.submit)
        self.next_button = QtWidgets.QPushButton("Next case ▶")
        self.next_button.setToolTip("Go to the next case (PageDown) — after submitting")
        self.next_button.clicked.connect(self.next_case)
        buttons.addWidget(self.submit_button)
        buttons.addStretch(1)
        buttons.addWidget(self.next_button)
        cl.addLayout(buttons)
        self.pages.addWidget(case_page)
        # page 1: read finished / washout / re-read offer
        done_page = QtWidgets.QWidget()
        dl = QtWidgets.QVBoxLayout(done_page)
        self.done_label = QtWidgets.QLabel("")
        self.done_label.setWordWrap(True)
        self.done_label.setStyleSheet("font-size: 12pt;")
        dl.addWidget(self.done_label)
        self.reread_button = QtWidgets.QPushButton("Start the re-read")
        self.reread_button.clicked.connect(self.start_reread)
        dl.addWidget(self.reread_button)
        dl.addStretch(1)
        self.pages.addWidget(done_page)
        lay.addWidget(self.pages, 1)
        split.addWidget(side)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setSizes([1000, 480])
        self.setCentralWidget(split)
        self.questions.edited.connect(self._update_buttons)
        self.questions.measure_requested.connect(self.start_measurement)
        from discviewer.annotations import AnnotationSet
        from discviewer.ui.annotation_tools import AnnotationToolGroup

        self.scratch = AnnotationSet()  # what the reader draws on this case (never stored in the project)
        self.tools = AnnotationToolGroup(parent=self)
        self.tools.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.tools.annotation_committed.connect(self._on_measured)
        self._measuring: dict | None = None

    def _slots(self) -> list[tuple[str, str]]:
        """(role, plane) of every image slot of the hanging: every role × every plane."""
        h = self.session.options.hanging
        return [(role, plane) for role in (h.roles or ("T2 sag",)) for plane in (h.planes or ("sag",))]

    def _build_frames(self) -> None:
        slots = self._slots()
        self._reference_column = self.session.options.hanging.show_baseline_for_iron and \
            self.session.has_iron_question()
        cols = 2 if self._reference_column else 1
        titles = _unique_titles([neutral_series_title(r, p) for r, p in slots])
        self.frame_slots: list[tuple[int, str, str, str]] = []  # (column, role, plane, title)
        if cols == 2:
            for c, text in enumerate(("Case", "Reference")):
                head = QtWidgets.QLabel(text)
                head.setAlignment(Qt.AlignmentFlag.AlignCenter)
                head.setStyleSheet("color: white; background: #202a36; font-weight: bold; padding: 3px;")
                self.grid.addWidget(head, 0, c)
            self.column_heads = True
        top = 1 if cols == 2 else 0
        self.frame_rows: list[int] = []
        self.echo_choice: dict[int, int] = {}  # slot row → echo index the reader chose (kept across cases)
        for i, ((role, plane), title) in enumerate(zip(slots, titles)):
            for c in range(cols):
                f = CaseViewFrame(title, plane)
                self.frame_rows.append(i)
                f.echo_combo.activated.connect(lambda k, row=i: self.set_echo(row, k))
                self.grid.addWidget(f, top + i, c)
                self.grid.setRowStretch(top + i, 1)
                self.frames.append(f)
                self.frame_slots.append((c, role, plane, title))

    def _build_actions(self) -> None:
        def act(text, keys, slot):
            a = QtGui.QAction(text, self)
            a.setShortcuts([QtGui.QKeySequence(k) for k in keys])
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.triggered.connect(slot)
            self.addAction(a)
            return a

        self.submit_action = act("Submit", ["Ctrl+Return", "Ctrl+Enter"], self.submit)
        self.next_action = act("Next case", ["PgDown"], self.next_case)
        self.key_actions = [act(f"Option {d}", [str(d)], lambda _=False, k=str(d): self.questions.pick_key(k))
                            for d in range(10)]

    # ------------------------------------------------------------------ identification / start
    def identify(self) -> None:
        """Ask who reads (non-blocking dialog; `start` follows when accepted)."""
        dlg = ReaderDialog(self.session.readers, allow_new=self.allow_new_reader, parent=self)
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.accepted.connect(lambda: self.start(dlg.reader()))
        dlg.rejected.connect(self._on_identify_cancelled)
        self.reader_dialog = dlg
        dlg.open()

    def _on_identify_cancelled(self) -> None:
        """No reader chosen: nothing may be read, so the window closes."""
        self.statusBar().showMessage("No reader chosen: nothing to read")
        if self.reader is None:
            QtCore.QTimer.singleShot(0, self.close)

    def start(self, reader: str) -> bool:
        """Read as `reader`: resume at their first unanswered case (or the re-read / the end)."""
        reader = (reader or "").strip()
        if not reader:
            return False
        if reader not in self.session.readers:
            if not self.allow_new_reader:
                self.ask("warning", "Unknown reader", f"'{reader}' is not a reader of this session.", ["OK"])
                QtCore.QTimer.singleShot(0, self.identify)
                return False
            reader = self.progress.identify(reader)
            self._save()
        self.reader = reader
        self.reader_identified.emit(reader)
        if not self.progress.is_complete(reader, 1):
            self.read = 1
        elif self.session.reread_codes and self.session.records(reader, 2):
            self.read = 2  # the re-read was started: resume it
        else:
            self.read = 1
        self.show_next()
        return True

    # ------------------------------------------------------------------ cases
    def show_next(self) -> None:
        """Show the reader's next unanswered case in this read, or the end-of-read page."""
        try:
            case = self.progress.next_case(self.reader, self.read, self.clock())
        except ReadGateError:
            case = None
        if case is None:
            self._show_done()
        else:
            self.show_case(case)

    def show_case(self, case) -> None:
        self.case = case
        self.record = self.session.record(self.reader, case.code, self.read)
        done, total = self.progress.progress(self.reader, self.read)
        pos = self.progress.position(self.reader, case.code, self.read)
        self.pages.setCurrentIndex(0)
        self.case_label.setText(f"Case {case.code}" + (f" — disc {case.level}" if case.level else ""))
        word = "Re-read: case" if self.read == 2 else "Case"
        self.progress_label.setText(f"{word} {pos} of {total}")
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        self.setWindowTitle(blinded_title(self.session, case, self.reader, self.read))
        self._show_images(case)
        self._reset_measurement()
        if self.record is not None:
            self.questions.set_values(self._form_values(self.record.values))
        else:
            self.questions.set_values({})
        self._started = self.monotonic()
        self._tick.start()
        self._apply_lock()
        self._update_timer()
        self.statusBar().showMessage(f"Case {case.code}: {pos} of {total}")
        self.case_shown.emit(case.code)

    def _form_values(self, stored: dict) -> dict:
        out = {}
        for q in self.session.questions:
            v = stored.get(q.id) or {}
            out[q.id] = {"value": v.get("value"), "confidence": v.get("confidence")} if q.confidence \
                else v.get("value")
        return out

    @property
    def locked(self) -> bool:
        """The case on screen is submitted and may not be changed."""
        return self.record is not None and not self.session.options.allow_change_after_submit

    def _apply_lock(self) -> None:
        submitted = self.record is not None
        if self.locked:
            self.stop_measurement()
        self.questions.set_locked(self.locked)
        if self.locked:
            self.locked_label.setText("Submitted — the answers are locked.")
        elif submitted:
            self.locked_label.setText("Submitted — changes are allowed in this session and are recorded.")
        else:
            self.locked_label.setText("")
        self.submit_button.setText("Submitted" if self.locked else ("Submit changes" if submitted else "Submit"))
        self._update_buttons()

    def _update_buttons(self) -> None:
        submitted = self.record is not None
        can_submit = self.case is not None and not self.locked
        self.submit_button.setEnabled(can_submit)
        self.submit_action.setEnabled(can_submit)
        self.next_button.setEnabled(submitted)
        self.next_action.setEnabled(submitted)
        for a in self.key_actions:
            a.setEnabled(can_submit)

    def _update_timer(self) -> None:
        if self.case is None:
            self.timer_label.setText("")
            return
        s = int(max(0.0, self.monotonic() - self._started))
        self.timer_label.setText(f"Time {s // 60}:{s % 60:02d}")

    def elapsed(self) -> float:
        """Seconds on the case on screen (since shown, or since the last stored change)."""
        return max(0.0, float(self.monotonic() - self._started))

    # ------------------------------------------------------------------ images
    def _load(self, candidate):
        key = id(candidate)
        if key not in self._volumes:
            if self._load_fn is not None:
                vol = self._load_fn(candidate, progress=None)
            else:
                from discviewer.io import load

                vol = load(candidate)
            self._volumes[key] = vol
        return self._volumes[key]

    def _visit(self, patient_id: str, visit_id: str):
        if self.study is None:
            return None
        for p in self.study.patients:
            if p.id == patient_id:
                for v in p.visits:
                    if v.id == visit_id:
                        return v
        return None

    @staticmethod
    def _pick_entry(visit, role: str, plane: str, keys):
        entries = [e for e in entries_for_role(visit.series, role) if not keys or e.key in keys]
        if not entries:
            return None
        same = [e for e in entries if e.plane == plane]
        return max(same or entries, key=lambda e: e.series_number if e.series_number is not None else -1)

    def _show_images(self, case) -> None:
        keep: dict[int, object] = {}
        visits = [self._visit(case.patient_id, case.visit_id)]
        show_ref = self.session.shows_baseline(case)
        visits.append(self._visit(case.patient_id, case.baseline_visit_id) if show_ref else None)
        case_keys = {s.key for s in case.series}
        QtWidgets.QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            for frame, row, (col, role, plane, title) in zip(self.frames, self.frame_rows, self.frame_slots):
                visit = visits[col]
                if col == 1 and not show_ref:
                    frame.show_empty("No reference for this case")
                    continue
                if visit is None:
                    frame.show_empty(f"{title}: not available")
                    continue
                entry = self._pick_entry(visit, role, plane, case_keys if col == 0 else None)
                if entry is None:
                    frame.show_empty(f"No {title} in this case")
                    continue
                echo = min(self.echo_choice.get(row, 0), entry.n_echoes - 1)
                cand = entry.candidate(echo)
                try:
                    vol = self._load(cand)
                except Exception:  # the message may hold paths: never shown to the reader
                    _log("loading a series failed:\n" + traceback.format_exc())
                    frame.show_empty(f"The {title} series could not be loaded")
                    continue
                keep[id(cand)] = vol
                frame.show_volume(vol, title)
                frame.set_echoes(entry, echo)
                frame.view.set_plane(plane)
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self._volumes = keep  # only this case's volumes stay in memory

    def set_echo(self, row: int, index: int) -> None:
        """Show echo `index` in every view of slot row `row` (kept for the next cases), same slice."""
        self.echo_choice[row] = int(index)
        for frame, r, (col, role, plane, title) in zip(self.frames, self.frame_rows, self.frame_slots):
            entry = frame.entry
            if r != row or entry is None:
                continue
            k = min(int(index), entry.n_echoes - 1)
            try:
                vol = self._load(entry.candidate(k))
            except Exception:
                _log("loading an echo failed:\n" + traceback.format_exc())
                continue
            view = frame.view
            slice_index, state = view.slice_index, view.view_state()
            view.set_volume(vol, label=title, slice_index=slice_index)
            view.set_view_state(state)
            frame.set_echoes(entry, k)

    # ------------------------------------------------------------------ measurements
    MEASURE_TOOLS = {"disc_height": "disc_height", "signal_ratio": "ellipse"}

    def _measure_view(self):
        for f, (col, *_rest) in zip(self.frames, self.frame_slots):
            if col == 0 and f.view.volume is not None and f.stack.currentWidget() is f.view:
                return f.view
        return None

    def _tool_context(self):
        from discviewer.ui.annotation_tools import ToolContext

        level = (self.case.level or "") if self.case is not None else ""
        return ToolContext(annotations=self.scratch, reader=self.reader or "", level=level)

    def _reset_measurement(self) -> None:
        from discviewer.annotations import AnnotationSet

        self.stop_measurement()
        self.scratch = AnnotationSet()
        view = self._measure_view()
        for t in list(self.tools.tools):
            if t.view is not view:
                self.tools.detach(t.view)
        if view is not None:
            self.tools.attach(view, self._tool_context)
            self.tools.refresh()

    def start_measurement(self, question) -> bool:
        """Arm the measure tool for a measurement question (see the module docstring)."""
        tool = self.MEASURE_TOOLS.get(getattr(question, "measurement", ""))
        view = self._measure_view()
        if tool is None or view is None or self.case is None or self.locked:
            self.statusBar().showMessage("No image to measure on: type the value", 6000)
            return False
        self.tools.attach(view, self._tool_context)
        self._measuring = {"question": question.id, "kind": question.measurement, "ids": []}
        self.tools.set_tool(tool)
        view.setFocus(Qt.FocusReason.OtherFocusReason)
        if question.measurement == "signal_ratio":
            self.statusBar().showMessage("Draw an ellipse in the nucleus (drag corner to corner)", 8000)
        return True

    def stop_measurement(self) -> None:
        self._measuring = None
        if self.tools.tool != "none":
            self.tools.set_tool("none")

    def _on_measured(self, annotation_id: str) -> None:
        m = self._measuring
        if m is None or annotation_id not in self.scratch:
            return
        a = self.scratch.get(annotation_id)
        widget = self.questions.widgets.get(m["question"])
        pts = [[round(float(c), 3) for c in p] for p in a.points]
        if m["kind"] == "disc_height":
            comps = {k: a.values.get(k) for k in ("DHa", "DHm", "DHp")}
            if any(v is None for v in comps.values()):
                self.statusBar().showMessage("Disc height not computed: measure again or type the value", 8000)
                return
            value = sum(comps.values()) / 3.0
            details = {**{k: round(float(v), 3) for k, v in comps.items()}, "method": a.method, "points": pts}
        else:  # signal_ratio: nucleus, then CSF
            m["ids"].append(annotation_id)
            if len(m["ids"]) < 2:
                self.statusBar().showMessage("Now draw an ellipse in the CSF on the same slice", 8000)
                return
            nucleus, csf = (self.scratch.get(i) for i in m["ids"][:2])
            si_n, si_c = nucleus.values.get("mean"), csf.values.get("mean")
            if si_n is None or not si_c:
                self.statusBar().showMessage("Signal ratio not computed: measure again or type the value", 8000)
                m["ids"] = []
                return
            value = float(si_n) / float(si_c)
            details = {"nucleus_mean": round(float(si_n), 3), "csf_mean": round(float(si_c), 3),
                       "method": "two ellipse ROIs (nucleus, CSF)",
                       "points": [[[round(float(c), 3) for c in p] for p in nucleus.points],
                                  [[round(float(c), 3) for c in p] for p in csf.points]]}
        if widget is not None:
            widget.set_measured(value, details)
        self.stop_measurement()
        self.statusBar().showMessage(f"Measured: {widget.editor.text() if widget is not None else value}", 6000)

    # ------------------------------------------------------------------ submit / next
    def submit(self) -> bool:
        """Submit the form (see the module docstring); True when stored."""
        if self.case is None or self.locked or self.reader is None:
            return False
        answers = self.questions.values()
        confirm = False
        try:
            self.progress.validate(answers)
        except MissingAnswersError as e:
            names = "\n".join(f"• {self.session.question(q).text}" for q in e.questions)
            self.ask("warning", "Answers missing", f"Please answer these questions before submitting:\n{names}",
                     ["OK"])
            return False
        except EmptyAnswersError as e:
            names = "\n".join(f"• {self.session.question(q).text}" for q in e.questions)
            choice = self.ask("question", "Submit with empty answers?",
                              f"These optional questions are empty:\n{names}\n\nSubmit them empty?",
                              ["Submit", "Cancel"])
            if choice != "Submit":
                return False
            confirm = True
        except AnswerError as e:
            self.ask("warning", "Answer not accepted", str(e), ["OK"])
            return False
        code = self.case.code
        try:
            self.record = self.progress.submit(self.reader, code, answers, self.elapsed(), self.read,
                                               confirm_empty=confirm, now=self.clock())
        except AnswerLockedError:
            self.ask("warning", "Answers locked", f"Case {code} was already submitted; its answers are locked.",
                     ["OK"])
            self.record = self.session.record(self.reader, code, self.read)
            self._apply_lock()
            return False
        except (ReadingError, AnswerError, ValueError) as e:
            self.ask("warning", "Could not submit", str(e), ["OK"])
            return False
        self._started = self.monotonic()  # a later change counts its own time
        saved = self._save()
        self.questions.set_values(self._form_values(self.record.values))
        self._apply_lock()
        done, total = self.progress.progress(self.reader, self.read)
        self.progress_bar.setValue(done)
        self.statusBar().showMessage(
            f"Case {code} submitted ({done} of {total} done)" + ("" if saved else " — NOT saved to disk"))
        self.submitted.emit(code)
        return True

    def _save(self) -> bool:
        if self._persist is None:
            self.last_save_ok = None
            return True
        try:
            ok = self._persist()
        except Exception:
            _log("saving the answers failed:\n" + traceback.format_exc())
            ok = False
        ok = ok is not False
        self.last_save_ok = ok
        if not ok:
            self.ask("error", "Answers not saved",
                     "The answers could not be written to disk. They are kept while this window stays open; "
                     "tell the study coordinator.", ["OK"])
        return ok

    def next_case(self) -> None:
        """PageDown / "Next case": only once the case on screen is submitted."""
        if self.case is None or self.record is None:
            return
        self.show_next()

    # ------------------------------------------------------------------ end of a read / re-read
    def _show_done(self) -> None:
        self.stop_measurement()
        self.case = None
        self.record = None
        self._tick.stop()
        for f in self.frames:
            f.show_empty("")
        self.pages.setCurrentIndex(1)
        self.case_label.setText("Re-read complete" if self.read == 2 else "Reading complete")
        done, total = self.progress.progress(self.reader, self.read)
        self.progress_label.setText(f"{done} of {total} cases")
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        self.timer_label.setText("")
        self.setWindowTitle(REREAD_TITLE if self.read == 2 else APP_TITLE)
        self.reread_button.hide()
        text = f"All {total} cases are read. Thank you."
        if self.read == 1 and self.session.reread_codes:
            n = len(self.session.reread_codes)
            if self.progress.reread_open(self.reader, self.clock()):
                text += f"\n\nThe re-read of {n} cases is open."
                self.reread_button.setText(f"Start the re-read ({n} cases)")
                self.reread_button.show()
            else:
                opens = self.progress.reread_opens_at(self.reader)
                if opens is not None:
                    text += f"\n\nYour re-read opens on {opens.date().isoformat()}."
        self.done_label.setText(text)
        self._update_buttons()
        self.statusBar().showMessage(self.case_label.text())
        self.finished_read.emit(self.read)

    def start_reread(self) -> bool:
        """Begin read 2 when the washout gate is open (else say when it opens)."""
        if self.reader is None:
            return False
        try:
            self.progress.check_read_open(self.reader, 2, self.clock())
        except ReadGateError:
            opens = self.progress.reread_opens_at(self.reader)
            self.ask("information", "Re-read not open",
                     f"Your re-read opens on {opens.date().isoformat()}." if opens else "The re-read is not open.",
                     ["OK"])
            return False
        self.read = 2
        self.show_next()
        return True

    # ------------------------------------------------------------------ capture / lifetime
    def grab_with_views(self) -> QtGui.QImage:
        """The window as an image with every VTK view painted from its own render (DESIGN.md §5)."""
        import numpy as np

        img = self.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
        painter = QtGui.QPainter(img)
        try:
            for f in self.frames:
                v = f.view
                if not v.isVisible() or v.volume is None:
                    continue
                rgb = np.ascontiguousarray(v.capture()[..., :3])
                h, w = rgb.shape[:2]
                q = QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()
                target = v.vtk_widget
                painter.drawImage(QtCore.QRect(target.mapTo(self, QtCore.QPoint(0, 0)), target.size()), q)
        finally:
            painter.end()
        return img

    def views(self) -> list[VtkSliceView]:
        return [f.view for f in self.frames]

    def shutdown(self) -> None:
        self._tick.stop()
        self._measuring = None
        for t in list(self.tools.tools):
            self.tools.detach(t.view)
        for f in self.frames:
            f.shutdown()

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(ev)


def _unique_titles(titles: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for t in titles:
        seen[t] = seen.get(t, 0) + 1
        out.append(t if seen[t] == 1 else f"{t} ({seen[t]})")
    return out

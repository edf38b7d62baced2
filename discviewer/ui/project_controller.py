"""`ProjectController`: the open project's file life — new, open, save, save as, autosave, recovery,
lock, read-only mode, undo/redo and the window title. No widgets of its own; questions to the
user go through `ask()` (a message box; tests replace it).

- **Title**: "<project name>[*] — discviewer" with Qt's modified marker, "(read-only)" when the
  file could not be locked or was made by a newer version.
- **Saving** writes atomically through `discviewer.workspace.store` (temp file, fsync, replace,
  previous version kept as `.bak`). A failed save (disk full, permission denied) shows the reason;
  the project stays in memory, unchanged and still marked unsaved.
- **Autosave**: every stored change restarts a short debounce timer (`debounce_ms`); a periodic
  timer (`interval_s`) catches anything left. Autosaves go to the user's data folder
  (`discviewer.workspace.autosave`), never over the project file; a clean save or close removes
  them. `offer_recovery()` (on start) and `open_project()` offer an autosave left by a crash.
- **Lock**: an opened project is locked (`<file>.lock`); a project locked by a running app opens
  read-only with the owner named; the lock is refreshed on the autosave timer and released on close.
- **Voxel cache**: a saved project keeps loaded volumes in `<file>.voxels/` beside it, so
  re-opening does not parse the DICOM again (`load_fn`).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from discviewer.workspace.data import EXTENSION
from discviewer.workspace.project import Workspace

Ask = Callable[[str, str, str, list[str]], str]  # ask(kind, title, text, buttons) -> chosen button


def default_ask(parent: QtWidgets.QWidget | None) -> Ask:
    def ask(kind: str, title: str, text: str, buttons: list[str]) -> str:
        icon = {"warning": QtWidgets.QMessageBox.Icon.Warning, "error": QtWidgets.QMessageBox.Icon.Critical,
                "question": QtWidgets.QMessageBox.Icon.Question}.get(kind, QtWidgets.QMessageBox.Icon.Information)
        box = QtWidgets.QMessageBox(icon, title, text, QtWidgets.QMessageBox.StandardButton.NoButton, parent)
        made = {b: box.addButton(b, QtWidgets.QMessageBox.ButtonRole.ActionRole) for b in buttons}
        if buttons:
            box.setDefaultButton(made[buttons[0]])
        box.exec()
        clicked = box.clickedButton()
        for b, w in made.items():
            if w is clicked:
                return b
        return buttons[-1] if buttons else ""

    return ask


class ProjectController(QtCore.QObject):
    title_changed = QtCore.Signal(str)
    workspace_replaced = QtCore.Signal(object)  # the new Workspace (new / open / recover)
    history_changed = QtCore.Signal()  # undo/redo availability or the unsaved state changed
    saved = QtCore.Signal(str)  # path
    message = QtCore.Signal(str)  # status-bar text

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, interval_s: float = 60.0,
                 debounce_ms: int = 2000) -> None:
        super().__init__(parent)
        from discviewer.workspace.autosave import new_untitled_id

        self.ask: Ask = default_ask(parent)
        self.collect_settings: Callable[[], dict] | None = None  # view state to store on save (the window's)
        self.prepare_save: Callable[[], None] | None = None  # e.g. wait for the source index job
        self.workspace = Workspace()
        self.untitled_id = new_untitled_id()
        self.lock = None
        self.voxels = None
        self.last_error = ""
        self._unsubs: list = []
        self._debounce = QtCore.QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._debounce.timeout.connect(self.autosave)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(int(interval_s * 1000))
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self._autosaved_clean = True  # the autosave (or its absence) matches the current state
        self._watch(self.workspace)

    # ------------------------------------------------------------------ state
    @property
    def path(self) -> str | None:
        return self.workspace.path

    @property
    def read_only(self) -> bool:
        return self.workspace.read_only

    def title(self) -> str:
        ws = self.workspace
        name = ws.name or (Path(ws.path).stem if ws.path else "untitled project")
        ro = " (read-only)" if ws.read_only else ""
        return f"{name}[*]{ro} — discviewer"

    def _watch(self, ws: Workspace) -> None:
        for u in self._unsubs:
            u()
        self._unsubs = [ws.changed.subscribe(self._on_workspace_changed),
                        ws.history.changed.subscribe(lambda *a: self._emit_state())]

    def _emit_state(self) -> None:
        self.history_changed.emit()
        self.title_changed.emit(self.title())

    def _on_workspace_changed(self, change) -> None:
        self._autosaved_clean = False
        self._debounce.start()
        self._emit_state()

    def _replace(self, ws: Workspace) -> None:
        old = self.workspace
        if old is not ws:
            self._release_lock()
            old.close()
        self.workspace = ws
        self._watch(ws)
        self.voxels = self._open_voxels(ws.path)
        self._autosaved_clean = not ws.is_dirty
        self.workspace_replaced.emit(ws)
        self._emit_state()

    # ------------------------------------------------------------------ voxel cache
    @staticmethod
    def voxel_path(project_path: str) -> str:
        return project_path + ".voxels"

    def _open_voxels(self, path: str | None):
        if not path:
            return None
        try:
            from discviewer.workspace.voxels import VoxelStore

            return VoxelStore(self.voxel_path(path))
        except Exception as exc:  # the cache is an optimisation: never stop the project for it
            self.message.emit(f"Voxel cache unavailable: {exc}")
            return None

    def wrap_load(self, base_load: Callable) -> Callable:
        """A load function that goes through the project's voxel cache when there is one."""
        def load(candidate, *, progress=None):
            store = self.voxels
            if store is None:
                return base_load(candidate, progress=progress)
            return store.load_through(candidate, base_load, progress=progress)

        return load

    # ------------------------------------------------------------------ new / adopt
    def new_project(self, *, name: str = "") -> Workspace:
        from discviewer.workspace.autosave import discard, new_untitled_id

        discard(self.workspace.path, self.untitled_id)
        self.untitled_id = new_untitled_id()
        ws = Workspace(name=name)
        self._replace(ws)
        return ws

    def index_sources(self, scan_result, *, progress=None, cancel=None) -> None:
        """Index the files of a scan as the project's sources (hashing them; worker-safe)."""
        from discviewer.workspace.sources import index_sources

        self.workspace.sources = index_sources(list(getattr(scan_result, "series", scan_result)),
                                               progress=progress, cancel=cancel)

    # ------------------------------------------------------------------ save
    def save(self) -> bool:
        if self.workspace.path is None or self.workspace.read_only:
            return self.save_as()
        return self._write(self.workspace.path)

    def save_as(self, path: str | os.PathLike | None = None) -> bool:
        if path is None:
            start = self.workspace.path or str(Path.home() / f"{self.workspace.name or 'project'}{EXTENSION}")
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self.parent(), "Save project as", start,
                                                            f"discviewer project (*{EXTENSION})")
            if not path:
                return False
        path = os.path.abspath(os.fspath(path))
        if not path.endswith(EXTENSION):
            path += EXTENSION
        if path != self.workspace.path:
            from discviewer.workspace.lock import WorkspaceLockedError, acquire

            try:
                new_lock = acquire(path, user=self.workspace.user)
            except WorkspaceLockedError as exc:
                self._fail("Cannot save there", str(exc))
                return False
            old_path, old_untitled = self.workspace.path, self.untitled_id
            if not self._write(path):
                new_lock.release()
                return False
            self._release_lock()
            self.lock = new_lock
            from discviewer.workspace.autosave import discard

            discard(old_path, old_untitled)
            self.workspace.path = path
            self.workspace.read_only = False
            self.workspace.read_only_reason = ""
            self.voxels = self._open_voxels(path)
            self._emit_state()
            return True
        return self._write(path)

    def _write(self, path: str) -> bool:
        from discviewer.workspace import store
        from discviewer.workspace.autosave import discard

        ws = self.workspace
        if self.prepare_save is not None:
            self.prepare_save()
        if self.collect_settings is not None:
            ws.settings.update(self.collect_settings())
        ws.log("save", path, "", f"generation {ws.generation + 1}")
        data = ws.to_data()
        data.generation = ws.generation + 1
        try:
            store.save(data, path)
        except Exception as exc:  # WorkspaceSaveError and anything unexpected: the work stays in memory
            ws.log("save failed", path, "", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self._fail("Could not save the project", str(exc))
            return False
        ws.generation = data.generation
        was_path = ws.path
        ws.path = path
        ws.mark_saved()
        discard(was_path, self.untitled_id)
        discard(path, self.untitled_id)
        self._autosaved_clean = True
        self.message.emit(f"Saved {path}")
        self.saved.emit(path)
        self._emit_state()
        return True

    def _fail(self, title: str, text: str) -> None:
        self.last_error = text
        self.message.emit(f"{title}: {text.splitlines()[0] if text else ''}")
        self.ask("error", title, text, ["OK"])

    # ------------------------------------------------------------------ autosave / lock refresh
    def autosave(self) -> bool:
        """Write the autosave now if there is unsaved work not yet autosaved; True if written."""
        from discviewer.workspace.autosave import write_autosave

        ws = self.workspace
        if self._autosaved_clean or not ws.is_dirty:
            return False
        try:
            write_autosave(ws.to_data(), ws.path, self.untitled_id)
        except Exception as exc:
            self.message.emit(f"Autosave failed: {exc}")
            return False
        self._autosaved_clean = True
        return True

    def set_autosave_interval(self, seconds: float) -> None:
        """The periodic autosave timer's interval (Preferences → Project)."""
        self._timer.setInterval(int(round(float(seconds) * 1000)))

    @property
    def autosave_interval_s(self) -> float:
        return self._timer.interval() / 1000.0

    def _tick(self) -> None:
        self.autosave()
        if self.lock is not None:
            try:
                self.lock.refresh()
            except Exception:
                pass

    # ------------------------------------------------------------------ open
    def load_project(self, path: str | os.PathLike) -> Workspace | None:
        """Read a project file (with lock, damaged-file and recovery handling) and make it the current
        project; its sources still need scanning (the window does that). None if not opened."""
        from discviewer.workspace import store
        from discviewer.workspace.autosave import recoverable, strip_marker
        from discviewer.workspace.lock import WorkspaceLockedError, acquire

        path = os.path.abspath(os.fspath(path))
        backup_note = ""
        try:
            result = store.load(path)
        except store.WorkspaceCorruptError as exc:
            backup = getattr(exc, "backup", None)
            if backup and self.ask("error", "Project file damaged",
                                   f"{exc}\n\nOpen the backup copy {backup}?", ["Open backup", "Cancel"]) == "Open backup":
                try:
                    result = store.load(backup)
                except Exception as exc2:
                    self._fail("Could not open the backup", str(exc2))
                    return None
                backup_note = f"opened from the backup {backup}"
            else:
                if not backup:
                    self._fail("Could not open the project", str(exc))
                return None
        except Exception as exc:
            self._fail("Could not open the project", str(exc))
            return None

        data = result.data
        read_only, reason = bool(result.read_only), result.message if result.read_only else ""
        lock = None
        if not read_only:
            try:
                lock = acquire(path)
            except WorkspaceLockedError as exc:
                read_only, reason = True, str(exc)
            except OSError as exc:  # e.g. a read-only folder: still viewable
                read_only, reason = True, f"cannot lock {path}: {exc}"
        recovered = False
        found = recoverable(path)
        if found and not read_only:
            a = found[0]
            choice = self.ask("question", "Recover unsaved work?",
                              f"discviewer did not close normally while {path} had unsaved changes.\n"
                              f"An autosave from {a.time} (UTC) exists. Recover it?",
                              ["Recover", "Discard", "Later"])
            if choice == "Recover":
                try:
                    data = strip_marker(store.load(a.path).data)
                    recovered = True
                except Exception as exc:
                    self.message.emit(f"Autosave unreadable: {exc}")
            elif choice == "Discard":
                try:
                    os.remove(a.path)
                except OSError:
                    pass
        ws = Workspace.from_data(data, path=path)
        ws.read_only, ws.read_only_reason = read_only, reason
        ws.log("open", path, "", "read-only: " + reason if read_only else "")
        if recovered:
            ws.log("recover autosave", path)
            ws.mark_modified("recovered")
        if backup_note:
            ws.mark_modified("backup")
        self._replace(ws)
        self.lock = lock
        self._autosaved_clean = not recovered
        if recovered:
            self.autosave()  # keep the recovered state safe under this process
        msgs = [m for m in (result.message if not result.read_only else "", reason, backup_note) if m]
        if msgs:
            self.ask("warning" if read_only else "information", "Project opened", "\n\n".join(msgs), ["OK"])
        self.message.emit(f"Opened {path}" + (" (read-only)" if read_only else ""))
        return ws

    def offer_recovery(self) -> Workspace | None:
        """On start: offer the newest autosave a crashed session left (if any)."""
        from discviewer.workspace import store
        from discviewer.workspace.autosave import recoverable, strip_marker

        found = recoverable()
        if not found:
            return None
        a = found[0]
        choice = self.ask("question", "Recover unsaved work?",
                          f"discviewer did not close normally. Unsaved work of {a.title} was autosaved at "
                          f"{a.time} (UTC). Recover it?", ["Recover", "Discard", "Later"])
        if choice == "Discard":
            try:
                os.remove(a.path)
            except OSError:
                pass
            return None
        if choice != "Recover":
            return None
        try:
            data = strip_marker(store.load(a.path).data)
        except Exception as exc:
            self._fail("Could not recover", str(exc))
            return None
        project = a.project or None
        lock = None
        read_only, reason = False, ""
        if project:
            from discviewer.workspace.lock import WorkspaceLockedError, acquire

            try:
                lock = acquire(project)
            except (WorkspaceLockedError, OSError) as exc:
                read_only, reason = True, str(exc)
        ws = Workspace.from_data(data, path=project)
        ws.read_only, ws.read_only_reason = read_only, reason
        ws.log("recover autosave", project or "untitled", "", a.time)
        ws.mark_modified("recovered")
        if not project:
            self.untitled_id = a.untitled_id or self.untitled_id
        self._replace(ws)
        self.lock = lock
        self._autosaved_clean = False
        self.autosave()
        try:  # the old autosave is now ours (same path for the same project); remove a stale other one
            if Path(a.path) != self._current_autosave_path():
                os.remove(a.path)
        except OSError:
            pass
        return ws

    def _current_autosave_path(self) -> Path:
        from discviewer.workspace.autosave import autosave_path

        return autosave_path(self.workspace.path, self.untitled_id)

    # ------------------------------------------------------------------ close
    def maybe_save(self, action: str = "closing") -> bool:
        """Before replacing or closing the project: ask about unsaved work. False = cancel."""
        if not self.workspace.is_dirty:
            return True
        name = self.workspace.path or "the untitled project"
        choice = self.ask("question", "Unsaved changes",
                          f"Save the changes to {name} before {action}?", ["Save", "Discard", "Cancel"])
        if choice == "Save":
            return self.save()
        return choice == "Discard"

    def close(self) -> None:
        """Clean close: remove the autosave and release the lock."""
        from discviewer.workspace.autosave import discard

        self._debounce.stop()
        self._timer.stop()
        discard(self.workspace.path, self.untitled_id)
        self._release_lock()

    def _release_lock(self) -> None:
        lock, self.lock = self.lock, None
        if lock is not None:
            try:
                lock.release()
            except Exception:
                pass

    # ------------------------------------------------------------------ undo / redo
    def undo(self) -> None:
        step = self.workspace.undo()
        if step is not None:
            self.message.emit(f"Undo: {step.text}")

    def redo(self) -> None:
        step = self.workspace.redo()
        if step is not None:
            self.message.emit(f"Redo: {step.text}")

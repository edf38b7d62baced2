"""Undo/redo of every stored edit, recorded from the models' `Change` events.

Models already announce each real change as `Change(source, name, old, new)` (labels, roles,
transforms, transform sets, annotations). The workspace subscribes to them and passes every change
to `EditHistory.record`; an undo step is a list of changes, reverted last-first by putting `old`
back through the `restore(change, forward)` function the workspace supplies (it knows how to set a
label, a role, a transform with its provenance, an annotation). While an undo/redo is being applied
`applying` is true and `record` ignores the echoes of the restore, so undo never records itself.

- `group(text)` collects everything recorded inside the block into one step (e.g. "Register
  visits" setting four transforms); groups nest, the outermost one names the step.
- Inside one step, repeated changes of the same (source, name) are merged (first old, last new),
  so dragging a handle or nudging twice in a group is one entry.
- A new edit after an undo clears the redo list (the usual linear history).
- `mark_clean()` remembers the current position (on save); `is_clean` says whether the model is
  back at it — undoing to the saved state clears the unsaved marker, as in any editor.
- `limit` bounds the number of steps kept (oldest dropped).

`changed` emits (no arguments) after every record/undo/redo/clean change, for menus and titles.
Core module: stdlib only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from discviewer.events import Change, Signal

Restore = Callable[[Change, bool], None]  # restore(change, forward): set change.new (redo) or change.old (undo)
_step_ids = itertools.count(1)


@dataclass
class Step:
    text: str
    changes: list[Change] = field(default_factory=list)
    id: int = field(default_factory=lambda: next(_step_ids))

    def add(self, change: Change) -> None:
        for i, c in enumerate(self.changes):
            if c.source is change.source and c.name == change.name:
                self.changes[i] = _merge(c, change)
                return
        self.changes.append(change)


def _merge(first: Change, last: Change) -> Change:
    """Keep the first 'old' side and the last 'new' side of a (possibly subclassed) change."""
    olds = {f.name: getattr(first, f.name) for f in dataclasses.fields(first) if f.name.startswith("old")}
    return dataclasses.replace(last, **olds)


def describe(change: Change) -> str:
    """A short text for a change, used when no group names the step."""
    kind = type(change.source).__name__
    return {"Visit": "Rename visit", "SeriesEntry": "Change series role", "TransformSet": "Change transform",
            "TransformRegistry": "Add disc-level transforms", "AnnotationSet": "Edit annotation"}.get(kind, "Edit")


class EditHistory:
    def __init__(self, restore: Restore, *, limit: int = 500) -> None:
        self._restore = restore
        self.limit = limit
        self._undo: list[Step] = []
        self._redo: list[Step] = []
        self._group: list[Step] = []  # open groups, outermost first
        self._applying = ""  # "undo" / "redo" while a step is being applied
        self._clean_id: int | None = 0  # id of the top step at the last save; 0 = empty stack
        self.changed = Signal()

    # ------------------------------------------------------------------ recording
    @property
    def applying(self) -> str:
        """"undo" or "redo" while a step is being applied, else "" (false)."""
        return self._applying

    def record(self, change: Change, text: str = "") -> None:
        if self._applying:
            return
        if self._group:
            self._group[0].add(change)
            return
        step = Step(text or describe(change))
        step.add(change)
        self._push(step)

    def _push(self, step: Step) -> None:
        self._undo.append(step)
        self._redo.clear()
        if len(self._undo) > self.limit:
            dropped = self._undo.pop(0)
            if self._clean_id == dropped.id:
                self._clean_id = None  # the saved state can no longer be reached
        self.changed.emit()

    @contextlib.contextmanager
    def group(self, text: str) -> Iterator[None]:
        outer = not self._group
        self._group.append(Step(text) if outer else self._group[0])
        try:
            yield
        finally:
            step = self._group.pop()
            if outer and step.changes:
                self._push(step)

    # ------------------------------------------------------------------ undo / redo
    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo_text(self) -> str:
        return self._undo[-1].text if self._undo else ""

    def redo_text(self) -> str:
        return self._redo[-1].text if self._redo else ""

    def undo(self) -> Step | None:
        if not self._undo:
            return None
        step = self._undo.pop()
        self._apply(step, forward=False)
        self._redo.append(step)
        self.changed.emit()
        return step

    def redo(self) -> Step | None:
        if not self._redo:
            return None
        step = self._redo.pop()
        self._apply(step, forward=True)
        self._undo.append(step)
        self.changed.emit()
        return step

    def _apply(self, step: Step, *, forward: bool) -> None:
        self._applying = "redo" if forward else "undo"
        try:
            for change in (step.changes if forward else reversed(step.changes)):
                self._restore(change, forward)
        finally:
            self._applying = ""

    # ------------------------------------------------------------------ clean state
    def _top_id(self) -> int:
        return self._undo[-1].id if self._undo else 0

    def mark_clean(self) -> None:
        self._clean_id = self._top_id()
        self.changed.emit()

    def mark_dirty(self) -> None:
        """The stored state differs from the file for a reason outside the history (e.g. a recovered
        autosave): no position of the stack is clean."""
        self._clean_id = None
        self.changed.emit()

    @property
    def is_clean(self) -> bool:
        return self._clean_id == self._top_id()

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._clean_id = 0
        self.changed.emit()

    def steps(self) -> list[str]:
        return [s.text for s in self._undo]

"""Change notification without Qt: a tiny callback list (`Signal`) and a `Change` record.

Models (visits, series entries, transform sets, …) own one `Signal` each, usually called `changed`,
and emit a `Change` only when a value really changes (DESIGN.md §4: user input → model change →
model emits only if changed → views pull and redraw). The Qt layer adapts a `Signal` to its own
signals in one place; core code and tests use it directly.

    sig = Signal()
    unsubscribe = sig.subscribe(lambda change: print(change.name, change.old, "→", change.new))
    sig.emit(Change(source, "label", "3 m", "visit 2"))
    unsubscribe()

Rules:
- `subscribe(fn)` returns a function that removes exactly that subscription (safe to call twice).
  Subscribing the same callable twice gives two subscriptions.
- Callbacks run synchronously, in subscription order, on the caller's thread. A callback may
  subscribe or unsubscribe during an emit; the change applies from the next emit.
- If a callback raises, the remaining callbacks still run and the first exception is re-raised
  afterwards, so one broken view cannot silence the others and errors are never swallowed.
- `blocked()` suppresses emits for a block (a widget updating itself from the model);
  `batch()` holds emits and delivers them once at the end, keeping only the last `Change` per
  (source, name) and dropping those whose final value equals the value before the batch.

Core module: stdlib only.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Change:
    """One value of `source` changed: `name` went from `old` to `new`."""

    source: Any
    name: str
    old: Any
    new: Any


class Signal:
    """A list of callbacks, each called with the emitted arguments."""

    def __init__(self) -> None:
        self._subs: list[tuple[int, Callable[..., Any]]] = []
        self._next_id = 0
        self._blocked = 0
        self._batching = 0
        self._held: list[tuple[tuple, dict]] = []

    def subscribe(self, fn: Callable[..., Any]) -> Callable[[], None]:
        """Call `fn` on every emit; returns the function that undoes this subscription."""
        if not callable(fn):
            raise TypeError(f"subscribe needs a callable, got {fn!r}")
        sid = self._next_id
        self._next_id += 1
        self._subs.append((sid, fn))

        def unsubscribe() -> None:
            self._subs = [(i, f) for i, f in self._subs if i != sid]

        return unsubscribe

    def __len__(self) -> int:
        return len(self._subs)

    def emit(self, *args: Any, **kwargs: Any) -> None:
        if self._blocked:
            return
        if self._batching:
            self._held.append((args, kwargs))
            return
        self._deliver(args, kwargs)

    def _deliver(self, args: tuple, kwargs: dict) -> None:
        first_error: BaseException | None = None
        for _, fn in list(self._subs):
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # keep notifying the others, re-raise below
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error

    @contextlib.contextmanager
    def blocked(self) -> Iterator[None]:
        """No emits inside the block (they are dropped, not delayed)."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold emits until the outermost batch ends, then deliver them coalesced (see module doc)."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            if not self._batching:
                held, self._held = self._held, []
                for args, kwargs in _coalesce(held):
                    self._deliver(args, kwargs)


def _coalesce(held: list[tuple[tuple, dict]]) -> list[tuple[tuple, dict]]:
    """Merge held `Change` emits per (source, name); other emits pass through in order."""
    out: list[tuple[tuple, dict] | None] = []
    where: dict[tuple[int, str], int] = {}
    for args, kwargs in held:
        if len(args) == 1 and not kwargs and isinstance(args[0], Change):
            ch = args[0]
            key = (id(ch.source), ch.name)
            if key in where:
                i = where[key]
                first = out[i][0][0]  # type: ignore[index]
                out[i] = None
                merged = Change(ch.source, ch.name, first.old, ch.new)
                where[key] = len(out)
                out.append(((merged,), {}))
                continue
            where[key] = len(out)
        out.append((args, kwargs))
    result = []
    for item in out:
        if item is None:
            continue
        args, kwargs = item
        if len(args) == 1 and isinstance(args[0], Change) and _same(args[0].old, args[0].new):
            continue
        result.append(item)
    return result


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. numpy arrays: ambiguous truth value
        return a is b


class Observable:
    """Mixin: a `changed` Signal and `_set(name, value)` that emits a `Change` only on a real change.

    The value lives in the attribute `_<name>`; subclasses expose it through a property.
    """

    def __init__(self) -> None:
        self.changed = Signal()

    def _set(self, name: str, value: Any) -> bool:
        attr = "_" + name
        old = getattr(self, attr)
        if _same(old, value):
            return False
        setattr(self, attr, value)
        self.changed.emit(Change(self, name, old, value))
        return True

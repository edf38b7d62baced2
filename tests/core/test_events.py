"""events: Signal subscribe/unsubscribe, emit-only-on-change, blocking and batching."""
from __future__ import annotations

import pytest

from discviewer.events import Change, Observable, Signal


class Thing(Observable):
    def __init__(self):
        super().__init__()
        self._value = 0

    def set_value(self, v):
        return self._set("value", v)


def test_subscribe_emit_unsubscribe():
    sig = Signal()
    got = []
    unsub = sig.subscribe(got.append)
    sig.emit(1)
    unsub()
    sig.emit(2)
    unsub()  # twice is harmless
    assert got == [1]
    assert len(sig) == 0


def test_same_callable_twice_gives_two_independent_subscriptions():
    sig = Signal()
    got = []
    u1 = sig.subscribe(got.append)
    sig.subscribe(got.append)
    sig.emit("a")
    u1()
    sig.emit("b")
    assert got == ["a", "a", "b"]


def test_observable_emits_only_on_real_change():
    t = Thing()
    got = []
    t.changed.subscribe(got.append)
    assert t.set_value(0) is False
    assert t.set_value(5) is True
    assert t.set_value(5) is False
    assert got == [Change(t, "value", 0, 5)]


def test_failing_callback_does_not_silence_others_and_is_reraised():
    sig = Signal()
    got = []

    def boom(_):
        raise RuntimeError("broken view")

    sig.subscribe(boom)
    sig.subscribe(got.append)
    with pytest.raises(RuntimeError, match="broken view"):
        sig.emit(1)
    assert got == [1]


def test_blocked_drops_and_batch_coalesces():
    t = Thing()
    got = []
    t.changed.subscribe(got.append)
    with t.changed.blocked():
        t.set_value(1)
    assert got == []
    with t.changed.batch():
        t.set_value(2)
        t.set_value(3)
        assert got == []
    assert got == [Change(t, "value", 1, 3)]
    got.clear()
    with t.changed.batch():  # changed and changed back: nothing to report
        t.set_value(4)
        t.set_value(3)
    assert got == []

"""A memory-bounded cache of loaded volumes, keyed by candidate (least recently used evicted first).

Hanging five visits loads five series; moving between protocols and planes must not reload
them, but memory must stay bounded (issue: ≤ 1.3× the voxel bytes loaded + 300 MB).
Thread-safe: loads run in worker threads. Core module: no Qt, no VTK.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from discviewer.volume import Volume


def candidate_key(candidate) -> tuple:
    """A stable key for a candidate: its series, echo, part and first file/frame."""
    info = candidate.info
    first = candidate.frames[0] if candidate.frames else None
    return (info.series_uid, info.echo_time, info.complex_part, getattr(first, "path", ""),
            getattr(first, "frame", 0), candidate.slice_count, candidate.label)


class VolumeCache:
    def __init__(self, budget_bytes: int = 2 * 1024 ** 3) -> None:
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[tuple, Volume] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(v.array.nbytes for v in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def get(self, candidate) -> Volume | None:
        key = candidate_key(candidate)
        with self._lock:
            vol = self._items.get(key)
            if vol is not None:
                self._items.move_to_end(key)
            return vol

    def put(self, candidate, volume: Volume) -> None:
        key = candidate_key(candidate)
        with self._lock:
            self._items[key] = volume
            self._items.move_to_end(key)
            total = sum(v.array.nbytes for v in self._items.values())
            while total > self.budget_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                total -= old.array.nbytes

    def get_or_load(self, candidate, load: Callable[..., Volume], **kwargs) -> Volume:
        vol = self.get(candidate)
        if vol is None:
            vol = load(candidate, **kwargs)
            self.put(candidate, vol)
        return vol

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

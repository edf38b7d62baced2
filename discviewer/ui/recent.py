"""The "Open recent" list: most recent first, no duplicates, kept in QSettings."""
from __future__ import annotations

import os

from PySide6 import QtCore


class RecentPaths:
    """Recently opened folders/files (most recent first), persisted under `key` in `settings`."""

    def __init__(self, settings: QtCore.QSettings, key: str = "recent/paths", limit: int = 10) -> None:
        self._settings = settings
        self._key = key
        self.limit = limit

    def paths(self) -> list[str]:
        value = self._settings.value(self._key, [])
        if isinstance(value, str):  # QSettings returns a bare string for one-element lists
            value = [value]
        return [str(v) for v in (value or []) if v]

    def add(self, path: str | os.PathLike) -> None:
        p = os.path.abspath(os.fspath(path))
        items = [p] + [q for q in self.paths() if q != p]
        self._settings.setValue(self._key, items[: self.limit])
        self._settings.sync()

    def clear(self) -> None:
        self._settings.remove(self._key)
        self._settings.sync()

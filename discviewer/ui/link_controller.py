"""`LinkController`: linked navigation across viewports of different visits.

Each linked view belongs to a visit; the shared position lives in the BASELINE patient space
and reaches each view through the visit's transform (`discviewer.linking.TransformSet`,
identity until registration provides real ones). Linked properties, each switchable:
- "slice": a slice change in one view moves every other view to the same anatomy;
- "view": zoom and pan — same mm per pixel, the shared point at the same place on screen;
- "window": window/level in gain-independent units (`IntensityNormalizer`, p1–p99 of each volume),
  since raw intensities differ between visits.
Updates from the controller never echo back (a re-entrancy guard), and views render once per
event-loop turn on their own.
"""
from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from discviewer.linking import IntensityNormalizer, TransformSet

LINKS = ("slice", "view", "window")


class _Member:
    def __init__(self, view, visit_id: str) -> None:
        self.view = view
        self.visit_id = visit_id
        self.normalizer: IntensityNormalizer | None = None
        self.connections: list = []


class LinkController(QtCore.QObject):
    links_changed = QtCore.Signal()

    def __init__(self, transforms: TransformSet | None = None, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.transforms = transforms or TransformSet()
        self.enabled = {name: True for name in LINKS}
        # "relative": W/L in units of each volume's p1–p99 range (visits differ in gain);
        # "absolute": the same numbers everywhere (echoes of one series: the decay must stay visible)
        self.window_units = "relative"
        self._members: list[_Member] = []
        self._syncing = False

    # ------------------------------------------------------------------ membership
    def set_views(self, pairs) -> None:
        """Link these (view, visit_id) pairs (replacing any earlier set)."""
        self.clear()
        for view, visit_id in pairs:
            m = _Member(view, visit_id)
            m.connections = [
                (view.slice_changed, lambda *_a, v=view: self._on_slice(v)),
                (view.view_changed, lambda *_a, v=view: self._on_view(v)),
                (view.window_changed, lambda c, w, v=view: self._on_window(v, c, w)),
                (view.point_picked, lambda p, v=view: self._on_point(v, p)),
            ]
            for sig, fn in m.connections:
                sig.connect(fn)
            self._members.append(m)
        self.refresh_normalizers()

    def clear(self) -> None:
        for m in self._members:
            for sig, fn in m.connections:
                try:
                    sig.disconnect(fn)
                except (RuntimeError, TypeError):
                    pass
        self._members = []

    def views(self) -> list:
        return [m.view for m in self._members]

    def refresh_normalizers(self) -> None:
        """Recompute each view's intensity normalizer (call after a view's volume changed)."""
        for m in self._members:
            vol = m.view.volume
            m.normalizer = IntensityNormalizer.from_array(vol) if vol is not None else None

    def set_enabled(self, name: str, on: bool) -> None:
        if name not in LINKS:
            raise ValueError(f"unknown link {name!r}; one of {LINKS}")
        if self.enabled[name] != bool(on):
            self.enabled[name] = bool(on)
            self.links_changed.emit()

    def all_enabled(self) -> bool:
        return all(self.enabled.values())

    def set_all(self, on: bool) -> None:
        for name in LINKS:
            self.set_enabled(name, on)

    # ------------------------------------------------------------------ helpers
    def _member(self, view) -> _Member | None:
        for m in self._members:
            if m.view is view:
                return m
        return None

    def _others(self, view):
        return [m for m in self._members if m.view is not view and m.view.volume is not None]

    def map_point(self, point, from_visit: str, to_visit: str) -> np.ndarray:
        base = self.transforms.to_baseline(np.asarray(point, float), from_visit)
        return self.transforms.to_visit(base, to_visit)

    def _guard(self):
        ctrl = self

        class _G:
            def __enter__(self):
                ctrl._syncing = True

            def __exit__(self, *exc):
                ctrl._syncing = False

        return _G()

    # ------------------------------------------------------------------ handlers
    def _on_slice(self, view) -> None:
        if self._syncing or not self.enabled["slice"]:
            return
        src = self._member(view)
        if src is None or view.volume is None:
            return
        p = view.pipeline.point()
        with self._guard():
            for m in self._others(view):
                m.view.set_point(self.map_point(p, src.visit_id, m.visit_id))

    def _on_point(self, view, point) -> None:
        src = self._member(view)
        if src is None:
            return
        with self._guard():
            view.set_crosshair(point)
            for m in self._others(view):
                q = self.map_point(point, src.visit_id, m.visit_id)
                if self.enabled["slice"]:
                    m.view.set_point(q)
                m.view.set_crosshair(q)

    def _on_view(self, view) -> None:
        if self._syncing or not self.enabled["view"]:
            return
        src = self._member(view)
        if src is None or view.volume is None:
            return
        pipe = view.pipeline
        p = pipe.point()
        fu, fv, scale = pipe.view_state()
        pu, pv = pipe.patient_to_plane(p)
        with self._guard():
            for m in self._others(view):
                q = self.map_point(p, src.visit_id, m.visit_id)
                qu, qv = m.view.pipeline.patient_to_plane(q)
                m.view.set_view_state((qu + (fu - pu), qv + (fv - pv), scale))

    def _on_window(self, view, center: float, width: float) -> None:
        if self._syncing or not self.enabled["window"]:
            return
        src = self._member(view)
        if src is None:
            return
        if self.window_units == "absolute":
            with self._guard():
                for m in self._others(view):
                    m.view.set_window(center, width)
            return
        if src.normalizer is None:
            return
        rel = src.normalizer.to_relative(center, width)
        with self._guard():
            for m in self._others(view):
                if m.normalizer is not None:
                    m.view.set_window(*m.normalizer.from_relative(*rel))

    def sync_all_from(self, view) -> None:
        """Bring every other view to `view`'s slice, view and window (e.g. right after hanging)."""
        self._on_slice(view)
        self._on_view(view)
        self._on_window(view, *view.window())

"""`ReviewController`: what the reading area shows, and how it gets there.

Owns the review workflow on top of a `ReviewPanel`: a single series (one viewport, or the three
MPR planes with a shared crosshair), hanging all visits of a patient by a protocol, plane and
echo changes, next/previous visit, and the comparison modes against baseline — flicker (the
baseline resampled onto each follow-up's own slices, toggled) and difference (follow-up minus
baseline in gain-independent units). Loading: every viewport first shows its middle slice
(one frame, read at once), then its whole series from a background job; loaded volumes are kept
in a memory-bounded `VolumeCache`. The link between visits goes through the per-visit
transforms of `panel.links.transforms` (identity until registration provides real ones).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from PySide6 import QtCore

from discviewer.hanging import HangingProtocol, apply_layout, builtin_protocols
from discviewer.linking import WHOLE_VOLUME, IntensityNormalizer, TransformChange, TransformRegistry, TransformSet
from discviewer.reslice import resample_volume
from discviewer.study import Study
from discviewer.volume import Volume
from discviewer.volume_cache import VolumeCache
from discviewer.ui.review_panel import ReviewPanel, ViewportFrame
from discviewer.ui.workers import Job, LoadFn, make_multi_load_job

MPR_PLANES = ("sag", "cor", "ax")
MODES = ("normal", "flicker", "difference", "overlay", "checkerboard", "fusion")
CHECKER_MM = 12.0  # checkerboard tile size


def _first_slice(candidate):
    """The middle slice as a 1-slice Volume (for the first image on screen), or None."""
    try:
        from discviewer.io import load_slice

        if not candidate.private.get("headers") and not candidate.private.get("nifti"):
            return None
        return load_slice(candidate, candidate.slice_count // 2)
    except Exception:
        return None


class ReviewController(QtCore.QObject):
    status = QtCore.Signal(str)
    volume_shown = QtCore.Signal(object, object)  # (frame, Volume) — a full volume is on screen
    all_loaded = QtCore.Signal()
    load_failed = QtCore.Signal(str)
    mode_changed = QtCore.Signal(str)
    load_progress = QtCore.Signal(int, int)  # (series done, series total); (0, 0) when idle
    registered = QtCore.Signal(object)  # VisitRegistration, or an error text (str)
    registration_finished = QtCore.Signal(list)  # every VisitRegistration of the run
    transforms_changed = QtCore.Signal(str)  # visit id whose transform changed (registration / nudge / reset)
    link_levels_changed = QtCore.Signal()  # a transform set was added or the active one changed

    def __init__(self, panel: ReviewPanel, *, load_fn: LoadFn | None = None, cache: VolumeCache | None = None,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.panel = panel
        self.load_fn = load_fn
        self.cache = cache or VolumeCache()
        self.study: Study | None = None
        self.protocols: list[HangingProtocol] = builtin_protocols()
        self.protocol: HangingProtocol | None = self.protocols[0] if self.protocols else None
        self.mode = "normal"
        self.flicker_on = False  # in flicker mode: True while the baseline is shown
        self.overlay_opacity = 0.5  # overlay mode: the follow-up (hot colours) over the baseline
        self._job: Job | None = None
        self._jobs: set[Job] = set()
        self._pending: dict[int, list[ViewportFrame]] = {}  # id(candidate) → frames waiting for it
        self._own: dict[int, Volume] = {}  # id(frame) → the frame's own full volume
        self._compare: dict[int, tuple[Volume, Volume]] = {}  # id(frame) → (baseline on grid, difference)
        self._last_single: tuple[Any, str] | None = None
        self._unsubscribe = None
        # one transform set for the whole volume and one per registered disc level: the spine is not
        # one rigid body, so the viewer can link visits through the transform of the level being read
        self.transform_sets = TransformRegistry()
        self.panel.links.transforms = self.transform_sets.whole
        self._transforms_unsub = self.transform_sets.changed.subscribe(self._on_transforms_changed)
        self.link_level = WHOLE_VOLUME

    # ------------------------------------------------------------------ study
    @property
    def transforms(self) -> TransformSet:
        return self.panel.links.transforms

    def set_study(self, study: Study | None, transforms: TransformRegistry | None = None) -> None:
        """Show `study`, linking its visits through `transforms` (the project's transform sets; a
        fresh registry when None). Changes of those sets — from registration, nudges, or an undo —
        reach the views through the registry's `changed` signal."""
        if getattr(self, "_unsubscribe", None) is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.study = study
        if study is not None:
            self._unsubscribe = study.changed.subscribe(self._on_study_changed)
        if transforms is None:
            baseline = None
            if study is not None and study.patients and study.patients[0].baseline is not None:
                baseline = study.patients[0].baseline.id
            transforms = TransformRegistry(baseline)
        self._transforms_unsub()
        self.transform_sets = transforms
        self._transforms_unsub = transforms.changed.subscribe(self._on_transforms_changed)
        self.panel.links.transforms = transforms.whole
        self.link_level = WHOLE_VOLUME
        self.link_levels_changed.emit()
        self.cache.clear()
        self.panel.clear()
        self._own.clear()
        self._compare.clear()
        self.mode = "normal"

    def _on_study_changed(self, change) -> None:
        """A visit label or a role changed in the model: retitle the viewports that show it."""
        if getattr(change, "name", "") != "label":
            return
        for f in self.panel.view_frames():
            if f.visit is change.source and f.candidate is not None:
                _, visit, entry, echo = self.locate(f.candidate)
                f.title = self._title(visit, entry, echo, f.view.plane)
                if self.mode == "normal":
                    f.view.set_label(f.title)

    def locate(self, candidate):
        """(patient, visit, entry, echo index) of a candidate in the study, or Nones."""
        if self.study is None:
            return None, None, None, None
        for p in self.study.patients:
            for v in p.visits:
                for e in v.series:
                    for i, c in enumerate(e.echoes):
                        if c is candidate:
                            return p, v, e, i
        return None, None, None, None

    def _title(self, visit, entry, echo_index, plane) -> str:
        """Viewport title: visit label (day) · series description · TE (multi-echo) · plane if reformatted."""
        parts = []
        if visit is not None:
            parts.append(visit.label + (f" (day {visit.days})" if visit.days else ""))
        if entry is not None:
            parts.append(entry.description or str(getattr(entry.role, "value", entry.role)))
            te = entry.echo_times[echo_index] if echo_index is not None else None
            if entry.n_echoes > 1 and te is not None:
                parts.append(f"TE {te:g} ms")
            if plane and entry.plane and plane != entry.plane:
                parts.append(f"{plane} reformat")
        return " · ".join(parts)

    # ------------------------------------------------------------------ showing
    def show_candidate(self, candidate, plane: str | None = None) -> list[ViewportFrame]:
        """One viewport with `candidate` (in its acquired plane unless `plane` is given)."""
        patient, visit, entry, echo = self.locate(candidate)
        plane = plane or (entry.plane if entry is not None and entry.plane in MPR_PLANES else "sag")
        self._last_single = (candidate, plane)
        cells = [dict(row=0, col=0, plane=plane, visit_id=visit.id if visit else "", candidate=candidate,
                      visit=visit, title=self._title(visit, entry, echo, plane))]
        frames = self.panel.build(cells, 1, 1, mode="single")
        self._reset_mode()
        self._load(frames)
        return frames

    def show_mpr(self, candidate=None) -> list[ViewportFrame]:
        """The three planes of one series side by side, linked by a shared crosshair."""
        candidate = candidate or self.current_candidate()
        if candidate is None:
            return []
        patient, visit, entry, echo = self.locate(candidate)
        vid = visit.id if visit else ""
        cells = [dict(row=0, col=i, plane=pl, visit_id=vid, candidate=candidate, visit=visit,
                      title=self._title(visit, entry, echo, pl)) for i, pl in enumerate(MPR_PLANES)]
        frames = self.panel.build(cells, 1, 3, mode="mpr")
        for f in frames:
            f.view.set_mouse_scheme("pacs")
        self._reset_mode()
        self._load(frames)
        return frames

    def show_all_echoes(self, candidate=None) -> list[ViewportFrame]:
        """Every echo of a multi-echo series side by side, with one absolute window (so the T2*
        decay and the blooming of iron voids with TE stay visible)."""
        candidate = candidate or self.current_candidate()
        patient, visit, entry, _ = self.locate(candidate)
        if entry is None or entry.n_echoes < 2:
            self.status.emit("Not a multi-echo series")
            return []
        plane = self.panel.active_view().plane if self.panel.active_view() is not None else entry.plane
        n = entry.n_echoes
        cols = n if n <= 3 else 3
        cells = [dict(row=i // cols, col=i % cols, plane=plane, visit_id=visit.id, visit=visit,
                      candidate=entry.candidate(i), title=self._title(visit, entry, i, plane)) for i in range(n)]
        frames = self.panel.build(cells, (n + cols - 1) // cols, cols, mode="echoes")
        self._reset_mode()
        self._load(frames)
        return frames

    def hang(self, protocol: HangingProtocol | None = None, patient=None) -> list[ViewportFrame]:
        """All visits of the patient side by side, as the protocol says."""
        if self.study is None or not self.study.patients:
            self.status.emit("Nothing to hang: open a study first")
            return []
        if protocol is not None:
            self.protocol = protocol
        if self.protocol is None:
            return []
        if patient is None:
            cand = self.current_candidate()
            patient = self.locate(cand)[0] if cand is not None else None
            patient = patient or self.study.patients[0]
        layout = apply_layout(self.protocol, patient)
        cells = []
        for vp in layout.viewports:
            vid = vp.visit.id if vp.visit is not None else ""
            title = self._title(vp.visit, vp.entry, vp.echo_index, vp.plane) if not vp.is_empty else (
                vp.visit.label if vp.visit is not None else "")
            cells.append(dict(row=vp.row, col=vp.col, plane=vp.plane, visit_id=vid, visit=vp.visit,
                              candidate=vp.candidate, title=title,
                              empty_reason=vp.reason if vp.is_empty else ""))
        frames = self.panel.build(cells, layout.rows, layout.cols, mode="hanging")
        self._reset_mode()
        self._load([f for f in frames if f.view is not None])
        self.status.emit(f"Hung {len([f for f in frames if f.view])} viewports: {self.protocol.name}")
        return frames

    def current_candidate(self):
        f = self.panel.active
        return f.candidate if f is not None else None

    # ------------------------------------------------------------------ loading
    def _load(self, frames: list[ViewportFrame]) -> None:
        if self._job is not None:
            self._job.cancel()
        self._pending.clear()
        todo = []
        for f in frames:
            if f.view is None or f.candidate is None:
                continue
            cached = self.cache.get(f.candidate)
            if cached is not None:
                self._put(f, cached)
                continue
            first = _first_slice(f.candidate)
            if first is not None:
                f.view.set_volume(first, label=f.title + "  (loading…)")
            if id(f.candidate) not in self._pending:
                todo.append(f.candidate)
            self._pending.setdefault(id(f.candidate), []).append(f)
        if not todo:
            self._after_load()
            return
        job = make_multi_load_job(todo, self.load_fn, cache=self.cache, parent=self)
        job.item_ready.connect(self._on_item_ready)
        job.progressed.connect(lambda rid, d, t: self.load_progress.emit(d, t)
                               if self._job is not None and rid == self._job.request_id else None)
        job.finished.connect(lambda j=job: self._reap(j))
        self._jobs.add(job)
        self._job = job
        self.status.emit(f"Loading {len(todo)} series…")
        self.load_progress.emit(0, len(todo))
        job.start()

    def _reap(self, job: Job) -> None:
        self._jobs.discard(job)
        if self._job is job:
            self._job = None
            self.load_progress.emit(0, 0)
        job.deleteLater()

    def _on_item_ready(self, request_id: int, candidate, volume) -> None:
        if self._job is None or request_id != self._job.request_id:
            return
        frames = self._pending.pop(id(candidate), [])
        if isinstance(volume, str):
            for f in frames:
                f.view.set_label(f"{f.title}\nnot loaded: {volume[:120]}")
            self.load_failed.emit(volume)
            return
        for f in frames:
            self._put(f, volume)
        if not self._pending:
            self._after_load()

    def _put(self, frame: ViewportFrame, volume: Volume) -> None:
        view = frame.view
        point = None
        if self.panel.mode == "mpr":
            point = volume.index_to_patient(np.array(volume.shape[::-1], float) / 2 - 0.5)
        view.set_volume(volume, label=frame.title, point=point)
        self._own[id(frame)] = volume
        self.volume_shown.emit(frame, volume)

    def _after_load(self) -> None:
        panel = self.panel
        panel.links.window_units = "absolute" if panel.mode in ("echoes", "mpr") else "relative"
        panel.link_views()
        views = [f.view for f in panel.view_frames() if f.view.volume is not None]
        if panel.mode == "mpr" and views:
            vol = views[0].volume
            centre = vol.index_to_patient(np.array(vol.shape[::-1], float) / 2 - 0.5)
            views[0].point_picked.emit(tuple(centre))
        elif views and panel.active is not None and panel.active.view in views:
            panel.links.sync_all_from(panel.active.view)
        self.all_loaded.emit()
        self.status.emit("Ready")

    def is_loading(self) -> bool:
        return self._job is not None

    # ------------------------------------------------------------------ navigation
    def set_plane(self, plane: str) -> None:
        """Show `plane` in every viewport (a reformat where the series was acquired otherwise)."""
        for f in self.panel.view_frames():
            f.view.set_plane(plane)
            _, visit, entry, echo = self.locate(f.candidate)
            if entry is not None:
                f.title = self._title(visit, entry, echo, plane)
                f.view.set_label(f.title)
        if self.panel.mode == "single" and self._last_single is not None:
            self._last_single = (self._last_single[0], plane)
        active = self.panel.active_view()
        if active is not None:
            self.panel.links.sync_all_from(active)

    def set_echo(self, echo_index: int) -> None:
        """Show another echo of the series in every viewport that has it (same slice and view)."""
        frames = []
        for f in self.panel.view_frames():
            _, visit, entry, _ = self.locate(f.candidate)
            if entry is None or entry.n_echoes < 2:
                continue
            i = max(-entry.n_echoes, min(echo_index, entry.n_echoes - 1))
            f.candidate = entry.candidate(i)
            f.title = self._title(visit, entry, i % entry.n_echoes, f.view.plane)
            frames.append(f)
        if frames:
            self._reset_mode()
            self._load(frames)

    def step_visit(self, step: int = 1) -> None:
        """Next/previous visit: in a grid, move to the next viewport; with one series, show the
        same role and plane of the next visit at the same anatomy."""
        if self.panel.mode in ("hanging", "mpr", "echoes"):
            self.panel.activate_next(step)
            return
        cand = self.current_candidate()
        patient, visit, entry, echo = self.locate(cand)
        if visit is None:
            return
        visits = patient.visits
        i = visits.index(visit)
        j = i + step
        if not 0 <= j < len(visits):
            self.status.emit("No further visit" if step > 0 else "Already at the first visit")
            return
        target = visits[j]
        candidates = [e for e in target.series if e.role == entry.role] or \
            [e for e in target.series if e.plane == entry.plane]
        if not candidates:
            self.status.emit(f"No {entry.role} in {target.label}")
            return
        e2 = candidates[0]
        new = e2.candidate(min(echo, e2.n_echoes - 1))
        view = self.panel.active_view()
        point = view.pipeline.point() if view is not None and view.volume is not None else None
        plane = view.plane if view is not None else None
        frames = self.show_candidate(new, plane)
        if point is not None and frames:
            mapped = self.panel.links.map_point(point, visit.id, target.id)
            self.volume_shown.connect(self._move_once(frames[0], mapped))
        self.status.emit(f"{target.label}: {e2.title}")

    def _move_once(self, frame, point):
        def handler(f, vol, self=self):
            if f is frame:
                f.view.set_point(point)
                try:
                    self.volume_shown.disconnect(handler)
                except (RuntimeError, TypeError):
                    pass
        return handler

    # ------------------------------------------------------------------ registration
    def current_patient(self):
        cand = self.current_candidate()
        patient = self.locate(cand)[0] if cand is not None else None
        if patient is None and self.study is not None and self.study.patients:
            patient = self.study.patients[0]
        return patient

    def set_link_level(self, name: str) -> None:
        """Link the visits through the transform set `name` ("whole volume" or a disc level)."""
        if name not in self.transform_sets:
            raise KeyError(f"no transforms registered for {name!r}; known: {list(self.transform_sets)}")
        if name == self.link_level:
            return
        self.link_level = name
        self.panel.links.transforms = self.transform_sets[name]
        self.link_levels_changed.emit()
        self._after_transform_change("")

    def _level_set(self, level: str) -> TransformSet:
        """The transform set of a disc level, created from the whole-volume one (so visits not yet
        registered at this level fall back to their whole-volume transform)."""
        return self.transform_sets.add(level)

    def _on_transforms_changed(self, change) -> None:
        """A transform or a transform set changed (registration, nudge, reset, undo/redo)."""
        if isinstance(change, TransformChange):
            if change.source is self.transforms:
                self._after_transform_change(change.name)
            return
        if change.name == "level":
            if self.link_level not in self.transform_sets:  # its set was removed (undo)
                self.link_level = WHOLE_VOLUME
                self.panel.links.transforms = self.transform_sets.whole
                self._after_transform_change("")
            self.link_levels_changed.emit()

    def register_visits(self, role: str = "T2 sag", roi=None, patient=None, level: str | None = None) -> Job | None:
        """Register every follow-up visit of the patient to its baseline in a worker; each result
        is applied to the transform set (so linked views follow) as soon as it is ready. With `roi`
        and `level` (e.g. "L4/L5"), the results go to that level's own transform set, which becomes
        the one the views are linked through."""
        if level is not None and level != WHOLE_VOLUME:
            self._level_set(level)
            self.set_link_level(level)
        from discviewer.registration import (VisitRegistration, pair_entries, provenance,
                                             register_rigid)

        patient = patient or self.current_patient()
        if patient is None or patient.baseline is None or len(patient.visits) < 2:
            self.status.emit("Register visits: needs a patient with a baseline and at least one follow-up")
            return None
        pairs = []
        for v in patient.visits:
            if v is patient.baseline:
                continue
            pe = pair_entries(patient.baseline, v, role)
            pairs.append((v, pe))
        cache, load = self.cache, (self.load_fn or _default_load)
        transforms = self.transforms
        results: list = []
        job: Job

        def fn(progress, cancel):
            for i, (visit, pe) in enumerate(pairs):
                if cancel():
                    break
                if pe is None:
                    job.item_ready.emit(job.request_id, visit, f"{visit.label}: no series role shared with baseline")
                    continue
                be, ve, r = pe
                try:
                    fixed = cache.get_or_load(be.candidate(0), load)
                    moving = cache.get_or_load(ve.candidate(0), load)
                    # a disc-level box refines the visit's current (whole-volume) transform
                    start = np.linalg.inv(transforms.get(visit.id)) if roi is not None else None
                    res = register_rigid(fixed, moving, roi=roi, cancel=cancel, initial=start)
                    vr = VisitRegistration(visit.id, visit.label, r, res,
                                           provenance(res, r, mode="ROI" if roi is not None else "whole volume"))
                    results.append(vr)
                    job.item_ready.emit(job.request_id, visit, vr)
                except Exception as exc:  # one failed pair never stops the others
                    job.item_ready.emit(job.request_id, visit, f"{visit.label}: {type(exc).__name__}: {exc}")
                progress(i + 1, len(pairs))
            return results

        job = Job(fn, kind="register", parent=self)
        job.item_ready.connect(self._on_registered)
        job.progressed.connect(lambda rid, d, t: self.load_progress.emit(d, t))
        job.succeeded.connect(lambda rid, res: self.registration_finished.emit(list(res)))
        job.finished.connect(lambda j=job: (self._jobs.discard(j), self.load_progress.emit(0, 0), j.deleteLater()))
        self._jobs.add(job)
        self.status.emit(f"Registering {len(pairs)} visit(s) to baseline…")
        self.load_progress.emit(0, len(pairs))
        job.start()
        return job

    def _on_registered(self, request_id: int, visit, vr) -> None:
        if isinstance(vr, str):
            self.registered.emit(vr)
            self.status.emit(f"Registration failed: {vr}")
            return
        details = {**vr.provenance, "algorithm": vr.provenance.get("method", ""), "method": "registration"}
        self.transforms.set(vr.visit_id, vr.visit_to_baseline, details)  # views follow via _on_transforms_changed
        self.registered.emit(vr)
        r = vr.result
        self.status.emit(f"{vr.visit_label} registered: {r.metric} {r.initial_metric:.3f} → {r.final_metric:.3f}")

    def _after_transform_change(self, visit_id: str) -> None:
        self._compare.clear()  # comparisons were resampled through the old transform
        if self.mode != "normal":
            self._apply_mode()
        active = self.panel.active_view()
        if active is not None and active.volume is not None:
            self.panel.links.sync_all_from(active)
        self.transforms_changed.emit(visit_id)

    def nudge(self, *, du: float = 0.0, dv: float = 0.0, rotate_deg: float = 0.0) -> bool:
        """Manual correction of the active follow-up's transform: move it by (du, dv) mm along the
        view's screen axes, or rotate it by `rotate_deg` about the view normal through the view point."""
        f = self.panel.active
        if f is None or f.view is None or f.view.volume is None or not f.visit_id:
            return False
        if f.visit_id == self.transforms.baseline_id:
            self.status.emit("The baseline is the reference: nudge a follow-up viewport")
            return False
        pipe = f.view.pipeline
        R, U, N = pipe.frame()
        m = self.transforms.get(f.visit_id)  # visit → baseline
        d = np.eye(4)
        if rotate_deg:
            from scipy.spatial.transform import Rotation

            rot = Rotation.from_rotvec(np.deg2rad(rotate_deg) * np.asarray(N, float) / np.linalg.norm(N)).as_matrix()
            c = self.transforms.to_baseline(pipe.point(), f.visit_id)
            d[:3, :3] = rot
            d[:3, 3] = c - rot @ c
        else:
            d[:3, 3] = du * np.asarray(R, float) + dv * np.asarray(U, float)
        prov = self.transforms.provenance(f.visit_id)
        details = dict(getattr(prov, "details", {}) or {})
        details["manual_edits"] = int(details.get("manual_edits", 0)) + 1
        details["user"] = details.get("user") or ""
        self.transforms.set(f.visit_id, d @ m, dict(method=f"{prov.method} + manual" if "manual" not in prov.method
                                                    else prov.method, **details))
        return True

    def reset_transform(self, visit_id: str | None = None) -> None:
        visit_id = visit_id or (self.panel.active.visit_id if self.panel.active is not None else None)
        if visit_id:
            self.transforms.reset(visit_id)

    # ------------------------------------------------------------------ comparison with baseline
    def _baseline_frame_volume(self, frame: ViewportFrame) -> Volume | None:
        """The baseline volume matching this frame's series (same role/plane/echo), loaded."""
        patient, visit, entry, echo = self.locate(frame.candidate)
        if patient is None or patient.baseline is None or visit is patient.baseline:
            return None
        base_entries = [e for e in patient.baseline.series if e.role == entry.role] or \
            [e for e in patient.baseline.series if e.plane == entry.plane]
        if not base_entries:
            return None
        be = base_entries[0]
        cand = be.candidate(min(echo, be.n_echoes - 1))
        return self.cache.get_or_load(cand, self.load_fn or _default_load)

    def _comparison(self, frame: ViewportFrame) -> tuple[Volume, Volume] | None:
        key = id(frame)
        if key in self._compare:
            return self._compare[key]
        own = self._own.get(key)
        if own is None:
            return None
        base = self._baseline_frame_volume(frame)
        if base is None:
            return None
        t = self.transforms.get(frame.visit_id)  # visit → baseline
        on_grid = resample_volume(base, own.affine, own.shape, transform=t, fill=0.0)
        n_own = IntensityNormalizer.from_array(own)
        n_base = IntensityNormalizer.from_array(on_grid)
        rel_own = (own.array.astype(np.float32) - n_own.lo) / n_own.scale
        rel_base = (on_grid.array - n_base.lo) / n_base.scale
        diff = Volume((rel_own - rel_base).astype(np.float32), own.affine.copy(), info=own.info,
                      warnings=["difference image: follow-up − baseline, each in units of its own p1–p99 range"])
        self._compare[key] = (on_grid, diff)
        return self._compare[key]

    def _checkerboard(self, frame, own: Volume, diff: Volume) -> Volume:
        """Tiles of the follow-up and the baseline (both in p1–p99 units) on the follow-up's grid."""
        key = ("cb", id(frame))
        if key in self._compare:
            return self._compare[key]
        on_grid = self._compare[id(frame)][0]
        n_own = IntensityNormalizer.from_array(own)
        n_base = IntensityNormalizer.from_array(on_grid)
        a = (own.array.astype(np.float32) - n_own.lo) / n_own.scale
        b = (on_grid.array - n_base.lo) / n_base.scale
        sc, sr, _ = own.spacing
        ns, nr, nc = own.shape
        r, c = np.mgrid[0:nr, 0:nc]
        tiles = ((r * sr // CHECKER_MM).astype(int) + (c * sc // CHECKER_MM).astype(int)) % 2 == 0
        vol = Volume(np.where(tiles[None], a, b).astype(np.float32), own.affine.copy(), info=own.info,
                     warnings=[f"checkerboard: {CHECKER_MM:g} mm tiles of follow-up and baseline"])
        self._compare[key] = vol
        return vol

    def _reset_mode(self) -> None:
        self._compare.clear()
        for f in self.panel.view_frames():
            if f.view.overlay() is not None:
                f.view.set_overlay(None)
        if self.mode != "normal":
            self.mode = "normal"
            self.flicker_on = False
            self.mode_changed.emit(self.mode)

    def set_overlay_opacity(self, opacity: float) -> None:
        self.overlay_opacity = float(min(max(opacity, 0.0), 1.0))
        if self.mode == "overlay":
            for f in self.panel.view_frames():
                if f.view.overlay() is not None:
                    f.view.set_overlay_opacity(self.overlay_opacity)

    def set_mode(self, mode: str) -> None:
        """'normal', 'flicker' (F toggles baseline ↔ follow-up), 'difference' or 'overlay'
        (the follow-up in hot colours over the baseline, with `overlay_opacity`)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.flicker_on = False
        self._apply_mode()
        self.mode_changed.emit(mode)

    def toggle_flicker(self) -> None:
        if self.mode != "flicker":
            self.mode = "flicker"
            self.flicker_on = True
            self.mode_changed.emit(self.mode)
        else:
            self.flicker_on = not self.flicker_on
        self._apply_mode()

    def _apply_mode(self) -> None:
        shown = 0
        self.panel.links.clear()  # no cross-talk while views swap volumes; relinked below
        for f in self.panel.view_frames():
            own = self._own.get(id(f))
            if own is None:
                continue
            view = f.view
            state = view.view_state()
            point = view.pipeline.point() if view.volume is not None else None
            overlay = None
            if self.mode == "normal" or (self.mode == "flicker" and not self.flicker_on):
                vol, label = own, f.title
            else:
                comp = self._comparison(f)
                if comp is None:
                    view.set_overlay(None)
                    continue
                on_grid, diff = comp
                if self.mode == "flicker":
                    vol, label = on_grid, f"BASELINE on {f.title}"
                elif self.mode == "overlay":
                    vol, label, overlay = on_grid, f"{f.title} (hot) over BASELINE", own
                elif self.mode == "fusion":
                    vol, label, overlay = on_grid, f"FUSION: baseline grey, {f.title} magenta", own
                elif self.mode == "checkerboard":
                    vol, label = self._checkerboard(f, own, diff), f"CHECKERBOARD baseline / {f.title}"
                else:
                    vol, label = diff, f"DIFFERENCE vs baseline · {f.title}"
                shown += 1
            before = view.volume
            rel = None
            if before is not None and self.mode != "difference":
                rel = IntensityNormalizer.from_array(before).to_relative(*view.window())
            view.set_volume(vol, label=label, point=point)
            view.set_view_state(state)
            if overlay is not None:
                view.set_overlay(overlay, opacity=self.overlay_opacity if self.mode == "overlay" else 0.5,
                                 colormap="hot" if self.mode == "overlay" else "magenta")
            else:
                view.set_overlay(None)
            if self.mode == "difference" and vol is not own:
                view.set_window(0.0, 1.0)
            elif self.mode == "checkerboard" and vol is not own:
                view.set_window(0.5, 1.0)
            elif rel is not None and before is not vol:
                view.set_window(*IntensityNormalizer.from_array(vol).from_relative(*rel))
        self.panel.link_views()
        if self.mode != "normal" and shown == 0:
            self.status.emit("No follow-up viewport to compare with baseline")

    def shutdown(self) -> None:
        for job in list(self._jobs):
            job.cancel()
            job.wait(10000)
        self._jobs.clear()
        self._job = None


def _default_load(candidate, **kw):
    from discviewer.io import load

    return load(candidate)

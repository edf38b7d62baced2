"""The voxel cache beside a workspace (`<workspace>.voxels.h5`): re-open large series without DICOM.

Owns `VoxelStore(path)`: `key_for(candidate)`, `get`, `put`, `load_through`, size budget with
least-recently-used eviction, `clear`. The cache is disposable — any damage is repaired by deleting
(an entry or the whole file) and loading from the sources again; it never raises for cache damage.

Layout (HDF5): root attrs `format`, `version`; `entries/<key>` = group with dataset `array`
(slices, rows, columns; one chunk per slice), datasets `affine` (4×4 float64) and `slice_sums`
(checksums, below) and attrs `complete`,
`last_access` (epoch s), `stored_bytes`, `shape`, `dtype`, `info` / `warnings` (JSON), `created`.
Writes go to `tmp/<random>` and are renamed into `entries/` only when complete (`complete=1` set
last), so a crashed write leaves an unreferenced temporary group (removed on the next write), never
a half entry.

Decisions (measured with `benchmarks/bench_reopen.py`, 200 × 512² uint16, 2 CPUs; see benchmarks/README.md)
- Compression: default None. Re-opening is bound by decompression, not by disk: a 105 MB series
  reads in ~0.03 s uncompressed (2–3× faster than parsing its DICOM files, 0.06–0.09 s; within
  1.1–1.4× of merely reading the DICOM bytes into a new array), but in ~0.25 s with lzf and ~0.4 s
  with gzip — slower than the DICOM path — for ~45 % less space on MR-like data (~10 % on noise).
  "lzf" / "gzip" (both with the shuffle filter) remain for caches on slow network disks.
- Checksums: a per-slice 64-bit word sum (`slice_sums`) is stored and checked on every read, so a
  damaged slice is detected (the entry is then dropped) instead of being shown. It costs ~4 ms per
  100 MB; HDF5's fletcher32 filter cost ~30 ms (it doubled the read time) and was dropped.
- No HDF5 chunk cache (`rdcc_nbytes=0`): each chunk is read once, straight into the output array
  instead of through the cache (measured 0.032 → 0.022 s per 100 MB).
- The file is opened only for the duration of each operation (under one lock per file in this
  process): between operations it is closed and consistent on disk, so a crash of the app can only
  damage an operation in flight, and a second process (e.g. a read-only session of the same
  project) can use it in between. An open + close costs ~1 ms, nothing next to reading a series.
  HDF5's own file lock answers "busy" while another process writes: retried briefly, then treated
  as a miss.
- Created with persistent free-space tracking (`fs_persist`, file format ≥ 1.10), so the space of
  evicted entries is reused by later writes instead of growing the file (measured: without it the
  file grew by one volume per replaced entry).
- Thread safety: h5py is not concurrent; every access to one cache file from this process is
  serialised by one `threading.RLock` shared by all `VoxelStore` objects on that path.
- `key_for` hashes the candidate's identity and every frame's (path, frame, size, mtime_ns), read
  with `os.stat` at that moment: a changed, touched, moved or missing source file gives a different
  key, i.e. a miss. `CACHE_VERSION` is part of the key: bump it when `load` changes its output.
  Paths are part of the key, so after a relink the old entries miss and age out by eviction.

Core module: stdlib, numpy, h5py (imported here; `discviewer.workspace` imports submodules on use).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

import h5py
import numpy as np

from discviewer.volume import SeriesInfo, Volume

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

FORMAT = "discviewer-voxels"
FORMAT_VERSION = 1
#: part of every key: bump when the loader's output for the same files changes
CACHE_VERSION = 1
#: default size budget of a cache file (bytes stored on disk)
DEFAULT_BUDGET = 8 * 1024 ** 3
COMPRESSIONS = (None, "lzf", "gzip")
#: HDF5 file format bounds: ≥ 1.10 objects are needed for persistent free space; the superblock
#: stays pre-1.10 so a crash never leaves the "file is already open for write" flag behind
_LIBVER = ("earliest", "v110")
_BUSY_RETRY_S = 0.3
_READ_BLOCK_BYTES = 16 * 1024 ** 2  # progress granularity when reading with a progress callback

_path_locks: dict[str, threading.RLock] = {}
_path_locks_guard = threading.Lock()


def _lock_for(path: str) -> threading.RLock:
    key = os.path.normcase(os.path.realpath(path))
    with _path_locks_guard:
        lk = _path_locks.get(key)
        if lk is None:
            lk = _path_locks[key] = threading.RLock()
        return lk


class _Unavailable(Exception):
    """The cache file cannot be used (no permission, missing folder, …)."""


class _Busy(_Unavailable):
    """Another process holds HDF5's lock on the file."""


def key_for(candidate) -> str:
    """Hex SHA-256 of a candidate's identity and its frames' files as they are now on disk."""
    info = candidate.info
    stats: dict[str, tuple[int, int]] = {}
    frames = []
    for fr in candidate.frames:
        p = os.path.abspath(fr.path)
        st = stats.get(p)
        if st is None:
            try:
                s = os.stat(p)
                st = (s.st_size, s.st_mtime_ns)
            except OSError:
                st = (-1, -1)  # missing: never equal to a stored key
            stats[p] = st
        frames.append([p, int(fr.frame), st[0], st[1]])
    ident = {"v": CACHE_VERSION, "series": info.series_uid, "te": info.echo_time, "part": info.complex_part,
             "source": info.source, "shape": [candidate.slice_count, candidate.rows, candidate.columns],
             "frames": frames}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode("utf-8")).hexdigest()


def slice_sums(arr: np.ndarray) -> np.ndarray:
    """Per-slice checksum: the sum (mod 2⁶⁴) of each slice's bytes read as little-endian 64-bit words
    (a trailing partial word as one number). ~4 ms per 100 MB — about a tenth of HDF5's fletcher32 —
    and it catches what a cache meets: flipped bits, zeroed or stale blocks after a power loss."""
    a = np.ascontiguousarray(arr)
    n = a.shape[0]
    b = a.reshape(n, -1).view(np.uint8) if a.size else np.zeros((n, 0), np.uint8)
    whole = b.shape[1] // 8 * 8
    sums = b[:, :whole].view("<u8").sum(axis=1, dtype=np.uint64) if whole else np.zeros(n, np.uint64)
    if whole != b.shape[1]:
        tail = np.array([int.from_bytes(bytes(r), "little") for r in b[:, whole:]], dtype=np.uint64)
        sums = sums + tail
    return sums.astype(np.uint64)


def _info_to_json(info: SeriesInfo) -> str:
    return json.dumps(dataclasses.asdict(info), sort_keys=True)


def _info_from_json(text: str) -> SeriesInfo:
    d = json.loads(text)
    names = {f.name for f in dataclasses.fields(SeriesInfo)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
    return SeriesInfo(**kw)


def _attr_str(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


class VoxelStore:
    """An HDF5 voxel cache file. All methods are thread-safe; none raises for cache damage."""

    def __init__(self, path, *, budget_bytes: int | None = DEFAULT_BUDGET, compression: str | None = None,
                 checksum: bool = True) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        self.path = os.path.abspath(os.fspath(path))
        self.budget_bytes = budget_bytes  # None: unlimited
        self.compression = compression
        self.checksum = checksum
        self.warnings: list[str] = []  # user-facing notes (damaged cache rebuilt, write failed, …)
        self._lock = _lock_for(self.path)

    key_for = staticmethod(key_for)

    # -- file handling ----------------------------------------------------------------------------

    def _warn(self, text: str) -> None:
        log.warning(text)
        self.warnings.append(text)

    def _create(self) -> h5py.File:
        d = os.path.dirname(self.path)
        if d:
            os.makedirs(d, exist_ok=True)
        f = h5py.File(self.path, "w", libver=_LIBVER, fs_strategy="fsm", fs_persist=True)
        f.attrs["format"] = FORMAT
        f.attrs["version"] = FORMAT_VERSION
        f.require_group("entries")
        return f

    def _recreate(self, reason: str) -> h5py.File:
        self._warn(f"voxel cache {self.path} was unusable ({reason}); it was deleted and will be rebuilt — "
                   "series load from their source files meanwhile")
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        return self._create()

    def _open(self, write: bool, create: bool = False) -> h5py.File | None:
        """The open cache file; None if there is none and `create` is False. A damaged file or one
        of another format is deleted and recreated (empty), with a warning."""
        deadline = time.monotonic() + _BUSY_RETRY_S
        while True:
            exists = os.path.exists(self.path)
            if not exists and not create:
                return None
            try:
                if not exists:
                    return self._create()
                # no chunk cache: every chunk is read once, straight into the output array
                f = h5py.File(self.path, "r+" if write else "r", libver=_LIBVER, rdcc_nbytes=0)
            except BlockingIOError:  # HDF5 file lock held by another process
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                raise _Busy(f"{self.path} is in use by another process") from None
            except OSError as exc:
                if exc.errno is not None:  # permission, missing folder, …: not damage
                    raise _Unavailable(f"{self.path}: {exc.strerror or exc}") from None
                return self._recreate(str(exc).splitlines()[0][:160])
            if _attr_str(f.attrs.get("format", "")) != FORMAT or f.attrs.get("version") != FORMAT_VERSION \
                    or not isinstance(f.get("entries"), h5py.Group):
                found = f"{_attr_str(f.attrs.get('format', '?'))} v{f.attrs.get('version', '?')}"
                f.close()
                return self._recreate(f"not a voxel cache of this version: {found}")
            return f

    # -- reading ------------------------------------------------------------------------------------

    def get(self, candidate, *, progress: Progress | None = None) -> Volume | None:
        """The cached volume of `candidate`, or None (miss, stale sources, damaged entry → deleted)."""
        return self._get(candidate, key_for(candidate), progress)

    def _get(self, candidate, key: str, progress: Progress | None) -> Volume | None:
        with self._lock:
            try:
                f = self._open(write=True)
            except _Busy:
                return None
            except _Unavailable:
                try:
                    f = self._open(write=False)  # read-only folder / file: still usable
                except _Unavailable:
                    return None
            except Exception as exc:  # e.g. disk full while recreating
                self._warn(f"voxel cache {self.path} cannot be opened: {exc}")
                return None
            if f is None:
                return None
            try:
                g = f.get(f"entries/{key}")
                if g is None:
                    return None
                try:
                    vol = self._read_entry(g, progress)
                except Exception as exc:
                    self._drop_damaged(f, key, exc)
                    return None
                if f.mode == "r+":
                    with contextlib.suppress(Exception):
                        g.attrs["last_access"] = time.time()
                return vol
            except Exception as exc:  # damage below the entry level (corrupt group index, …)
                self._warn(f"voxel cache {self.path}: read failed ({exc}); the file will be rebuilt")
                f.close()
                self._delete_file()
                return None
            finally:
                with contextlib.suppress(Exception):
                    f.close()

    @staticmethod
    def _read_entry(g: h5py.Group, progress: Progress | None) -> Volume:
        if int(g.attrs.get("complete", 0)) != 1:
            raise ValueError("entry is incomplete")
        shape = tuple(int(v) for v in g.attrs["shape"])
        ds = g["array"]
        if ds.shape != shape or len(shape) != 3:
            raise ValueError(f"array shape {ds.shape} != recorded {shape}")
        if str(ds.dtype) != _attr_str(g.attrs["dtype"]):
            raise ValueError(f"array dtype {ds.dtype} != recorded {_attr_str(g.attrs['dtype'])}")
        affine = np.empty((4, 4), np.float64)
        if g["affine"].shape != (4, 4):
            raise ValueError("affine is not 4×4")
        g["affine"].read_direct(affine)
        info = _info_from_json(_attr_str(g.attrs["info"]))
        warnings = [str(w) for w in json.loads(_attr_str(g.attrs["warnings"]))]
        out = np.empty(shape, dtype=ds.dtype)
        if shape[0] and progress is None:
            ds.read_direct(out)
        elif shape[0]:
            per = max(1, _READ_BLOCK_BYTES // max(1, out[0].nbytes))
            for a in range(0, shape[0], per):
                b = min(shape[0], a + per)
                ds.read_direct(out, np.s_[a:b], np.s_[a:b])
                progress(b, shape[0])
        if "slice_sums" in g:
            bad = np.flatnonzero(slice_sums(out) != g["slice_sums"][...])
            if bad.size:
                raise ValueError(f"checksum mismatch in slice {int(bad[0]) + 1} of {shape[0]}")
        return Volume(array=out, affine=affine, info=info, warnings=warnings)

    def _drop_damaged(self, f: h5py.File, key: str, exc: Exception) -> None:
        self._warn(f"voxel cache entry {key[:12]}… was damaged ({str(exc).splitlines()[0][:160]}); it was removed "
                   "and the series loads from its source files")
        if f.mode != "r+":
            return
        try:
            del f[f"entries/{key}"]
            f.flush()
        except Exception:
            f.close()
            self._delete_file()

    def _delete_file(self) -> None:
        with contextlib.suppress(OSError):
            os.remove(self.path)

    # -- writing ------------------------------------------------------------------------------------

    def put(self, candidate, volume: Volume) -> bool:
        """Store `volume` as the entry of `candidate`; False if it was not stored (over the budget,
        cache unavailable, write failed — the reason is in `warnings` / the log)."""
        return self._put(key_for(candidate), volume)

    def _put(self, key: str, volume: Volume) -> bool:
        arr = np.asarray(volume.array)
        if arr.ndim != 3:
            raise ValueError(f"volume array must be 3-D, got {arr.shape}")
        if self.budget_bytes is not None and arr.nbytes > self.budget_bytes and self.compression is None:
            return False
        with self._lock:
            try:
                f = self._open(write=True, create=True)
            except _Unavailable:
                return False
            except Exception as exc:
                self._warn(f"voxel cache {self.path} cannot be written: {exc}")
                return False
            try:
                stored = self._write_entry(f, key, arr, volume)
                if self.budget_bytes is not None and stored > self.budget_bytes:
                    del f[f"entries/{key}"]
                    return False
                self._evict(f, keep=key)
                return True
            except Exception as exc:
                self._warn(f"voxel cache {self.path}: storing a series failed ({str(exc).splitlines()[0][:160]})")
                with contextlib.suppress(Exception):
                    if "tmp" in f:
                        del f["tmp"]
                return False
            finally:
                with contextlib.suppress(Exception):
                    f.close()

    def _write_entry(self, f: h5py.File, key: str, arr: np.ndarray, volume: Volume) -> int:
        if "tmp" in f:  # leftovers of a crashed write
            del f["tmp"]
        tmp = f"tmp/{uuid.uuid4().hex}"
        g = f.create_group(tmp)
        kw: dict = {}
        if self.compression is not None:
            kw.update(compression=self.compression, shuffle=True)
        s, r, c = arr.shape
        chunks = (1, max(r, 1), max(c, 1)) if s else None
        ds = g.create_dataset("array", shape=arr.shape, dtype=arr.dtype, chunks=chunks, **kw)
        if arr.size:
            ds.write_direct(np.ascontiguousarray(arr))
        if self.checksum:
            g.create_dataset("slice_sums", data=slice_sums(arr))
        g.create_dataset("affine", data=np.asarray(volume.affine, dtype=np.float64))
        g.attrs["shape"] = np.asarray(arr.shape, dtype=np.int64)
        g.attrs["dtype"] = str(arr.dtype)
        g.attrs["info"] = _info_to_json(volume.info)
        g.attrs["warnings"] = json.dumps([str(w) for w in volume.warnings])
        now = time.time()
        g.attrs["created"] = now
        g.attrs["last_access"] = now
        stored = int(ds.id.get_storage_size()) + 4 * 4 * 8
        g.attrs["stored_bytes"] = stored
        g.attrs["complete"] = 1
        f.flush()
        entries = f.require_group("entries")
        if key in entries:
            del entries[key]
        f.move(tmp, f"entries/{key}")
        del f["tmp"]
        f.flush()
        return stored

    def _evict(self, f: h5py.File, keep: str) -> None:
        """Delete least recently used entries (and incomplete ones) until within the budget."""
        entries = f["entries"]
        items = []
        for k in list(entries):
            g = entries[k]
            if int(g.attrs.get("complete", 0)) != 1:
                del entries[k]
                continue
            items.append((float(g.attrs.get("last_access", 0.0)), int(g.attrs.get("stored_bytes", 0)), k))
        if self.budget_bytes is None:
            return
        total = sum(b for _, b, _ in items)
        for _, b, k in sorted(items):
            if total <= self.budget_bytes:
                break
            if k == keep:
                continue
            del entries[k]
            total -= b
        f.flush()

    # -- convenience --------------------------------------------------------------------------------

    def load_through(self, candidate, load_fn: Callable[..., Volume], progress: Progress | None = None) -> Volume:
        """The cached volume, or `load_fn(candidate[, progress=progress])` stored for next time.

        Not stored if a source file changed while it was loading (the key before and after differ)."""
        key = key_for(candidate)
        vol = self._get(candidate, key, progress)
        if vol is not None:
            return vol
        vol = load_fn(candidate, progress=progress) if progress is not None else load_fn(candidate)
        if key_for(candidate) == key:
            self._put(key, vol)
        return vol

    def stats(self) -> tuple[int, int]:
        """(number of entries, bytes they occupy on disk)."""
        with self._lock:
            try:
                f = self._open(write=False)
            except Exception:
                return 0, 0
            if f is None:
                return 0, 0
            try:
                gs = [f["entries"][k] for k in f["entries"]]
                return len(gs), sum(int(g.attrs.get("stored_bytes", 0)) for g in gs)
            except Exception:
                return 0, 0
            finally:
                f.close()

    def __contains__(self, candidate) -> bool:
        key = key_for(candidate)
        with self._lock:
            try:
                f = self._open(write=False)
            except Exception:
                return False
            if f is None:
                return False
            try:
                g = f.get(f"entries/{key}")
                return g is not None and int(g.attrs.get("complete", 0)) == 1
            except Exception:
                return False
            finally:
                f.close()

    def clear(self) -> None:
        """Delete the cache file (it is recreated on the next `put`)."""
        with self._lock:
            self._delete_file()

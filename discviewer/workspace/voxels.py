"""The voxel cache beside a workspace (`<workspace>.voxels/`): re-open large series without DICOM.

Owns `VoxelStore(folder)`: `key_for(candidate)`, `get`, `put`, `load_through`, a size budget with
least-recently-used eviction, `stats`, `clear`. The cache is disposable — any damage is repaired by
deleting the entry and loading from the sources again; it never raises for cache damage.

Layout: one immutable file per entry, `<folder>/<key>.dvx` (`key` = 64 hex digits, `key_for`):

    bytes 0–19   prefix: magic b"\\x93DVXVOX\\n" (8), format version, header length, CRC-32 of the header
                 (3 × little-endian uint32)
    header       UTF-8 JSON: key, shape (slices, rows, columns), dtype (`numpy.dtype.str`), affine
                 (16 numbers, row-major), info (`SeriesInfo` fields), warnings, slice_sums (or null), created
    zero padding up to the next multiple of 4096 bytes (the data starts page-aligned)
    data         the array's bytes, C order; the file ends exactly there

Decisions (measured with `benchmarks/bench_reopen.py`, 200 × 512² uint16, 2 CPUs; see benchmarks/README.md)
- Zero copy: `get` maps the entry read-only (`mmap`, `ACCESS_READ`) and returns a plain read-only
  `numpy.ndarray` over the mapping (not an `np.memmap` subclass). Nothing is allocated or copied; the
  pages are the kernel's page cache. An earlier HDF5 file copied every entry into a fresh array and
  paid ~2× a raw read of the DICOM bytes in page faults of the new buffer alone.
- Entries never change in place. `put` writes `.<key>.<random>.tmp` in the folder, fsyncs it and
  `os.replace`s it onto the entry name (then fsyncs the folder on POSIX); eviction and `clear` unlink.
  On POSIX neither changes what an existing mapping shows — the old inode lives on until its last
  mapping goes — so a volume being displayed can never change under the viewer, even when its entry
  is replaced, evicted or the cache cleared (tested). On Windows a mapped file cannot be unlinked or
  replaced: such an entry is kept (eviction skips it, `put` reports a failure) until it is unmapped.
  Hazard of mapping: a file shortened *in place by another program* would make reading a page beyond
  its new end raise SIGBUS (a crash); so would a disk read error while paging in. This module never
  does either, and leftover `.tmp` files of crashed writes are deleted on a later `put` once an hour old.
  An evicted entry's disk space is freed when the last volume mapping it is released.
- Verification, eagerly, in `get` (default `verify=True`): the header's CRC-32, magic, version, key,
  dtype (plain numbers only — never objects), shape and the exact file size, then the per-slice sums
  of all the data (`slice_sums`). A damaged entry — truncated, extended, garbage, a flipped bit,
  another entry's file under this name — is a miss: deleted, a warning, never an exception and never
  data of the wrong shape or values. Reading every page costs about as much as touching them for
  display, which follows anyway, and the sums are cheap (~4 ms per 100 MB in memory). The alternative — return the
  mapping at once and verify in a background thread, dropping the entry after the fact — would show
  damaged pixels first and warn later; rejected. Measured (warm page cache, load average ~3): a
  verified `get` 0.4–0.6× the raw read (1.0× in one noisy run), + display touching every voxel
  0.7–0.9× (the HDF5 copy: 2.2–3.2×), DICOM parsing 5–6×. `verify=False` trusts the header and size check
  and the atomic write (constant-time `get`, pages read as they are displayed); it exists for
  measurements and very large series on slow disks, not used by the app.
- Read-only arrays: a cached volume's array is not writeable (`ValueError` on assignment), while
  `io.load` returns writeable arrays. Nothing in `discviewer/` writes into a `Volume.array` in place;
  code that needs to must copy (`np.array(volume.array)`). Raw pointers bypass the flag: VTK writing
  into scalars shared with `numpy_to_vtk(deep=False)` would crash on the read-only mapping (VTK
  pipelines only read their input).
- No compression (the HDF5 cache measured lzf at ~22× and gzip at ~35× the raw read, slower than
  parsing the DICOM files, for ~45 % less space on MR data): dropped with HDF5.
- Least recently used: an entry's mtime is its last access (`os.utime` on every hit, a metadata-only
  change); `put` first evicts the oldest entries (skipping the entry it replaces) until the new one
  fits in `budget_bytes` (bytes on disk, all `*.dvx` files in the folder, other format versions included).
- `key_for` hashes the candidate's identity, `FORMAT_VERSION`, `CACHE_VERSION` and every frame's
  (path, frame, size, mtime_ns), read with `os.stat` at that moment: a changed, touched, moved or
  missing source file gives a different key, i.e. a miss. Bump `CACHE_VERSION` when `load` changes
  its output. Old entries are never matched again and age out by eviction.
- Thread safety: readers take no lock (files are immutable; an entry unlinked before `open` is a miss,
  once open its inode stays); writers (`put`, eviction, `clear`) are serialised by one `threading.Lock` per
  folder shared by all `VoxelStore` objects of this process. Another process writing the same
  folder can only cause extra misses (every entry is whole or absent).

Core module: stdlib and numpy only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import mmap
import os
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable

import numpy as np

from discviewer.volume import SeriesInfo, Volume

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

MAGIC = b"\x93DVXVOX\n"
#: layout of an entry file; part of every key, so entries of another version are never read
FORMAT_VERSION = 1
#: part of every key: bump when the loader's output for the same files changes
CACHE_VERSION = 1
#: default size budget of a cache folder (bytes on disk)
DEFAULT_BUDGET = 8 * 1024 ** 3
SUFFIX = ".dvx"
DATA_ALIGN = 4096
_PREFIX = struct.Struct("<8sIII")  # magic, version, header length, CRC-32 of the header
_MAX_HEADER = 16 * 1024 ** 2
_VERIFY_BLOCK_BYTES = 16 * 1024 ** 2  # checksum (and progress) granularity
_STALE_TMP_S = 3600.0

_path_locks: dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()


def _lock_for(path: str) -> threading.Lock:
    key = os.path.normcase(os.path.realpath(path))
    with _path_locks_guard:
        lk = _path_locks.get(key)
        if lk is None:
            lk = _path_locks[key] = threading.Lock()
        return lk


class _Damaged(Exception):
    """The entry file exists but is not a valid entry of this key."""


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
    ident = {"v": CACHE_VERSION, "fmt": FORMAT_VERSION, "series": info.series_uid, "te": info.echo_time,
             "part": info.complex_part, "source": info.source,
             "shape": [candidate.slice_count, candidate.rows, candidate.columns], "frames": frames}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode("utf-8")).hexdigest()


def slice_sums(arr: np.ndarray) -> np.ndarray:
    """Per-slice checksum: the sum (mod 2⁶⁴) of each slice's bytes read as little-endian 64-bit words
    (a trailing partial word as one number). ~4 ms per 100 MB in memory — about a tenth of HDF5's
    fletcher32 — and it catches what a cache meets: flipped bits, zeroed or stale blocks after a power loss."""
    a = np.ascontiguousarray(arr)
    n = a.shape[0]
    b = a.reshape(n, -1).view(np.uint8) if a.size else np.zeros((n, 0), np.uint8)
    whole = b.shape[1] // 8 * 8
    sums = b[:, :whole].view("<u8").sum(axis=1, dtype=np.uint64) if whole else np.zeros(n, np.uint64)
    if whole != b.shape[1]:
        tail = np.array([int.from_bytes(bytes(r), "little") for r in b[:, whole:]], dtype=np.uint64)
        sums = sums + tail
    return sums.astype(np.uint64)


def _info_from_dict(d: dict) -> SeriesInfo:
    names = {f.name for f in dataclasses.fields(SeriesInfo)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
    return SeriesInfo(**kw)


def _plain_dtype(dt: np.dtype) -> bool:
    """Numbers only: booleans, integers, floats, complex — never objects, strings or records."""
    return dt.kind in "biufc" and not dt.hasobject and dt.fields is None and dt.subdtype is None


@dataclasses.dataclass(frozen=True)
class _Header:
    shape: tuple[int, int, int]
    dtype: np.dtype
    affine: np.ndarray
    info: SeriesInfo
    warnings: list[str]
    sums: np.ndarray | None
    data_offset: int


def _data_offset(header_len: int) -> int:
    return -(-(_PREFIX.size + header_len) // DATA_ALIGN) * DATA_ALIGN


def _read_header(fd: int, key: str, file_size: int) -> _Header:
    """The validated header of the open entry file `fd`; `_Damaged` if anything does not fit."""
    prefix = os.read(fd, _PREFIX.size)
    if len(prefix) != _PREFIX.size:
        raise _Damaged(f"file of {file_size} bytes is shorter than the prefix")
    magic, version, hlen, crc = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise _Damaged("not a voxel cache entry (magic)")
    if version != FORMAT_VERSION:
        raise _Damaged(f"format version {version}, expected {FORMAT_VERSION}")
    if hlen > _MAX_HEADER or _PREFIX.size + hlen > file_size:
        raise _Damaged(f"header length {hlen} does not fit a file of {file_size} bytes")
    raw = b""
    while len(raw) < hlen:
        chunk = os.read(fd, hlen - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) != hlen or zlib.crc32(raw) != crc:
        raise _Damaged("header checksum mismatch")
    try:
        h = json.loads(raw.decode("utf-8"))
        if h["key"] != key:
            raise _Damaged(f"holds entry {str(h['key'])[:12]}…")
        dtype = np.dtype(h["dtype"])
        if not _plain_dtype(dtype):
            raise _Damaged(f"dtype {dtype} is not a plain number type")
        shape = tuple(h["shape"])
        if len(shape) != 3 or not all(type(v) is int and v >= 0 for v in shape):
            raise _Damaged(f"shape {shape} is not 3 non-negative integers")
        affine = np.array(h["affine"], dtype=np.float64)
        if affine.shape != (16,):
            raise _Damaged("affine is not 16 numbers")
        info = _info_from_dict(h["info"])
        warnings = h["warnings"]
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise _Damaged("warnings are not a list of text")
        sums = None if h["slice_sums"] is None else np.array(h["slice_sums"], dtype=np.uint64)
        if sums is not None and sums.shape != (shape[0],):
            raise _Damaged(f"{sums.size} slice checksums for {shape[0]} slices")
    except _Damaged:
        raise
    except Exception as exc:  # malformed JSON / missing or ill-typed fields
        raise _Damaged(f"malformed header ({type(exc).__name__}: {exc})") from None
    offset = _data_offset(hlen)
    expected = offset + shape[0] * shape[1] * shape[2] * dtype.itemsize
    if file_size != expected:
        raise _Damaged(f"file is {file_size} bytes, expected {expected} for {shape} {dtype}")
    return _Header(shape, dtype, affine.reshape(4, 4), info, list(warnings), sums, offset)


class VoxelStore:
    """A folder of voxel cache entries. All methods are thread-safe; none raises for cache damage."""

    def __init__(self, path, *, budget_bytes: int | None = DEFAULT_BUDGET, verify: bool = True) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.budget_bytes = budget_bytes  # None: unlimited
        self.verify = verify
        self.warnings: list[str] = []  # user-facing notes (damaged entry removed, write failed, …)
        self._lock = _lock_for(self.path)

    key_for = staticmethod(key_for)

    def _warn(self, text: str) -> None:
        log.warning(text)
        self.warnings.append(text)

    def entry_path(self, key: str) -> str:
        return os.path.join(self.path, key + SUFFIX)

    # -- reading ------------------------------------------------------------------------------------

    def get(self, candidate, *, progress: Progress | None = None) -> Volume | None:
        """The cached volume of `candidate` (read-only array mapping the entry file), or None (miss,
        stale sources, damaged entry → deleted with a warning, cache unreadable)."""
        return self._get(key_for(candidate), progress)

    def _get(self, key: str, progress: Progress | None) -> Volume | None:
        path = self.entry_path(key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError:  # missing (a miss), or no folder / no permission: nothing to repair
            return None
        damage = None
        try:
            st = os.fstat(fd)
            h = _read_header(fd, key, st.st_size)
            count = h.shape[0] * h.shape[1] * h.shape[2]
            if count:
                arr = np.frombuffer(mmap.mmap(fd, st.st_size, access=mmap.ACCESS_READ), dtype=h.dtype,
                                    count=count, offset=h.data_offset).reshape(h.shape)
            else:
                arr = np.empty(h.shape, h.dtype)
                arr.flags.writeable = False
        except _Damaged as exc:
            damage = str(exc)
        except (OSError, ValueError, MemoryError) as exc:  # read / map failed (I/O error, address space)
            log.warning("voxel cache entry %s could not be read: %s", path, exc)
            return None
        finally:
            os.close(fd)  # the mapping stays valid without it
        if damage is None and self.verify and h.sums is not None:
            bad = self._check_sums(arr, h.sums, progress)
            if bad is not None:
                del arr  # unmap first: Windows cannot delete a mapped file
                damage = f"checksum mismatch in slice {bad + 1} of {h.shape[0]}"
        elif damage is None and progress is not None and h.shape[0]:
            progress(h.shape[0], h.shape[0])
        if damage is not None:
            self._drop_damaged(path, key, damage, st)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # last access, for eviction (metadata only: the data never changes)
        return Volume(array=arr, affine=h.affine, info=h.info, warnings=h.warnings)

    @staticmethod
    def _check_sums(arr: np.ndarray, sums: np.ndarray, progress: Progress | None) -> int | None:
        """Index of the first slice whose checksum differs, or None."""
        n = arr.shape[0]
        per = max(1, _VERIFY_BLOCK_BYTES // max(1, arr[0].nbytes)) if n else 1
        for a in range(0, n, per):
            b = min(n, a + per)
            bad = np.flatnonzero(slice_sums(arr[a:b]) != sums[a:b])
            if bad.size:
                return a + int(bad[0])
            if progress is not None:
                progress(b, n)
        return None

    def _drop_damaged(self, path: str, key: str, reason: str, st: os.stat_result) -> None:
        self._warn(f"voxel cache entry {key[:12]}… was damaged ({reason[:160]}); it was removed "
                   "and the series loads from its source files")
        try:
            now = os.stat(path)
            if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):  # not replaced meanwhile
                os.remove(path)
        except OSError:
            pass  # gone already, read-only folder, or (Windows) still mapped

    def __contains__(self, candidate) -> bool:
        """An entry for `candidate` exists and its header is valid (data not verified)."""
        key = key_for(candidate)
        try:
            fd = os.open(self.entry_path(key), os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError:
            return False
        try:
            _read_header(fd, key, os.fstat(fd).st_size)
            return True
        except (_Damaged, OSError):
            return False
        finally:
            os.close(fd)

    # -- writing ------------------------------------------------------------------------------------

    def put(self, candidate, volume: Volume) -> bool:
        """Store `volume` as the entry of `candidate`; False if it was not stored (larger than the
        budget, a dtype that is not a plain number, cache unavailable, write failed — the reason is
        in `warnings` / the log)."""
        return self._put(key_for(candidate), volume)

    def _put(self, key: str, volume: Volume) -> bool:
        arr = np.ascontiguousarray(volume.array)
        if arr.ndim != 3:
            raise ValueError(f"volume array must be 3-D, got {arr.shape}")
        if not _plain_dtype(arr.dtype):
            log.info("voxel cache: %s arrays are not cached", arr.dtype)
            return False
        header = {
            "key": key, "shape": list(arr.shape), "dtype": arr.dtype.str,
            "affine": [float(v) for v in np.asarray(volume.affine, dtype=np.float64).reshape(-1)],
            "info": dataclasses.asdict(volume.info), "warnings": [str(w) for w in volume.warnings],
            "slice_sums": slice_sums(arr).tolist(), "created": time.time(),
        }
        raw = json.dumps(header, sort_keys=True).encode("utf-8")
        offset = _data_offset(len(raw))
        size = offset + arr.nbytes
        if self.budget_bytes is not None and size > self.budget_bytes:
            return False
        final = self.entry_path(key)
        with self._lock:
            try:
                os.makedirs(self.path, exist_ok=True)
                self._evict(self.budget_bytes - size if self.budget_bytes is not None else None, skip=final)
            except OSError as exc:
                self._warn(f"voxel cache {self.path} cannot be written: {exc.strerror or exc}")
                return False
            tmp = os.path.join(self.path, f".{key}.{uuid.uuid4().hex}.tmp")
            try:
                with open(tmp, "xb") as f:
                    f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw), zlib.crc32(raw)))
                    f.write(raw)
                    f.write(b"\0" * (offset - _PREFIX.size - len(raw)))
                    if arr.nbytes:
                        f.write(arr.data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
                self._warn(f"voxel cache {self.path}: storing a series failed ({exc.strerror or exc})")
                return False
            self._fsync_folder()
            return True

    def _fsync_folder(self) -> None:
        """Make the rename durable (POSIX; folders cannot be opened for fsync on Windows)."""
        if os.name != "posix":
            return
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _entries(self, sweep: bool = False) -> list[tuple[float, int, str]]:
        """(mtime = last access, size, path) of every entry file; with `sweep`, temporary files of
        writes that crashed (over an hour old: fresh ones may be in progress elsewhere) are deleted."""
        out = []
        now = time.time()
        with os.scandir(self.path) as it:
            for e in it:
                try:
                    if e.name.endswith(SUFFIX) and e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        out.append((st.st_mtime, st.st_size, e.path))
                    elif sweep and e.name.startswith(".") and e.name.endswith(".tmp") and \
                            now - e.stat(follow_symlinks=False).st_mtime > _STALE_TMP_S:
                        os.remove(e.path)
                except OSError:
                    continue
        return out

    def _evict(self, limit: int | None, skip: str) -> None:
        """Delete least recently used entries (never `skip`, which is being replaced) until the rest
        occupies at most `limit` bytes. Caller holds the lock."""
        items = [it for it in self._entries(sweep=True) if it[2] != skip]
        if limit is None:
            return
        total = sum(b for _, b, _ in items)
        for _, b, p in sorted(items):
            if total <= limit:
                break
            try:
                os.remove(p)
            except FileNotFoundError:
                pass
            except OSError:  # e.g. still mapped on Windows: keep it, counted
                continue
            total -= b

    # -- convenience --------------------------------------------------------------------------------

    def load_through(self, candidate, load_fn: Callable[..., Volume], progress: Progress | None = None) -> Volume:
        """The cached volume, or `load_fn(candidate[, progress=progress])` stored for next time.

        Not stored if a source file changed while it was loading (the key before and after differ)."""
        key = key_for(candidate)
        vol = self._get(key, progress)
        if vol is not None:
            return vol
        vol = load_fn(candidate, progress=progress) if progress is not None else load_fn(candidate)
        if key_for(candidate) == key:
            self._put(key, vol)
        return vol

    def stats(self) -> tuple[int, int]:
        """(number of entries, bytes they occupy on disk)."""
        try:
            items = self._entries()
        except OSError:
            return 0, 0
        return len(items), sum(b for _, b, _ in items)

    def clear(self) -> None:
        """Delete every entry (and temporary file) and the folder if nothing else is left in it.
        Volumes already returned keep their data (POSIX)."""
        with self._lock:
            try:
                names = os.listdir(self.path)
            except OSError:
                return
            for n in names:
                if n.endswith(SUFFIX) or (n.startswith(".") and n.endswith(".tmp")):
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(self.path, n))
            with contextlib.suppress(OSError):
                os.rmdir(self.path)

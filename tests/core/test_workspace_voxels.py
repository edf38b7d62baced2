"""The voxel cache: round trip, zero-copy read-only arrays that never change under their holder,
invalidation by source changes, damaged entries, eviction, threads."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import threading
import time
import zlib

import numpy as np
import pytest

from discviewer.io import load, scan
from discviewer.volume import Volume
from discviewer.workspace import voxels as vx
from discviewer.workspace.voxels import VoxelStore, key_for
from tests.core.phantom_cache import phantom_scan


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The session phantom (read-only use): candidates and their loaded volumes."""
    _, res = phantom_scan(tmp_path_factory)
    cands = res.series[:4]
    return cands, [load(c) for c in cands]


@pytest.fixture
def private(tmp_path_factory, tmp_path):
    """A private copy of one phantom series folder (the tests modify its files)."""
    src, res = phantom_scan(tmp_path_factory)
    folder = tmp_path / "src"
    shutil.copytree(os.path.dirname(res.series[0].frames[0].path), folder)
    (c,) = scan(folder).series
    return c


def assert_same(a: Volume, b: Volume) -> None:
    assert a.array.dtype == b.array.dtype and a.array.shape == b.array.shape
    np.testing.assert_array_equal(a.array, b.array)
    assert a.affine.dtype == np.float64 and np.array_equal(a.affine, b.affine)
    assert a.info == b.info and a.warnings == b.warnings


def entry_files(store: VoxelStore) -> set[str]:
    return {n for n in os.listdir(store.path) if n.endswith(vx.SUFFIX)}


def test_round_trip_is_zero_copy_and_read_only(shared, tmp_path):
    cands, vols = shared
    store = VoxelStore(tmp_path / "w.dvw.voxels")
    assert store.get(cands[0]) is None and not os.path.exists(store.path)  # a miss creates nothing
    for c, v in zip(cands, vols):
        assert store.put(c, v)
    assert entry_files(store) == {key_for(c) + ".dvx" for c in cands}
    for c, v in zip(cands, vols):
        got = store.get(c)
        assert_same(got, v)
        arr = got.array
        assert type(arr) is np.ndarray and arr.flags.c_contiguous and not arr.flags.writeable
        assert not arr.flags.owndata  # a view of the file mapping, not a copy
        with pytest.raises(ValueError, match="read-only"):
            arr[0, 0, 0] = 1
        assert v.array.flags.writeable  # the stored volume is untouched
    steps = []
    assert_same(store.get(cands[1], progress=lambda d, t: steps.append((d, t))), vols[1])
    assert steps and steps[-1] == (vols[1].shape[0], vols[1].shape[0])
    n, nbytes = store.stats()
    assert n == len(cands) and nbytes == sum(os.path.getsize(os.path.join(store.path, f)) for f in entry_files(store))
    assert not store.warnings
    # the file: page-aligned data after the header, nothing after the data
    p = store.entry_path(key_for(cands[0]))
    with open(p, "rb") as f:
        magic, version, hlen, crc = vx._PREFIX.unpack(f.read(vx._PREFIX.size))
        header = json.loads(f.read(hlen))
    assert magic == vx.MAGIC and version == vx.FORMAT_VERSION
    offset = vx._data_offset(hlen)
    assert offset % 4096 == 0 and os.path.getsize(p) == offset + vols[0].array.nbytes
    assert header["key"] == key_for(cands[0]) and header["shape"] == list(vols[0].shape)
    raw = np.fromfile(p, dtype=vols[0].array.dtype, offset=offset).reshape(vols[0].shape)
    np.testing.assert_array_equal(raw, vols[0].array)


def test_round_trip_of_other_dtypes_info_and_warnings(shared, tmp_path):
    cands, _ = shared
    store = VoxelStore(tmp_path / "c")
    rng = np.random.default_rng(3)
    arr = rng.normal(size=(3, 5, 7)).astype(np.float32)
    arr[0, 0, 0] = np.nan
    info = dataclasses.replace(cands[0].info, series_description="T2 sagittal · Wirbelsäule", echo_time=None,
                               image_type=("DERIVED", "SECONDARY"))
    aff = np.eye(4)
    aff[:3, 3] = (1.5, -2.25, 1e-17)
    aff[0, 1] = 1 / 3
    v = Volume(arr, aff, info, ["uneven slice spacing: 4.40 mm between a and b"])
    assert store.put(cands[0], v)
    assert_same(store.get(cands[0]), v)
    v16 = Volume(rng.integers(-3000, 3000, (2, 4, 4)).astype(np.int16), aff, cands[0].info, [])
    assert store.put(cands[0], v16)  # replaces the entry
    assert_same(store.get(cands[0]), v16)
    assert store.stats()[0] == 1
    for a in (np.zeros((0, 4, 4), np.uint16), rng.integers(0, 255, (3, 3, 3)).astype(np.uint8),  # odd row bytes
              rng.normal(size=(2, 3, 3)) + 1j, np.asfortranarray(rng.normal(size=(4, 5, 6))),
              np.ones((2, 2, 2), bool), np.arange(8, dtype=">i4").reshape(2, 2, 2)):
        v = Volume(a, aff, cands[0].info, [])
        assert store.put(cands[0], v)
        assert_same(store.get(cands[0]), v)
    # only plain numbers are stored: never objects or strings
    assert not store.put(cands[1], Volume(np.array([[["a"]]], dtype=object), aff))
    assert not store.put(cands[1], Volume(np.array([[["a"]]]), aff))
    assert cands[1] not in store and not store.warnings


def test_returned_volume_never_changes_when_its_entry_is_replaced_evicted_or_cleared(shared, tmp_path):
    cands, vols = shared
    store = VoxelStore(tmp_path / "c", budget_bytes=int(1.5 * vols[0].array.nbytes) + 65536)
    assert store.put(cands[0], vols[0])
    held = store.get(cands[0]).array
    expected = np.array(held)
    # replaced by different data under the same key (rename over the file being mapped)
    other = Volume(np.full_like(vols[0].array, 7), vols[0].affine, vols[0].info, [])
    assert store.put(cands[0], other)
    held2 = store.get(cands[0]).array
    assert (held2 == 7).all()
    np.testing.assert_array_equal(held, expected)
    # evicted (another entry needs the space)
    assert store.put(cands[1], vols[1]) and cands[0] not in store
    np.testing.assert_array_equal(held, expected)
    assert (held2 == 7).all()
    # cleared
    held3 = store.get(cands[1]).array
    store.clear()
    assert not os.path.exists(store.path)
    np.testing.assert_array_equal(held, expected)
    np.testing.assert_array_equal(held3, vols[1].array)
    assert (held2 == 7).all()


def test_load_through_loads_once(shared, tmp_path):
    cands, vols = shared
    store = VoxelStore(tmp_path / "c")
    calls = []

    def loader(c, progress=None):
        calls.append(progress)
        return load(c)

    first = store.load_through(cands[0], loader)
    assert_same(first, vols[0]) and first.array.flags.writeable  # the loader's own volume
    second = store.load_through(cands[0], loader)
    assert_same(second, vols[0]) and not second.array.flags.writeable  # from the cache
    seen = []
    store.load_through(cands[1], loader, progress=lambda d, t: seen.append(d))
    assert len(calls) == 2 and calls[1] is not None


def test_changed_source_file_invalidates(private, tmp_path):
    c = private
    store = VoxelStore(tmp_path / "c")
    v = load(c)
    store.put(c, v)
    assert store.get(c) is not None and c in store
    k0 = key_for(c)
    p = c.frames[3].path
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert key_for(c) != k0
    assert store.get(c) is None and c not in store
    loads = []
    store.load_through(c, lambda cc: loads.append(1) or load(cc))
    store.load_through(c, lambda cc: loads.append(1) or load(cc))
    assert loads == [1]
    os.remove(p)  # a missing source never matches a stored key
    assert store.get(c) is None


def _rewrite_header(path: str, edit) -> None:
    """Rewrite an entry's header through `edit(dict)` with a valid CRC and the data kept (the
    data offset moves if the header's length crosses a 4096 boundary — not for these edits)."""
    with open(path, "rb") as f:
        magic, version, hlen, _ = vx._PREFIX.unpack(f.read(vx._PREFIX.size))
        header = json.loads(f.read(hlen))
        f.seek(vx._data_offset(hlen))
        data = f.read()
    edit(header)
    raw = json.dumps(header).encode()
    assert vx._data_offset(len(raw)) == vx._data_offset(hlen)
    with open(path, "wb") as f:
        f.write(vx._PREFIX.pack(magic, version, len(raw), zlib.crc32(raw)) + raw)
        f.write(b"\0" * (vx._data_offset(len(raw)) - vx._PREFIX.size - len(raw)) + data)


def _flip(path: str, pos: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x10]))


DAMAGE = {
    "empty": lambda p, v: os.truncate(p, 0),
    "truncated in the prefix": lambda p, v: os.truncate(p, 10),
    "truncated in the header": lambda p, v: os.truncate(p, 200),
    "truncated in the data": lambda p, v: os.truncate(p, os.path.getsize(p) - 1),
    "half": lambda p, v: os.truncate(p, os.path.getsize(p) // 2),
    "extended": lambda p, v: open(p, "ab").write(b"\0" * 4096),
    "garbage": lambda p, v: open(p, "wb").write(os.urandom(os.path.getsize(p))),
    "garbage header": lambda p, v: open(p, "r+b").write(os.urandom(600)),
    "flipped header bit": lambda p, v: _flip(p, 100),
    "flipped data bit": lambda p, v: _flip(p, os.path.getsize(p) - v.array[0].nbytes - 5),
    "zeroed slice": lambda p, v: (lambda f: (f.seek(os.path.getsize(p) - v.array[0].nbytes),
                                             f.write(bytes(v.array[0].nbytes))))(open(p, "r+b")),
    "other version": lambda p, v: open(p, "r+b").write(struct.pack("<8sI", vx.MAGIC, 99)),
    "not an entry": lambda p, v: open(p, "wb").write(b"\x89HDF\r\n\x1a\n" + bytes(5000)),
    "wrong shape, valid header": lambda p, v: _rewrite_header(
        p, lambda h: h.update(shape=[h["shape"][0] + 1] + h["shape"][1:])),
    "wrong dtype, valid header": lambda p, v: _rewrite_header(p, lambda h: h.update(dtype="<u4")),
    "object dtype, valid header": lambda p, v: _rewrite_header(p, lambda h: h.update(dtype="|O")),
    "another key's entry": lambda p, v: _rewrite_header(p, lambda h: h.update(key="0" * 64)),
    "missing field": lambda p, v: _rewrite_header(p, lambda h: h.pop("affine")),
    "bad affine": lambda p, v: _rewrite_header(p, lambda h: h.update(affine=[1.0] * 15)),
    "bad checksums": lambda p, v: _rewrite_header(p, lambda h: h.update(slice_sums=h["slice_sums"][:-1])),
    "negative shape": lambda p, v: _rewrite_header(p, lambda h: h.update(shape=[-1, 2, 3])),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_entry_is_a_miss_and_removed(shared, tmp_path, damage, caplog):
    cands, vols = shared
    store = VoxelStore(tmp_path / "c")
    assert store.put(cands[0], vols[0]) and store.put(cands[1], vols[1])
    p = store.entry_path(key_for(cands[0]))
    DAMAGE[damage](p, vols[0])
    assert store.get(cands[0]) is None  # never an exception, never other data
    assert store.warnings and "damaged" in store.warnings[-1] and key_for(cands[0])[:12] in store.warnings[-1]
    assert "voxel cache" in caplog.text
    assert not os.path.exists(p) and cands[0] not in store
    assert_same(store.get(cands[1]), vols[1])  # the other entry is unaffected
    loads = []
    assert_same(store.load_through(cands[0], lambda c: loads.append(1) or vols[0]), vols[0])
    assert_same(store.get(cands[0]), vols[0]) and loads == [1]


def test_contains_checks_the_header(shared, tmp_path):
    cands, vols = shared
    store = VoxelStore(tmp_path / "c")
    store.put(cands[0], vols[0])
    assert cands[0] in store and cands[1] not in store
    os.truncate(store.entry_path(key_for(cands[0])), 100)
    assert cands[0] not in store


def test_without_verification_only_header_and_size_are_checked(shared, tmp_path):
    cands, vols = shared
    store = VoxelStore(tmp_path / "c", verify=False)
    store.put(cands[0], vols[0])
    steps = []
    assert_same(store.get(cands[0], progress=lambda d, t: steps.append((d, t))), vols[0])
    assert steps == [(vols[0].shape[0], vols[0].shape[0])]
    p = store.entry_path(key_for(cands[0]))
    _flip(p, os.path.getsize(p) - 3)
    assert store.get(cands[0]) is not None  # the data is trusted …
    assert VoxelStore(store.path).get(cands[0]) is None  # … a verifying store finds the damage
    store.put(cands[0], vols[0])
    os.truncate(p, os.path.getsize(p) - 2)
    assert store.get(cands[0]) is None and "damaged" in store.warnings[-1]  # … the size is always checked


def test_crashed_writes_are_cleaned_up_once_stale(shared, tmp_path):
    cands, vols = shared
    store = VoxelStore(tmp_path / "c")
    store.put(cands[0], vols[0])
    stale = os.path.join(store.path, f".{key_for(cands[1])}.dead.tmp")
    fresh = os.path.join(store.path, f".{key_for(cands[2])}.live.tmp")  # another process writing now
    for p in (stale, fresh):
        with open(p, "wb") as f:
            f.write(b"\0" * 1000)
    old = time.time() - 2 * vx._STALE_TMP_S
    os.utime(stale, (old, old))
    assert store.stats() == (1, os.path.getsize(store.entry_path(key_for(cands[0]))))  # temporaries: not entries
    assert store.get(cands[1]) is None and not store.warnings
    store.put(cands[1], vols[1])
    assert not os.path.exists(stale) and os.path.exists(fresh)
    assert_same(store.get(cands[1]), vols[1])
    with open(os.path.join(store.path, "notes.txt"), "w") as f:  # not ours: kept by clear()
        f.write("x")
    store.clear()
    assert os.listdir(store.path) == ["notes.txt"]


def test_eviction_keeps_recently_used_within_budget(shared, tmp_path):
    cands, vols = shared
    one = os.path.getsize(_stored(tmp_path / "probe", cands[0], vols[0]))
    assert all(v.array.nbytes == vols[0].array.nbytes for v in vols)
    store = VoxelStore(tmp_path / "c", budget_bytes=int(2.5 * one))
    store.put(cands[0], vols[0])
    store.put(cands[1], vols[1])
    time.sleep(0.01)
    assert store.get(cands[0]) is not None  # 0 is now more recent than 1
    store.put(cands[2], vols[2])  # over budget: the least recently used (1) goes
    assert cands[0] in store and cands[1] not in store and cands[2] in store
    n, nbytes = store.stats()
    assert n == 2 and nbytes <= store.budget_bytes
    # replacing an entry does not evict another one for the space it frees itself
    store.put(cands[0], vols[0])
    assert cands[0] in store and cands[2] in store
    # a volume larger than the whole budget is not stored (and evicts nothing)
    small = VoxelStore(tmp_path / "s", budget_bytes=one // 2)
    assert not small.put(cands[0], vols[0]) and small.get(cands[0]) is None
    # repeated replacements stay within the budget; entries nobody asks for any more (sources
    # changed, another format version: other keys) count and age out like any other
    foreign = os.path.join(store.path, "f" * 64 + vx.SUFFIX)
    with open(foreign, "wb") as f:
        f.write(bytes(one // 2))
    os.utime(foreign, (time.time() - 60, time.time() - 60))
    for _ in range(3):
        for c, v in zip(cands, vols):
            store.put(c, v)
            assert store.stats()[1] <= store.budget_bytes
    assert not os.path.exists(foreign)
    store.clear()
    assert not os.path.exists(store.path) and store.get(cands[0]) is None and store.stats() == (0, 0)


def _stored(folder, cand, vol) -> str:
    s = VoxelStore(folder)
    assert s.put(cand, vol)
    return s.entry_path(key_for(cand))


def test_unusable_folder_is_a_miss_never_an_error(shared, tmp_path):
    cands, vols = shared
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    store = VoxelStore(blocker)  # a file where the folder should be
    assert store.get(cands[0]) is None and cands[0] not in store and store.stats() == (0, 0)
    assert not store.put(cands[0], vols[0]) and "cannot be written" in store.warnings[-1]
    assert_same(store.load_through(cands[0], lambda c: vols[0]), vols[0])
    store.clear()
    assert blocker.read_bytes() == b"x"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_read_only_folder_still_serves_entries(shared, tmp_path):
    cands, vols = shared
    store = VoxelStore(tmp_path / "c")
    store.put(cands[0], vols[0])
    os.chmod(store.path, 0o555)
    try:
        assert_same(store.get(cands[0]), vols[0])
        assert not store.put(cands[1], vols[1])
    finally:
        os.chmod(store.path, 0o755)


def test_threads_share_one_cache(shared, tmp_path):
    cands, vols = shared
    path = tmp_path / "c"
    errors = []

    def work(i):
        try:
            store = VoxelStore(path)  # separate objects on one folder share the writers' lock
            for k in range(6):
                j = (i + k) % len(cands)
                got = store.load_through(cands[j], lambda c, j=j: vols[j])
                assert_same(got, vols[j])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert VoxelStore(path).stats()[0] == len(cands)
    assert not [n for n in os.listdir(path) if n.endswith(".tmp")]


def test_threads_with_a_tight_budget_never_see_wrong_data(shared, tmp_path):
    """Readers, writers and eviction racing on one folder: every get is a miss or the right volume."""
    cands, vols = shared
    one = vols[0].array.nbytes
    path = tmp_path / "c"
    errors, hits = [], []

    def work(i):
        try:
            store = VoxelStore(path, budget_bytes=2 * one + 2 * 65536)
            for k in range(20):
                j = (i * 3 + k) % len(cands)
                if k % 3 == 0:
                    store.put(cands[j], vols[j])
                got = store.get(cands[j])
                if got is not None:
                    assert_same(got, vols[j])
                    hits.append(1)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and hits
    assert VoxelStore(path).stats()[0] <= 2

"""The voxel cache: round trip, invalidation by source changes, damage recovery, eviction, threads."""
from __future__ import annotations

import dataclasses
import os
import shutil
import threading

import h5py
import numpy as np
import pytest

from discviewer.io import load, scan
from discviewer.volume import Volume
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


@pytest.mark.parametrize("compression", [None, "lzf", "gzip"])
def test_round_trip(shared, tmp_path, compression):
    cands, vols = shared
    store = VoxelStore(tmp_path / "w.dvw.voxels.h5", compression=compression)
    assert store.get(cands[0]) is None and not os.path.exists(store.path)  # a miss creates nothing
    for c, v in zip(cands, vols):
        assert store.put(c, v)
    for c, v in zip(cands, vols):
        got = store.get(c)
        assert_same(got, v)
        assert got.array.flags.c_contiguous and got.array.flags.writeable
    steps = []
    assert_same(store.get(cands[1], progress=lambda d, t: steps.append((d, t))), vols[1])
    assert steps[-1] == (vols[1].shape[0], vols[1].shape[0])
    assert store.stats()[0] == len(cands) and not store.warnings
    with h5py.File(store.path, "r") as f:
        ds = f["entries"][key_for(cands[0])]["array"]
        assert ds.chunks == (1,) + vols[0].shape[1:]
        assert ds.compression == compression
        assert "slice_sums" in f["entries"][key_for(cands[0])]


def test_round_trip_of_other_dtypes_info_and_warnings(shared, tmp_path):
    cands, _ = shared
    store = VoxelStore(tmp_path / "c.h5")
    rng = np.random.default_rng(3)
    arr = rng.normal(size=(3, 5, 7)).astype(np.float32)
    arr[0, 0, 0] = np.nan
    info = dataclasses.replace(cands[0].info, series_description="T2 sagittal · Wirbelsäule", echo_time=None,
                               image_type=("DERIVED", "SECONDARY"))
    aff = np.eye(4)
    aff[:3, 3] = (1.5, -2.25, 1e-17)
    v = Volume(arr, aff, info, ["uneven slice spacing: 4.40 mm between a and b"])
    assert store.put(cands[0], v)
    assert_same(store.get(cands[0]), v)
    v16 = Volume(rng.integers(-3000, 3000, (2, 4, 4)).astype(np.int16), aff, cands[0].info, [])
    assert store.put(cands[0], v16)  # replaces the entry
    assert_same(store.get(cands[0]), v16)
    assert store.stats()[0] == 1


def test_load_through_loads_once(shared, tmp_path):
    cands, vols = shared
    store = VoxelStore(tmp_path / "c.h5")
    calls = []

    def loader(c, progress=None):
        calls.append(progress)
        return load(c)

    assert_same(store.load_through(cands[0], loader), vols[0])
    assert_same(store.load_through(cands[0], loader), vols[0])
    seen = []
    store.load_through(cands[1], loader, progress=lambda d, t: seen.append(d))
    assert len(calls) == 2 and calls[1] is not None


def test_changed_source_file_invalidates(private, tmp_path):
    c = private
    store = VoxelStore(tmp_path / "c.h5")
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


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other format"])
def test_corrupt_cache_file_is_rebuilt(shared, tmp_path, damage, caplog):
    cands, vols = shared
    store = VoxelStore(tmp_path / "c.h5")
    store.put(cands[0], vols[0])
    store.put(cands[1], vols[1])
    size = os.path.getsize(store.path)
    if damage == "garbage":
        with open(store.path, "r+b") as f:
            f.write(os.urandom(4096))
    elif damage == "truncated":
        os.truncate(store.path, size // 2)
    elif damage == "empty":
        os.truncate(store.path, 0)
    else:
        os.remove(store.path)
        with h5py.File(store.path, "w") as f:
            f.attrs["format"] = "something else"
    assert store.get(cands[0]) is None
    assert store.warnings and "rebuilt" in store.warnings[-1] and store.path in store.warnings[-1]
    assert "voxel cache" in caplog.text
    assert store.put(cands[0], vols[0])
    assert_same(store.get(cands[0]), vols[0])
    assert store.get(cands[1]) is None


def test_incomplete_entry_is_ignored_and_removed(shared, tmp_path):
    cands, vols = shared
    store = VoxelStore(tmp_path / "c.h5")
    for c, v in zip(cands[:3], vols[:3]):
        store.put(c, v)
    k0, k1, k2 = (key_for(c) for c in cands[:3])
    with h5py.File(store.path, "r+") as f:
        del f["entries"][k0].attrs["complete"]  # as if a write had stopped half-way
        g = f["entries"][k1]
        del g["array"]  # a truncated entry: fewer slices than recorded
        g.create_dataset("array", data=vols[1].array[:2])
        f.create_group("tmp/deadbeef").create_dataset("array", data=np.zeros(10))  # crashed write
    assert store.get(cands[0]) is None and store.get(cands[1]) is None
    assert len([w for w in store.warnings if "damaged" in w]) == 2
    assert_same(store.get(cands[2]), vols[2])
    with h5py.File(store.path, "r") as f:
        assert set(f["entries"]) == {k2}
    store.put(cands[0], vols[0])
    with h5py.File(store.path, "r") as f:
        assert "tmp" not in f and set(f["entries"]) == {k0, k2}


def test_damaged_slice_is_detected_by_checksum(shared, tmp_path):
    cands, vols = shared
    store = VoxelStore(tmp_path / "c.h5")
    store.put(cands[0], vols[0])
    with h5py.File(store.path, "r") as f:
        info = f["entries"][key_for(cands[0])]["array"].id.get_chunk_info(2)
    with open(store.path, "r+b") as fh:
        fh.seek(info.byte_offset + 100)
        b = fh.read(1)
        fh.seek(info.byte_offset + 100)
        fh.write(bytes([b[0] ^ 0xFF]))
    assert store.get(cands[0]) is None
    assert "damaged" in store.warnings[-1]
    assert cands[0] not in store


def test_eviction_keeps_recently_used_within_budget(shared, tmp_path):
    cands, vols = shared
    one = vols[0].array.nbytes
    store = VoxelStore(tmp_path / "c.h5", budget_bytes=int(2.5 * one))
    store.put(cands[0], vols[0])
    store.put(cands[1], vols[1])
    assert store.get(cands[0]) is not None  # 0 is now more recent than 1
    store.put(cands[2], vols[2])  # over budget: the least recently used (1) goes
    assert cands[0] in store and cands[1] not in store and cands[2] in store
    n, nbytes = store.stats()
    assert n == 2 and nbytes <= store.budget_bytes
    # a volume larger than the whole budget is not stored (and evicts nothing)
    small = VoxelStore(tmp_path / "s.h5", budget_bytes=one // 2)
    assert not small.put(cands[0], vols[0]) and small.get(cands[0]) is None
    # the space of evicted entries is reused: the file does not grow with every replacement
    for _ in range(2):
        for c, v in zip(cands, vols):
            store.put(c, v)
    first = os.path.getsize(store.path)
    for _ in range(3):
        for c, v in zip(cands, vols):
            store.put(c, v)
    assert os.path.getsize(store.path) <= first * 1.1
    store.clear()
    assert not os.path.exists(store.path) and store.get(cands[0]) is None


def test_threads_share_one_cache(shared, tmp_path):
    cands, vols = shared
    path = tmp_path / "c.h5"
    errors = []

    def work(i):
        try:
            store = VoxelStore(path)  # separate objects on one file share the lock
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

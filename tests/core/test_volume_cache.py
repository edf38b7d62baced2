"""Volume cache: hits, LRU eviction under a byte budget, get_or_load loads once."""
from __future__ import annotations

import numpy as np

from discviewer.volume import Volume
from discviewer.volume_cache import VolumeCache
from tests.synthetic import make_candidate


def vol(nbytes):
    return Volume(np.zeros((1, 1, nbytes), np.uint8), np.eye(4))


def test_lru_eviction_under_budget():
    cache = VolumeCache(budget_bytes=250)
    a, b, c = (make_candidate(f"s{i}", i, study_uid=f"1.{i}") for i in range(3))
    cache.put(a, vol(100))
    cache.put(b, vol(100))
    assert cache.get(a) is not None  # a is now most recent
    cache.put(c, vol(100))  # over budget: b (least recent) goes
    assert cache.get(b) is None and cache.get(a) is not None and cache.get(c) is not None
    assert cache.nbytes == 200


def test_get_or_load_loads_once():
    cache = VolumeCache()
    cand = make_candidate()
    calls = []

    def load(candidate, **kw):
        calls.append(candidate)
        return vol(10)

    v1 = cache.get_or_load(cand, load)
    v2 = cache.get_or_load(cand, load)
    assert v1 is v2 and len(calls) == 1

"""disc_finder: from one labelled disc, the other discs of the phantom are found and named in order."""
from __future__ import annotations

import numpy as np
import pytest

from discviewer.disc_finder import find_discs, label_discs
from tests.core.phantom_cache import phantom_study


@pytest.fixture(scope="module")
def study():
    return phantom_study("small")


@pytest.mark.parametrize("visit_index, seed_level", [(0, "L4/L5"), (2, "L2/L3"), (4, "L5/S1")])
def test_every_lumbar_disc_is_found_and_named_from_one(study, visit_index, seed_level):
    visit = study.patients[0].visits[visit_index]
    discs = visit.truth["discs"]
    vol = visit.series_by_key("t2").volume(0)
    labels = label_discs(vol, discs[seed_level]["centre"], seed_level)
    for level, d in discs.items():  # every disc of the truth (T12/L1 … L5/S1), within 5 mm
        assert level in labels, (level, sorted(labels))
        assert np.linalg.norm(np.subtract(labels[level], d["centre"])) < 5.0, level
    assert list(labels)[-1] == "L5/S1"  # nothing named below the named range


def test_found_discs_are_ordered_and_spaced(study):
    visit = study.patients[0].visits[0]
    vol = visit.series_by_key("t2").volume(0)
    discs, k = find_discs(vol, visit.truth["discs"]["L3/L4"]["centre"])
    z = [d.centre[2] for d in discs]
    assert z == sorted(z, reverse=True)  # cranial (superior, +z) first
    steps = np.diff(np.asarray([d.centre for d in discs]), axis=0)
    assert np.all(np.linalg.norm(steps, axis=1) > 20)
    assert np.linalg.norm(np.subtract(discs[k].centre, visit.truth["discs"]["L3/L4"]["centre"])) < 5.0


def test_unknown_level_and_no_disc():
    from discviewer.volume import Volume

    vol = Volume(np.zeros((5, 64, 64), np.float32), np.diag([1.0, 1.0, 3.0, 1.0]))
    with pytest.raises(ValueError, match="unknown disc level"):
        label_discs(vol, (0, 0, 0), "L9/L10")
    with pytest.raises(ValueError):
        find_discs(vol, (32.0, 32.0, 6.0))

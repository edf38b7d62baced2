"""Pure display geometry: orientation letters, auto window, scale bar (no widgets needed)."""
import numpy as np
import pytest

from discviewer.display import (
    auto_window,
    edge_letters,
    middle_slice,
    orientation_letter,
    scale_bar_length,
)


@pytest.mark.parametrize("vec, letter", [((1, 0, 0), "L"), ((-1, 0, 0), "R"), ((0, 1, 0), "P"),
                                         ((0, -1, 0), "A"), ((0, 0, 1), "S"), ((0, 0, -1), "I"),
                                         ((0.2, -0.9, 0.3), "A"), ((0, 0, 0), "")])
def test_orientation_letter(vec, letter):
    assert orientation_letter(vec) == letter


@pytest.mark.parametrize("orientation, expected", [
    ("sagittal", {"left": "A", "right": "P", "top": "S", "bottom": "I"}),
    ("axial", {"left": "R", "right": "L", "top": "A", "bottom": "P"}),
    ("coronal", {"left": "R", "right": "L", "top": "S", "bottom": "I"}),
])
def test_edge_letters(affine_factory, orientation, expected):
    assert edge_letters(affine_factory(orientation)).as_dict() == expected


def test_edge_letters_ignore_spacing_and_small_obliquity(affine_factory):
    a = affine_factory("sagittal", spacing=(0.3, 2.0, 4.0))
    a[:3, 0] += np.array([0.05, 0.0, 0.08])  # slightly oblique rows
    assert edge_letters(a).as_dict() == {"left": "A", "right": "P", "top": "S", "bottom": "I"}


def test_auto_window_is_1st_to_99th_percentile():
    a = np.arange(10001, dtype=np.float32)  # percentiles are exact: 100 and 9900
    center, width = auto_window(a)
    assert center == pytest.approx(5000.0)
    assert width == pytest.approx(9800.0)
    assert auto_window(np.full((3, 3), 7.0)) == (7.0, 1.0)


def test_scale_bar_and_middle_slice():
    assert scale_bar_length(60) == 50
    assert scale_bar_length(19.9) == 10
    assert scale_bar_length(0.1) == 1
    assert [middle_slice(n) for n in (1, 2, 5, 35)] == [0, 0, 2, 17]

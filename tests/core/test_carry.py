"""carry: an annotation drawn on one visit lands on the same anatomy of another through the transforms."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from discviewer.carry import carry_annotation
from discviewer.linking import TransformSet
from discviewer.workspace.data import Annotation


def rigid(rx, ry, rz, t):
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", [rx, ry, rz], degrees=True).as_matrix()
    m[:3, 3] = t
    return m


def test_carry_maps_points_and_plane_between_follow_ups():
    ts = TransformSet("V0")
    m1, m2 = rigid(2, -3, 5, (4, -2, 7)), rigid(-1, 4, 0, (-3, 6, 1))
    ts.set("V1", m1, "registration")
    ts.set("V2", m2, "registration")
    # an anatomical point in baseline space and where it is in each visit
    anatomy = np.array([[1.0, -16.0, -44.0], [3.0, -10.0, -40.0], [0.0, -20.0, -47.0]])
    in_v1 = (np.linalg.inv(m1) @ np.c_[anatomy, np.ones(3)].T).T[:, :3]
    in_v2 = (np.linalg.inv(m2) @ np.c_[anatomy, np.ones(3)].T).T[:, :3]
    normal_v1 = np.linalg.inv(m1)[:3, :3] @ np.array([1.0, 0, 0])
    a = Annotation(id="roi1", kind="ellipse", level="L4/L5", visit_id="V1", series_uid="S1",
                   points=tuple(map(tuple, in_v1)), values={"mean": 100.0}, units={"mean": ""},
                   reader="r1", method="manual ellipse",
                   extra={"plane": {"origin": in_v1[0].tolist(), "normal": normal_v1.tolist()}, "slab_mm": 2.0})
    b = carry_annotation(a, ts, "V2", series_uid="S2", set_name="L4/L5")
    np.testing.assert_allclose(np.array(b.points), in_v2, atol=1e-9)
    np.testing.assert_allclose(b.extra["plane"]["origin"], in_v2[0], atol=1e-9)
    np.testing.assert_allclose(b.extra["plane"]["normal"], np.linalg.inv(m2)[:3, :3] @ [1.0, 0, 0], atol=1e-9)
    assert b.id != a.id and b.visit_id == "V2" and b.series_uid == "S2" and b.level == "L4/L5"
    assert b.values == {} and b.extra["slab_mm"] == 2.0  # values are recomputed on the target image
    assert b.extra["carried_from"] == {"annotation": "roi1", "visit": "V1", "transform_set": "L4/L5",
                                       "method": "registration"}
    assert "carried by registration" in b.method
    # carrying to baseline and back to V1 is the identity
    back = carry_annotation(carry_annotation(a, ts, "V0"), ts, "V1")
    np.testing.assert_allclose(np.array(back.points), in_v1, atol=1e-9)


def test_carry_needs_a_visit():
    with pytest.raises(ValueError, match="no visit"):
        carry_annotation(Annotation(id="x", kind="point", points=((0.0, 0.0, 0.0),)), TransformSet("V0"), "V1")

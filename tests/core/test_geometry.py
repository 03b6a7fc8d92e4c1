import numpy as np
import pytest

from kintsugi.core import Geometry


def rotation(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def test_index_physical_roundtrip_oblique():
    g = Geometry((0.5, 0.8, 2.0), (10, -20, 30), rotation(30))
    idx = np.array([[0, 0, 0], [1, 2, 3], [10.5, 3.25, 7]])
    phys = g.index_to_physical(idx)
    assert np.allclose(phys[0], (10, -20, 30))
    assert np.allclose(g.physical_to_index(phys), idx)
    # Index step along x moves 0.5 mm along the rotated x direction.
    assert np.allclose(phys[1] - phys[0], rotation(30) @ np.array([0.5, 1.6, 6.0]))


def test_array_affine_maps_numpy_order():
    g = Geometry((0.5, 0.8, 2.0), (1, 2, 3))
    a = g.array_affine()
    k, j, i = 4, 5, 6
    assert np.allclose(a @ [k, j, i, 1], [*g.index_to_physical([i, j, k]), 1])


def test_orientation_codes():
    assert Geometry().orientation_code() == "LPS"
    assert Geometry(direction=np.diag([-1, -1, 1])).orientation_code() == "RAS"
    assert Geometry(direction=rotation(45.0)).is_oblique()
    assert not Geometry().is_oblique()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"spacing": (0, 1, 1)}, "spacing"),
        ({"spacing": (1, 1, float("nan"))}, "spacing"),
        ({"origin": (0, 0)}, "origin"),
        ({"direction": np.ones((3, 3))}, "orthonormal"),
    ],
)
def test_invalid_geometry_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Geometry(**kwargs)


def test_dict_roundtrip():
    g = Geometry((0.5, 0.8, 2.0), (10, -20, 30), rotation(10))
    assert Geometry.from_dict(g.to_dict()) == g

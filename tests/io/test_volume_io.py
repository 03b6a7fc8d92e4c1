import numpy as np
import pytest

from kintsugi.core import Geometry, LabelMap, Volume
from kintsugi.io import open_path, read_volume, write_volume


def _oblique_geometry() -> Geometry:
    a = np.deg2rad(25)
    d = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return Geometry((0.6, 0.75, 1.9), (-12.5, 40.25, -300.0), d)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_volume_roundtrip_keeps_exact_geometry(tmp_path, suffix):
    data = np.random.default_rng(0).integers(-1024, 3000, (7, 9, 11)).astype(np.int16)
    v = Volume(name="ct", data=data, geometry=_oblique_geometry(), modality="CT", unit="HU")
    path = write_volume(v, tmp_path / f"ct{suffix}")
    (back,) = open_path(path)
    assert isinstance(back, Volume)
    assert np.array_equal(back.data, data)
    assert np.allclose(back.geometry.spacing, v.geometry.spacing, atol=1e-5)
    assert np.allclose(back.geometry.origin, v.geometry.origin, atol=1e-4)
    assert np.allclose(back.geometry.direction, v.geometry.direction, atol=1e-5)


def test_label_maps_are_recognised_by_content_and_name(tmp_path):
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[2:5, 2:5, 2:5] = 20
    labels[6:8, 6:8, 6:8] = 21
    write_volume(LabelMap(data=labels), tmp_path / "anything.nii.gz")
    assert isinstance(read_volume(tmp_path / "anything.nii.gz"), LabelMap)
    # A smooth integer image with many values is a volume even when it is mostly zero.
    ramp = np.arange(1000, dtype=np.int16).reshape(10, 10, 10)
    write_volume(Volume(data=ramp), tmp_path / "ramp.nii.gz")
    assert isinstance(read_volume(tmp_path / "ramp.nii.gz"), Volume)
    assert isinstance(read_volume(tmp_path / "ramp.nii.gz", as_labels=True), LabelMap)


def test_write_is_atomic_and_refuses_unknown_suffix(tmp_path):
    v = Volume(data=np.zeros((2, 2, 2), np.int16))
    from kintsugi.io import WriteError

    with pytest.raises(WriteError, match=r"\.nii"):
        write_volume(v, tmp_path / "x.vtk")
    write_volume(v, tmp_path / "x.nii.gz")
    assert [p.name for p in tmp_path.iterdir()] == ["x.nii.gz"]  # no temporary file left behind

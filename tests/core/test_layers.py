import numpy as np
import pytest

from kintsugi.core import (
    Fragment,
    Fragments,
    Geometry,
    Image2D,
    LabelMap,
    Mesh,
    PointCloud,
    Provenance,
    Table,
    Volume,
)


def test_volume_validates_and_describes():
    v = Volume(data=np.zeros((4, 5, 6), np.int16), geometry=Geometry((0.5, 0.5, 2)), modality="CT", unit="HU")
    assert v.size_xyz == (6, 5, 4)
    facts = v.describe()
    assert facts["size (x, y, z)"] == "6 x 5 x 4"
    assert "CT" in facts["modality"]
    with pytest.raises(ValueError, match="3D"):
        Volume(data=np.zeros((4, 5)))
    with pytest.raises(ValueError, match="real numbers"):
        Volume(data=np.zeros((2, 2, 2), complex))


def test_labelmap_names_and_colours_every_label():
    data = np.zeros((3, 3, 3), np.uint8)
    data[0, 0, 0], data[1, 1, 1] = 3, 7
    lm = LabelMap(data=data)
    assert lm.present_labels() == [3, 7]
    assert set(lm.labels) == {3, 7}
    assert lm.labels[3].color != lm.labels[7].color
    with pytest.raises(ValueError, match="integers"):
        LabelMap(data=np.full((2, 2, 2), 0.5))


def test_image2d_channels():
    assert Image2D(data=np.zeros((4, 5, 4), np.uint8)).has_alpha
    assert not Image2D(data=np.zeros((4, 5), np.uint16)).is_rgb
    with pytest.raises(ValueError):
        Image2D(data=np.zeros((4, 5, 2)))


def test_mesh_normals_point_outward_for_a_tetrahedron():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    m = Mesh(vertices=v, faces=f)
    centroid = v.mean(0)
    assert np.all(np.einsum("ij,ij->i", m.normals, v - centroid) > 0)
    with pytest.raises(ValueError, match="do not exist"):
        Mesh(vertices=v, faces=[[0, 1, 9]])
    with pytest.raises(ValueError, match="scalar"):
        Mesh(vertices=v, faces=f, scalars={"h": np.zeros(3)})


def test_pointcloud_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        PointCloud(points=[[0, 0, float("nan")]])


def test_fragments_poses_must_be_rigid_and_emit_changes():
    m = Mesh(vertices=np.eye(3), faces=[[0, 1, 2]])
    frags = Fragments(items=[Fragment("a", m), Fragment("b", m)])
    seen = []
    frags.changed.connect(seen.append)
    pose = np.eye(4)
    pose[:3, 3] = (1, 2, 3)
    frags.set_pose("b", pose)
    assert seen == ["pose"]
    assert np.allclose(frags["b"].posed_points(), np.eye(3) + [1, 2, 3])
    with pytest.raises(ValueError, match="rotation"):
        frags.set_pose("a", np.diag([2.0, 1, 1, 1]))
    with pytest.raises(ValueError, match="unique"):
        Fragments(items=[Fragment("a", m), Fragment("a", m)])


def test_table_records_roundtrip(tmp_path):
    t = Table.from_records([{"a": 1, "b": "x"}, {"a": 2}])
    assert t.n_rows == 2 and t.columns["b"] == ["x", None]
    t.to_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "a,b"
    with pytest.raises(ValueError, match="lengths"):
        Table(columns={"a": [1], "b": [1, 2]})


def test_provenance_roundtrip():
    p = Provenance(task="crack.segment", parameters={"k": 1}, device="cpu", duration_s=1.5)
    assert Provenance.from_dict(p.to_dict()) == p


def test_layer_set_validates_and_announces():
    v = Volume(data=np.zeros((2, 2, 2)))
    seen = []
    v.changed.connect(seen.append)
    v.set(opacity=0.3, visible=False)
    assert seen == ["opacity", "visible"]
    with pytest.raises(AttributeError):
        v.set(colour="red")


def test_display_changes_skip_validation_and_bad_changes_leave_the_layer_intact(monkeypatch):
    lm = LabelMap(data=np.zeros((3, 3, 3), np.uint8))
    calls = []
    monkeypatch.setattr(LabelMap, "validate", lambda self: calls.append(1))
    lm.set(opacity=0.5, visible=False, name="seg")
    assert calls == []  # no pass over the data for display state
    monkeypatch.undo()
    with pytest.raises(ValueError, match="opacity"):
        lm.set(opacity=2.0)
    assert lm.opacity == 0.5
    v = Volume(data=np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="3D"):
        v.set(data=np.zeros((2, 2)))
    assert v.data.shape == (2, 2, 2)

import numpy as np
import pytest
import trimesh

from kintsugi.core import Fragments, Mesh, PointCloud
from kintsugi.io import open_path, write_mesh


def _box_mesh() -> Mesh:
    box = trimesh.creation.box(extents=(10, 20, 30))
    return Mesh(name="box", vertices=box.vertices, faces=box.faces)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".stl", ".glb"])
def test_mesh_roundtrip(tmp_path, suffix):
    m = _box_mesh()
    write_mesh(m, tmp_path / f"box{suffix}")
    (back,) = open_path(tmp_path / f"box{suffix}")
    assert isinstance(back, Mesh)
    assert back.n_faces == 12
    assert np.allclose(back.bounds(), m.bounds())


def test_off_mesh(tmp_path):
    trimesh.creation.icosphere(subdivisions=1, radius=5).export(tmp_path / "ball.off")
    (back,) = open_path(tmp_path / "ball.off")
    assert isinstance(back, Mesh) and back.n_faces == 80


def test_ply_without_faces_is_a_point_cloud(tmp_path):
    pts = np.random.default_rng(0).normal(size=(100, 3))
    write_mesh(PointCloud(points=pts), tmp_path / "scan.ply")
    (pc,) = open_path(tmp_path / "scan.ply")
    assert isinstance(pc, PointCloud) and np.allclose(pc.points, pts)


def test_ascii_ply_point_cloud_with_normals(tmp_path):
    lines = ["ply", "format ascii 1.0", "element vertex 3", "property float x", "property float y",
             "property float z", "property float nx", "property float ny", "property float nz", "end_header",
             "0 0 0 0 0 1", "1 0 0 0 0 1", "0 1 0 0 0 1"]
    (tmp_path / "n.ply").write_text("\n".join(lines) + "\n")
    (pc,) = open_path(tmp_path / "n.ply")
    assert isinstance(pc, PointCloud) and pc.normals is not None and np.allclose(pc.normals[:, 2], 1)


def test_glb_with_several_bodies_opens_as_fragments(tmp_path):
    scene = trimesh.Scene()
    t = np.eye(4)
    t[:3, 3] = (50, 0, 0)
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="a")
    scene.add_geometry(trimesh.creation.icosphere(), node_name="b", transform=t)
    scene.export(tmp_path / "pieces.glb")
    (frags,) = open_path(tmp_path / "pieces.glb")
    assert isinstance(frags, Fragments) and len(frags) == 2
    moved = [f for f in frags if not np.allclose(f.pose, np.eye(4))]
    assert len(moved) == 1 and np.allclose(moved[0].pose[:3, 3], (50, 0, 0))


def test_folder_of_pieces_opens_as_one_fragments_layer(tmp_path):
    write_mesh(_box_mesh(), tmp_path / "a.ply")
    write_mesh(PointCloud(points=np.random.default_rng(0).normal(size=(20, 3))), tmp_path / "b.ply")
    trimesh.creation.icosphere().export(tmp_path / "c.obj")
    (tmp_path / "gt.json").write_text('{"fragments": []}')
    (frags,) = open_path(tmp_path)
    assert isinstance(frags, Fragments)
    assert [f.name for f in frags] == ["a", "b", "c"]
    assert isinstance(frags["b"].geometry, PointCloud)


def test_mislabelled_mesh_opens_by_content_and_leaves_no_temporary_files(tmp_path):
    import tempfile
    from pathlib import Path

    write_mesh(_box_mesh(), tmp_path / "box.ply")
    (tmp_path / "box.obj").write_bytes((tmp_path / "box.ply").read_bytes())  # PLY bytes, OBJ name
    before = set(Path(tempfile.gettempdir()).glob("kintsugi-*"))
    (mesh,) = open_path(tmp_path / "box.obj")
    assert isinstance(mesh, Mesh) and mesh.n_faces == 12
    assert mesh.metadata["source"] == str(tmp_path / "box.obj")
    assert "content is PLY" in mesh.metadata["warning"]
    assert set(Path(tempfile.gettempdir()).glob("kintsugi-*")) == before

"""The fractured-object sample: files, determinism and, above all, that the pieces put back by
the ground truth rebuild the unbroken object exactly (the reassembly feature and the learned
model are only as trustworthy as this data)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import manifold3d as m3d
import numpy as np
import pytest
import trimesh

from kintsugi.core import Mesh
from kintsugi.core.layers import check_rigid
from kintsugi.io import read_mesh
from kintsugi.samples import fragments, make_sample

SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "contracts" / "assembly.schema.json"
VOLUME_RTOL = 0.005
FIT_TOL_MM = 1e-3


@functools.cache
def _generated(seed: int, shape: str | None = None, n_pieces: int | None = None) -> fragments.FracturedObject:
    return fragments.generate(seed, n_pieces=n_pieces, shape=shape)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("fragments")
    return out, fragments.make(out, seed=0)


def _solid(vertices: np.ndarray, faces: np.ndarray) -> m3d.Manifold:
    mesh = m3d.Mesh64(vert_properties=np.ascontiguousarray(vertices, dtype=np.float64),
                      tri_verts=np.ascontiguousarray(faces, dtype=np.uint64))
    solid = m3d.Manifold(mesh)
    assert solid.status() == m3d.Error.NoError
    return solid


def _assert_reassembles(original: tuple[np.ndarray, np.ndarray], posed: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Posed pieces are closed, do not overlap, leave no gap, and unite into the original."""
    v0 = _solid(*original).volume()
    volumes = []
    for vertices, faces in posed:
        tm = trimesh.Trimesh(vertices, faces, process=False)
        assert tm.is_watertight and tm.is_winding_consistent
        volumes.append(_solid(vertices, faces).volume())
    assert min(volumes) > 0
    assert sum(volumes) == pytest.approx(v0, rel=VOLUME_RTOL)  # no overlap, no gap
    union = m3d.Manifold.batch_boolean([_solid(v, f) for v, f in posed], m3d.OpType.Add)
    assert union.volume() == pytest.approx(v0, rel=VOLUME_RTOL)
    # Coincident cut surfaces triangulated differently leave zero-volume flat shells in the
    # boolean result; they are numerical dust, not bodies (a void or a loose piece has volume).
    bodies = [c for c in union.decompose() if abs(c.volume()) > 1e-6 * v0]
    assert len(bodies) == 1
    body = bodies[0].to_mesh64()
    tm = trimesh.Trimesh(np.asarray(body.vert_properties)[:, :3], np.asarray(body.tri_verts), process=False)
    assert tm.is_watertight


def _fit_distances(points: np.ndarray, others: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Distance from each point to the nearest fracture face of the other pieces."""
    vertices, faces, offset = [], [], 0
    for v, f in others:
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    target = trimesh.Trimesh(np.concatenate(vertices), np.concatenate(faces), process=False)
    _, distance, _ = trimesh.proximity.closest_point(target, points)
    return distance


def _plane_rms(points: np.ndarray) -> float:
    centred = points - points.mean(axis=0)
    return float(np.linalg.svd(centred, compute_uv=False)[-1] / np.sqrt(len(points)))


# ------------------------------------------------------------------------------------------------
# files


def test_module_contract() -> None:
    assert fragments.NAME == "fragments"
    assert fragments.TITLE and fragments.DESCRIPTION


def test_make_writes_pieces_and_ground_truth_only(written: tuple[Path, list[Path]]) -> None:
    out, files = written
    obj = _generated(0)
    names = [f"piece_{i:02d}.ply" for i in range(obj.n_pieces)]
    assert [p.name for p in files] == [*names, "gt.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "gt.json"])  # nothing else
    gt = json.loads((out / "gt.json").read_text())
    assert gt["seed"] == 0 and gt["shape"] == obj.shape and gt["units"] == "mm"
    assert gt["n_pieces"] == obj.n_pieces == len(gt["fragments"])
    assert [f["file"] for f in gt["fragments"]] == names
    for entry, piece in zip(gt["fragments"], obj.pieces, strict=True):
        np.testing.assert_array_equal(check_rigid(entry["transform"]), piece.transform)


def test_ground_truth_validates_against_contract(written: tuple[Path, list[Path]]) -> None:
    if not SCHEMA.exists():
        pytest.skip(f"contract not found at {SCHEMA}")
    jsonschema = pytest.importorskip("jsonschema")
    gt = json.loads((written[0] / "gt.json").read_text())
    jsonschema.validate(gt, json.loads(SCHEMA.read_text()))


def test_read_back_gives_meshes_without_the_answer(written: tuple[Path, list[Path]]) -> None:
    out, files = written
    obj = _generated(0)
    for path, piece in zip(files[:-1], obj.pieces, strict=True):
        layers = read_mesh(path)
        assert len(layers) == 1 and isinstance(layers[0], Mesh)
        mesh = layers[0]
        np.testing.assert_array_equal(mesh.faces, piece.faces)
        np.testing.assert_allclose(mesh.vertices, piece.vertices, atol=1e-3)  # PLY stores float32
        assert mesh.scalars == {}  # the fracture mask must not leak into the files
        header = path.read_bytes()[:1024].split(b"end_header")[0].decode("ascii")
        assert "fracture" not in header and "cut" not in header


def test_make_sample_entry_point(tmp_path: Path, written: tuple[Path, list[Path]]) -> None:
    files = make_sample("fragments", tmp_path / "new", seed=0)
    assert [p.read_bytes() for p in files] == [p.read_bytes() for p in written[1]]


# ------------------------------------------------------------------------------------------------
# determinism and parameters


def test_same_seed_same_object_different_seed_different() -> None:
    a, b = fragments.generate(0), _generated(0)
    assert a.shape == b.shape and a.n_pieces == b.n_pieces
    for pa, pb in zip(a.pieces, b.pieces, strict=True):
        np.testing.assert_array_equal(pa.vertices, pb.vertices)
        np.testing.assert_array_equal(pa.faces, pb.faces)
        np.testing.assert_array_equal(pa.transform, pb.transform)
        np.testing.assert_array_equal(pa.fracture_faces, pb.fracture_faces)
    c = _generated(1)
    differs = (c.shape != a.shape or c.n_pieces != a.n_pieces
               or not np.array_equal(c.pieces[0].vertices, a.pieces[0].vertices))
    assert differs


def test_piece_count_in_range_and_parameter_honoured() -> None:
    counts = [_generated(seed).n_pieces for seed in range(6)]
    assert all(fragments.MIN_PIECES <= n <= fragments.MAX_PIECES for n in counts)
    assert len(set(counts)) > 1
    assert {_generated(seed).shape for seed in range(6)} <= set(fragments.SHAPES)
    assert _generated(2, n_pieces=3).n_pieces == 3
    assert _generated(2, shape="bone", n_pieces=12).n_pieces == 12


def test_choosing_shape_keeps_the_other_draws() -> None:
    drawn = _generated(0)
    chosen = _generated(0, shape=drawn.shape)
    for a, b in zip(drawn.pieces, chosen.pieces, strict=True):
        np.testing.assert_array_equal(a.vertices, b.vertices)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="n_pieces"):
        fragments.generate(0, n_pieces=2)
    with pytest.raises(ValueError, match="shape"):
        fragments.generate(0, shape="teapot")


def test_pieces_are_scattered_apart_by_rigid_poses() -> None:
    obj = _generated(0)
    centres = [p.vertices.mean(axis=0) for p in obj.pieces]
    radii = [np.linalg.norm(p.vertices - c, axis=1).max() for p, c in zip(obj.pieces, centres, strict=True)]
    for i in range(obj.n_pieces):
        check_rigid(obj.pieces[i].transform)
        assert not np.allclose(obj.pieces[i].transform, np.eye(4))
        for j in range(i):
            assert np.linalg.norm(centres[i] - centres[j]) > radii[i] + radii[j]  # no overlap in files


# ------------------------------------------------------------------------------------------------
# the key acceptance test: the ground truth puts the pieces back into the original


@pytest.mark.parametrize("shape", fragments.SHAPES)
def test_ground_truth_reassembles_the_object(shape: str) -> None:
    obj = _generated(1, shape=shape)
    posed = [(p.assembled_vertices(), p.faces) for p in obj.pieces]
    _assert_reassembles((obj.vertices, obj.faces), posed)

    original = trimesh.Trimesh(obj.vertices, obj.faces, process=False)
    for i, piece in enumerate(obj.pieces):
        vertices = posed[i][0]
        assert piece.fracture_faces.any() and not piece.fracture_faces.all()
        np.testing.assert_array_equal(piece.fracture_faces, piece.face_cut >= 0)
        expected = np.zeros(len(vertices), dtype=bool)
        expected[piece.faces[piece.fracture_faces].ravel()] = True
        np.testing.assert_array_equal(piece.fracture_vertices, expected)

        # fracture surfaces fit: every fracture vertex (and face centre) lies on another piece
        triangles = vertices[piece.faces]
        points = np.concatenate([vertices[piece.fracture_vertices],
                                 triangles[piece.fracture_faces].mean(axis=1)])
        others = [(posed[j][0], q.faces[q.fracture_faces]) for j, q in enumerate(obj.pieces) if j != i]
        assert _fit_distances(points, others).max() < FIT_TOL_MM

        # ... and the rest is the unbroken surface, so the mask is exact both ways
        centres = triangles[~piece.fracture_faces].mean(axis=1)
        _, distance, _ = trimesh.proximity.closest_point(original, centres)
        assert distance.max() < 1e-6

        # the breaks are rough, not planar: some cut of each piece is far from its best plane
        rms = [_plane_rms(vertices[np.unique(piece.faces[piece.face_cut == k])])
               for k in np.unique(piece.face_cut[piece.face_cut >= 0])]
        assert max(rms) > 0.5


def test_files_and_ground_truth_reassemble(written: tuple[Path, list[Path]]) -> None:
    """End to end as a user sees it: read the PLY files, apply gt.json, get the object back."""
    out, _ = written
    obj = _generated(0)
    gt = json.loads((out / "gt.json").read_text())
    posed = []
    for entry in gt["fragments"]:
        mesh = read_mesh(out / entry["file"])[0]
        t = np.asarray(entry["transform"])
        posed.append((mesh.vertices @ t[:3, :3].T + t[:3, 3], mesh.faces))
    _assert_reassembles((obj.vertices, obj.faces), posed)
    for i, piece in enumerate(obj.pieces):
        others = [(posed[j][0], q.faces[q.fracture_faces]) for j, q in enumerate(obj.pieces) if j != i]
        assert _fit_distances(posed[i][0][piece.fracture_vertices], others).max() < FIT_TOL_MM

"""The review steps an expert takes on an assembly: animate, nudge, lock + refine, export."""

import json
from pathlib import Path

import numpy as np
import pytest

from kintsugi.core import Fragment, Fragments
from kintsugi.io import open_path
from kintsugi.samples import make_sample
from kintsugi_reassembly.review import (
    assembled_mesh,
    export_transforms,
    interpolate_poses,
    meshlab_matrix,
    nudge,
    parse_locks,
    piece_centre,
    refine_with_locks,
)


def _rot(deg: float, axis: int = 2) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz"[axis], deg, degrees=True).as_matrix()
    return m


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    """The fragment sample with its ground-truth poses: a correct assembly to perturb."""
    folder = tmp_path_factory.mktemp("frag")
    make_sample("fragments", folder)
    (layer,) = open_path(folder)
    gt = {r["file"]: np.array(r["transform"]) for r in json.loads((folder / "gt.json").read_text())["fragments"]}
    for frag in layer:
        frag.pose = gt[Path(frag.source).name]
    return layer


def test_interpolation_ends_at_both_poses_and_stays_rigid():
    a, b = [np.eye(4)], [_rot(90)]
    b[0][:3, 3] = (10, 0, 0)
    assert np.allclose(interpolate_poses(a, b, 0)[0], a[0])
    assert np.allclose(interpolate_poses(a, b, 1)[0], b[0])
    mid = interpolate_poses(a, b, 0.5)[0]
    assert np.allclose(mid[:3, :3] @ mid[:3, :3].T, np.eye(3)) and np.allclose(mid[:3, 3], (5, 0, 0))
    assert np.allclose(mid[:3, :3], _rot(45)[:3, :3])


def test_nudge_rotates_about_the_piece_centre():
    moved = nudge(np.eye(4), (1, 2, 3), (0, 0, 90), centre=np.array([10.0, 0, 0]))
    assert np.allclose(moved[:3, :3], _rot(90)[:3, :3])
    assert np.allclose(moved @ np.array([10.0, 0, 0, 1]), (11, 2, 3, 1))  # the centre only shifts


def test_locks_parse_by_name_or_index_with_clear_errors():
    names = ["a", "b", "c"]
    assert parse_locks("a-b, 2:0", names) == [(0, 1), (2, 0)]
    assert parse_locks("", names) == []
    with pytest.raises(ValueError, match="no piece named 'x'"):
        parse_locks("a-x", names)
    with pytest.raises(ValueError, match="itself"):
        parse_locks("a-a", names)


def test_refine_brings_a_displaced_piece_back_and_keeps_locked_pairs(assembled):
    truth = [f.pose.copy() for f in assembled]
    names = [f.name for f in assembled]
    moved = max(range(len(truth)), key=lambda k: len(assembled[k].posed_points()) if k else 0)
    frag = assembled[moved]
    size = np.ptp(np.concatenate([f.posed_points() for f in assembled]), axis=0).max()
    bad = nudge(truth[moved], (0.01 * size, -0.01 * size, 0.0), (2.0, 0.0, -2.0), piece_centre(frag))
    items = [Fragment(f.name, f.geometry, bad if k == moved else truth[k], source=f.source)
             for k, f in enumerate(assembled)]
    layer = Fragments(name="pot", items=items)
    other = (moved + 1) % len(items)
    locks = [(other, (other + 1) % len(items))]  # two correctly placed pieces the expert confirmed
    poses = refine_with_locks(layer, locks)
    err = np.linalg.norm(poses[moved][:3, 3] - truth[moved][:3, 3]) / size
    err_before = np.linalg.norm(bad[:3, 3] - truth[moved][:3, 3]) / size
    assert err < err_before / 2, f"{names[moved]}: {err_before:.4f} -> {err:.4f} of the object size"
    a, b = locks[0]
    rel_before = np.linalg.inv(truth[a]) @ truth[b]
    rel_after = np.linalg.inv(poses[a]) @ poses[b]
    assert np.allclose(rel_before, rel_after, atol=1e-6)  # a locked pair moves as one body


def test_export_transforms_and_assembled_mesh(assembled, tmp_path):
    written = export_transforms(assembled, tmp_path / "out")
    doc = json.loads(written[0].read_text())
    assert len(doc["fragments"]) == len(assembled)
    assert np.allclose(doc["fragments"][0]["transform"], assembled[0].pose)
    m = np.loadtxt(written[1])
    assert m.shape == (4, 4) and np.allclose(m, assembled[0].pose)
    assert meshlab_matrix(np.eye(4)).splitlines()[0] == "1 0 0 0"
    mesh = assembled_mesh(assembled)
    assert mesh.n_faces == sum(f.geometry.n_faces for f in assembled)

"""Reassembly building blocks: rigid maths, GARF metrics, normals of faceless scans, the flow sampler."""

from __future__ import annotations

import numpy as np
import pytest


def test_kabsch_and_so3_round_trip():
    from kintsugi_reassembly import se3

    rng = np.random.default_rng(0)
    r = se3.exp_so3(rng.normal(size=3))
    t = rng.normal(size=3)
    src = rng.normal(size=(3, 12, 3))
    m = se3.kabsch_batch(src, src @ r.T + t)
    assert np.allclose(m[:, :3, :3], r, atol=1e-9) and np.allclose(m[:, :3, 3], t, atol=1e-9)
    assert np.allclose(se3.exp_so3(se3.log_so3(r)), r, atol=1e-9)


def test_metrics_zero_for_truth_and_anchor_invariant():
    from kintsugi_reassembly import se3
    from kintsugi_reassembly.metrics import evaluate

    rng = np.random.default_rng(1)
    pts = [rng.normal(size=(200, 3)) + k for k in range(3)]
    gt = [se3.make(se3.exp_so3(rng.normal(size=3)), rng.normal(size=3)) for _ in range(3)]
    shift = se3.make(se3.exp_so3(rng.normal(size=3)), rng.normal(size=3))
    m = evaluate([shift @ g for g in gt], gt, pts, anchor=0)  # same assembly, other frame: no error
    assert m["part_accuracy"] == 1.0 and m["rmse_r_deg"] < 1e-6 and m["chamfer"] < 1e-12
    wrong = [g.copy() for g in gt]
    wrong[2] = wrong[2] @ se3.make(se3.exp_so3(np.array([0, 0, np.pi / 2])), np.zeros(3))
    w = evaluate(wrong, gt, pts, anchor=0)
    assert w["part_accuracy"] == pytest.approx(2 / 3) and w["geodesic_r_deg"] == pytest.approx(30.0, abs=1e-6)


def test_point_cloud_normals_point_outward():
    from kintsugi_reassembly.prep import estimate_normals

    rng = np.random.default_rng(2)
    p = rng.normal(size=(800, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    n = estimate_normals(p * 5.0)
    assert np.mean(np.einsum("ij,ij->i", n, p) > 0.9) > 0.95


def test_flow_sampler_keeps_anchor_and_returns_rotations():
    torch = pytest.importorskip("torch")
    from kintsugi_reassembly import flow

    torch.manual_seed(0)
    model = flow.build_model(width=32, layers=1, heads=2)
    model.eval()
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(4, flow.N_POINTS, 7)).astype(np.float32)
    out = flow.sample_poses(model, inputs, np.ones(4), anchor=1, n_samples=2, steps=3)
    assert out.shape == (2, 4, 4, 4)
    assert np.allclose(out[:, 1], np.eye(4), atol=1e-6)
    r = out[..., :3, :3]
    assert np.allclose(np.einsum("spji,spjk->spik", r, r), np.eye(3), atol=1e-4)


def test_huge_meshes_are_decimated_with_a_notice(monkeypatch):
    import trimesh

    from kintsugi.core import Fragment, Fragments, Mesh
    from kintsugi_reassembly import prep

    monkeypatch.setattr(prep, "MAX_FACES", 1000)
    items = []
    for k in range(2):
        s = trimesh.creation.icosphere(subdivisions=4, radius=10.0)  # 5120 faces
        items.append(Fragment(f"s{k}", Mesh(name=f"s{k}", vertices=np.asarray(s.vertices) + 30 * k,
                                            faces=np.asarray(s.faces))))
    out = prep.prepare(Fragments(items=items), points_total=2000)
    assert len(out.notices) == 2 and "decimated" in out.notices[0]
    assert all(len(p.faces) <= 1100 for p in out.parts)


def test_clouds_without_normals_get_a_notice_and_clouds_with_normals_do_not():
    import trimesh

    from kintsugi.core import Fragment, Fragments, PointCloud
    from kintsugi_reassembly import prep

    def clouds(with_normals: bool) -> Fragments:
        items = []
        for k in range(2):
            s = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
            pts = np.asarray(s.vertices) + 30 * k
            normals = np.asarray(s.vertex_normals) if with_normals else None
            items.append(Fragment(f"c{k}", PointCloud(name=f"c{k}", points=pts, normals=normals)))
        return Fragments(items=items)

    out = prep.prepare(clouds(False), points_total=2000)
    assert len(out.notices) == 1 and "2 point cloud(s) without normals" in out.notices[0]
    assert "'c0', 'c1'" in out.notices[0]
    assert prep.prepare(clouds(True), points_total=2000).notices == []

"""Reassembly search: point-pair-feature voting, loop support, rim-aware ranking, open-break union,
and the subtree local search on the whole assembly's score."""

from __future__ import annotations

import numpy as np
import pytest


def _rough_patch(rng: np.random.Generator, n: int = 700) -> tuple[np.ndarray, np.ndarray]:
    """A rough height field z = f(x, y) with its analytic upward normals (a break's relief)."""
    xy = rng.uniform(-1, 1, size=(n, 2))
    k = rng.normal(size=(6, 2)) * 3.0
    amp, ph = rng.uniform(0.03, 0.08, 6), rng.uniform(0, 2 * np.pi, 6)
    arg = xy @ k.T + ph
    z = np.sin(arg) @ amp
    grad = (np.cos(arg) * amp) @ k  # dz/dx, dz/dy
    nrm = np.concatenate([-grad, np.ones((n, 1))], axis=1)
    return np.concatenate([xy, z[:, None]], axis=1), nrm / np.linalg.norm(nrm, axis=1, keepdims=True)


def test_ppf_vote_finds_the_pose_of_the_facing_half():
    from kintsugi_reassembly import ppf, se3

    rng = np.random.default_rng(3)
    pts, nrm = _rough_patch(rng)
    true = se3.make(se3.exp_so3(np.array([0.7, -1.1, 2.0])), np.array([0.4, -0.2, 1.5]))
    # the other half of the break: the same surface, facing the other way, scrambled by inv(true)
    other = rng.permutation(len(pts))[:400]
    scene_p = se3.apply(se3.inv(true), pts[other])
    scene_n = se3.rotate(se3.inv(true), -nrm[other])
    step = 0.08
    model = ppf.build_model(pts[:400], nrm[:400], step, np.inf)
    poses = ppf.vote(model, scene_p, scene_n, step, np.inf, rng, n_refs=40, top=5)
    assert poses, "no pose voted"
    errs = [(se3.angle_deg(m[:3, :3], true[:3, :3]), np.linalg.norm(m[:3, 3] - true[:3, 3])) for _, m in poses]
    assert min(e[0] for e in errs[:3]) < 15.0 and min(e[1] for e in errs[:3]) < 0.3


def test_ppf_rotation_to_x_axis_handles_all_directions():
    from kintsugi_reassembly.ppf import _to_x

    n = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0.3, -0.4, 0.866]])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    r = _to_x(n)
    assert np.allclose(np.einsum("kij,kj->ki", r, n), [1, 0, 0], atol=1e-9)
    assert np.allclose(np.linalg.det(r), 1.0) and np.allclose(r @ np.transpose(r, (0, 2, 1)), np.eye(3), atol=1e-9)


class _G:
    """The little of a Geo that loop_support reads."""

    def __init__(self, centre):
        self.centre = np.asarray(centre, float)


def test_loop_support_counts_consistent_triangles_only():
    from kintsugi_reassembly import se3
    from kintsugi_reassembly.geometric import Candidate, loop_support, priority

    rng = np.random.default_rng(0)
    pose = [se3.make(se3.exp_so3(rng.normal(size=3)), rng.normal(size=3)) for _ in range(3)]
    rel = lambda i, j: se3.inv(pose[i]) @ pose[j]  # noqa: E731
    good = [Candidate(0, 1, rel(0, 1), 1.0, 1.0, 0.0), Candidate(1, 2, rel(1, 2), 1.0, 1.0, 0.0),
            Candidate(0, 2, rel(0, 2), 1.0, 1.0, 0.0)]
    wrong = Candidate(0, 2, rel(0, 2) @ se3.make(se3.exp_so3(np.array([0, 0, 0.6])), np.zeros(3)), 2.0, 2.0, 0.0)
    cands = [*good, wrong]
    cands += [Candidate(c.j, c.i, se3.inv(c.transform), c.score, c.contact, c.penetration) for c in list(cands)]
    loop_support([_G(np.zeros(3))] * 3, cands, h=0.01)
    assert all(c.loops == 1 for c in cands if c is not wrong and c.score == 1.0)
    assert wrong.loops == 0
    # a closed loop lifts a weaker candidate above a stronger lone one
    assert priority(good[2]) > priority(Candidate(0, 2, wrong.transform, 1.2, 1.2, 0.0))


@pytest.fixture(scope="module")
def small_object():
    """A 4-piece object prepared and segmented with the generator's exact fracture labels (these
    tests are about the search, so they must not move with the classifier), true poses in
    normalised units."""
    from kintsugi_reassembly import data, geometric, se3
    from kintsugi_reassembly.pipeline import segment_parts
    from kintsugi_reassembly.prep import prepare

    obj = data.generate(500_123, n_pieces=4, shape="bowl")
    sample = data.to_sample(obj, rng=np.random.default_rng(0))
    prep = prepare(sample.fragments, points_total=6000, seed=0)
    exact = [piece.fracture_faces[part.extra["face"]].astype(np.float32)
             for part, piece in zip(prep.parts, obj.pieces, strict=True)]
    segment_parts(prep, np.random.default_rng(0), probs=exact)
    geos = geometric.to_geo(prep.parts)
    h = geometric.spacing(geos)
    gt = [se3.make(g[:3, :3], g[:3, 3] / prep.scale) for g in sample.gt]
    anchor = int(np.argmax([p.area for p in prep.parts]))
    poses = {k: se3.inv(gt[anchor]) @ gt[k] for k in range(len(gt))}
    return geos, h, poses, anchor


def test_open_union_drops_mated_break_samples(small_object):
    from kintsugi_reassembly.geometric import _union

    geos, h, poses, _ = small_object
    full = _union(geos, poses)
    open_ = _union(geos, poses, h, open_only=True)
    assert len(open_.fp) < 0.8 * len(full.fp)  # in the true assembly most of every break is mated
    assert len(open_.pts) == len(full.pts)  # the whole surface stays for overlap tests


def test_true_pose_has_rim_agreement_and_improve_restores_a_moved_piece(small_object):
    from kintsugi_reassembly import se3
    from kintsugi_reassembly.geometric import Candidate, assembly_score, improve, rim_agreement

    geos, h, poses, anchor = small_object
    j = next(k for k in poses if k != anchor)
    rel = se3.inv(poses[anchor]) @ poses[j]
    wrong = rel @ se3.make(se3.exp_so3(np.array([0.0, 0.9, 0.0])), np.zeros(3))
    assert rim_agreement(geos[anchor], geos[j], rel) > rim_agreement(geos[anchor], geos[j], wrong)
    bad = dict(poses)
    bad[j] = poses[anchor] @ wrong
    cands = [Candidate(anchor, j, rel, 1.0, 1.0, 0.0), Candidate(anchor, j, wrong, 1.0, 1.0, 0.0)]
    parents = {k: anchor for k in poses if k != anchor}
    fixed = improve(geos, bad, cands, parents, anchor, h)
    assert assembly_score(geos, fixed, h)["score"] > assembly_score(geos, bad, h)["score"]
    assert se3.angle_deg(fixed[j][:3, :3], poses[j][:3, :3]) < 1.0

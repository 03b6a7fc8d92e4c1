"""Rim-frame pose hypotheses (rim.py): one rim-point correspondence fixes a pair pose, and the
true pose of a broken slab is among the best-voted clusters."""

from __future__ import annotations

import numpy as np


def _half_slab(rng: np.random.Generator, side: float, n_face: int = 1500, n_break: int = 600):
    """Half of a 2 x 1 x 0.2 slab broken at x ~ 0 by a gently waving surface.

    Returns (original points, normals, fracture points, normals); ``side`` -1 keeps x < 0."""
    relief = lambda y, z: 0.04 * np.sin(5 * y + 1.0) + 0.03 * np.sin(9 * z - 4 * y)  # noqa: E731
    xy = np.stack([rng.uniform(0, 1, n_face) * side, rng.uniform(-0.5, 0.5, n_face)], 1)
    top = rng.random(n_face) < 0.5
    z = np.where(top, 0.1, -0.1)
    face_p = np.stack([xy[:, 0], xy[:, 1], z], 1)
    face_n = np.zeros_like(face_p)
    face_n[:, 2] = np.where(top, 1.0, -1.0)
    keep = side * (face_p[:, 0] - relief(face_p[:, 1], face_p[:, 2])) > 0
    face_p, face_n = face_p[keep], face_n[keep]
    y, zb = rng.uniform(-0.5, 0.5, n_break), rng.uniform(-0.1, 0.1, n_break)
    br = np.stack([relief(y, zb), y, zb], 1)
    e = 1e-4
    gy = (relief(y + e, zb) - relief(y - e, zb)) / (2 * e)
    gz = (relief(y, zb + e) - relief(y, zb - e)) / (2 * e)
    bn = np.stack([np.ones_like(y), -gy, -gz], 1) * -side  # outward: away from the kept half
    bn /= np.linalg.norm(bn, axis=1, keepdims=True)
    return face_p, face_n, br, bn


def _frames(face_p, face_n, br, bn, hs):
    from scipy.spatial import cKDTree

    from kintsugi_reassembly import rim

    d, _ = cKDTree(br).query(face_p, distance_upper_bound=2 * hs)
    ring = np.isfinite(d)
    return rim.rim_frames(face_p[ring], face_n[ring], face_p, face_n, br, bn, hs)


def test_rim_hypotheses_recover_a_broken_slab():
    from kintsugi_reassembly import rim, se3

    rng = np.random.default_rng(5)
    hs = 0.035
    a = _half_slab(rng, -1.0)
    b = _half_slab(rng, 1.0)
    true = se3.make(se3.exp_so3(np.array([0.4, 1.3, -0.8])), np.array([0.3, -0.7, 0.2]))
    # b arrives scrambled: its points in its own frame are inv(true) of the assembled ones
    bm = (se3.apply(se3.inv(true), b[0]), se3.rotate(se3.inv(true), b[1]),
          se3.apply(se3.inv(true), b[2]), se3.rotate(se3.inv(true), b[3]))
    ra, rb = _frames(*a, hs), _frames(*bm, hs)
    assert ra is not None and rb is not None and len(ra.pts) > 20
    # frames sit on the rim: within a fraction of the spacing of the slab's two edges z = +-0.1
    assert np.median(np.abs(np.abs(ra.pts[:, 2]) - 0.1)) < 0.5 * hs
    centre = bm[0].mean(0)
    poses = rim.hypotheses(ra, rb, centre, h=0.02)
    assert poses
    err = [(se3.angle_deg(m[:3, :3], true[:3, :3]),
            float(np.linalg.norm(se3.apply(m, centre[None]) - se3.apply(true, centre[None])))) for m in poses[:5]]
    assert any(r < 10.0 and t < 0.1 for r, t in err), err


def test_rim_frames_refuse_pieces_without_a_rim():
    from kintsugi_reassembly import rim

    p = np.random.default_rng(0).normal(size=(50, 3))
    n = p / np.linalg.norm(p, axis=1, keepdims=True)
    assert rim.rim_frames(p[:2], n[:2], p, n, p, n, 0.1) is None

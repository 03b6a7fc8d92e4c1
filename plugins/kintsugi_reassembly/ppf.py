"""Point-pair-feature voting (Drost et al. 2010) for pose hypotheses between two fracture surfaces.

Why: descriptors of a whole neighbourhood (FPFH) straddle several breaks on a piece with many
neighbours, so the few correct descriptor matches drown. A point pair feature only looks at two
oriented points, and voting over (model point, rotation about its normal) for every scene
reference point finds the shared patch even when it is a third of each break. Two halves of a
break face each other, so the moved piece's normals are flipped before features are formed.

Everything is dense numpy: features hashed to integers, matched by sorted search, votes
accumulated with bincount.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANGLE_BINS = 15  # 12 degrees
ALPHA_BINS = 30


@dataclass(eq=False)
class PPFModel:
    """All point pairs of one piece's break samples, sorted by feature key."""

    pts: np.ndarray
    nrm: np.ndarray
    rot: np.ndarray  # (N, 3, 3): takes each point's normal to +x
    keys: np.ndarray  # sorted feature keys of pairs (r, i)
    ref: np.ndarray  # reference point of each sorted pair
    alpha: np.ndarray  # angle of the pair's second point about the reference normal


def _to_x(n: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations taking unit vectors n onto +x (Rodrigues, n ~ -x handled)."""
    x = np.array([1.0, 0.0, 0.0])
    v = np.cross(n, x)
    c = n @ x
    s = np.linalg.norm(v, axis=1)
    k = v / np.maximum(s, 1e-12)[:, None]
    anti = (s < 1e-8) & (c < 0)
    k[anti] = [0.0, 0.0, 1.0]
    kx = np.zeros((len(n), 3, 3))
    kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    kx[:, 1, 0], kx[:, 2, 0], kx[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    ang = np.arctan2(s, c)
    ang[anti] = np.pi
    eye = np.eye(3)[None]
    return eye + np.sin(ang)[:, None, None] * kx + (1 - np.cos(ang))[:, None, None] * (kx @ kx)


def _features(p: np.ndarray, n: np.ndarray, rot: np.ndarray, refs: np.ndarray, step: float,
              d_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys, reference index and alpha of pairs (refs x all points), pairs longer than d_max dropped."""
    d = p[None, :, :] - p[refs, None, :]  # (R, N, 3)
    dist = np.linalg.norm(d, axis=2)
    ok = (dist > 1.5 * step) & (dist < d_max)
    r_idx, i_idx = np.nonzero(ok)
    dv = d[r_idx, i_idx] / dist[r_idx, i_idx, None]
    nr, ni = n[refs[r_idx]], n[i_idx]
    q = lambda x: np.clip((np.arccos(np.clip(x, -1, 1)) / np.pi * ANGLE_BINS).astype(np.int64), 0, ANGLE_BINS - 1)  # noqa: E731
    f1 = q(np.einsum("ij,ij->i", nr, dv))
    f2 = q(np.einsum("ij,ij->i", ni, dv))
    f3 = q(np.einsum("ij,ij->i", nr, ni))
    fd = (dist[r_idx, i_idx] / step).astype(np.int64)
    keys = ((fd * ANGLE_BINS + f1) * ANGLE_BINS + f2) * ANGLE_BINS + f3
    local = np.einsum("kij,kj->ki", rot[refs[r_idx]], d[r_idx, i_idx])
    alpha = np.arctan2(local[:, 2], local[:, 1])
    return keys, refs[r_idx], alpha


def build_model(pts: np.ndarray, nrm: np.ndarray, step: float, d_max: float) -> PPFModel:
    rot = _to_x(nrm)
    keys, ref, alpha = _features(pts, nrm, rot, np.arange(len(pts)), step, d_max)
    order = np.argsort(keys, kind="stable")
    return PPFModel(pts, nrm, rot, keys[order], ref[order], alpha[order])


def vote(model: PPFModel, pts: np.ndarray, nrm: np.ndarray, step: float, d_max: float,
         rng: np.random.Generator, n_refs: int = 60, top: int = 40,
         cluster_deg: float = 12.0, cluster_dist: float | None = None) -> list[tuple[int, np.ndarray]]:
    """Poses (scene -> model frame) with their vote counts, best first; scene normals are flipped here."""
    if len(pts) < 4 or len(model.pts) < 4:
        return []
    cluster_dist = 3 * step if cluster_dist is None else cluster_dist
    sn = -nrm
    srot = _to_x(sn)
    refs = rng.permutation(len(pts))[: min(n_refs, len(pts))]
    keys, sref, salpha = _features(pts, sn, srot, refs, step, d_max)
    lo = np.searchsorted(model.keys, keys, "left")
    hi = np.searchsorted(model.keys, keys, "right")
    cnt = hi - lo
    total = int(cnt.sum())
    if total == 0:
        return []
    which = np.repeat(np.arange(len(keys)), cnt)
    offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    mi = lo[which] + offs
    theta = model.alpha[mi] - salpha[which]
    abin = ((theta + np.pi) / (2 * np.pi) * ALPHA_BINS).astype(np.int64) % ALPHA_BINS
    ref_pos = np.empty(len(pts), np.int64)
    ref_pos[refs] = np.arange(len(refs))
    nm = len(model.pts)
    flat = (ref_pos[sref[which]] * nm + model.ref[mi]) * ALPHA_BINS + abin
    acc = np.bincount(flat, minlength=len(refs) * nm * ALPHA_BINS)
    raw = int(min(len(acc), 8 * top))
    best = np.argpartition(-acc, raw - 1)[:raw]
    best = best[np.argsort(-acc[best])]
    best = best[acc[best] >= 3]
    if len(best) == 0:
        return []
    r_pos, rest = np.divmod(best, nm * ALPHA_BINS)
    m_r, a_b = np.divmod(rest, ALPHA_BINS)
    s_r = refs[r_pos]
    th = (a_b + 0.5) / ALPHA_BINS * 2 * np.pi - np.pi
    c, s = np.cos(th), np.sin(th)
    rx = np.zeros((len(best), 3, 3))
    rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = 1, c, -s, s, c
    rots = np.transpose(model.rot[m_r], (0, 2, 1)) @ rx @ srot[s_r]
    trans = model.pts[m_r] - np.einsum("kij,kj->ki", rots, pts[s_r])
    votes = acc[best].astype(float)
    # cluster: one correct pose is voted for by every scene reference point on the shared patch
    centre = pts.mean(0)
    moved_c = np.einsum("kij,j->ki", rots, centre) + trans
    used = np.zeros(len(best), bool)
    out: list[tuple[int, np.ndarray]] = []
    for k in range(len(best)):
        if used[k]:
            continue
        cos = (np.einsum("kij,ij->k", rots, rots[k]) - 1) / 2
        near = (~used) & (cos > np.cos(np.radians(cluster_deg))) & \
            (np.linalg.norm(moved_c - moved_c[k], axis=1) < cluster_dist)
        used |= near
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = rots[k], trans[k]
        out.append((int(votes[near].sum()), m))
    out.sort(key=lambda v: -v[0])
    return out[:top]

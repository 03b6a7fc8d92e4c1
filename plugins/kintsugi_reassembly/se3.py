"""Small rigid-transform helpers (numpy): Kabsch, exp/log on SO(3), 4x4 composition."""

from __future__ import annotations

import numpy as np

_EYE3 = np.eye(3)


def make(r: np.ndarray, t: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, t
    return m


def apply(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p @ m[:3, :3].T + m[:3, 3]


def rotate(m: np.ndarray, n: np.ndarray) -> np.ndarray:
    return n @ m[:3, :3].T


def inv(m: np.ndarray) -> np.ndarray:
    r, t = m[:3, :3], m[:3, 3]
    return make(r.T, -r.T @ t)


def kabsch(src: np.ndarray, dst: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Best rigid transform (4x4) taking src onto dst in the (weighted) least-squares sense."""
    w = np.ones(len(src)) if w is None else w
    w = w / w.sum()
    cs, cd = w @ src, w @ dst
    h = (src - cs).T @ ((dst - cd) * w[:, None])
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1, 1, d]) @ u.T
    return make(r, cd - r @ cs)


def kabsch_batch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(B, 4, 4) from (B, K, 3) correspondences, unweighted."""
    cs, cd = src.mean(1), dst.mean(1)
    h = np.einsum("bki,bkj->bij", src - cs[:, None], dst - cd[:, None])
    u, _, vt = np.linalg.svd(h)
    v, ut = np.transpose(vt, (0, 2, 1)), np.transpose(u, (0, 2, 1))
    d = np.sign(np.linalg.det(v @ ut))
    dm = np.tile(np.eye(3), (len(src), 1, 1))
    dm[:, 2, 2] = d
    r = v @ dm @ ut
    out = np.tile(np.eye(4), (len(src), 1, 1))
    out[:, :3, :3] = r
    out[:, :3, 3] = cd - np.einsum("bij,bj->bi", r, cs)
    return out


def exp_so3(w: np.ndarray) -> np.ndarray:
    """Rodrigues: axis-angle (..., 3) -> rotation (..., 3, 3)."""
    if w.ndim == 1:  # one vector (every ICP step): the same arithmetic without the batch machinery
        theta = np.sqrt(np.add.reduce(w * w))
        k = w / max(theta, 1e-12)
        kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
        return _EYE3 + np.sin(theta) * kx + (1 - np.cos(theta)) * (kx @ kx)
    theta = np.linalg.norm(w, axis=-1, keepdims=True)
    k = w / np.maximum(theta, 1e-12)
    kx = np.zeros(w.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - np.swapaxes(kx, -1, -2)
    s, c = np.sin(theta)[..., None], np.cos(theta)[..., None]
    return np.eye(3) + s * kx + (1 - c) * (kx @ kx)


def log_so3(r: np.ndarray) -> np.ndarray:
    cos = np.clip((np.trace(r, axis1=-2, axis2=-1) - 1) / 2, -1, 1)
    theta = np.arccos(cos)
    v = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    s = np.sin(theta)[..., None]
    small = s < 1e-6
    out = np.where(small, v / 2, v * theta[..., None] / (2 * np.where(small, 1, s)))
    near_pi = (theta > np.pi - 1e-3)
    if np.any(near_pi):  # axis from the symmetric part
        rr = np.atleast_3d(r)[near_pi.reshape(-1)] if r.ndim == 3 else r[None]
        for i, m in enumerate(rr):
            b = (m + np.eye(3)) / 2
            ax = b[np.argmax(np.diag(b))]
            ax = ax / np.linalg.norm(ax)
            val = ax * np.pi
            if r.ndim == 2:
                return val
            out[np.nonzero(near_pi)[0][i]] = val
    return out


def angle_deg(r1: np.ndarray, r2: np.ndarray) -> float:
    cos = (np.trace(r1.T @ r2) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))

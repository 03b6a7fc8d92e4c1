"""Rim-frame pose hypotheses: one rim-point correspondence fixes a whole 6-DoF pair pose.

Why: a tile's or a sherd's break is a narrow strip, so descriptor RANSAC and point-pair voting
on the fracture face see few distinctive points. Every break is bounded by a rim, the curve
where the fracture surface meets the original surface. At a rim point two first-order cues give
a full frame: n_f (fracture normal, averaged nearby), n_o (original-surface normal, averaged
nearby, same side only) and t = n_f x n_o along the rim. Across a true break the matching rim
point of the other piece has n_f opposed and n_o equal (the outer surface continues), so every
pair of rim points proposes a pose; the true one is proposed by every point along the shared
rim, so coarse Hough binning in pose space finds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from kintsugi_reassembly import se3

RIM_POINTS = 200  # rim points per piece (farthest-point sample)
DIHEDRAL_TOL = 0.25  # |cos(n_fA, n_oA) + cos(n_fB, n_oB)| must stay below this
ROT_BIN = np.radians(15.0)
TOP = 30
RADIUS = 2.5  # x whole-surface sample spacing: the neighbourhood the two normals are averaged over


@dataclass(eq=False)
class RimFrames:
    pts: np.ndarray  # (M, 3) points on the rim line (intersection of the two local planes)
    nf: np.ndarray  # (M, 3) fracture normal
    no: np.ndarray  # (M, 3) original-surface normal
    spacing: float  # typical distance between neighbouring rim points


def _fps(p: np.ndarray, m: int, seed: int) -> np.ndarray:
    if len(p) <= m:
        return np.arange(len(p))
    rng = np.random.default_rng(seed)
    out = [int(rng.integers(len(p)))]
    d = np.linalg.norm(p - p[out[0]], axis=1)
    for _ in range(m - 1):
        k = int(np.argmax(d))
        out.append(k)
        d = np.minimum(d, np.linalg.norm(p - p[k], axis=1))
    return np.array(out)


def rim_frames(rim_p: np.ndarray, rim_n: np.ndarray, orig_p: np.ndarray, orig_n: np.ndarray,
               fp: np.ndarray, fn: np.ndarray, hs: float, seed: int = 0) -> RimFrames | None:
    """Frames at up to RIM_POINTS rim points; ``hs`` is the whole-surface sample spacing."""
    if len(rim_p) < 4 or len(fp) < 8 or len(orig_p) < 8:
        return None
    pick = _fps(rim_p, RIM_POINTS, seed)
    p, pn = rim_p[pick], rim_n[pick]
    r = RADIUS * hs
    otree, ftree = cKDTree(orig_p), cKDTree(fp)
    onb = otree.query_ball_point(p, r)
    fnb = ftree.query_ball_point(p, r)
    keep, pts, nfs, nos = [], [], [], []
    for k in range(len(p)):
        oi, fi = np.asarray(onb[k], int), np.asarray(fnb[k], int)
        if len(oi) < 4 or len(fi) < 5:
            continue
        oi = oi[orig_n[oi] @ pn[k] > 0.7]  # the same face only (a thin wall's other face is close)
        if len(oi) < 3:
            continue
        no = orig_n[oi].sum(0)
        nf = fn[fi].sum(0)
        no /= np.linalg.norm(no) + 1e-12
        nf /= np.linalg.norm(nf) + 1e-12
        c = nf @ no
        if abs(c) > 0.9:
            continue
        co, cf = orig_p[oi].mean(0), fp[fi].mean(0)
        # the point of the two planes' intersection line closest to the rim sample
        g = np.array([[1.0, c], [c, 1.0]])
        ab = np.linalg.solve(g, np.array([nf @ (cf - p[k]), no @ (co - p[k])]))
        x = p[k] + ab[0] * nf + ab[1] * no
        if np.linalg.norm(x - p[k]) > 2 * r:
            continue
        keep.append(k)
        pts.append(x)
        nfs.append(nf)
        nos.append(no)
    if len(keep) < 4:
        return None
    pts = np.array(pts)
    d, _ = cKDTree(pts).query(pts, 2)
    return RimFrames(pts, np.array(nfs), np.array(nos), float(np.median(d[:, 1])))


def _frames(nf: np.ndarray, no: np.ndarray) -> np.ndarray:
    """(M, 3, 3) rows (n_f, t, n_f x t)."""
    t = np.cross(nf, no)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return np.stack([nf, t, np.cross(nf, t)], axis=1)


def hypotheses(ra: RimFrames, rb: RimFrames, centre_b: np.ndarray, h: float, top: int = TOP) -> list[np.ndarray]:
    """Poses (b's frame -> a's frame) voted for by the most rim-point correspondences, best first."""
    ca = np.einsum("ij,ij->i", ra.nf, ra.no)
    cb = np.einsum("ij,ij->i", rb.nf, rb.no)
    ia, ib = np.nonzero(np.abs(ca[:, None] + cb[None, :]) < DIHEDRAL_TOL)
    if len(ia) == 0:
        return []
    fa = _frames(ra.nf, ra.no)
    fb = _frames(-rb.nf, rb.no)
    rots = np.transpose(fa[ia], (0, 2, 1)) @ fb[ib]
    trans = ra.pts[ia] - np.einsum("kij,kj->ki", rots, rb.pts[ib])
    moved = np.einsum("kij,j->ki", rots, centre_b) + trans
    rv = se3.log_so3(rots)
    tbin = max(3.0 * h, 0.75 * max(ra.spacing, rb.spacing))
    # two staggered grids, so a cluster cut by one grid's cell boundary is whole in the other;
    # each cell is one candidate cluster, represented by its first member
    counts, reps, keys, grid = [], [], [], []
    for shift in (0.0, 0.5):
        q = np.concatenate([np.floor(moved / tbin + shift), np.floor(rv / ROT_BIN + shift)], axis=1).astype(np.int64)
        q -= q.min(0)
        key = np.zeros(len(q), np.int64)
        for c in range(6):
            key = key * (int(q[:, c].max()) + 1) + q[:, c]
        _, first, cnt = np.unique(key, return_index=True, return_counts=True)
        counts.append(cnt)
        reps.append(first)
        keys.append(key)
        grid.append(np.full(len(cnt), len(keys) - 1))
    cnt, rep, grid = np.concatenate(counts), np.concatenate(reps), np.concatenate(grid)
    order = np.argsort(-cnt, kind="stable")[: 6 * top]
    out: list[np.ndarray] = []
    chosen_m, chosen_r = np.zeros((0, 3)), np.zeros((0, 3))
    for o in order:
        k = rep[o]
        if cnt[o] < 2 or len(out) >= top:
            break
        if np.any((np.linalg.norm(chosen_m - moved[k], axis=1) < 2 * tbin) &
                  (np.linalg.norm(chosen_r - rv[k], axis=1) < 1.5 * ROT_BIN)):
            continue
        # average the members of the cell for a steadier pose
        near = keys[grid[o]] == keys[grid[o]][k]
        u, _, vt = np.linalg.svd(rots[near].sum(0))
        r = u @ np.diag([1, 1, np.linalg.det(u @ vt)]) @ vt
        t = (ra.pts[ia[near]] - rb.pts[ib[near]] @ r.T).mean(0)
        out.append(se3.make(r, t))
        chosen_m = np.vstack([chosen_m, moved[k]])
        chosen_r = np.vstack([chosen_r, rv[k]])
    return out

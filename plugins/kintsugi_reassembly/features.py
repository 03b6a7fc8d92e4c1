"""Local point descriptors: PCA shape cues for fracture segmentation and FPFH for matching.

Written in numpy on fixed-size kNN neighbourhoods (no Open3D/PCL in the environment); fixed k
keeps every step a dense array operation, which is what makes it fast enough on two cores.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

N_SEG_FEATURES = 16
FPFH_K = 40


def knn(points: np.ndarray, k: int, tree: cKDTree | None = None) -> tuple[np.ndarray, np.ndarray]:
    k = max(1, min(k, len(points) - 1))
    tree = tree or cKDTree(points)
    d, i = tree.query(points, k + 1)
    return d[:, 1:], i[:, 1:]


def pca_normals(points: np.ndarray, nb: np.ndarray, ref: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues ascending (N,3), normals (N,3)) of each point's neighbourhood; normals follow ``ref``."""
    nbp = np.concatenate([points[:, None], points[nb]], axis=1)
    nbp = nbp - nbp.mean(axis=1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", nbp, nbp) / nbp.shape[1]
    vals, vecs = np.linalg.eigh(cov)
    normals = vecs[:, :, 0]
    if ref is not None:
        normals *= np.sign(np.einsum("ij,ij->i", normals, ref) + 1e-12)[:, None]
    return np.maximum(vals, 0), normals


def smooth_regions(points: np.ndarray, normals: np.ndarray, nb: np.ndarray, nd: np.ndarray,
                   angle_deg: float = 28.0) -> np.ndarray:
    """Region label per point: connected pieces of surface without a sharp crease inside.

    Fracture faces meet the original surface at sharp edges, so cutting the kNN graph where the
    normal turns by more than ``angle_deg`` separates them (the cue GARF's labels line up with).
    """
    n = len(points)
    rows = np.repeat(np.arange(n), nb.shape[1])
    cols = nb.ravel()
    cos = np.einsum("ij,ij->i", normals[rows], normals[cols])
    spacing = np.median(nd[:, 0])
    keep = (cos > np.cos(np.radians(angle_deg))) & (nd.ravel() < 4 * spacing)
    graph = coo_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def segmentation_features(points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, N_SEG_FEATURES) scale-free per-point features and the region label of each point."""
    n = len(points)
    tree = cKDTree(points)
    nd, nb = knn(points, 32, tree)
    diam = float(np.linalg.norm(np.ptp(points, axis=0))) + 1e-12
    feats = []
    smooth_n = normals
    for k in (8, 16, 32):
        k = min(k, nb.shape[1])
        vals, pn = pca_normals(points, nb[:, :k], normals)
        feats.append(vals[:, 0] / (vals.sum(1) + 1e-12))  # surface variation (roughness/curvature)
        feats.append(np.abs(np.einsum("nkj,nj->nk", normals[nb[:, :k]], normals)).mean(1))  # crease nearby
        if k == 16:
            smooth_n = pn
    regions = smooth_regions(points, normals, nb[:, :10], nd[:, :10])
    counts = np.bincount(regions, minlength=regions.max() + 1)
    frac = counts / n
    order = np.argsort(-counts)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    mean_n = np.zeros((len(counts), 3))
    np.add.at(mean_n, regions, smooth_n)
    spread = 1.0 - np.linalg.norm(mean_n, axis=1) / np.maximum(counts, 1)
    ext = np.zeros((len(counts), 3))
    for r in np.nonzero(counts >= 4)[0]:
        q = points[regions == r]
        ev = np.linalg.eigvalsh(np.cov((q - q.mean(0)).T))
        ext[r] = np.sqrt(np.maximum(ev[::-1], 0)) / diam
    # position of the point along its part's shortest axis (thin walls: fracture strips sit mid-wall)
    centred = points - points.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    thin = np.abs(centred @ vt[2]) / (np.abs(centred @ vt[2]).max() + 1e-12)
    feats += [
        np.log(frac[regions] + 1e-4), np.minimum(rank[regions], 5) / 5.0, spread[regions],
        ext[regions, 0], ext[regions, 1], ext[regions, 2] * 10, np.abs(smooth_n @ vt[2]), thin,
        np.full(n, min(len(counts), 50) / 50.0), frac[regions] >= frac.max() - 1e-12,
    ]
    out = np.stack([np.asarray(f, float) for f in feats], axis=1)
    return out.astype(np.float32), regions


N_REGION_FEATURES = 20
MIN_REGION = 8  # regions this small keep their per-point answers (noise, corners)


def region_features(points: np.ndarray, normals: np.ndarray, feats: np.ndarray, regions: np.ndarray,
                    prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, N_REGION_FEATURES) features of each crease-bounded region of >= MIN_REGION points, and
    those region ids: the point classifier's mean logit there, size and rank, shape, boundary
    share, and how well a normal field linear in position explains the region's normals.

    The last one is the cue the point features lack: an original surface (plane, cylinder, a
    bowl's wall) has normals that vary smoothly across the whole region, while a break carries a
    relief that turns them back and forth (residual / total normal spread ~0.7 vs ~0.35).
    ``feats`` are the region's point features from ``segmentation_features`` (same order).
    """
    n = len(points)
    counts = np.bincount(regions)
    ids = np.nonzero(counts >= MIN_REGION)[0]
    out = np.zeros((len(ids), N_REGION_FEATURES), np.float64)
    if len(ids) == 0:
        return out.astype(np.float32), ids
    diam = float(np.linalg.norm(np.ptp(points, axis=0))) + 1e-12
    _, nb = knn(points, 10)
    boundary = (regions[nb] != regions[:, None]).mean(1)
    pc = np.clip(prob, 1e-4, 1 - 1e-4)
    logit = np.log(pc / (1 - pc))
    for j, r in enumerate(ids):
        m = regions == r
        q, nq = points[m], normals[m]
        c = q.mean(0)
        ev = np.maximum(np.linalg.eigvalsh(np.cov((q - c).T)), 0)
        mn = nq.mean(0)
        x = np.concatenate([(q - c) / diam, np.ones((len(q), 1))], 1)
        coef, *_ = np.linalg.lstsq(x, nq, rcond=None)
        resid = float(np.sqrt(((nq - x @ coef) ** 2).sum(1).mean()))
        total = float(np.sqrt(((nq - mn) ** 2).sum(1).mean()))
        out[j, :17] = [logit[m].mean(), np.log(m.sum() / n), m.sum() / counts.max(), 1 - np.linalg.norm(mn),
                       resid, resid / (total + 1e-3), np.sqrt(ev[2]) / diam, np.sqrt(ev[1]) / diam,
                       np.sqrt(ev[0]) / diam * 10, ev[0] / (ev.sum() + 1e-12), boundary[m].mean(),
                       feats[m, 0].mean(), feats[m, 2].mean(), feats[m, 4].mean(), feats[m, 12].mean(),
                       feats[m, 13].mean(), min(len(ids), 20) / 20]
    out[:, 17] = out[:, 3] / (out[:, 3].max() + 1e-6)  # normal spread relative to the part's most curved region
    out[:, 18] = out[:, 4] / (out[:, 4].max() + 1e-6)
    out[:, 19] = 0.0
    out[np.argmax(out[:, 1]), 19] = 1.0  # the part's largest region
    return out.astype(np.float32), ids


def geometric_fracture(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Fracture probability from the sharp-edge cue alone: every region but the largest smooth one.

    A piece keeps at most one large connected stretch of the original (smooth, creaseless)
    surface in most breaks of a shell; the fracture facets are the rest. Crude but weight-free.
    """
    _, regions = segmentation_features(points, normals)
    counts = np.bincount(regions)
    return (regions != counts.argmax()).astype(np.float32)


def fpfh(points: np.ndarray, normals: np.ndarray, k: int = FPFH_K) -> np.ndarray:
    """Fast Point Feature Histograms (Rusu 2009), 33 bins, on k nearest neighbours."""
    n = len(points)
    nd, nb = knn(points, k)
    k = nb.shape[1]
    ps, ns = np.repeat(points, k, 0), np.repeat(normals, k, 0)
    pt, nt = points[nb.ravel()], normals[nb.ravel()]
    d = pt - ps
    dist = np.linalg.norm(d, axis=1) + 1e-12
    d /= dist[:, None]
    # PCL picks the end whose normal makes the smaller angle with the line as the source
    swap = np.einsum("ij,ij->i", ns, d) < np.einsum("ij,ij->i", nt, d)
    u = np.where(swap[:, None], nt, ns)
    nt2 = np.where(swap[:, None], ns, nt)
    d = np.where(swap[:, None], -d, d)
    v = np.cross(u, d)
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
    w = np.cross(u, v)
    alpha = np.einsum("ij,ij->i", v, nt2)
    phi = np.einsum("ij,ij->i", u, d)
    theta = np.arctan2(np.einsum("ij,ij->i", w, nt2), np.einsum("ij,ij->i", u, nt2))
    bins = 11
    ia = np.clip(((alpha + 1) / 2 * bins).astype(int), 0, bins - 1)
    ip = np.clip(((phi + 1) / 2 * bins).astype(int), 0, bins - 1)
    it = np.clip(((theta + np.pi) / (2 * np.pi) * bins).astype(int), 0, bins - 1)
    owner = np.repeat(np.arange(n), k)
    spfh = np.zeros((n, 3 * bins))
    np.add.at(spfh, (owner, ia), 1.0)
    np.add.at(spfh, (owner, bins + ip), 1.0)
    np.add.at(spfh, (owner, 2 * bins + it), 1.0)
    spfh /= k
    wgt = 1.0 / (nd + 1e-9)
    wgt /= wgt.sum(1, keepdims=True)
    out = spfh + np.einsum("nk,nkb->nb", wgt, spfh[nb])
    return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-12)

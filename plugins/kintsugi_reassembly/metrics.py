"""GARF's evaluation: RMSE(R) on wrapped Euler XYZ angles, RMSE(T), part accuracy, chamfer.

As GARF computes them: poses are compared after moving the prediction so that the anchor (the
largest piece) sits exactly at its true pose, translations are those of each part's centroid,
and lengths are in units of the object's largest extent. Also reports the geodesic rotation
error and a strict success rate, because PA passes parts that are visibly turned.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from kintsugi_reassembly import se3

PA_THRESHOLD = 0.01


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Squared-distance chamfer, both directions (GARF / Breaking Bad)."""
    da, _ = cKDTree(b).query(a)
    db, _ = cKDTree(a).query(b)
    return float(np.mean(da**2) + np.mean(db**2))


def _euler_err(rp: np.ndarray, rg: np.ndarray) -> float:
    ep = Rotation.from_matrix(rp).as_euler("XYZ", degrees=True)
    eg = Rotation.from_matrix(rg).as_euler("XYZ", degrees=True)
    d = (ep - eg + 180.0) % 360.0 - 180.0
    return float(np.sqrt(np.mean(d**2)))


def evaluate(pred: list[np.ndarray], gt: list[np.ndarray], points: list[np.ndarray],
             anchor: int | None = None) -> dict[str, float]:
    """Metrics of one object. ``points`` are each part's sample points in its file coordinates."""
    if not (len(pred) == len(gt) == len(points)):
        raise ValueError("pred, gt and points must have one entry per part")
    if anchor is None:
        anchor = int(np.argmax([len(p) for p in points]))
    assembled = np.concatenate([se3.apply(g, p) for g, p in zip(gt, points, strict=True)])
    extent = float(np.ptp(assembled, axis=0).max())
    align = gt[anchor] @ se3.inv(pred[anchor])
    rm, tm, geo, cds, strict = [], [], [], [], []
    all_p, all_g = [], []
    for p4, g4, pts in zip(pred, gt, points, strict=True):
        p4 = align @ p4
        c = pts.mean(0)
        tp, tg = se3.apply(p4, c[None])[0] / extent, se3.apply(g4, c[None])[0] / extent
        rm.append(_euler_err(p4[:3, :3], g4[:3, :3]))
        tm.append(float(np.sqrt(np.mean((tp - tg) ** 2))))
        geo.append(se3.angle_deg(p4[:3, :3], g4[:3, :3]))
        pp, pg = se3.apply(p4, pts) / extent, se3.apply(g4, pts) / extent
        cds.append(chamfer(pp, pg))
        strict.append(geo[-1] <= 5.0 and np.linalg.norm(tp - tg) <= 0.02)
        all_p.append(pp)
        all_g.append(pg)
    return {
        "rmse_r_deg": float(np.mean(rm)),
        "rmse_t": float(np.mean(tm)),
        "part_accuracy": float(np.mean(np.array(cds) < PA_THRESHOLD)),
        "chamfer": chamfer(np.concatenate(all_p), np.concatenate(all_g)),
        "geodesic_r_deg": float(np.mean(geo)),
        "strict_success": float(all(strict)),
        "n_parts": len(pred),
        "anchor": anchor,
    }

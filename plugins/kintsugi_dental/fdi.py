"""A guess at FDI numbers from where each tooth sits along its arch.

Jaws are split by height (the largest gap between tooth centroids; a single jaw is upper when its
crowns, the bulky end of each tooth, point down). In each jaw the midline is halfway between the
outermost teeth; on each side teeth are ordered outwards and their distance along the arch (summed
centroid-to-centroid steps) is matched to the average positions of teeth 1..8 (textbook mesiodistal
widths) with a monotone assignment, so one missing tooth does not shift all the numbers behind it.
A guess, not a diagnosis: None where the arch cannot be read."""

from __future__ import annotations

import numpy as np

from kintsugi.samples.dental import LOWER, UPPER


def _expected(types: dict) -> np.ndarray:
    w = np.array([types[p].md for p in range(1, 9)])
    return (np.cumsum(w) - w / 2) * 0.975


def _assign(s: np.ndarray, expected: np.ndarray) -> list[int]:
    """Strictly increasing positions (1..8) for arc lengths ``s`` (sorted), least squared error (DP)."""
    n, m = len(s), len(expected)
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, :] = 0.0
    choice = np.zeros((n + 1, m + 1), bool)
    for i in range(1, n + 1):
        for j in range(i, m + 1):
            take = cost[i - 1, j - 1] + (s[i - 1] - expected[j - 1]) ** 2
            skip = cost[i, j - 1]
            cost[i, j], choice[i, j] = (take, True) if take <= skip else (skip, False)
    out, i, j = [], n, m
    while i > 0:
        if choice[i, j]:
            out.append(j)
            i -= 1
        j -= 1
    return out[::-1]


def fdi_numbers(centroids: np.ndarray, crown_lift: np.ndarray | None = None) -> list[int | None]:
    """FDI number per tooth from physical LPS centroids (x to the patient's left, y posterior, z superior).

    ``crown_lift`` (per tooth: centroid height minus the middle of the tooth's height range, mm) tells a single
    upper jaw from a lower one: the bulky crown pulls the centroid towards the occlusal end."""
    n = len(centroids)
    out: list[int | None] = [None] * n
    if n < 3:
        return out
    z = centroids[:, 2]
    zs = np.sort(z)
    gaps = np.diff(zs)
    i = int(np.argmax(gaps))
    if gaps[i] > 5.0:
        jaws = {"upper": np.nonzero(z > zs[i])[0], "lower": np.nonzero(z <= zs[i])[0]}
    else:
        up = crown_lift is not None and float(np.median(crown_lift)) < 0
        jaws = {"upper" if up else "lower": np.arange(n)}
    for jaw, idx in jaws.items():
        if len(idx) < 3:
            continue
        xy = centroids[idx, :2]
        mid = 0.5 * (xy[:, 0].min() + xy[:, 0].max())
        expected = _expected(UPPER if jaw == "upper" else LOWER)
        right_q, left_q = (1, 2) if jaw == "upper" else (4, 3)
        for side, q in ((-1.0, right_q), (1.0, left_q)):
            members = [k for k in range(len(idx)) if (xy[k, 0] - mid) * side > 0]
            if not members or len(members) > 8:
                continue
            members.sort(key=lambda k: abs(xy[k, 0] - mid) + 0.01 * xy[k, 1])
            s, prev = [], None
            for k in members:
                if prev is None:  # from the midline to the first tooth: mostly across x
                    s.append(abs(xy[k, 0] - mid))
                else:
                    s.append(s[-1] + float(np.linalg.norm(xy[k] - xy[prev])))
                prev = k
            for k, pos in zip(members, _assign(np.array(s), expected), strict=True):
                out[int(idx[k])] = 10 * q + pos
    return out


def crown_lift(labels: np.ndarray, geometry: object, centroids: np.ndarray) -> np.ndarray:
    """Per label 1..N: centroid z minus the mid-height of the label's voxels (physical mm)."""
    from scipy import ndimage as ndi

    out = []
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            out.append(0.0)
            continue
        idx = np.argwhere(labels[sl] == k)[:: 7] + np.array([s.start for s in sl])
        zs = geometry.index_to_physical(idx[:, ::-1].astype(float))[:, 2]  # type: ignore[attr-defined]
        out.append(float(centroids[k - 1, 2] - 0.5 * (zs.min() + zs.max())))
    return np.array(out)

"""Geometric reassembly: match fracture surfaces pairwise, then grow and refine one assembly.

Pairwise: FPFH on the fracture points (the other side's normals flipped, since two halves of a
break face each other), 3-point RANSAC, point-to-plane ICP that only pairs facing points, and a
score = contact area - penalty x interpenetration. Global: best-first spanning tree from the
largest piece over those pair candidates, refusing placements that overlap pieces already
placed, then rounds of ICP of each piece against all its placed neighbours.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from kintsugi_reassembly import ppf, rim, se3
from kintsugi_reassembly.features import fpfh, knn, pca_normals, smooth_regions
from kintsugi_reassembly.prep import Part

PENALTY = 2.0  # interpenetration costs twice what the same area of contact earns
TOUCH_GATE = 1.5  # x sample spacing: farthest neighbour that can count as contact
FACET_K, FACET_ANGLE = 20, 30.0  # facets: normals smoothed over k keypoints, crease angle
MIN_CONTACT = 0.12  # a placement must touch at least this share of the piece's break
PLANE_GAP = 0.35  # x sample spacing: largest gap to the neighbour's tangent plane that counts as contact
PPF_POINTS = 250  # break samples per piece for point-pair-feature voting
PPF_TOP = 40  # PPF pose clusters per pair handed to verification
DESC_SLOTS = 6  # ICP slots for descriptor-RANSAC and facet hypotheses (10 before the rim slots came)
RIM_SLOTS = 4  # ICP slots for rim-frame hypotheses (rim.py)
ROUGH_STRIDE = 3  # rough hypotheses are ranked on every 3rd sample; the best few get the exact score


@dataclass(eq=False)
class Geo:
    """A part's points prepared for matching (all in its own normalised file frame)."""

    index: int
    pts: np.ndarray  # whole surface, for interpenetration
    nrm: np.ndarray
    fp: np.ndarray  # fracture surface samples
    fn: np.ndarray
    area_per_point: float  # of the whole-surface sample
    frac_area_per_point: float
    original: np.ndarray  # (N,) bool: whole-surface samples judged original surface (tested for overlap)
    keypoint_ratio: float = 1.0
    tree: cKDTree = field(init=False)
    ftree: cKDTree = field(init=False)
    kp: np.ndarray = field(init=False)
    kn: np.ndarray = field(init=False)
    desc: np.ndarray = field(init=False)
    desc_flip: np.ndarray = field(init=False)
    centre: np.ndarray = field(init=False)
    radius: float = field(init=False)
    ref_p: np.ndarray = field(init=False)
    ref_n: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # the overlap reference: original-surface samples plus the dense fracture samples
        self.ref_p = np.concatenate([self.pts[self.original], self.fp])
        self.ref_n = np.concatenate([self.nrm[self.original], self.fn])
        self.tree = cKDTree(self.ref_p)
        self.ftree = cKDTree(self.fp)
        n_kp = max(12, int(round(len(self.fp) * self.keypoint_ratio)))
        pick = np.random.default_rng(abs(self.index)).permutation(len(self.fp))[:n_kp]
        self.kp, self.kn = self.fp[pick], self.fn[pick]
        self.desc = fpfh(self.kp, self.kn)
        self.desc_flip = fpfh(self.kp, -self.kn)
        # facets: crease-bounded patches of the break, one per cut mostly; matching goes facet to facet
        nd, nb = knn(self.kp, FACET_K)
        _, smooth = pca_normals(self.kp, nb, self.kn)  # waves of the relief smoothed out
        self.facet = smooth_regions(self.kp, smooth, nb[:, :8], nd[:, :8], angle_deg=FACET_ANGLE)
        self.ktree = cKDTree(self.kp)
        self.centre = self.pts.mean(0)
        self.radius = float(np.linalg.norm(self.pts - self.centre, axis=1).max())
        # rim: original-surface samples next to the break; across a true match the rims continue
        hs = np.sqrt(self.area_per_point)
        orig_p, orig_n = self.pts[self.original], self.nrm[self.original]
        d, _ = self.ftree.query(orig_p, distance_upper_bound=2.0 * hs)
        rim = np.isfinite(d)
        self.rim_p, self.rim_n = orig_p[rim], orig_n[rim]
        self.rim_tree = cKDTree(self.rim_p) if len(self.rim_p) else None
        self._ppf: tuple[float, ppf.PPFModel] | None = None
        self._rim: list[rim.RimFrames | None] = []

    def rim_frames(self) -> rim.RimFrames | None:
        """Local (fracture normal, original normal) frames along the rim, computed once."""
        if not self._rim:
            self._rim.append(rim.rim_frames(self.rim_p, self.rim_n, self.pts[self.original], self.nrm[self.original],
                                            self.fp, self.fn, float(np.sqrt(self.area_per_point)), abs(self.index)))
        return self._rim[0]

    def ppf_points(self) -> tuple[np.ndarray, np.ndarray]:
        """A subsample of the keypoints with normals smoothed over their neighbours (the relief's
        facet-to-facet jitter would otherwise scatter the point-pair features)."""
        pick = np.random.default_rng(abs(self.index) + 17).permutation(len(self.kp))[:PPF_POINTS]
        _, nb = knn(self.kp, 12)
        _, sn = pca_normals(self.kp, nb, self.kn)
        return self.kp[pick], sn[pick]

    def ppf_model(self, step: float) -> ppf.PPFModel:
        if self._ppf is None or self._ppf[0] != step:
            p, n = self.ppf_points()
            self._ppf = (step, ppf.build_model(p, n, step, np.inf))
        return self._ppf[1]


@dataclass
class Candidate:
    i: int  # target part
    j: int  # moved part
    transform: np.ndarray  # j's frame -> i's frame
    score: float
    contact: float
    penetration: float
    loops: int = 0  # triangles (i, j, k) whose three candidates agree with this one
    rim: float = 0.0  # rim_agreement both ways: the original surfaces continue across a true break


def to_geo(parts: list[Part], max_keypoints: int = 500) -> list[Geo]:
    """Parts must have their fracture samples set (Part.set_fracture).

    Keypoints (for descriptors and RANSAC) are one common fraction of every part's fracture
    samples, so their density, and hence the descriptors, agree between parts.
    """
    ratio = min(1.0, max_keypoints / max(len(p.frac_points) for p in parts))
    return [Geo(k, p.points, p.normals, p.frac_points, p.frac_normals, p.area / len(p.points),
                p.frac_area / len(p.frac_points), p.fracture <= p.threshold, ratio) for k, p in enumerate(parts)]


def spacing(geos: list[Geo]) -> float:
    """Typical distance between neighbouring samples: the unit of every threshold here."""
    return float(np.sqrt(np.median([g.frac_area_per_point for g in geos])))


# --------------------------------------------------------------------------------------------
# scoring


def _one_way(a: Geo, pb: np.ndarray, fb: np.ndarray, fnb: np.ndarray, h: float) -> tuple[int, int]:
    """(b's fracture samples touching a's fracture, b's original-surface samples inside a)."""
    d, idx = a.ftree.query(fb, distance_upper_bound=TOUCH_GATE * h)
    ok = np.isfinite(d)
    qa, qn = a.fp[idx[ok]], a.fn[idx[ok]]
    gap = np.abs(np.einsum("ij,ij->i", fb[ok] - qa, qn))  # point-to-plane: rough faces that fit have ~0 gap
    touching = int(np.sum((np.einsum("ij,ij->i", fnb[ok], qn) < -0.3) & (gap < PLANE_GAP * h)))
    d2, idx2 = a.tree.query(pb, distance_upper_bound=3 * np.sqrt(a.area_per_point))
    ok2 = np.isfinite(d2)
    depth = np.einsum("ij,ij->i", pb[ok2] - a.ref_p[idx2[ok2]], a.ref_n[idx2[ok2]])
    inside = int(np.sum(depth < -1.0 * h))
    return touching, inside


def rim_agreement(a: Geo, b: Geo, t_ba: np.ndarray) -> float:
    """Share of b's rim samples that continue a's rim (close, same-facing normals)."""
    if a.rim_tree is None or not len(b.rim_p):
        return 0.0
    hs = np.sqrt(max(a.area_per_point, b.area_per_point))
    rp, rn = se3.apply(t_ba, b.rim_p), se3.rotate(t_ba, b.rim_n)
    d, idx = a.rim_tree.query(rp, distance_upper_bound=1.5 * hs)
    ok = np.isfinite(d)
    agree = np.einsum("ij,ij->i", rn[ok], a.rim_n[idx[ok]]) > 0.5
    return float(agree.sum()) / len(rp)


def contact_penetration(a: Geo, b: Geo, t_ba: np.ndarray, h: float, stride: int = 1) -> tuple[float, float]:
    """(contact area, interpenetrating area) of b moved into a's frame by ``t_ba``.

    ``stride`` > 1 tests every stride-th sample only (an estimate at a fraction of the cost, for
    ranking rough hypotheses before the exact score)."""
    s = slice(None, None, stride)
    pb = se3.apply(t_ba, b.pts[b.original][s])
    fb, fnb = se3.apply(t_ba, b.fp[s]), se3.rotate(t_ba, b.fn[s])
    tb, ib = _one_way(a, pb, fb, fnb, h)
    inv = se3.inv(t_ba)
    pa = se3.apply(inv, a.pts[a.original][s])
    fa, fna = se3.apply(inv, a.fp[s]), se3.rotate(inv, a.fn[s])
    ta, ia = _one_way(b, pa, fa, fna, h)
    contact = 0.5 * stride * (tb * b.frac_area_per_point + ta * a.frac_area_per_point)
    pen = 0.5 * stride * (ib * b.area_per_point + ia * a.area_per_point)
    return float(contact), float(pen)


# --------------------------------------------------------------------------------------------
# pairwise


def icp(src_p: np.ndarray, src_n: np.ndarray, dst_p: np.ndarray, dst_n: np.ndarray, tree: cKDTree,
        init: np.ndarray, h: float, iters: int = 20, final_gate: float = 2.0, start_gate: float = 6.0) -> np.ndarray:
    """Point-to-plane ICP pairing only points whose normals face each other (two sides of a break)."""
    m = init.copy()
    for it in range(iters):
        gate = max(final_gate * h, (start_gate - it * 0.5) * h) if iters > 8 else final_gate * h
        p, n = se3.apply(m, src_p), se3.rotate(m, src_n)
        d, idx = tree.query(p, distance_upper_bound=gate)
        ok = np.isfinite(d)
        if ok.sum() < 6:
            break
        idx = idx[ok]
        q, qn = dst_p[idx], dst_n[idx]
        ok2 = np.einsum("ij,ij->i", n[ok], qn) < -0.5
        if ok2.sum() < 6:
            break
        ps, q, qn = p[ok][ok2], q[ok2], qn[ok2]
        # linearised point-to-plane: [p x n, n] [w; t] = (q - p) . n, about the centroid for conditioning
        centre = ps.mean(0)
        r = ps - centre
        a = np.empty((len(r), 6))
        # r x qn written out (np.cross's own formula, without its axis handling: ICP runs thousands of times)
        a[:, 0] = r[:, 1] * qn[:, 2] - r[:, 2] * qn[:, 1]
        a[:, 1] = r[:, 2] * qn[:, 0] - r[:, 0] * qn[:, 2]
        a[:, 2] = r[:, 0] * qn[:, 1] - r[:, 1] * qn[:, 0]
        a[:, 3:] = qn
        b = np.einsum("ij,ij->i", q - ps, qn)
        # Cauchy weights: pairs that do not lie on each other (other breaks, misread points) fade out
        w = 1.0 / (1.0 + (b / (0.5 * h)) ** 2)
        aw = a * w[:, None]
        x = np.linalg.solve(aw.T @ a + 1e-9 * np.eye(6), aw.T @ b)
        rot = se3.exp_so3(x[:3])
        m = se3.make(rot, x[3:] + centre - rot @ centre) @ m
        # converged: a step far below anything the scores or the metrics can see (0.01 deg, 1 % of h)
        if np.sqrt(x[:3] @ x[:3]) < 1.7e-4 and np.sqrt(x[3:] @ x[3:]) < 0.01 * h:
            break
    return m


def _ransac(a: Geo, b: Geo, h: float, rng: np.random.Generator, iters: int, keep: int,
            min_facet: int = 12) -> list[tuple[int, np.ndarray]]:
    """Hypotheses from every pair of facets (a's facet x b's facet) plus one over whole breaks."""
    out: list[tuple[int, np.ndarray]] = []
    fa_ids, fb_ids = _largest_facets(a, min_facet, 6), _largest_facets(b, min_facet, 6)
    n_pairs = max(1, len(fa_ids) * len(fb_ids))
    per = max(300, iters // n_pairs)
    for ra in fa_ids:
        ia = np.nonzero(a.facet == ra)[0]
        for rb in fb_ids:
            ib = np.nonzero(b.facet == rb)[0]
            out.extend(_ransac_sets(a, b, ia, ib, h, rng, per, 2))
    out.extend(_ransac_sets(a, b, np.arange(len(a.kp)), np.arange(len(b.kp)), h, rng, iters // 2, keep))
    return out


def _ransac_sets(a: Geo, b: Geo, ia: np.ndarray, ib: np.ndarray, h: float, rng: np.random.Generator,
                 iters: int, keep: int, max_eval: int = 1500) -> list[tuple[int, np.ndarray]]:
    """Hypotheses (b -> a) from 2-point samples of descriptor correspondences, normals included.

    Two oriented points fix a rigid pose, so a sample needs two right matches instead of three:
    with one match in ten or twenty that is the difference between finding the pose or not. The
    normals of b are flipped (the other side of the break) and the sample must agree in
    distance and in the angles between normals and the joining line before it is even solved.
    """
    fa, fb, na, nb = a.kp[ia], b.kp[ib], a.kn[ia], b.kn[ib]
    hk = h / np.sqrt(a.keypoint_ratio)  # keypoint spacing
    da, db = a.desc[ia], b.desc_flip[ib]
    _, ab = cKDTree(da).query(db, min(2, len(ia)))
    ab = ab.reshape(len(ib), -1)
    if ab.shape[1] == 1:
        ab = np.repeat(ab, 2, axis=1)
    _, ba = cKDTree(db).query(da, 1)
    src = np.concatenate([np.arange(len(fb)), np.arange(len(fb)), ba])
    dst = np.concatenate([ab[:, 0], ab[:, 1], np.arange(len(fa))])
    m = len(src)
    if m < 2:
        return []
    pair = rng.integers(0, m, size=(iters, 2))
    s1, s2, d1, d2 = src[pair[:, 0]], src[pair[:, 1]], dst[pair[:, 0]], dst[pair[:, 1]]
    vs, vd = fb[s2] - fb[s1], fa[d2] - fa[d1]
    ls, ld = np.linalg.norm(vs, axis=1), np.linalg.norm(vd, axis=1)
    us, ud = vs / np.maximum(ls, 1e-12)[:, None], vd / np.maximum(ld, 1e-12)[:, None]
    dot = lambda x, y: np.einsum("ij,ij->i", x, y)  # noqa: E731
    good = (np.abs(ls - ld) < 1.5 * hk) & (ls > 4 * hk)
    good &= np.abs(dot(nb[s1], nb[s2]) - dot(na[d1], na[d2])) < 0.2
    good &= np.abs(dot(nb[s1], us) + dot(na[d1], ud)) < 0.2
    good &= np.abs(dot(nb[s2], us) + dot(na[d2], ud)) < 0.2
    idx = np.nonzero(good)[0][:max_eval]
    if len(idx) == 0:
        return []
    s1, s2, d1, d2, ls = s1[idx], s2[idx], d1[idx], d2[idx], ls[idx]
    arm = (0.5 * ls)[:, None]
    ps = np.stack([fb[s1], fb[s2], fb[s1] - arm * nb[s1], fb[s2] - arm * nb[s2]], axis=1)
    pd = np.stack([fa[d1], fa[d2], fa[d1] + arm * na[d1], fa[d2] + arm * na[d2]], axis=1)
    ms = se3.kabsch_batch(ps, pd)
    sub = rng.permutation(m)[:800]
    srcp, dstp = fb[src[sub]], fa[dst[sub]]
    srcn, dstn = nb[src[sub]], na[dst[sub]]
    moved = np.einsum("bij,mj->bmi", ms[:, :3, :3], srcp) + ms[:, None, :3, 3]
    mn = np.einsum("bij,mj->bmi", ms[:, :3, :3], srcn)
    inl = (np.linalg.norm(moved - dstp[None], axis=2) < 1.5 * hk) & (np.einsum("bmi,mi->bm", mn, dstn) < -0.5)
    votes = inl.sum(1)
    order = np.argsort(-votes)
    chosen: list[tuple[int, np.ndarray]] = []
    for k in order:
        if votes[k] < 3 or len(chosen) >= keep:
            break
        mk = ms[k]
        if any(se3.angle_deg(mk[:3, :3], c[:3, :3]) < 10 and np.linalg.norm(mk[:3, 3] - c[:3, 3]) < 5 * hk
               for _, c in chosen):
            continue
        chosen.append((int(votes[k]), mk))
    return chosen


def _frame(p: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and rows (u, v, w): w the mean normal, u the main in-plane axis."""
    c = p.mean(0)
    w = n.mean(0)
    w /= np.linalg.norm(w) + 1e-12
    q = p - c
    q -= np.outer(q @ w, w)
    _, _, vt = np.linalg.svd(q, full_matrices=False)
    u = vt[0] - (vt[0] @ w) * w
    u /= np.linalg.norm(u) + 1e-12
    return c, np.stack([u, np.cross(w, u), w])


def _largest_facets(g: Geo, min_facet: int, most: int) -> list[int]:
    ids, counts = np.unique(g.facet, return_counts=True)
    order = np.argsort(-counts)[:most]
    return [int(ids[k]) for k in order if counts[k] >= min_facet]


def _facet_hypotheses(a: Geo, b: Geo, min_facet: int = 12, angles: int = 16, most: int = 5) -> list[np.ndarray]:
    """Put a facet of b onto a facet of a: centroids together, normals opposed, turned in-plane."""
    out = []
    fa, fb = _largest_facets(a, min_facet, most), _largest_facets(b, min_facet, most)
    frames_a = {r: _frame(a.kp[a.facet == r], a.kn[a.facet == r]) for r in fa}
    frames_b = {r: _frame(b.kp[b.facet == r], -b.kn[b.facet == r]) for r in fb}
    na = {r: np.sum(a.facet == r) for r in fa}
    nb = {r: np.sum(b.facet == r) for r in fb}
    turns = [se3.exp_so3(np.array([0, 0, t])) for t in np.linspace(0, 2 * np.pi, angles, endpoint=False)]
    for ra in fa:
        ca, fa_ = frames_a[ra]
        for rb in fb:
            if not 0.25 <= na[ra] / nb[rb] <= 4:
                continue
            cb, fb_ = frames_b[rb]
            for t in turns:
                r = fa_.T @ t @ fb_
                out.append(se3.make(r, ca - r @ cb))
    return out


def _prescore(a: Geo, b: Geo, hyps: list[np.ndarray], h: float) -> np.ndarray:
    """Cheap support of each hypothesis: b keypoints landing on a keypoints with opposed normals."""
    if not hyps:
        return np.zeros(0)
    hk = h / np.sqrt(a.keypoint_ratio)
    ms = np.stack(hyps)
    moved = np.einsum("bij,mj->bmi", ms[:, :3, :3], b.kp) + ms[:, None, :3, 3]
    mn = np.einsum("bij,mj->bmi", ms[:, :3, :3], b.kn)
    flat = moved.reshape(-1, 3)
    d, idx = a.ktree.query(flat, distance_upper_bound=1.5 * hk)
    ok = np.isfinite(d)
    good = np.zeros(len(d), bool)
    gap = np.abs(np.einsum("ij,ij->i", flat[ok] - a.kp[idx[ok]], a.kn[idx[ok]]))
    good[ok] = (np.einsum("ij,ij->i", mn.reshape(-1, 3)[ok], a.kn[idx[ok]]) < -0.5) & (gap < 0.5 * hk)
    return good.reshape(len(hyps), -1).sum(1)


def ppf_step(a: Geo, b: Geo, h: float) -> float:
    """Distance quantum of the point-pair features: about the spacing of the PPF samples."""
    hk = h / np.sqrt(a.keypoint_ratio)
    return float(1.8 * hk)


def match_pair(a: Geo, b: Geo, h: float, rng: np.random.Generator, iters: int = 8000,
               keep: int = 8, top: int = 3, n_icp: int | None = None, n_ppf: int = 4,
               n_rim: int | None = None) -> list[Candidate]:
    """Up to ``top`` scored placements of b against a (b's frame -> a's frame), distinct poses.

    Only the ``n_icp`` best-supported hypotheses are refined, first on a subsample of b's break
    and then, for the best few, at full density: ICP dominates the cost otherwise.
    """
    n_icp = DESC_SLOTS if n_icp is None else n_icp
    pool = [m for _, m in _ransac(a, b, h, rng, iters, keep)] + _facet_hypotheses(a, b)
    support = _prescore(a, b, pool, h)
    hyps = [(support[k], pool[k]) for k in np.argsort(-support)][:n_icp]
    if PPF_TOP > 0 and n_ppf > 0:
        # PPF poses get ICP slots of their own: on flat-ish breaks their many false poses would
        # otherwise crowd the descriptor matches out of the shared budget
        step = ppf_step(a, b, h)
        model = a.ppf_model(step)
        bp, bn = b.ppf_model(step).pts, b.ppf_model(step).nrm
        prng = np.random.default_rng(1000 * (a.index + 1) + b.index)
        extra = [m for _, m in ppf.vote(model, bp, bn, step, np.inf, prng, top=PPF_TOP)]
        sup2 = _prescore(a, b, extra, h)
        hyps += [(sup2[k], extra[k]) for k in np.argsort(-sup2)[:n_ppf]]
    n_rim = RIM_SLOTS if n_rim is None else n_rim
    if n_rim > 0:
        ra, rb = a.rim_frames(), b.rim_frames()
        if ra is not None and rb is not None:
            extra = rim.hypotheses(ra, rb, b.centre, h)
            sup3 = _prescore(a, b, extra, h)
            hyps += [(sup3[k], extra[k]) for k in np.argsort(-sup3)[:n_rim]]
    sub = rng.permutation(len(b.fp))[:400]
    sp, sn = b.fp[sub], b.fn[sub]
    rough: list[tuple[float, np.ndarray]] = []
    for _, m in hyps:
        m = icp(sp, sn, a.fp, a.fn, a.ftree, m, h, iters=12)
        if any(se3.angle_deg(m[:3, :3], r[:3, :3]) < 3 and np.linalg.norm(m[:3, 3] - r[:3, 3]) < 3 * h
               for _, r in rough):
            continue
        c, p = contact_penetration(a, b, m, h, stride=ROUGH_STRIDE)
        rough.append((c - PENALTY * p, m))
    rough.sort(key=lambda v: -v[0])
    out: list[Candidate] = []
    for _, m in rough[: top + 1]:
        m = icp(b.fp, b.fn, a.fp, a.fn, a.ftree, m, h, iters=6, final_gate=1.5)
        c, p = contact_penetration(a, b, m, h)
        agree = rim_agreement(a, b, m) + rim_agreement(b, a, se3.inv(m))
        out.append(Candidate(a.index, b.index, m, c - PENALTY * p, c, p, rim=agree))
    out.sort(key=lambda c: -priority(c))
    return [c for c in out[:top] if c.score > 0]


def all_pairs(geos: list[Geo], h: float, rng: np.random.Generator, progress=None,
              iters: int = 8000) -> list[Candidate]:
    """Candidates of every pair, both directions."""
    cands: list[Candidate] = []
    pairs = [(i, j) for i in range(len(geos)) for j in range(i + 1, len(geos))]
    for k, (i, j) in enumerate(pairs):
        if progress is not None and k % 5 == 0:
            progress(k / max(len(pairs), 1), f"matching pairs {k}/{len(pairs)}")
        for c in match_pair(geos[i], geos[j], h, rng, iters=iters):
            cands.append(c)
            cands.append(Candidate(j, i, se3.inv(c.transform), c.score, c.contact, c.penetration, rim=c.rim))
    return cands


# --------------------------------------------------------------------------------------------
# global

LOOP_DEG = 6.0  # two chained pair poses agree with a third when within this rotation ...
LOOP_GATE = 4.0  # ... and this many sample spacings at the moved piece's centre
LOOP_BONUS = 0.5  # priority gained per agreeing triangle (at most LOOP_MAX of them)
LOOP_MAX = 3
RIM_WEIGHT = 2.0


def loop_support(geos: list[Geo], cands: list[Candidate], h: float) -> None:
    """Count for each candidate the triangles it closes: T_ij T_jk ~ T_ik with all three candidates.

    Why: a false match of two breaks can score as well as a true one (two flat-ish patches
    touching), but three false matches rarely compose into a consistent loop, while true
    neighbours around a shared corner always do. Both orientations of a pair get the count.
    """
    by: dict[tuple[int, int], list[Candidate]] = {}
    for c in cands:
        by.setdefault((c.i, c.j), []).append(c)
    n = len(geos)
    hits: dict[int, int] = {}
    cos_gate = np.cos(np.radians(LOOP_DEG))
    for i in range(n):
        for j in range(n):
            if j == i or (i, j) not in by:
                continue
            for k in range(n):
                if k in (i, j) or (j, k) not in by or (i, k) not in by or not (i < j < k):
                    continue
                ck = geos[k].centre
                for a in by[(i, j)]:
                    for b in by[(j, k)]:
                        chain = a.transform @ b.transform
                        for c in by[(i, k)]:
                            r = chain[:3, :3].T @ c.transform[:3, :3]
                            if (np.trace(r) - 1) / 2 < cos_gate:
                                continue
                            gap = np.linalg.norm(se3.apply(chain, ck[None]) - se3.apply(c.transform, ck[None]))
                            if gap > LOOP_GATE * h:
                                continue
                            for x in (a, b, c):
                                hits[id(x)] = hits.get(id(x), 0) + 1
    for c in cands:
        c.loops = hits.get(id(c), 0)
    # the reversed copies share the count of their forward candidate
    fwd = {(c.i, c.j, round(c.score, 12)): c.loops for c in cands if c.i < c.j}
    for c in cands:
        if c.i > c.j:
            c.loops = max(c.loops, fwd.get((c.j, c.i, round(c.score, 12)), 0))


def priority(c: Candidate, score: float | None = None) -> float:
    """Rank of a placement: contact score, raised when the rims continue and when loops close.

    Rim agreement was chosen on validation objects (seeds 500000+): contact alone ranks true
    pair poses above false ones with ROC AUC 0.87-0.99, contact x (1 + 2 rim) with 0.93-1.00.
    """
    base = c.score if score is None else score
    return base * (1.0 + RIM_WEIGHT * c.rim) * (1.0 + LOOP_BONUS * min(c.loops, LOOP_MAX))


def frac_area(g: Geo) -> float:
    return len(g.fp) * g.frac_area_per_point


def _union(geos: list[Geo], poses: dict[int, np.ndarray], h: float = 0.0, open_only: bool = False) -> Geo:
    """Everything placed so far as one piece, so a leftover can be matched to the whole break edge."""
    keys = sorted(poses)
    cat = lambda f: np.concatenate([f(k) for k in keys])  # noqa: E731
    pts = cat(lambda k: se3.apply(poses[k], geos[k].pts))
    nrm = cat(lambda k: se3.rotate(poses[k], geos[k].nrm))
    fp = cat(lambda k: se3.apply(poses[k], geos[k].fp))
    fn = cat(lambda k: se3.rotate(poses[k], geos[k].fn))
    orig = cat(lambda k: geos[k].original)
    if open_only and len(keys) > 1:
        # drop break samples already mated with another placed piece: a leftover can only fit
        # onto the part of the break that is still open, and the mated part only misleads matching
        owner = cat(lambda k: np.full(len(geos[k].fp), k))
        d, idx = cKDTree(fp).query(fp, k=min(8, len(fp)), distance_upper_bound=1.5 * h)
        other = np.isfinite(d) & (owner[np.minimum(idx, len(fp) - 1)] != owner[:, None])
        keep = ~other.any(1)
        if keep.sum() >= 30:
            fp, fn = fp[keep], fn[keep]
    return Geo(-1, pts, nrm, fp, fn, float(np.median([geos[k].area_per_point for k in keys])),
               float(np.median([geos[k].frac_area_per_point for k in keys])), orig, geos[keys[0]].keypoint_ratio)


def place_leftovers(geos: list[Geo], poses: dict[int, np.ndarray], missing: list[int], h: float,
                    rng: np.random.Generator, max_pen_ratio: float = 0.35) -> tuple[dict[int, np.ndarray], list[int]]:
    """Match each piece the tree could not place against the assembly as a whole; best first."""
    poses, missing = dict(poses), list(missing)
    while missing:
        union = _union(geos, poses, h, open_only=True)
        best = None
        for j in missing:
            for c in match_pair(union, geos[j], h, rng, iters=4000):
                contact, pen = overlap(geos, poses, j, c.transform, h)
                if pen > max_pen_ratio * max(contact, 1e-12) or contact < MIN_CONTACT * frac_area(geos[j]):
                    continue
                score = contact - PENALTY * pen
                if best is None or score > best[0]:
                    best = (score, j, c.transform)
        if best is None:
            break
        poses[best[1]] = best[2]
        missing.remove(best[1])
    return poses, missing


def overlap(geos: list[Geo], poses: dict[int, np.ndarray], j: int, pose_j: np.ndarray, h: float) -> tuple[float, float]:
    """(contact, penetration) of piece j at pose_j against all placed pieces."""
    tc = tp = 0.0
    for i, pi in poses.items():
        if i == j:
            continue
        rel = se3.inv(pi) @ pose_j
        # quick reject by bounding spheres
        cj = se3.apply(rel, geos[j].centre[None])[0]
        if np.linalg.norm(geos[i].centre - cj) > geos[i].radius + geos[j].radius + 2 * h:
            continue
        c, p = contact_penetration(geos[i], geos[j], rel, h)
        tc += c
        tp += p
    return tc, tp


def assemble_tree(geos: list[Geo], cands: list[Candidate], root: int, h: float,
                  max_pen_ratio: float = 0.35, first: Candidate | None = None,
                  parents: dict[int, int] | None = None) -> tuple[dict[int, np.ndarray], list[int]]:
    """Best-first spanning tree from ``root``; returns poses (root = identity) and parts left unplaced.

    ``first`` (a candidate with ``i == root``) is placed before anything else: a start of the
    multi-start search, since one wrong early placement is what misleads a single greedy run.
    ``parents`` (filled in when given) records which piece each placement was matched to.

    Lazy greedy: a popped candidate is re-scored against every piece already placed (contact
    with all of them minus penetration into any); if that drops it below the next candidate it
    goes back into the queue. Placements that bite into placed pieces are refused, and ones that
    touch several placed pieces at once (a closing loop) rise to the front.
    """
    poses = {root: np.eye(4)}
    by_target: dict[int, list[Candidate]] = {}
    for c in cands:
        by_target.setdefault(c.i, []).append(c)
    heap: list[tuple[float, int, bool, Candidate]] = []
    counter = 0

    def push(score: float, c: Candidate, rescored: bool) -> None:
        nonlocal counter
        heapq.heappush(heap, (-score, counter, rescored, c))
        counter += 1

    for c in by_target.get(root, []):
        push(priority(c), c, False)
    if first is not None:
        push(float("inf"), first, True)
    placed_p, placed_n = [geos[root].fp], [geos[root].fn]
    tree = cKDTree(placed_p[0])
    dst_p, dst_n = placed_p[0], placed_n[0]
    fitted: dict[int, np.ndarray] = {}
    while heap and len(poses) < len(geos):
        neg, key, rescored, c = heapq.heappop(heap)
        if c.j in poses:
            continue
        pose = fitted.get(key, poses[c.i] @ c.transform)
        if not rescored:
            # settle the piece against everything placed so far before judging it
            g = geos[c.j]
            sub = np.linspace(0, len(g.fp) - 1, min(len(g.fp), 400)).astype(int)
            pose = icp(g.fp[sub], g.fn[sub], dst_p, dst_n, tree, pose, h, iters=10, final_gate=1.5, start_gate=3.0)
            contact, pen = overlap(geos, poses, c.j, pose, h)
            if pen > max_pen_ratio * max(contact, 1e-12) or contact < MIN_CONTACT * frac_area(g):
                continue
            score = priority(c, contact - PENALTY * pen)
            if heap and score < -heap[0][0]:
                fitted[counter] = pose
                push(score, c, True)
                continue
        poses[c.j] = pose
        if parents is not None:
            parents[c.j] = c.i
        placed_p.append(se3.apply(pose, geos[c.j].fp))
        placed_n.append(se3.rotate(pose, geos[c.j].fn))
        dst_p, dst_n = np.concatenate(placed_p), np.concatenate(placed_n)
        tree = cKDTree(dst_p)
        for c2 in by_target.get(c.j, []):
            if c2.j not in poses:
                push(priority(c2), c2, False)
        # candidates already re-scored may now touch the new piece: let them be re-scored again
        heap = [(n, k, False, cc) for n, k, _, cc in heap]
        fitted.clear()
        heapq.heapify(heap)
    missing = [k for k in range(len(geos)) if k not in poses]
    return poses, missing


def _subtree(parents: dict[int, int], j: int) -> set[int]:
    out, grow = {j}, True
    while grow:
        grow = False
        for k, p in parents.items():
            if p in out and k not in out:
                out.add(k)
                grow = True
    return out


def _pair_term(geos: list[Geo], poses: dict[int, np.ndarray], i: int, j: int, h: float) -> tuple[float, float]:
    """(contact, penetration) of placed pieces i and j; (0, 0) when their bounding spheres are apart."""
    rel = se3.inv(poses[i]) @ poses[j]
    cj = se3.apply(rel, geos[j].centre[None])[0]
    if np.linalg.norm(geos[i].centre - cj) > geos[i].radius + geos[j].radius + 2 * h:
        return 0.0, 0.0
    return contact_penetration(geos[i], geos[j], rel, h)


def improve(geos: list[Geo], poses: dict[int, np.ndarray], cands: list[Candidate], parents: dict[int, int],
            root: int, h: float, per_piece: int = 5, sweeps: int = 2) -> dict[int, np.ndarray]:
    """Local search on the whole assembly's score: re-attach a piece, with everything placed
    through it, by another of its pair candidates when that raises the score.

    Why: on validation objects the true assembly scores clearly higher than what the greedy
    tree builds, and a wrong early placement drags the pieces matched to it along, so moves
    take the piece's subtree with it. Only pairs across the moved set change, so only those
    are re-measured.
    """
    poses, parents = dict(poses), dict(parents)
    keys = sorted(poses)
    terms = {(i, j): _pair_term(geos, poses, i, j, h) for a_i, i in enumerate(keys) for j in keys[a_i + 1:]}
    value = lambda t: t[0] - PENALTY * t[1]  # noqa: E731
    by_j: dict[int, list[Candidate]] = {}
    for c in cands:
        by_j.setdefault(c.j, []).append(c)
    for _ in range(sweeps):
        improved = False
        for j in keys:
            if j == root:
                continue
            sub = _subtree(parents, j)
            options = sorted((c for c in by_j.get(j, []) if c.i in poses and c.i not in sub),
                             key=lambda c: -priority(c))
            for c in options[:per_piece]:
                new = poses[c.i] @ c.transform
                same = se3.angle_deg(new[:3, :3], poses[j][:3, :3]) < 3
                if same and np.linalg.norm(new[:3, 3] - poses[j][:3, 3]) < 2 * h:
                    continue
                delta = new @ se3.inv(poses[j])
                trial = dict(poses)
                for k in sub:
                    trial[k] = delta @ poses[k]
                cross = [(min(k, m), max(k, m)) for k in sub for m in keys if m not in sub]
                fresh = {pq: _pair_term(geos, trial, pq[0], pq[1], h) for pq in cross}
                gain = sum(value(fresh[pq]) - value(terms[pq]) for pq in cross)
                if gain > 1e-6:
                    poses = trial
                    terms.update(fresh)
                    parents[j] = c.i
                    improved = True
                    sub = _subtree(parents, j)
        if not improved:
            break
    return poses


def refine(geos: list[Geo], poses: dict[int, np.ndarray], anchor: int, h: float, rounds: int = 3,
           fixed: set[int] | None = None) -> dict[int, np.ndarray]:
    """Re-fit each piece by ICP against all other placed pieces' fracture points, a few rounds."""
    fixed = (fixed or set()) | {anchor}
    poses = {k: v.copy() for k, v in poses.items()}
    for _ in range(rounds):
        for j in list(poses):
            if j in fixed:
                continue
            others = [i for i in poses if i != j]
            if not others:
                continue
            dp = np.concatenate([se3.apply(poses[i], geos[i].fp) for i in others])
            dn = np.concatenate([se3.rotate(poses[i], geos[i].fn) for i in others])
            tree = cKDTree(dp)
            m = icp(geos[j].fp, geos[j].fn, dp, dn, tree, poses[j], h, iters=8, final_gate=1.5)
            c0, p0 = overlap(geos, poses, j, poses[j], h)
            c1, p1 = overlap(geos, poses, j, m, h)
            if c1 - PENALTY * p1 >= c0 - PENALTY * p0:
                poses[j] = m
    return poses


def assembly_score(geos: list[Geo], poses: dict[int, np.ndarray], h: float) -> dict[str, float]:
    """Contact and penetration summed over all touching pairs, as fractions of the fracture area."""
    contact = pen = 0.0
    keys = sorted(poses)
    for a_i, i in enumerate(keys):
        for j in keys[a_i + 1:]:
            rel = se3.inv(poses[i]) @ poses[j]
            cj = se3.apply(rel, geos[j].centre[None])[0]
            if np.linalg.norm(geos[i].centre - cj) > geos[i].radius + geos[j].radius + 2 * h:
                continue
            c, p = contact_penetration(geos[i], geos[j], rel, h)
            contact += c
            pen += p
    frac_area = sum(len(g.fp) * g.frac_area_per_point for g in geos) / 2 + 1e-12
    return {"contact": contact / frac_area, "penetration": pen / frac_area,
            "score": (contact - PENALTY * pen) / frac_area, "placed": len(poses) / len(geos)}


def place_missing(geos: list[Geo], poses: dict[int, np.ndarray], missing: list[int],
                  cands: list[Candidate]) -> dict[int, np.ndarray]:
    """Parts no accepted match reached: use their best candidate anyway, else park them aside."""
    poses = dict(poses)
    for j in missing:
        best = max((c for c in cands if c.j == j and c.i in poses), key=lambda c: c.score, default=None)
        if best is not None:
            poses[j] = poses[best.i] @ best.transform
        else:
            lo = max(np.max(se3.apply(p, geos[i].pts)[:, 0]) for i, p in poses.items())
            off = np.eye(4)
            off[0, 3] = lo + 0.1 - geos[j].pts[:, 0].min()
            poses[j] = off
    return poses


def assemble(parts: list[Part], anchor: int, rng: np.random.Generator, progress=None, iters: int = 8000,
             roots: int = 3, geos: list[Geo] | None = None, starts_from_pairs: int = 5, finish: int = 2,
             cands: list[Candidate] | None = None, improve_sweeps: int = 2
             ) -> tuple[dict[int, np.ndarray], dict, list[Geo], list[Candidate], float]:
    """Pairs, then greedy spanning trees from several starts; the best-scoring assembly wins and
    is expressed with the anchor at identity.

    Starts: each of the ``roots`` largest pieces alone, and the ``starts_from_pairs`` best pair
    candidates placed first. Trees are ranked by the whole assembly's score (total contact minus
    interpenetration), which on validation objects is clearly higher for the true assembly than
    for the greedy's mistakes; the ``finish`` best get their leftover pieces placed."""
    geos = geos or to_geo(parts)
    h = spacing(geos)
    if cands is None:
        cands = all_pairs(geos, h, rng, progress, iters=iters)
    loop_support(geos, cands, h)
    order = list(np.argsort([-p.area for p in parts])[:roots])
    if anchor in order:
        order.remove(anchor)
    starts: list[tuple[int, Candidate | None]] = [(int(r), None) for r in [anchor, *order]]
    forward = sorted((c for c in cands if c.i < c.j), key=lambda c: -priority(c))
    seen: set[tuple[int, int]] = set()
    for c in forward:
        if len(seen) >= starts_from_pairs:
            break
        if (c.i, c.j) not in seen:
            seen.add((c.i, c.j))
            starts.append((c.i, c))
    trees = []
    for k, (root, first) in enumerate(starts):
        if progress is not None:
            progress(1.0, f"assembling: start {k + 1}/{len(starts)}")
        parents: dict[int, int] = {}
        poses, missing = assemble_tree(geos, cands, root, h, first=first, parents=parents)
        trees.append((assembly_score(geos, poses, h)["score"] - 0.5 * len(missing) / len(geos), poses, missing,
                      parents, root))
    trees.sort(key=lambda t: -t[0])
    best = None
    for _, poses, missing, parents, root in trees[:finish]:
        if improve_sweeps:
            poses = improve(geos, poses, cands, parents, root, h, sweeps=improve_sweeps)
        if missing:
            poses, missing = place_leftovers(geos, poses, missing, h, rng)
        if missing:
            poses = place_missing(geos, poses, missing, cands)
        score = assembly_score(geos, poses, h)["score"] - 0.5 * len(missing) / len(geos)
        if best is None or score > best[0]:
            best = (score, poses, missing)
    _, poses, missing = best
    to_anchor = se3.inv(poses[anchor])
    poses = {k: to_anchor @ v for k, v in poses.items()}
    poses = refine(geos, poses, anchor, h)
    info = {"unmatched": [parts[k].name for k in missing]}
    return poses, info, geos, cands, h

"""Per-vertebra measurement: body isolation, local frame, column-height map on a normalised grid.

Everything is computed in physical millimetres: the label map is resampled (trilinear on the binary
mask, so partial volume gives sub-voxel boundaries) on grids laid out in each vertebra's own frame
``(left, anterior, superior)``. That makes spacing, anisotropy and oblique directions irrelevant to the
numbers, and 3 mm TotalSegmentator labels still give heights to a fraction of a voxel.

The height map of every body is stored on the same normalised grid: ``s`` (left-right) and ``t``
(anterior-posterior) run from -1 to 1 across the body's extent (AP extent taken on the central slab).
Neighbouring levels' maps are therefore aligned and scaled to each other by construction, which is
what the pre-fracture reference needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from kintsugi.core import LabelMap

GRID_N = 64  # cells per side of the normalised height map
GRID_EXTENT = 1.2  # the map covers s, t in [-1.2, 1.2]: a margin around the body
SLAB = 0.4  # central slab |s| <= 0.4, i.e. 40 % of the left-right extent (HealthiVert: centre +- 1/5)
KEEP_FRACTION = 0.7  # HealthiVert keeps columns taller than 0.7 x the central column of their line
STEP_A_MM = 1.0  # grid used to find the body and the frame
STEP_W_MM = 0.4  # column sampling along superior-inferior on the fine grid
SECTIONS = ("anterior", "middle", "posterior")
WALL_MARGIN_MM = 3.0  # body kept behind the midline posterior wall (the wall is concave, its corners lie behind)


def grid_coords() -> np.ndarray:
    """Cell centres of the normalised grid (same for s and t)."""
    return np.linspace(-GRID_EXTENT, GRID_EXTENT, GRID_N)


@dataclass
class Vertebra:
    """One labelled vertebra and, once measured, its body's frame and height map."""

    label: int
    level: str
    order: float
    voxels: int
    centroid: np.ndarray  # whole-vertebra centroid, LPS mm
    crop: tuple[slice, slice, slice]
    mask: np.ndarray  # label == value inside ``crop`` (largest piece)
    touches_edge: bool = False
    body_centroid: np.ndarray | None = None
    frame: np.ndarray = field(default_factory=lambda: np.eye(3))  # columns: left, anterior, superior
    u_mid: float = 0.0
    v_mid: float = 0.0
    half_w: float = 0.0
    half_d: float = 0.0
    w_lo: float = 0.0
    w_hi: float = 0.0
    hmap: np.ndarray | None = None  # (t, s) column heights in mm, 0 outside the body
    footprint: np.ndarray | None = None  # (t, s) body columns
    occupancy: np.ndarray | None = None  # (w, t, s) soft body occupancy on the fine grid (for the mesh)
    notes: list[str] = field(default_factory=list)

    @property
    def width_mm(self) -> float:
        return 2 * self.half_w

    @property
    def depth_mm(self) -> float:
        return 2 * self.half_d

    def body_cut_by_edge(self, labels: LabelMap) -> bool:
        """Whether the volume's edge cuts through the *body* (not just a process or the arch).

        A scan that ends inside a body makes it look lower, and a wedge of it looks like a fracture (the
        TotalSegmentator example's T12: its top is cut obliquely, "14.6 % anterior loss"). Only label
        voxels on the volume's border that lie within the measured body's width and depth count.
        """
        if not self.touches_edge or self.body_centroid is None or self.half_w <= 0:
            return False
        start = np.array([s.start for s in self.crop])
        idx = np.argwhere(self.mask) + start
        last = np.array(labels.data.shape) - 1
        border = idx[np.any((idx == 0) | (idx == last), axis=1)]
        if not len(border):
            return False
        local = (labels.geometry.index_to_physical(border[:, ::-1].astype(float)) - self.body_centroid) @ self.frame
        inside = (np.abs(local[:, 0] - self.u_mid) <= self.half_w) & (np.abs(local[:, 1] - self.v_mid) <= self.half_d)
        return int(inside.sum()) >= 3

    def local_to_physical(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Local frame (mm, origin at the body centroid) to LPS points ``(..., 3)``."""
        assert self.body_centroid is not None
        local = np.stack([u, v, w], axis=-1)
        return local @ self.frame.T + self.body_centroid


def _largest_piece(mask: np.ndarray) -> np.ndarray:
    comp, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    return comp == int(np.argmax(sizes))


def collect(labels: LabelMap, levels: dict[int, str]) -> list[Vertebra]:
    """The vertebrae present, superior first, each cropped with its largest connected piece."""
    from kintsugi_spine.levels import order

    data = labels.data
    geo = labels.geometry
    objects = ndimage.find_objects(data.astype(np.int32, copy=False))
    out = []
    for value, level in levels.items():
        if value - 1 >= len(objects) or objects[value - 1] is None:
            continue
        sl = objects[value - 1]
        crop = tuple(slice(max(s.start - 2, 0), min(s.stop + 2, n)) for s, n in zip(sl, data.shape, strict=True))
        mask = _largest_piece(data[crop] == value)
        idx = np.argwhere(mask).astype(float) + [c.start for c in crop]
        touches = any((s.start == 0) or (s.stop == n) for s, n in zip(sl, data.shape, strict=True))
        centroid = geo.index_to_physical(idx.mean(axis=0)[::-1])
        out.append(Vertebra(label=value, level=level, order=order(level), voxels=int(mask.sum()),
                            centroid=centroid, crop=crop, mask=mask, touches_edge=touches))
    out.sort(key=lambda v: v.order)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def _frame(superior: np.ndarray, anterior_hint: np.ndarray) -> np.ndarray:
    """Right-handed-in-LPS frame columns (left, anterior, superior) from two directions."""
    w = _unit(superior)
    a = anterior_hint - (anterior_hint @ w) * w
    if np.linalg.norm(a) < 1e-6:
        a = np.array([0.0, -1.0, 0.0]) - w[1] * -1.0 * w
        if np.linalg.norm(a) < 1e-6:
            a = np.array([1.0, 0.0, 0.0]) - w[0] * w
    v = _unit(a)
    u = np.cross(w, v)  # left = superior x anterior (LPS: (0,0,1) x (0,-1,0) = (1,0,0))
    return np.stack([u, v, w], axis=1)


def _sample(vb: Vertebra, labels: LabelMap, origin: np.ndarray, frame: np.ndarray,
            u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Trilinear mask occupancy (0..1) at local points, array shape (len(w), len(v), len(u))."""
    geo = labels.geometry
    m = np.linalg.inv(geo.direction @ np.diag(geo.spacing))  # physical -> ITK index
    a = m @ frame  # index change per local mm along u, v, w (columns)
    i0 = m @ (origin - np.asarray(geo.origin))
    offset = np.array([c.start for c in vb.crop][::-1], float)  # ITK order (x, y, z)
    i0 = i0 - offset
    uu = u.astype(np.float32)[None, None, :]
    vv = v.astype(np.float32)[None, :, None]
    ww = w.astype(np.float32)[:, None, None]
    coords = [np.float32(i0[r]) + np.float32(a[r, 0]) * uu + np.float32(a[r, 1]) * vv + np.float32(a[r, 2]) * ww
              for r in (2, 1, 0)]  # numpy order z, y, x
    shape = (len(w), len(v), len(u))
    coords = [np.broadcast_to(c, shape) for c in coords]
    return ndimage.map_coordinates(vb.mask.astype(np.float32), coords, order=1, cval=0.0, prefilter=False)


def _local_box(vb: Vertebra, labels: LabelMap, origin: np.ndarray, frame: np.ndarray, pad: float = 2.0):
    idx = np.argwhere(vb.mask)
    lo, hi = idx.min(axis=0) - 0.5, idx.max(axis=0) + 0.5
    corners = np.array([[z, y, x] for z in (lo[0], hi[0]) for y in (lo[1], hi[1]) for x in (lo[2], hi[2])])
    corners = corners + [c.start for c in vb.crop]
    phys = labels.geometry.index_to_physical(corners[:, ::-1])
    local = (phys - origin) @ frame
    return local.min(axis=0) - pad, local.max(axis=0) + pad


def _axes(lo: float, hi: float, step: float) -> np.ndarray:
    n = max(int(np.ceil((hi - lo) / step)) + 1, 2)
    return lo + step * np.arange(n)


def isolate_body(occ: np.ndarray, step: float) -> np.ndarray:
    """Axial footprint (v, u) of the vertebral body in a whole-vertebra occupancy (w, v, u).

    The axial projection of a vertebra is the body plus a ring of posterior elements around the canal,
    attached by two pedicles. An opening with a disc of about half the body's inscribed radius cuts the
    pedicle necks and the processes (all thinner than that) and leaves the body; the piece holding
    the thickest point is the body, grown back by a little to restore the corners the opening rounded.
    """
    proj = occ.any(axis=0)
    if not proj.any():
        return proj
    dist = ndimage.distance_transform_edt(proj) * step
    r = 0.55 * float(dist.max())
    core = dist > r
    opened = ndimage.distance_transform_edt(~core) * step <= r if core.any() else proj.copy()
    comp, n = ndimage.label(opened & proj)
    if n == 0:
        return proj
    seed = np.unravel_index(int(np.argmax(dist)), dist.shape)
    keep = comp == comp[seed] if comp[seed] else comp == int(np.argmax(np.bincount(comp.ravel())[1:]) + 1)
    grow = max(0.35 * r, step)
    body = proj & (ndimage.distance_transform_edt(~keep) * step <= grow)
    # Pedicles thick enough to survive the opening (coarse labels blur their necks) are cut at the
    # posterior wall: walking back from the body's centre along the midline, the first gap is the
    # canal. Everything more than WALL_MARGIN_MM behind that wall is not body.
    r0, c0 = seed
    col = proj[:, max(c0 - 1, 0): c0 + 2].any(axis=1)
    gap = np.flatnonzero(~col[: r0 + 1])
    if len(gap) and col[: gap[-1]].any():
        wall = gap[-1] + 1
        cut = int(np.floor(wall - WALL_MARGIN_MM / step))
        if cut > 0:
            body[:cut] = False
    return body


def _stage_a(vb: Vertebra, labels: LabelMap, origin: np.ndarray, frame: np.ndarray):
    lo, hi = _local_box(vb, labels, origin, frame)
    u, v, w = (_axes(lo[k], hi[k], STEP_A_MM) for k in range(3))
    occ = _sample(vb, labels, origin, frame, u, v, w) >= 0.5
    fp = isolate_body(occ, STEP_A_MM)
    body = occ & fp[None]
    return u, v, w, fp, body


def locate_bodies(vertebrae: list[Vertebra], labels: LabelMap) -> None:
    """First pass: frame from neighbouring whole-vertebra centroids, body centroid per vertebra."""
    for i, vb in enumerate(vertebrae):
        sup = _superior(vertebrae, i, lambda x: x.centroid)
        frame = _frame(sup, np.array([0.0, -1.0, 0.0]))
        u, v, w, _, body = _stage_a(vb, labels, vb.centroid, frame)
        if not body.any():
            vb.body_centroid = vb.centroid.copy()
            continue
        k = np.argwhere(body)
        local = np.array([u[k[:, 2]].mean(), v[k[:, 1]].mean(), w[k[:, 0]].mean()])
        vb.body_centroid = vb.centroid + frame @ local


def _superior(vertebrae: list[Vertebra], i: int, pos) -> np.ndarray:
    """Spine tangent at vertebra ``i`` (towards the head) from its neighbours' positions."""
    above = pos(vertebrae[i - 1]) if i > 0 else None
    below = pos(vertebrae[i + 1]) if i + 1 < len(vertebrae) else None
    here = pos(vertebrae[i])
    if above is not None and below is not None:
        d = above - below
    elif above is not None:
        d = above - here
    elif below is not None:
        d = here - below
    else:
        return np.array([0.0, 0.0, 1.0])  # a single vertebra: patient superior
    n = np.linalg.norm(d)
    return d / n if n > 1e-6 else np.array([0.0, 0.0, 1.0])


def measure(vertebrae: list[Vertebra], labels: LabelMap, i: int) -> None:
    """Second pass for vertebra ``i``: final frame, body footprint, extents and the height map."""
    vb = vertebrae[i]
    assert vb.body_centroid is not None
    sup = _superior(vertebrae, i, lambda x: x.body_centroid)
    hint = vb.body_centroid - vb.centroid  # posterior elements sit behind the body
    hint = hint - (hint @ sup) * sup
    if np.linalg.norm(hint) < 2.0:
        hint = np.array([0.0, -1.0, 0.0])
        vb.notes.append("anterior direction from the patient axes (posterior elements not found)")
    frame = _frame(sup, hint)
    u, v, w, fp, body = _stage_a(vb, labels, vb.body_centroid, frame)
    if not body.any():
        raise ValueError(f"{vb.level} (label {vb.label}): no vertebral body found in the label")
    # Re-centre on this pass's body centroid, so the local origin is the body's centre.
    k = np.argwhere(body)
    shift = np.array([u[k[:, 2]].mean(), v[k[:, 1]].mean(), w[k[:, 0]].mean()])
    vb.body_centroid = vb.body_centroid + frame @ shift
    vb.frame = frame
    u, v, w = u - shift[0], v - shift[1], w - shift[2]
    cols_u = np.flatnonzero(fp.any(axis=0))
    u_lo, u_hi = u[cols_u[0]] - STEP_A_MM / 2, u[cols_u[-1]] + STEP_A_MM / 2
    vb.u_mid, vb.half_w = (u_lo + u_hi) / 2, (u_hi - u_lo) / 2
    slab = np.abs(u - vb.u_mid) <= SLAB * vb.half_w
    rows_v = np.flatnonzero(fp[:, slab].any(axis=1))
    v_lo, v_hi = v[rows_v[0]] - STEP_A_MM / 2, v[rows_v[-1]] + STEP_A_MM / 2
    vb.v_mid, vb.half_d = (v_lo + v_hi) / 2, (v_hi - v_lo) / 2
    rows_w = np.flatnonzero(body.any(axis=(1, 2)))
    vb.w_lo, vb.w_hi = w[rows_w[0]] - STEP_A_MM, w[rows_w[-1]] + STEP_A_MM

    # Fine grid on the normalised (s, t) layout; footprint carried over from the 1 mm grid.
    g = grid_coords()
    uf = vb.u_mid + g * vb.half_w
    vf = vb.v_mid + g * vb.half_d
    wf = _axes(vb.w_lo - 1.0, vb.w_hi + 1.0, STEP_W_MM)
    iu = np.clip(np.rint((uf - u[0]) / STEP_A_MM).astype(int), 0, len(u) - 1)
    iv = np.clip(np.rint((vf - v[0]) / STEP_A_MM).astype(int), 0, len(v) - 1)
    inside_u = (uf >= u[0] - STEP_A_MM / 2) & (uf <= u[-1] + STEP_A_MM / 2)
    inside_v = (vf >= v[0] - STEP_A_MM / 2) & (vf <= v[-1] + STEP_A_MM / 2)
    fine_fp = fp[np.ix_(iv, iu)] & inside_v[:, None] & inside_u[None, :]
    occ = _sample(vb, labels, vb.body_centroid, frame, uf, vf, wf)
    occ = np.clip(occ, 0.0, 1.0) * fine_fp[None]
    vb.occupancy = occ
    vb.hmap = occ.sum(axis=0) * STEP_W_MM
    vb.footprint = fine_fp & (vb.hmap > 0.5)
    vb.hmap = np.where(vb.footprint, vb.hmap, 0.0)
    vb.wf0, vb.wstep = float(wf[0]), STEP_W_MM  # type: ignore[attr-defined]


def sections(obs: np.ndarray, ref: np.ndarray, footprint: np.ndarray) -> dict:
    """RHLV section heights of an observed and a reference map over the same kept columns.

    Kept columns are chosen on the *reference* map (taller than 0.7 x the central column of their
    sagittal line), so a collapsed anterior third of a wedge is measured rather than dropped, as it
    would be if the threshold were applied to the fractured body itself.
    """
    g = grid_coords()
    slab_cols = np.flatnonzero(np.abs(g) <= SLAB)
    masks = {k: np.zeros_like(footprint) for k in SECTIONS}
    for j in slab_cols:
        line = footprint[:, j] & (ref[:, j] > 0)
        rows = np.flatnonzero(line)
        if len(rows) < 3:
            continue
        r = ref[rows, j]
        t_bar = float((g[rows] * r).sum() / r.sum())
        central = rows[int(np.argmin(np.abs(g[rows] - t_bar)))]
        keep = rows[ref[rows, j] > KEEP_FRACTION * ref[central, j]]
        t_min, t_max = g[rows[0]], g[rows[-1]]
        third = (t_max - t_min) / 3
        for rr in keep:
            t = g[rr]
            key = "posterior" if t < t_min + third else ("middle" if t < t_min + 2 * third else "anterior")
            masks[key][rr, j] = True
    out: dict = {"obs": {}, "ref": {}, "masks": masks}
    allm = masks["anterior"] | masks["middle"] | masks["posterior"]
    if not allm.any():
        raise ValueError("the body is too small to measure (no columns in the central slab)")
    for k, m in masks.items():
        if not m.any():
            m = allm
        out["obs"][k] = float(obs[m].mean())
        out["ref"][k] = float(ref[m].mean())
    out["obs"]["overall"] = float(obs[allm].mean())
    out["ref"]["overall"] = float(ref[allm].mean())
    return out


def own_sections(hmap: np.ndarray, footprint: np.ndarray) -> dict[str, float]:
    """Section heights of a map measured against itself (HealthiVert's own-column threshold)."""
    return sections(hmap, hmap, footprint)["obs"]

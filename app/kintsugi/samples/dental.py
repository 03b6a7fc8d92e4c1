"""Dental CBCT phantom: a jaw with teeth on a U-shaped arch, one label per tooth (FDI numbered).

Default data and training data of the tooth-instance plugin, so it is hard where real CBCT is hard:
crowns touch their neighbours at contact facets; roots sit in bone whose cortical plates are nearly
as bright as dentin; a pulp canal runs down each root; metal fillings (and sometimes a metal crown
with filled canals) throw streaks across the axial plane; one or two teeth are missing; the image
is blurred to CBCT resolution and noisy. Values are HU-like (air -1000, soft tissue ~40, cancellous
bone ~450, cortical bone ~1300, dentin ~1850, enamel ~2600, metal > 5000), stored as int16.

Teeth are smooth implicit shapes in each tooth's own frame (u: mesiodistal, positive distal;
v: buccolingual, positive buccal; w: along the long axis from the cemento-enamel junction towards
the crown tip): a superellipsoid crown with cusps, a root trunk and one to three tapered roots,
joined with a smooth minimum. Where two teeth overlap the voxel goes to the one it is deeper
inside, which makes a flat contact facet as in a real dentition.

Labels run 1..N over the teeth present, in FDI order along each arch from the patient's right to
the left (upper 18..11, 21..28, then lower 48..41, 31..38). ``tissues`` holds the tissue code of
every voxel (see :data:`TISSUES`) for tests and for training losses that want, say, a bone mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from kintsugi.core import Geometry, LabelInfo, LabelMap, Volume
from kintsugi.core.layers import palette_color

NAME = "dental"
TITLE = "Dental CBCT phantom"
TASK = "dental.segment_teeth"
DESCRIPTION = (
    "A CBCT-like jaw phantom (HU-like int16) with one label per tooth (FDI numbers): touching crowns, "
    "roots in bone, pulp canals, metal fillings with streak artefacts, missing teeth, noise and blur."
)

TISSUES: dict[str, int] = {
    "air": 0, "soft tissue": 1, "cancellous bone": 2, "cortical bone": 3, "periodontal ligament": 4,
    "lamina dura": 5, "mandibular canal": 6, "dentin": 7, "enamel": 8, "pulp": 9, "metal": 10,
    "root filling": 11,
}
TOOTH_TISSUES = ("dentin", "enamel", "pulp", "metal", "root filling")


@dataclass(frozen=True)
class ToothType:
    """Average dimensions (mm) of one tooth position; the phantom scales them a little per tooth."""

    name: str
    md: float  # mesiodistal crown width
    bl: float  # buccolingual crown width
    crown: float  # crown height (CEJ to tip)
    root: float  # root length (CEJ to apex)
    roots: int  # 1, 2 (lower molars, upper first premolar) or 3 (upper molars)
    form: str  # "incisor", "canine", "premolar", "molar"


LOWER: dict[int, ToothType] = {
    1: ToothType("central incisor", 5.2, 6.0, 9.0, 12.5, 1, "incisor"),
    2: ToothType("lateral incisor", 5.7, 6.3, 9.5, 14.0, 1, "incisor"),
    3: ToothType("canine", 7.0, 7.5, 11.0, 16.0, 1, "canine"),
    4: ToothType("first premolar", 7.0, 7.5, 8.5, 14.0, 1, "premolar"),
    5: ToothType("second premolar", 7.2, 8.0, 8.0, 14.5, 1, "premolar"),
    6: ToothType("first molar", 11.0, 10.5, 7.5, 14.0, 2, "molar"),
    7: ToothType("second molar", 10.5, 10.0, 7.0, 13.0, 2, "molar"),
    8: ToothType("third molar", 10.0, 9.5, 6.5, 11.0, 2, "molar"),
}
UPPER: dict[int, ToothType] = {
    1: ToothType("central incisor", 8.5, 7.0, 10.5, 13.0, 1, "incisor"),
    2: ToothType("lateral incisor", 6.5, 6.0, 9.0, 13.0, 1, "incisor"),
    3: ToothType("canine", 7.5, 8.0, 10.0, 17.0, 1, "canine"),
    4: ToothType("first premolar", 7.0, 9.0, 8.5, 14.0, 2, "premolar"),
    5: ToothType("second premolar", 6.5, 9.0, 7.5, 14.0, 1, "premolar"),
    6: ToothType("first molar", 10.0, 11.0, 7.5, 12.5, 3, "molar"),
    7: ToothType("second molar", 9.0, 11.0, 7.0, 12.0, 3, "molar"),
    8: ToothType("third molar", 8.5, 10.0, 6.5, 11.0, 3, "molar"),
}

_QUADRANTS = {"upper": (1, 2), "lower": (4, 3)}  # (patient's right, patient's left)


@dataclass
class DentalPhantom:
    """The phantom: image, labels, per-tooth truth and what was drawn where."""

    cbct: Volume
    labels: LabelMap
    truth: list[dict[str, Any]]
    tissues: np.ndarray  # (z, y, x) uint8 codes of TISSUES, before blur, noise and artefacts
    teeth: list[dict[str, Any]] = field(default_factory=list)  # fdi, label, type, filling
    missing: list[int] = field(default_factory=list)  # FDI numbers left out


# ----------------------------------------------------------------------------- implicit shapes


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth union: joins crown, trunk and roots without a crease where they meet."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _superellipsoid(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, a: Any, b: Any, c: Any, p: float = 2.6, pz: float = 2.2
) -> np.ndarray:
    """Approximate signed distance (mm) to a superellipsoid: exact in sign, close near the surface."""
    a, b = np.maximum(a, 0.05), np.maximum(b, 0.05)
    c = max(float(c), 0.05)
    xy = (np.abs(x / a) ** p + np.abs(y / b) ** p) ** (pz / p)
    r = (xy + np.abs(z / c) ** pz) ** (1 / pz)
    return (r - 1) * np.minimum(np.minimum(a, b), c)


@dataclass
class _Root:
    u: float  # centre at the furcation (mm)
    v: float
    du: float  # divergence (mm per mm of depth)
    dv: float
    bend: float  # distal curvature of the apical third (mm per mm^2)
    top: float  # w where the root starts (inside trunk or crown)
    length: float  # apex at w = -length
    ru: float  # half-widths at the top
    rv: float

    def axis(self, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.maximum(depth, 0)
        return self.u + self.du * d + self.bend * d * d, self.v + self.dv * d

    def sdf(self, u: np.ndarray, v: np.ndarray, w: np.ndarray, shrink: float = 0.0) -> np.ndarray:
        depth = -w
        t = np.clip(depth / self.length, 0, 1)
        cu, cv = self.axis(depth)
        f = (1 - 0.5 * t) * np.sqrt(np.clip(1 - t**4, 0, 1))
        ru, rv = np.maximum(self.ru * f - shrink, 0.02), np.maximum(self.rv * f - shrink, 0.02)
        rho = np.hypot((u - cu) / ru, (v - cv) / rv)
        d = (rho - 1) * np.minimum(ru, rv)
        au, av = self.axis(np.asarray(self.length))
        beyond = np.sqrt((u - au) ** 2 + (v - av) ** 2 + (w + self.length) ** 2)
        d = np.where(depth > self.length, beyond, d)
        return np.maximum(d, w - self.top)

    def canal(self, u: np.ndarray, v: np.ndarray, w: np.ndarray, radius: float) -> np.ndarray:
        depth = -w
        t = depth / self.length
        cu, cv = self.axis(depth)
        r = radius * (1 - 0.55 * np.clip(t, 0, 1))
        d = np.hypot(u - cu, v - cv) - r
        return np.maximum(np.maximum(d, t - 0.93), w - self.top)


@dataclass
class _Tooth:
    fdi: int
    kind: ToothType
    centre: np.ndarray  # CEJ centre, physical (x, y, z) mm
    frame: np.ndarray  # rows: u (distal), v (buccal), w (towards the crown tip)
    md: float
    bl: float
    crown: float
    roots: list[_Root]
    cusps: list[tuple[float, float, float, float]]  # (u, v, w, radius)
    filling: str | None = None  # None, "occlusal", "mod", "crown"
    filling_box: tuple[float, float, float, float] = (0, 0, 0, 0)  # centre w, half-sizes u, v, w
    root_filled: bool = False

    def local(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        loc = (pts - self.centre) @ self.frame.T
        return loc[:, 0], loc[:, 1], loc[:, 2]

    def crown_sdf(self, u: np.ndarray, v: np.ndarray, w: np.ndarray, shrink: float = 0.0) -> np.ndarray:
        a, b, h = self.md / 2, self.bl / 2, self.crown
        rise = np.clip((w - 0.35 * h) / (0.65 * h), 0, 1)
        form = self.kind.form
        if form == "incisor":
            b = b * (1 - 0.6 * rise)  # thin incisal edge
        elif form == "canine":
            b, a = b * (1 - 0.45 * rise), a * (1 - 0.5 * np.clip((w - 0.55 * h) / (0.45 * h), 0, 1))
        top = 1.0 if form in ("incisor", "canine") else 0.85
        wc = 0.5 * h * top
        body = _superellipsoid(u, v, w - wc, a - shrink, b - shrink, 0.56 * h * top - shrink)
        for cu, cv, cw, r in self.cusps:
            cusp = _superellipsoid(u - cu, v - cv, w - cw, r - shrink, r - shrink, 0.75 * r - shrink, 2.0, 2.0)
            body = _smin(body, cusp, 0.5)
        return body

    def root_sdf(self, u: np.ndarray, v: np.ndarray, w: np.ndarray, shrink: float = 0.0) -> np.ndarray:
        out = self.roots[0].sdf(u, v, w, shrink)
        for r in self.roots[1:]:
            out = _smin(out, r.sdf(u, v, w, shrink), 0.8)
        if len(self.roots) > 1:  # a trunk joins the roots below the crown
            trunk = _superellipsoid(u, v, w + 0.5, 0.42 * self.md - shrink, 0.42 * self.bl - shrink, 3.2, 2.5, 2.5)
            out = _smin(out, trunk, 0.8)
        return out

    def pulp_sdf(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        h = self.crown
        chamber = _superellipsoid(u, v, w - 0.08 * h, 0.2 * self.md / 2 + 0.35, 0.18 * self.bl / 2 + 0.35,
                                  0.17 * h, 2.4, 2.4)
        out = chamber
        for r in self.roots:
            out = _smin(out, r.canal(u, v, w, 0.5), 0.4)
        return out

    def evaluate(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance (mm) and tissue code at ``pts`` (N, 3) physical."""
        u, v, w = self.local(pts)
        crown = self.crown_sdf(u, v, w)
        root = self.root_sdf(u, v, w)
        sdf = _smin(crown, root, 0.6)
        tissue = np.full(u.shape, TISSUES["dentin"], np.uint8)
        core = np.minimum(self.crown_sdf(u, v, w, shrink=1.1), root)
        tissue[(core > 0) & (w > 0)] = TISSUES["enamel"]
        pulp = self.pulp_sdf(u, v, w) < 0
        tissue[pulp] = TISSUES["root filling"] if self.root_filled else TISSUES["pulp"]
        if self.root_filled:
            tissue[pulp & (w > 0.15 * self.crown)] = TISSUES["dentin"]  # the chamber holds a core
        if self.filling == "crown":
            shell = (w > 0.6) & (self.crown_sdf(u, v, w, shrink=1.4) > 0) & (root > 0)
            tissue[shell | ((w > 0.45 * self.crown) & ~pulp)] = TISSUES["metal"]
        elif self.filling:
            cw, hu, hv, hw = self.filling_box
            cavity = _superellipsoid(u, v, w - cw, hu, hv, hw, 4.0, 4.0)
            tissue[cavity < 0] = TISSUES["metal"]
        return sdf, tissue

    def sample_points(self, step: float = 0.5) -> np.ndarray:
        """Physical points inside the tooth on a coarse grid: its true extent, for sizing the grid."""
        box = self.local_extent(0.0)
        axes = [np.arange(box[:, k].min(), box[:, k].max() + step, step) for k in range(3)]
        loc = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        pts = self.centre + loc @ self.frame
        sdf, _ = self.evaluate(pts)
        return pts[sdf < 0]

    def local_extent(self, margin: float = 1.0) -> np.ndarray:
        """Corners of a box in the tooth frame that holds the whole tooth and ``margin`` mm more."""
        length = max(r.length for r in self.roots)
        reach_u = max(abs(r.du) * r.length + abs(r.bend) * r.length**2 for r in self.roots)
        reach_v = max(abs(r.dv) * r.length for r in self.roots)
        a, b = self.md / 2 + margin + reach_u, self.bl / 2 + margin + reach_v
        lo, hi = -length - margin, self.crown + margin
        return np.array([[su * a, sv * b, sw] for su in (-1, 1) for sv in (-1, 1) for sw in (lo, hi)])


# ----------------------------------------------------------------------------------- the arch


@dataclass
class _Arch:
    """The dental arch of one jaw as a dense curve in the axial plane (right to left)."""

    jaw: str
    points: np.ndarray  # (n, 2) x, y mm
    s: np.ndarray  # signed arc length, 0 at the midline, positive towards the patient's left (+x)
    normals: np.ndarray  # (n, 2) buccal unit normals
    occlusal_z: float

    def at(self, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Point, distal tangent and buccal normal at signed arc length ``s``."""
        x = np.interp(s, self.s, self.points[:, 0])
        y = np.interp(s, self.s, self.points[:, 1])
        i = int(np.clip(np.searchsorted(self.s, s), 1, len(self.s) - 1))
        t = self.points[i] - self.points[i - 1]
        t = t / np.linalg.norm(t) * (1 if s >= 0 else -1)
        n = np.array([np.interp(s, self.s, self.normals[:, k]) for k in range(2)])
        return np.array([x, y]), t, n / np.linalg.norm(n)


def _arch_curve(half_width: float, depth: float, power: float, y0: float, n: int = 4000) -> np.ndarray:
    x = np.linspace(0, 2.4 * half_width, n)
    y = y0 + depth * (x / half_width) ** power
    return np.column_stack([x, y])


def _arc_length(curve: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])


def _make_arch(rng: np.random.Generator, jaw: str, types: dict[int, ToothType], scale: float,
               y0: float, occlusal_z: float) -> _Arch:
    """A power-law arch (y ~ |x|^q) whose depth is solved so that the teeth up to the second molars
    end at the chosen half width: the teeth fit their arch with contacts, not gaps."""
    half_width = rng.uniform(21.0, 23.0) + (2.5 if jaw == "upper" else 0.0)
    power = rng.uniform(1.7, 2.3)
    target = scale * sum(types[p].md for p in range(1, 8))
    lo, hi = 5.0, 120.0
    for _ in range(50):
        depth = (lo + hi) / 2
        half = _arch_curve(half_width, depth, power, y0)
        reach = np.interp(half_width, half[:, 0], _arc_length(half))
        lo, hi = (depth, hi) if reach < target else (lo, depth)
    half = _arch_curve(half_width, depth, power, y0)
    full = np.vstack([half[::-1] * [-1, 1], half[1:]])
    s_half = _arc_length(half)
    s = np.concatenate([-s_half[::-1], s_half[1:]])
    tangent = np.gradient(full, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normals = np.column_stack([tangent[:, 1], -tangent[:, 0]])  # right-to-left curve: buccal is +90°
    inner = np.array([0.0, y0 + 1.5 * depth])
    flip = np.sum(normals * (full - inner), axis=1) < 0
    normals[flip] *= -1
    return _Arch(jaw, full, s, normals, occlusal_z)


def _inclination(form: str, jaw: str) -> float:
    """Buccal tilt of the crown (degrees): proclined incisors, upright premolars, lingually tipped
    lower molars (curve of Wilson)."""
    table = {
        "lower": {"incisor": 12.0, "canine": 6.0, "premolar": 0.0, "molar": -8.0},
        "upper": {"incisor": 18.0, "canine": 8.0, "premolar": 3.0, "molar": 4.0},
    }
    return table[jaw][form]


def _make_roots(rng: np.random.Generator, kind: ToothType, md: float, bl: float, length: float,
                crown: float) -> list[_Root]:
    jitter = rng.uniform(0.9, 1.1)
    if kind.roots == 1:
        ru = (0.24 if kind.form == "incisor" else 0.32) * md
        return [_Root(0, 0, 0, 0, rng.uniform(0, 0.006), 0.35 * crown, length, ru, 0.37 * bl * jitter)]
    if kind.roots == 2 and kind.form == "premolar":  # upper first premolar: buccal and palatal
        return [
            _Root(0, 0.2 * bl, 0, 0.03, 0.0, 0.0, length, 0.26 * md, 0.2 * bl),
            _Root(0, -0.2 * bl, 0, -0.03, 0.0, 0.0, length * 0.95, 0.26 * md, 0.2 * bl),
        ]
    spread = rng.uniform(0.03, 0.07)
    bend = rng.uniform(0.0, 0.01)
    if kind.roots == 2:  # lower molars: mesial and distal
        return [
            _Root(-0.25 * md, 0, -spread, 0, bend, -1.0, length, 0.19 * md, 0.38 * bl),
            _Root(0.25 * md, 0, spread, 0, bend, -1.0, length * 0.93, 0.18 * md, 0.36 * bl),
        ]
    return [  # upper molars: two buccal, one palatal
        _Root(-0.24 * md, 0.22 * bl, -spread, 0.02, bend, -1.0, length * 0.92, 0.17 * md, 0.17 * bl),
        _Root(0.24 * md, 0.22 * bl, spread, 0.02, bend, -1.0, length * 0.85, 0.15 * md, 0.15 * bl),
        _Root(0.0, -0.24 * bl, 0, -0.06, 0.0, -1.0, length, 0.2 * md, 0.2 * bl),
    ]


def _cusps(kind: ToothType, md: float, bl: float, crown: float) -> list[tuple[float, float, float, float]]:
    a, b = md / 2, bl / 2
    if kind.form == "premolar":
        r = 0.55 * min(a, b)
        return [(0.0, 0.3 * b, crown - 0.75 * r, r), (0.0, -0.35 * b, crown - 0.75 * r - 0.8, 0.85 * r)]
    if kind.form == "molar":
        r = 0.5 * min(a, b)
        return [(su * 0.45 * a, sv * 0.42 * b, crown - 0.75 * r - (0.3 if sv < 0 else 0.0), r)
                for su in (-1, 1) for sv in (-1, 1)]
    return []


def _place_teeth(rng: np.random.Generator, arch: _Arch, types: dict[int, ToothType], scale: float,
                 missing: set[int], fillings: dict[int, str]) -> list[_Tooth]:
    """Teeth of one jaw at their arch positions, right distal to left distal."""
    teeth = []
    jaw = arch.jaw
    right_q, left_q = _QUADRANTS[jaw]
    up = 1.0 if jaw == "lower" else -1.0  # direction from CEJ to crown tip
    widths = np.array([types[p].md for p in range(1, 9)]) * scale
    centres = (np.cumsum(widths) - widths / 2) * 0.975  # a little closer than their widths: contacts
    order = [(right_q, p) for p in range(8, 0, -1)] + [(left_q, p) for p in range(1, 9)]
    for quadrant, pos in order:
        fdi = 10 * quadrant + pos
        if fdi in missing:
            continue
        kind = types[pos]
        side = 1.0 if quadrant == left_q else -1.0
        xy, t, n = arch.at(side * centres[pos - 1])
        size = scale * rng.uniform(0.96, 1.04)
        md, bl, crown = kind.md * size, kind.bl * size, kind.crown * size
        length = kind.root * scale * rng.uniform(0.92, 1.08)
        overbite = 1.2 if (jaw == "upper" and kind.form == "incisor") else 0.0
        frame = _tooth_frame(rng, t, n, up, _inclination(kind.form, jaw))
        # The crown's middle sits on the arch curve and its tip on the occlusal plane.
        centre_xy = xy - frame[2][:2] * 0.6 * crown
        cej_z = arch.occlusal_z - up * overbite - frame[2][2] * crown + rng.normal(0, 0.25)
        centre = np.array([*centre_xy, cej_z])
        tooth = _Tooth(fdi, kind, centre, frame, md, bl, crown, _make_roots(rng, kind, md, bl, length, crown),
                       _cusps(kind, md, bl, crown))
        _add_filling(rng, tooth, fillings.get(fdi))
        teeth.append(tooth)
    return teeth


def _tooth_frame(rng: np.random.Generator, t: np.ndarray, n: np.ndarray, up: float, tilt_deg: float) -> np.ndarray:
    """Rows u, v, w of a tooth: w tipped buccally by ``tilt_deg`` and mesiodistally a little, then a
    small spin about the long axis (no two teeth stand exactly alike)."""
    t3, n3 = np.array([*t, 0.0]), np.array([*n, 0.0])
    alpha = np.radians(tilt_deg + rng.normal(0, 2.5))
    beta = np.radians(rng.normal(0, 3.0))
    w = np.array([0, 0, up]) * np.cos(alpha) + n3 * np.sin(alpha) + t3 * np.sin(beta)
    w /= np.linalg.norm(w)
    u = t3 - (t3 @ w) * w
    u /= np.linalg.norm(u)
    v = np.cross(w, u)
    if v @ n3 < 0:
        v = -v
    g = np.radians(rng.normal(0, 4.0))
    u, v = np.cos(g) * u + np.sin(g) * v, -np.sin(g) * u + np.cos(g) * v
    return np.vstack([u, v, w])


def _add_filling(rng: np.random.Generator, tooth: _Tooth, kind: str | None) -> None:
    if kind is None:
        return
    tooth.filling = kind
    a, b, h = tooth.md / 2, tooth.bl / 2, tooth.crown
    if kind == "occlusal":
        tooth.filling_box = (h, rng.uniform(0.3, 0.45) * a, rng.uniform(0.25, 0.35) * b, rng.uniform(0.3, 0.45) * h)
    elif kind == "mod":
        tooth.filling_box = (h, 1.3 * a, rng.uniform(0.25, 0.35) * b, rng.uniform(0.35, 0.5) * h)
    else:
        tooth.root_filled = rng.random() < 0.7


# ------------------------------------------------------------------------------------ the grid


def _grid(teeth: list[_Tooth], spacing: tuple[float, float, float]) -> tuple[Geometry, tuple[int, int, int]]:
    """A grid around all teeth with room for bone, lips and cheeks; small on purpose."""
    surface = np.vstack([t.sample_points() for t in teeth])
    lo, hi = surface.min(axis=0), surface.max(axis=0)
    lo = lo - np.array([2.0, 2.0, 3.0])
    hi = hi + np.array([2.0, 1.0, 1.5])
    x_half = max(abs(lo[0]), abs(hi[0]))  # keep the midline at the centre
    lo[0], hi[0] = -x_half, x_half
    sp = np.asarray(spacing, float)
    size = np.ceil((hi - lo) / sp).astype(int) + 1
    return Geometry(tuple(sp), tuple(lo), np.eye(3)), (int(size[2]), int(size[1]), int(size[0]))


def _axial_points(geometry: Geometry, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz, ny, nx = shape
    ox, oy, oz = geometry.origin
    sx, sy, sz = geometry.spacing
    return ox + sx * np.arange(nx), oy + sy * np.arange(ny), oz + sz * np.arange(nz)


# ------------------------------------------------------------------------------------- anatomy


def _arch_coords(arch: _Arch, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed arc length and buccal offset of every axial pixel relative to the arch."""
    xx, yy = np.meshgrid(xs, ys)
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    _, idx = cKDTree(arch.points).query(pts)
    v = np.sum((pts - arch.points[idx]) * arch.normals[idx], axis=1)
    return arch.s[idx].reshape(xx.shape), v.reshape(xx.shape)


def _profile(teeth: list[_Tooth], missing_s: list[float], values: dict[str, float],
             arch: _Arch) -> dict[str, np.ndarray]:
    """Per-tooth quantities (crest height, bone width, tilt) as functions of arc length, so the bone
    follows the teeth; gaps of missing teeth get a lower, resorbed crest."""
    up = 1.0 if arch.jaw == "lower" else -1.0
    rows = []
    for t in teeth:
        s = _signed_s(arch, t.centre[:2])
        tilt = float(t.frame[2] @ np.array([*arch.at(s)[2], 0.0]))  # roots lean the other way
        rows.append((s, t.centre[2] - up * values["crest_gap"], t.bl / 2, tilt))
    for s in missing_s:
        neighbours = sorted(rows, key=lambda r: abs(r[0] - s))[:2]
        crest = np.mean([r[1] for r in neighbours]) - up * values["resorption"]
        rows.append((s, crest, np.mean([r[2] for r in neighbours]), 0.0))
    rows.sort()
    arr = np.array(rows)
    return {"s": arr[:, 0], "crest": arr[:, 1], "half_bl": arr[:, 2], "tilt": arr[:, 3]}


def _signed_s(arch: _Arch, xy: np.ndarray) -> float:
    i = int(np.argmin(np.sum((arch.points - xy) ** 2, axis=1)))
    return float(arch.s[i])


def _jaw_bone(
    arch: _Arch, prof: dict[str, np.ndarray], s: np.ndarray, v: np.ndarray, zs: np.ndarray,
    values: dict[str, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Alveolar bone (and basal body) of one jaw: a rounded bar along the arch whose crest follows
    the teeth and whose centre follows their tilted roots. Returns (inside, depth below surface mm)."""
    up = 1.0 if arch.jaw == "lower" else -1.0
    crest = np.interp(s, prof["s"], prof["crest"])[None]
    half_bl = np.interp(s, prof["s"], prof["half_bl"])[None]
    tilt = np.interp(s, prof["s"], prof["tilt"])[None]
    z = zs[:, None, None]
    below = up * (crest - z)  # mm from the crest into the jaw
    width_crest = half_bl + values["plate"]
    width_base = np.maximum(width_crest + 1.5, 6.5)
    hw = width_crest + (width_base - width_crest) * np.clip(below / 9.0, 0, 1)
    hw = hw * np.sqrt(np.clip(1 - np.exp(-np.maximum(below, 0) / 1.2), 0, 1))
    centre = -tilt * np.clip(below, 0, None) * 0.85
    lateral = hw - np.abs(v[None] - centre)
    inside = (lateral > 0) & (below > 0)
    depth = np.minimum(lateral, below * 1.5)
    return inside, depth


def _palate(arch: _Arch, prof: dict[str, np.ndarray], s: np.ndarray, v: np.ndarray,
            zs: np.ndarray) -> np.ndarray:
    """The hard palate: a bony plate closing the upper arch some 10 mm above the crest."""
    crest = np.interp(s, prof["s"], prof["crest"])[None]
    half_bl = np.interp(s, prof["s"], prof["half_bl"])[None]
    z = zs[:, None, None]
    level = crest + 10.0 + 0.08 * np.minimum(-v[None] - half_bl, 25.0)
    inner = (v[None] < -half_bl) & (np.abs(s[None]) < 40)
    return inner & (z > level) & (z < level + 2.5)


def _canal(arch: _Arch, teeth: list[_Tooth], s: np.ndarray, v: np.ndarray, zs: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """The mandibular canal (inferior alveolar nerve) below the molar and premolar apices: a dark
    tube with a bright rim that a tooth model must not mistake for a root canal."""
    molars = [t for t in teeth if t.kind.form == "molar"] or teeth
    apex_z = min(float((t.centre + t.frame[2] * -max(r.length for r in t.roots))[2]) for t in molars)
    z = zs[:, None, None]
    along = np.abs(s)[None]
    zc = apex_z - 2.0 + 0.05 * np.clip(along - 30, 0, None)
    d = np.hypot(v[None] + 0.8, z - zc)
    on_path = along > 20.0
    return on_path & (d < 1.3), on_path & (d >= 1.3) & (d < 1.8)


# --------------------------------------------------------------------------------- rasterising


def _rasterise_teeth(
    teeth: list[_Tooth], geometry: Geometry, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Label and tooth tissue on the grid; overlapping teeth split at the facet where their
    (approximate) distances are equal."""
    labels = np.zeros(shape, np.int16)
    tissue = np.zeros(shape, np.uint8)
    best = np.full(shape, np.float32(np.inf), np.float32)
    for k, tooth in enumerate(teeth, start=1):
        box = tooth.centre + tooth.local_extent() @ tooth.frame
        idx = geometry.physical_to_index(box)  # (x, y, z) index
        lo = np.maximum(np.floor(idx.min(axis=0)).astype(int) - 3, 0)
        hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 4, np.array(shape[::-1]))
        ii = [np.arange(lo[a], hi[a]) for a in range(3)]
        kk, jj, xx = np.meshgrid(ii[2], ii[1], ii[0], indexing="ij")
        pts = geometry.index_to_physical(np.column_stack([xx.ravel(), jj.ravel(), kk.ravel()]))
        sdf, tis = tooth.evaluate(pts.astype(np.float32))
        sdf = sdf.reshape(kk.shape).astype(np.float32)
        sl = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        win = sdf < best[sl]
        best[sl] = np.where(win, sdf, best[sl])
        inside = win & (sdf < 0)
        labels[sl] = np.where(inside, k, np.where(win, 0, labels[sl]))
        tissue[sl] = np.where(inside, tis.reshape(kk.shape), np.where(win, 0, tissue[sl]))
    return labels, tissue


def _keep_largest(labels: np.ndarray, tissue: np.ndarray) -> None:
    """One connected piece per tooth: voxel crumbs at thin apices or cut facets are dropped."""
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        mine = labels[sl] == k
        comp, n = ndi.label(mine)
        if n > 1:
            sizes = np.bincount(comp.ravel())[1:]
            drop = mine & (comp != int(np.argmax(sizes)) + 1)
            labels[sl][drop] = 0
            tissue[sl][drop] = 0


# ------------------------------------------------------------------------------------ imaging


def _intensities(rng: np.random.Generator, tissues: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """HU-like values per tissue, with trabecular texture in cancellous bone."""
    hu = {
        "air": -1000.0, "soft tissue": rng.uniform(20, 70), "cancellous bone": rng.uniform(380, 520),
        "cortical bone": rng.uniform(1150, 1450), "periodontal ligament": rng.uniform(60, 200),
        "lamina dura": rng.uniform(950, 1200), "mandibular canal": rng.uniform(30, 90),
        "dentin": rng.uniform(1700, 2000), "enamel": rng.uniform(2450, 2900), "pulp": rng.uniform(80, 250),
        "metal": rng.uniform(6000, 8000), "root filling": rng.uniform(2600, 3200),
    }
    lut = np.zeros(256, np.float32)
    for name, code in TISSUES.items():
        lut[code] = hu[name]
    img = lut[tissues]
    trab = ndi.gaussian_filter(rng.standard_normal(tissues.shape, dtype=np.float32), 0.35 / spacing[::-1])
    trab /= trab.std() + 1e-6
    cancellous = tissues == TISSUES["cancellous bone"]
    img[cancellous] += np.float32(260) * np.tanh(1.5 * trab[cancellous])
    return img


def _streaks(rng: np.random.Generator, img: np.ndarray, tissues: np.ndarray, labels: np.ndarray,
             spacing: np.ndarray) -> None:
    """Metal artefacts in the axial plane: bright and dark streaks radiating from each metal object
    and a dark band between pairs of them, scaled by the metal's cross-section in each slice.

    (Beam hardening and photon starvation along rays through metal; CBCT shows them per slice.)"""
    metal = tissues == TISSUES["metal"]
    if not metal.any():
        return
    owners = [int(k) for k in np.unique(labels[metal]) if k]
    ny, nx = img.shape[1:]
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    rays = {k: (rng.uniform(0, np.pi, int(rng.integers(10, 20))), rng.uniform(-1, 0.45, 20),
                rng.uniform(0.6, 1.6, 20)) for k in owners}
    px = float(spacing[0])
    ref_area = 12.0 / px**2  # about a 3.5 mm wide filling
    for z in np.nonzero(metal.any(axis=(1, 2)))[0]:
        objects = []
        for k in owners:
            m = metal[z] & (labels[z] == k)
            if m.any():
                cy, cx = np.argwhere(m).mean(axis=0)
                objects.append((k, cx, cy, float(m.sum())))
        field_ = np.zeros((ny, nx), np.float32)
        for k, cx, cy, area in objects:
            angles, amps, widths = rays[k]
            strength = np.sqrt(area / ref_area)
            dx, dy = xx - cx, yy - cy
            r = np.hypot(dx, dy)
            r_obj = np.sqrt(area / np.pi)
            decay = (r / (r + r_obj)) / (1.0 + r * px / 6.0)  # rays start at the metal's edge
            for ang, amp, wid in zip(angles, amps, widths, strict=False):
                d = dx * -np.sin(ang) + dy * np.cos(ang)
                field_ += 1500 * amp * strength * decay * np.exp(-0.5 * (d / wid) ** 2)
        for i in range(len(objects)):
            for j in range(i + 1, len(objects)):
                _, x1, y1, a1 = objects[i]
                _, x2, y2, a2 = objects[j]
                field_ += _dark_band(xx, yy, (x1, y1), (x2, y2), np.sqrt(min(a1, a2) / ref_area))
        img[z] += field_ * ~metal[z]


def _dark_band(xx: np.ndarray, yy: np.ndarray, p1: tuple[float, float], p2: tuple[float, float],
               strength: float) -> np.ndarray:
    """The dark streak along the line joining two metal objects (the rays that cross both)."""
    d = np.array(p2) - np.array(p1)
    length = float(np.linalg.norm(d)) + 1e-6
    t = ((xx - p1[0]) * d[0] + (yy - p1[1]) * d[1]) / length**2
    perp = np.abs((xx - p1[0]) * d[1] - (yy - p1[1]) * d[0]) / length
    along = np.exp(-np.maximum(np.maximum(-t, t - 1), 0) * length / 15.0)
    return (-700 * strength * along * np.exp(-0.5 * (perp / 2.5) ** 2)).astype(np.float32)


def _finish(rng: np.random.Generator, img: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """CBCT resolution (Gaussian PSF ~0.3 mm), mild cupping, correlated noise, int16."""
    sigma = rng.uniform(0.25, 0.35) / spacing[::-1]
    img = ndi.gaussian_filter(img, sigma)
    nz, ny, nx = img.shape
    zz, yy, xx = np.ogrid[0:nz, 0:ny, 0:nx]
    r2 = ((yy - ny / 2) / (ny / 2)) ** 2 + ((xx - nx / 2) / (nx / 2)) ** 2
    img += np.float32(rng.uniform(40, 120)) * (r2 - 0.5).astype(np.float32)  # cupping
    noise = ndi.gaussian_filter(rng.standard_normal(img.shape, dtype=np.float32), 0.6)
    noise /= noise.std() + 1e-6
    img += np.float32(rng.uniform(45, 90)) * noise
    return np.clip(np.round(img), -1024, 32000).astype(np.int16)


# ---------------------------------------------------------------------------------- the phantom


def _choose_missing(rng: np.random.Generator, jaws: tuple[str, ...]) -> set[int]:
    """One or two missing teeth, mostly molars and premolars (what is usually lost)."""
    weights = {8: 3.0, 7: 1.5, 6: 2.5, 5: 1.5, 4: 1.5, 3: 0.2, 2: 0.4, 1: 0.3}
    candidates = [10 * q + p for jaw in jaws for q in _QUADRANTS[jaw] for p in range(1, 9)]
    w = np.array([weights[c % 10] for c in candidates])
    n = int(rng.integers(1, 3))
    return {int(c) for c in rng.choice(candidates, size=n, replace=False, p=w / w.sum())}


def _choose_fillings(rng: np.random.Generator, jaws: tuple[str, ...], missing: set[int]) -> dict[int, str]:
    posterior = [10 * q + p for jaw in jaws for q in _QUADRANTS[jaw] for p in range(4, 8)
                 if 10 * q + p not in missing]
    n = int(rng.integers(1, 4))
    chosen = rng.choice(posterior, size=min(n, len(posterior)), replace=False)
    kinds = rng.choice(["occlusal", "mod", "crown"], size=len(chosen), p=[0.5, 0.35, 0.15])
    return {int(f): str(k) for f, k in zip(chosen, kinds, strict=True)}


def _truth(labels: np.ndarray, geometry: Geometry, teeth: list[_Tooth]) -> list[dict[str, Any]]:
    """Per label: volume and centroid in physical LPS mm, from the voxels themselves."""
    voxel_mm3 = float(np.prod(geometry.spacing))
    out = []
    k_idx = np.arange(1, len(teeth) + 1)
    counts = ndi.sum_labels(np.ones_like(labels, np.float64), labels, k_idx)
    centres = ndi.center_of_mass(np.ones_like(labels, np.float64), labels, k_idx)
    for k, tooth, n, c in zip(k_idx, teeth, counts, centres, strict=True):
        centroid = geometry.index_to_physical(np.asarray(c)[::-1])
        out.append({"label": int(k), "volume_mm3": round(float(n) * voxel_mm3, 3),
                    "centroid_mm": [round(float(v), 3) for v in centroid], "fdi": tooth.fdi})
    return out


def generate(
    seed: int = 0,
    jaws: tuple[str, ...] = ("lower",),
    spacing: tuple[float, float, float] = (0.4, 0.4, 0.4),
) -> DentalPhantom:
    """A phantom of the given jaws; one jaw at 0.4 mm is about 150 x 150 x 85 voxels."""
    jaws = tuple(j for j in ("upper", "lower") if j in jaws)
    if not jaws:
        raise ValueError("jaws must name 'upper' and/or 'lower'")
    rng = np.random.default_rng(seed)
    sp = np.asarray(spacing, float)
    scale = rng.uniform(0.95, 1.03)
    missing = _choose_missing(rng, jaws)
    fillings = _choose_fillings(rng, jaws, missing)
    gap = rng.uniform(0.3, 2.5)
    arches = {}
    teeth: list[_Tooth] = []
    for jaw in jaws:
        types = LOWER if jaw == "lower" else UPPER
        arch = _make_arch(rng, jaw, types, scale, -2.5 if jaw == "upper" else 0.0, gap if jaw == "upper" else 0.0)
        arches[jaw] = arch
        teeth += _place_teeth(rng, arch, types, scale, missing, fillings)
    geometry, shape = _grid(teeth, tuple(sp))
    labels, tooth_tissue = _rasterise_teeth(teeth, geometry, shape)
    _keep_largest(labels, tooth_tissue)
    # Exact distance to the nearest tooth (mm): the implicit shapes' distances are only approximate,
    # and the ligament and lamina dura are thinner than their error.
    dist = ndi.distance_transform_edt(labels == 0, sampling=tuple(sp[::-1])).astype(np.float32)
    tissues = _anatomy(rng, arches, teeth, missing, geometry, shape, dist)
    tissues[labels > 0] = tooth_tissue[labels > 0]
    img = _intensities(rng, tissues, sp)
    _streaks(rng, img, tissues, labels, sp)
    cbct = _finish(rng, img, sp)
    return _assemble(cbct, labels, tissues, geometry, teeth, missing, seed)


def _anatomy(rng: np.random.Generator, arches: dict[str, _Arch], teeth: list[_Tooth], missing: set[int],
             geometry: Geometry, shape: tuple[int, int, int], dist: np.ndarray) -> np.ndarray:
    """Tissue codes outside the teeth: jaw bone with cortical plates, the sockets' ligament and
    lamina dura, the mandibular canal, the palate, soft tissue, and air in the mouth and outside."""
    xs, ys, zs = _axial_points(geometry, shape)
    z = zs[:, None, None]
    tissues = np.full(shape, TISSUES["soft tissue"], np.uint8)
    values = {"crest_gap": rng.uniform(1.2, 2.0), "resorption": rng.uniform(1.0, 2.5),
              "plate": rng.uniform(1.0, 1.8), "cortex": rng.uniform(1.2, 2.0)}
    skin = rng.uniform(9.0, 13.0)
    bone_any = np.zeros(shape, bool)
    outside = np.ones(shape[1:], bool)  # beyond the lips and cheeks of every arch
    band = np.zeros(shape[1:], bool)  # around the crowns: vestibule and tongue side
    cheeks = np.zeros(shape[1:], bool)  # inside the cheeks
    mouth = np.ones(shape, bool)  # between the gingivae
    for jaw, arch in arches.items():
        up = 1.0 if jaw == "lower" else -1.0
        s, v = _arch_coords(arch, xs, ys)
        jaw_teeth = [t for t in teeth if (t.fdi // 10) in _QUADRANTS[jaw]]
        missing_s = [_missing_s(arch, m, jaw_teeth) for m in missing if (m // 10) in _QUADRANTS[jaw]]
        prof = _profile(jaw_teeth, [m for m in missing_s if m is not None], values, arch)
        bone, depth = _jaw_bone(arch, prof, s, v, zs, values)
        if jaw == "upper":
            bone |= _palate(arch, prof, s, v, zs)
        tissues[bone] = TISSUES["cancellous bone"]
        cortex = values["cortex"] * np.clip(0.5 + depth / 10, 0.5, 1.0)
        tissues[bone & (depth < cortex)] = TISSUES["cortical bone"]
        if jaw == "lower":
            canal, rim = _canal(arch, jaw_teeth, s, v, zs)
            tissues[canal & bone] = TISSUES["mandibular canal"]
            tissues[rim & bone] = TISSUES["cortical bone"]
        bone_any |= bone
        half_bl = np.interp(s, prof["s"], prof["half_bl"])
        crest = np.interp(s, prof["s"], prof["crest"])
        outside &= v > half_bl + skin
        band |= (v > -half_bl - 3.0) & (v < half_bl + 3.5)
        cheeks |= v < half_bl + 6.0
        mouth &= up * (z - crest[None]) > 2.2  # past this jaw's gingiva
    lower_occ = arches["lower"].occlusal_z + 0.4 if "lower" in arches else -np.inf
    upper_occ = arches["upper"].occlusal_z - 0.4 if "upper" in arches else np.inf
    opening = (z > lower_occ) & (z < upper_occ) & cheeks[None]  # the mouth is slightly open
    air = ((mouth & band[None]) | opening) & ~bone_any
    tissues[air] = TISSUES["air"]
    tissues[:, outside] = TISSUES["air"]
    bone_like = np.isin(tissues, [TISSUES["cancellous bone"], TISSUES["cortical bone"]])
    tissues[bone_like & (dist > 0) & (dist <= 0.4)] = TISSUES["periodontal ligament"]
    tissues[bone_like & (dist > 0.4) & (dist <= 0.9)] = TISSUES["lamina dura"]
    return tissues


def _missing_s(arch: _Arch, fdi: int, teeth: list[_Tooth]) -> float | None:
    """Arc length of a missing tooth: midway between its neighbours on the arch."""
    here = {t.fdi: _signed_s(arch, t.centre[:2]) for t in teeth}
    q, p = divmod(fdi, 10)
    near = [here[10 * q + p + d] for d in (-1, 1) if 10 * q + p + d in here]
    if p == 1:
        other = {1: 2, 2: 1, 3: 4, 4: 3}[q]
        near += [here[10 * other + 1]] if 10 * other + 1 in here else []
    return float(np.mean(near)) if near else None


def _assemble(cbct: np.ndarray, labels: np.ndarray, tissues: np.ndarray, geometry: Geometry,
              teeth: list[_Tooth], missing: set[int], seed: int) -> DentalPhantom:
    infos = {k: LabelInfo(f"tooth {t.fdi}", palette_color(k - 1)) for k, t in enumerate(teeth, start=1)}
    meta = {"seed": seed, "sample": NAME, "tissues": dict(TISSUES)}
    volume = Volume(name="cbct", data=cbct, geometry=geometry, modality="CBCT", unit="HU", metadata=meta)
    label_map = LabelMap(name="teeth_labels", data=labels, geometry=geometry, labels=infos,
                         metadata={"seed": seed, "sample": NAME})
    desc = [{"fdi": t.fdi, "label": k, "type": t.kind.name, "filling": t.filling, "root_filled": t.root_filled}
            for k, t in enumerate(teeth, start=1)]
    return DentalPhantom(volume, label_map, _truth(labels, geometry, teeth), tissues, desc, sorted(missing))


def make(out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write ``cbct.nii.gz``, ``teeth_labels.nii.gz`` and ``teeth.json`` (the truth)."""
    from kintsugi.io import write_json, write_volume

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ph = generate(seed)
    return [
        write_volume(ph.cbct, out / "cbct.nii.gz"),
        write_volume(ph.labels, out / "teeth_labels.nii.gz"),
        write_json(ph.truth, out / "teeth.json"),
    ]

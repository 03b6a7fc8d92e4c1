"""Spine CT phantom with known vertebral compression fractures.

The phantom is the default data of the spine height-loss task and part of its training data, so its
anatomy has to survive that task's algorithm (body isolated from the label, local frame along the
spine curve, column heights over the central 40 % left-right slab, AP thirds) and its truth has to be
*measured*, not asserted: every vertebra is an analytic solid in its own rigid frame, the truth
heights come from running the RHLV definition on that analytic solid before and after compression,
and the CT/label volumes are the same solids sampled on a (possibly oblique) voxel grid.

Conventions: physical space is LPS millimetres (+x patient left, +y posterior, +z superior). Each
vertebra has a local frame ``(u, v, w)``: ``u`` towards patient left, ``v`` towards *anterior*,
``w`` superior along the spine curve, origin at the body centre. Labels follow VerSe numbering
(1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6) and the posterior elements carry their body's label.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from kintsugi.core import Geometry, LabelInfo, LabelMap, Volume
from kintsugi.core.layers import palette_color

NAME = "spine"
TITLE = "Spine CT phantom"
TASK = "spine.height_loss"
DESCRIPTION = (
    "Synthetic CT of a thoracolumbar spine segment (default T11-L4) with VerSe vertebra labels and "
    "known wedge, biconcave and crush compression fractures; truth.json holds the measured anterior/"
    "middle/posterior heights, height loss and Genant grade of every vertebra."
)

LEVEL_NAMES: tuple[str, ...] = tuple(
    [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 7)]
)
VERSE_LABELS: dict[str, int] = {name: i + 1 for i, name in enumerate(LEVEL_NAMES)}
MORPHOLOGIES: tuple[str, ...] = ("wedge", "biconcave", "crush")
MAX_SEVERITY = 0.6

# Oblique volumes rotate the grid about a fixed axis that mixes all three patient axes, so that no
# array axis stays aligned with anatomy and a measuring algorithm has to work in physical mm.
_OBLIQUE_AXIS = np.array([1.0, 0.5, 0.8]) / np.linalg.norm([1.0, 0.5, 0.8])

# Anatomy by VerSe number, interpolated between anchors (mm and degrees): rounded values within the
# usual adult morphometric ranges. The phantom has to be plausible to a height-loss algorithm (sizes,
# proportions, lordosis/kyphosis, narrow pedicles it can cut the body from), not a morphometric atlas.
_ANCHOR_N = np.array([3, 7, 8, 13, 17, 19, 20, 22, 24, 25], dtype=float)
_ANCHORS: dict[str, list[float]] = {
    "width": [16, 22, 26, 28, 36, 41, 43, 47, 50, 50],  # body, left-right
    "depth": [15, 16, 17, 25, 28, 30, 31, 33, 34, 34],  # body, anterior-posterior (midline)
    "height": [13, 14, 16, 19, 22, 24, 25, 26.5, 26, 26],  # body, superior-inferior (centre)
    "disc": [5, 5, 4, 4.5, 6, 7.5, 9, 11, 11, 10],  # disc below this vertebra, at the centre
    "wedge": [0, 0, -1.0, -1.5, -1.5, -1.0, -1.0, 0.0, 2.0, 2.0],  # anterior minus posterior height
    "seg": [4, 0, -2, -4, -3, 0, 3.5, 7, 11, 11],  # sagittal angle to the vertebra below (+ lordosis, supine)
    "ped_w": [5, 6, 7, 5, 7, 8, 8, 10, 13, 13],
    "ped_h": [7, 7, 9, 11, 13, 14, 14, 15, 15, 15],
    "canal_w": [24, 22, 18, 16, 17, 20, 22, 24, 26, 26],
    "canal_d": [14, 14, 15, 16, 16, 17, 17, 16, 16, 16],
    "lamina_t": [3, 4, 5, 5, 5, 6, 6, 6, 6, 6],
    "sp_len": [15, 25, 28, 32, 28, 25, 25, 26, 20, 20],
    "sp_angle": [15, 25, 35, 55, 35, 15, 8, 5, 10, 10],  # downward tilt of the spinous process
    "sp_h": [6, 8, 8, 8, 9, 14, 16, 18, 14, 14],
    "sp_t": [4, 5, 5, 5, 6, 6, 7, 7, 7, 7],
    "tp_span": [25, 35, 38, 34, 30, 20, 33, 40, 42, 42],  # midline to transverse-process tip
    "tp_r": [3, 3.5, 5, 5, 5, 4, 4, 4.5, 5.5, 5.5],
    "tp_back": [0, 10, 30, 35, 30, 15, 5, 0, 0, 0],  # posterior sweep of the transverse process
    "facet_r": [3, 3.5, 4, 4, 4, 4.5, 4.5, 5, 5.5, 5.5],
}

# HU of the tissues (before partial-volume blur and noise).
_HU = {
    "air": -1000.0, "fat": -100.0, "retro_fat": -85.0, "muscle": 45.0, "csf": 15.0,
    "nucleus": 70.0, "annulus": 95.0, "cortical": 950.0, "posterior_marrow": 320.0,
}
_SHELL_MM = 1.0  # cortical thickness of body walls and posterior elements
_ENDPLATE_MM = 0.8  # cortical endplate thickness
_PSF_SIGMA_MM = 0.5  # scanner blur: the 1 mm shell then reads ~600-800 HU at voxel centres, as on CT

# Sections of the RHLV measurement.
_SECTIONS = ("anterior", "middle", "posterior")
_KEEP_FRACTION = 0.7  # HealthiVert keeps columns taller than 0.7 x the central column


@dataclass
class SpinePhantom:
    """A generated phantom: CT, vertebra labels and the measured truth that matches them."""

    ct: Volume
    labels: LabelMap
    truth: dict[str, Any]


@dataclass
class _Vertebra:
    """One vertebra's analytic model; every length in mm, in the local ``(u, v, w)`` frame."""

    level: str
    label: int
    p: dict[str, float]
    disc_above: float = 0.0
    disc_below: float = 0.0
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    frame: np.ndarray = field(default_factory=lambda: np.eye(3))  # columns: left, anterior, superior
    morphology: str = "normal"
    severity: float = 0.0
    amplitude: float = 0.0
    f_sup: float = 0.5
    hu_cancellous: float = 200.0

    # Derived shape constants of the body.
    @property
    def a(self) -> float:
        return self.p["width"] / 2

    @property
    def b_ant(self) -> float:
        return self.p["depth"] / 2

    @property
    def indent(self) -> float:
        """Depth of the posterior-wall concavity that the spinal canal presses into the body."""
        return 0.06 * self.p["depth"]

    @property
    def b_post(self) -> float:
        return self.p["depth"] / 2 + self.indent

    @property
    def cavity(self) -> float:
        """Normal endplate concavity (mm at the centre of each endplate)."""
        return 0.8

    @property
    def rim(self) -> float:
        """Radius of the rounded rim where endplate meets wall; real bodies have it, and it is why
        RHLV ignores columns much shorter than the central one."""
        return 2.5

    def to_physical(self, local: np.ndarray) -> np.ndarray:
        return np.asarray(local, float) @ self.frame.T + self.center


# ---------------------------------------------------------------------------------------------
# Analytic vertebra


def _footprint(vb: _Vertebra, u: np.ndarray, v: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Axial cross-section of the body: (inside, approximate in-plane depth in mm).

    A rounder anterior half and a squarer posterior half with a shallow canal indentation give the
    kidney-like outline of real bodies, which matters because the AP thirds are cut per sagittal line.
    """
    a = vb.a * scale
    b_ant = vb.b_ant * scale
    b_post = vb.b_post * scale
    ant = v >= 0
    b = np.where(ant, b_ant, b_post).astype(u.dtype)
    pexp = np.where(ant, 2.2, 3.2).astype(u.dtype)
    au = np.abs(u) / a + 1e-6
    av = np.abs(v) / b + 1e-6
    pu = au**pexp
    pv = av**pexp
    f = pu + pv
    grad = np.hypot(pexp * pu / au / a, pexp * pv / av / b)
    d_outline = (1.0 - f) / np.maximum(grad, 0.05)  # first-order distance to the superellipse
    wall = -b_post + vb.indent * scale * np.clip(1.0 - (u / a) ** 2, 0.0, None) ** 2
    depth = np.minimum(d_outline, v - wall)
    return depth >= 0, depth


def _deformation_profile(vb: _Vertebra, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Relative height loss per column at unit amplitude, by morphology.

    wedge: zero at the posterior wall rising linearly to the anterior wall; biconcave: a bowl centred
    in the body, zero at the walls; crush: uniform (posterior wall included).
    """
    if vb.morphology == "wedge":
        return np.clip((v + vb.b_ant) / (2 * vb.b_ant), 0.0, 1.0)
    if vb.morphology == "biconcave":
        r2 = (u / (0.85 * vb.a)) ** 2 + (v / (0.45 * vb.p["depth"])) ** 2
        return np.clip(1.0 - r2, 0.0, 1.0)
    if vb.morphology == "crush":
        return np.ones_like(u)
    return np.zeros_like(u)


def _endplates(
    vb: _Vertebra, u: np.ndarray, v: np.ndarray, depth2d: np.ndarray, deformed: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Superior and inferior endplate heights ``w`` per column, and how far each one collapsed."""
    half = vb.p["height"] / 2 + (vb.p["wedge"] / vb.p["depth"]) * v / 2
    cav = vb.cavity * np.clip(1.0 - (u / (0.8 * vb.a)) ** 2 - (v / (0.8 * vb.b_ant)) ** 2, 0.0, None)
    r = vb.rim
    dd = np.clip(depth2d, 0.0, r)
    rim = r - np.sqrt(np.clip(r * r - (r - dd) ** 2, 0.0, None))
    top = half - cav - rim
    bot = -half + cav + rim
    zero = np.zeros_like(top)
    if not deformed or vb.amplitude <= 0:
        return top, bot, zero, zero
    delta = vb.amplitude * _deformation_profile(vb, u, v) * (top - bot)
    d_top = vb.f_sup * delta
    d_bot = (1.0 - vb.f_sup) * delta
    return top - d_top, bot + d_bot, d_top, d_bot


def _ellipse_depth(x: np.ndarray, y: np.ndarray, ax: float, by: float) -> np.ndarray:
    """First-order signed distance to an ellipse (positive inside)."""
    q = (x / ax) ** 2 + (y / by) ** 2
    g = 2.0 * np.hypot(x / ax**2, y / by**2)
    return (1.0 - q) / np.maximum(g, 0.05)


def _capsule_depth(
    u: np.ndarray, v: np.ndarray, w: np.ndarray, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float
) -> np.ndarray:
    """Signed depth inside a tapered capsule from ``p0`` (radius r0) to ``p1`` (radius r1)."""
    d = p1 - p0
    length2 = float(d @ d)
    t = ((u - p0[0]) * d[0] + (v - p0[1]) * d[1] + (w - p0[2]) * d[2]) / length2
    t = np.clip(t, 0.0, 1.0)
    dist = np.sqrt((u - p0[0] - t * d[0]) ** 2 + (v - p0[1] - t * d[1]) ** 2 + (w - p0[2] - t * d[2]) ** 2)
    return (r0 + (r1 - r0) * t) - dist


def _arch_geometry(vb: _Vertebra) -> dict[str, float]:
    """Neural-arch layout in the local frame, derived from the body so the parts always join."""
    p = vb.p
    ped_w = p["ped_w"]
    ai = min(p["canal_w"] / 2, 0.85 * vb.a - ped_w / 2 - 1.0)  # canal half-width (crude for cervical)
    bi = p["canal_d"] / 2
    v_pw = -vb.b_ant  # posterior body wall at the midline
    v_cc = v_pw - bi  # canal centre
    ao = ai + ped_w
    bo = bi + p["lamina_t"]
    h = p["height"]
    w_ped = h / 2 - p["ped_h"] / 2 - 1.0
    w_lam = -0.1 * h
    return {"ai": ai, "bi": bi, "ao": ao, "bo": bo, "v_pw": v_pw, "v_cc": v_cc, "w_ped": w_ped,
            "w_lam": w_lam, "h_ped": p["ped_h"] / 2, "h_lam": 0.4 * h}


def _spinous_axis(vb: _Vertebra) -> tuple[np.ndarray, np.ndarray]:
    g = _arch_geometry(vb)
    phi = math.radians(vb.p["sp_angle"])
    root = np.array([0.0, g["v_cc"] - g["bo"] + 2.0, g["w_lam"]])
    direction = np.array([0.0, -math.cos(phi), -math.sin(phi)])
    return root, direction


def _tp_points(vb: _Vertebra, side: float) -> tuple[np.ndarray, np.ndarray]:
    g = _arch_geometry(vb)
    w_tp = 0.5 * (g["w_ped"] + g["w_lam"])
    base = np.array([side * (g["ao"] - 1.0), g["v_cc"], w_tp])
    span = vb.p["tp_span"]
    back = math.tan(math.radians(vb.p["tp_back"])) * (span - g["ao"])
    tip = np.array([side * span, g["v_cc"] - back, w_tp + 0.1 * back])
    return base, tip


def _facet_points(vb: _Vertebra, side: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Superior and inferior articular processes, as capsules from base to tip.

    The inferior process sits posteromedial to the superior one by two radii plus a 2.5 mm joint
    space, so it lies beside (not on top of) the superior process of the vertebra below, as in a real
    facet joint, and neighbouring labels stay apart.
    """
    g = _arch_geometry(vb)
    h = vb.p["height"]
    r = vb.p["facet_r"]
    off = (2 * r + 2.5) / math.sqrt(2.0)
    u_sup = side * (g["ao"] - 0.5)
    u_inf = side * (g["ao"] - 0.5 - off)
    sup = (np.array([u_sup, g["v_cc"] - 1.0, g["w_ped"]]),
           np.array([u_sup, g["v_cc"] - 2.0, h / 2 + 0.6 * vb.disc_above]))
    inf = (np.array([u_inf, g["v_cc"] - 1.0 - off, g["w_lam"]]),
           np.array([u_inf, g["v_cc"] - 2.0 - off, -h / 2 - 0.4 * vb.disc_below]))
    return [sup, inf]


def _posterior_depth(vb: _Vertebra, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Signed depth inside the union of the posterior elements (arch, processes)."""
    g = _arch_geometry(vb)
    vc = v - g["v_cc"]
    planar = np.minimum(_ellipse_depth(u, vc, g["ao"], g["bo"]), -_ellipse_depth(u, vc, g["ai"], g["bi"]))
    front = (g["v_pw"] + 2.0) - v  # overlap the posterior wall by 2 mm so arch and body join
    t = np.clip((g["v_pw"] - v) / (g["bi"] + g["bo"]), 0.0, 1.0)  # 0 at the pedicle root, 1 at the lamina
    wc = g["w_ped"] + (g["w_lam"] - g["w_ped"]) * t
    hh = g["h_ped"] + (g["h_lam"] - g["h_ped"]) * t
    depth = np.minimum(np.minimum(planar, front), hh - np.abs(w - wc))

    root, e = _spinous_axis(vb)
    dv, dw = v - root[1], w - root[2]
    along = dv * e[1] + dw * e[2]
    across = -dv * e[2] + dw * e[1]
    length = vb.p["sp_len"]
    taper = 1.0 - 0.35 * np.clip(along / length, 0.0, 1.0)
    sp = np.minimum(
        np.minimum(vb.p["sp_t"] / 2 * taper - np.abs(u), vb.p["sp_h"] / 2 * taper - np.abs(across)),
        np.minimum(along + 4.0, length - along),
    )
    depth = np.maximum(depth, sp)
    r_tp = vb.p["tp_r"]
    r_f = vb.p["facet_r"]
    for side in (-1.0, 1.0):
        base, tip = _tp_points(vb, side)
        depth = np.maximum(depth, _capsule_depth(u, v, w, base, tip, r_tp, 0.75 * r_tp))
        for p0, p1 in _facet_points(vb, side):
            depth = np.maximum(depth, _capsule_depth(u, v, w, p0, p1, r_f, 0.85 * r_f))
    return depth


def _local_bounds(vb: _Vertebra) -> np.ndarray:
    """Local (u, v, w) box that holds the whole vertebra, rows min and max."""
    g = _arch_geometry(vb)
    root, e = _spinous_axis(vb)
    tip = root + vb.p["sp_len"] * e
    u_max = vb.p["tp_span"] + vb.p["tp_r"] + 1.0
    v_min = min(tip[1] - vb.p["sp_h"] / 2, g["v_cc"] - g["bo"]) - 2.0
    h = vb.p["height"]
    w_lo = min(-h / 2 - 0.6 * vb.disc_below - vb.p["facet_r"], tip[2] - vb.p["sp_h"] / 2) - 2.0
    w_hi = h / 2 + 0.6 * vb.disc_above + vb.p["facet_r"] + 2.0
    return np.array([[-u_max, v_min, w_lo], [u_max, vb.b_ant + 2.0, w_hi]])


def _box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


# ---------------------------------------------------------------------------------------------
# Truth: the RHLV measurement on the analytic body


def genant_grade(loss: float) -> int:
    """Genant semi-quantitative grade from a fractional height loss (0: <20 %, 1: 20-25 %, 2: 25-40 %,
    3: >40 %); rounded first so a loss computed as 0.2499999 still lands in the bin it was built for."""
    x = round(float(loss), 6)
    if x < 0.20:
        return 0
    if x < 0.25:
        return 1
    if x <= 0.40:
        return 2
    return 3


def _measure(vb: _Vertebra, step: float = 0.1) -> dict[str, Any]:
    """RHLV-style heights of the body before and after compression, on a fine analytic grid.

    As HealthiVert codes it: the central sagittal slab (centre +- 1/5 of the body's left-right
    extent), per sagittal line the AP extent split into thirds, column height along the body's own
    SI axis (analytic, so exact rather than a voxel count), mean over kept columns. Unlike HealthiVert
    the kept columns are chosen once, on the *uncompressed* body (taller than 0.7 x the central
    column of their sagittal line, which drops the rounded rims), and the same columns are measured
    after compression. HealthiVert thresholds each body against its own central column, which for a
    severe wedge (anterior < 0.7 x middle) silently drops exactly the collapsed columns; the truth
    should report them. With a fixed column set the loss is linear in the deformation amplitude.
    """
    u = np.arange(-vb.a, vb.a + step / 2, step)
    v = np.arange(-vb.b_post, vb.b_ant + step / 2, step)
    uu, vv = np.meshgrid(u, v)  # (nv, nu)
    inside, depth = _footprint(vb, uu, vv)
    top_r, bot_r, _, _ = _endplates(vb, uu, vv, depth, deformed=False)
    top_d, bot_d, _, _ = _endplates(vb, uu, vv, depth, deformed=True)
    h_ref = np.where(inside, top_r - bot_r, 0.0)
    h_def = np.where(inside, top_d - bot_d, 0.0)

    cols = np.flatnonzero(inside.any(axis=0))
    u_lo, u_hi = u[cols[0]], u[cols[-1]]
    slab = np.abs(u - (u_lo + u_hi) / 2) <= (u_hi - u_lo) / 5
    ins = inside[:, slab]
    hr = h_ref[:, slab]
    hd = h_def[:, slab]
    vs = np.broadcast_to(v[:, None], ins.shape)
    v_min = np.where(ins, vs, np.inf).min(axis=0)
    v_max = np.where(ins, vs, -np.inf).max(axis=0)
    v_bar = (hr * vs).sum(axis=0) / hr.sum(axis=0)  # HealthiVert: mean AP position of the slice's voxels
    central = np.argmin(np.where(ins, np.abs(vs - v_bar), np.inf), axis=0)
    h_central = hr[central, np.arange(hr.shape[1])]
    keep = ins & (hr > _KEEP_FRACTION * h_central)
    third = (v_max - v_min) / 3
    sections = {
        "posterior": keep & (vs < v_min + third),
        "middle": keep & (vs >= v_min + third) & (vs < v_min + 2 * third),
        "anterior": keep & (vs >= v_min + 2 * third),
    }
    ref = {k: float(hr[m].mean()) for k, m in sections.items()}
    obs = {k: float(hd[m].mean()) for k, m in sections.items()}
    ref_all, obs_all = float(hr[keep].mean()), float(hd[keep].mean())
    loss = {k: (ref[k] - obs[k]) / ref[k] for k in _SECTIONS}
    loss["overall"] = (ref_all - obs_all) / ref_all

    # Body centroid of the compressed body (column-height weighted), for the label cross-check.
    wgt = h_def
    mid_w = np.where(inside, (top_d + bot_d) / 2, 0.0)
    local = np.array([(uu * wgt).sum(), (vv * wgt).sum(), (mid_w * wgt).sum()]) / wgt.sum()
    return {"ref": ref, "obs": obs, "loss": loss, "centroid_local": local}


def _calibrate(vb: _Vertebra) -> None:
    """Choose the deformation amplitude so the affected section loses exactly the nominal severity.

    Loss is linear in amplitude (fixed column set, heights scale by 1 - A g), so one measurement
    suffices. Affected section: anterior for a wedge, middle for a biconcave, the
    largest for a crush (all three are equal there).
    """
    if vb.morphology == "normal" or vb.severity <= 0:
        vb.amplitude = 0.0
        return
    vb.amplitude = 0.5  # any amplitude that leaves every column a positive height
    unit = {k: x / 0.5 for k, x in _measure(vb)["loss"].items()}
    vb.amplitude = 0.0
    section = {"wedge": "anterior", "biconcave": "middle"}.get(vb.morphology)
    r = unit[section] if section else max(unit[s] for s in _SECTIONS)
    vb.amplitude = vb.severity / r


# ---------------------------------------------------------------------------------------------
# Building the spine


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], float)


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], float)


def _rot_axis(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation about a unit axis."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * (kx @ kx)


def _align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation taking direction ``a`` onto direction ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis)
    if s < 1e-12:
        return np.eye(3)
    return _rot_axis(axis / s, math.atan2(s, float(a @ b)))


def _parse_levels(levels: tuple[str, ...] | list[str]) -> list[str]:
    names = [str(x).upper() for x in levels]
    bad = [n for n in names if n not in VERSE_LABELS or n in ("C1", "C2")]
    if bad:
        raise ValueError(f"unsupported level(s) {bad}; use C3-C7, T1-T12, L1-L6 (atlas and axis have no body)")
    nums = sorted({VERSE_LABELS[n] for n in names})
    if not nums:
        raise ValueError("levels must name at least one vertebra")
    if nums != list(range(nums[0], nums[-1] + 1)):
        raise ValueError(f"levels must be contiguous, got {[LEVEL_NAMES[n - 1] for n in nums]}")
    return [LEVEL_NAMES[n - 1] for n in nums]  # superior to inferior


def _parse_fractures(fractures: dict[str, tuple[str, float]], names: list[str]) -> dict[str, tuple[str, float]]:
    out = {}
    for level, spec in fractures.items():
        key = str(level).upper()
        if key not in names:
            raise ValueError(f"fracture level {level!r} is not among the generated levels {names}")
        morph, severity = spec
        if morph not in MORPHOLOGIES:
            raise ValueError(f"morphology must be one of {MORPHOLOGIES}, got {morph!r}")
        severity = float(severity)
        if not 0.0 <= severity <= MAX_SEVERITY:
            raise ValueError(f"severity must be within 0..{MAX_SEVERITY}, got {severity}")
        out[key] = (morph, severity)
    return out


def _default_fractures(rng: np.random.Generator, names: list[str]) -> dict[str, tuple[str, float]]:
    """One wedge, one biconcave and one crush on different, preferably non-adjacent levels, with the
    Genant grades 1, 2, 3 shuffled among them and severities well inside their grade's bin."""
    n = len(names)
    k = min(3, n)
    combos = [c for c in itertools.combinations(range(n), k) if all(b - a > 1 for a, b in itertools.pairwise(c))]
    combos = combos or list(itertools.combinations(range(n), k))
    chosen = combos[int(rng.integers(len(combos)))]
    morphs = [MORPHOLOGIES[i] for i in rng.permutation(3)][:k]
    grades = [int(g) for g in rng.permutation([1, 2, 3])][:k]
    ranges = {1: (0.215, 0.235), 2: (0.29, 0.36), 3: (0.45, 0.55)}
    return {names[i]: (m, float(rng.uniform(*ranges[g]))) for i, m, g in zip(chosen, morphs, grades, strict=True)}


def _build_spine(rng: np.random.Generator, names: list[str]) -> list[_Vertebra]:
    """Vertebrae with jittered anatomy placed along a gently curved centreline (superior first)."""
    verts = []
    for name in names:
        n = VERSE_LABELS[name]
        p = {k: float(np.interp(n, _ANCHOR_N, vals)) for k, vals in _ANCHORS.items()}
        scale = 1.0 + 0.03 * float(rng.standard_normal())
        for k in ("width", "depth", "ped_w", "canal_w", "canal_d", "sp_len", "tp_span"):
            p[k] *= scale
        p["height"] *= 1.0 + 0.025 * float(rng.standard_normal())
        p["disc"] *= 1.0 + 0.08 * float(rng.standard_normal())
        p["seg"] += 1.2 * float(rng.standard_normal())
        p["wedge"] += 0.3 * float(rng.standard_normal())
        verts.append(_Vertebra(level=name, label=n, p=p, hu_cancellous=float(rng.uniform(175, 245))))
    for i, vb in enumerate(verts):
        vb.disc_below = vb.p["disc"]
        vb.disc_above = verts[i - 1].p["disc"] if i > 0 else float(
            np.interp(vb.label - 1, _ANCHOR_N, _ANCHORS["disc"])
        )

    # Walk up from the lowest vertebra: tangent angles change by each segment's sagittal angle (and a
    # degree or so of random coronal tilt), centres move along the mean tangent by half-height + disc
    # + half-height (an arc chord, to first order).
    r0 = np.diag([1.0, -1.0, 1.0])  # local (left, anterior, superior) at zero angles
    theta = phi = 0.0
    center = np.zeros(3)
    verts[-1].frame = r0.copy()
    verts[-1].center = center.copy()
    for i in range(len(verts) - 2, -1, -1):
        lower, upper = verts[i + 1], verts[i]
        d_theta = math.radians(upper.p["seg"])
        d_phi = math.radians(1.0 * float(rng.standard_normal()))
        mid = _rot_y(phi + d_phi / 2) @ _rot_x(-(theta + d_theta / 2))
        theta += d_theta
        phi += d_phi
        step = lower.p["height"] / 2 + upper.p["disc"] + upper.p["height"] / 2
        center = center + step * mid[:, 2]
        upper.center = center.copy()
        upper.frame = _rot_y(phi) @ _rot_x(-theta) @ r0

    # Stand the segment up: end-to-end chord along +z, then a small random posture tilt.
    chord = verts[0].center - verts[-1].center if len(verts) > 1 else np.array([0.0, 0.0, 1.0])
    posture = _rot_x(math.radians(2.0 * float(rng.standard_normal()))) @ _rot_y(
        math.radians(1.5 * float(rng.standard_normal()))
    )
    rot = posture @ _align(chord, np.array([0.0, 0.0, 1.0]))
    mid_center = np.mean([vb.center for vb in verts], axis=0)
    offset = np.array([rng.uniform(-3, 3), 40.0 + rng.uniform(-3, 3), -150.0 + rng.uniform(-5, 5)])
    for vb in verts:
        vb.center = rot @ (vb.center - mid_center) + offset
        vb.frame = rot @ vb.frame
    return verts


# ---------------------------------------------------------------------------------------------
# Rasterisation


@dataclass
class _Grid:
    geometry: Geometry
    shape: tuple[int, int, int]  # (z, y, x)

    @property
    def matrix(self) -> np.ndarray:
        g = self.geometry
        return g.direction @ np.diag(g.spacing)

    def index_box(self, points: np.ndarray, pad: int = 1) -> tuple[slice, slice, slice] | None:
        """Array slices (z, y, x) of the index box holding physical ``points``; None when outside."""
        idx = self.geometry.physical_to_index(points)
        lo = np.floor(idx.min(axis=0)).astype(int) - pad
        hi = np.ceil(idx.max(axis=0)).astype(int) + pad + 1
        size = np.array(self.shape[::-1])
        lo = np.clip(lo, 0, size)
        hi = np.clip(hi, 0, size)
        if np.any(hi <= lo):
            return None
        return slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])

    def coords(
        self, box: tuple[slice, slice, slice], origin: np.ndarray, frame: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates in a local frame (``frame`` columns, ``origin``) of every voxel of ``box``."""
        a = frame.T @ self.matrix  # local coordinate change per ITK index step
        b = frame.T @ (np.asarray(self.geometry.origin) - origin)
        k = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None, None]
        j = np.arange(box[1].start, box[1].stop, dtype=np.float32)[None, :, None]
        i = np.arange(box[2].start, box[2].stop, dtype=np.float32)[None, None, :]
        return tuple(
            (np.float32(b[r]) + np.float32(a[r, 0]) * i + np.float32(a[r, 1]) * j + np.float32(a[r, 2]) * k)
            for r in range(3)
        )


def _make_grid(points: np.ndarray, spacing: tuple[float, float, float], oblique_deg: float) -> _Grid:
    """The smallest grid of this spacing and direction holding ``points`` (the anatomy's corners)."""
    direction = _rot_axis(_OBLIQUE_AXIS, math.radians(oblique_deg)) if oblique_deg else np.eye(3)
    q = points @ direction  # coordinates along the grid axes
    lo, hi = q.min(axis=0), q.max(axis=0)
    sp = np.asarray(spacing, float)
    size = np.ceil((hi - lo) / sp).astype(int) + 1
    origin = direction @ lo
    geometry = Geometry(tuple(sp), tuple(origin), direction)
    return _Grid(geometry, (int(size[2]), int(size[1]), int(size[0])))


@dataclass
class _Outline:
    """Body outline: an elliptic cylinder that follows the spine, with subcutaneous fat."""

    rx: float
    ry: float
    y_off: float
    fat: float
    zc: np.ndarray
    xc: np.ndarray
    yc: np.ndarray
    depth_c: np.ndarray

    def corners(self) -> np.ndarray:
        pts = []
        for z, x, y in zip(self.zc, self.xc, self.yc, strict=True):
            for sx in (-1, 1):
                for sy in (-1, 1):
                    pts.append([x + sx * (self.rx + 2), y + self.y_off + sy * (self.ry + 2), z])
        return np.array(pts)


def _outline(rng: np.random.Generator, verts: list[_Vertebra]) -> _Outline:
    ant, post, lat = [], [], []
    for vb in verts:
        lo, _ = _local_bounds(vb)
        ant.append(vb.b_ant + 10.0)  # prevertebral space in front of the body
        post.append(-lo[1] + 6.0)  # back muscles and skin behind the spinous process
        lat.append(vb.p["tp_span"] + vb.p["tp_r"] + 6.0)
    grow = float(rng.uniform(1.0, 1.05))
    ry = max(a + p for a, p in zip(ant, post, strict=True)) / 2 * grow
    rx = max(lat) * grow
    y_off = float(np.mean([(p - a) / 2 for a, p in zip(ant, post, strict=True)]))  # +y: the outline sits posterior
    order = np.argsort([vb.center[2] for vb in verts])
    c = np.array([verts[i].center for i in order])
    return _Outline(rx=rx, ry=ry, y_off=y_off, fat=float(rng.uniform(4, 7)), zc=c[:, 2], xc=c[:, 0],
                    yc=c[:, 1], depth_c=np.array([verts[i].p["depth"] for i in order]))


def _paint_background(hu: np.ndarray, grid: _Grid, ol: _Outline) -> None:
    """Air, subcutaneous fat, muscle, and prevertebral fat in front of the spine."""
    box = (slice(0, grid.shape[0]), slice(0, grid.shape[1]), slice(0, grid.shape[2]))
    x, y, z = grid.coords(box, np.zeros(3), np.eye(3))
    dx = x - np.interp(z, ol.zc, ol.xc).astype(np.float32)
    dy_spine = y - np.interp(z, ol.zc, ol.yc).astype(np.float32)
    dy = dy_spine - np.float32(ol.y_off)
    depth = _ellipse_depth(dx, dy, ol.rx, ol.ry)
    hu[...] = _HU["air"]
    hu[depth >= 0] = _HU["fat"]
    hu[depth >= ol.fat] = _HU["muscle"]
    half_depth = (np.interp(z, ol.zc, ol.depth_c) / 2).astype(np.float32)
    prevertebral = (depth >= ol.fat) & (dy_spine < -(half_depth + 3.0)) & (np.abs(dx) < 0.6 * ol.rx)
    hu[prevertebral] = _HU["retro_fat"]


def _paint_disc(
    hu: np.ndarray, grid: _Grid, frame: np.ndarray, center: np.ndarray, shape_of: _Vertebra,
    planes: list[tuple[np.ndarray, np.ndarray]], extent: float,
) -> None:
    """A disc: the footprint of ``shape_of`` (3 % bulge) between half-spaces ``(point, normal)``."""
    lo = np.array([-shape_of.a * 1.05, -shape_of.b_post * 1.05, -extent])
    hi = np.array([shape_of.a * 1.05, shape_of.b_ant * 1.05, extent])
    box = grid.index_box(_box_corners(lo, hi) @ frame.T + center)
    if box is None:
        return
    u, v, w = grid.coords(box, center, frame)
    inside, depth = _footprint(shape_of, u, v, scale=1.03)
    x, y, z = grid.coords(box, np.zeros(3), np.eye(3))
    for point, normal in planes:
        inside &= ((x - point[0]) * normal[0] + (y - point[1]) * normal[1] + (z - point[2]) * normal[2]) >= 0
    inside &= np.abs(w) <= extent
    nucleus = depth > 0.35 * shape_of.b_ant
    sub = hu[box]
    sub[inside] = _HU["annulus"]
    sub[inside & nucleus] = _HU["nucleus"]


def _paint_discs(hu: np.ndarray, grid: _Grid, verts: list[_Vertebra]) -> None:
    def reach(vb: _Vertebra, sign: float) -> float:
        """How far into the body's nominal height the disc may fill: the rim plus any collapse."""
        frac = vb.f_sup if sign > 0 else 1.0 - vb.f_sup
        return 3.0 + frac * vb.amplitude * vb.p["height"]

    for upper, lower in zip(verts[:-1], verts[1:], strict=True):
        su, sl = upper.frame[:, 2], lower.frame[:, 2]
        p_up = upper.center + su * (-upper.p["height"] / 2 + reach(upper, -1))
        p_lo = lower.center + sl * (lower.p["height"] / 2 - reach(lower, +1))
        m = upper.frame + lower.frame
        uu, _, vt = np.linalg.svd(m)
        frame = uu @ vt  # closest rotation to the mean of the two frames
        center = (p_up + p_lo) / 2
        extent = float(np.linalg.norm(p_up - p_lo)) / 2 + 6.0
        shape = upper if upper.p["depth"] > lower.p["depth"] else lower
        _paint_disc(hu, grid, frame, center, shape, [(p_up, -su), (p_lo, sl)], extent)
    top, bottom = verts[0], verts[-1]
    s = top.frame[:, 2]
    p0 = top.center + s * (top.p["height"] / 2 - reach(top, +1))
    p1 = top.center + s * (top.p["height"] / 2 + top.disc_above / 2)
    _paint_disc(hu, grid, top.frame, (p0 + p1) / 2, top, [(p0, s), (p1, -s)],
                float(np.linalg.norm(p1 - p0)) / 2 + 2)
    s = bottom.frame[:, 2]
    p0 = bottom.center - s * (bottom.p["height"] / 2 - reach(bottom, -1))
    p1 = bottom.center - s * (bottom.p["height"] / 2 + bottom.disc_below / 2)
    _paint_disc(hu, grid, bottom.frame, (p0 + p1) / 2, bottom, [(p0, -s), (p1, s)],
                float(np.linalg.norm(p1 - p0)) / 2 + 2)


def _paint_vertebra(
    hu: np.ndarray, lab: np.ndarray, grid: _Grid, vb: _Vertebra, rng: np.random.Generator
) -> None:
    lo, hi = _local_bounds(vb)
    box = grid.index_box(vb.to_physical(_box_corners(lo, hi)))
    if box is None:
        return
    u, v, w = grid.coords(box, vb.center, vb.frame)
    sub_hu, sub_lab = hu[box], lab[box]

    # Spinal canal (CSF) through the level, painted first so bone overrides it.
    g = _arch_geometry(vb)
    canal = (_ellipse_depth(u, v - g["v_cc"], g["ai"], g["bi"]) > 0) & (
        np.abs(w) <= vb.p["height"] / 2 + max(vb.disc_above, vb.disc_below) / 2 + 1
    )
    sub_hu[canal & (sub_lab == 0)] = _HU["csf"]

    inside2d, d2d = _footprint(vb, u, v)
    top, bot, d_top, d_bot = _endplates(vb, u, v, d2d, deformed=True)
    body = inside2d & (w <= top) & (w >= bot)
    depth_wall = d2d
    depth_plate = np.minimum(top - w, w - bot)
    pe_depth = _posterior_depth(vb, u, v, w)
    pe = (pe_depth >= 0) & ~body & (sub_lab == 0)

    texture = rng.standard_normal(u.shape, dtype=np.float32)
    texture = ndimage.gaussian_filter(texture, 0.8)
    texture *= np.float32(35.0 / max(float(texture.std()), 1e-6))
    # Impacted trabeculae under a collapsed endplate read denser (the sclerotic band of a fresh fracture).
    sclerosis = 160.0 * (
        np.clip(d_top / 2.0, 0, 1) * np.exp(-np.clip(top - w, 0, None) / 2.5)
        + np.clip(d_bot / 2.0, 0, 1) * np.exp(-np.clip(w - bot, 0, None) / 2.5)
    )
    body_hu = np.float32(vb.hu_cancellous) + texture + sclerosis.astype(np.float32)
    shell = (depth_wall < _SHELL_MM) | (depth_plate < _ENDPLATE_MM)
    body_hu = np.where(shell, np.float32(_HU["cortical"]), body_hu)
    pe_hu = np.where(pe_depth < _SHELL_MM, np.float32(_HU["cortical"]),
                     np.float32(_HU["posterior_marrow"]) + 0.6 * texture)

    sub_hu[body] = body_hu[body]
    sub_lab[body] = vb.label
    sub_hu[pe] = np.maximum(sub_hu[pe], pe_hu[pe])
    sub_lab[pe] = vb.label


# ---------------------------------------------------------------------------------------------
# Public API


def _round_dict(d: dict[str, float], nd: int) -> dict[str, float]:
    return {k: round(float(x), nd) for k, x in d.items()}


def generate(
    seed: int = 0,
    levels: tuple[str, ...] | list[str] = ("T11", "T12", "L1", "L2", "L3", "L4"),
    fractures: dict[str, tuple[str, float]] | None = None,
    spacing: tuple[float, float, float] = (0.8, 0.8, 1.0),
    oblique_deg: float = 0.0,
    noise_hu: float = 20.0,
) -> SpinePhantom:
    """Build the phantom in memory.

    ``fractures`` maps a level to ``(morphology, severity)``; severity is the fractional height loss
    of the affected section (anterior for a wedge, middle for a biconcave, all for a crush), and the
    deformation is calibrated so the measured truth reproduces it. ``None`` lets the seed pick one
    fracture of each morphology with Genant grades 1, 2 and 3. ``spacing`` is ITK order (x, y, z);
    ``oblique_deg`` rotates the voxel grid, never the anatomy, so the truth is unchanged by it.
    """
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(s > 0 and math.isfinite(s) for s in spacing):
        raise ValueError(f"spacing must be three positive numbers, got {spacing}")
    if not math.isfinite(oblique_deg):
        raise ValueError("oblique_deg must be finite")
    if noise_hu < 0:
        raise ValueError("noise_hu must be >= 0")
    names = _parse_levels(levels)
    rng = np.random.default_rng(seed)

    # Anatomy first, so every grid option of one seed shares exactly the same solids.
    verts = _build_spine(rng, names)
    outline = _outline(rng, verts)
    specs = _default_fractures(rng, names) if fractures is None else _parse_fractures(fractures, names)
    f_sup = {"wedge": 0.75, "biconcave": 0.5, "crush": 0.55}
    for vb in verts:
        if vb.level in specs and specs[vb.level][1] > 0:
            vb.morphology, vb.severity = specs[vb.level]
            vb.f_sup = f_sup[vb.morphology]
            vb.hu_cancellous = min(vb.hu_cancellous, float(rng.uniform(150, 185)))  # osteoporotic
        _calibrate(vb)

    anatomy = np.concatenate([vb.to_physical(_box_corners(*_local_bounds(vb))) for vb in verts])
    oc = outline.corners()
    z_lo, z_hi = anatomy[:, 2].min() - oc[:, 2].min(), anatomy[:, 2].max() - oc[:, 2].max()
    roi = np.concatenate([anatomy, oc, oc + [0.0, 0.0, z_lo], oc + [0.0, 0.0, z_hi]])
    grid = _make_grid(roi, spacing, float(oblique_deg))

    hu = np.empty(grid.shape, dtype=np.float32)
    lab = np.zeros(grid.shape, dtype=np.uint8)
    _paint_background(hu, grid, outline)
    _paint_discs(hu, grid, verts)
    for vb in verts:
        _paint_vertebra(hu, lab, grid, vb, rng)

    sigma = [_PSF_SIGMA_MM / s for s in spacing[::-1]]
    hu = ndimage.gaussian_filter(hu, sigma)
    if noise_hu > 0:
        hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(noise_hu)
    ct_data = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)

    label_infos = {vb.label: LabelInfo(vb.level, palette_color(vb.label - 1)) for vb in verts}
    meta = {"sample": NAME, "seed": seed}
    ct = Volume(data=ct_data, geometry=grid.geometry, modality="CT", unit="HU", name="ct", metadata=dict(meta))
    labels = LabelMap(data=lab, geometry=grid.geometry, labels=label_infos, name="vertebrae", metadata=dict(meta))

    present = [vb.label for vb in verts]
    com = ndimage.center_of_mass(np.ones_like(lab), lab, present)
    entries = []
    for vb, c_idx in zip(verts, com, strict=True):
        m = _measure(vb)
        grade = genant_grade(max(m["loss"][s] for s in _SECTIONS))
        entries.append(
            {
                "label": vb.label,
                "level": vb.level,
                "morphology": vb.morphology if grade > 0 else "normal",
                "deformation": vb.morphology,
                "severity": round(vb.severity, 4),
                "genant_grade": grade,
                "heights_mm": _round_dict(m["obs"], 3),
                "reference_heights_mm": _round_dict(m["ref"], 3),
                "height_loss": _round_dict(m["loss"], 4),
                "centroid_mm": [round(float(x), 3) for x in vb.to_physical(m["centroid_local"])],
                "vertebra_centroid_mm": [
                    round(float(x), 3) for x in grid.geometry.index_to_physical(np.asarray(c_idx)[::-1])
                ],
                "axes": {
                    "left": [round(float(x), 6) for x in vb.frame[:, 0]],
                    "anterior": [round(float(x), 6) for x in vb.frame[:, 1]],
                    "superior": [round(float(x), 6) for x in vb.frame[:, 2]],
                },
                "body_center_mm": [round(float(x), 3) for x in vb.center],
                "body_size_mm": {
                    "width": round(2 * vb.a, 3),
                    "depth": round(vb.p["depth"], 3),
                    "height": round(vb.p["height"], 3),
                },
            }
        )
    truth = {
        "sample": NAME,
        "numbering": "VerSe",
        "seed": seed,
        "spacing": list(spacing),
        "oblique_deg": float(oblique_deg),
        "direction": grid.geometry.direction.round(9).tolist(),
        "levels": names,
        "method": (
            "Heights measured on the analytic body in its own frame (SI = the spine tangent at the body): "
            "central sagittal slab |u| <= 1/5 of the left-right extent, per sagittal line the AP extent in "
            "thirds, column height along SI, mean over columns taller than 0.7 x the line's central column "
            "of the uncompressed body (the same columns measured before and after compression). "
            "height_loss = (reference - observed) / reference; overall over all kept columns; Genant grade "
            "from the largest section loss. centroid_mm is the compressed body's centroid, "
            "vertebra_centroid_mm the centroid of the whole label (body and posterior elements)."
        ),
        "vertebrae": entries,
    }
    return SpinePhantom(ct=ct, labels=labels, truth=truth)


def make(out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write ``ct.nii.gz``, ``vertebrae.nii.gz`` and ``truth.json`` into ``out_dir``."""
    from kintsugi.io import write_json, write_volume

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ph = generate(seed=seed)
    return [
        write_volume(ph.ct, out / "ct.nii.gz"),
        write_volume(ph.labels, out / "vertebrae.nii.gz"),
        write_json(ph.truth, out / "truth.json"),
    ]

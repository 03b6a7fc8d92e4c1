"""Crack photos: concrete surfaces with branching cracks, their masks and a low-light copy of each.

The scenes are default data and the training data of the crack-segmentation plugin, so they aim to
be hard in the ways real photos are: the surface has multi-scale texture, pores and stains, and
there are dark *non*-crack lines (saw-cut joints, formwork seams, wire shadows, paint marks) that a
model must learn to leave alone. The low-light copy is the same scene (same reflectance, same mask)
photographed with little light: a few tens of photons per pixel, uneven light, a colour cast,
Poisson-Gaussian noise and sometimes JPEG, as in low-light crack sets (CrackNex/LCSD).

Geometry conventions (used by the truth):

* pixel centres sit at integer ``(x, y)``; ``x`` runs right along columns, ``y`` down along rows;
* a crack is a tree of polylines (a trunk and its branches) drawn as 1 px random-walk steps;
* ``length_px`` is the centreline length of all its polylines (branches included, from where they
  leave the parent's centreline), clipped to the image;
* width is the *full* width perpendicular to the centreline; ``mean_width_px`` is weighted by
  centreline length, ``max_width_px`` the largest width anywhere on the crack;
* ``orientation_deg`` is the direction of the trunk's principal axis in [0, 180): 0 = horizontal,
  90 = vertical, counter-clockwise as seen on screen (y up);
* the mask holds the pixels whose centre lies within ``max(width, 1) / 2`` of a centreline, so a
  hairline narrower than a pixel still has a connected 1 px mask.
"""

from __future__ import annotations

import io as _io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import lfilter
from scipy.spatial import cKDTree

NAME = "crack"
TITLE = "Crack photos"
TASK = "crack.segment_layers"
DESCRIPTION = (
    "Concrete surface photos (normal and low light) with branching cracks and hairlines, crack-like "
    "distractors (joints, formwork seams, shadows, paint) and pixel masks; truth gives each crack's "
    "length and width in px and mm."
)

PIXEL_SIZE_MM = 0.2
DEFAULT_SIZE = (384, 512)
MAX_WIDTH_PX = 8.0
MIN_WIDTH_PX = 0.6
_GAMMA = 2.2


@dataclass
class CrackPath:
    """One polyline of a crack; ``points`` are (x, y) px, ``widths`` the full width at each point."""

    points: np.ndarray
    widths: np.ndarray
    parent: int | None = None  # index of the path it branches from within the same crack

    @property
    def length(self) -> float:
        return float(np.sum(np.linalg.norm(np.diff(self.points, axis=0), axis=1)))


@dataclass
class Crack:
    """A crack as drawn: a trunk (``paths[0]``) and its branches, with how dark it is."""

    id: int
    kind: str  # "crack" or "hairline"
    paths: list[CrackPath]
    depth: float  # fraction of light lost at the crack's deepest point
    halo: float  # darkening of the dirty rim around the crack


@dataclass
class CrackScene:
    """One scene: the same surface in normal and low light, its crack mask and its truth."""

    image: np.ndarray  # (H, W, 3) uint8
    low_light: np.ndarray  # (H, W, 3) uint8, same scene and alignment
    mask: np.ndarray  # (H, W) bool
    truth: dict[str, Any]
    cracks: list[Crack] = field(default_factory=list)


# --------------------------------------------------------------------------------------- noise


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-variance noise with correlation length ``sigma`` px; large sigmas work on a coarse grid
    so a 60 px blotch costs no more than a 2 px grain."""
    h, w = shape
    factor = max(1, int(sigma // 4))
    small = rng.standard_normal((h // factor + 2, w // factor + 2))
    small = ndi.gaussian_filter(small, sigma / factor, mode="wrap") if sigma > 0 else small
    field_ = ndi.zoom(small, factor, order=1)[:h, :w] if factor > 1 else small[:h, :w]
    return (field_ - field_.mean()) / (field_.std() + 1e-12)


def _fbm(rng: np.random.Generator, shape: tuple[int, int], scales: dict[float, float]) -> np.ndarray:
    return sum(amp * _noise(rng, shape, sigma) for sigma, amp in scales.items())


def _ar1(rng: np.random.Generator, n: int, corr: float, std: float) -> np.ndarray:
    """A smooth 1D random signal (stationary std ``std``) for headings and width profiles."""
    white = rng.standard_normal(n) * std * np.sqrt(1 - corr**2)
    return lfilter([1.0], [1.0, -corr], white)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


# ------------------------------------------------------------------------------------- surface


def _concrete(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Concrete albedo in display units (H, W, 3): tone, grain at several scales, aggregate, pores,
    stains. Pores are dark blobs on purpose: round dark things that are not cracks."""
    h, w = shape
    tone = rng.uniform(0.42, 0.72)
    tint = np.array([1.0 + rng.uniform(-0.01, 0.05), 1.0, 1.0 - rng.uniform(-0.02, 0.08)])
    rough = rng.uniform(0.6, 1.4)
    grain = _fbm(rng, shape, {0.6: 0.030 * rough, 1.5: 0.025 * rough, 4.0: 0.02, 14.0: 0.025, 48.0: 0.04})
    albedo = tone * (1 + grain)[..., None] * tint

    # Aggregate: irregular islands of a slightly different stone colour, from thresholded noise.
    agg_field = _noise(rng, shape, rng.uniform(1.0, 2.5))
    agg = _smoothstep((agg_field - rng.uniform(1.2, 1.9)) / 0.6)
    agg_colour = 1 + rng.choice([-1, 1]) * rng.uniform(0.03, 0.12) + rng.normal(0, 0.012, 3)
    albedo *= 1 + agg[..., None] * (agg_colour - 1)

    # Fine speckles: single-pixel light and dark grains.
    speck = rng.random(shape) < rng.uniform(0.002, 0.01)
    albedo *= 1 + (speck * rng.normal(0, 0.2, shape))[..., None]

    albedo *= _pores(rng, shape)[..., None]
    albedo *= _stains(rng, shape)
    return albedo


def _pores(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Bugholes: small dark pits, roundish with a ragged edge and a lit upper rim."""
    h, w = shape
    out = np.ones(shape)
    n = int(rng.integers(5, 60) * h * w / (384 * 512))
    yy, xx = np.mgrid[-8:9, -8:9].astype(float)
    for _ in range(n):
        r = rng.lognormal(np.log(1.4), 0.45)
        r = min(r, 6.0)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        ix, iy = int(cx), int(cy)
        ex = rng.uniform(0.7, 1.4)
        d = np.hypot((xx - (cx - ix)) * ex, (yy - (cy - iy)) / ex)
        d += rng.normal(0, 0.25, d.shape)
        dark = rng.uniform(0.35, 0.75) * _smoothstep((r + 0.6 - d) / 1.2)
        rim = 0.08 * _smoothstep((r + 1.5 - np.hypot(xx - (cx - ix), yy + r * 0.8 - (cy - iy))) / 1.5)
        patch = (1 - dark) * (1 + rim * (yy < 0))
        y0, y1, x0, x1 = iy - 8, iy + 9, ix - 8, ix + 9
        sy0, sx0 = max(0, -y0), max(0, -x0)
        y0c, y1c, x0c, x1c = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
        if y1c <= y0c or x1c <= x0c:
            continue
        out[y0c:y1c, x0c:x1c] *= patch[sy0 : sy0 + y1c - y0c, sx0 : sx0 + x1c - x0c]
    return out


def _stains(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Damp patches, rust and efflorescence: large soft blotches that change tone and hue."""
    h, w = shape
    out = np.ones((h, w, 3))
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    colours = {
        "damp": np.array([0.78, 0.78, 0.80]),
        "rust": np.array([0.92, 0.80, 0.66]),
        "moss": np.array([0.82, 0.86, 0.74]),
        "efflorescence": np.array([1.12, 1.12, 1.10]),
    }
    for _ in range(int(rng.integers(0, 4))):
        kind = str(rng.choice(list(colours)))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        sx, sy = rng.uniform(0.08, 0.35) * w, rng.uniform(0.08, 0.35) * h
        env = np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
        blotch = _smoothstep((env + 0.3 * _noise(rng, (h, w), rng.uniform(8, 24)) - 0.4) / 0.7)
        strength = rng.uniform(0.3, 0.8)
        out *= 1 + (blotch * strength)[..., None] * (colours[kind] - 1)
    return out


# ------------------------------------------------------------------------------- distractors


def _line_distance(shape: tuple[int, int], p: np.ndarray, angle: float) -> np.ndarray:
    """Signed perpendicular distance of every pixel centre to the line through ``p``."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    return (xx - p[0]) * -np.sin(angle) + (yy - p[1]) * np.cos(angle)


def _band(d: np.ndarray, width: float, soft: float) -> np.ndarray:
    """Coverage of a band of full width ``width`` at distance ``d``, with edges ``soft`` px wide."""
    return _smoothstep((width / 2 - np.abs(d)) / max(soft, 1e-3) + 0.5)


def _distractors(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Albedo and light multipliers for line-like things that are not cracks.

    Straight, uniform or colourful lines teach a model that dark and thin is not enough."""
    h, w = shape
    albedo = np.ones((h, w, 3))
    light = np.ones((h, w))
    centre = np.array([w / 2, h / 2])
    axis_angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.06)

    if rng.random() < 0.35:  # saw-cut joint, often with black sealant
        p = centre + rng.uniform(-0.4, 0.4, 2) * [w, h]
        d = _line_distance(shape, p, axis_angle if rng.random() < 0.7 else rng.uniform(0, np.pi))
        width = rng.uniform(3.0, 9.0)
        cover = _band(d, width, 0.8)
        albedo *= 1 - (rng.uniform(0.45, 0.8) * cover)[..., None]
        albedo *= 1 + (0.1 * _band(np.abs(d) - width / 2 - 1.2, 2.0, 1.0))[..., None]  # chipped lips

    if rng.random() < 0.4:  # formwork seams: faint straight ridges, a lit side and a shaded side
        spacing = rng.uniform(70, 200)
        d = _line_distance(shape, centre + rng.uniform(-50, 50, 2), axis_angle + rng.normal(0, 0.02))
        d = (d + spacing / 2) % spacing - spacing / 2
        amp = rng.uniform(0.05, 0.14)
        ridge = amp * (_band(d - 1.0, 1.5, 0.8) - _band(d + 1.0, 1.5, 0.8))
        albedo *= 1 + ridge[..., None]
        grain = _noise(rng, (h, w), 1.0)
        along = ndi.gaussian_filter1d(grain, 12.0, axis=1 if abs(np.cos(axis_angle)) > 0.5 else 0)
        albedo *= 1 + 0.03 * (along / (along.std() + 1e-9))[..., None]  # board grain

    if rng.random() < 0.3:  # shadow of a wire or twig: a soft dark gentle curve
        p0, p2 = rng.uniform(0, 1, 2) * [w, h], rng.uniform(0, 1, 2) * [w, h]
        p1 = (p0 + p2) / 2 + rng.normal(0, 60, 2)
        pts = _bezier(p0, p1, p2, (p0, p2), extend=w + h)
        dist = _polyline_distance(shape, pts)
        cover = _band(dist, rng.uniform(2.0, 7.0), rng.uniform(2.0, 4.0))
        light *= 1 - rng.uniform(0.25, 0.5) * cover

    if rng.random() < 0.3:  # cast shadow with a soft edge
        d = _line_distance(shape, rng.uniform(0, 1, 2) * [w, h], rng.uniform(0, np.pi))
        light *= 1 - rng.uniform(0.3, 0.55) * _smoothstep(d / rng.uniform(4, 25) + 0.5)

    if rng.random() < 0.15:  # spray-paint marking, as inspectors leave next to cracks
        p0, p2 = rng.uniform(0.1, 0.9, 2) * [w, h], rng.uniform(0.1, 0.9, 2) * [w, h]
        p1 = (p0 + p2) / 2 + rng.normal(0, 40, 2)
        dist = _polyline_distance(shape, _bezier(p0, p1, p2, (p0, p2)))
        cover = _band(dist, rng.uniform(4, 10), 3.0) * rng.uniform(0.5, 0.9)
        paint = np.array([(0.95, 0.2, 0.15), (0.95, 0.85, 0.2), (0.2, 0.4, 0.9)][int(rng.integers(3))])
        # These are multipliers on a concrete tone of about 0.55, so paint / 0.55 lands on its colour.
        albedo = albedo * (1 - cover[..., None]) + (paint / 0.55) * cover[..., None]
    return albedo, light


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, ends: tuple, extend: float = 0.0) -> np.ndarray:
    t = np.linspace(0, 1, 200)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    if extend:
        a, b = pts[1] - pts[0], pts[-1] - pts[-2]
        pts = np.vstack([pts[0] - extend * a / np.linalg.norm(a), pts, pts[-1] + extend * b / np.linalg.norm(b)])
    return pts


def _polyline_distance(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    """Distance to a rasterised curve; half a pixel of error is nothing for soft shadows and paint."""
    h, w = shape
    dense = _densify(pts, np.zeros(len(pts)), 0.5)[0]
    keep = (dense[:, 0] > -0.5) & (dense[:, 0] < w - 0.5) & (dense[:, 1] > -0.5) & (dense[:, 1] < h - 0.5)
    line = np.zeros(shape, bool)
    line[np.round(dense[keep, 1]).astype(int), np.round(dense[keep, 0]).astype(int)] = True
    if not line.any():
        return np.full(shape, np.inf)
    return ndi.distance_transform_edt(~line)


# ------------------------------------------------------------------------------------ cracks


def _walk(
    rng: np.random.Generator, start: np.ndarray, heading: float, length: float, size: tuple[int, int],
    wiggle: float,
) -> tuple[np.ndarray, bool]:
    """Points of a crack walked in 1 px steps from ``start``; True when it stopped at the border.

    Heading = slow meander (integrated AR noise pulled back to the mean direction) + occasional
    kinks + fast zigzag, which is how cracks look: straight-ish overall, jagged up close."""
    h, w = size
    n = max(2, int(length))
    turn = np.cumsum(_ar1(rng, n, 0.95, 0.02))
    turn = turn - lfilter([0.02], [1.0, -0.98], turn)  # restoring pull towards the mean direction
    kinks = np.cumsum((rng.random(n) < 0.006) * rng.normal(0, 0.35, n))
    theta = heading + turn + kinks + _ar1(rng, n, 0.7, wiggle)
    steps = np.column_stack([np.cos(theta), np.sin(theta)])
    pts = start + np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)])
    inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
    stop = int(np.argmin(inside)) if not inside.all() else len(pts)
    return pts[:stop], stop < len(pts)


def _width_profile(
    rng: np.random.Generator, n: int, w0: float, taper_start: bool, taper_end: bool
) -> np.ndarray:
    """Widths that vary smoothly (metres-scale opening changes), roughly (grain-scale edges), and
    taper to a hairline at free tips."""
    slow = np.exp(_ar1(rng, n, 0.985, 0.3))
    rough = np.exp(_ar1(rng, n, 0.6, 0.1))
    s = np.arange(n, dtype=float)
    taper = np.ones(n)
    lt = rng.uniform(15, 60)
    if taper_end:
        taper = np.minimum(taper, ((n - 1 - s) / lt).clip(0, 1) ** 0.7)
    if taper_start:
        taper = np.minimum(taper, (s / lt).clip(0, 1) ** 0.7)
    return np.clip(w0 * slow * rough * np.maximum(taper, 0.12), MIN_WIDTH_PX, MAX_WIDTH_PX)


def _grow_crack(rng: np.random.Generator, size: tuple[int, int], crack_id: int, kind: str) -> Crack:
    """A crack tree: a trunk walked both ways from a seed point, then branches off it."""
    h, w = size
    diag = float(np.hypot(h, w))
    hairline = kind == "hairline"
    seed = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h])
    heading = rng.uniform(0, np.pi)
    reach = rng.uniform(0.05, 0.2, 2) * diag if hairline else rng.uniform(0.2, 0.7, 2) * diag
    wiggle = rng.uniform(0.15, 0.45)
    fwd, fwd_edge = _walk(rng, seed, heading, reach[0], size, wiggle)
    back, back_edge = _walk(rng, seed, heading + np.pi, reach[1], size, wiggle)
    pts = np.vstack([back[::-1], fwd[1:]])
    w0 = rng.uniform(0.6, 1.2) if hairline else float(np.exp(rng.uniform(np.log(1.8), np.log(5.5))))
    trunk = CrackPath(pts, _width_profile(rng, len(pts), w0, not back_edge, not fwd_edge))
    paths = [trunk]
    n_branches = int(rng.poisson(trunk.length / (400 if hairline else 160)))
    for _ in range(n_branches):
        parent_idx = int(rng.integers(len(paths)))
        _add_branch(rng, paths, parent_idx, size, wiggle)
    depth = rng.uniform(0.3, 0.55) if hairline else rng.uniform(0.55, 0.85)
    halo = 0.0 if hairline else rng.uniform(0.0, 0.12)
    return Crack(crack_id, kind, [p for p in paths if len(p.points) >= 3], depth, halo)


def _add_branch(
    rng: np.random.Generator, paths: list[CrackPath], parent_idx: int, size: tuple[int, int], wiggle: float
) -> None:
    parent = paths[parent_idx]
    n = len(parent.points)
    if n < 30:
        return
    i = int(rng.integers(int(0.1 * n), int(0.9 * n)))
    j = min(i + 5, n - 1)
    local = np.arctan2(*(parent.points[j] - parent.points[max(i - 5, 0)])[::-1])
    heading = local + rng.choice([-1, 1]) * np.radians(rng.uniform(25, 70))
    pts, at_edge = _walk(rng, parent.points[i], heading, rng.uniform(20, max(25, 0.6 * parent.length)),
                         size, wiggle)
    if len(pts) < 3:
        return
    w_start = parent.widths[i] * rng.uniform(0.35, 0.8)
    widths = _width_profile(rng, len(pts), max(w_start, MIN_WIDTH_PX), False, not at_edge)
    # A branch leaves its parent at the parent's width scale, never wider.
    widths = np.minimum(widths, parent.widths[i])
    paths.append(CrackPath(pts, widths, parent=parent_idx))


def _densify(points: np.ndarray, widths: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample a polyline to ``step`` px so nearest-point distances are exact to ~step/8."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(0.0, s[-1] + 1e-9, step) if s[-1] > 0 else np.zeros(1)
    pts = np.column_stack([np.interp(t, s, points[:, 0]), np.interp(t, s, points[:, 1])])
    return pts, np.interp(t, s, widths)


def _render_path(
    path: CrackPath, shape: tuple[int, int], halo_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixels near a path with their crack coverage, halo weight and mask membership.

    Coverage is the exact overlap of a pixel-wide box with the crack's cross-section, so a 0.6 px
    hairline darkens its pixels by 60 % of its depth: sub-pixel cracks stay faint, as on camera."""
    h, w = shape
    dense, dw = _densify(path.points, path.widths, 0.2)
    reach = float(dw.max()) / 2 + max(halo_px * 3, 1.5) + 1
    line = np.zeros(shape, bool)
    ix = np.clip(np.round(dense[:, 0]).astype(int), 0, w - 1)
    iy = np.clip(np.round(dense[:, 1]).astype(int), 0, h - 1)
    line[iy, ix] = True
    y0, y1 = max(0, iy.min() - int(reach) - 2), min(h, iy.max() + int(reach) + 3)
    x0, x1 = max(0, ix.min() - int(reach) - 2), min(w, ix.max() + int(reach) + 3)
    near = ndi.distance_transform_edt(~line[y0:y1, x0:x1]) <= reach + 0.75
    ys, xs = np.nonzero(near)
    ys, xs = ys + y0, xs + x0
    d, k = cKDTree(dense).query(np.column_stack([xs, ys]).astype(float))
    width = dw[k]
    half = width / 2
    cover = np.clip(np.minimum(d + 0.5, half) - np.maximum(d - 0.5, -half), 0, 1)
    cover *= 0.8 + 0.2 * np.clip(1 - (d / np.maximum(half, 0.5)) ** 2, 0, 1)  # deeper in the middle
    halo = np.exp(-0.5 * (np.maximum(d - half, 0) / max(halo_px, 1e-3)) ** 2) if halo_px > 0 else 0 * d
    inside = d <= np.maximum(width, 1.0) / 2
    return ys * w + xs, cover, halo, inside


def _draw_cracks(
    rng: np.random.Generator, cracks: list[Crack], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Light-loss map (0 = untouched, 1 = black) and mask of all cracks; overlaps take the maximum
    so a branch joining its parent does not double-darken."""
    h, w = shape
    loss = np.zeros(h * w)
    halo = np.zeros(h * w)
    mask = np.zeros(h * w, bool)
    for crack in cracks:
        halo_px = rng.uniform(1.5, 3.5) if crack.halo > 0 else 0.0
        for path in crack.paths:
            flat, cover, hal, inside = _render_path(path, shape, halo_px)
            np.maximum.at(loss, flat, crack.depth * cover)
            np.maximum.at(halo, flat, crack.halo * hal)
            mask[flat[inside]] = True
    total = 1 - (1 - loss) * (1 - halo)
    return total.reshape(h, w), mask.reshape(h, w)


def _crack_set(rng: np.random.Generator, shape: tuple[int, int], p_empty: float) -> list[Crack]:
    """Trunks and hairlines until the mask covers a plausible fraction of the image (0.6-8 %)."""
    if rng.random() < p_empty:
        return []
    h, w = shape
    cracks: list[Crack] = []
    n_main = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
    n_hair = int(rng.integers(0, 4))
    for kind in ["crack"] * n_main + ["hairline"] * n_hair:
        cracks.append(_grow_crack(rng, shape, len(cracks) + 1, kind))
    for _ in range(6):
        cover = _estimated_cover(cracks) / (h * w)
        if cover >= 0.007:
            break
        cracks.append(_grow_crack(rng, shape, len(cracks) + 1, "crack"))
    while len(cracks) > 1 and _estimated_cover(cracks) / (h * w) > 0.08:
        cracks.pop()
    return cracks


def _estimated_cover(cracks: list[Crack]) -> float:
    return sum(p.length * float(np.mean(np.maximum(p.widths, 1.0))) for c in cracks for p in c.paths)


# ------------------------------------------------------------------------------------ camera


def _vignette(shape: tuple[int, int], strength: float, centre: np.ndarray) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    r2 = ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (0.25 * (h * h + w * w))
    return 1 / (1 + strength * r2) ** 2


def _gradient(rng: np.random.Generator, shape: tuple[int, int], amount: float) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    a = rng.uniform(0, 2 * np.pi)
    t = ((xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)) / (0.5 * np.hypot(h, w))
    return np.clip(1 + amount * t, 0.05, None)


def _lighting(rng: np.random.Generator, shape: tuple[int, int], low_light: bool) -> np.ndarray:
    """Relative illumination (H, W, 3), mean about 1: daylight is nearly even and neutral; low light
    is a torch or street lamp: a bright spot, strong fall-off and a colour cast."""
    h, w = shape
    if not low_light:
        light = _gradient(rng, shape, rng.uniform(0, 0.15)) * _vignette(
            shape, rng.uniform(0, 0.25), np.array([w / 2, h / 2])
        )
        balance = 1 + rng.normal(0, 0.03, 3)
        return light[..., None] * balance
    spot_c = rng.uniform([0, 0], [w, h])
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    sigma = rng.uniform(0.35, 0.9) * max(h, w)
    spot = np.exp(-0.5 * ((xx - spot_c[0]) ** 2 + (yy - spot_c[1]) ** 2) / sigma**2)
    light = (rng.uniform(0.15, 0.6) + spot) * _gradient(rng, shape, rng.uniform(0.1, 0.5))
    light *= _vignette(shape, rng.uniform(0.3, 1.0), np.array([w / 2, h / 2]))
    casts = np.array([(1.0, 0.72, 0.38), (1.0, 0.82, 0.62), (0.72, 0.86, 1.0), (0.85, 1.0, 0.8), (1, 1, 1)])
    cast = casts[int(rng.integers(len(casts)))]
    cast = 1 + rng.uniform(0.5, 1.0) * (cast - 1)
    light = light[..., None] * (cast / cast.mean())
    return light / light.mean()


def _photograph(
    rng: np.random.Generator, albedo: np.ndarray, light: np.ndarray, low_light: bool
) -> np.ndarray:
    """Linear light -> optics blur -> Poisson-Gaussian sensor -> gamma -> 8 bits (-> JPEG).

    Low light keeps the camera's output at 5-15 % of the normal brightness, which at a few tens of
    photons per pixel is what makes real night photos grainy."""
    radiance = np.clip(albedo, 0, 1.5) ** _GAMMA * light
    radiance = ndi.gaussian_filter(radiance, (rng.uniform(0.45, 0.8),) * 2 + (0,))
    if low_light:
        brightness = rng.uniform(0.05, 0.15)
        radiance = radiance * brightness**_GAMMA
        photons_mean = rng.uniform(12, 60)
        read_noise = rng.uniform(0.8, 3.0)
    else:
        radiance = radiance * rng.uniform(0.85, 1.1)
        photons_mean = rng.uniform(1500, 5000)
        read_noise = rng.uniform(1.0, 5.0)
    gain = photons_mean / max(float(radiance.mean()), 1e-9)
    electrons = rng.poisson(radiance * gain) + rng.normal(0, read_noise, radiance.shape)
    linear = np.clip(electrons / gain, 0, 1)
    out = np.round(255 * linear ** (1 / _GAMMA)).astype(np.uint8)
    if low_light and rng.random() < 0.5:
        out = _jpeg(out, int(rng.integers(70, 96)))
    return out


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = _io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB")).copy()


# ------------------------------------------------------------------------------------- truth


def _orientation_deg(points: np.ndarray) -> float:
    centred = points - points.mean(axis=0)
    _, vecs = np.linalg.eigh(centred.T @ centred)
    vx, vy = vecs[:, -1]
    return float(np.degrees(np.arctan2(-vy, vx)) % 180.0)  # y flipped: counter-clockwise on screen


def _crack_truth(crack: Crack, pixel_mm: float) -> dict[str, Any]:
    lengths, widths = [], []
    for p in crack.paths:
        seg = np.linalg.norm(np.diff(p.points, axis=0), axis=1)
        lengths.append(seg)
        widths.append((p.widths[1:] + p.widths[:-1]) / 2)
    seg_len, seg_w = np.concatenate(lengths), np.concatenate(widths)
    length = float(seg_len.sum())
    mean_w = float(np.sum(seg_len * seg_w) / max(length, 1e-9))
    max_w = float(max(p.widths.max() for p in crack.paths))
    return {
        "id": crack.id,
        "kind": crack.kind,
        "branches": len(crack.paths) - 1,
        "length_px": round(length, 2),
        "mean_width_px": round(mean_w, 3),
        "max_width_px": round(max_w, 3),
        "length_mm": round(length * pixel_mm, 2),
        "mean_width_mm": round(mean_w * pixel_mm, 3),
        "max_width_mm": round(max_w * pixel_mm, 3),
        "orientation_deg": round(_orientation_deg(crack.paths[0].points), 1),
    }


def _scene_truth(cracks: list[Crack], mask: np.ndarray, pixel_mm: float) -> dict[str, Any]:
    per = [_crack_truth(c, pixel_mm) for c in cracks]
    total = sum(c["length_px"] for c in per)
    return {
        "height": int(mask.shape[0]),
        "width": int(mask.shape[1]),
        "pixel_size_mm": pixel_mm,
        "n_cracks": len(per),
        "total_length_px": round(total, 2),
        "total_length_mm": round(total * pixel_mm, 2),
        "mask_pixels": int(mask.sum()),
        "mask_fraction": round(float(mask.mean()), 5),
        "max_width_px": max((c["max_width_px"] for c in per), default=0.0),
        "cracks": per,
    }


# -------------------------------------------------------------------------------------- scenes


def _surface(
    rng: np.random.Generator, size: tuple[int, int], p_empty: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Crack]]:
    """Everything that belongs to the scene rather than to the photo: albedo with cracks and
    distractors, scene shadows, the mask and the crack geometry."""
    shape = (int(size[0]), int(size[1]))
    albedo = _concrete(rng, shape)
    marks, shadows = _distractors(rng, shape)
    albedo *= marks
    cracks = _crack_set(rng, shape, p_empty)
    loss, mask = _draw_cracks(rng, cracks, shape)
    albedo *= (1 - loss)[..., None]
    return albedo, shadows, mask, cracks


def make_scene(
    rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE, p_empty: float = 0.0,
    pixel_mm: float = PIXEL_SIZE_MM,
) -> CrackScene:
    """One scene in normal and low light with mask and truth; ``p_empty`` is the chance of a scene
    without cracks (hard negatives for training)."""
    albedo, shadows, mask, cracks = _surface(rng, size, p_empty)
    normal = _photograph(rng, albedo, _lighting(rng, mask.shape, False) * shadows[..., None], False)
    dark = _photograph(rng, albedo, _lighting(rng, mask.shape, True) * shadows[..., None], True)
    return CrackScene(normal, dark, mask, _scene_truth(cracks, mask, pixel_mm), cracks)


def render_scene(
    rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE, low_light: bool = False,
    p_empty: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """An endless source of training pairs: ``(image (H, W, 3) uint8, mask (H, W) bool)``, rendering
    only the light condition asked for."""
    albedo, shadows, mask, _ = _surface(rng, size, p_empty)
    light = _lighting(rng, mask.shape, low_light) * shadows[..., None]
    return _photograph(rng, albedo, light, low_light), mask


def generate(seed: int = 0, n_images: int = 4, size: tuple[int, int] = DEFAULT_SIZE) -> list[CrackScene]:
    """``n_images`` scenes, the same for the same seed."""
    rng = np.random.default_rng(seed)
    return [make_scene(rng, size) for _ in range(n_images)]


def make(out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write ``crack_XX.png``, ``crack_XX_lowlight.png``, ``crack_XX_mask.png`` (0/255) and
    ``truth.json``."""
    from kintsugi.io import write_image, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    truth: dict[str, Any] = {
        "seed": seed,
        "pixel_size_mm": PIXEL_SIZE_MM,
        "definitions": {
            "length_px": "centreline length of the crack's trunk and branches, clipped to the image",
            "width_px": "full width perpendicular to the centreline",
            "mean_width_px": "centreline-length-weighted mean width",
            "orientation_deg": "trunk principal axis, 0 = horizontal, 90 = vertical, counter-clockwise",
            "mask": "pixels whose centre is within max(width, 1)/2 of a centreline",
        },
        "images": {},
    }
    for i, scene in enumerate(generate(seed)):
        stem = f"crack_{i:02d}"
        written.append(write_image(scene.image, out / f"{stem}.png"))
        written.append(write_image(scene.low_light, out / f"{stem}_lowlight.png"))
        written.append(write_image(scene.mask.astype(np.uint8) * 255, out / f"{stem}_mask.png"))
        truth["images"][stem] = scene.truth
    written.append(write_json(truth, out / "truth.json"))
    return written

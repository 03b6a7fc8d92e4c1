"""Pre-fracture (healthy) reference height maps from neighbouring levels.

Because every body's map lives on the same normalised grid, a neighbour's map is already aligned to
this level; it is scaled in height by the population height curve (levels.norm_height) so that, e.g.,
an L2 map stands in for an L1. Two methods:

* ``neighbours``: per-cell median of the scaled maps of up to two levels above and below (robust to
  one fractured neighbour), then, in a second pass, a distance-weighted mean over the neighbours
  that the first pass did not find fractured themselves.
* ``learned``: the small generator in model.py, fed the same scaled maps.

A level without any measured neighbour gets the population norms of its level, flagged.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from kintsugi_spine.levels import OFFSETS, norm_height, norm_heights
from kintsugi_spine.measure import SECTIONS, Vertebra, sections

MAX_GAP = 3.0  # a neighbour more than this many levels away is not used
SUSPECT_DROP = 0.13  # a level whose section is this far below the spine's healthy height is not borrowed from


@dataclass
class Reference:
    ref_map: np.ndarray  # (t, s) mm, defined on the target footprint
    method: str  # neighbours | learned | population norms
    used: list[str]  # levels that contributed
    flagged: bool = False
    note: str = ""


def scaled_map(src: Vertebra, target: Vertebra) -> np.ndarray:
    """``src``'s height map expressed at ``target``'s level (NaN outside src's body)."""
    assert src.hmap is not None and src.footprint is not None
    scale = norm_height(target.level) / norm_height(src.level)
    return np.where(src.footprint, src.hmap * scale, np.nan)


def neighbour_slots(vertebrae: list[Vertebra], i: int) -> dict[int, Vertebra]:
    """Neighbours by slot -2, -1, +1, +2 (negative = superior), skipping levels too far away."""
    slots: dict[int, Vertebra] = {}
    target = vertebrae[i]
    for direction in (-1, 1):
        k, slot = i + direction, direction
        while 0 <= k < len(vertebrae) and abs(slot) <= 2:
            if abs(vertebrae[k].order - target.order) <= MAX_GAP * abs(slot):
                slots[slot] = vertebrae[k]
            k += direction
            slot += direction
    return slots


def _fill(ref: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Nearest-value fill of footprint cells no neighbour covered; 0 outside the footprint."""
    valid = np.isfinite(ref)
    if not valid.any():
        return np.zeros_like(ref)
    _, (ii, jj) = ndimage.distance_transform_edt(~valid, return_indices=True)
    filled = ref[ii, jj]
    return np.where(footprint, filled, 0.0)


def own_ratios(vertebrae: list[Vertebra]) -> np.ndarray:
    """Each body's own section heights over its level's population norm, shape (n, 3)."""
    out = []
    for vb in vertebrae:
        assert vb.hmap is not None and vb.footprint is not None
        own = sections(vb.hmap, vb.hmap, vb.footprint)["obs"]
        norms = norm_heights(vb.level)
        out.append([own[k] / norms[k] for k in SECTIONS])
    return np.array(out)


def find_suspects(vertebrae: list[Vertebra]) -> set[str]:
    """Levels that look fractured next to the others, so no neighbour borrows their shape.

    Heights relative to the population curve vary by a few per cent between healthy levels of one
    spine; fractures only lower them. The healthy level is therefore estimated from the upper half
    of the ratios (robust even when half of the levels are fractured), and a level is suspect when
    any of its sections is more than 13 % below it.
    """
    if len(vertebrae) < 2:
        return set()
    r = own_ratios(vertebrae)
    upper = np.array([np.median(np.sort(r[:, k])[len(r) // 2:]) for k in range(3)])
    return {vb.level for vb, row in zip(vertebrae, r, strict=True) if np.min(row / upper) < 1 - SUSPECT_DROP}


def neighbour_reference(vertebrae: list[Vertebra], i: int, suspects: set[str] | None = None) -> Reference | None:
    """Shape from the nearest non-suspect neighbours, height from all non-suspect levels; None if alone.

    The shape (the map normalised to unit mean height) comes from the per-cell median of up to two
    healthy-looking levels on each side (mean when fewer than three). Its height is this level's
    population height times the spine's own height ratio, a proximity-weighted mean over every
    healthy-looking level but this one, which averages out the few per cent by which single levels
    differ.
    """
    target = vertebrae[i]
    others = [j for j in range(len(vertebrae)) if j != i]
    if not others:
        return None
    assert target.footprint is not None
    suspects = suspects if suspects is not None else find_suspects(vertebrae)
    ok = [j for j in others if vertebrae[j].level not in suspects]
    note, flagged = "", False
    if not ok:
        ok, flagged = others, True
        note = "every other level looks fractured: reference from them anyway"
    dist = np.array([abs(vertebrae[j].order - target.order) for j in ok])
    near = [ok[k] for k in np.argsort(dist, kind="stable")]
    shape_src = [j for j in near if abs(vertebrae[j].order - target.order) <= 2] or near[:2]
    shapes = []
    for j in shape_src:
        vb = vertebrae[j]
        assert vb.hmap is not None and vb.footprint is not None
        mean_h = float(vb.hmap[vb.footprint].mean())
        shapes.append(np.where(vb.footprint, vb.hmap / mean_h * _profile_change(vb.level, target.level), np.nan))
    stack = np.stack(shapes)
    with warnings.catch_warnings():  # cells no neighbour covers are NaN on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        shape = np.nanmedian(stack, axis=0) if len(shapes) >= 3 else np.nanmean(stack, axis=0)
    shape = _fill(shape, target.footprint)

    ratios = np.array([_mean_ratio(vertebrae[j]) for j in ok])
    w = np.exp(-((dist / 3.0) ** 2))
    ratio = float((w * ratios).sum() / w.sum())
    # Mean column height the shape should have: the norm's mean over the map, as the ratio is taken
    # on the whole map too.
    height = ratio * norm_height(target.level)
    fp_mean = float(shape[target.footprint].mean()) if target.footprint.any() else 1.0
    ref = shape * (height / max(fp_mean, 1e-6))
    skipped = [vertebrae[j].level for j in others if j not in ok]
    if skipped and not flagged:
        note = f"left out fractured-looking level(s) {', '.join(skipped)}"
    return Reference(ref, "neighbours", [vertebrae[j].level for j in shape_src], flagged=flagged, note=note)


def _profile_change(src: str, dst: str) -> np.ndarray:
    """Per-row factor (t, 1) that turns level ``src``'s anterior-posterior height profile into ``dst``'s.

    Thoracic bodies are lower in front, L5 lower behind; when the nearest healthy level is several
    levels away its shape is tilted by the population's section heights (linear in t through the
    centres of the thirds), so the mean height is untouched and only the AP profile changes.
    """
    from kintsugi_spine.measure import grid_coords

    a, b = norm_heights(src), norm_heights(dst)
    r = np.array([b[k] / a[k] for k in ("posterior", "middle", "anterior")])
    r = r / r.mean()
    return np.interp(grid_coords(), [-2 / 3, 0.0, 2 / 3], r)[:, None]


def _mean_ratio(vb: Vertebra) -> float:
    """Mean column height of the body over its level's population height."""
    assert vb.hmap is not None and vb.footprint is not None
    return float(vb.hmap[vb.footprint].mean()) / norm_height(vb.level)


def norm_reference(target: Vertebra) -> Reference:
    """The level's population section heights laid over the body's own map shape (flagged)."""
    assert target.hmap is not None and target.footprint is not None
    own = sections(target.hmap, target.hmap, target.footprint)
    norms = norm_heights(target.level)
    ratio = {k: norms[k] / max(own["obs"][k], 1e-6) for k in SECTIONS}
    overall = sum(norms.values()) / max(sum(own["obs"][k] for k in SECTIONS), 1e-6)
    factor = np.full(target.hmap.shape, overall)
    for k in SECTIONS:
        factor[own["masks"][k]] = ratio[k]
    return Reference(target.hmap * factor, "population norms", [], flagged=True,
                     note="no neighbouring vertebra: reference from population norms of this level")


def learned_inputs(vertebrae: list[Vertebra], i: int) -> np.ndarray:
    from kintsugi_spine.model import make_input

    target = vertebrae[i]
    slots = neighbour_slots(vertebrae, i)
    maps = {off: scaled_map(slots[off], target) if off in slots else None for off in OFFSETS}
    assert target.footprint is not None
    return make_input(maps, target.footprint.astype(np.float32), target.order, target.width_mm, target.depth_mm)


def learned_reference(vertebrae: list[Vertebra], i: int, predicted: np.ndarray) -> Reference:
    target = vertebrae[i]
    assert target.footprint is not None
    used = [vb.level for vb in neighbour_slots(vertebrae, i).values()]
    return Reference(np.where(target.footprint, np.maximum(predicted, 0.0), 0.0), "learned", used)


RIM_MM = 3.0  # the rounded rim of the endplates: columns this close to the outline are not used for ratios
SMOOTH_CELLS = 2.5


def conform(ref: Reference, vb: Vertebra) -> Reference:
    """Lay the reference over the body's own outline: ref = own map x smooth(reference / own map).

    A neighbour's rim (the rounded edge where endplate meets wall) never falls on exactly the same
    cells as this body's, and the HealthiVert column rule (keep columns taller than 0.7 x the central
    one) is decided on the reference, so a foreign rim would shift which columns are measured. The
    ratio of reference to observed height is smooth (a fracture deforms the body smoothly) and is
    taken only away from the rim, smoothed, and carried out to the rim; the rim itself comes from
    the body. For a healthy body this keeps exactly the columns HealthiVert would keep.
    """
    assert vb.hmap is not None and vb.footprint is not None
    from kintsugi_spine.measure import GRID_EXTENT, GRID_N

    cell = 2 * GRID_EXTENT / (GRID_N - 1)
    depth = ndimage.distance_transform_edt(vb.footprint, sampling=(cell * vb.half_d, cell * vb.half_w))
    interior = (depth >= RIM_MM) & (vb.hmap > 1.0) & (ref.ref_map > 1.0)
    if interior.sum() < 20:
        return ref
    ratio = np.where(interior, ref.ref_map / np.where(interior, vb.hmap, 1.0), 0.0)
    num = ndimage.gaussian_filter(ratio, SMOOTH_CELLS)
    den = ndimage.gaussian_filter(interior.astype(float), SMOOTH_CELLS)
    smooth = np.where(den > 1e-3, num / np.maximum(den, 1e-9), np.nan)
    smooth = _fill(smooth, vb.footprint)
    out = np.where(vb.footprint, vb.hmap * smooth, 0.0)
    return Reference(out, ref.method, ref.used, ref.flagged, ref.note)

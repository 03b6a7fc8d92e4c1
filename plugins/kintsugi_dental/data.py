"""Training and evaluation data from the project's dental phantom (``kintsugi.samples.dental``).

Phantoms are drawn at the sample's native 0.4 mm and brought to the working spacing by the same code the task
uses at inference (so the network sees what it will see), with targets: tooth mask and tooth core."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from kintsugi.samples import dental

from .preprocess import WORK_SPACING, looks_like_hu, normalise, to_working

CORE_MM = 1.2  # core = tooth voxels further than this from background and from any other tooth


def jaws_for(seed: int) -> tuple[str, ...]:
    """Variety beyond the sample's default lower jaw: lower, upper, or both jaws by seed."""
    return (("lower",), ("upper",), ("upper", "lower"))[seed % 3]


@dataclass
class Case:
    seed: int
    image: np.ndarray  # (z, y, x) float32 in [0, 1] at the working spacing
    tooth: np.ndarray  # uint8 target
    core: np.ndarray  # uint8 target
    labels: np.ndarray  # int16 instance labels at the working spacing (nearest)


def core_of(labels: np.ndarray, spacing: float, core_mm: float = CORE_MM) -> np.ndarray:
    """Tooth voxels deeper than ``core_mm`` inside their own tooth (contacts with neighbours count as surface)."""
    lab = labels.astype(np.int32)
    fg = lab > 0
    interface = np.zeros_like(fg)
    for ax in range(3):
        for shift in (1, -1):
            other = np.roll(lab, shift, axis=ax)
            interface |= fg & (other > 0) & (other != lab)
    dist = ndi.distance_transform_edt(fg & ~interface, sampling=spacing)
    core = (dist > core_mm) & fg
    out = np.zeros(lab.shape, np.uint8)
    for k, sl in enumerate(ndi.find_objects(lab), start=1):  # one piece per tooth: its largest
        if sl is None:
            continue
        comp, n = ndi.label(core[sl] & (lab[sl] == k))
        if n:
            biggest = int(np.argmax(np.bincount(comp.ravel())[1:])) + 1
            out[sl][comp == biggest] = 1
    return out


def make_case(seed: int, jaws: tuple[str, ...] | None = None, work: float = WORK_SPACING) -> Case:
    ph = dental.generate(seed, jaws=jaws or jaws_for(seed))
    sp = tuple(float(s) for s in ph.cbct.geometry.spacing[::-1])
    data = ph.cbct.data
    raw, factor = to_working(data, sp, work)  # type: ignore[arg-type]
    img = normalise(raw, looks_like_hu(data))
    shape = img.shape
    lab = ndi.affine_transform(ph.labels.data, factor, output_shape=shape, order=0, mode="nearest")
    return Case(seed, img, (lab > 0).astype(np.uint8), core_of(lab, work), lab.astype(np.int16))

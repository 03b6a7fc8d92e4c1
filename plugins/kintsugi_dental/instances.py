"""From tooth and core probabilities to one label per tooth.

Seeds are the connected pieces of the predicted core (each tooth's interior, which the network learns to
keep apart at the contact facets); a watershed on the core probability grows them through the binary tooth
mask, so the boundary between two touching teeth lands where the core probability is lowest — at the
contact. Pieces of the mask no seed reaches become teeth of their own if they are tooth-sized. Labels are
then ordered like the phantom's: upper jaw before lower, each from the patient's right (-x) to left (+x)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

MIN_TOOTH_MM3 = 40.0  # a lower central incisor is ~250 mm3; crumbs below this are not teeth
MAX_TOOTH_MM3 = 3000.0  # the largest molar is ~1200 mm3; bigger blobs are bone or metal, not a tooth
MIN_SEED_MM3 = 3.0
CORE_LEVEL = 0.7
SPLIT_ERODE = (1, 2)  # core erosions (voxels) tried inside each tooth: two crowns in contact split apart
MIN_SPLIT_MM3 = 120.0  # each part of a split must be a whole small tooth, not a root
DENTIN_LEVEL = 0.5  # 1500 HU on the normalised scale


def _drop_small(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    comp, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(comp.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[comp]


def separate(p_tooth: np.ndarray, p_core: np.ndarray, spacing: float, threshold: float = 0.5,
             image: np.ndarray | None = None) -> np.ndarray:
    """Instance labels (int32, 0 background) at the grid of the probabilities (isotropic ``spacing`` mm).

    With ``image`` (normalised, [0, 1] over 0..3000 HU) a piece must also contain dentin: its brightest tenth
    above 1500 HU. Cortical bone (~1300 HU) next to a root can look tooth-like to a small network, never
    that bright; this removes most false teeth in bone."""
    vox = spacing**3
    fg = _drop_small(p_tooth > threshold, int(MIN_TOOTH_MM3 / vox))
    if not fg.any():
        return np.zeros(p_tooth.shape, np.int32)
    seeds_mask = _drop_small((p_core > CORE_LEVEL) & fg, max(1, int(MIN_SEED_MM3 / vox)))
    markers, n = ndi.label(seeds_mask)
    elevation = 1.0 - ndi.gaussian_filter(p_core, 0.7)
    labels = watershed(elevation, markers, mask=fg) if n else np.zeros(fg.shape, np.int32)
    labels, n = _split_merged(labels, n, p_core, elevation, vox)
    orphans, m = ndi.label(fg & (labels == 0))  # tooth-sized pieces without a seed
    if m:
        sizes = np.bincount(orphans.ravel())
        for k in np.nonzero(sizes >= MIN_TOOTH_MM3 / vox)[0]:
            if k:
                n += 1
                labels[orphans == k] = n
    return _filter_and_order(labels.astype(np.int32), vox, image)


def _split_merged(labels: np.ndarray, n: int, p_core: np.ndarray, elevation: np.ndarray, vox: float
                  ) -> tuple[np.ndarray, int]:
    """Re-split a tooth whose core falls apart into two or more tooth-sized pieces once thin bridges are
    eroded away (an upper molar biting on a lower one, two incisors pressed together: their cores may touch
    through a neck of a few voxels)."""
    boxes = ndi.find_objects(labels)
    for k, sl in enumerate(boxes, start=1):
        if sl is None:
            continue
        mine = labels[sl] == k
        if mine.sum() * vox < 2 * MIN_SPLIT_MM3:
            continue
        core = (p_core[sl] > CORE_LEVEL) & mine
        for it in SPLIT_ERODE:
            seeds, m = ndi.label(ndi.binary_erosion(core, iterations=it))
            if m < 2:
                continue
            sizes = np.bincount(seeds.ravel())
            big = [i for i in range(1, m + 1) if sizes[i] * vox >= MIN_SEED_MM3]
            if len(big) < 2:
                continue
            seeds = np.where(np.isin(seeds, big), seeds, 0)
            parts = watershed(elevation[sl], seeds, mask=mine)
            part_sizes = np.bincount(parts.ravel(), minlength=m + 1)[big] * vox
            if np.all(part_sizes >= MIN_SPLIT_MM3):
                sub = labels[sl]
                for b in big[1:]:
                    n += 1
                    sub[parts == b] = n
                break
    return labels, n


def _bright_enough(image: np.ndarray, mask: np.ndarray) -> bool:
    return float(np.percentile(image[mask], 90)) > DENTIN_LEVEL


def _filter_and_order(labels: np.ndarray, vox: float, image: np.ndarray | None = None) -> np.ndarray:
    ids = np.arange(1, int(labels.max()) + 1)
    if ids.size == 0:
        return labels
    sizes = ndi.sum_labels(np.ones_like(labels, np.float32), labels, ids) * vox
    ok = [int(i) for i, s in zip(ids, sizes, strict=True) if MIN_TOOTH_MM3 <= s <= MAX_TOOTH_MM3]
    if image is not None:
        boxes = ndi.find_objects(labels)
        ok = [i for i in ok if _bright_enough(image[boxes[i - 1]], labels[boxes[i - 1]] == i)]
    if not ok:
        return np.zeros_like(labels)
    cents = np.array(ndi.center_of_mass(np.ones_like(labels, np.float32), labels, ok))  # (z, y, x)
    jaw = _jaw_of(cents[:, 0])
    order = sorted(range(len(ok)), key=lambda i: (-jaw[i], cents[i, 2]))  # upper (1) first, then -x to +x
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    for new, i in enumerate(order, start=1):
        lut[ok[i]] = new
    return lut[labels]


def _jaw_of(z: np.ndarray) -> np.ndarray:
    """1 for teeth above the largest gap in height (upper jaw) when that gap is wide, else 0 for all."""
    if z.size < 2:
        return np.zeros(z.size, int)
    zs = np.sort(z)
    gaps = np.diff(zs)
    i = int(np.argmax(gaps))
    if gaps[i] < 8.0:  # voxels at 0.6 mm: ~5 mm between crown centres of opposing jaws at least
        return np.zeros(z.size, int)
    return (z > zs[i]).astype(int)

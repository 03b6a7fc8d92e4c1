"""Few-shot examples found among open layers: a photo and the crack mask drawn (or corrected) on it.

The GUI's Adapt button and scripts use the same pairing, so "which examples will adapt the model" has
one answer. A mask belongs to a photo when it has the photo's height and width and its name says so:
``<photo>_mask`` / ``<photo>_<n>_mask`` (New mask on the Labels toolbar) or ``<photo> crack mask`` (a
task's result, which the user may have corrected with the brush).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kintsugi.core import Image2D, Layer, is_mask

TASK_MASK_SUFFIX = " crack mask"


@dataclass(frozen=True)
class Example:
    photo: Image2D
    mask: Image2D

    @property
    def crack_pixels(self) -> int:
        from kintsugi_crack.tasks import mask_array

        return int(mask_array(self.mask.data).sum())

    @property
    def label(self) -> str:
        return f"{self.photo.name}  ←  {self.mask.name}  ({self.crack_pixels} crack px)"


def belongs(mask: Image2D, photo: Image2D) -> bool:
    """``mask`` was drawn on ``photo``: same height and width, and named after it (see the module)."""
    if mask.data.shape[:2] != photo.data.shape[:2]:
        return False
    name, base = mask.name, photo.name
    if name == base + TASK_MASK_SUFFIX or name == base + "_mask":
        return True
    middle = name[len(base) + 1:-len("_mask")] if name.startswith(base + "_") and name.endswith("_mask") else ""
    return middle.isdigit()


def find_examples(layers: Iterable[Layer], target: Image2D | None = None) -> list[Example]:
    """Every (photo, mask) pair among ``layers``, the target photo's own masks left out (a photo is not an
    example for itself). Masks with no crack pixel are listed too: the task says clearly why it refuses them."""
    layers = list(layers)
    photos = [x for x in layers if isinstance(x, Image2D) and not is_mask(x) and x is not target]
    out = []
    for mask in (x for x in layers if is_mask(x)):
        owners = [p for p in photos if belongs(mask, p)]
        if owners:
            out.append(Example(max(owners, key=lambda p: len(p.name)), mask))  # the most specific name wins
    return out


def support_values(examples: Iterable[Example]) -> dict[str, list[Image2D]]:
    """The ``crack.segment_layers`` arguments for these examples."""
    examples = list(examples)
    return {"support_images": [e.photo for e in examples], "support_masks": [e.mask for e in examples]}

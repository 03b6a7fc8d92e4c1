"""Which view shows which kind of layer, decided without importing the views.

The main window creates its canvases (napari, VTK) only when the first layer that needs them arrives,
so it must be able to ask "would the 3D view show this?" before the 3D view, and pyvista, exist.
"""

from __future__ import annotations

import numpy as np

from kintsugi.core import Fragments, Image2D, LabelMap, Layer, Mesh, PointCloud, Volume

MAX_SURFACE_VOXELS = 200_000_000  # label maps larger than this are not surfaced automatically


def shown_in_3d(layer: Layer) -> bool:
    if isinstance(layer, LabelMap):
        return layer.data.size <= MAX_SURFACE_VOXELS
    return isinstance(layer, Mesh | PointCloud | Fragments)


def shown_in_slices(layer: Layer) -> bool:
    return isinstance(layer, Volume | LabelMap)


def shown_in_image_pane(layer: Layer) -> bool:
    return isinstance(layer, Image2D)


def is_mask(layer: Layer) -> bool:
    """A binary mask of a photo (0/255, named ``*_mask`` or of modality ``mask``): a paintable label overlay.

    Asked on every form refresh and selection, so the value check is one pass without sorting (np.unique
    on a large photo takes seconds), and a layer that says it is a mask (modality) is believed.
    """
    if not (isinstance(layer, Image2D) and layer.data.ndim == 2 and layer.data.dtype == np.uint8):
        return False
    if layer.modality == "mask":
        return True
    if not layer.name.endswith("_mask"):
        return False
    d = layer.data
    return not np.any((d != 0) & (d != 255))


OVERLAY_MODALITIES = ("width map", "heatmap", "overlay")


def is_overlay(layer: Layer) -> bool:
    """A map over a photo that is zero where it says nothing (crack widths): drawn additively, in colour."""
    return isinstance(layer, Image2D) and not layer.is_rgb and layer.modality in OVERLAY_MODALITIES

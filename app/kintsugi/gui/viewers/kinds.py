"""Which view shows which kind of layer, decided without importing the views.

The main window creates its canvases (napari, VTK) only when the first layer that needs them arrives,
so it must be able to ask "would the 3D view show this?" before the 3D view, and pyvista, exist.
"""

from __future__ import annotations

from kintsugi.core import Fragments, Image2D, LabelMap, Layer, Mesh, PointCloud, Volume, is_mask

__all__ = ["is_mask", "is_overlay", "shown_in_3d", "shown_in_image_pane", "shown_in_slices"]

MAX_SURFACE_VOXELS = 200_000_000  # label maps larger than this are not surfaced automatically


def shown_in_3d(layer: Layer) -> bool:
    if isinstance(layer, LabelMap):
        return layer.data.size <= MAX_SURFACE_VOXELS
    return isinstance(layer, Mesh | PointCloud | Fragments)


def shown_in_slices(layer: Layer) -> bool:
    return isinstance(layer, Volume | LabelMap)


def shown_in_image_pane(layer: Layer) -> bool:
    return isinstance(layer, Image2D)


OVERLAY_MODALITIES = ("width map", "heatmap", "overlay")


def is_overlay(layer: Layer) -> bool:
    """A map over a photo that is zero where it says nothing (crack widths): drawn additively, in colour."""
    return isinstance(layer, Image2D) and not layer.is_rgb and layer.modality in OVERLAY_MODALITIES

"""The data model: layers with physical geometry and a Scene that announces changes.

Nothing here imports Qt, so the model serves the GUI, the CLI, tests and batch alike.
"""

from kintsugi.core.geometry import Geometry
from kintsugi.core.layers import (
    Fragment,
    Fragments,
    Image2D,
    LabelInfo,
    LabelMap,
    Layer,
    Mesh,
    PointCloud,
    Provenance,
    Table,
    Volume,
    check_rigid,
    is_mask,
    palette_color,
)
from kintsugi.core.scene import Scene

__all__ = [
    "Fragment",
    "Fragments",
    "Geometry",
    "Image2D",
    "LabelInfo",
    "LabelMap",
    "Layer",
    "Mesh",
    "PointCloud",
    "Provenance",
    "Scene",
    "Table",
    "Volume",
    "check_rigid",
    "is_mask",
    "palette_color",
]

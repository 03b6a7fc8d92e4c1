"""Per-tooth surfaces in physical millimetres (marching cubes on each label, as kintsugi_tools does)."""

from __future__ import annotations

import numpy as np

from kintsugi.core import Geometry, Mesh


def tooth_mesh(mask: np.ndarray, offset_zyx: np.ndarray, geometry: Geometry, step: int = 1) -> Mesh | None:
    """Closed surface of ``mask`` (a crop whose first voxel is ``offset_zyx`` on the grid of ``geometry``)."""
    from skimage.measure import marching_cubes

    if not mask.any():
        return None
    padded = np.pad(mask, 1).astype(np.float32)
    try:
        verts, faces, _, _ = marching_cubes(padded, level=0.5, step_size=step)
    except (RuntimeError, ValueError):  # too small for the step: no surface rather than a crash
        return None
    index_zyx = verts - 1 + offset_zyx
    physical = geometry.index_to_physical(index_zyx[:, ::-1])
    if np.linalg.det(geometry.direction) < 0:
        faces = faces[:, ::-1]  # mirrored grid: keep the normals pointing out
    return Mesh(vertices=physical, faces=faces)

"""Pure functions: layers in, layers out. No Qt, no global state, cancellable through ``progress``."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from scipy import ndimage

from kintsugi.core import LabelInfo, LabelMap, Mesh, Table, Volume
from kintsugi.plugins import NO_PROGRESS, Param, Progress, TaskResult


def _surface(mask: np.ndarray, label_map: LabelMap, offset: np.ndarray, step: int) -> Mesh | None:
    from skimage.measure import marching_cubes

    padded = np.pad(mask, 1).astype(np.float32)
    if padded.sum() == 0:
        return None
    verts, faces, _, _ = marching_cubes(padded, level=0.5, step_size=step)
    index_zyx = verts - 1 + offset  # undo the padding, back to the full grid
    physical = label_map.geometry.index_to_physical(index_zyx[:, ::-1])
    if np.linalg.det(label_map.geometry.direction) < 0:
        faces = faces[:, ::-1]  # a mirrored grid flips triangle winding; keep normals pointing out
    return Mesh(vertices=physical, faces=faces)


def label_meshes(labels: LabelMap,
                 step: Annotated[int, Param(min=1, max=4, help="marching-cubes step in voxels (larger = coarser)")] = 1,
                 *, progress: Progress = NO_PROGRESS) -> TaskResult:
    """A closed surface per label, in physical millimetres, named and coloured like the label."""
    present = labels.present_labels()
    if not present:
        raise ValueError(f"label map '{labels.name}' has no labels (all voxels are 0)")
    voxel_mm3 = float(np.prod(labels.geometry.spacing))
    objects = ndimage.find_objects(labels.data.astype(np.int64, copy=False))
    meshes, rows, files = [], [], {}
    for i, value in enumerate(present):
        progress(i / len(present), f"label {value}")
        sl = objects[value - 1]
        mask = labels.data[sl] == value
        offset = np.array([s.start for s in sl], dtype=float)
        mesh = _surface(mask, labels, offset, step)
        info = labels.labels.get(value, LabelInfo(f"label {value}"))
        centroid_idx = np.array(ndimage.center_of_mass(mask)) + offset
        centroid = labels.geometry.index_to_physical(centroid_idx[::-1])
        rows.append({"label": value, "name": info.name, "voxels": int(mask.sum()),
                     "volume_mm3": round(float(mask.sum()) * voxel_mm3, 3),
                     "centroid_mm": [round(float(c), 3) for c in centroid]})
        if mesh is not None:
            mesh.name, mesh.color = f"{labels.name} {info.name}", info.color
            meshes.append(mesh)
            files[f"meshes/{value}.ply"] = mesh
    progress(1.0, f"{len(meshes)} surfaces")
    table = Table.from_records([{k: v for k, v in r.items() if k != "centroid_mm"} | {
        "centroid_x": r["centroid_mm"][0], "centroid_y": r["centroid_mm"][1], "centroid_z": r["centroid_mm"][2]}
        for r in rows], name=f"{labels.name} labels")
    files["labels.csv"] = table
    files["labels.json"] = rows
    return TaskResult(layers=[*meshes, table], files=files, summary={"labels": len(rows)})


def threshold(volume: Volume,
              level: Annotated[float, Param(help="voxels at or above this value are labelled (HU for CT)")] = 300.0,
              largest_only: Annotated[bool, Param(help="keep only the largest connected piece")] = False,
              *, progress: Progress = NO_PROGRESS) -> TaskResult:
    """Label the voxels at or above ``level``."""
    progress(0.1, "thresholding")
    mask = volume.data >= level
    if largest_only and mask.any():
        progress(0.5, "connected pieces")
        comp, n = ndimage.label(mask)
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        mask = comp == int(np.argmax(sizes))
    out = LabelMap(name=f"{volume.name} ≥ {level:g}", data=mask.astype(np.uint8), geometry=volume.geometry,
                   labels={1: LabelInfo(f"≥ {level:g}", (241, 196, 15))})
    voxels = int(mask.sum())
    progress(1.0, f"{voxels} voxels")
    return TaskResult(layers=[out], files={"mask.nii.gz": out},
                      summary={"voxels": voxels, "volume_mm3": voxels * float(np.prod(volume.geometry.spacing))})

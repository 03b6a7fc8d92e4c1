"""dental.segment_teeth: one label, one mesh and one table row per tooth of a CBCT. Pure: no Qt."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from scipy import ndimage as ndi

from kintsugi.core import LabelInfo, LabelMap, Table, Volume, palette_color
from kintsugi.plugins import NO_PROGRESS, Param, Progress, TaskResult, Weights

from .fdi import crown_lift, fdi_numbers
from .meshes import tooth_mesh
from .preprocess import canonical


def _model(weights: Weights | None, device: str) -> Any:
    import torch

    from .model import load_model, pick_device

    if weights is None or "model" not in weights:
        raise ValueError("dental.segment_teeth needs its weights ('model'); reinstall the plugin")
    dev = pick_device(device)
    if dev == "cpu":
        torch.set_num_threads(max(1, min(torch.get_num_threads(), 8)))
    return load_model(weights.load("model", "cpu"), dev), dev


def segment_teeth(
    image: Volume,
    meshes: Annotated[bool, Param(help="also make one surface mesh per tooth (teeth/<label>.ply)")] = True,
    mesh_step: Annotated[int, Param(min=1, max=4, help="marching-cubes step in voxels (larger = coarser)")] = 1,
    numbering: Annotated[bool, Param(help="guess FDI numbers from the position along the arch")] = True,
    *, progress: Progress = NO_PROGRESS, device: str = "cpu", weights: Weights | None = None,
) -> TaskResult:
    """Label every tooth of a CBCT on its own (1..N, upper jaw first, each jaw from the patient's right to
    left), with volumes, centroids (physical LPS mm) and optionally FDI numbers and surfaces."""
    from .infer import segment_array

    data = np.asarray(image.data)
    if data.ndim != 3:
        raise ValueError(f"'{image.name}' is not a 3D volume (shape {data.shape})")
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise ValueError(f"'{image.name}' has non-numeric voxels ({data.dtype})")
    if not np.all(np.isfinite(data[:: max(1, data.shape[0] // 16)])):
        data = np.nan_to_num(data.astype(np.float32), nan=-1000.0, posinf=3000.0, neginf=-1000.0)
    progress(0.01, "loading the model")
    model, dev = _model(weights, device)
    geo = image.geometry
    canon = canonical(geo.direction, geo.spacing)
    seg = segment_array(model, canon.forward(data), canon.spacing_zyx, dev,
                        progress=lambda f, m: progress(0.03 + 0.8 * f, m))
    labels = np.ascontiguousarray(canon.inverse(seg.labels))
    if labels.max() <= 255:
        labels = labels.astype(np.uint8)
    n = int(labels.max())
    progress(0.85, f"{n} teeth: measuring")
    voxel_mm3 = float(np.prod(geo.spacing))
    boxes = ndi.find_objects(labels) if n else []
    counts, centroids = [], []
    for k, sl in enumerate(boxes, start=1):  # per tooth box: no full-grid temporaries
        idx = np.argwhere(labels[sl] == k) + np.array([s.start for s in sl])
        counts.append(len(idx))
        centroids.append(geo.index_to_physical(idx.mean(axis=0)[::-1]))
    fdi: list[int | None] = [None] * n
    if numbering and n:
        cen = np.array(centroids)
        fdi = fdi_numbers(cen, crown_lift(labels, geo, cen))
    rows: list[dict[str, Any]] = []
    infos: dict[int, LabelInfo] = {}
    for k in range(1, n + 1):
        name = f"tooth {fdi[k - 1]}" if fdi[k - 1] else f"tooth {k}"
        infos[k] = LabelInfo(name, palette_color(k - 1))
        rows.append({"label": k, "volume_mm3": round(float(counts[k - 1]) * voxel_mm3, 3),
                     "centroid_mm": [round(float(v), 3) for v in centroids[k - 1]], "fdi": fdi[k - 1]})
    label_map = LabelMap(name=f"{image.name} teeth", data=labels, geometry=geo, labels=infos,
                         metadata={"notes": seg.notes})
    files: dict[str, Any] = {"teeth_labels.nii.gz": label_map, "teeth.json": rows}
    layers: list[Any] = [label_map]
    if meshes and n:
        for i, sl in enumerate(boxes, start=1):
            progress(0.88 + 0.1 * i / n, f"surface of {infos[i].name}")
            if sl is None:
                continue
            mesh = tooth_mesh(labels[sl] == i, np.array([s.start for s in sl], float), geo, mesh_step)
            if mesh is None:
                continue
            mesh.name, mesh.color = f"{image.name} {infos[i].name}", infos[i].color
            layers.append(mesh)
            files[f"teeth/{i}.ply"] = mesh
    table = Table.from_records([{"label": r["label"], "name": infos[r["label"]].name, "fdi": r["fdi"],
                                 "volume_mm3": r["volume_mm3"], "centroid_x": r["centroid_mm"][0],
                                 "centroid_y": r["centroid_mm"][1], "centroid_z": r["centroid_mm"][2],
                                 "layer": f"{image.name} {infos[r['label']].name}"}  # a row click selects it
                                for r in rows], name=f"{image.name} teeth")
    layers.append(table)
    files["teeth.csv"] = table
    progress(1.0, f"{n} teeth")
    summary = {"teeth": n, "device": dev, "notes": "; ".join(seg.notes)}
    return TaskResult(layers=layers, files=files, summary=summary)

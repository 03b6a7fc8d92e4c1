"""Structural label edits -- merge two labels, split one -- as undoable commands.

Segmentations of touching objects (teeth at their contact points, vertebrae fused by osteophytes) come
out with two objects under one label or one object under two; these are the corrections a reviewer
makes. Each edit records only the voxels it changes (flat indices and old values), writes into the
label map's own array (views that share it stay in sync) and announces ``data`` so surfaces, tables
and the autosave follow.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from kintsugi.core.history import Command
from kintsugi.core.layers import LabelInfo, LabelMap, palette_color


def _relabel_command(layer: LabelMap, text: str, index: np.ndarray, new: np.ndarray,
                     new_infos: dict[int, LabelInfo]) -> Command:
    flat = layer.data.reshape(-1)  # a view: edits land in the shared array
    old = flat[index].copy()
    old_infos = {k: layer.labels.get(k) for k in new_infos}

    def redo() -> None:
        flat[index] = new
        layer.labels.update(new_infos)
        layer.changed.emit("labels")
        layer.changed.emit("data")

    def undo() -> None:
        flat[index] = old
        for k, info in old_infos.items():
            if info is None:
                layer.labels.pop(k, None)
            else:
                layer.labels[k] = info
        layer.changed.emit("labels")
        layer.changed.emit("data")

    return Command(text, redo, undo)


def merge_labels(layer: LabelMap, source: int, target: int) -> Command:
    """Every voxel of ``source`` becomes ``target`` (push the command to apply it)."""
    source, target = int(source), int(target)
    if source == target:
        raise ValueError(f"cannot merge label {source} into itself")
    if source == 0 or target == 0:
        raise ValueError("label 0 is the background: erase instead of merging with it")
    index = np.flatnonzero(layer.data.reshape(-1) == source)
    if index.size == 0:
        raise ValueError(f"label {source} is not in '{layer.name}'")
    if target > np.iinfo(layer.data.dtype).max:
        raise ValueError(f"label {target} does not fit the label map's {layer.data.dtype} voxels")
    infos = {} if target in layer.labels else {target: LabelInfo(f"label {target}", palette_color(len(layer.labels)))}
    name = layer.labels[source].name if source in layer.labels else str(source)
    return _relabel_command(layer, f"merge {name} into label {target}", index,
                            np.full(index.size, target, layer.data.dtype), infos)


def split_label(layer: LabelMap, value: int, min_fraction: float = 0.05) -> Command:
    """Give a label's separate pieces their own labels.

    Pieces not connected to each other (after an erase stroke cut them apart) are split as they are;
    a single connected piece is split in two at its narrowest waist (watershed of the distance map from
    its two most distant cores), which is how two touching teeth or vertebrae come apart. The largest
    piece keeps the value; the others get new values above every label in use.
    """
    value = int(value)
    mask = layer.data == value
    if not mask.any():
        raise ValueError(f"label {value} is not in '{layer.name}'")
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    sub = mask[box]
    pieces, n = ndimage.label(sub)
    if n < 2:
        pieces, n = _split_in_two(sub, layer.geometry.spacing[::-1])
    sizes = np.bincount(pieces.ravel())[1:]
    order = [int(i) + 1 for i in np.argsort(sizes)[::-1]]
    keep = [k for k in order[1:] if sizes[k - 1] >= min_fraction * sizes[order[0] - 1]]
    if not keep:
        raise ValueError(f"label {value} is one piece with no waist to split at; cut it with the eraser first")
    used = max([int(layer.data.max()), *layer.labels]) if layer.labels else int(layer.data.max())
    if used + len(keep) > np.iinfo(layer.data.dtype).max:
        raise ValueError(f"no free label values left in the label map's {layer.data.dtype} voxels")
    full_index = np.arange(layer.data.size).reshape(layer.data.shape)[box]
    index_parts, value_parts, infos = [], [], {}
    base = layer.labels[value].name if value in layer.labels else f"label {value}"
    for i, k in enumerate(keep, start=1):
        idx = full_index[pieces == k]
        index_parts.append(idx)
        value_parts.append(np.full(idx.size, used + i, layer.data.dtype))
        infos[used + i] = LabelInfo(f"{base} ({i + 1})", palette_color(len(layer.labels) + i))
    return _relabel_command(layer, f"split {base}", np.concatenate(index_parts), np.concatenate(value_parts),
                            infos)


def _split_in_two(mask: np.ndarray, spacing_zyx) -> tuple[np.ndarray, int]:
    from skimage.segmentation import watershed

    dist = ndimage.distance_transform_edt(mask, sampling=spacing_zyx)
    # Two seeds: the deepest core, then the core deepest among points far from it.
    first = np.unravel_index(int(np.argmax(dist)), mask.shape)
    grid = np.indices(mask.shape).reshape(mask.ndim, -1).T
    far = np.linalg.norm((grid - np.array(first)) * np.asarray(spacing_zyx), axis=1).reshape(mask.shape)
    score = np.where(mask, dist * (far > 2 * dist[first]), 0)
    if score.max() <= 0:
        return np.zeros(mask.shape, np.int32), 0
    second = np.unravel_index(int(np.argmax(score)), mask.shape)
    markers = np.zeros(mask.shape, np.int32)
    markers[first] = 1
    markers[second] = 2
    pieces = watershed(-dist, markers, mask=mask)
    return pieces.astype(np.int32), 2

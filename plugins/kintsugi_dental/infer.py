"""Sliding-window inference and the whole segmentation pipeline on a canonical array.

Pipeline: canonical orientation -> working spacing (0.6 mm) -> normalisation -> dentin-bright region of
interest -> overlapping 64^3 windows with Gaussian weights -> tooth / core probabilities -> instances
(instances.py) -> back to the input grid (probabilities upsampled linearly, instance ids by nearest)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage as ndi

from .instances import separate
from .preprocess import (
    MIN_EXTENT_MM,
    WORK_SPACING,
    from_working,
    looks_like_hu,
    normalise,
    to_working,
    tooth_roi,
)

WINDOW = 64
OVERLAP = 0.25


def _gauss_weight(shape: tuple[int, ...]) -> np.ndarray:
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    r2 = sum(g**2 for g in grids)
    return np.exp(-r2 / (2 * 0.5**2)).astype(np.float32) + 1e-3


def _starts(n: int, win: int, stride: int) -> list[int]:
    if n <= win:
        return [0]
    s = list(range(0, n - win, stride)) + [n - win]
    return sorted(set(s))


@torch.no_grad()
def sliding_window(model: torch.nn.Module, image: np.ndarray, device: str = "cpu", window: int = WINDOW,
                   overlap: float = OVERLAP, progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """Sigmoid probabilities (2, z, y, x) of ``image`` (z, y, x) float32, window by window (memory ~ one window)."""
    pad = [(0, max(0, (-s) % 4 + max(0, 16 - s))) for s in image.shape]  # multiples of 4, at least 16
    x = np.pad(image, pad, mode="edge")
    win = tuple(min(window, s) for s in x.shape)
    win = tuple(w - w % 4 for w in win)
    stride = [max(4, int(w * (1 - overlap))) for w in win]
    acc = np.zeros((2, *x.shape), np.float32)
    wsum = np.zeros(x.shape, np.float32)
    weight = _gauss_weight(win)
    boxes = [(a, b, c) for a in _starts(x.shape[0], win[0], stride[0]) for b in _starts(x.shape[1], win[1], stride[1])
             for c in _starts(x.shape[2], win[2], stride[2])]
    for i, (a, b, c) in enumerate(boxes):
        if progress is not None:
            progress(i / len(boxes), f"window {i + 1}/{len(boxes)}")
        sl = (slice(a, a + win[0]), slice(b, b + win[1]), slice(c, c + win[2]))
        t = torch.from_numpy(np.ascontiguousarray(x[sl]))[None, None].to(device)
        p = torch.sigmoid(model(t))[0].float().cpu().numpy()
        acc[(slice(None), *sl)] += p * weight
        wsum[sl] += weight
    out = acc / wsum
    return out[:, : image.shape[0], : image.shape[1], : image.shape[2]]


@dataclass
class Segmentation:
    labels: np.ndarray  # uint16 instance labels on the canonical input grid
    work_labels: np.ndarray  # the same at the working spacing
    prob: np.ndarray  # tooth probability at the working spacing
    notes: list[str] = field(default_factory=list)


def segment_array(model: torch.nn.Module, data: np.ndarray, spacing_zyx: tuple[float, float, float],
                  device: str = "cpu", progress: Callable[[float, str], None] | None = None) -> Segmentation:
    """Instance labels of the teeth in a canonical (S, P, L-ordered) array with the given spacing."""
    prog = progress or (lambda f, m: None)
    extent = np.asarray(data.shape) * np.asarray(spacing_zyx)
    if np.any(extent < MIN_EXTENT_MM):
        raise ValueError(f"volume is {data.shape[2]}x{data.shape[1]}x{data.shape[0]} voxels "
                         f"({extent[2]:.1f} x {extent[1]:.1f} x {extent[0]:.1f} mm): too small to hold a tooth "
                         f"(need at least {MIN_EXTENT_MM:.0f} mm on each side)")
    prog(0.02, "resampling to the working spacing")
    raw, factor = to_working(data, spacing_zyx)
    img = normalise(raw, looks_like_hu(data))
    del raw
    roi = tooth_roi(img)
    prob = np.zeros((2, *img.shape), np.float32)
    notes: list[str] = []
    if roi is None:
        notes.append("nothing as bright as dentin in the volume: no teeth")
    else:
        prog(0.1, "network")
        crop = np.ascontiguousarray(img[roi])
        try:
            sub = sliding_window(model, crop, device, progress=lambda f, m: prog(0.1 + 0.6 * f, m))
        except (RuntimeError, NotImplementedError) as e:  # e.g. a 3D op missing on MPS, or GPU memory
            if device == "cpu":
                raise
            notes.append(f"{device} failed ({str(e).splitlines()[0][:80]}); ran on the CPU")
            model.to("cpu")
            sub = sliding_window(model, crop, "cpu", progress=lambda f, m: prog(0.1 + 0.6 * f, m))
        prob[(slice(None), *roi)] = sub
    prog(0.72, "separating teeth")
    work_labels = separate(prob[0], prob[1], WORK_SPACING, image=img)
    prog(0.85, "back to the input grid")
    labels = _to_input_grid(work_labels, prob[0], factor, data.shape)
    return Segmentation(labels, work_labels, prob[0], notes)


def _to_input_grid(work_labels: np.ndarray, prob: np.ndarray, factor: tuple[float, float, float],
                   shape: tuple[int, ...]) -> np.ndarray:
    """Upsample within the teeth's bounding box only: the foreground from the linearly interpolated
    probability (smooth surfaces), each voxel's tooth from the nearest working-grid tooth."""
    out = np.zeros(shape, np.uint16)  # full input grid: keep it small (a 512^3 scan is 256 MB at 16 bits)
    if work_labels.max() == 0:
        return out
    idx = np.argwhere(work_labels > 0)
    lo_w, hi_w = idx.min(axis=0) - 2, idx.max(axis=0) + 3
    f = np.asarray(factor)
    lo = np.maximum(np.floor(lo_w * f).astype(int), 0)
    hi = np.minimum(np.ceil(hi_w * f).astype(int) + 1, shape)
    box = tuple(int(h - l) for l, h in zip(lo, hi, strict=True))
    fg = from_working(prob, factor, box, order=1, origin_in=tuple(lo)) > 0.5
    dil = ndi.grey_dilation(work_labels, size=3)  # border voxels of the fine grid find a tooth ...
    grown = np.where(work_labels > 0, work_labels, dil)  # ... without moving the contacts between teeth
    lab = from_working(grown.astype(np.float32), factor, box, order=0, origin_in=tuple(lo)).astype(np.uint16)
    lab[~fg] = 0
    out[tuple(slice(int(l), int(h)) for l, h in zip(lo, hi, strict=True))] = lab
    return out

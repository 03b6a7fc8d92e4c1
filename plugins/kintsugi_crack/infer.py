"""Tiled, memory-bounded inference: network, few-shot prototypes and the classical ridge filter.

Why tiles: a 20000 x 20000 photo as a 4-channel float tensor is 6.4 GB before the first layer runs.
Every path here reads the photo tile by tile (a ``tile`` x ``tile`` core plus ``margin`` px of context
on each side), runs on that, and writes only the core into a uint8 array the size of the photo; the
illumination comes from a coarse grid computed once (see ``retinex``). Peak float memory is set by
the tile size, not the photo size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from kintsugi_crack.model import MARGIN, CrackProtoNet, Prototypes
from kintsugi_crack.retinex import Illumination, illumination, network_input, to_float_rgb
from kintsugi_crack.tiling import DEFAULT_TILE, Tile, tiles

MIN_SIDE = 16

Report = Callable[[float, str], None]


def _quiet(_f: float, _m: str) -> None:
    return None


def check_image(data: np.ndarray, what: str = "the image") -> None:
    if data.ndim not in (2, 3) or data.shape[0] < MIN_SIDE or data.shape[1] < MIN_SIDE:
        raise ValueError(f"{what} is {data.shape[1]}x{data.shape[0]} px; crack detection needs at least "
                         f"{MIN_SIDE}x{MIN_SIDE} px")


def _window_input(data: np.ndarray, t: Tile, il: Illumination) -> torch.Tensor:
    """(1, 4, H', W') tensor of the padded window, edge-padded to a multiple of 8."""
    rgb = to_float_rgb(data[t.py0:t.py1, t.px0:t.px1])
    x = network_input(rgb, il.at(t.py0, t.px0, *rgb.shape[:2]), il.exposure, il.noise)
    h, w = x.shape[1:]
    ph, pw = (-h) % 8, (-w) % 8
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="edge")
    return torch.from_numpy(x)[None].to(memory_format=torch.channels_last)


def fold_batchnorm(module: torch.nn.Module) -> None:
    """Fold every BatchNorm that follows a convolution into it (inference only): one pass less over
    every feature map, a fifth of the CPU time of this small network."""
    for child in module.children():
        fold_batchnorm(child)
    if not isinstance(module, torch.nn.Sequential):
        return
    items = list(module)
    for i in range(len(items) - 1):
        conv, bn = items[i], items[i + 1]
        if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight = torch.nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1))
            conv.bias = torch.nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
            module[i + 1] = torch.nn.Identity()


def load_model(tensors: dict[str, torch.Tensor], device: str = "cpu") -> CrackProtoNet:
    net = CrackProtoNet()
    missing, unexpected = net.load_state_dict(tensors, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise ValueError(f"weights do not fit CrackProtoNet (missing {missing[:3]}, unexpected {unexpected[:3]})")
    net.eval()
    net.requires_grad_(False)  # inference only; the few-shot head fit optimises its own copies
    with torch.no_grad():
        fold_batchnorm(net)
    return net.to(device).to(memory_format=torch.channels_last)


# Test-time views: each maps a window and back (an involution). The network is not equivariant to them
# (its strided grid and learned filters are not), so their mean probability is a slightly better guess.
VIEWS: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = (
    lambda x: x,
    lambda x: x.transpose(-1, -2),
    lambda x: x.flip(-1),
    lambda x: x.flip(-2),
)


def _probability(net: CrackProtoNet, x: torch.Tensor, p: dict[str, torch.Tensor] | None, views: int) -> torch.Tensor:
    views = max(1, min(int(views), len(VIEWS)))
    total = torch.zeros_like(x[:, :1])
    for view in VIEWS[:views]:
        total += view(torch.sigmoid(net(view(x), p)))
    return total / views


@torch.inference_mode()
def predict(data: np.ndarray, net: CrackProtoNet, protos: dict[str, torch.Tensor] | None = None,
            tile: int = DEFAULT_TILE, device: str = "cpu", report: Report = _quiet,
            il: Illumination | None = None, views: int = 1) -> np.ndarray:
    """Crack probability as uint8 (0..255) with the photo's height and width; ``views`` > 1 averages the
    photo with its transpose and mirror images (x times the time)."""
    check_image(data)
    h, w = data.shape[:2]
    il = il or illumination(data)
    out = np.zeros((h, w), np.uint8)
    todo = list(tiles(h, w, tile, MARGIN))
    p = {k: v.to(device) for k, v in protos.items()} if protos else None
    for i, t in enumerate(todo):
        report(i / len(todo), f"tile {i + 1}/{len(todo)}")
        x = _window_input(data, t, il).to(device)
        prob = _probability(net, x, p, views)[0, 0, : t.py1 - t.py0, : t.px1 - t.px0][t.core]
        out[t.y0:t.y1, t.x0:t.x1] = (prob * 255).round().to(torch.uint8).cpu().numpy()
    return out


@torch.inference_mode()
def add_support(protos: Prototypes, data: np.ndarray, mask: np.ndarray, net: CrackProtoNet,
                tile: int = DEFAULT_TILE, device: str = "cpu", pool: bool = True) -> None:
    """Accumulate masked-average-pooling sums of one support image (features at 1/2 resolution) and
    keep a crop of each tile for the head fit; ``pool=False``: only the crop (a darkened twin)."""
    check_image(data, "a support image")
    h, w = data.shape[:2]
    il = illumination(data)
    for t in tiles(h, w, tile, MARGIN):
        x = _window_input(data, t, il).to(device)
        feats, ref = net.features(x)
        m = np.zeros(x.shape[2:], np.float32)
        valid = np.zeros(x.shape[2:], np.float32)
        m[: t.py1 - t.py0, : t.px1 - t.px0][t.core] = mask[t.y0:t.y1, t.x0:t.x1]
        valid[: t.py1 - t.py0, : t.px1 - t.px0][t.core] = 1
        mt = F.avg_pool2d(torch.from_numpy(m)[None, None], 2).to(device)
        vt = F.avg_pool2d(torch.from_numpy(valid)[None, None], 2).to(device)
        # Soft masks (crack fraction of each 2x2 cell), exactly as in training (model.batch_prototypes).
        inside = (vt > 0.99).float()
        if pool:
            protos.add(feats.float(), ref.float(), mt * inside, inside)
        protos.keep_crop(x, feats, torch.from_numpy(m)[None, None].to(device),
                         torch.from_numpy(valid)[None, None].to(device))


# ------------------------------------------------------------------------------------ classical

RIDGE_SIGMAS = (1.0, 2.0, 3.0)
RIDGE_LOW, RIDGE_HIGH = 0.04, 0.10  # tuned for F1 on synthetic training seeds (30000)
RIDGE_MARGIN = 16


def ridge(data: np.ndarray, tile: int = DEFAULT_TILE, low: float = RIDGE_LOW, high: float = RIDGE_HIGH,
          report: Report = _quiet, il: Illumination | None = None) -> np.ndarray:
    """Classical path: multi-scale Sato ridge filter (dark ridges) on the reflectance, hysteresis
    thresholds; returns uint8 0/255. No weights needed: the fallback and the bench's baseline."""
    from skimage.filters import apply_hysteresis_threshold, sato

    check_image(data)
    h, w = data.shape[:2]
    il = il or illumination(data)
    out = np.zeros((h, w), np.uint8)
    todo = list(tiles(h, w, tile, RIDGE_MARGIN))
    for i, t in enumerate(todo):
        report(i / len(todo), f"ridge tile {i + 1}/{len(todo)}")
        rgb = to_float_rgb(data[t.py0:t.py1, t.px0:t.px1])
        refl = network_input(rgb, il.at(t.py0, t.px0, *rgb.shape[:2]), il.exposure)[3]
        resp = sato(refl, sigmas=RIDGE_SIGMAS, black_ridges=True, mode="reflect")
        m = apply_hysteresis_threshold(resp, low, high)
        out[t.y0:t.y1, t.x0:t.x1] = m[t.core] * np.uint8(255)
    return out

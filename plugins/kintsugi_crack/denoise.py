"""A tiny learned denoiser for the brightness of noisy (low-light) photos, applied only when needed.

Why: in a photo taken with little light, the crack network's loss is the sensor noise in the
brightness (MODEL.md, "Low light"): thin, faint cracks sink into it, mostly through the Retinex
reflectance. A Gaussian blur or non-local means wipes out exactly those 1 px lines, so this is a
small residual CNN (DnCNN-like: ``LAYERS`` 3x3 convolutions of ``WIDTH`` channels at full resolution,
1 329 parameters) trained on the project's own synthetic scenes (thin cracks) and CC0 textures:
input = the grey level of a darkened photo *with* shot and read noise; trained first towards the
same darkening *without* noise, then through the frozen crack network so that the network sees on the
denoised photo what it sees on the noise-free one (``train_denoiser``). The photo's noise level
enters as a learned offset of the first layer, like a constant noise-level map.

Gate: the noise level of each photo is estimated once (``noise_level``: median absolute value of a
high-pass of the grey level, relative to the photo's exposure, i.e. in the units the network sees);
a photo at or below ``GATE`` passes unchanged (bit-identical input, no time spent beyond the estimate,
0.03 s for a 2048 x 2048 photo). Well-lit UAV75 training photos measure 0.005-0.017, darkened ones
0.016-0.09. A noisy 2048 x 2048 photo pays about 0.6 s (one thread).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

WIDTH = 8
LAYERS = 4
PAD = LAYERS  # px of context each side (valid 3x3 convolutions)
GATE = 0.02  # noise sigma (exposure-normalised grey) above which a photo is denoised; see MODEL.md
WEIGHTS_FILE = Path(__file__).resolve().parent / "weights" / "denoiser.safetensors"
NOISE_WINDOW = 256  # px: windows sampled for the noise estimate of a large photo
NOISE_WINDOWS = 4  # per side: a big photo is sampled on a 4 x 4 grid of windows
# Immerkaer's kernel: zero response to constant, linear and quadratic brightness; iid noise of std s
# gives a response of std 6 s.
_HP = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)

_MODEL = None


def _grey(data: np.ndarray) -> np.ndarray:
    from kintsugi_crack.retinex import to_float_rgb

    return to_float_rgb(data).mean(axis=2)


def noise_level(data: np.ndarray, exposure: float) -> float:
    """Noise std of the grey level (channel mean) in units of the network's exposure-normalised input
    (``0.8 / exposure`` times the [0, 1] grey). Robust (median of the absolute high-pass), so edges and
    cracks barely count; fine texture does, a little. Read in windows (at most ``NOISE_WINDOWS`` per
    side, spread over the photo; every second high-pass value kept), so no float copy of the photo
    is made and a big photo costs the same as a 1024 x 1024 one."""
    h, w = data.shape[:2]
    win = NOISE_WINDOW
    ys = np.linspace(0, max(h - win, 0), min(NOISE_WINDOWS, -(-h // win))).astype(int)
    xs = np.linspace(0, max(w - win, 0), min(NOISE_WINDOWS, -(-w // win))).astype(int)
    resp = []
    for y in ys:
        for x in xs:
            g = _grey(data[y:y + win, x:x + win])
            if min(g.shape) >= 3:
                resp.append(np.abs(ndi.correlate(g, _HP, mode="nearest")[1:-1:2, 1:-1:2]).ravel())
    if not resp:
        return 0.0
    mad = float(np.median(np.concatenate(resp)))
    return mad / 0.6745 / 6.0 * 0.8 / max(exposure, 1e-3)


def build(width: int = WIDTH) -> torch.nn.Module:  # noqa: F821
    import torch
    from torch import nn

    class GreyDenoiser(nn.Module):
        """Residual denoiser of one grey channel; ``sigma`` shifts the first layer's bias."""

        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Conv2d(1, width, 3)
            self.sigma_w = nn.Parameter(torch.zeros(width))
            self.body = nn.Sequential(*[nn.Conv2d(width, width, 3) for _ in range(LAYERS - 2)])
            self.last = nn.Conv2d(width, 1, 3)

        def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            """``x`` (N, 1, H + 2 PAD, W + 2 PAD), ``sigma`` (N,) -> denoised (N, 1, H, W)."""
            y = torch.relu(self.first(x) + (10.0 * sigma).view(-1, 1, 1, 1) * self.sigma_w.view(1, -1, 1, 1))
            for conv in self.body:
                y = torch.relu(conv(y))
            return x[:, :, PAD:-PAD, PAD:-PAD] + self.last(y)

    return GreyDenoiser()


def use_weights(tensors: dict | None) -> None:
    """Use these tensors (e.g. the task's checked ``weights.load("denoiser")``); None: the shipped file."""
    global _MODEL
    _MODEL = None
    if tensors is not None:
        net = build(tensors["sigma_w"].shape[0])
        net.load_state_dict(tensors)
        _MODEL = net.eval().requires_grad_(False)


def _model():
    global _MODEL
    if _MODEL is None:
        from safetensors.torch import load_file

        state = load_file(str(WEIGHTS_FILE))
        net = build(state["sigma_w"].shape[0])
        net.load_state_dict(state)
        net.eval().requires_grad_(False)
        _MODEL = net
    return _MODEL


def available() -> bool:
    return WEIGHTS_FILE.is_file()


def denoise_grey(grey: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) float32 exposure-normalised grey -> the denoised grey (same shape, float32)."""
    import torch

    x = torch.from_numpy(np.pad(grey.astype(np.float32, copy=False), PAD, mode="reflect"))
    with torch.inference_mode():
        return _fast_forward(_model(), x, float(sigma)).numpy()


def _fast_forward(net, x: torch.Tensor, sigma: float) -> torch.Tensor:  # noqa: F821
    """``net(x, sigma)`` for one (H + 2 PAD, W + 2 PAD) grey image, about twice as fast on one core: the
    one-channel first and last layers as matrix products over the 9 taps (a 1-channel convolution is
    slow in the CPU backend), the body in channels-last layout. Same numbers up to rounding."""
    import torch
    import torch.nn.functional as F

    h, w = x.shape[0] - 2 * PAD, x.shape[1] - 2 * PAD
    h1, w1 = x.shape[0] - 2, x.shape[1] - 2
    width = net.sigma_w.shape[0]
    cols = torch.empty(h1, w1, 9)
    for k in range(9):
        cols[:, :, k] = x[k // 3:k // 3 + h1, k % 3:k % 3 + w1]
    bias = net.first.bias + 10.0 * sigma * net.sigma_w
    y = torch.addmm(bias, cols.view(-1, 9), net.first.weight.view(width, 9).t()).clamp_min_(0)
    del cols
    y = y.view(1, h1, w1, width).permute(0, 3, 1, 2)  # channels-last strides
    for conv in net.body:
        y = F.relu_(conv(y))
    hh, ww = y.shape[2:]
    taps = torch.mm(y.permute(0, 2, 3, 1).reshape(-1, width), net.last.weight.permute(1, 2, 3, 0).reshape(width, 9))
    taps = taps.view(hh, ww, 9)
    out = x[PAD:PAD + h, PAD:PAD + w] + net.last.bias
    for k in range(9):
        out += taps[k // 3:k // 3 + h, k % 3:k % 3 + w, k]
    return out

"""The learned pre-fracture reference: a small generator from neighbour height maps to a level's own.

In HealthiVert's spirit (inpaint the target vertebra from its neighbours) but on the quantity the
measurement needs: the column-height map on the normalised body grid. Inputs are the maps of up to
two levels above and two below (already scaled to this level by the population height curve), which
of them exist, the level's own footprint (compression does not change it) and three scalars (level,
body width, body depth). The network predicts a correction to the mean of the neighbours, so an
untrained or unsure network falls back to the plain neighbour average, and it learns from training
data with fractured neighbours to discount them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kintsugi_spine.levels import OFFSETS  # one definition for the model and the reference

IN_CHANNELS = 2 * len(OFFSETS) + 1 + 3
HEIGHT_SCALE = 30.0  # mm; maps enter and leave the network divided by this


class HeightGenerator(nn.Module):
    """A two-level U-Net (about 120 k parameters); input (B, 12, 64, 64), output (B, 1, 64, 64) mm."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.GELU(), nn.Conv2d(o, o, 3, padding=1), nn.GELU())

        self.enc1 = block(IN_CHANNELS, width)
        self.enc2 = block(width, 2 * width)
        self.mid = block(2 * width, 2 * width)
        self.dec2 = block(4 * width, width)
        self.dec1 = block(2 * width, width)
        self.out = nn.Conv2d(width, 1, 1)
        self.pool = nn.AvgPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = x[:, : len(OFFSETS)]
        present = x[:, len(OFFSETS): 2 * len(OFFSETS)]
        base = (maps * present).sum(1, keepdim=True) / present.sum(1, keepdim=True).clamp(min=1.0)
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up(d2), e1], 1))
        return (base + self.out(d1)) * HEIGHT_SCALE


def make_input(neighbours: dict[int, np.ndarray | None], footprint: np.ndarray, order: float,
               width_mm: float, depth_mm: float) -> np.ndarray:
    """One (12, N, N) input: scaled neighbour maps (mm, 0 where absent), presence, footprint, scalars."""
    n = footprint.shape[0]
    x = np.zeros((IN_CHANNELS, n, n), np.float32)
    for k, off in enumerate(OFFSETS):
        m = neighbours.get(off)
        if m is not None:
            x[k] = np.nan_to_num(m, nan=0.0) / HEIGHT_SCALE
            x[len(OFFSETS) + k] = 1.0
    x[2 * len(OFFSETS)] = footprint
    x[2 * len(OFFSETS) + 1] = order / 25.0
    x[2 * len(OFFSETS) + 2] = width_mm / 50.0
    x[2 * len(OFFSETS) + 3] = depth_mm / 40.0
    return x


def pick_device(requested: str = "auto") -> str:
    if requested not in ("auto", ""):
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load(tensors: dict[str, torch.Tensor], device: str = "cpu") -> HeightGenerator:
    net = HeightGenerator()
    net.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    return net.to(device).eval()


def predict(net: HeightGenerator, inputs: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Healthy height maps (B, N, N) in mm."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).to(device)
        return net(x)[:, 0].cpu().numpy().astype(np.float64)

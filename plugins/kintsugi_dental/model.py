"""A compact 3D U-Net (three levels, 8 base channels, ~85 k parameters) with two sigmoid outputs:
channel 0 = tooth (binary), channel 1 = tooth core (tooth voxels away from background and from the
neighbouring teeth), whose connected pieces seed the instance separation.

``residual=True`` adds identity shortcuts around the second convolution of each block without adding
parameters: the "residual" students of RAIL then share the plain students' parameter layout, so one mean
teacher can average all of them."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

BASE = 8
OUT_CHANNELS = 2


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, residual: bool) -> None:
        super().__init__()
        self.c1 = nn.Conv3d(cin, cout, 3, padding=1)
        self.n1 = nn.InstanceNorm3d(cout, affine=True)
        self.c2 = nn.Conv3d(cout, cout, 3, padding=1)
        self.n2 = nn.InstanceNorm3d(cout, affine=True)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.n1(self.c1(x)), 0.1)
        y = self.n2(self.c2(h))
        if self.residual:
            y = y + h
        return F.leaky_relu(y, 0.1)


class UNet3D(nn.Module):
    """Input (B, 1, D, H, W) with D, H, W multiples of 4; output logits (B, 2, D, H, W)."""

    def __init__(self, base: int = BASE, residual: bool = False) -> None:
        super().__init__()
        b = base
        self.e1, self.e2, self.e3 = Block(1, b, residual), Block(b, 2 * b, residual), Block(2 * b, 4 * b, residual)
        self.up2 = nn.ConvTranspose3d(4 * b, 2 * b, 2, stride=2)
        self.d2 = Block(4 * b, 2 * b, residual)
        self.up1 = nn.ConvTranspose3d(2 * b, b, 2, stride=2)
        self.d1 = Block(2 * b, b, residual)
        self.out = nn.Conv3d(b, OUT_CHANNELS, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.e1(x)
        b = self.e2(F.max_pool3d(a, 2))
        c = self.e3(F.max_pool3d(b, 2))
        d = self.d2(torch.cat([self.up2(c), b], 1))
        e = self.d1(torch.cat([self.up1(d), a], 1))
        return self.out(e)


def pick_device(requested: str = "auto") -> str:
    """cuda, then mps, then cpu (or what the caller asked for)."""
    if requested and requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_model(tensors: dict[str, torch.Tensor], device: str = "cpu") -> UNet3D:
    model = UNet3D()
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model.to(device).eval()

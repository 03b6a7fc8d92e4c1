"""Tiles over a large photo, and the default tile size: no torch here, so task signatures load fast."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_TILE = 1024  # px: tile side for inference (memory per tile; large photos are tiled)


@dataclass
class Tile:
    """A core region [y0, y1) x [x0, x1) and the padded window [py0, py1) x [px0, px1) read around it."""

    y0: int
    y1: int
    x0: int
    x1: int
    py0: int
    py1: int
    px0: int
    px1: int

    @property
    def core(self) -> tuple[slice, slice]:
        """Where the core sits inside the padded window."""
        return slice(self.y0 - self.py0, self.y1 - self.py0), slice(self.x0 - self.px0, self.x1 - self.px0)


def tiles(h: int, w: int, tile: int, margin: int) -> Iterator[Tile]:
    """Cores that cover the image exactly once; one tile when the image fits."""
    ny, nx = max(1, -(-h // tile)), max(1, -(-w // tile))
    ys = np.linspace(0, h, ny + 1).round().astype(int)
    xs = np.linspace(0, w, nx + 1).round().astype(int)
    for i in range(ny):
        for j in range(nx):
            y0, y1, x0, x1 = int(ys[i]), int(ys[i + 1]), int(xs[j]), int(xs[j + 1])
            yield Tile(y0, y1, x0, x1, max(0, y0 - margin), min(h, y1 + margin), max(0, x0 - margin),
                       min(w, x1 + margin))

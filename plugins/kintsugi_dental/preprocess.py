"""Geometry and intensity handling around the network: canonical orientation, working spacing, normalisation,
region of interest. Everything here is plain numpy/scipy so it runs (and is tested) without torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

WORK_SPACING = 0.6  # mm: teeth are 5-11 mm wide, so 8-18 voxels across; contacts stay resolvable
HU_WINDOW = (0.0, 3000.0)  # soft tissue .. enamel; metal saturates at 1
MAX_WORK_VOXELS = 320**3  # memory bound at the working spacing (about 130 MB as float32)
MIN_EXTENT_MM = 12.0  # smaller than a single molar: cannot be a dental scan


@dataclass(frozen=True)
class Canonical:
    """How an input array was permuted and flipped so that its axes run (S, P, L) = (z, y, x) of LPS.

    CBCT comes in any orientation; the network learnt on axial arrays with the crowns of the lower jaw
    pointing to +z, so the array is brought to that frame (nearest axes for oblique grids) and back."""

    perm: tuple[int, int, int]  # canonical axis a comes from input array axis perm[a]
    flip: tuple[bool, bool, bool]  # flipped after the permutation
    spacing_zyx: tuple[float, float, float]  # spacing of the canonical array's axes

    def forward(self, a: np.ndarray) -> np.ndarray:
        out = np.transpose(a, self.perm)
        for ax, f in enumerate(self.flip):
            if f:
                out = np.flip(out, axis=ax)
        return out

    def inverse(self, a: np.ndarray) -> np.ndarray:
        out = a
        for ax, f in enumerate(self.flip):
            if f:
                out = np.flip(out, axis=ax)
        return np.transpose(out, np.argsort(self.perm))


def canonical(direction: np.ndarray, spacing_xyz: tuple[float, ...]) -> Canonical:
    """The permutation/flips that align array axes (z, y, x) with physical (S, P, L)."""
    d = np.asarray(direction, float)
    # array axis a (0=z,1=y,2=x) is index axis 2-a, whose physical direction is column 2-a of ``d``
    phys_of_array = []
    sign_of_array = []
    for a in range(3):
        col = d[:, 2 - a]
        phys_of_array.append(int(np.argmax(np.abs(col))))
        sign_of_array.append(float(np.sign(col[phys_of_array[-1]])) or 1.0)
    if sorted(phys_of_array) != [0, 1, 2]:  # degenerate (strongly oblique) grid: keep array order
        phys_of_array, sign_of_array = [2, 1, 0], [1.0, 1.0, 1.0]
    perm = [0, 0, 0]
    flip = [False, False, False]
    for a in range(3):
        target = 2 - phys_of_array[a]  # physical x -> canonical array axis 2, z -> 0
        perm[target] = a
        flip[target] = sign_of_array[a] < 0
    sp_zyx = tuple(float(spacing_xyz[2 - perm[t]]) for t in range(3))
    return Canonical(tuple(perm), tuple(flip), sp_zyx)  # type: ignore[arg-type]


def looks_like_hu(data: np.ndarray) -> bool:
    """Calibrated CT/CBCT has air near -1000; many CBCT exports are shifted (0..4095) instead."""
    sample = data[:: max(1, data.shape[0] // 32), :: max(1, data.shape[1] // 64), :: max(1, data.shape[2] // 64)]
    return float(np.percentile(sample, 0.5)) < -500


def normalise(data: np.ndarray, hu: bool) -> np.ndarray:
    """Map to [0, 1] over the HU window; uncalibrated data is first mapped by robust percentiles so that its
    darkest voxels sit at air and its brightest 0.05 % at enamel."""
    x = data.astype(np.float32, copy=False)
    if not hu:
        lo, hi = np.percentile(x[:: 2, :: 2, :: 2], [0.5, 99.95])
        scale = 3600.0 / max(float(hi - lo), 1e-6)
        x = (x - np.float32(lo)) * np.float32(scale) - np.float32(1000.0)
    lo_w, hi_w = HU_WINDOW
    return np.clip((x - np.float32(lo_w)) / np.float32(hi_w - lo_w), 0.0, 1.0).astype(np.float32)


def _block_mean(a: np.ndarray, f: tuple[int, int, int]) -> np.ndarray:
    """Integer downsampling by block averaging, slab by slab along z so a huge input never becomes float64
    or float32 all at once."""
    if f == (1, 1, 1):
        return a.astype(np.float32)
    nz, ny, nx = (a.shape[0] // f[0], a.shape[1] // f[1], a.shape[2] // f[2])
    out = np.empty((nz, ny, nx), np.float32)
    for z in range(nz):
        slab = a[z * f[0]:(z + 1) * f[0], : ny * f[1], : nx * f[2]].astype(np.float32)
        out[z] = slab.reshape(f[0], ny, f[1], nx, f[2]).mean(axis=(0, 2, 4))
    return out


def to_working(a: np.ndarray, spacing_zyx: tuple[float, float, float], work: float = WORK_SPACING
               ) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Resample a canonical array to ``work`` mm (linear, anti-aliased). Returns the array and the exact
    scale (input voxels per working voxel, per axis) used later to go back."""
    sp = np.asarray(spacing_zyx, float)
    factor = work / sp
    block = tuple(int(max(1, np.floor(f + 1e-6))) for f in factor)
    b = _block_mean(a, block)  # type: ignore[arg-type]
    rest = factor / np.asarray(block)
    shape_out = np.maximum(np.floor((np.asarray(a.shape) * sp) / work).astype(int), 1)
    if np.prod(shape_out) > MAX_WORK_VOXELS:
        raise ValueError(
            f"volume covers {' x '.join(str(int(round(x))) for x in np.asarray(a.shape)[::-1] * sp[::-1])} mm "
            "(x, y, z): more than the "
            f"{round(MAX_WORK_VOXELS ** (1 / 3) * work)} mm cube this model can hold; crop it to the jaws first")
    sigma = np.where(rest > 1.2, 0.4 * rest, 0.0)
    if np.any(sigma > 0):
        b = ndi.gaussian_filter(b, sigma)
    # output voxel o sits at o * work mm, i.e. at o * rest in block units (block centres shifted by (f-1)/2)
    offset = -(np.asarray(block) - 1) / (2 * np.asarray(block))
    out = ndi.affine_transform(b, rest, offset=offset, output_shape=tuple(int(s) for s in shape_out), order=1,
                               mode="nearest")
    return out.astype(np.float32), tuple(float(f) for f in factor)  # type: ignore[return-value]


def from_working(a: np.ndarray, factor: tuple[float, float, float], shape: tuple[int, ...], order: int,
                 origin_in: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Sample a working-grid array back on the input grid (or a box of it starting at ``origin_in``)."""
    inv = 1.0 / np.asarray(factor)
    off = np.asarray(origin_in, float) * inv
    return ndi.affine_transform(a, inv, offset=off, output_shape=tuple(int(s) for s in shape), order=order,
                                mode="nearest")


def tooth_roi(norm: np.ndarray, work: float = WORK_SPACING, margin_mm: float = 8.0,
              level_hu: float = 1500.0) -> tuple[slice, slice, slice] | None:
    """Box around everything as bright as dentin (after a little smoothing so noise and thin metal streaks
    do not count), with a margin; None when nothing in the volume is that bright."""
    level = (level_hu - HU_WINDOW[0]) / (HU_WINDOW[1] - HU_WINDOW[0])
    bright = ndi.gaussian_filter(norm, 1.0) > level
    if not bright.any():
        return None
    comp, n = ndi.label(bright)
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    keep = np.nonzero(sizes * work**3 >= 8.0)[0]  # a few mm3 at least
    if keep.size == 0:
        return None
    idx = np.argwhere(np.isin(comp, keep))
    m = int(np.ceil(margin_mm / work))
    lo = np.maximum(idx.min(axis=0) - m, 0)
    hi = np.minimum(idx.max(axis=0) + m + 1, norm.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]

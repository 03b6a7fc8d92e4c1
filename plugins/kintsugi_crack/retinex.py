"""Illumination / reflectance split (multi-scale Retinex), computed so that big photos stay cheap.

Why: a crack is a *reflectance* feature (a dark thin line in the surface), while low or uneven light
changes the *illumination*. Dividing the photo by a smooth illumination estimate gives an image in
which a crack in a dark corner looks like a crack in the sun, so the network and the ridge filter see
the same thing in both.

The illumination is estimated once per image on a block-averaged copy (long side ≤ ``LOW_RES``), so
a 20000 x 20000 photo needs only a 1000 x 1000 float array for it; each tile then upsamples its part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from kintsugi_crack import denoise

SIGMAS_PX = (10.0, 40.0, 160.0)  # multi-scale Retinex scales in full-resolution pixels
LOW_RES = 1024
EPS = 1e-3
CHROMA_SIGMA_PX = 2.0  # blur of the colour (not the brightness) against sensor noise


def to_float_rgb(data: np.ndarray) -> np.ndarray:
    """(H, W[, C]) grey/RGB/RGBA, 8/16-bit or float -> (H, W, 3) float32 in [0, 1].

    Alpha is dropped (a transparent pixel has no surface to look at); grey is repeated to three
    channels so one network serves radiograph-like and colour photos."""
    a = data
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    if a.dtype == np.uint8:
        out = a.astype(np.float32) * (1 / 255)
    elif a.dtype == np.uint16:
        out = a.astype(np.float32) * (1 / 65535)
    elif np.issubdtype(a.dtype, np.integer):
        top = float(max(a.max(), 1))
        out = a.astype(np.float32) / top
    else:
        out = np.nan_to_num(a.astype(np.float32))
        top = float(out.max()) if out.size else 1.0
        out = out / top if top > 1.0 else out
        out = np.clip(out, 0, 1)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return out


def _block_mean_max(data: np.ndarray, f: int, band: int = 128) -> np.ndarray:
    """Max over channels of the block means at factor ``f``, read in row bands (memory bounded).

    Mean first, max second: the max of three *noisy* channels is biased upwards by about 0.85 noise
    std, which would make the illumination of a dark, noisy photo too bright; block means are
    nearly noise-free, and for a clean photo both orders give almost the same value."""
    h, w = data.shape[:2]
    hl, wl = -(-h // f), -(-w // f)
    out = np.empty((hl, wl), np.float32)
    rows = max(f, (band // f) * f)
    for y0 in range(0, h, rows):
        chunk = to_float_rgb(data[y0:y0 + rows])
        pad_h, pad_w = (-chunk.shape[0]) % f, (-w) % f
        blk = None
        for c in range(3):  # one channel at a time: the padded copy stays a third of the band
            one = chunk[..., c]
            if pad_h or pad_w:
                one = np.pad(one, ((0, pad_h), (0, pad_w)), mode="edge")
            m = one.reshape(one.shape[0] // f, f, one.shape[1] // f, f).mean(axis=(1, 3))
            blk = m if blk is None else np.maximum(blk, m)
        out[y0 // f: y0 // f + blk.shape[0]] = blk
    return out


def smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur that stays cheap for large sigmas: blur a block-averaged copy, then upsample."""
    if sigma <= 0.5:
        return img
    k = max(1, int(sigma // 4))
    h, w = img.shape
    if k == 1:
        return ndi.gaussian_filter(img, sigma, mode="reflect")
    ph, pw = (-h) % k, (-w) % k
    small = np.pad(img, ((0, ph), (0, pw)), mode="edge").reshape((h + ph) // k, k, (w + pw) // k, k).mean(axis=(1, 3))
    small = ndi.gaussian_filter(small, sigma / k, mode="reflect")
    return upsample(small, k, 0, 0, h, w)


def upsample(low: np.ndarray, f: int, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """Bilinear values of a block-mean grid (block ``f``) at full-res pixels [y0, y0+h) x [x0, x0+w)."""
    if f == 1:
        return low[y0:y0 + h, x0:x0 + w].astype(np.float32, copy=False)

    def axis(n0: int, n: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = (np.arange(n0, n0 + n, dtype=np.float32) + 0.5) / f - 0.5
        u = np.clip(u, 0, size - 1)
        i0 = np.floor(u).astype(np.int64)
        i1 = np.minimum(i0 + 1, size - 1)
        return i0, i1, (u - i0).astype(np.float32)

    iy0, iy1, wy = axis(y0, h, low.shape[0])
    ix0, ix1, wx = axis(x0, w, low.shape[1])
    top = low[iy0][:, ix0] * (1 - wx) + low[iy0][:, ix1] * wx
    bot = low[iy1][:, ix0] * (1 - wx) + low[iy1][:, ix1] * wx
    return (top * (1 - wy)[:, None] + bot * wy[:, None]).astype(np.float32)


@dataclass
class Illumination:
    """The image's illumination on a coarse grid, plus its exposure (for gain normalisation)."""

    low: np.ndarray  # (h, w) float32 illumination on the block grid
    factor: int  # block size in full-res pixels
    exposure: float  # robust brightness of the photo (99th percentile of the block grid)
    noise: float = 0.0  # sensor-noise std of the exposure-normalised grey level (``denoise.noise_level``)

    def at(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        return upsample(self.low, self.factor, y0, x0, h, w)


def illumination(data: np.ndarray, sigmas: tuple[float, ...] = SIGMAS_PX, low_res: int | None = None) -> Illumination:
    """Multi-scale Retinex illumination: geometric mean of Gaussian blurs of the max channel."""
    h, w = data.shape[:2]
    low_res = low_res or LOW_RES
    f = max(1, -(-max(h, w) // low_res))
    grey = _block_mean_max(data, f)
    exposure = float(max(np.percentile(grey, 99), 1e-3))
    e = EPS + 0.01 * exposure
    logs = [np.log(smooth(grey, max(s / f, 0.0)) + e) for s in sigmas]
    low = np.exp(np.mean(logs, axis=0)).astype(np.float32)
    return Illumination(low, f, exposure, denoise.noise_level(data, exposure))


def _colour_half(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """(H/2, W/2, 3): colour difference from grey of each 2x2 block, blurred by ``sigma`` full-res px.
    ``rgb`` has even height and width."""
    half = rgb[0::2, 0::2] + rgb[1::2, 0::2]  # 2x2 block sums, then means
    half += rgb[0::2, 1::2]
    half += rgb[1::2, 1::2]
    half *= 0.25
    half -= half.mean(axis=2, keepdims=True)
    return ndi.gaussian_filter(half, (sigma / 2, sigma / 2, 0), mode="nearest")


def _add_up2(base: np.ndarray, half: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out`` = ``base`` + ``half`` repeated 2x2 (even sizes), without building the repeated copy."""
    for dy in (0, 1):
        for dx in (0, 1):
            np.add(base[dy::2, dx::2], half, out=out[dy::2, dx::2])
    return out


def _even(a: np.ndarray) -> np.ndarray:
    """Edge-pad the first two axes to even sizes (odd tiles are rare: only at some photo borders)."""
    ph, pw = a.shape[0] % 2, a.shape[1] % 2
    if not (ph or pw):
        return a
    return np.pad(a, ((0, ph), (0, pw)) + ((0, 0),) * (a.ndim - 2), mode="edge")


def denoise_chroma(rgb: np.ndarray, sigma: float = CHROMA_SIGMA_PX) -> np.ndarray:
    """(H, W, 3) float: the grey level (channel mean) kept pixel-sharp, the colour differences from it
    blurred (``sigma`` px, at half resolution), as cameras do against chroma noise.

    Why: in a dark photo the sensor noise is independent in each channel, while concrete and its
    cracks are nearly grey. The mean keeps every edge and divides the noise variance by three; the
    blurred colour part puts the colour back without the noise. A crack is a change of brightness,
    not of colour, so its 1 px profile is untouched. On the development set (UAV75 *training*
    part, darkened) the loss of F1 in low light came from the noise, not from the dimming or the
    gamma, and this step recovered it. Grey photos pass through unchanged.
    ``network_input`` does the same without building this interleaved copy."""
    h, w = rgb.shape[:2]
    even = _even(rgb)
    grey = even.mean(axis=2)
    col = _colour_half(even, sigma)
    out = np.empty(even.shape, np.float32)
    for c in range(3):
        out[..., c] = _add_up2(grey, col[..., c], np.empty_like(grey))
    return out[:h, :w]


def network_input(rgb: np.ndarray, illum: np.ndarray, exposure: float, noise: float = 0.0) -> np.ndarray:
    """(4, H, W) float32: exposure-normalised RGB and reflectance (max channel / illumination), both
    from the chroma-denoised photo (``denoise_chroma``); with a photo ``noise`` level above
    ``denoise.GATE`` the grey level also passes the learned brightness denoiser (below it, nothing
    changes).

    Reflectance is scaled so 0.5 is the surface's typical brightness and clipped to [0, 1]. Built
    channel by channel from the grey level and the half-resolution colour: a 2048 x 2048 photo
    pays about 0.05 s for the denoising."""
    h, w = rgb.shape[:2]
    even, illum = _even(rgb), _even(illum)
    e = EPS + 0.01 * exposure
    gain = 0.8 / exposure
    grey = even.mean(axis=2)
    if noise > denoise.GATE and denoise.available():
        grey = denoise.denoise_grey(grey * gain, noise)
        grey *= 1 / gain
    col = _colour_half(even, CHROMA_SIGMA_PX)
    out = np.empty((4, *even.shape[:2]), np.float32)
    for c in range(3):
        _add_up2(grey, col[..., c], out[c])
    np.multiply(out[:3], gain, out=out[:3])
    np.clip(out[:3], 0, 1.5, out=out[:3])
    refl = _add_up2(grey, col.max(axis=2), out[3])  # max channel of the denoised photo
    refl += e
    refl *= 0.5
    refl /= illum + e
    np.clip(refl, 0, 1, out=refl)
    if even.shape[:2] != (h, w):
        out = np.ascontiguousarray(out[:, :h, :w])
    return out


def reflectance(data: np.ndarray) -> np.ndarray:
    """Whole-image reflectance in [0, 1] (for display and the ridge filter on small images)."""
    il = illumination(data)
    rgb = to_float_rgb(data)
    return network_input(rgb, il.at(0, 0, *rgb.shape[:2]), il.exposure)[3]

"""Darkened copies of photos: the low-light augmentation in training and the bench's low-light sets.

A photo taken with 15-30 % of the light is not just a darker photo: the sensor sees fewer photons
(Poisson noise that grows relative to the signal), adds read noise, and the camera's tone curve
(gamma) bends the result. This simulates that from an 8-bit photo.
"""

from __future__ import annotations

import numpy as np

GAMMA = 2.2


def darken(rgb: np.ndarray, rng: np.random.Generator, factor: float | None = None, gamma: float | None = None,
           photons: float | None = None, read_noise: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8 -> a darkened uint8 copy: linear intensity x ``factor`` (0.15-0.3), an extra
    gamma (0.8-1.4), Poisson shot noise at ``photons`` per full-scale pixel and Gaussian read noise."""
    factor = float(rng.uniform(0.15, 0.3)) if factor is None else factor
    gamma = float(rng.uniform(0.8, 1.4)) if gamma is None else gamma
    photons = float(rng.uniform(150, 600)) if photons is None else photons
    read_noise = float(rng.uniform(1.0, 4.0)) if read_noise is None else read_noise
    lin = (rgb.astype(np.float32) / 255) ** GAMMA * factor
    electrons = rng.poisson(lin * photons).astype(np.float32) + rng.normal(0, read_noise, lin.shape)
    lin = np.clip(electrons / photons, 0, 1)
    out = lin ** (gamma / GAMMA)
    return np.round(255 * out).astype(np.uint8)

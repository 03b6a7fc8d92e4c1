"""The learned brightness denoiser for noisy (low-light) photos: gate, thin lines, shapes."""

from __future__ import annotations

import numpy as np
import pytest


def _line_wall(sigma: float, seed: int = 0, size: int = 96, level: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(noisy grey, clean grey) float32: a flat wall with a 1 px dark vertical line at x = size // 2."""
    clean = np.full((size, size), level, np.float32)
    clean[:, size // 2] *= 0.7
    noise = np.random.default_rng(seed).normal(0, sigma, clean.shape).astype(np.float32)
    return clean + noise, clean


def test_noise_level_estimates_the_added_noise() -> None:
    from kintsugi_crack.denoise import noise_level

    for sigma in (0.02, 0.05):
        noisy, _ = _line_wall(sigma, size=256)
        rgb = np.repeat(np.clip(noisy, 0, 1)[..., None], 3, axis=2)
        # exposure 0.8: the estimate is in units of the grey level itself
        assert noise_level(rgb, 0.8) == pytest.approx(sigma, rel=0.15)
    big = np.repeat(np.clip(_line_wall(0.05, size=1200)[0], 0, 1)[..., None], 3, axis=2)
    assert noise_level(big, 0.8) == pytest.approx(0.05, rel=0.15)  # sampled windows of a large photo


def test_gate_leaves_a_clean_photo_bit_identical() -> None:
    from kintsugi.samples.crack import render_scene
    from kintsugi_crack.denoise import GATE
    from kintsugi_crack.retinex import illumination, network_input, to_float_rgb

    img, _ = render_scene(np.random.default_rng(4), (128, 160))
    il = illumination(img)
    assert il.noise < GATE
    rgb = to_float_rgb(img)
    illum = il.at(0, 0, *rgb.shape[:2])
    assert np.array_equal(network_input(rgb, illum, il.exposure, il.noise), network_input(rgb, illum, il.exposure))


def test_noisy_photo_is_denoised_in_the_network_input() -> None:
    from kintsugi.samples.crack import render_scene
    from kintsugi_crack.denoise import GATE
    from kintsugi_crack.lowlight import darken
    from kintsugi_crack.retinex import illumination, network_input, to_float_rgb

    rng = np.random.default_rng(5)
    img, _ = render_scene(rng, (128, 160))
    dark = darken(img, rng, factor=0.15, photons=150)
    il = illumination(dark)
    assert il.noise > GATE
    rgb = to_float_rgb(dark)
    illum = il.at(0, 0, *rgb.shape[:2])
    plain, den = network_input(rgb, illum, il.exposure), network_input(rgb, illum, il.exposure, il.noise)
    assert den.shape == plain.shape and den.dtype == np.float32
    hp = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    from scipy import ndimage as ndi

    rough = [float(np.median(np.abs(ndi.correlate(x[0], hp)))) for x in (plain, den)]
    assert rough[1] < 0.6 * rough[0]  # the pixel-to-pixel noise is much lower


def test_a_1px_line_survives_better_than_under_a_gaussian_blur() -> None:
    from scipy import ndimage as ndi

    from kintsugi_crack.denoise import denoise_grey

    noisy, clean = _line_wall(0.06, seed=1)
    out = denoise_grey(noisy, 0.06)
    assert out.shape == noisy.shape and out.dtype == np.float32
    blur = ndi.gaussian_filter(noisy, 1.0)
    x = noisy.shape[1] // 2

    def depth(a: np.ndarray) -> float:
        return float(np.mean(a[:, x - 3:x - 1]) + np.mean(a[:, x + 2:x + 4])) / 2 - float(np.mean(a[:, x]))

    def err(a: np.ndarray) -> float:  # on the line and its neighbours
        return float(np.sqrt(np.mean((a - clean)[:, x - 2:x + 3] ** 2)))

    assert depth(out) > 1.4 * depth(blur)  # the blur flattens the line, the denoiser keeps more of it
    assert err(out) < err(blur) and err(out) < err(noisy)
    flat = slice(8, 36)
    assert np.std((out - clean)[:, flat]) < 0.6 * np.std((noisy - clean)[:, flat])  # and the wall is smoother


@pytest.mark.parametrize("kind", ["grey8", "rgb8", "grey16", "rgb16"])
def test_denoised_prediction_for_grey_rgb_and_16bit(kind: str) -> None:
    import torch

    from kintsugi.samples.crack import render_scene
    from kintsugi_crack.denoise import GATE
    from kintsugi_crack.infer import load_model, predict
    from kintsugi_crack.lowlight import darken
    from kintsugi_crack.retinex import illumination
    from kintsugi_crack.tasks import model_tensors

    torch.set_num_threads(1)
    rng = np.random.default_rng(6)
    img, _ = render_scene(rng, (101, 77))  # odd sizes
    dark = darken(img, rng, factor=0.15, photons=150)
    data = {"grey8": dark.mean(axis=2).astype(np.uint8), "rgb8": dark,
            "grey16": (dark.mean(axis=2) * 257).astype(np.uint16), "rgb16": dark.astype(np.uint16) * 257}[kind]
    assert illumination(data).noise > GATE
    prob = predict(data, load_model(model_tensors(None, "cpu")))
    assert prob.shape == data.shape[:2] and prob.dtype == np.uint8


def test_fast_path_matches_the_trained_module() -> None:
    import torch

    from kintsugi_crack.denoise import PAD, _model, denoise_grey

    g = np.random.default_rng(2).random((37, 52), dtype=np.float32)
    with torch.inference_mode():
        ref = _model()(torch.from_numpy(np.pad(g, PAD, mode="reflect"))[None, None], torch.tensor([0.05]))[0, 0]
    assert np.allclose(denoise_grey(g, 0.05), ref.numpy(), atol=1e-5)


def test_task_uses_the_manifest_denoiser() -> None:
    """Both tasks name the denoiser in the manifest, whose checksum is the shipped file's (checked at load)."""
    from pathlib import Path

    import tomllib

    import kintsugi_crack
    from kintsugi.plugins.weights import sha256_of

    root = Path(kintsugi_crack.__file__).parent
    manifest = tomllib.loads((root / "kintsugi.toml").read_text())
    entry = manifest["weights"]["denoiser"]
    assert sha256_of(root / entry["file"]) == entry["sha256"]
    assert all("denoiser" in t["weights"] for t in manifest["tasks"])


def test_training_script_runs_both_stages_and_writes_loadable_weights(tmp_path) -> None:
    """A few steps of each stage from the command line: the weights it writes drive the denoiser."""
    import json

    from safetensors.torch import load_file

    from kintsugi_crack import denoise
    from kintsugi_crack.train_denoiser import main

    main(["--iters", "3", "--task-iters", "2", "--task-bs", "1", "--pool", "3", "--width", "4",
          "--out", str(tmp_path)])
    info = json.loads((tmp_path / "denoiser_train_log.json").read_text())
    assert info["iters"] == 3 and info["task_iters"] == 2 and info["width"] == 4
    state = load_file(str(tmp_path / "denoiser.safetensors"))
    assert state["sigma_w"].shape == (4,)
    try:
        denoise.use_weights(state)
        grey = np.random.default_rng(0).random((40, 50)).astype(np.float32)
        out = denoise.denoise_grey(grey, 0.05)
        assert out.shape == grey.shape and np.isfinite(out).all()
    finally:
        denoise.use_weights(None)

"""Low light: sensor noise is kept out of the network's input, and darkened photos keep their F1."""

from __future__ import annotations

import numpy as np


def _noisy_grey_wall(sigma: float, level: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy RGB float, clean RGB float): a grey wall with a 1 px dark vertical line at x = 32,
    independent Gaussian noise in each channel (as a sensor's shot and read noise)."""
    clean = np.full((64, 64, 3), level, np.float32)
    clean[:, 32] *= 0.6
    clean[..., 0] *= 1.1  # a slightly warm tint: colour must survive
    noise = np.random.default_rng(seed).normal(0, sigma, clean.shape).astype(np.float32)
    return clean + noise, clean


def test_chroma_denoising_cuts_channel_noise_and_keeps_a_1px_line() -> None:
    from kintsugi_crack.retinex import denoise_chroma

    noisy, clean = _noisy_grey_wall(0.03)
    out = denoise_chroma(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    before = float(np.std((noisy - clean)[:, 4:28]))
    after = float(np.std((out - clean)[:, 4:28]))
    assert after < 0.7 * before  # independent channel noise divided by about sqrt(3)
    # the 1 px line keeps its depth (a blur of the brightness would halve it)
    depth_clean = float(clean[:, 31, 1].mean() - clean[:, 32, 1].mean())
    depth_out = float(out[:, 31].mean() - out[:, 32].mean())
    assert abs(depth_out - depth_clean) < 0.1 * depth_clean
    # the tint is kept: red stays above green away from the line
    assert float(out[:, 4:28, 0].mean() - out[:, 4:28, 1].mean()) > 0.02
    grey = np.repeat(noisy[..., 1:2], 3, axis=2)
    assert np.allclose(denoise_chroma(grey), grey, atol=1e-6)  # grey photos pass unchanged


def test_network_input_matches_denoised_photo_at_odd_sizes() -> None:
    from kintsugi_crack.retinex import EPS, denoise_chroma, network_input

    rng = np.random.default_rng(1)
    for shape in ((33, 47), (40, 30), (17, 18)):
        rgb = rng.random((*shape, 3), dtype=np.float32)
        illum = np.full(shape, 0.5, np.float32)
        x = network_input(rgb, illum, 0.9)
        den = denoise_chroma(rgb)
        e = EPS + 0.01 * 0.9
        assert x.shape == (4, *shape) and x.flags.c_contiguous
        assert np.allclose(x[3], np.clip(0.5 * (den.max(axis=2) + e) / (0.5 + e), 0, 1), atol=1e-5)
        assert np.allclose(x[:3], np.clip(np.moveaxis(den, 2, 0) * 0.8 / 0.9, 0, 1.5), atol=1e-5)


def test_illumination_of_a_noisy_dark_photo_is_not_biased_up() -> None:
    """The max of three noisy channels overestimates the light by ~0.85 noise std; block means first."""
    from kintsugi_crack.retinex import illumination

    noisy, _ = _noisy_grey_wall(0.06, level=0.2)
    big = np.tile(noisy, (4, 4, 1))  # 256 x 256
    il = illumination(np.clip(big, 0, 1), low_res=32)  # 8 x 8 blocks, as for a big photo
    true_level = 0.2 * 1.1  # the brightest channel (red) of the wall, away from the line
    assert abs(float(np.median(il.low)) - true_level) < 0.05 * true_level


def test_darkened_scene_keeps_f1() -> None:
    """A generated wall and a copy at x0.2 light with shot and read noise: F1 within 10 %."""
    import torch

    from kintsugi.samples.crack import render_scene
    from kintsugi_crack.evaluate import Scores
    from kintsugi_crack.infer import load_model, predict
    from kintsugi_crack.lowlight import darken
    from kintsugi_crack.tasks import model_tensors

    torch.set_num_threads(1)
    net = load_model(model_tensors(None, "cpu"))
    rng = np.random.default_rng(11)
    normal, low = Scores(), Scores()
    for _ in range(2):
        img, mask = render_scene(rng, (192, 256))
        dark = darken(img, rng, factor=0.2, gamma=1.0, photons=200, read_noise=3.0)
        normal.add(predict(img, net) >= 128, mask)
        low.add(predict(dark, net) >= 128, mask)
    assert normal.f1 > 0.8
    assert low.f1 > 0.9 * normal.f1


def _crack_contrast(img: np.ndarray, mask: np.ndarray) -> float:
    """Relative darkening of crack pixels against a ring 2-3 px around them."""
    from scipy import ndimage as ndi

    g = img.astype(np.float32).mean(axis=2)
    ring = ndi.binary_dilation(mask, iterations=3) & ~ndi.binary_dilation(mask, iterations=1)
    return float((g[ring].mean() - g[mask].mean()) / g[ring].mean())


def test_training_faint_scenes_have_fainter_thinner_cracks_and_exact_masks() -> None:
    """train.faint_scene (hairlines under heavy noise) edits the generator's cracks before drawing:
    lower contrast and thinner masks than the generator's own scenes, mask still on the dark line."""
    from kintsugi_crack.train import faint_scene, make_pool

    rng = np.random.default_rng(3)
    faint = [faint_scene(rng, (128, 128)) for _ in range(4)]
    plain_imgs, plain_masks = make_pool(4, 3)
    for img, mask in faint:
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8 and mask.dtype == bool
        assert mask.any()
        assert _crack_contrast(img, mask) > 0.03  # the mask sits on (faint) dark lines
    c_faint = np.mean([_crack_contrast(i, m) for i, m in faint])
    c_plain = np.mean([_crack_contrast(i, m) for i, m in zip(plain_imgs, plain_masks, strict=True) if m.any()])
    assert c_faint < 0.8 * c_plain


def test_output_calibration_shifts_every_logit_by_the_same_amount() -> None:
    """train.shift_output(state, p): probability p becomes 0.5 everywhere, borders included."""
    import torch

    from kintsugi_crack.model import CrackProtoNet
    from kintsugi_crack.train import shift_output

    torch.manual_seed(0)
    net = CrackProtoNet().eval()
    x = torch.rand(1, 4, 32, 48)
    with torch.no_grad():
        before = net(x)
        state = {k: v for k, v in net.state_dict().items() if v.dtype.is_floating_point}
        net.load_state_dict(shift_output(state, 0.7), strict=False)
        after = net(x)
    assert torch.allclose(before - after, torch.full_like(before, float(np.log(0.7 / 0.3))), atol=1e-5)

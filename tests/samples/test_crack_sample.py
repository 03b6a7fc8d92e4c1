"""The crack sample: files and sizes, plausible masks, determinism, and a low-light copy that is the
same scene (crack pixels stay darker than their surroundings once the light is divided out)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from kintsugi.samples import crack

SIZE = (384, 512)


@pytest.fixture(scope="module")
def scenes() -> list[crack.CrackScene]:
    return crack.generate(seed=0)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("crack")
    return out, crack.make(out, seed=0)


def skeleton_length(mask: np.ndarray) -> float:
    """Length of the mask's skeleton: 1 per 4-neighbour pair, sqrt(2) per diagonal pair that is not
    already bridged by a 4-path (otherwise a staircase would be counted twice)."""
    sk = skeletonize(mask)
    p = np.pad(sk, 1)
    c = p[1:-1, 1:-1]
    right, down = p[1:-1, 2:], p[2:, 1:-1]
    length = float(np.sum(c & right) + np.sum(c & down))
    for dy, dx in ((1, 1), (1, -1)):
        diag = p[1 + dy : p.shape[0] - 1 + dy, 1 + dx : p.shape[1] - 1 + dx]
        via_x = p[1:-1, 1 + dx : p.shape[1] - 1 + dx]
        via_y = p[1 + dy : p.shape[0] - 1 + dy, 1:-1]
        length += np.sqrt(2) * float(np.sum(c & diag & ~via_x & ~via_y))
    return length


def test_module_contract() -> None:
    assert crack.NAME == "crack"
    assert crack.TITLE == "Crack photos"
    assert crack.DESCRIPTION


def test_files_sizes_and_dtypes(written: tuple[Path, list[Path]]) -> None:
    out, paths = written
    names = {p.name for p in paths}
    assert "truth.json" in names
    for i in range(4):
        stem = f"crack_{i:02d}"
        for suffix in ("", "_lowlight"):
            rgb = np.asarray(Image.open(out / f"{stem}{suffix}.png"))
            assert rgb.shape == (*SIZE, 3) and rgb.dtype == np.uint8
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        assert mask.shape == SIZE and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
    truth = json.loads((out / "truth.json").read_text())
    assert truth["pixel_size_mm"] > 0
    assert set(truth["images"]) == {f"crack_{i:02d}" for i in range(4)}


def test_masks_cover_a_plausible_fraction(scenes: list[crack.CrackScene]) -> None:
    for s in scenes:
        assert s.mask.dtype == bool and s.mask.shape == SIZE
        assert 0.005 <= s.mask.mean() <= 0.10


def test_deterministic_by_seed(scenes: list[crack.CrackScene]) -> None:
    again = crack.generate(seed=0, n_images=2)
    other = crack.generate(seed=1, n_images=1)
    for a, b in zip(scenes[:2], again, strict=True):
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.low_light, b.low_light)
        assert np.array_equal(a.mask, b.mask)
        assert a.truth == b.truth
    assert not np.array_equal(scenes[0].mask, other[0].mask)


def _relative_darkness(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean brightness on the crack and in a ring beside it, both divided by the local light level
    (a wide average of the pixels off the crack, so the crack does not lower its own reference)."""
    grey = image.astype(float).mean(axis=2) + 0.5
    off = (~mask).astype(float)
    local = ndi.gaussian_filter(grey * off, 10) / np.maximum(ndi.gaussian_filter(off, 10), 1e-6)
    ratio = grey / local
    ring = ndi.binary_dilation(mask, iterations=8) & ~ndi.binary_dilation(mask, iterations=3)
    return float(ratio[mask].mean()), float(ratio[ring].mean())


def test_low_light_is_dark_but_the_same_scene(scenes: list[crack.CrackScene]) -> None:
    for s in scenes:
        assert s.low_light.shape == s.image.shape and s.low_light.dtype == np.uint8
        assert s.low_light.mean() < 0.25 * s.image.mean()
        for img in (s.image, s.low_light):
            on, beside = _relative_darkness(img, s.mask)
            assert on < 0.9 * beside


def test_truth_lengths_match_the_mask_skeleton(scenes: list[crack.CrackScene]) -> None:
    for s in scenes:
        t = s.truth
        assert t["n_cracks"] == len(t["cracks"]) >= 1
        assert t["total_length_px"] == pytest.approx(sum(c["length_px"] for c in t["cracks"]), abs=0.1)
        measured = skeleton_length(s.mask)
        assert measured == pytest.approx(t["total_length_px"], rel=0.2)
        for c in t["cracks"]:
            assert 0 < c["mean_width_px"] <= c["max_width_px"] <= crack.MAX_WIDTH_PX
            assert 0 <= c["orientation_deg"] < 180
            assert c["length_mm"] == pytest.approx(c["length_px"] * t["pixel_size_mm"], abs=0.02)


def test_widths_span_hairlines_to_wide_cracks(scenes: list[crack.CrackScene]) -> None:
    widths = [c["max_width_px"] for s in scenes for c in s.truth["cracks"]]
    assert min(widths) < 2.0 and max(widths) > 4.0


def test_render_scene_gives_training_pairs() -> None:
    rng = np.random.default_rng(5)
    for low in (False, True):
        image, mask = crack.render_scene(rng, (128, 160), low_light=low)
        assert image.shape == (128, 160, 3) and image.dtype == np.uint8
        assert mask.shape == (128, 160) and mask.dtype == bool and mask.any()
    image, mask = crack.render_scene(rng, (96, 96), p_empty=1.0)
    assert not mask.any()

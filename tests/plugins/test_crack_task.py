"""crack.segment end to end (CLI and Python), inputs of every kind, bad inputs, tiling and few-shot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kintsugi.io import write_image

SCHEMA = Path(__file__).resolve().parents[2] / "plugins" / "kintsugi_crack" / "cracks.schema.json"


@pytest.fixture(scope="module")
def scenes():
    from kintsugi.samples.crack import generate

    return generate(seed=4242, n_images=2, size=(192, 256))


@pytest.fixture()
def photo_dir(tmp_path: Path, scenes) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    for i, s in enumerate(scenes):
        write_image(s.image, d / f"wall{i}.png")
        write_image(s.mask.astype(np.uint8) * 255, tmp_path / f"wall{i}_truth.png")
    return d


def cli(*args: str) -> int:
    from kintsugi.cli.main import main

    return main(["run", "crack.segment", "--quiet", *args])


def read_mask(path: Path) -> np.ndarray:
    from kintsugi.io import read_image

    return read_image(path).data


def test_cli_folder_with_support_and_pixel_size(tmp_path: Path, photo_dir: Path, scenes) -> None:
    import jsonschema

    out = tmp_path / "out"
    support = f"{photo_dir / 'wall1.png'}:{tmp_path / 'wall1_truth.png'}"
    assert cli("--image", str(photo_dir), "--output", str(out), "--support", support, "--pixel-size", "0.2") == 0
    schema = json.loads(SCHEMA.read_text())
    for i, s in enumerate(scenes):
        mask = read_mask(out / f"wall{i}_mask.png")
        assert mask.shape == s.mask.shape and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        record = json.loads((out / f"wall{i}_cracks.json").read_text())
        jsonschema.validate(record, schema)
        assert record["few_shot"] and record["pixel_size_mm"] == 0.2
        assert (out / f"wall{i}_cracks.csv").exists()
        if record["n_cracks"]:
            c = record["cracks"][0]
            assert c["length_mm"] == pytest.approx(c["length_px"] * 0.2, rel=1e-3)


def test_network_finds_the_generated_cracks(tmp_path: Path, photo_dir: Path, scenes) -> None:
    from kintsugi_crack.evaluate import Scores

    out = tmp_path / "out"
    assert cli("--image", str(photo_dir / "wall0.png"), "--output", str(out)) == 0
    s = Scores()
    s.add(read_mask(out / "wall0_mask.png"), scenes[0].mask)
    assert s.f1 > 0.6  # a trained network; an untrained one marks nothing or everything


def test_known_crack_measured_end_to_end(tmp_path: Path) -> None:
    """A dark straight crack of known length and width on a textured wall, through the whole task."""
    import kintsugi

    rng = np.random.default_rng(3)
    h, w = 200, 320
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    p0, p1, width = np.array([40.0, 60.0]), np.array([280.0, 140.0]), 5.0
    d = p1 - p0
    length = float(np.hypot(*d))
    u = d / length
    t = np.clip((xx - p0[0]) * u[0] + (yy - p0[1]) * u[1], 0, length)
    dist = np.hypot(xx - p0[0] - t * u[0], yy - p0[1] - t * u[1])
    wall = 0.6 + 0.03 * rng.standard_normal((h, w))
    img = np.where(dist <= width / 2, 0.15, wall)
    rgb = (np.clip(np.repeat(img[..., None], 3, axis=2), 0, 1) * 255).astype(np.uint8)
    write_image(rgb, tmp_path / "line.png")
    for method in ("network", "ridge"):
        res = kintsugi.run("crack.segment", image=tmp_path / "line.png", method=method, pixel_size=0.5)
        rec = res.files["line_cracks.json"]
        assert rec["n_cracks"] == 1, method
        c = rec["cracks"][0]
        assert c["length_px"] == pytest.approx(length, rel=0.05), method
        assert c["mean_width_px"] == pytest.approx(width, rel=0.2), method  # the segmentation's own edge error
        assert c["orientation_deg"] == pytest.approx(np.degrees(np.arctan2(-d[1], d[0])) % 180, abs=2), method
        names = [layer.name for layer in res.layers]
        assert names == ["line crack mask", "line crack width (px)", "line cracks"]


def test_grey_16bit_rgba_and_exif_rotation(tmp_path: Path, scenes) -> None:
    from PIL import Image

    import kintsugi

    img = scenes[0].image
    grey16 = (img.mean(axis=2) * 257).astype(np.uint16)
    write_image(grey16, tmp_path / "g16.png")
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    write_image(rgba, tmp_path / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displayed rotated by 90 degrees
    Image.fromarray(img).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    for name in ("g16.png", "rgba.png"):
        res = kintsugi.run("crack.segment", image=tmp_path / name)
        assert res.layers[0].data.shape == img.shape[:2]
    res = kintsugi.run("crack.segment", image=tmp_path / "rgba.png")
    assert not res.layers[0].data[:10, :10].any()  # transparent corner: no cracks there
    res = kintsugi.run("crack.segment", image=tmp_path / "rot.jpg")
    assert res.layers[0].data.shape == img.shape[:2][::-1]  # upright, as displayed


@pytest.mark.parametrize("case", ["corrupt", "tiny", "empty_support", "size_mismatch", "missing", "bad_pair",
                                  "empty_folder"])
def test_bad_input_one_line_message(tmp_path: Path, photo_dir: Path, capsys, case: str) -> None:
    img = photo_dir / "wall0.png"
    args = ["--image", str(img)]
    expect = ""
    if case == "corrupt":
        (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
        args, expect = ["--image", str(tmp_path / "bad.png")], "bad.png"
    elif case == "tiny":
        write_image(np.zeros((1, 1, 3), np.uint8), tmp_path / "tiny.png")
        args, expect = ["--image", str(tmp_path / "tiny.png")], "1x1 px"
    elif case == "empty_support":
        write_image(np.zeros((192, 256), np.uint8), tmp_path / "empty.png")
        args += ["--support", f"{img}:{tmp_path / 'empty.png'}"]
        expect = "marks no crack pixels"
    elif case == "size_mismatch":
        write_image(np.full((100, 100), 255, np.uint8), tmp_path / "small.png")
        args += ["--support", f"{img}:{tmp_path / 'small.png'}"]
        expect = "same size"
    elif case == "missing":
        args, expect = ["--image", str(tmp_path / "nope.png")], "no such file"
    elif case == "bad_pair":
        args += ["--support", "justonefile"]
        expect = "IMAGE:MASK"
    elif case == "empty_folder":
        (tmp_path / "void").mkdir()
        args, expect = ["--image", str(tmp_path / "void")], "no images"
    assert cli(*args, "--output", str(tmp_path / "out")) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("kintsugi: error:") and "\n" not in err and "Traceback" not in err
    assert expect in err


def test_tiles_bound_the_network_input_and_match_whole_image(monkeypatch) -> None:
    """A 500x600 photo with 128 px tiles: no network input bigger than one padded tile, numpy memory
    of a few tiles plus one byte per pixel, and the stitched mask agrees with the untiled one."""
    import tracemalloc

    from kintsugi.samples.crack import render_scene
    from kintsugi_crack import infer, retinex
    from kintsugi_crack.model import MARGIN, CrackProtoNet
    from kintsugi_crack.tasks import model_tensors

    img, _ = render_scene(np.random.default_rng(5), (500, 600))
    net = infer.load_model(model_tensors(None, "cpu"))
    whole = infer.predict(img, net, tile=1024)
    seen = []
    original = CrackProtoNet.forward

    def spy(self, x, protos=None):  # noqa: ANN001, ANN202
        seen.append(tuple(x.shape))
        return original(self, x, protos)

    monkeypatch.setattr(CrackProtoNet, "forward", spy)
    monkeypatch.setattr(retinex, "LOW_RES", 64)  # as for a 20000 px photo: the illumination grid is small
    tracemalloc.start()
    tiled = infer.predict(img, net, tile=128)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    side = 128 + 2 * MARGIN + 8
    assert len(seen) == 4 * 5 and max(s[2] * s[3] for s in seen) <= side * side
    assert tiled.dtype == np.uint8 and tiled.shape == img.shape[:2]
    # numpy memory: the uint8 result plus a few tile-sized float arrays, far below 4 float channels
    # of the whole photo (500 * 600 * 16 bytes = 4.8 MB)
    print(f"peak {peak / 1e6:.2f} MB")
    assert peak < 500 * 600 * 2 + 80 * side * side
    agree = np.mean((whole >= 128) == (tiled >= 128))
    assert agree > 0.995


def test_few_shot_prototypes_steer_and_pool(scenes) -> None:
    from kintsugi_crack import infer
    from kintsugi_crack.tasks import build_prototypes, model_tensors

    net = infer.load_model(model_tensors(None, "cpu"))
    s0, s1 = scenes
    one = build_prototypes(net, [(s0.image, s0.mask, "a")], 1024, "cpu")
    two = build_prototypes(net, [(s0.image, s0.mask, "a"), (s1.image, s1.mask, "b")], 1024, "cpu")
    assert set(one) == {"f_fg", "f_bg", "r_fg", "r_bg"}
    assert not np.allclose(one["f_fg"].numpy(), two["f_fg"].numpy())
    plain = infer.predict(s1.image, net)
    steered = infer.predict(s1.image, net, one)
    assert np.abs(plain.astype(int) - steered.astype(int)).max() > 0  # prototypes change the prediction
    with pytest.raises(ValueError, match="no crack pixels"):
        build_prototypes(net, [(s0.image, np.zeros_like(s0.mask), "empty")], 1024, "cpu")


def test_segment_layers_task_for_the_gui(scenes) -> None:
    import kintsugi
    from kintsugi.core import Image2D

    s0, s1 = scenes
    photo = Image2D(name="wall", data=s1.image)
    sup = Image2D(name="sup", data=s0.image)
    m = Image2D(name="sup mask", data=s0.mask.astype(np.uint8) * 255)
    res = kintsugi.run("crack.segment_layers", image=photo, support_images=[sup], support_masks=[m])
    assert res.summary["method"] == "network + 1-shot"
    assert res.layers[0].metadata["role"] == "mask" and res.layers[2].n_rows == res.summary["cracks"]
    fit = kintsugi.run("crack.segment_layers", image=photo, support_images=[sup], support_masks=[m], fine_tune=True)
    assert fit.summary["method"] == "network + 1-shot + head fit"
    assert fit.layers[0].data.shape == s1.mask.shape
    with pytest.raises(ValueError, match="give one mask per image"):
        kintsugi.run("crack.segment_layers", image=photo, support_images=[sup])


def test_reflectance_is_steady_under_low_light(scenes) -> None:
    from kintsugi_crack.lowlight import darken
    from kintsugi_crack.retinex import reflectance

    img = scenes[0].image
    dark = darken(img, np.random.default_rng(0), factor=0.2)
    assert dark.mean() < 0.5 * img.mean()
    r0, r1 = reflectance(img), reflectance(dark)
    assert abs(float(np.median(r0)) - float(np.median(r1))) < 0.05  # the same surface, not a darker one


def test_two_views_average_the_photo_and_its_transpose():
    """views=2 is the mean of the network's probability on the photo and on its transpose (no more, no less)."""
    from kintsugi.samples.crack import make_scene
    from kintsugi_crack.infer import load_model, predict
    from kintsugi_crack.tasks import model_tensors

    scene = make_scene(np.random.default_rng(5), (96, 160))
    net = load_model(model_tensors(None, "cpu"))
    one = predict(scene.image, net).astype(float)
    transposed = predict(np.ascontiguousarray(scene.image.transpose(1, 0, 2)), net).astype(float).T
    two = predict(scene.image, net, views=2).astype(float)
    assert np.abs(two - (one + transposed) / 2).max() <= 1.0  # uint8 rounding
    assert np.abs(one - transposed).max() > 5  # the views differ, so the mean is not a no-op

"""``crack.segment``: crack masks and measurements for photos, optionally adapted by a few examples.

    kintsugi run crack.segment --image FILE_OR_DIR --output OUT [--support IMG:MASK[,IMG:MASK...]]
                               [--pixel-size MM] [--method network|ridge]

writes ``OUT/<stem>_mask.png`` (uint8 0/255, the photo's size, upright as displayed: EXIF applied),
``OUT/<stem>_cracks.json`` and ``OUT/<stem>_cracks.csv`` for every image. ``crack.segment_layers`` is
the same analysis for layers already open in the GUI (support masks drawn with a brush).

``image`` is a path parameter rather than a layer input because the command line promises folders:
a layer input opens one image per path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from kintsugi.core import Image2D, Table
from kintsugi.plugins import NO_PROGRESS, Input, Param, Progress, TaskResult, Weights
from kintsugi_crack.measure import measure, width_map
from kintsugi_crack.retinex import illumination, to_float_rgb
from kintsugi_crack.tiling import DEFAULT_TILE

# torch (via infer/model) is imported inside the functions that run the network: reading this module's
# signatures -- the GUI's Tasks form, `kintsugi run --help` -- must stay fast.

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
WEIGHTS_FILE = Path(__file__).resolve().parent / "weights" / "crackprotonet.safetensors"
MASK_COLOUR = (231, 76, 60)
SUPPORT_TWIN_SEED = 4711  # darkened twins of support examples for the head fit
TWINS = 2  # darkened twins per support example (dev set: 2 at x0.1-0.3 kept more F1 at the harsh end than 1)
TWIN_FACTOR, TWIN_PHOTONS = (0.1, 0.3), (100.0, 600.0)  # their light level and photons at full scale

Method = Literal["network", "ridge"]
Threshold = Annotated[float, Param(min=0.05, max=0.95, step=0.05,
                                   help="crack probability above which a pixel is crack (network)")]
PixelSize = Annotated[float, Param(min=0.0, help="mm per pixel; 0 = the image's own calibration if any, else px only")]
Tile = Annotated[int, Param(min=64, max=8192, help="tile side in px (memory per tile; large photos are tiled)")]
MinLength = Annotated[float, Param(min=0.0, help="ignore skeleton pieces shorter than this (px)")]
Views = Annotated[int, Param(min=1, max=4, help="views averaged per photo: 1 = fastest; 2 (the photo and its "
                                                "transpose) adds 1-7 % F1 (held-out / development photos), 2x time")]
FineTune = Annotated[bool, Param(help="with support: also re-fit the network's head to the examples and "
                                      "darkened copies of them (about 2 s per example on a CPU; teaches the "
                                      "site's own distractors, e.g. formwork; the prototypes alone barely help)")]


# ------------------------------------------------------------------------------------------ inputs


def read_photo(path: Path) -> Image2D:
    """An image file as a layer; any reading problem becomes a one-line ValueError."""
    from kintsugi.io import KintsugiIOError, read_image

    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: not an image ({', '.join(IMAGE_SUFFIXES)})")
    try:
        return read_image(path)
    except KintsugiIOError as e:
        raise ValueError(str(e)) from None


def image_paths(path: Path) -> list[Path]:
    """The image itself, or the images of a folder (sorted; earlier ``*_mask`` outputs skipped)."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not p.stem.endswith("_mask") and not p.name.startswith("."))
        if not found:
            raise ValueError(f"{path}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return found
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    return [path]


def mask_array(data: np.ndarray) -> np.ndarray:
    """A drawn/annotated mask as bool: any colour channel above half scale is crack; alpha ignored."""
    a = data[..., :3].max(axis=2) if data.ndim == 3 else data
    top = 65535 if a.dtype == np.uint16 else 255 if a.dtype == np.uint8 else max(float(a.max()), 1.0)
    return a > top / 2


def parse_support(text: str) -> list[tuple[Path, Path]]:
    """``IMG:MASK[,IMG:MASK...]`` (also ``;`` between pairs). A Windows drive letter's colon is kept."""
    pairs = []
    for item in (s.strip() for s in text.replace(";", ",").split(",")):
        if not item:
            continue
        cuts = [i for i, c in enumerate(item) if c == ":" and i > 1]
        if not cuts:
            raise ValueError(f"support {item!r} must be IMAGE:MASK")
        existing = [i for i in cuts if Path(item[:i]).exists()]
        cut = existing[0] if existing else cuts[0]
        pairs.append((Path(item[:cut]), Path(item[cut + 1:])))
    return pairs


def check_pair(img: np.ndarray, mask: np.ndarray, name: str) -> None:
    if img.shape[:2] != mask.shape[:2]:
        raise ValueError(f"support mask for {name} is {mask.shape[1]}x{mask.shape[0]} px but the image is "
                         f"{img.shape[1]}x{img.shape[0]} px; they must be the same size")
    if not mask.any():
        raise ValueError(f"support mask for {name} marks no crack pixels; draw the cracks in white")
    if mask.all():
        raise ValueError(f"support mask for {name} marks every pixel as crack; leave the background black")


# ------------------------------------------------------------------------------------------ model


def model_tensors(weights: Weights | None, device: str) -> dict[str, Any]:
    if weights is not None and "model" in weights:
        return weights.load("model", device)
    from safetensors.torch import load_file

    if not WEIGHTS_FILE.is_file():
        raise ValueError(f"network weights are missing ({WEIGHTS_FILE}); use method 'ridge' or reinstall")
    return load_file(str(WEIGHTS_FILE), device=device)


def build_prototypes(net: Any, pairs: list[tuple[np.ndarray, np.ndarray, str]], tile: int, device: str,
                     progress: Progress = NO_PROGRESS, adapt: bool = False) -> dict[str, Any]:
    """Foreground/background (and reflectance) prototypes from K support (image, bool mask, name),
    plus (``adapt``) the head re-fitted to the support examples and to ``TWINS`` darkened twins of each.

    Why the twins: fitted to well-lit examples only, the head learns the site's cracks as they look
    in daylight and loses them in noisy low light (development set, 5-shot: darkened F1 fell to 0.81
    of normal). Copies at 10-30 % light with shot and read noise (``lowlight.darken``, the same
    model as the network's training augmentation, reaching a little past its darkest end; fixed
    seeds) teach it both; two twins instead of one held more F1 at x0.15 / 150 photons (0.63 -> 0.68
    of normal, 5-shot) at no cost in normal light, for 1.5x the fitting time."""
    from kintsugi_crack.infer import add_support
    from kintsugi_crack.model import Prototypes, adapt_head

    protos = Prototypes()
    for k, (img, mask, name) in enumerate(pairs):
        progress(k / max(len(pairs), 1), f"support {k + 1}/{len(pairs)}: {name}")
        check_pair(img, mask, name)
        add_support(protos, img, mask, net, tile, device)
        for j in range(TWINS if adapt else 0):
            add_support(protos, darkened_twin(img, k + 1000 * j), mask, net, tile, device, pool=False)
    vectors = protos.vectors()
    if adapt:
        progress(0.95, "fitting the head to the support examples")
        vectors |= adapt_head(net, vectors, protos.crops, n_examples=len(pairs))
    return vectors


def darkened_twin(data: np.ndarray, seed: int) -> np.ndarray:
    """An 8-bit RGB copy of a support photo in low light (``TWIN_FACTOR``, gamma, shot and read noise)."""
    from kintsugi_crack.lowlight import darken

    rng = np.random.default_rng(SUPPORT_TWIN_SEED + seed)
    factor, gamma = float(rng.uniform(*TWIN_FACTOR)), float(rng.uniform(0.8, 1.4))
    photons, read_noise = float(rng.uniform(*TWIN_PHOTONS)), float(rng.uniform(1.0, 4.0))
    out = np.empty((*data.shape[:2], 3), np.uint8)
    for y0 in range(0, data.shape[0], 512):  # in bands: a huge support photo needs no float copy
        rgb = np.round(to_float_rgb(data[y0:y0 + 512]) * 255).astype(np.uint8)
        out[y0:y0 + 512] = darken(rgb, rng, factor, gamma, photons, read_noise)
    return out


# ------------------------------------------------------------------------------------------ analysis


def analyse(data: np.ndarray, stem: str, net: Any, protos: dict[str, Any] | None, method: str, threshold: float,
            pixel_mm: float | None, tile: int, min_length: float, device: str,
            progress: Progress = NO_PROGRESS, views: int = 1) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """(layers, files, json record) for one photo."""
    from kintsugi_crack.infer import check_image, predict, ridge

    check_image(data, f"image {stem}")
    t0 = time.perf_counter()
    progress(0.02, f"{stem}: illumination")
    il = illumination(data)
    seg = progress.span(0.05, 0.75)
    if method == "ridge":
        mask = ridge(data, tile=tile, report=seg, il=il)
    else:
        prob = predict(data, net, protos, tile=tile, device=device, report=seg, il=il, views=views)
        cut = np.uint8(min(254, max(1, round(threshold * 255))))
        mask = np.where(prob >= cut, np.uint8(255), np.uint8(0))
        del prob
    if data.ndim == 3 and data.shape[2] == 4:
        mask[data[..., 3] == 0] = 0  # transparent pixels show no surface
    progress(0.8, f"{stem}: measuring")
    records, totals, sk, local_w = measure(mask, pixel_mm, min_length)
    widths = width_map(sk, local_w)
    record = {
        "image": stem, "width": int(data.shape[1]), "height": int(data.shape[0]),
        "pixel_size_mm": pixel_mm, "method": method, "few_shot": protos is not None,
        "threshold": threshold if method == "network" else None, "views": views if method == "network" else None,
        **totals,
        "seconds": round(time.perf_counter() - t0, 3), "cracks": records,
    }
    mask_layer = Image2D(name=f"{stem} crack mask", data=mask, modality="mask",
                         metadata={"role": "mask", "overlay": True, "color": MASK_COLOUR, "values": "0/255"})
    width_layer = Image2D(name=f"{stem} crack width (px)", data=widths, modality="width map", unit="px",
                          metadata={"role": "width_map", "overlay": True, "colormap": "turbo",
                                    "values": "local crack width in px on the skeleton, 0 elsewhere"})
    table = Table.from_records([{k: v for k, v in r.items() if k != "bbox_xywh"} for r in records],
                               name=f"{stem} cracks")
    files = {f"{stem}_mask.png": mask_layer, f"{stem}_cracks.json": record, f"{stem}_cracks.csv": table}
    return [mask_layer, width_layer, table], files, record


def _pixel_mm(pixel_size: float, image: Image2D) -> float | None:
    if pixel_size > 0:
        return float(pixel_size)
    if image.metadata.get("pixel_spacing_known"):
        return float(image.geometry.spacing[0])
    return None


def _run(images: list[tuple[Image2D | Path, str]], support: list[tuple[np.ndarray, np.ndarray, str]],
         method: str, threshold: float, pixel_size: float, tile: int, min_length: float, progress: Progress,
         device: str, weights: Weights | None, fine_tune: bool = False, views: int = 1) -> TaskResult:
    from kintsugi_crack.infer import load_model

    net = protos = None
    if method == "network" or support:
        progress(0.0, "loading the network")
        net = load_model(model_tensors(weights, device), device)
        if weights is not None and "denoiser" in weights:  # the manifest's checked file (sha256)
            from kintsugi_crack.denoise import use_weights

            use_weights(weights.load("denoiser", "cpu"))
    if support:
        if method != "network":
            raise ValueError("support examples steer the network; use method 'network' with --support")
        protos = build_prototypes(net, support, tile, device, progress.span(0.0, 0.1), adapt=fine_tune)
    layers, files, records, failed = [], {}, [], []
    start = 0.1 if support else 0.02
    for i, (item, stem) in enumerate(images):
        sub = progress.span(start + (1 - start) * i / len(images), start + (1 - start) * (i + 1) / len(images))
        try:
            image = read_photo(item) if isinstance(item, Path) else item
            lay, fil, rec = analyse(image.data, stem, net, protos, method, threshold, _pixel_mm(pixel_size, image),
                                    tile, min_length, device, sub, views)
        except ValueError as e:
            if len(images) == 1:
                raise
            failed.append(f"{stem}: {e}")  # one bad photo in a folder does not stop the others
            continue
        layers.extend(lay)
        files.update(fil)
        records.append(rec)
    if not records:
        raise ValueError("no image could be analysed: " + "; ".join(failed))
    progress(1.0, f"{sum(r['n_cracks'] for r in records)} cracks in {len(records)} image(s)")
    summary: dict[str, Any] = {
        "images": len(records), "cracks": sum(r["n_cracks"] for r in records),
        "total_length_px": round(sum(r["total_length_px"] for r in records), 2),
        "method": method + (f" + {len(support)}-shot" if support else "")
        + (" + head fit" if support and fine_tune else ""),
    }
    if all(r["pixel_size_mm"] for r in records):
        summary["total_length_mm"] = round(sum(r["total_length_mm"] for r in records), 2)
    if failed:
        summary["skipped"] = failed
    return TaskResult(layers=layers, files=files, summary=summary)


def segment(
    image: Annotated[Path, Param(help="a photo, or a folder of photos (png, jpg, tif, bmp)")],
    support: Annotated[str, Param(help="few-shot examples: IMAGE:MASK pairs separated by commas "
                                       "(mask: white = crack, same size as its image)")] = "",
    pixel_size: PixelSize = 0.0,
    method: Method = "network",
    threshold: Threshold = 0.5,
    tile: Tile = DEFAULT_TILE,
    min_length: MinLength = 10.0,
    fine_tune: FineTune = False,
    views: Views = 1,
    *, progress: Progress = NO_PROGRESS, device: str = "cpu", weights: Weights | None = None,
) -> TaskResult:
    """Crack mask, width map and per-crack measurements for a photo or every photo in a folder."""
    paths = image_paths(Path(image))
    pairs = []
    for img_path, mask_path in parse_support(support):
        img, m = read_photo(img_path), read_photo(mask_path)
        pairs.append((img.data, mask_array(m.data), img_path.name))
    return _run([(p, p.stem) for p in paths], pairs, method, threshold, pixel_size, tile, min_length, progress,
                device, weights, fine_tune, views)


def segment_layers(
    image: Annotated[Image2D, Input(modality="photo", help="the photo to analyse")],
    support_images: Annotated[list[Image2D], Input(help="few-shot example photos")] = (),  # type: ignore[assignment]
    support_masks: Annotated[list[Image2D], Input(help="their crack masks (white = crack), same order")] = (),  # type: ignore[assignment]
    pixel_size: PixelSize = 0.0,
    method: Method = "network",
    threshold: Threshold = 0.5,
    tile: Tile = DEFAULT_TILE,
    min_length: MinLength = 10.0,
    fine_tune: FineTune = False,
    views: Views = 1,
    *, progress: Progress = NO_PROGRESS, device: str = "cpu", weights: Weights | None = None,
) -> TaskResult:
    """The same analysis for an open image layer, with support examples as layers (e.g. brushed masks)."""
    imgs, masks = list(support_images or []), list(support_masks or [])
    if len(imgs) != len(masks):
        raise ValueError(f"{len(imgs)} support image(s) but {len(masks)} support mask(s); give one mask per image")
    pairs = [(i.data, mask_array(m.data), i.name) for i, m in zip(imgs, masks, strict=True)]
    stem = Path(str(image.metadata.get("source", image.name))).stem or "image"
    return _run([(image, stem)], pairs, method, threshold, pixel_size, tile, min_length, progress, device, weights,
                fine_tune, views)

"""2D images: PNG, JPEG, TIFF (16-bit and multi-channel), BMP, with EXIF orientation applied.

Photos from phones carry their rotation in EXIF; applying it on load means masks the user draws
line up with what they see. 16-bit radiographs and alpha channels are kept, never squashed to 8 bits.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from kintsugi.core import Geometry, Image2D
from kintsugi.io.errors import (
    CorruptFileError,
    TooLargeError,
    TruncatedFileError,
    UnsupportedFormatError,
    WriteError,
)
from kintsugi.io.jsonio import atomic_write_bytes
from kintsugi.io.limits import check_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _spacing_from_dpi(dpi: object) -> tuple[float, float] | None:
    try:
        dx, dy = (float(v) for v in dpi)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if dx <= 1 or dy <= 1 or abs(dx - 72) < 1e-6 or abs(dx - 96) < 1e-6:
        return None  # 72/96 dpi are screen defaults, not a physical calibration
    return 25.4 / dx, 25.4 / dy


def read_image(path: str | Path) -> Image2D:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _read_tiff(path)
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = None  # we apply our own memory-based limit below
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(path)
            w, h = im.size
            bands = len(im.getbands())
            check_size(path, w * h * bands * (2 if im.mode.startswith("I;16") else 4 if im.mode in "IF" else 1),
                       f"the {w}x{h} image")
            im.load()
            im = ImageOps.exif_transpose(im)
    except TooLargeError:
        raise
    except OSError as e:
        msg = str(e)
        if "truncated" in msg.lower() or "broken data stream" in msg.lower():
            raise TruncatedFileError(path, f"truncated image data ({msg})") from None
        raise CorruptFileError(path, f"cannot decode image: {msg}") from None
    except Exception as e:  # PIL raises SyntaxError/ValueError for malformed chunks
        raise CorruptFileError(path, f"cannot decode image: {e}") from None
    mode = im.mode
    if mode in ("1", "L", "I;16", "I;16B", "I;16L", "I", "F"):
        data = np.asarray(im)
        if mode == "1":
            data = data.astype(np.uint8) * 255
        elif mode.startswith("I;16"):
            data = data.astype(np.uint16)
    elif mode in ("RGB", "RGBA"):
        data = np.asarray(im)
    elif mode in ("LA", "PA"):
        data = np.asarray(im.convert("RGBA"))
    elif mode == "P":
        data = np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
    else:
        data = np.asarray(im.convert("RGB"))
    spacing = _spacing_from_dpi(im.info.get("dpi"))
    meta = {"source": str(path), "format": im.format, "mode": mode, "pixel_spacing_known": spacing is not None}
    geometry = Geometry(spacing or (1.0, 1.0), (0.0, 0.0), np.eye(2))
    return Image2D(name=path.stem, data=np.ascontiguousarray(data), geometry=geometry, metadata=meta)


def _read_tiff(path: Path) -> Image2D:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            check_size(path, int(np.prod(page.shape)) * page.dtype.itemsize, f"the {page.shape} image")
            data = page.asarray()
            spacing = None
            tags = page.tags
            if "XResolution" in tags and "YResolution" in tags:
                unit = tags.get("ResolutionUnit")
                unit_v = int(unit.value) if unit is not None else 2
                xr, yr = tags["XResolution"].value, tags["YResolution"].value
                xres = xr[0] / xr[1] if isinstance(xr, tuple) else float(xr)
                yres = yr[0] / yr[1] if isinstance(yr, tuple) else float(yr)
                per_mm = {2: 1 / 25.4, 3: 1 / 10.0}.get(unit_v)
                if per_mm and xres > 0 and yres > 0 and xres not in (72.0, 96.0, 1.0):
                    spacing = (1 / (xres * per_mm), 1 / (yres * per_mm))
            n_pages = len(tf.pages)
            orientation = tags.get("Orientation")
    except TooLargeError:
        raise
    except Exception as e:
        text = str(e).lower()
        if "truncat" in text or "unexpected end" in text or "not enough" in text:
            raise TruncatedFileError(path, f"truncated TIFF ({e})") from None
        raise CorruptFileError(path, f"cannot decode TIFF: {str(e)[:200]}") from None
    if data.ndim == 3 and data.shape[0] in (3, 4) and data.shape[2] not in (3, 4):
        data = np.moveaxis(data, 0, -1)  # planar configuration
    if data.ndim == 3 and data.shape[2] == 2:
        data = np.concatenate([np.repeat(data[..., :1], 3, axis=2), data[..., 1:]], axis=2)  # grey+alpha
    if not (data.ndim == 2 or (data.ndim == 3 and data.shape[2] in (3, 4))):
        raise UnsupportedFormatError(path, f"TIFF with shape {data.shape} is not a 2D image")
    if orientation is not None and int(orientation.value) != 1:
        data = _apply_orientation(data, int(orientation.value))
    meta = {"source": str(path), "format": "TIFF", "pages": n_pages, "pixel_spacing_known": spacing is not None}
    return Image2D(name=path.stem, data=np.ascontiguousarray(data),
                   geometry=Geometry(spacing or (1.0, 1.0), (0.0, 0.0), np.eye(2)), metadata=meta)


def _apply_orientation(data: np.ndarray, o: int) -> np.ndarray:
    """TIFF/EXIF orientation codes 2-8 to the upright array."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
           7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.swapaxes(a, 0, 1)[::-1]}
    return ops.get(o, lambda a: a)(data)


def write_image(image: Image2D | np.ndarray, path: str | Path) -> Path:
    """Write PNG (8/16-bit grey, RGB, RGBA), JPEG or TIFF atomically."""
    import io as _io

    from PIL import Image

    path = Path(path)
    data = image.data if isinstance(image, Image2D) else np.asarray(image)
    suffix = path.suffix.lower()
    if data.dtype == np.bool_:
        data = data.astype(np.uint8) * 255
    if suffix in (".tif", ".tiff"):
        import tifffile

        buf = _io.BytesIO()
        tifffile.imwrite(buf, data, photometric="rgb" if data.ndim == 3 else "minisblack")
        return atomic_write_bytes(path, buf.getvalue())
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise WriteError(path, "images are written as .png, .jpg or .tif")
    if data.dtype not in (np.uint8, np.uint16):
        raise WriteError(path, f"PNG/JPEG need uint8 or uint16 pixels, got {data.dtype}")
    if data.dtype == np.uint16 and (data.ndim == 3 or suffix != ".png"):
        raise WriteError(path, "16-bit pixels are written only as grey PNG or TIFF")
    im = Image.fromarray(data)
    buf = _io.BytesIO()
    im.save(buf, format="PNG" if suffix == ".png" else "JPEG", **({"quality": 95} if suffix != ".png" else {}))
    return atomic_write_bytes(path, buf.getvalue())

import numpy as np
import pytest
from PIL import Image

from kintsugi.core import Image2D
from kintsugi.io import open_path, write_image


def test_16bit_png_keeps_full_range(tmp_path):
    data = np.linspace(0, 65535, 30 * 20).astype(np.uint16).reshape(30, 20)
    write_image(Image2D(data=data), tmp_path / "xr.png")
    (img,) = open_path(tmp_path / "xr.png")
    assert img.data.dtype == np.uint16 and np.array_equal(img.data, data)


def test_rgba_png_keeps_alpha(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (8, 9, 4)).astype(np.uint8)
    write_image(data, tmp_path / "a.png")
    (img,) = open_path(tmp_path / "a.png")
    assert img.has_alpha and np.array_equal(img.data, data)


def test_exif_orientation_is_applied(tmp_path):
    data = np.zeros((20, 40, 3), np.uint8)
    data[:5, :10] = 255  # a white block in the stored top-left corner
    im = Image.fromarray(data)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    im.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    (img,) = open_path(tmp_path / "phone.jpg")
    assert img.data.shape == (40, 20, 3)  # portrait once upright
    assert img.data[:10, -5:].mean() > 200  # the block is now at the top-right


def test_16bit_tiff_with_resolution(tmp_path):
    import tifffile

    data = np.arange(600, dtype=np.uint16).reshape(20, 30) * 100
    tifffile.imwrite(tmp_path / "scan.tif", data, resolution=(10.0, 10.0), resolutionunit="CENTIMETER")
    (img,) = open_path(tmp_path / "scan.tif")
    assert np.array_equal(img.data, data)
    assert img.metadata["pixel_spacing_known"] and np.allclose(img.geometry.spacing, (1.0, 1.0))


def test_grey_png_and_write_refusals(tmp_path):
    from kintsugi.io import WriteError

    write_image(np.full((3, 4), 7, np.uint8), tmp_path / "g.png")
    (img,) = open_path(tmp_path / "g.png")
    assert img.data.shape == (3, 4) and not img.metadata["pixel_spacing_known"]
    with pytest.raises(WriteError):
        write_image(np.zeros((3, 4), np.float32), tmp_path / "f.png")

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dicom_factory import ct_series, radiograph, with_transfer_syntax  # noqa: E402

from kintsugi.core import Image2D, Volume  # noqa: E402
from kintsugi.io import UnsupportedTransferSyntaxError, open_path  # noqa: E402
from kintsugi.io.dicom import scan_dicom_folder  # noqa: E402


def _oblique() -> np.ndarray:
    a, b = np.deg2rad(20), np.deg2rad(-10)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


@pytest.fixture
def hu() -> np.ndarray:
    return np.random.default_rng(1).integers(-1000, 2500, (6, 64, 72)).astype(np.int16)


@pytest.mark.parametrize("compress", [False, True], ids=["uncompressed", "jpeg2000"])
def test_series_geometry_matches_simpleitk_on_shuffled_oblique_files(tmp_path, hu, compress):
    direction = _oblique()
    ct_series(tmp_path / "s", hu, spacing=(0.7, 0.8, 2.5), origin=(-50, -60, 100), direction=direction,
              compress=compress)
    (vol,) = open_path(tmp_path / "s")
    assert isinstance(vol, Volume) and vol.modality == "CT" and vol.unit == "HU"
    assert np.array_equal(vol.data, hu)  # slices ordered by position, not file name; HU exact
    assert np.allclose(vol.geometry.spacing, (0.7, 0.8, 2.5))
    assert np.allclose(vol.geometry.origin, (-50, -60, 100))
    assert np.allclose(vol.geometry.direction, direction, atol=1e-6)
    # An independent reader (GDCM inside SimpleITK) agrees on geometry and values.
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "s")))
    ref = reader.Execute()
    assert np.allclose(ref.GetSpacing(), vol.geometry.spacing, atol=1e-4)
    assert np.allclose(ref.GetOrigin(), vol.geometry.origin, atol=1e-3)
    assert np.allclose(np.reshape(ref.GetDirection(), (3, 3)), vol.geometry.direction, atol=1e-4)
    assert np.array_equal(sitk.GetArrayFromImage(ref), vol.data)


def test_folder_with_several_series_picks_largest_and_reports_others(tmp_path, hu):
    ct_series(tmp_path / "study" / "big", hu)
    ct_series(tmp_path / "study" / "scout", hu[:2, :32, :32])
    radiograph(tmp_path / "study" / "xray.dcm", np.zeros((40, 30), np.uint16))
    found = scan_dicom_folder(tmp_path / "study")
    assert [s.n_files for s in found] == [6, 2, 1]
    (vol,) = open_path(tmp_path / "study")
    assert vol.shape == (6, 64, 72)
    assert len(vol.metadata["other_series"]) == 2


def test_monochrome1_radiograph_is_shown_the_right_way_round(tmp_path):
    pixels = np.zeros((50, 40), np.uint16)
    pixels[10:20, 10:20] = 4000  # in MONOCHROME1 a high value is dark (e.g. air)
    radiograph(tmp_path / "cr.dcm", pixels, monochrome1=True, bits=12, spacing=(0.15, 0.2))
    (img,) = open_path(tmp_path / "cr.dcm")
    assert isinstance(img, Image2D) and img.modality == "XR"
    assert img.data[15, 15] == 4095 - 4000 and img.data[0, 0] == 4095
    assert img.metadata["monochrome1_inverted"]
    assert np.allclose(img.geometry.spacing, (0.15, 0.2)) and img.metadata["pixel_spacing_known"]
    radiograph(tmp_path / "dx.dcm", pixels, monochrome1=False)
    (plain,) = open_path(tmp_path / "dx.dcm")
    assert plain.data[15, 15] == 4000


def test_single_ct_slice_opens_as_one_slice_volume(tmp_path, hu):
    files = ct_series(tmp_path / "s", hu[:1])
    (vol,) = open_path(files[0])
    assert vol.shape == (1, 64, 72) and np.array_equal(vol.data[0], hu[0])


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.80"])
def test_unsupported_transfer_syntax_is_named(tmp_path, hu, ts):
    files = ct_series(tmp_path / "s", hu[:1])
    bad = with_transfer_syntax(files[0], tmp_path / "bad.dcm", ts)
    with pytest.raises(UnsupportedTransferSyntaxError, match=ts.replace(".", r"\.")) as info:
        open_path(bad)
    assert str(info.value).startswith(str(bad))

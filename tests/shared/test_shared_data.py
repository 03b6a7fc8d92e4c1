"""Acceptance on real public data in ../shared/data (skipped where it is not present)."""

import subprocess
import sys

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from kintsugi.core import Image2D, LabelMap, Volume
from kintsugi.io import open_path
from kintsugi.io.describe import describe_path

pytestmark = pytest.mark.shared_data


def test_info_works_on_every_file_and_folder(shared_data):
    paths = [shared_data, *sorted(shared_data.rglob("*"))]
    failures = []
    for p in paths:
        try:
            report = describe_path(p)
        except Exception as e:  # noqa: BLE001 - collect all failures
            failures.append(f"{p}: {type(e).__name__}: {e}")
            continue
        assert report["layers"] or report.get("note"), p
    assert not failures, "\n".join(failures)


def test_cli_info_on_the_whole_tree_exits_zero(shared_data):
    paths = [str(shared_data), *sorted(str(p) for p in shared_data.rglob("*") if "uav75/" not in str(p))]
    proc = subprocess.run([sys.executable, "-m", "kintsugi.cli.main", "info", *paths], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_jpeg2000_ct_decodes_exactly_as_an_independent_decoder(shared_data):
    """693_J2KR decodes bit-exactly as GDCM decodes it (two independent JPEG 2000 implementations)."""
    (vol,) = open_path(shared_data / "dicom" / "693_J2KR.dcm")
    gdcm = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / "dicom" / "693_J2KR.dcm"), imageIO="GDCMImageIO"))
    assert vol.shape == (1, 512, 512)
    assert np.array_equal(vol.data.astype(np.int32), gdcm.astype(np.int32))


def test_693_unci_is_the_same_slice_but_not_the_same_pixels(shared_data):
    """693_UNCI is not the decompressed J2KR: in pydicom's own test suite UNCI is the reference for the
    *lossy* 693_J2KI. Both decoders above agree on J2KR, so the difference is in the files, not in us.
    This test pins that fact: same slice and geometry, highly correlated, not identical."""
    (j2k,) = open_path(shared_data / "dicom" / "693_J2KR.dcm")
    (unc,) = open_path(shared_data / "dicom" / "693_UNCI.dcm")
    assert j2k.geometry == unc.geometry
    raw = pydicom.dcmread(shared_data / "dicom" / "693_UNCI.dcm").pixel_array.astype(np.int32) - 1024
    assert np.array_equal(unc.data[0].astype(np.int32), raw)  # UNCI itself is read exactly
    r = np.corrcoef(j2k.data.ravel().astype(float), unc.data.ravel().astype(float))[0, 1]
    assert r > 0.99
    assert not np.array_equal(j2k.data, unc.data)


def test_monochrome1_radiograph(shared_data):
    (img,) = open_path(shared_data / "dicom" / "RG3_J2KR.dcm")
    raw = pydicom.dcmread(shared_data / "dicom" / "RG3_J2KR.dcm").pixel_array
    assert isinstance(img, Image2D) and img.data.shape == (1760, 1760)
    assert np.array_equal(img.data.astype(np.int32), 1023 - raw.astype(np.int32))


def test_totalsegmentator_dicom_series_geometry(shared_data):
    (vol,) = open_path(shared_data / "spine" / "totalsegmentator" / "example_ct_dicom")
    assert isinstance(vol, Volume) and vol.size_xyz == (512, 512, 20)
    assert np.allclose(vol.geometry.spacing, (0.9765625, 0.9765625, 2.0), atol=1e-4)
    assert vol.modality == "CT" and vol.unit == "HU"


def test_dicom_series_and_nifti_labels_line_up_in_physical_space(shared_data):
    """Resample the labels onto the CT grid through physical coordinates: bone must sit in the vertebrae."""
    (ct,) = open_path(shared_data / "spine" / "totalsegmentator" / "example_ct_dicom")
    (seg,) = open_path(shared_data / "spine" / "totalsegmentator" / "example_seg_dicom.nii.gz")
    assert isinstance(seg, LabelMap)
    assert seg.geometry.direction[1, 1] < 0  # stored flipped (LAS): only physical alignment works
    k, j, i = np.indices(ct.shape).reshape(3, -1)
    phys = ct.geometry.index_to_physical(np.stack([i, j, k], axis=1))
    idx = np.rint(seg.geometry.physical_to_index(phys)).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(seg.size_xyz)), axis=1)
    assert inside.mean() > 0.99
    labels = np.zeros(len(idx), np.int32)
    labels[inside] = seg.data[idx[inside, 2], idx[inside, 1], idx[inside, 0]]
    labels = labels.reshape(ct.shape)
    vertebrae = np.isin(labels, [32, 33])  # T12, T11 in TotalSegmentator v2 numbering
    bone = ct.data > 200
    assert vertebrae.sum() > 5000
    # Inside the vertebra labels, most voxels are bone-dense; a shifted overlay would miss.
    assert bone[vertebrae].mean() > 0.3
    assert bone[vertebrae].mean() > 5 * bone[~vertebrae].mean()
    # Shifting the labels by 10 voxels must make the agreement clearly worse: the test can fail.
    shifted = np.roll(vertebrae, 10, axis=2)
    assert bone[shifted].mean() < 0.8 * bone[vertebrae].mean()

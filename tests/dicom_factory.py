"""Write small synthetic DICOM files for tests: CT series (optionally oblique, shuffled, compressed),
radiographs (MONOCHROME1), and files with transfer syntaxes nobody can decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    generate_uid,
)


def _base(sop_class: UID, ts: UID = ExplicitVRLittleEndian) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Phantom^Test"
    ds.PatientID = "0"
    ds.StudyInstanceUID = generate_uid()
    return ds


def ct_slice(path: Path, hu: np.ndarray, position, orientation, spacing, series_uid: str,
             instance: int, compress: bool = False) -> Path:
    ds = _base(CTImageStorage)
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesDescription = "synthetic"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # DICOM: row spacing, column spacing
    ds.SliceThickness = 1.0
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = (hu.astype(np.int32) + 1024).astype("<i2").tobytes()
    if compress:
        ds.compress(JPEG2000Lossless)
    ds.save_as(path, enforce_file_format=True)
    return path


def ct_series(folder: Path, volume_hu: np.ndarray, spacing=(0.7, 0.8, 2.5), origin=(-50.0, -60.0, 100.0),
              direction: np.ndarray | None = None, compress: bool = False, shuffle_seed: int | None = 0,
              series_uid: str | None = None) -> list[Path]:
    """One file per slice of ``volume_hu`` (z, y, x); file names shuffled so order must come from headers."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = series_uid or generate_uid()
    direction = np.eye(3) if direction is None else np.asarray(direction)
    row_dir, col_dir, normal = direction[:, 0], direction[:, 1], direction[:, 2]
    order = np.arange(volume_hu.shape[0])
    if shuffle_seed is not None:
        np.random.default_rng(shuffle_seed).shuffle(order)
    paths = []
    for n, k in enumerate(order):
        pos = np.asarray(origin) + k * spacing[2] * normal
        paths.append(ct_slice(folder / f"IM{n:04d}", volume_hu[k], pos, [*row_dir, *col_dir], spacing, uid,
                              int(k) + 1, compress))
    return paths


def radiograph(path: Path, pixels: np.ndarray, monochrome1: bool = True, bits: int = 12,
               spacing=(0.15, 0.15)) -> Path:
    ds = _base(ComputedRadiographyImageStorage)
    ds.Modality = "CR"
    ds.SeriesInstanceUID = generate_uid()
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.ImagerPixelSpacing = [spacing[1], spacing[0]]
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def with_transfer_syntax(path: Path, out: Path, ts: str) -> Path:
    """Copy a DICOM file claiming another transfer syntax (encapsulated junk pixel data)."""
    import pydicom
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = UID(ts)
    ds.PixelData = encapsulate([b"\x00\x01\x02\x03" * 16])
    ds["PixelData"].VR = "OB"
    ds.save_as(out, enforce_file_format=True)
    return out

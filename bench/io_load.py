"""Loading a 512x512x300 int16 CT volume: Kintsugi's readers against a plain SimpleITK read.

The volume is synthetic (smooth anatomy-like blobs plus noise, so compression behaves like CT) and
is written once as NIfTI (.nii and .nii.gz) and as a 300-file uncompressed DICOM series.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bench.results_table import Row, machine, today
from kintsugi.core import Geometry, Volume
from kintsugi.io import open_path, write_volume

SHAPE = (300, 512, 512)


def _volume(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    body = ((x - 256) / 200.0) ** 2 + ((y - 256) / 150.0) ** 2 < 1
    vol = np.where(np.broadcast_to(body, SHAPE), 40, -1000).astype(np.int16)
    spine = ((x - 256) / 25.0) ** 2 + ((y - 330) / 20.0) ** 2 < 1
    vol[np.broadcast_to(spine, SHAPE)] = 400
    vol += rng.normal(0, 15, SHAPE).astype(np.int16)
    return vol


def _dicom_series(folder: Path, vol: np.ndarray) -> None:
    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "tests"))
    from dicom_factory import ct_series

    ct_series(folder, vol, spacing=(0.7, 0.7, 1.0), origin=(-180.0, -180.0, -300.0), shuffle_seed=None)


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(workdir: Path, repeats: int = 3) -> list[Row]:
    workdir.mkdir(parents=True, exist_ok=True)
    vol = _volume()
    layer = Volume(data=vol, geometry=Geometry((0.7, 0.7, 1.0), (-180.0, -180.0, -300.0)), modality="CT", unit="HU")
    nii, niigz, dcm = workdir / "ct.nii", workdir / "ct.nii.gz", workdir / "ct_dicom"
    if not nii.exists():
        write_volume(layer, nii)
    if not niigz.exists():
        write_volume(layer, niigz)
    if not (dcm / "IM0299").exists():
        _dicom_series(dcm, vol)

    def sitk_series() -> np.ndarray:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(dcm)))
        return sitk.GetArrayFromImage(reader.Execute())

    # Sanity: every path reads the same voxels.
    assert np.array_equal(open_path(dcm)[0].data, vol)
    assert np.array_equal(sitk_series(), vol)

    cases = {
        ("load 512x512x300 int16", "NIfTI .nii, Kintsugi open_path"): lambda: open_path(nii),
        ("load 512x512x300 int16", "NIfTI .nii, SimpleITK ReadImage"): lambda: sitk.GetArrayFromImage(
            sitk.ReadImage(str(nii))),
        ("load 512x512x300 int16", "NIfTI .nii.gz, Kintsugi open_path"): lambda: open_path(niigz),
        ("load 512x512x300 int16", "NIfTI .nii.gz, SimpleITK ReadImage"): lambda: sitk.GetArrayFromImage(
            sitk.ReadImage(str(niigz))),
        ("load 512x512x300 int16", "DICOM series (300 files), Kintsugi open_path"): lambda: open_path(dcm),
        ("load 512x512x300 int16", "DICOM series (300 files), SimpleITK ImageSeriesReader"): sitk_series,
    }
    rows = []
    where, when = machine(), today()
    for (bench, metric), fn in cases.items():
        seconds = _median_time(fn, repeats)
        print(f"{bench:<26} {metric:<55} {seconds:8.3f} s", flush=True)
        rows.append(Row(bench, metric, f"{seconds:.3f}", "s", where, when))
    return rows

"""NIfTI, NRRD and MetaImage volumes through SimpleITK, which keeps their geometry exact (LPS)."""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from kintsugi.core import LabelMap, Volume
from kintsugi.io.errors import CorruptFileError, TruncatedFileError, UnsupportedFormatError, WriteError
from kintsugi.io.limits import check_size
from kintsugi.io.sitk_bridge import geometry_of, to_sitk

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
_LABEL_NAME_HINT = re.compile(r"(seg|label|labels|mask|msk|lab|vertebra|teeth)", re.IGNORECASE)

_SITK_PIXEL_BYTES = {
    sitk.sitkUInt8: 1, sitk.sitkInt8: 1, sitk.sitkUInt16: 2, sitk.sitkInt16: 2, sitk.sitkUInt32: 4,
    sitk.sitkInt32: 4, sitk.sitkUInt64: 8, sitk.sitkInt64: 8, sitk.sitkFloat32: 4, sitk.sitkFloat64: 8,
}


def volume_suffix(path: Path) -> str | None:
    name = path.name.lower()
    for s in VOLUME_SUFFIXES:
        if name.endswith(s):
            return s
    return None


def _nifti_precheck(path: Path) -> None:
    """Catch truncation and absurd headers before SimpleITK allocates or reads garbage."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            header = fh.read(352)
    except (OSError, EOFError) as e:
        raise CorruptFileError(path, f"cannot decompress: {e}") from None
    if len(header) < 348:
        raise TruncatedFileError(path, f"NIfTI header is {len(header)} bytes, 348 expected")
    sizeof_hdr_le = struct.unpack("<i", header[:4])[0]
    endian = "<" if sizeof_hdr_le == 348 else ">"
    if struct.unpack(endian + "i", header[:4])[0] != 348:
        raise CorruptFileError(path, "not a NIfTI-1 header (sizeof_hdr is not 348)")
    dims = struct.unpack(endian + "8h", header[40:56])
    ndim = dims[0]
    if not 1 <= ndim <= 7:
        raise CorruptFileError(path, f"NIfTI header has an invalid number of dimensions ({ndim})")
    bitpix = struct.unpack(endian + "h", header[72:74])[0]
    vox_offset = int(struct.unpack(endian + "f", header[108:112])[0])
    n_voxels = int(np.prod([max(1, d) for d in dims[1 : ndim + 1]], dtype=np.float64))
    n_bytes = n_voxels * max(1, bitpix // 8)
    check_size(path, n_bytes, f"the {'x'.join(str(d) for d in dims[1:ndim + 1])} volume")
    if path.name.lower().endswith(".gz"):
        _check_gzip_complete(path, vox_offset + n_bytes)
    else:
        actual = path.stat().st_size
        if actual < vox_offset + n_bytes:
            raise TruncatedFileError(
                path, f"truncated: header promises {vox_offset + n_bytes} bytes, the file has {actual}"
            )


def _check_gzip_complete(path: Path, expected: int) -> None:
    """ITK silently zero-fills a truncated .nii.gz; refuse it instead of showing invented voxels.

    The gzip trailer holds the uncompressed size (mod 2**32): a match is the cheap, common case.
    Otherwise decompress once to be sure (multi-member files legitimately disagree with the trailer).
    """
    with open(path, "rb") as fh:
        fh.seek(-4, 2)
        isize = struct.unpack("<I", fh.read(4))[0]
    if isize == expected % 2**32:
        return
    total = 0
    try:
        with gzip.open(path, "rb") as g:
            while chunk := g.read(1 << 22):
                total += len(chunk)
    except EOFError:
        raise TruncatedFileError(path, "truncated: the compressed stream ends early") from None
    except (OSError, zlib.error) as e:
        raise CorruptFileError(path, f"cannot decompress: {e}") from None
    if total < expected:
        raise TruncatedFileError(path, f"truncated: header promises {expected} bytes, the file holds {total}")


def read_volume(path: str | Path, as_labels: bool | None = None) -> Volume | LabelMap:
    """Read a NIfTI/NRRD/MHA/MHD volume; ``as_labels=None`` guesses label maps from content and name."""
    path = Path(path)
    suffix = volume_suffix(path)
    if suffix in (".nii", ".nii.gz"):
        _nifti_precheck(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise CorruptFileError(path, _sitk_reason(e)) from None
    size = reader.GetSize()
    n_comp = reader.GetNumberOfComponents()
    n_bytes = int(np.prod(size, dtype=np.float64)) * n_comp * _SITK_PIXEL_BYTES.get(reader.GetPixelID(), 8)
    check_size(path, n_bytes, f"the {'x'.join(map(str, size))} volume")
    if reader.GetDimension() not in (2, 3, 4):
        raise UnsupportedFormatError(path, f"{reader.GetDimension()}D images are not supported")
    try:
        img = reader.Execute()
    except RuntimeError as e:
        reason = _sitk_reason(e)
        if "premature" in reason.lower() or "end of file" in reason.lower() or "truncat" in reason.lower():
            raise TruncatedFileError(path, f"truncated: {reason}") from None
        raise CorruptFileError(path, reason) from None
    if img.GetDimension() == 4:
        if img.GetSize()[3] != 1:
            raise UnsupportedFormatError(path, f"4D series ({img.GetSize()[3]} time points) are not supported")
        img = img[:, :, :, 0]
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise UnsupportedFormatError(path, "vector or colour volumes are not supported")
    data = sitk.GetArrayFromImage(img)
    geometry = geometry_of(img)
    meta = {k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys() if len(reader.GetMetaData(k)) < 200}
    name = _stem(path)
    if as_labels is None:
        as_labels = looks_like_labels(data, name, meta)
    common = {"name": name, "metadata": {"source": str(path), "header": meta}}
    if as_labels:
        return LabelMap(data=data, geometry=geometry, **common)
    modality, unit = _guess_modality(data, meta)
    return Volume(data=data, geometry=geometry, modality=modality, unit=unit, **common)


def _stem(path: Path) -> str:
    name = path.name
    s = volume_suffix(path)
    return name[: -len(s)] if s else path.stem


def looks_like_labels(data: np.ndarray, name: str = "", meta: dict | None = None) -> bool:
    """A label map is integer, non-negative, mostly background and has few distinct values."""
    if meta and meta.get("intent_code") == "1002":  # NIFTI_INTENT_LABEL
        return True
    if not np.issubdtype(data.dtype, np.integer) or data.size == 0:
        return False
    step = max(1, data.size // 2_000_000)
    sample = data.reshape(-1)[::step]
    if sample.min() < 0:
        return False
    values = np.unique(sample)
    if len(values) > 256:
        return False
    if _LABEL_NAME_HINT.search(name):
        return True
    # A constant image says nothing; call it a volume unless its name says otherwise.
    return 1 < len(values) <= 64 and float(np.mean(sample == 0)) > 0.5


def _guess_modality(data: np.ndarray, meta: dict) -> tuple[str, str]:
    mod = meta.get("Modality") or meta.get("modality")
    if mod:
        return str(mod), "HU" if str(mod).upper() == "CT" else ""
    if data.size and np.issubdtype(data.dtype, np.number):
        step = max(1, data.size // 1_000_000)
        s = data.reshape(-1)[::step]
        if s.min() <= -900 and s.max() >= 200:
            return "CT", "HU"
    return "unknown", ""


def _sitk_reason(e: Exception) -> str:
    """SimpleITK errors span many lines of C++ context; keep the line that says what went wrong."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        if "Description:" in ln:
            return ln.split("Description:", 1)[1].strip()
    for ln in reversed(lines):
        if not ln.startswith(("sitk::ERROR", "itk::ERROR")):
            return ln
    return lines[-1] if lines else "unreadable"


def write_volume(layer: Volume | LabelMap, path: str | Path, compress: bool = True) -> Path:
    """Write NIfTI (.nii/.nii.gz), NRRD or MHA, atomically (temp file then rename)."""
    path = Path(path)
    suffix = volume_suffix(path)
    if suffix is None or suffix in (".nhdr", ".mhd"):
        raise WriteError(path, "volumes are written as .nii, .nii.gz, .nrrd or .mha")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{_stem(path)}.partial{suffix}")
    try:
        sitk.WriteImage(to_sitk(layer), str(tmp), useCompression=compress and suffix != ".nii")
        tmp.replace(path)
    except RuntimeError as e:
        tmp.unlink(missing_ok=True)
        raise WriteError(path, _sitk_reason(e)) from None
    return path

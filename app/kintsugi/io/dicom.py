"""DICOM: single files (CT/MR slices, radiographs) and series in folders.

pydicom reads headers and decodes pixels (JPEG 2000 through pylibjpeg-openjpeg); when pydicom has no
decoder for a transfer syntax, GDCM (inside SimpleITK) gets a try before we give up with a clear
message. Geometry follows DICOM exactly: ImageOrientationPatient gives the row and column
directions, slices are ordered along their normal by ImagePositionPatient, origin is the first
slice's position; all of it is already LPS, the convention of the data model.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kintsugi.core import Geometry, Image2D, Volume
from kintsugi.io.errors import (
    CorruptFileError,
    EmptyFileError,
    KintsugiIOError,
    TruncatedFileError,
    UnsupportedFormatError,
    UnsupportedTransferSyntaxError,
)
from kintsugi.io.limits import check_size

# Projection radiography and photographs: shown as 2D images, not as one-slice volumes.
PROJECTION_MODALITIES = {"CR", "DX", "MG", "RF", "XA", "IO", "PX", "XC", "GM", "SM", "ES", "OP"}
_HEADER_TAGS = [
    "SeriesInstanceUID", "SeriesDescription", "SeriesNumber", "Modality", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns", "InstanceNumber", "NumberOfFrames",
    "SOPClassUID", "BitsAllocated", "SamplesPerPixel",
]


def is_dicom_file(path: Path) -> bool:
    """DICOM Part 10 files carry 'DICM' after a 128-byte preamble."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _pydicom():
    import pydicom

    return pydicom


def _read_header(path: Path, pixels: bool = False):
    pydicom = _pydicom()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if pixels:
                return pydicom.dcmread(str(path), force=True)
            return pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except Exception as e:
        if path.stat().st_size == 0:
            raise EmptyFileError(path) from None
        text = str(e)
        if "end of file" in text.lower() or "truncat" in text.lower() or isinstance(e, EOFError):
            raise TruncatedFileError(path, f"truncated DICOM ({text[:120]})") from None
        raise CorruptFileError(path, f"cannot parse DICOM: {text[:160]}") from None


def _transfer_syntax(ds):
    pydicom = _pydicom()
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return pydicom.uid.UID(ts) if ts else pydicom.uid.ExplicitVRLittleEndian


def _check_decodable(path: Path, ds) -> str:
    """Return 'pydicom' or 'gdcm', or raise when no decoder can handle the transfer syntax."""
    ts = _transfer_syntax(ds)
    if not ts.is_compressed:
        return "pydicom"
    from pydicom.pixels.decoders.base import get_decoder

    try:
        if get_decoder(ts).is_available:
            return "pydicom"
    except NotImplementedError:
        pass
    if _gdcm_can_decode(path):
        return "gdcm"
    raise UnsupportedTransferSyntaxError(
        path, f"DICOM transfer syntax '{ts.name}' ({ts}) cannot be decoded: no installed decoder could decode it"
    )


def _gdcm_can_decode(path: Path) -> bool:
    import SimpleITK as sitk

    try:
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(str(path))
        reader.Execute()
        return True
    except RuntimeError:
        return False


def _stored_range(ds) -> tuple[int, int]:
    bits = int(getattr(ds, "BitsStored", getattr(ds, "BitsAllocated", 16)))
    if int(getattr(ds, "PixelRepresentation", 0)) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _decode(path: Path, ds, how: str) -> np.ndarray:
    """Stored pixel values (before the modality LUT), shape (frames, rows, cols[, samples])."""
    rows, cols = int(getattr(ds, "Rows", 0)), int(getattr(ds, "Columns", 0))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    spp = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if rows <= 0 or cols <= 0:
        raise CorruptFileError(path, "DICOM has no Rows/Columns: it holds no image")
    check_size(path, rows * cols * frames * spp * 4, f"the {cols}x{rows}x{frames} image")
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise CorruptFileError(path, "DICOM has no pixel data")
    if how == "gdcm":
        import SimpleITK as sitk

        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path), imageIO="GDCMImageIO"))
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        inter = float(getattr(ds, "RescaleIntercept", 0) or 0)
        arr = ((arr - inter) / slope) if (slope != 1 or inter != 0) else arr  # GDCM applied the LUT
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arr = ds.pixel_array
        except Exception as e:
            text = str(e)
            if "length" in text.lower() or "truncat" in text.lower() or "end of" in text.lower():
                raise TruncatedFileError(path, f"pixel data is truncated ({text[:120]})") from None
            raise CorruptFileError(path, f"cannot decode pixel data: {text[:160]}") from None
    arr = np.asarray(arr)
    if frames == 1 and (arr.ndim == 2 or (arr.ndim == 3 and spp > 1)):
        arr = arr[None]
    return arr


def _apply_modality_lut(ds, arr: np.ndarray) -> tuple[np.ndarray, str]:
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    inter = float(getattr(ds, "RescaleIntercept", 0) or 0)
    unit = "HU" if str(getattr(ds, "Modality", "")).upper() == "CT" else str(getattr(ds, "RescaleType", "") or "")
    if slope == 1 and inter == 0:
        return arr, unit
    if slope == 1 and float(inter).is_integer():
        out = arr.astype(np.int32) + int(inter)
        # Headers often claim more stored bits than the data uses; keep int16 whenever the values fit.
        if out.size and out.min() >= -32768 and out.max() <= 32767:
            return out.astype(np.int16), unit
        return out, unit
    return (arr.astype(np.float32) * np.float32(slope) + np.float32(inter)), unit


def _spacing_2d(ds) -> tuple[tuple[float, float], bool]:
    """(x, y) spacing in mm; DICOM PixelSpacing is (row spacing, column spacing)."""
    for tag in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        value = getattr(ds, tag, None)
        if value is not None and len(value) == 2:
            try:
                dy, dx = float(value[0]), float(value[1])
            except (TypeError, ValueError):
                continue
            if dx > 0 and dy > 0:
                return (dx, dy), True
    return (1.0, 1.0), False


def _orientation(ds) -> np.ndarray | None:
    iop = getattr(ds, "ImageOrientationPatient", None)
    if iop is None or len(iop) != 6:
        return None
    r = np.asarray([float(v) for v in iop[:3]])
    c = np.asarray([float(v) for v in iop[3:]])
    if np.linalg.norm(r) < 1e-6 or np.linalg.norm(c) < 1e-6:
        return None
    r, c = r / np.linalg.norm(r), c / np.linalg.norm(c)
    n = np.cross(r, c)
    return np.stack([r, c, n / np.linalg.norm(n)], axis=1)


def _first_number(value: object) -> float:
    """WindowCenter/Width may be multi-valued; the first value is the default window."""
    if isinstance(value, str | bytes) or not hasattr(value, "__getitem__"):
        return float(value)  # type: ignore[arg-type]
    return float(value[0])  # type: ignore[index]


def _window(ds) -> tuple[float, float] | None:
    wc, ww = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
    if wc is None or ww is None:
        return None
    try:
        return _first_number(wc), _first_number(ww)
    except (TypeError, ValueError, IndexError):
        return None


def _meta(ds, path: Path) -> dict:
    keep = ("Modality", "SeriesDescription", "StudyDescription", "BodyPartExamined", "Manufacturer",
            "PhotometricInterpretation", "SeriesInstanceUID", "StudyDate")
    meta = {k: str(getattr(ds, k)) for k in keep if getattr(ds, k, None) not in (None, "")}
    meta["source"] = str(path)
    meta["transfer_syntax"] = _transfer_syntax(ds).name
    w = _window(ds)
    if w:
        meta["window"] = {"center": w[0], "width": w[1]}
    return meta


def read_dicom_file(path: str | Path) -> Volume | Image2D:
    """One DICOM file: a CT/MR slice (or multi-frame stack) as a Volume, a radiograph as an Image2D."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise EmptyFileError(path)
    ds = _read_header(path, pixels=True)
    how = _check_decodable(path, ds)
    arr = _decode(path, ds, how)
    modality = str(getattr(ds, "Modality", "OT") or "OT").upper()
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    spp = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    orientation = _orientation(ds)
    position = getattr(ds, "ImagePositionPatient", None)
    is_projection = modality in PROJECTION_MODALITIES or orientation is None or position is None or spp > 1
    meta = _meta(ds, path)
    if is_projection:
        return _as_image2d(ds, arr, path, modality, photometric, meta)
    data, unit = _apply_modality_lut(ds, arr)
    (sx, sy), _known = _spacing_2d(ds)
    sz = float(getattr(ds, "SpacingBetweenSlices", 0) or getattr(ds, "SliceThickness", 0) or 1.0)
    geometry = Geometry((sx, sy, abs(sz) or 1.0), tuple(float(v) for v in position), orientation)
    return Volume(name=path.stem, data=np.ascontiguousarray(data), geometry=geometry, modality=modality,
                  unit=unit, metadata=meta)


def _as_image2d(ds, arr: np.ndarray, path: Path, modality: str, photometric: str, meta: dict) -> Image2D:
    frames = arr.shape[0]
    if frames != 1:
        raise UnsupportedFormatError(path, f"multi-frame projection images ({frames} frames) are not supported")
    img = arr[0]
    if img.ndim == 3 and photometric.startswith("YBR"):
        from pydicom.pixels import convert_color_space

        img = convert_color_space(img, photometric, "RGB")
    data, unit = (img, "") if img.ndim == 3 else _apply_modality_lut(ds, img)
    if photometric == "MONOCHROME1":
        # MONOCHROME1 means low values are bright; flip so that bone is bright like every other image.
        lo, hi = _stored_range(ds)
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        inter = float(getattr(ds, "RescaleIntercept", 0) or 0)
        total = (lo + hi) * slope + 2 * inter
        data = (total - data.astype(np.float64)).astype(data.dtype) if np.issubdtype(data.dtype, np.integer) else (
            total - data
        )
        meta["monochrome1_inverted"] = True
        if "window" in meta:
            meta["window"]["center"] = total - meta["window"]["center"]
    (sx, sy), known = _spacing_2d(ds)
    meta["pixel_spacing_known"] = known
    return Image2D(name=path.stem, data=np.ascontiguousarray(data), geometry=Geometry((sx, sy), (0.0, 0.0), np.eye(2)),
                   modality="XR" if modality in PROJECTION_MODALITIES - {"XC", "GM", "SM", "ES", "OP"} else modality,
                   unit=unit, metadata=meta)


@dataclass
class SeriesInfo:
    """One series found in a folder, from headers only (cheap to list before loading)."""

    uid: str
    description: str
    modality: str
    files: list[Path] = field(default_factory=list)
    rows: int = 0
    columns: int = 0

    @property
    def n_files(self) -> int:
        return len(self.files)

    def label(self) -> str:
        desc = f" '{self.description}'" if self.description else ""
        return f"{self.modality}{desc}: {self.n_files} file(s), {self.columns}x{self.rows}, UID …{self.uid[-12:]}"


def scan_dicom_folder(folder: str | Path, recursive: bool = True) -> list[SeriesInfo]:
    """Group the DICOM files under ``folder`` into series (same UID, orientation and matrix size)."""
    folder = Path(folder)
    files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.is_file())
    groups: dict[tuple, SeriesInfo] = {}
    for f in files:
        if f.name.upper() == "DICOMDIR" or not is_dicom_file(f):
            continue
        try:
            ds = _read_header(f)
        except KintsugiIOError:
            continue  # a broken file does not hide the rest of the series; reading it reports it
        iop = getattr(ds, "ImageOrientationPatient", None)
        iop_key = tuple(round(float(v), 3) for v in iop) if iop is not None and len(iop) == 6 else None
        uid = str(getattr(ds, "SeriesInstanceUID", "") or f"no-uid:{f.parent}")
        key = (uid, iop_key, int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0))
        if key not in groups:
            groups[key] = SeriesInfo(uid, str(getattr(ds, "SeriesDescription", "") or ""),
                                     str(getattr(ds, "Modality", "OT") or "OT"), rows=key[2], columns=key[3])
        groups[key].files.append(f)
    return sorted(groups.values(), key=lambda s: s.n_files, reverse=True)


def read_dicom_series(folder: str | Path, series: SeriesInfo | None = None) -> Volume | Image2D:
    """Read the largest series of a folder (or the one given); the others are listed in metadata."""
    folder = Path(folder)
    found = scan_dicom_folder(folder)
    if not found:
        raise UnsupportedFormatError(folder, "no readable DICOM files in this folder")
    chosen = series or found[0]
    others = [s.label() for s in found if s is not chosen]
    if chosen.n_files == 1:
        layer = read_dicom_file(chosen.files[0])
        layer.metadata["other_series"] = others
        return layer
    return _stack_series(folder, chosen, others)


def _stack_series(folder: Path, series: SeriesInfo, others: list[str]) -> Volume:
    headers = [(f, _read_header(f, pixels=True)) for f in series.files]
    first = headers[0][1]
    orientation = _orientation(first)
    if orientation is None:
        raise CorruptFileError(series.files[0], "slice has no ImageOrientationPatient; cannot build a volume")
    normal = orientation[:, 2]
    positioned = []
    for f, ds in headers:
        pos = getattr(ds, "ImagePositionPatient", None)
        if pos is None or len(pos) != 3:
            raise CorruptFileError(f, "slice has no ImagePositionPatient; cannot place it in the volume")
        p = np.asarray([float(v) for v in pos])
        positioned.append((float(p @ normal), p, f, ds))
    positioned.sort(key=lambda t: t[0])
    dists = np.array([t[0] for t in positioned])
    notes = []
    keep = [0] + [i for i in range(1, len(dists)) if dists[i] - dists[i - 1] > 1e-3]
    if len(keep) < len(positioned):
        notes.append(f"{len(positioned) - len(keep)} duplicate slice position(s) ignored")
        positioned = [positioned[i] for i in keep]
        dists = dists[keep]
    steps = np.diff(dists)
    sz = float(np.median(steps)) if len(steps) else float(getattr(first, "SliceThickness", 1.0) or 1.0)
    if len(steps) and np.max(np.abs(steps - sz)) > 0.01 * sz + 1e-3:
        notes.append(f"slice spacing is not uniform ({steps.min():.3g}..{steps.max():.3g} mm); the median is used")
    rows, cols = int(first.Rows), int(first.Columns)
    check_size(folder, rows * cols * len(positioned) * 4, f"the {cols}x{rows}x{len(positioned)} series")
    how = _check_decodable(positioned[0][2], first)
    slices = []
    for _, _, f, ds in positioned:
        arr = _decode(f, ds, how if _transfer_syntax(ds) == _transfer_syntax(first) else _check_decodable(f, ds))
        if arr.shape[1:3] != (rows, cols) or arr.shape[0] != 1 or arr.ndim != 3:
            raise CorruptFileError(f, f"slice shape {arr.shape} differs from the series ({rows}x{cols})")
        data, unit = _apply_modality_lut(ds, arr[0])
        slices.append(data)
    dtypes = {s.dtype for s in slices}
    volume = np.stack(slices).astype(np.result_type(*dtypes)) if len(dtypes) > 1 else np.stack(slices)
    (sx, sy), _ = _spacing_2d(first)
    geometry = Geometry((sx, sy, sz), tuple(positioned[0][1]), orientation)
    meta = _meta(first, folder)
    meta.update({"n_files": len(series.files), "other_series": others, "notes": notes})
    modality = str(getattr(first, "Modality", "OT") or "OT")
    return Volume(name=folder.name, data=volume, geometry=geometry, modality=modality, unit=unit, metadata=meta)


def series_summary(series: list[SeriesInfo]) -> dict[str, int]:
    """Count series per modality, for a one-line folder description."""
    counts: dict[str, int] = defaultdict(int)
    for s in series:
        counts[s.modality] += 1
    return dict(counts)

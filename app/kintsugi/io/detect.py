"""Tell what a file holds from its first bytes, and what its name claims.

Content wins over the extension: a PNG saved as ``.nii`` still opens as a PNG (with a note), while
a text file named ``.png`` fails with a message that says so, instead of a decoder's riddle.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

# Formats by extension; ".nii.gz" is checked before ".gz".
_SUFFIX_FORMATS = {
    ".nii.gz": "nifti", ".nii": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "metaimage",
    ".mhd": "metaimage", ".dcm": "dicom", ".dicom": "dicom", ".ima": "dicom", ".png": "png", ".jpg": "jpeg",
    ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp", ".obj": "obj", ".ply": "ply",
    ".stl": "stl", ".off": "off", ".glb": "glb", ".gltf": "gltf", ".json": "json", ".md": "text",
    ".txt": "text", ".rst": "text", ".csv": "text", ".py": "text", ".html": "text", ".yaml": "text",
    ".yml": "text", ".toml": "text", ".cfg": "text",
}
VOLUME_FORMATS = {"nifti", "nrrd", "metaimage"}
IMAGE_FORMATS = {"png", "jpeg", "tiff", "bmp"}
MESH_FORMATS = {"obj", "ply", "stl", "off", "glb", "gltf"}
DATA_FORMATS = VOLUME_FORMATS | IMAGE_FORMATS | MESH_FORMATS | {"dicom"}


def format_from_suffix(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in _SUFFIX_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    if name in ("license", "readme", "copying", "notice", "authors"):
        return "text"
    return None


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # a multi-byte character cut at the end of the sample is fine
            return False
    return True


def _is_nifti_header(h: bytes) -> bool:
    if len(h) < 348:
        return False
    for endian in "<>":
        if struct.unpack(endian + "i", h[:4])[0] == 348:
            return True
    return h[344:348] in (b"n+1\x00", b"ni1\x00")


def _binary_stl(path: Path, head: bytes) -> bool:
    if len(head) < 84:
        return False
    n = struct.unpack("<I", head[80:84])[0]
    return path.stat().st_size == 84 + 50 * n


def format_from_content(path: Path) -> str | None:
    """Sniff the format from the file's first bytes; None when nothing matches."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"BM") and len(head) > 26:
        return "bmp"
    if head.startswith(b"glTF"):
        return "glb"
    if head.startswith(b"NRRD"):
        return "nrrd"
    if head.startswith(b"ply"):
        return "ply"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as g:
                inner = g.read(352)
        except (OSError, EOFError, zlib.error):
            return "gzip"
        return "nifti" if _is_nifti_header(inner) else "gzip"
    if _is_nifti_header(head):
        return "nifti"
    if _looks_like_text(head):
        text = head.decode("utf-8", "ignore")
        stripped = text.lstrip()
        first = stripped.splitlines()[0].strip() if stripped else ""
        if first.startswith(("OFF", "COFF", "NOFF")) and len(first) <= 5:
            return "off"
        if "ObjectType" in text and ("ElementDataFile" in text or "DimSize" in text):
            return "metaimage"
        if stripped.startswith("solid") and "facet" in text:
            return "stl"
        if stripped[:1] in "{[":
            return "json"
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        if lines and sum(ln.startswith(("v ", "vn ", "vt ", "f ", "o ", "g ", "usemtl", "mtllib", "s "))
                         for ln in lines[:50]) >= 0.8 * min(len(lines), 50):
            return "obj"
        return "text"
    if _binary_stl(path, head):
        return "stl"
    return None


def detect_format(path: Path) -> tuple[str | None, str | None]:
    """(format by content, format by extension)."""
    return format_from_content(path), format_from_suffix(path)

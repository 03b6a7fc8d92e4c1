"""Each kind of bad input gives a specific one-line error from the API and from the CLI."""

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dicom_factory import ct_series, with_transfer_syntax  # noqa: E402

from kintsugi.core import Image2D, Mesh, Volume  # noqa: E402
from kintsugi.io import (  # noqa: E402
    CorruptFileError,
    EmptyFileError,
    FileMissingError,
    KintsugiIOError,
    NotADataFileError,
    TooLargeError,
    TruncatedFileError,
    UnsupportedFormatError,
    UnsupportedTransferSyntaxError,
    open_path,
    write_image,
    write_mesh,
    write_volume,
)


def _nifti(tmp_path: Path, name: str = "ct.nii") -> Path:
    return write_volume(Volume(data=np.zeros((20, 30, 40), np.int16)), tmp_path / name)


def _huge_nifti_header(path: Path) -> Path:
    """A valid NIfTI-1 header claiming 30000^3 int16 voxels, with no data behind it."""
    h = bytearray(352)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 3, 30000, 30000, 30000, 1, 1, 1, 1)
    struct.pack_into("<h", h, 70, 4)  # datatype int16
    struct.pack_into("<h", h, 72, 16)  # bitpix
    struct.pack_into("<8f", h, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", h, 108, 352.0)
    h[344:348] = b"n+1\x00"
    path.write_bytes(bytes(h))
    return path


def _cases(tmp_path: Path) -> dict[str, tuple[Path, type[KintsugiIOError], str]]:
    cases = {}
    cases["missing"] = (tmp_path / "nope.nii.gz", FileMissingError, "no such file")
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.nii.gz", EmptyFileError, "empty")
    nii = _nifti(tmp_path)
    (tmp_path / "cut.nii").write_bytes(nii.read_bytes()[:5000])
    cases["truncated nifti"] = (tmp_path / "cut.nii", TruncatedFileError, "truncated")
    gz = write_volume(Volume(data=np.random.default_rng(0).normal(size=(20, 30, 40)).astype(np.float32)),
                      tmp_path / "full.nii.gz")
    (tmp_path / "cut.nii.gz").write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    cases["truncated nifti.gz"] = (tmp_path / "cut.nii.gz", TruncatedFileError, "truncated")
    write_image(np.random.default_rng(0).integers(0, 255, (200, 300, 3)).astype(np.uint8), tmp_path / "p.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "p.png").read_bytes()[:3000])
    cases["truncated png"] = (tmp_path / "cut.png", TruncatedFileError, "truncated")
    (tmp_path / "noise.nii.gz").write_bytes(np.random.default_rng(1).bytes(4000))
    cases["corrupt nifti"] = (tmp_path / "noise.nii.gz", KintsugiIOError, "")
    (tmp_path / "noise.dcm").write_bytes(b"\x00" * 128 + b"DICM" + np.random.default_rng(2).bytes(300))
    cases["corrupt dicom"] = (tmp_path / "noise.dcm", KintsugiIOError, "")
    (tmp_path / "notes.png").write_text("this is not a picture\n")
    cases["text named png"] = (tmp_path / "notes.png", CorruptFileError, "plain text")
    (tmp_path / "blob.xyz").write_bytes(np.random.default_rng(3).bytes(100))
    cases["unknown binary"] = (tmp_path / "blob.xyz", UnsupportedFormatError, "unknown file type")
    (tmp_path / "README.md").write_text("# hello\n")
    cases["document"] = (tmp_path / "README.md", NotADataFileError, "text document")
    files = ct_series(tmp_path / "series", np.zeros((1, 64, 64), np.int16))
    with_transfer_syntax(files[0], tmp_path / "mpeg.dcm", "1.2.840.10008.1.2.4.100")
    cases["unsupported transfer syntax"] = (tmp_path / "mpeg.dcm", UnsupportedTransferSyntaxError, "MPEG2")
    cases["absurdly large nifti"] = (_huge_nifti_header(tmp_path / "huge.nii"), TooLargeError, "would need")
    with gzip.open(tmp_path / "huge.nii.gz", "wb") as fh:
        fh.write(_huge_nifti_header(tmp_path / "h.tmp").read_bytes())
    cases["absurdly large nifti.gz"] = (tmp_path / "huge.nii.gz", TooLargeError, "would need")
    ply = b"ply\nformat binary_little_endian 1.0\nelement vertex 9000000000\nproperty float x\n" \
          b"property float y\nproperty float z\nend_header\n" + b"\x00" * 24
    (tmp_path / "huge.ply").write_bytes(ply)
    cases["absurdly large ply"] = (tmp_path / "huge.ply", TooLargeError, "would need")
    write_mesh(Mesh(vertices=np.random.default_rng(0).normal(size=(300, 3)),
                    faces=np.random.default_rng(0).integers(0, 300, (500, 3))), tmp_path / "m.ply")
    (tmp_path / "cut.ply").write_bytes((tmp_path / "m.ply").read_bytes()[:2000])
    cases["truncated ply"] = (tmp_path / "cut.ply", KintsugiIOError, "")
    return cases


CASE_NAMES = ["missing", "empty", "truncated nifti", "truncated nifti.gz", "truncated png", "corrupt nifti",
              "corrupt dicom", "text named png", "unknown binary", "document", "unsupported transfer syntax",
              "absurdly large nifti", "absurdly large nifti.gz", "absurdly large ply", "truncated ply"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_api_gives_specific_one_line_error(tmp_path, case):
    path, error, words = _cases(tmp_path)[case]
    with pytest.raises(error) as info:
        open_path(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    assert words in message
    assert len(message) < 400


def test_wrong_extension_opens_by_content_with_a_note(tmp_path):
    write_image(Image2D(data=np.full((5, 6), 9, np.uint8)), tmp_path / "photo.png")
    (tmp_path / "photo.nii").write_bytes((tmp_path / "photo.png").read_bytes())
    (img,) = open_path(tmp_path / "photo.nii")
    assert isinstance(img, Image2D) and img.data.shape == (5, 6)
    assert "content is PNG" in img.metadata["warning"]


@pytest.mark.parametrize("case", ["missing", "truncated nifti", "corrupt dicom", "unsupported transfer syntax",
                                  "absurdly large nifti"])
def test_cli_info_exits_non_zero_with_one_line_and_no_traceback(tmp_path, case):
    path, _, words = _cases(tmp_path)[case]
    proc = subprocess.run([sys.executable, "-m", "kintsugi.cli.main", "info", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(path) in lines[0] and words in lines[0]

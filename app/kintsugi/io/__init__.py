"""File I/O: ``open_path`` picks a reader by content and extension; writers for standard formats.

Every reader fails with a :class:`~kintsugi.io.errors.KintsugiIOError` whose message is one line
naming the file and what is wrong, so the CLI and GUI can show it as it is.
"""

from kintsugi.io.errors import (
    CorruptFileError,
    EmptyFileError,
    FileMissingError,
    KintsugiIOError,
    NotADataFileError,
    TooLargeError,
    TruncatedFileError,
    UnsupportedFormatError,
    UnsupportedTransferSyntaxError,
    WriteError,
)
from kintsugi.io.image import read_image, write_image
from kintsugi.io.jsonio import read_json, write_json
from kintsugi.io.mesh import read_mesh, write_mesh
from kintsugi.io.open import open_path, scan_folder
from kintsugi.io.volume import read_volume, write_volume

__all__ = [
    "CorruptFileError",
    "EmptyFileError",
    "FileMissingError",
    "KintsugiIOError",
    "NotADataFileError",
    "TooLargeError",
    "TruncatedFileError",
    "UnsupportedFormatError",
    "UnsupportedTransferSyntaxError",
    "WriteError",
    "open_path",
    "read_image",
    "read_json",
    "read_mesh",
    "read_volume",
    "scan_folder",
    "write_image",
    "write_json",
    "write_mesh",
    "write_volume",
]

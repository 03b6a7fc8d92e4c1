"""Errors a reader raises, each a one-line message naming the file and what is wrong with it.

The CLI prints ``str(error)`` and exits non-zero; the GUI shows the same line. Callers catch
``KintsugiIOError`` and never need to parse a library's traceback.
"""

from __future__ import annotations

from pathlib import Path


class KintsugiIOError(Exception):
    """Base class: ``str(err)`` is ``"<file>: <what is wrong>"``."""

    reason = "cannot be read"

    def __init__(self, path: str | Path, detail: str | None = None) -> None:
        self.path = Path(path)
        self.detail = detail or self.reason
        super().__init__(f"{self.path}: {self.detail}")


class FileMissingError(KintsugiIOError, FileNotFoundError):
    reason = "no such file or folder"


class EmptyFileError(KintsugiIOError):
    reason = "the file is empty (0 bytes)"


class TruncatedFileError(KintsugiIOError):
    reason = "the file is truncated"


class CorruptFileError(KintsugiIOError):
    reason = "the file is corrupt"


class UnsupportedFormatError(KintsugiIOError):
    reason = "not a format Kintsugi can open"


class NotADataFileError(UnsupportedFormatError):
    """A file we recognise but that holds no layer (a README, a licence)."""

    reason = "a document, not a data file"


class UnsupportedTransferSyntaxError(KintsugiIOError):
    reason = "DICOM transfer syntax is not supported"


class TooLargeError(KintsugiIOError):
    reason = "the data is too large to load"


class WriteError(KintsugiIOError):
    reason = "cannot be written"

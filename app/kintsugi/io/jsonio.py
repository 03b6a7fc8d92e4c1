"""JSON that understands numpy values, written atomically so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def dumps(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(obj, default=_default, indent=indent, allow_nan=False)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(obj: Any, path: str | Path, indent: int | None = 2) -> Path:
    return atomic_write_bytes(path, (dumps(obj, indent) + "\n").encode("utf-8"))


def read_json(path: str | Path) -> Any:
    from kintsugi.io.errors import CorruptFileError, EmptyFileError, FileMissingError

    path = Path(path)
    if not path.exists():
        raise FileMissingError(path)
    text = path.read_text(encoding="utf-8", errors="strict")
    if not text.strip():
        raise EmptyFileError(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CorruptFileError(path, f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None

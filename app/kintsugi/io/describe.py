"""``describe_path``: what a path opens as, for ``kintsugi info`` and for scripts (its Python twin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kintsugi.io.errors import FileMissingError, NotADataFileError, UnsupportedFormatError
from kintsugi.io.open import open_path, scan_folder


def describe_path(path: str | Path) -> dict[str, Any]:
    """Open ``path`` and describe each layer; documents and folders of folders are described, not opened.

    Raises KintsugiIOError for files that are broken or unsupported.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileMissingError(path)
    try:
        layers = open_path(path)
    except NotADataFileError as e:
        return {"path": str(path), "kind": "document", "note": e.detail, "layers": []}
    except UnsupportedFormatError:
        if path.is_dir():
            return _describe_folder_of_folders(path)
        raise
    out: dict[str, Any] = {"path": str(path), "kind": "folder" if path.is_dir() else "file", "layers": []}
    for layer in layers:
        facts = layer.describe()
        meta = layer.metadata
        if "warning" in meta:
            facts["warning"] = str(meta["warning"])
        if meta.get("transfer_syntax"):
            facts["transfer syntax"] = meta["transfer_syntax"]
        if meta.get("monochrome1_inverted"):
            facts["display"] = "MONOCHROME1 inverted so that bright = dense"
        if "other_series" in meta:
            facts["series found"] = str(1 + len(meta["other_series"]))
            if meta["other_series"]:
                facts["other series"] = "; ".join(meta["other_series"][:10])
        for note in meta.get("notes", []) or []:
            facts.setdefault("notes", "")
            facts["notes"] = (facts["notes"] + "; " if facts["notes"] else "") + note
        out["layers"].append(facts)
    return out


def _describe_folder_of_folders(path: Path) -> dict[str, Any]:
    contents = scan_folder(path)
    subs = []
    for sub in contents.subfolders:
        c = scan_folder(sub)
        counts = {k: len(getattr(c, k)) for k in ("dicom", "volumes", "images", "meshes", "subfolders")}
        subs.append({"name": sub.name, **{k: v for k, v in counts.items() if v}})
    return {"path": str(path), "kind": "folder", "note": "no data files at this level; open a subfolder",
            "subfolders": subs, "documents": [p.name for p in contents.other], "layers": []}

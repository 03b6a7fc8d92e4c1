"""``open_path``: the one entry point that turns a file or folder into layers.

Readers are chosen by content first and extension second (see ``detect``); folders open as a DICOM
series, as one Fragments layer (a folder of mesh/point-cloud files), or as the data files they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kintsugi.core import Fragment, Fragments, Layer, Mesh, PointCloud, Table
from kintsugi.io.detect import (
    DATA_FORMATS,
    IMAGE_FORMATS,
    MESH_FORMATS,
    VOLUME_FORMATS,
    detect_format,
)
from kintsugi.io.errors import (
    CorruptFileError,
    EmptyFileError,
    FileMissingError,
    KintsugiIOError,
    NotADataFileError,
    UnsupportedFormatError,
)

_NAMES = {"nifti": "NIfTI", "nrrd": "NRRD", "metaimage": "MetaImage", "dicom": "DICOM", "png": "PNG",
          "jpeg": "JPEG", "tiff": "TIFF", "bmp": "BMP", "obj": "OBJ", "ply": "PLY", "stl": "STL", "off": "OFF",
          "glb": "GLB", "gltf": "glTF", "json": "JSON", "text": "text", "gzip": "gzip"}


def resolve_format(path: Path) -> str:
    """The format to read ``path`` as, or a specific error saying why it cannot be read."""
    if not path.exists():
        raise FileMissingError(path)
    if path.stat().st_size == 0:
        raise EmptyFileError(path)
    by_content, by_suffix = detect_format(path)
    if by_content == "text" and by_suffix in DATA_FORMATS | {"json"} and by_suffix not in ("obj", "off", "stl"):
        raise CorruptFileError(path, f"the name says {_NAMES[by_suffix]} but the file holds plain text")
    if by_content == "gzip":
        raise UnsupportedFormatError(path, "a gzip archive that does not hold a NIfTI image")
    if by_content is not None:
        return by_content
    if by_suffix is None:
        raise UnsupportedFormatError(path, "unknown file type (neither its name nor its content is recognised)")
    if by_suffix == "text":
        raise NotADataFileError(path, "a text document, not a data file")
    if by_suffix in ("png", "jpeg", "tiff", "bmp", "glb", "nrrd"):
        # These formats always start with a signature; without it the file is damaged.
        raise CorruptFileError(path, f"the name says {_NAMES[by_suffix]} but the file does not start like one")
    return by_suffix


def open_file(path: str | Path) -> list[Layer]:
    path = Path(path)
    fmt = resolve_format(path)
    _, by_suffix = detect_format(path)
    layers = _read_as(path, fmt)
    if by_suffix and by_suffix != fmt and by_suffix in DATA_FORMATS:
        for layer in layers:
            layer.metadata["warning"] = f"file name says {_NAMES[by_suffix]}, content is {_NAMES[fmt]}"
    return layers


def _read_as(path: Path, fmt: str) -> list[Layer]:
    if fmt in VOLUME_FORMATS:
        from kintsugi.io.volume import read_volume

        return [read_volume(path)]
    if fmt == "dicom":
        from kintsugi.io.dicom import read_dicom_file

        return [read_dicom_file(path)]
    if fmt in IMAGE_FORMATS:
        from kintsugi.io.image import read_image

        return [read_image(path)]
    if fmt in MESH_FORMATS:
        return _read_mesh_named_as(path, fmt)
    if fmt == "json":
        return [_read_json_table(path)]
    if fmt == "text":
        raise NotADataFileError(path, "a text document, not a data file")
    raise UnsupportedFormatError(path, f"{_NAMES.get(fmt, fmt)} files are not supported")


def _read_mesh_named_as(path: Path, fmt: str) -> list[Layer]:
    """trimesh picks its parser by extension; a mislabelled mesh is read through a correctly named link
    in a temporary folder that is removed afterwards. Layers keep the real file as their source."""
    from kintsugi.io.mesh import read_mesh

    if path.suffix.lower() == f".{fmt}":
        return read_mesh(path)
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kintsugi-") as tmp:
        link = Path(tmp) / f"{path.stem}.{fmt}"
        try:
            link.symlink_to(path.resolve())
        except OSError:
            shutil.copyfile(path, link)
        layers = read_mesh(link)
    for layer in layers:
        layer.metadata["source"] = str(path)
    return layers


def _read_json_table(path: Path) -> Table:
    from kintsugi.io.jsonio import read_json

    data = read_json(path)
    records = None
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        records = data
    elif isinstance(data, dict):
        for value in data.values():
            if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
                records = value
                break
    if records is None:
        raise NotADataFileError(path, "JSON without a list of records, nothing to show as a table")
    flat = [{k: v for k, v in r.items() if not isinstance(v, dict | list)} for r in records]
    return Table.from_records(flat, name=path.stem, metadata={"source": str(path), "json": data})


@dataclass
class FolderContents:
    """What a folder holds, sorted by kind, from names and first bytes only."""

    dicom: list[Path] = field(default_factory=list)
    volumes: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    meshes: list[Path] = field(default_factory=list)
    other: list[Path] = field(default_factory=list)
    subfolders: list[Path] = field(default_factory=list)


def scan_folder(folder: Path) -> FolderContents:
    out = FolderContents()
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            out.subfolders.append(p)
            continue
        if p.stat().st_size == 0:
            out.other.append(p)
            continue
        by_content, by_suffix = detect_format(p)
        fmt = by_content or by_suffix
        if fmt == "dicom":
            out.dicom.append(p)
        elif fmt in VOLUME_FORMATS:
            out.volumes.append(p)
        elif fmt in IMAGE_FORMATS:
            out.images.append(p)
        elif fmt in MESH_FORMATS:
            out.meshes.append(p)
        else:
            out.other.append(p)
    return out


def _is_nested_dicom_export(folder: Path, contents: FolderContents) -> bool:
    """PATIENT/STUDY/SERIES exports hold DICOM only in subfolders; a folder of mixed data is not one."""
    if contents.volumes or contents.images or contents.meshes or not contents.subfolders:
        return False
    from kintsugi.io.dicom import is_dicom_file

    found = False
    for p in folder.rglob("*"):
        if not p.is_file() or p.name.startswith("."):
            continue
        if is_dicom_file(p):
            found = True
        elif (detect_format(p)[0] or detect_format(p)[1]) in DATA_FORMATS:
            return False
    return found


def open_folder(folder: Path) -> list[Layer]:
    contents = scan_folder(folder)
    if contents.dicom or _is_nested_dicom_export(folder, contents):
        from kintsugi.io.dicom import read_dicom_series

        return [read_dicom_series(folder)]
    if contents.meshes and not contents.volumes and not contents.images:
        return [read_fragments_folder(folder, contents.meshes)]
    layers: list[Layer] = []
    for p in contents.volumes + contents.images + contents.meshes:
        layers.extend(open_file(p))
    if not layers:
        what = f" (it has {len(contents.subfolders)} subfolder(s); open one of them)" if contents.subfolders else ""
        raise UnsupportedFormatError(folder, f"the folder holds no file Kintsugi can open{what}")
    return layers


def read_fragments_folder(folder: Path, files: list[Path] | None = None) -> Fragments:
    """Each mesh or point-cloud file of the folder is one piece, at identity pose (file coordinates)."""
    from kintsugi.io.mesh import read_mesh

    files = files if files is not None else scan_folder(folder).meshes
    items = []
    for f in files:
        for layer in read_mesh(f):
            if isinstance(layer, Fragments):
                items.extend(Fragment(f"{f.stem}/{it.name}", it.geometry, it.pose, source=str(f)) for it in layer)
            elif isinstance(layer, Mesh | PointCloud):
                items.append(Fragment(f.stem, layer, source=str(f)))
    if not items:
        raise UnsupportedFormatError(folder, "no mesh or point-cloud files in the folder")
    return Fragments(name=folder.name, items=items, metadata={"source": str(folder)})


def open_path(path: str | Path) -> list[Layer]:
    """Open a file or folder as layers, choosing the reader by content and extension.

    Raises a :class:`KintsugiIOError` whose message names the file and what is wrong.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileMissingError(path)
    from kintsugi.workspace import looks_like_workspace

    if looks_like_workspace(path):  # a saved workspace opens as the layers it holds
        from kintsugi.workspace import open_workspace

        return open_workspace(path)[0]
    try:
        if path.is_dir():
            return open_folder(path)
        return open_file(path)
    except KintsugiIOError:
        raise
    except MemoryError:
        from kintsugi.io.errors import TooLargeError

        raise TooLargeError(path, "ran out of memory while reading") from None
    except PermissionError:
        raise KintsugiIOError(path, "permission denied") from None
    except Exception as e:  # a reader bug or a library surprise still becomes one clear line
        raise CorruptFileError(path, f"cannot be read: {type(e).__name__}: {str(e)[:160]}") from None

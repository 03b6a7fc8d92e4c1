"""The workspace format: layers <-> entries of ``workspace.json`` plus one standard data file each.

A workspace is a folder (or a zip of that folder)::

    workspace.json            format name + version, kintsugi version, time, layers, extra (view state)
    data/000-ct.nii.gz        volumes and label maps (NIfTI, dtype kept)
    data/001-photo.png        images: PNG for 8-bit grey/RGB/RGBA and 16-bit grey, TIFF otherwise
    data/002-skull.npz        meshes and point clouds: numpy arrays, float64 kept (no pickle)
    data/003-pieces/000-a.npz fragments: one file per piece, poses in workspace.json
    data/004-heights.json     tables

``workspace.json`` is the authority for everything a file format would round (geometry in float64,
poses, names, colours); the data files hold the arrays and open in any other tool. Nothing is ever
pickled: a metadata value JSON cannot hold is dropped and the drop is noted in the manifest.

Encoding is split from writing (:class:`EncodedLayer` holds the manifest entry and the pending file
writes) so the autosave can take a snapshot quickly and write it on another thread.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import numpy as np

from kintsugi.core import (
    Fragment,
    Fragments,
    Geometry,
    Image2D,
    LabelInfo,
    LabelMap,
    Layer,
    Mesh,
    PointCloud,
    Provenance,
    Table,
    Volume,
)
from kintsugi.io.errors import KintsugiIOError

log = logging.getLogger("kintsugi.workspace")

FORMAT_NAME = "kintsugi-workspace"
FORMAT_VERSION = 1
MANIFEST = "workspace.json"
DATA_DIR = "data"

# What a layer's ``changed`` signal may name without its data files needing a rewrite: these live in
# workspace.json only. Anything else (``data``, ``geometry``, ``items``, names we do not know) does.
MANIFEST_ONLY_CHANGES = frozenset(
    {"name", "visible", "opacity", "metadata", "provenance", "labels", "color", "unit", "modality", "pose",
     "colormap", "contrast"}
)
DISPLAY_ATTRS = ("colormap", "contrast")  # per-type display state, stored under the entry's "display"


def _apply_display(layer: Layer, display: dict[str, Any]) -> None:
    """Restore colormap and contrast; a bad value is ignored (display state is never worth failing a load)."""
    for key in DISPLAY_ATTRS:
        if key in display and hasattr(layer, key):
            value = display[key]
            try:
                layer.set(**{key: None if value is None else (tuple(float(v) for v in value)
                                                              if key == "contrast" else str(value))})
            except (TypeError, ValueError):
                log.warning("workspace: ignoring bad %s %r of layer %r", key, value, layer.name)


class WorkspaceError(KintsugiIOError):
    """A workspace cannot be saved or opened; ``str(err)`` is one line naming the file and the problem."""

    reason = "is not a valid Kintsugi workspace"

    def __init__(self, path: str | Path, detail: str | None = None, file: str | None = None) -> None:
        self.file = file
        if detail is not None:
            detail = " ".join(detail.split())  # one line, whatever a library put in its message
        super().__init__(path, f"{file}: {detail}" if file and detail else detail)


# ---------------------------------------------------------------------------------------------- JSON

_DROP = object()
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _float(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {"$float": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def to_json(value: Any, where: str, notes: list[str]) -> Any:
    """A JSON-able copy of ``value``, or ``_DROP`` (noted) when it cannot be one. Never pickles.

    numpy scalars and numeric arrays become numbers and lists, paths become strings, tuples lists;
    non-finite floats are tagged ``{"$float": "nan"}``. A dict drops only its bad entries; a list
    is kept whole or dropped whole (dropping one element would shift the others).
    """
    if value is None or isinstance(value, (bool, str)):
        return str(value) if isinstance(value, str) else value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _float(float(value))
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return to_json(value.tolist(), where, notes)
        notes.append(f"{where}: {value.dtype} array is not JSON-able, dropped")
        return _DROP
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                notes.append(f"{where}: key {k!r} is not a string, dropped")
                continue
            j = to_json(v, f"{where}[{k!r}]", notes)
            if j is not _DROP:
                out[k] = j
        return out
    if isinstance(value, (list, tuple)):
        items = []
        for i, v in enumerate(value):
            j = to_json(v, f"{where}[{i}]", notes)
            if j is _DROP:
                return _DROP
            items.append(j)
        return items
    notes.append(f"{where}: {type(value).__name__} is not JSON-able, dropped")
    return _DROP


def from_json(value: Any) -> Any:
    """Undo the tagging of :func:`to_json` (non-finite floats)."""
    if isinstance(value, dict):
        if len(value) == 1 and "$float" in value and value["$float"] in _NONFINITE:
            return _NONFINITE[value["$float"]]
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------------------ encoding


@dataclass
class PendingFile:
    """One data file of a layer: where it goes and how to write it (or which file to link instead)."""

    role: str  # unique within the layer: "data", "piece0", ...
    rel: str  # path inside the workspace, POSIX style
    write: Callable[[Path], None]
    link_from: Path | None = None  # an identical file from an earlier save (autosave reuse)


@dataclass
class EncodedLayer:
    entry: dict[str, Any]
    files: list[PendingFile] = field(default_factory=list)


def _slug(name: str, fallback: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:40]
    return s or fallback


def _arr(a: np.ndarray, copy: bool) -> np.ndarray:
    return np.array(a, copy=True) if copy else a


def _common(layer: Layer, kind: str, where: str, notes: list[str]) -> dict[str, Any]:
    meta = to_json(layer.metadata, f"{where} metadata", notes)
    prov = None
    if layer.provenance is not None:
        p = layer.provenance
        raw = {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}
        prov = to_json(raw, f"{where} provenance", notes)
    entry = {
        "type": kind,
        "name": str(layer.name),
        "visible": bool(layer.visible),
        "opacity": float(layer.opacity),
        "metadata": meta if isinstance(meta, dict) else {},
        "provenance": prov if isinstance(prov, dict) else None,
    }
    display = {key: getattr(layer, key) for key in DISPLAY_ATTRS if hasattr(layer, key)}
    if display:
        entry["display"] = {k: (None if v is None else [float(x) for x in v]) if k == "contrast" else v
                            for k, v in display.items()}
    return entry


def _native(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype


def _write_grid(data: np.ndarray, geometry: Geometry, path: Path) -> None:
    import SimpleITK as sitk

    if data.dtype == np.float16:
        data = data.astype(np.float32)  # NIfTI has no half floats; the manifest dtype restores it exactly
    img = sitk.GetImageFromArray(np.ascontiguousarray(data, dtype=_native(data.dtype)))
    img.SetSpacing(geometry.spacing)
    img.SetOrigin(geometry.origin)
    img.SetDirection(tuple(float(v) for v in geometry.direction.ravel()))
    sitk.WriteImage(img, str(path), True)


def _image_suffix(data: np.ndarray) -> str:
    if data.dtype in (np.uint8, np.bool_) or (data.dtype == np.uint16 and data.ndim == 2):
        return ".png"
    return ".tif"


def _write_image(data: np.ndarray, path: Path) -> None:
    from kintsugi.io import write_image

    write_image(data, path)


def _write_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    for key, a in arrays.items():  # np.savez would pickle object arrays; refuse rather than do that
        if a.dtype.hasobject:
            raise ValueError(f"array {key!r} holds Python objects")
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _write_table(doc: dict[str, Any], path: Path) -> None:
    path.write_bytes(dumps(doc))


def _geometry_arrays(
    layer: Mesh | PointCloud, where: str, notes: list[str], copy: bool
) -> tuple[dict[str, np.ndarray], list[str]]:
    arrays: dict[str, np.ndarray] = {}
    if isinstance(layer, Mesh):
        arrays["vertices"] = _arr(layer.vertices, copy)
        arrays["faces"] = _arr(layer.faces, copy)
        if layer.normals is not None:
            arrays["normals"] = _arr(np.asarray(layer.normals), copy)
    else:
        arrays["points"] = _arr(layer.points, copy)
        for attr in ("normals", "colors"):
            value = getattr(layer, attr)
            if value is None:
                continue
            if np.asarray(value).dtype.hasobject:
                notes.append(f"{where} {attr}: object array is not storable, dropped")
                continue
            arrays[attr] = _arr(np.asarray(value), copy)
    names = []
    for key, values in layer.scalars.items():
        a = np.asarray(values)
        if a.dtype.hasobject:
            notes.append(f"{where} scalar {key!r}: object array is not storable, dropped")
            continue
        arrays[f"scalar{len(names)}"] = _arr(a, copy)
        names.append(str(key))
    return arrays, names


def _encode_geometry(layer: Mesh | PointCloud, rel: str, role: str, where: str, notes: list[str],
                     copy: bool) -> EncodedLayer:
    kind = "mesh" if isinstance(layer, Mesh) else "points"
    entry = _common(layer, kind, where, notes)
    arrays, names = _geometry_arrays(layer, where, notes, copy)
    entry.update({
        "unit": str(layer.unit),
        "color": None if layer.color is None else [int(c) for c in layer.color],
        "scalars": names,
        "arrays": {k: {"shape": list(a.shape), "dtype": str(a.dtype)} for k, a in arrays.items()},
        "files": {"data": rel},
    })
    return EncodedLayer(entry, [PendingFile(role, rel, lambda p: _write_npz(arrays, p))])


def encode_layer(layer: Layer, index: int, notes: list[str], copy: bool = False) -> EncodedLayer | None:
    """The manifest entry and pending data files of ``layer``, the ``index``-th of the workspace.

    ``copy=True`` copies every array, so the result stays valid while the layer keeps changing
    (the autosave's snapshot). Returns None, with a note, for a layer type the format does not know.
    """
    where = f"layer {index} ({layer.name!r})"
    stem = f"{DATA_DIR}/{index:03d}-{_slug(layer.name, layer.kind)}"
    if isinstance(layer, (Volume, LabelMap)):
        kind = "labels" if isinstance(layer, LabelMap) else "volume"
        data, geometry = _arr(layer.data, copy), layer.geometry
        entry = _common(layer, kind, where, notes)
        entry.update({"geometry": geometry.to_dict(), "dtype": str(_native(data.dtype)), "shape": list(data.shape)})
        if isinstance(layer, Volume):
            entry.update({"modality": str(layer.modality), "unit": str(layer.unit)})
        else:
            entry["labels"] = [
                {"value": int(v), "name": str(info.name), "color": [int(c) for c in info.color]}
                for v, info in sorted(layer.labels.items())
            ]
        rel = stem + ".nii.gz"
        entry["files"] = {"data": rel}
        return EncodedLayer(entry, [PendingFile("data", rel, lambda p: _write_grid(data, geometry, p))])
    if isinstance(layer, Image2D):
        data = _arr(layer.data, copy)
        entry = _common(layer, "image", where, notes)
        rel = stem + _image_suffix(data)
        entry.update({
            "geometry": layer.geometry.to_dict(), "modality": str(layer.modality), "unit": str(layer.unit),
            "dtype": str(_native(data.dtype)), "shape": list(data.shape), "files": {"data": rel},
        })
        return EncodedLayer(entry, [PendingFile("data", rel, lambda p: _write_image(data, p))])
    if isinstance(layer, (Mesh, PointCloud)):
        return _encode_geometry(layer, stem + ".npz", "data", where, notes, copy)
    if isinstance(layer, Fragments):
        entry = _common(layer, "fragments", where, notes)
        items, files = [], []
        for k, frag in enumerate(layer.items):
            rel = f"{stem}/{k:03d}-{_slug(frag.name, 'piece')}.npz"
            piece = _encode_geometry(frag.geometry, rel, f"piece{k}", f"{where} piece {frag.name!r}", notes, copy)
            items.append({"name": str(frag.name), "pose": np.asarray(frag.pose, dtype=float).tolist(),
                          "source": None if frag.source is None else str(frag.source), "geometry": piece.entry})
            files.extend(piece.files)
        entry.update({"unit": str(layer.unit), "items": items, "files": {f.role: f.rel for f in files}})
        return EncodedLayer(entry, files)
    if isinstance(layer, Table):
        columns = {}
        for name, values in layer.columns.items():
            cells = []
            for i, v in enumerate(values):
                j = to_json(v, f"{where} column {name!r} row {i}", notes)
                cells.append(None if j is _DROP else j)
            columns[str(name)] = cells
        rel = stem + ".json"
        entry = _common(layer, "table", where, notes)
        entry.update({"n_rows": layer.n_rows, "files": {"data": rel}})
        doc = {"columns": columns}
        return EncodedLayer(entry, [PendingFile("data", rel, lambda p: _write_table(doc, p))])
    notes.append(f"{where}: {type(layer).__name__} layers are not saved in workspaces")
    return None


# ------------------------------------------------------------------------------------------ decoding


class _Reader:
    """Turns manifest entries back into layers, reading data files from ``root`` (an extracted copy
    for zips); errors name ``workspace`` (what the user opened) and the file inside it."""

    def __init__(self, root: Path, workspace: Path) -> None:
        self.root = root
        self.workspace = workspace

    def error(self, detail: str, file: str | None = None) -> WorkspaceError:
        return WorkspaceError(self.workspace, detail, file=file)

    def file(self, entry: dict[str, Any], role: str = "data") -> tuple[str, Path]:
        rel = entry["files"][role]
        check_rel(rel, self.workspace)
        path = self.root / rel
        if not path.is_file():
            raise self.error("missing: listed in workspace.json but not in the workspace", file=rel)
        return rel, path

    def read(self, entry: dict[str, Any], where: str) -> Layer:
        kind = entry["type"]
        decode = {
            "volume": self._grid, "labels": self._grid, "image": self._image, "mesh": self._geometry,
            "points": self._geometry, "fragments": self._fragments, "table": self._table,
        }.get(kind)
        if decode is None:
            raise self.error(f"{where}: unknown layer type {kind!r}", file=MANIFEST)
        layer = decode(entry, where)
        display = entry.get("display")
        if isinstance(display, dict):
            _apply_display(layer, display)
        return layer

    @staticmethod
    def _common(entry: dict[str, Any]) -> dict[str, Any]:
        prov = entry.get("provenance")
        if prov is not None:
            known = {f.name for f in dataclasses.fields(Provenance)}
            prov = Provenance.from_dict({k: v for k, v in from_json(prov).items() if k in known})
        return {
            "name": str(entry["name"]),
            "visible": bool(entry.get("visible", True)),
            "opacity": float(entry.get("opacity", 1.0)),
            "metadata": from_json(dict(entry.get("metadata") or {})),
            "provenance": prov,
        }

    def _check_array(self, data: np.ndarray, entry: dict[str, Any], rel: str) -> np.ndarray:
        shape = tuple(int(s) for s in entry["shape"])
        if tuple(data.shape) != shape:
            raise self.error(f"holds an array of shape {tuple(data.shape)}, workspace.json says {shape}", file=rel)
        dtype = np.dtype(entry["dtype"])
        return data if data.dtype == dtype else data.astype(dtype)

    def _grid(self, entry: dict[str, Any], where: str) -> Layer:
        from kintsugi.io import read_volume

        rel, path = self.file(entry)
        labels = entry["type"] == "labels"
        try:
            layer = read_volume(path, as_labels=labels)
        except KintsugiIOError as e:
            raise self.error(e.detail, file=rel) from None
        layer.data = self._check_array(layer.data, entry, rel)
        saved = Geometry.from_dict(entry["geometry"])
        g = layer.geometry
        # NIfTI stores geometry in float32; the manifest's float64 copy is exact. A clear disagreement
        # means the file was replaced by another tool: then the file is what matches the voxels.
        if (np.allclose(g.spacing, saved.spacing, rtol=1e-5, atol=1e-6)
                and np.allclose(g.origin, saved.origin, rtol=1e-5, atol=1e-4)
                and np.allclose(g.direction, saved.direction, atol=1e-5)):
            layer.geometry = saved
        else:
            log.warning("%s: %s: geometry differs from workspace.json; using the file's", self.workspace, rel)
        for key, value in self._common(entry).items():
            setattr(layer, key, value)
        if labels:
            auto = layer.labels
            layer.labels = {int(d["value"]): LabelInfo(str(d["name"]), tuple(int(c) for c in d["color"]))
                            for d in entry.get("labels", [])}
            for value, info in auto.items():
                layer.labels.setdefault(value, info)
        else:
            layer.modality = str(entry.get("modality", "unknown"))
            layer.unit = str(entry.get("unit", ""))
        return layer

    def _image(self, entry: dict[str, Any], where: str) -> Layer:
        from kintsugi.io import read_image

        rel, path = self.file(entry)
        try:
            image = read_image(path)
        except KintsugiIOError as e:
            raise self.error(e.detail, file=rel) from None
        data = self._check_array(image.data, entry, rel)
        return Image2D(data=data, geometry=Geometry.from_dict(entry["geometry"]),
                       modality=str(entry.get("modality", "photo")), unit=str(entry.get("unit", "")),
                       **self._common(entry))

    def _geometry(self, entry: dict[str, Any], where: str) -> Mesh | PointCloud:
        rel, path = self.file(entry)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as e:  # BadZipFile, ValueError (pickled data), OSError, EOFError
            raise self.error(f"cannot read the arrays ({type(e).__name__}: {e})", file=rel) from None
        for key, spec in entry.get("arrays", {}).items():
            if key not in arrays:
                raise self.error(f"array {key!r} is missing", file=rel)
            arrays[key] = self._check_array(arrays[key], spec, rel)
        scalars = {}
        for i, name in enumerate(entry.get("scalars", [])):
            if f"scalar{i}" not in arrays:
                raise self.error(f"scalar {name!r} is missing", file=rel)
            scalars[str(name)] = arrays[f"scalar{i}"]
        color = entry.get("color")
        common = {**self._common(entry), "scalars": scalars, "unit": str(entry.get("unit", "mm")),
                  "color": None if color is None else tuple(int(c) for c in color)}
        try:
            if entry["type"] == "mesh":
                return Mesh(vertices=arrays["vertices"], faces=arrays["faces"], normals=arrays.get("normals"),
                            **common)
            return PointCloud(points=arrays["points"], normals=arrays.get("normals"), colors=arrays.get("colors"),
                              **common)
        except (KeyError, ValueError) as e:
            raise self.error(f"not a valid {entry['type']}: {e}", file=rel) from None

    def _fragments(self, entry: dict[str, Any], where: str) -> Layer:
        items = []
        for k, item in enumerate(entry["items"]):
            geom_entry = item["geometry"]
            if geom_entry.get("type") not in ("mesh", "points"):
                raise self.error(f"{where} piece {k}: unknown piece type {geom_entry.get('type')!r}", file=MANIFEST)
            geometry = self._geometry(geom_entry, f"{where} piece {k}")
            try:
                items.append(Fragment(str(item["name"]), geometry, np.asarray(item["pose"], dtype=float),
                                      source=item.get("source")))
            except ValueError as e:
                raise self.error(f"{where} piece {item['name']!r}: {e}", file=MANIFEST) from None
        return Fragments(items=items, unit=str(entry.get("unit", "mm")), **self._common(entry))

    def _table(self, entry: dict[str, Any], where: str) -> Layer:
        rel, path = self.file(entry)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            columns = from_json(doc["columns"])
            if not isinstance(columns, dict):
                raise TypeError("columns is not an object")
        except (ValueError, KeyError, TypeError) as e:
            raise self.error(f"not a valid table ({type(e).__name__}: {e})", file=rel) from None
        try:
            return Table(columns=columns, **self._common(entry))
        except ValueError as e:
            raise self.error(str(e), file=rel) from None


def check_rel(rel: Any, workspace: Path) -> str:
    """A data file name from the manifest must stay inside the workspace."""
    p = PurePosixPath(rel) if isinstance(rel, str) else None
    if p is None or not rel or p.is_absolute() or ".." in p.parts or "\\" in rel or ":" in rel:
        raise WorkspaceError(workspace, f"unsafe data file name {rel!r}", file=MANIFEST)
    return rel


def check_manifest(doc: Any, workspace: Path) -> dict[str, Any]:
    """Validate the header of a parsed ``workspace.json``; return it."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise WorkspaceError(workspace, f"not a Kintsugi workspace manifest (format {found!r})", file=MANIFEST)
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise WorkspaceError(workspace, f"unknown format version {version!r}", file=MANIFEST)
    if version > FORMAT_VERSION:
        raise WorkspaceError(
            workspace, f"format version {version} is newer than this Kintsugi reads (up to {FORMAT_VERSION}); "
            "update Kintsugi to open it", file=MANIFEST)
    if not isinstance(doc.get("layers"), list) or not isinstance(doc.get("extra", {}), dict):
        raise WorkspaceError(workspace, "malformed: 'layers' must be a list and 'extra' an object", file=MANIFEST)
    return doc


def decode_layers(doc: dict[str, Any], root: Path, workspace: Path) -> list[Layer]:
    reader = _Reader(root, workspace)
    layers = []
    for i, entry in enumerate(doc["layers"]):
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"layer {i} ({name!r})"
        try:
            layers.append(reader.read(entry, where))
        except WorkspaceError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            detail = f"missing key {e}" if isinstance(e, KeyError) else str(e)
            raise WorkspaceError(workspace, f"{where}: malformed entry: {detail}", file=MANIFEST) from None
    return layers

"""What a task returns, and how its outputs are written to a folder.

``TaskResult.layers`` go to the scene (GUI) or to files; ``files`` name the exact output files a task
promises (``{"teeth.json": records, "teeth_labels.nii.gz": labels}``); ``summary`` holds the few key
numbers a batch table shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kintsugi.core import Fragments, Image2D, LabelMap, Layer, Mesh, PointCloud, Provenance, Table, Volume


@dataclass
class TaskResult:
    layers: list[Layer] = field(default_factory=list)
    files: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance | None = None

    @classmethod
    def coerce(cls, value: Any) -> TaskResult:
        """Accept what a simple task naturally returns: a layer, a list of layers, a dict, or None."""
        if isinstance(value, TaskResult):
            return value
        if value is None:
            return cls()
        if isinstance(value, Layer):
            return cls(layers=[value])
        if isinstance(value, list | tuple) and all(isinstance(v, Layer) for v in value):
            return cls(layers=list(value))
        if isinstance(value, dict):
            return cls(summary=value)
        raise TypeError(f"a task must return a TaskResult, layers, a dict or None, not {type(value).__name__}")


_DEFAULT_SUFFIX = {Volume: ".nii.gz", LabelMap: ".nii.gz", Image2D: ".png", Mesh: ".ply", PointCloud: ".ply",
                   Table: ".csv"}


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep or "layer"


def write_object(obj: Any, path: Path) -> Path:
    from kintsugi.io import write_image, write_json, write_mesh, write_volume
    from kintsugi.io.jsonio import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(obj, Volume | LabelMap):
        return write_volume(obj, path)
    if isinstance(obj, Image2D):
        return write_image(obj, path)
    if isinstance(obj, Mesh | PointCloud):
        return write_mesh(obj, path)
    if isinstance(obj, Table):
        if path.suffix == ".csv":
            obj.to_csv(path)
            return path
        return write_json(obj.records(), path)
    if isinstance(obj, Fragments):
        path.mkdir(parents=True, exist_ok=True)
        records = []
        for frag in obj:
            f = write_mesh(frag.geometry, path / f"{_safe_name(frag.name)}.ply")
            records.append({"file": f.name, "transform": frag.pose.tolist()})
        write_json({"fragments": records}, path / "assembly.json")
        return path
    if isinstance(obj, bytes):
        return atomic_write_bytes(path, obj)
    if isinstance(obj, str) and path.suffix not in (".json",):
        return atomic_write_bytes(path, obj.encode("utf-8"))
    return write_json(obj, path)


def write_result(result: TaskResult, out_dir: str | Path) -> list[Path]:
    """Write the promised files (or each layer under its name) plus provenance.json; returns the paths."""
    from kintsugi.io import write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if result.files:
        for rel, obj in result.files.items():
            target = (out / rel).resolve()
            if out.resolve() not in target.parents and target != out.resolve():
                raise ValueError(f"output file {rel!r} would be written outside {out}")
            written.append(write_object(obj, target))
    else:
        for layer in result.layers:
            suffix = _DEFAULT_SUFFIX.get(type(layer), "")
            written.append(write_object(layer, out / f"{_safe_name(layer.name)}{suffix}"))
    meta: dict[str, Any] = {"summary": result.summary}
    if result.provenance is not None:
        meta["provenance"] = result.provenance.to_dict()
    meta["files"] = [str(p.relative_to(out)) for p in written]
    written.append(write_json(meta, out / "provenance.json"))
    return written

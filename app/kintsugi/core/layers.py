"""Layer types: every piece of data the workbench shows or computes on.

Layers validate their data on construction so a bad file fails at the reader with a clear message
instead of deep inside a viewer. Each layer announces edits through ``changed`` (a psygnal signal
carrying the name of what changed), which is how the Scene, the GUI and the autosave stay in step
without knowing about each other.
"""

from __future__ import annotations

import csv
import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from psygnal import Signal

from kintsugi.core.geometry import Geometry

# A qualitative palette (Glasbey-like) so neighbouring labels and fragments never share a colour.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128),
)


def palette_color(i: int) -> tuple[int, int, int]:
    return PALETTE[i % len(PALETTE)]


@dataclass
class Provenance:
    """How a result layer came to be, so a number on screen can always be traced and reproduced."""

    task: str
    plugin: str = ""
    plugin_version: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str | None = None
    device: str = "cpu"
    duration_s: float = 0.0
    inputs: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provenance:
        return cls(**d)


@dataclass(eq=False, kw_only=True, repr=False)
class Layer:
    """Common state of all layers: a name, display state, free metadata and optional provenance."""

    kind: ClassVar[str] = "layer"
    changed: ClassVar[Signal] = Signal(str)

    name: str = ""
    visible: bool = True
    opacity: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance | None = None

    def __post_init__(self) -> None:
        if not self.name:
            self.name = self.kind
        if not 0.0 <= float(self.opacity) <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {self.opacity}")
        self.validate()

    def validate(self) -> None:
        """Raise ValueError when the data cannot be what this layer type claims."""

    def __getstate__(self) -> dict[str, Any]:
        # Connections to views belong to this process; a copy sent to a worker starts unconnected.
        return {k: v for k, v in self.__dict__.items() if k != "changed"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # Display state: changing it never needs the data re-validated (which for a big label map means a
    # full np.unique) -- an opacity slider or an undo must stay instant.
    _DISPLAY_ATTRS: ClassVar[frozenset[str]] = frozenset(
        {"name", "visible", "opacity", "color", "metadata", "provenance", "colormap", "contrast"})

    def set(self, **changes: Any) -> None:
        """Change attributes and announce each one; the only mutation path views need to watch.

        Invalid changes raise and leave the layer as it was.
        """
        for key in changes:
            if not hasattr(self, key):
                raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")
        if "opacity" in changes and not 0.0 <= float(changes["opacity"]) <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {changes['opacity']}")
        if changes.get("contrast") is not None:
            lo, hi = (float(v) for v in changes["contrast"])
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise ValueError(f"contrast needs finite low < high, got {changes['contrast']}")
            changes["contrast"] = (lo, hi)
        before = {key: getattr(self, key) for key in changes}
        for key, value in changes.items():
            setattr(self, key, value)
        if set(changes) - self._DISPLAY_ATTRS:
            try:
                self.validate()
            except Exception:
                for key, value in before.items():
                    setattr(self, key, value)
                raise
        for key in changes:
            self.changed.emit(key)

    def describe(self) -> dict[str, str]:
        """Human-readable facts for ``kintsugi info`` and the Layers dock."""
        return {"type": type(self).__name__, "name": self.name}

    def __repr__(self) -> str:
        facts = ", ".join(f"{k}={v}" for k, v in self.describe().items() if k not in ("type",))
        return f"{type(self).__name__}({facts})"


def _value_range(a: np.ndarray) -> str:
    if a.size == 0:
        return "empty"
    lo, hi = np.min(a), np.max(a)
    if np.issubdtype(a.dtype, np.floating):
        return f"{float(lo):.4g} .. {float(hi):.4g}"
    return f"{int(lo)} .. {int(hi)}"


def _fmt_tuple(values: tuple[float, ...], unit: str = "") -> str:
    return " x ".join(f"{v:.4g}" for v in values) + (f" {unit}" if unit else "")


@dataclass(eq=False, kw_only=True, repr=False)
class _GridLayer(Layer):
    """A voxel grid (3D) with physical geometry; Volume and LabelMap share it."""

    data: np.ndarray
    geometry: Geometry = field(default_factory=Geometry)

    def validate(self) -> None:
        if not isinstance(self.data, np.ndarray):
            self.data = np.asarray(self.data)
        if self.data.ndim != 3:
            raise ValueError(f"{type(self).__name__} needs a 3D array (z, y, x), got shape {self.data.shape}")
        if self.geometry.ndim != 3:
            raise ValueError(f"{type(self).__name__} needs 3D geometry, got {self.geometry.ndim}D")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def size_xyz(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[::-1])  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.geometry.spacing

    def describe(self) -> dict[str, str]:
        g = self.geometry
        d = super().describe()
        d.update(
            {
                "size (x, y, z)": " x ".join(str(s) for s in self.size_xyz),
                "spacing (x, y, z)": _fmt_tuple(g.spacing, "mm"),
                "origin (LPS)": _fmt_tuple(g.origin, "mm"),
                "orientation": g.orientation_code() + (" (oblique)" if g.is_oblique() else ""),
                "dtype": str(self.data.dtype),
                "value range": _value_range(self.data),
            }
        )
        return d


@dataclass(eq=False, kw_only=True, repr=False)
class Volume(_GridLayer):
    """A scalar 3D image: CT, CBCT, MR. ``unit`` is what the values mean (``HU`` for CT)."""

    kind: ClassVar[str] = "volume"
    modality: str = "unknown"
    unit: str = ""
    colormap: str = "gray"  # display: a napari colormap name
    contrast: tuple[float, float] | None = None  # display: value range mapped to the colormap; None = automatic

    def validate(self) -> None:
        super().validate()
        if not (np.issubdtype(self.data.dtype, np.number) and not np.iscomplexobj(self.data)):
            raise ValueError(f"Volume data must be real numbers, got {self.data.dtype}")

    def describe(self) -> dict[str, str]:
        d = super().describe()
        d["modality"] = self.modality + (f" ({self.unit})" if self.unit else "")
        return d


@dataclass
class LabelInfo:
    name: str
    color: tuple[int, int, int] = (255, 255, 255)


@dataclass(eq=False, kw_only=True, repr=False)
class LabelMap(_GridLayer):
    """Integer labels on a voxel grid (0 = background), each label with a name and a colour."""

    kind: ClassVar[str] = "labels"
    labels: dict[int, LabelInfo] = field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        if not np.issubdtype(self.data.dtype, np.integer):
            if np.issubdtype(self.data.dtype, np.floating) and np.all(np.mod(self.data, 1) == 0):
                self.data = self.data.astype(np.int32)
            else:
                raise ValueError(f"LabelMap data must be integers, got {self.data.dtype}")
        present = [int(v) for v in np.unique(self.data) if v != 0]
        for i, value in enumerate(present):
            if value not in self.labels:
                self.labels[value] = LabelInfo(f"label {value}", palette_color(i))

    def present_labels(self) -> list[int]:
        return [int(v) for v in np.unique(self.data) if v != 0]

    def describe(self) -> dict[str, str]:
        d = super().describe()
        present = self.present_labels()
        shown = ", ".join(f"{v}={self.labels[v].name}" if v in self.labels else str(v) for v in present[:12])
        d["labels"] = f"{len(present)}: {shown}" + (" ..." if len(present) > 12 else "")
        return d


@dataclass(eq=False, kw_only=True, repr=False)
class Image2D(Layer):
    """A 2D picture: radiograph (grey, often 16-bit) or photo (RGB/RGBA); ``geometry`` is 2D."""

    kind: ClassVar[str] = "image"
    data: np.ndarray
    geometry: Geometry = field(default_factory=lambda: Geometry((1.0, 1.0), (0.0, 0.0), np.eye(2)))
    modality: str = "photo"
    unit: str = ""
    colormap: str = "gray"  # display (grey images only): a napari colormap name
    contrast: tuple[float, float] | None = None  # display: value range mapped to the colormap; None = automatic

    def validate(self) -> None:
        if not isinstance(self.data, np.ndarray):
            self.data = np.asarray(self.data)
        ok = self.data.ndim == 2 or (self.data.ndim == 3 and self.data.shape[2] in (3, 4))
        if not ok:
            raise ValueError(f"Image2D needs (H, W) grey or (H, W, 3|4) colour data, got {self.data.shape}")
        if self.geometry.ndim != 2:
            raise ValueError("Image2D needs 2D geometry")

    @property
    def is_rgb(self) -> bool:
        return self.data.ndim == 3

    @property
    def has_alpha(self) -> bool:
        return self.data.ndim == 3 and self.data.shape[2] == 4

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    def describe(self) -> dict[str, str]:
        d = super().describe()
        channels = {2: "grey", 3: "RGB", 4: "RGBA"}[self.data.shape[2] if self.data.ndim == 3 else 2]
        d.update(
            {
                "size (w, h)": f"{self.width} x {self.height}",
                "channels": channels,
                "pixel spacing (x, y)": _fmt_tuple(self.geometry.spacing, "mm")
                if self.metadata.get("pixel_spacing_known")
                else "unknown (1 px)",
                "dtype": str(self.data.dtype),
                "value range": _value_range(self.data),
                "modality": self.modality,
            }
        )
        return d


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals; zero for isolated vertices."""
    normals = np.zeros_like(vertices, dtype=float)
    if len(faces) == 0:
        return normals
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area: area weighting
    for k in range(3):
        np.add.at(normals, faces[:, k], fn)
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)


def _check_scalars(scalars: dict[str, np.ndarray], n: int, what: str) -> dict[str, np.ndarray]:
    out = {}
    for key, values in scalars.items():
        arr = np.asarray(values)
        if arr.shape[0] != n:
            raise ValueError(f"scalar {key!r} has {arr.shape[0]} values for {n} {what}")
        out[key] = arr
    return out


@dataclass(eq=False, kw_only=True, repr=False)
class Mesh(Layer):
    """A triangle surface in physical units; ``scalars`` hold per-vertex values to colour by."""

    kind: ClassVar[str] = "mesh"
    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None = None
    scalars: dict[str, np.ndarray] = field(default_factory=dict)
    color: tuple[int, int, int] | None = None
    unit: str = "mm"

    def validate(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float64)
        self.faces = np.asarray(self.faces, dtype=np.int64).reshape(-1, 3) if np.size(self.faces) else (
            np.zeros((0, 3), dtype=np.int64)
        )
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"Mesh vertices must be (N, 3), got {self.vertices.shape}")
        if not np.all(np.isfinite(self.vertices)):
            raise ValueError("Mesh vertices contain NaN or infinite coordinates")
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= len(self.vertices)):
            raise ValueError("Mesh faces refer to vertices that do not exist")
        if self.normals is None or len(self.normals) != len(self.vertices):
            self.normals = _vertex_normals(self.vertices, self.faces)
        self.scalars = _check_scalars(self.scalars, len(self.vertices), "vertices")

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    @property
    def n_faces(self) -> int:
        return len(self.faces)

    def bounds(self) -> np.ndarray:
        return np.array([self.vertices.min(axis=0), self.vertices.max(axis=0)])

    def describe(self) -> dict[str, str]:
        d = super().describe()
        lo, hi = self.bounds() if self.n_vertices else (np.zeros(3), np.zeros(3))
        d.update(
            {
                "vertices": str(self.n_vertices),
                "faces": str(self.n_faces),
                "extent": _fmt_tuple(tuple(hi - lo), self.unit),
                "scalars": ", ".join(self.scalars) or "none",
            }
        )
        return d


@dataclass(eq=False, kw_only=True, repr=False)
class PointCloud(Layer):
    """Points in physical units, e.g. a scan exported without faces."""

    kind: ClassVar[str] = "points"
    points: np.ndarray
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None
    scalars: dict[str, np.ndarray] = field(default_factory=dict)
    color: tuple[int, int, int] | None = None
    unit: str = "mm"

    def validate(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64)
        if self.points.ndim != 2 or self.points.shape[1] != 3:
            raise ValueError(f"PointCloud points must be (N, 3), got {self.points.shape}")
        if not np.all(np.isfinite(self.points)):
            raise ValueError("PointCloud contains NaN or infinite coordinates")
        for attr in ("normals", "colors"):
            value = getattr(self, attr)
            if value is not None:
                value = np.asarray(value)
                if len(value) != len(self.points):
                    raise ValueError(f"PointCloud has {len(value)} {attr} for {len(self.points)} points")
                setattr(self, attr, value)
        self.scalars = _check_scalars(self.scalars, len(self.points), "points")

    @property
    def n_points(self) -> int:
        return len(self.points)

    def describe(self) -> dict[str, str]:
        d = super().describe()
        lo, hi = (self.points.min(0), self.points.max(0)) if self.n_points else (np.zeros(3), np.zeros(3))
        d.update({"points": str(self.n_points), "extent": _fmt_tuple(tuple(hi - lo), self.unit),
                  "normals": "yes" if self.normals is not None else "no"})
        return d


def check_rigid(pose: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """Return ``pose`` as a float 4x4 array, or raise if it is not a proper rigid transform."""
    p = np.asarray(pose, dtype=float)
    if p.shape != (4, 4):
        raise ValueError(f"pose must be 4x4, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("pose contains non-finite values")
    r = p[:3, :3]
    if not np.allclose(r.T @ r, np.eye(3), atol=tol) or np.linalg.det(r) < 0:
        raise ValueError("pose rotation is not a proper rotation (orthonormal, det +1)")
    if not np.allclose(p[3], [0, 0, 0, 1], atol=tol):
        raise ValueError("pose last row must be [0, 0, 0, 1]")
    return p


@dataclass(eq=False)
class Fragment:
    """One piece of a broken object: its geometry in file coordinates and its current pose."""

    name: str
    geometry: Mesh | PointCloud
    pose: np.ndarray = field(default_factory=lambda: np.eye(4))
    source: str | None = None

    def __post_init__(self) -> None:
        self.pose = check_rigid(self.pose)

    def posed_points(self) -> np.ndarray:
        """Vertices (or points) moved by the pose, in the assembled frame."""
        pts = self.geometry.vertices if isinstance(self.geometry, Mesh) else self.geometry.points
        return pts @ self.pose[:3, :3].T + self.pose[:3, 3]


@dataclass(eq=False, kw_only=True, repr=False)
class Fragments(Layer):
    """A group of pieces reassembled together; poses map each piece's file coordinates to the scene."""

    kind: ClassVar[str] = "fragments"
    items: list[Fragment] = field(default_factory=list)
    unit: str = "mm"

    def validate(self) -> None:
        names = [f.name for f in self.items]
        if len(set(names)) != len(names):
            raise ValueError("fragment names must be unique")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, key: int | str) -> Fragment:
        if isinstance(key, str):
            for f in self.items:
                if f.name == key:
                    return f
            raise KeyError(key)
        return self.items[key]

    def set_pose(self, key: int | str, pose: np.ndarray) -> None:
        self[key].pose = check_rigid(pose)
        self.changed.emit("pose")

    def poses(self) -> list[np.ndarray]:
        return [f.pose.copy() for f in self.items]

    def describe(self) -> dict[str, str]:
        d = super().describe()
        n_mesh = sum(isinstance(f.geometry, Mesh) for f in self.items)
        d["pieces"] = f"{len(self.items)} ({n_mesh} meshes, {len(self.items) - n_mesh} point clouds)"
        d["names"] = ", ".join(f.name for f in self.items[:8]) + (" ..." if len(self.items) > 8 else "")
        return d


@dataclass(eq=False, kw_only=True, repr=False)
class Table(Layer):
    """Named columns of equal length: per-vertebra measurements, per-crack lengths, per-tooth volumes."""

    kind: ClassVar[str] = "table"
    columns: dict[str, list[Any]] = field(default_factory=dict)

    def validate(self) -> None:
        self.columns = {str(k): list(v) for k, v in self.columns.items()}
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"Table columns have different lengths: {sorted(lengths)}")

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], **kw: Any) -> Table:
        keys: list[str] = []
        for r in records:
            keys.extend(k for k in r if k not in keys)
        return cls(columns={k: [r.get(k) for r in records] for k in keys}, **kw)

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def records(self) -> list[dict[str, Any]]:
        keys = list(self.columns)
        return [{k: self.columns[k][i] for k in keys} for i in range(self.n_rows)]

    def to_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(list(self.columns))
            for r in self.records():
                w.writerow(list(r.values()))

    def describe(self) -> dict[str, str]:
        d = super().describe()
        d.update({"rows": str(self.n_rows), "columns": ", ".join(self.columns)})
        return d


def is_mask(layer: Layer) -> bool:
    """A binary mask of a photo (0/255, named ``*_mask`` or of modality ``mask``): a paintable label overlay.

    In the core because the GUI (which pane, which tool) and plugins (which layers are few-shot examples)
    must agree on it.

    Asked on every form refresh and selection, so the value check is one pass without sorting (np.unique
    on a large photo takes seconds), and a layer that says it is a mask (modality) is believed.
    """
    if not (isinstance(layer, Image2D) and layer.data.ndim == 2 and layer.data.dtype == np.uint8):
        return False
    if layer.modality == "mask":
        return True
    if not layer.name.endswith("_mask"):
        return False
    d = layer.data
    return not np.any((d != 0) & (d != 255))

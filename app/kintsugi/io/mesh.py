"""Meshes and point clouds (OBJ, PLY, STL, OFF, GLB) through trimesh.

A PLY without faces is a point cloud (how most scanners export); a file with several bodies (a GLB
scene, an OBJ with many objects) opens as Fragments, one piece per body, keeping scene transforms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kintsugi.core import Fragment, Fragments, Mesh, PointCloud
from kintsugi.io.errors import CorruptFileError, EmptyFileError, UnsupportedFormatError, WriteError
from kintsugi.io.jsonio import atomic_write_bytes
from kintsugi.io.limits import check_size

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")


def _trimesh():
    import trimesh

    return trimesh


def _check_ply_header(path: Path) -> None:
    """Refuse a PLY whose header promises more elements than memory (or the file) can hold."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head.startswith(b"ply"):
        raise CorruptFileError(path, "PLY header does not start with 'ply'")
    end = head.find(b"end_header")
    if end < 0:
        raise CorruptFileError(path, "PLY header has no end_header line")
    total = 0
    for line in head[:end].decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "element":
            try:
                total += int(parts[2]) * (12 if parts[1] == "vertex" else 16)
            except ValueError:
                raise CorruptFileError(path, f"PLY header line {line!r} has a bad count") from None
    check_size(path, total, "the mesh")
    is_binary = b"format binary" in head[:end]
    if is_binary and total > 0 and path.stat().st_size < end + 11 + total * 0.5:
        raise CorruptFileError(path, "truncated: the PLY body is shorter than its header promises")


def read_mesh(path: str | Path) -> list[Mesh | PointCloud | Fragments]:
    """Read one mesh file. Returns one Mesh/PointCloud, or one Fragments for multi-body files."""
    path = Path(path)
    trimesh = _trimesh()
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise UnsupportedFormatError(path, f"{suffix or 'no extension'} is not a mesh format")
    if path.stat().st_size == 0:
        raise EmptyFileError(path)
    if suffix == ".ply":
        _check_ply_header(path)
    else:
        check_size(path, path.stat().st_size * 8, "the mesh")
    try:
        loaded = trimesh.load(str(path), process=False, maintain_order=True, force=None)
    except Exception as e:  # trimesh raises many types for bad files
        raise CorruptFileError(path, f"cannot parse {suffix[1:].upper()}: {_short(e)}") from None
    name = path.stem
    if isinstance(loaded, trimesh.Scene):
        bodies = []
        for node in loaded.graph.nodes_geometry:
            transform, geom_name = loaded.graph[node]
            bodies.append((str(node), loaded.geometry[geom_name], np.asarray(transform, float)))
        if not bodies:
            raise CorruptFileError(path, "the file holds no geometry")
        if len(bodies) == 1:
            node, geom, transform = bodies[0]
            layer = _to_layer(geom, name, path)
            _apply(layer, transform)
            return [layer]
        items = [Fragment(node, _to_layer(g, node, path), _rigid_or_identity(t, g), source=str(path))
                 for node, g, t in bodies]
        return [Fragments(name=name, items=items, metadata={"source": str(path)})]
    return [_to_layer(loaded, name, path)]


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def _to_layer(geom, name: str, path: Path) -> Mesh | PointCloud:
    trimesh = _trimesh()
    meta = {"source": str(path)}
    if isinstance(geom, trimesh.Trimesh) and len(geom.faces) > 0:
        scalars = {}
        attrs = getattr(geom, "vertex_attributes", {}) or {}
        for key, values in attrs.items():
            arr = np.asarray(values)
            if arr.ndim == 1 and len(arr) == len(geom.vertices) and key not in ("red", "green", "blue", "alpha"):
                scalars[key] = arr
        normals = None
        if "vertex_normals" in geom._cache.cache:  # only normals the file provided, not recomputed ones
            normals = np.asarray(geom.vertex_normals)
        return Mesh(name=name, vertices=np.asarray(geom.vertices), faces=np.asarray(geom.faces),
                    normals=normals, scalars=scalars, metadata=meta)
    if isinstance(geom, trimesh.Trimesh | trimesh.PointCloud):
        points = np.asarray(geom.vertices)
        if len(points) == 0:
            raise CorruptFileError(path, "the file holds no vertices")
        colors = None
        vc = getattr(getattr(geom, "visual", None), "vertex_colors", None)
        if vc is not None and len(vc) == len(points):
            colors = np.asarray(vc)[:, :3]
        normals = None
        md = getattr(geom, "metadata", {}) or {}
        ply_raw = md.get("_ply_raw", {}).get("vertex", {}).get("data") if isinstance(md, dict) else None
        names = (ply_raw.dtype.names or ()) if hasattr(ply_raw, "dtype") else tuple(ply_raw or ())
        if ply_raw is not None and all(k in names for k in ("nx", "ny", "nz")):
            normals = np.stack([np.asarray(ply_raw[k], float).reshape(-1) for k in ("nx", "ny", "nz")], axis=1)
        return PointCloud(name=name, points=points, normals=normals, colors=colors, metadata=meta)
    raise UnsupportedFormatError(path, f"geometry of type {type(geom).__name__} is not supported")


def _apply(layer: Mesh | PointCloud, transform: np.ndarray) -> None:
    if np.allclose(transform, np.eye(4)):
        return
    if isinstance(layer, Mesh):
        layer.vertices = layer.vertices @ transform[:3, :3].T + transform[:3, 3]
        layer.normals = None
    else:
        layer.points = layer.points @ transform[:3, :3].T + transform[:3, 3]
    layer.validate()


def _rigid_or_identity(transform: np.ndarray, geom) -> np.ndarray:
    """Scene transforms may scale; a fragment pose must be rigid, so bake anything else into points."""
    r = transform[:3, :3]
    if np.allclose(r.T @ r, np.eye(3), atol=1e-5) and np.linalg.det(r) > 0:
        return transform
    geom.apply_transform(transform)
    return np.eye(4)


def write_mesh(layer: Mesh | PointCloud, path: str | Path) -> Path:
    """Write PLY (binary), OBJ, STL or GLB; point clouds only as PLY."""
    trimesh = _trimesh()
    path = Path(path)
    suffix = path.suffix.lower()
    if isinstance(layer, PointCloud):
        if suffix != ".ply":
            raise WriteError(path, "point clouds are written as .ply")
        geom = trimesh.PointCloud(layer.points, colors=layer.colors)
    else:
        if suffix not in (".ply", ".obj", ".stl", ".glb"):
            raise WriteError(path, "meshes are written as .ply, .obj, .stl or .glb")
        geom = trimesh.Trimesh(layer.vertices, layer.faces, vertex_normals=layer.normals, process=False)
        if layer.color is not None:
            geom.visual.vertex_colors = np.tile([*layer.color, 255], (len(layer.vertices), 1)).astype(np.uint8)
        for key, values in layer.scalars.items():
            geom.vertex_attributes[key] = np.asarray(values, dtype=np.float32)
    try:
        data = geom.export(file_type=suffix[1:])
    except Exception as e:
        raise WriteError(path, _short(e)) from None
    return atomic_write_bytes(path, data if isinstance(data, bytes) else data.encode("utf-8"))

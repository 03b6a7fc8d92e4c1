"""Test helpers: a scene with one of every layer type, and a strict comparison of layers."""

from __future__ import annotations

import math

import numpy as np

from kintsugi.core import (
    Fragment,
    Fragments,
    Geometry,
    Image2D,
    LabelInfo,
    LabelMap,
    Mesh,
    PointCloud,
    Provenance,
    Scene,
    Table,
    Volume,
)


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def pose(ax: float, ay: float, az: float, t: tuple[float, float, float]) -> np.ndarray:
    p = np.eye(4)
    p[:3, :3] = rotation(ax, ay, az)
    p[:3, 3] = t
    return p


TETRA_V = np.array([[0.1 + 1e-9, 0, 0], [1.000000123, 0, 0], [0, 1 / 3, 0], [0, 0, math.pi]], float)
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def build_scene() -> Scene:
    rng = np.random.default_rng(7)
    scene = Scene()
    oblique = Geometry((0.7, 0.8123456789, 1.25), (-123.456789012, 45.6, 7.8), rotation(0.1, 0.2, 0.3))
    ct = rng.integers(-1024, 3000, (6, 7, 8)).astype(np.int16)
    scene.add(Volume(name="ct", data=ct, geometry=oblique, modality="CT", unit="HU",
                     metadata={"PatientID": "anon", "window": [40, 400], "nested": {"k": 1.5}},
                     colormap="viridis", contrast=(-100.0, 900.0)))

    seg = np.zeros((6, 7, 8), np.uint16)
    seg[1:3, 2:5, 2:6] = 1
    labels = LabelMap(name="vertebrae", data=seg, geometry=oblique,
                      labels={1: LabelInfo("L1", (10, 20, 30)), 5: LabelInfo("fracture", (250, 0, 128))})
    scene.add(labels)
    labels.data[3:5, 1:3, 0:4] = 5  # an edit, announced as the editor does
    labels.changed.emit("data")

    scene.add(Image2D(name="photo", data=rng.integers(0, 256, (9, 11, 3)).astype(np.uint8),
                      metadata={"pixel_spacing_known": False}))
    scene.add(Image2D(name="radiograph", data=rng.integers(0, 65536, (10, 12)).astype(np.uint16),
                      geometry=Geometry((0.139, 0.139), (0.0, 0.0), np.eye(2)), modality="DX",
                      metadata={"pixel_spacing_known": True}))
    scene.add(Mesh(name="skull", vertices=TETRA_V, faces=TETRA_F, color=(200, 180, 150), unit="mm",
                   scalars={"thickness": np.array([0.5, 1e-7 + 1, 2.25, np.pi]),
                            "region": np.arange(4, dtype=np.int32)},
                   provenance=Provenance(task="labels.meshes", plugin="kintsugi-tools", plugin_version="1.2",
                                         parameters={"level": 0.5, "smooth": True, "iterations": 10},
                                         weights_sha256=None, device="cpu", duration_s=1.25, inputs=["vertebrae"])))
    pts = rng.normal(size=(20, 3)) * 10
    normals = rng.normal(size=(20, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    scene.add(PointCloud(name="scan", points=pts, normals=normals,
                         colors=rng.integers(0, 256, (20, 3)).astype(np.uint8), scalars={"q": rng.random(20)},
                         visible=False, opacity=0.3))
    pieces = Fragments(name="vase", items=[
        Fragment("a", Mesh(name="a", vertices=TETRA_V * 2, faces=TETRA_F), pose(0.3, -0.2, 1.1, (10.5, -3.25, 7)),
                 source="scans/a.ply"),
        Fragment("b", PointCloud(name="b", points=pts[:7]), pose(-1.0, 0.4, 2.9, (0.001, 1e5, -2 / 3))),
    ])
    scene.add(pieces)
    scene.add(Table(name="heights", columns={
        "level": ["L1", "L2", "L3"], "height_mm": [24.5, float("nan"), 22.125], "grade": [0, 1, None],
    }))
    return scene


def _same_arrays(a: np.ndarray | None, b: np.ndarray | None) -> None:
    if a is None or b is None:
        assert a is None and b is None
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def _same_values(a, b) -> None:
    """Equality where NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        assert math.isnan(b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            _same_values(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same_values(x, y)
    else:
        assert a == b


def _same_geometry(a: Geometry, b: Geometry) -> None:
    assert a.spacing == b.spacing and a.origin == b.origin
    assert np.array_equal(a.direction, b.direction)


def assert_same_layer(a, b) -> None:
    assert type(a) is type(b)
    assert (a.name, a.visible, a.opacity) == (b.name, b.visible, b.opacity)
    _same_values(a.metadata, b.metadata)
    assert (a.provenance is None) == (b.provenance is None)
    if a.provenance is not None:
        assert a.provenance.to_dict() == b.provenance.to_dict()
    if isinstance(a, (Volume, LabelMap, Image2D)):
        _same_arrays(a.data, b.data)
        _same_geometry(a.geometry, b.geometry)
    if isinstance(a, (Volume, Image2D)):
        assert (a.modality, a.unit) == (b.modality, b.unit)
        assert (a.colormap, a.contrast) == (b.colormap, b.contrast)
    if isinstance(a, LabelMap):
        assert a.labels == b.labels
    if isinstance(a, (Mesh, PointCloud)):
        assert (a.color, a.unit) == (b.color, b.unit)
        assert list(a.scalars) == list(b.scalars)
        for k in a.scalars:
            _same_arrays(a.scalars[k], b.scalars[k])
        _same_arrays(a.normals, b.normals)
    if isinstance(a, Mesh):
        _same_arrays(a.vertices, b.vertices)
        _same_arrays(a.faces, b.faces)
    if isinstance(a, PointCloud):
        _same_arrays(a.points, b.points)
        _same_arrays(a.colors, b.colors)
    if isinstance(a, Fragments):
        assert a.unit == b.unit and len(a) == len(b)
        for fa, fb in zip(a, b, strict=True):
            assert (fa.name, fa.source) == (fb.name, fb.source)
            assert np.abs(fa.pose - fb.pose).max() <= 1e-12
            assert_same_layer(fa.geometry, fb.geometry)
    if isinstance(a, Table):
        _same_values(a.columns, b.columns)


def assert_same_layers(a: list, b: list) -> None:
    assert [type(x).__name__ for x in a] == [type(x).__name__ for x in b]
    assert [x.name for x in a] == [x.name for x in b]
    for x, y in zip(a, b, strict=True):
        assert_same_layer(x, y)

"""Synthetic objects for training and benchmarks, from the project's fracture generator.

Splits are disjoint by seed: training uses seeds from TRAIN_SEED0 up, held-out evaluation from
HELDOUT_SEED0 up, so no held-out object (shape proportions, breaks) was ever seen in training.
Piece counts are drawn in 2..20 by lifting the generator's 3..12 bounds for the call only.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from kintsugi.core import Fragment, Fragments, Mesh, PointCloud

TRAIN_SEED0 = 100_000
HELDOUT_SEED0 = 900_000


@contextmanager
def _piece_bounds(lo: int, hi: int):
    from kintsugi.samples import fragments as gen

    old = gen.MIN_PIECES, gen.MAX_PIECES
    gen.MIN_PIECES, gen.MAX_PIECES = lo, hi
    try:
        yield gen
    finally:
        gen.MIN_PIECES, gen.MAX_PIECES = old


@dataclass
class Sample:
    fragments: Fragments
    gt: list[np.ndarray]  # file -> assembled
    seed: int
    shape: str
    labels: list[np.ndarray] | None = None  # per-vertex fracture labels (meshes only)


def generate(seed: int, n_pieces: int | None = None, shape: str | None = None, faces: int = 12_000):
    """A FracturedObject with 2..20 pieces (drawn from the seed when not given)."""
    rng = np.random.default_rng(seed + 7)
    n = int(rng.integers(2, 21)) if n_pieces is None else n_pieces
    with _piece_bounds(2, 20) as gen:
        for attempt in range(4):
            try:
                return gen.generate(seed + attempt * 7919, n_pieces=n, shape=shape, faces_target=faces)
            except RuntimeError:
                n = max(2, n - 2)
        return gen.generate(seed, n_pieces=2, shape=shape, faces_target=faces)


def _remesh(v: np.ndarray, f: np.ndarray, keep: float) -> tuple[np.ndarray, np.ndarray]:
    """Re-triangulate a piece (quadric decimation) so its break no longer shares vertices with its match."""
    import pyvista as pv

    cells = np.hstack([np.full((len(f), 1), 3), f]).ravel()
    mesh = pv.PolyData(v, cells).decimate(1.0 - keep)
    return np.asarray(mesh.points, float), mesh.faces.reshape(-1, 4)[:, 1:].astype(np.int64)


def to_sample(obj, noise: float = 0.0, remesh: bool = False, cloud_points: int = 0,
              rng: np.random.Generator | None = None) -> Sample:
    """A Fragments layer of the object's pieces (meshes, or point clouds of ``cloud_points`` in all).

    ``noise`` is the vertex noise sigma as a fraction of the object's largest extent.
    """
    from kintsugi_reassembly.prep import face_areas, sample_mesh

    rng = rng or np.random.default_rng(obj.seed)
    extent = float(np.ptp(obj.vertices, axis=0).max())
    areas = np.array([face_areas(p.vertices, p.faces).sum() for p in obj.pieces])
    items, labels = [], []
    for p, area in zip(obj.pieces, areas, strict=True):
        v, f = p.vertices.copy(), p.faces.copy()
        lab = p.fracture_vertices.copy()
        if remesh:
            v, f = _remesh(v, f, 0.5)
            lab = None
        if noise > 0:
            v = v + rng.normal(scale=noise * extent, size=v.shape)
        if cloud_points:
            n = max(20, int(round(cloud_points * area / areas.sum())))
            pts, nrm, fi = sample_mesh(v, f, n, rng)
            geom = PointCloud(name=p.name, points=pts, normals=nrm)
        else:
            geom = Mesh(name=p.name, vertices=v, faces=f)
        items.append(Fragment(p.name, geom, source=f"{p.name}.ply"))
        labels.append(lab)
    frags = Fragments(name=f"object-{obj.seed}", items=items)
    return Sample(frags, [p.transform.copy() for p in obj.pieces], obj.seed, obj.shape, labels)


def heldout_seeds(n: int) -> list[int]:
    return [HELDOUT_SEED0 + k for k in range(n)]


def train_seeds(n: int) -> list[int]:
    return [TRAIN_SEED0 + k for k in range(n)]

"""Sample "fragments": a watertight object broken into 3-12 pieces along rough, mutually fitting
fracture surfaces, each piece scrambled by a random rigid pose, with the ground truth to undo it.

It is the reassembly feature's default data and the training data of the learned reassembly
model, which labels a point "fracture" when it lies on a surface shared with another piece, so the
fracture mask here must be exact rather than guessed from geometry afterwards. That is why the
object is broken with exact booleans (manifold3d) and every fracture face is traced back to the
cutter that made it instead of being detected by proximity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import manifold3d as m3d
import numpy as np
from scipy.interpolate import PchipInterpolator

NAME = "fragments"
TITLE = "Fractured object"
TASK = "reassembly.assemble"
DESCRIPTION = (
    "A pot, vase, tile or bone broken into 3-12 pieces along rough, exactly fitting fracture "
    "surfaces and scattered by random rigid poses, with the ground-truth poses in gt.json."
)

SHAPES: tuple[str, ...] = ("bowl", "vase", "tile", "bone")
MIN_PIECES, MAX_PIECES = 3, 12
DEFAULT_FACES = 20_000
# Fraction of the budget spent on the unbroken surface; the rest goes to the fracture surfaces.
_BASE_SHARE = 0.45
_TRIES_PER_SPLIT = 40


@dataclass(eq=False)
class Piece:
    """One fragment as a scanner would deliver it: in its own (scrambled) coordinates.

    ``vertices`` are float64; the PLY files hold them as float32 (about 1e-4 mm coarser), which
    is why tests of the files use a tolerance. A vertex on the rim of a fracture surface counts
    as a fracture vertex, since it lies on the shared surface too.

    ``face_cut`` keeps which cut made each fracture face (-1 on the original surface) because
    per-cut statistics (how rough a break is, which pieces share it) need more than the bool mask.
    """

    name: str
    vertices: np.ndarray  # (V, 3) float64, file coordinates (mm)
    faces: np.ndarray  # (F, 3) int64
    transform: np.ndarray  # (4, 4) file coordinates -> assembled (original) frame
    fracture_faces: np.ndarray  # (F,) bool: face lies on a surface shared with another piece
    fracture_vertices: np.ndarray  # (V,) bool: vertex of at least one fracture face
    face_cut: np.ndarray  # (F,) int: index of the cut that made the face, -1 = original surface

    def assembled_vertices(self) -> np.ndarray:
        """Vertices moved by the ground-truth pose, i.e. where they sit in the unbroken object."""
        t = self.transform
        return self.vertices @ t[:3, :3].T + t[:3, 3]


@dataclass(eq=False)
class FracturedObject:
    """The unbroken object, its pieces and how to put them back together."""

    seed: int
    shape: str
    vertices: np.ndarray  # the original watertight mesh, assembled frame
    faces: np.ndarray
    pieces: list[Piece] = field(default_factory=list)

    @property
    def n_pieces(self) -> int:
        return len(self.pieces)

    def ground_truth(self) -> dict[str, Any]:
        """The gt.json document (validates against the assembly contract)."""
        return {
            "fragments": [
                {"file": f"{p.name}.ply", "transform": p.transform.tolist()} for p in self.pieces
            ],
            "seed": int(self.seed),
            "shape": self.shape,
            "n_pieces": self.n_pieces,
            "units": "mm",
            "note": "transform maps file coordinates to the assembled frame",
        }


# --------------------------------------------------------------------------------------------
# manifold3d <-> numpy


def _to_manifold(vertices: np.ndarray, faces: np.ndarray) -> m3d.Manifold:
    """Build a Manifold in double precision so cut surfaces of neighbours stay bit-compatible."""
    mesh = m3d.Mesh64(
        vert_properties=np.ascontiguousarray(vertices, dtype=np.float64),
        tri_verts=np.ascontiguousarray(faces, dtype=np.uint64),
    )
    solid = m3d.Manifold(mesh)
    if solid.status() != m3d.Error.NoError:
        raise RuntimeError(f"not a valid closed mesh: {solid.status()}")
    return solid


def _arrays(solid: m3d.Manifold) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices, faces and the originalID of each face (which input the face came from)."""
    mesh = solid.to_mesh64()
    vertices = np.asarray(mesh.vert_properties, dtype=np.float64)[:, :3].copy()
    faces = np.asarray(mesh.tri_verts, dtype=np.int64).copy()
    run_index = np.asarray(mesh.run_index, dtype=np.int64)
    run_ids = np.asarray(mesh.run_original_id, dtype=np.int64)
    face_origin = np.repeat(run_ids, np.diff(run_index) // 3)
    return vertices, faces, face_origin


_Builder = Callable[[float], m3d.Manifold]  # edge length (mm) -> watertight solid

# --------------------------------------------------------------------------------------------
# base shapes: procedural, watertight, in mm; each draws its proportions from the rng so two
# seeds never give the same pot


# Mean triangle area per squared edge length that each mesher yields (measured): revolve +
# refine_to_length splits diagonals, level_set's edge length is a maximum.
_TRI_AREA = {"bowl": 0.12, "vase": 0.12, "tile": 0.22, "bone": 0.22}
_COARSE_EDGE = 10.0


def _edge_length(shape: str, build: _Builder, faces: int) -> float:
    """Edge length that spends about ``faces`` triangles on the shape (area from a coarse build)."""
    area = build(_COARSE_EDGE).surface_area()
    return float(np.clip(math.sqrt(area / (_TRI_AREA[shape] * max(faces, 100))), 0.8, 12.0))


def _thick_profile(midline: np.ndarray, thickness: float, step: float) -> np.ndarray:
    """Outline of a wall of constant thickness around an (r, z) midline, with a rounded rim.

    The midline starts just left of the axis so the revolved base closes over it without a seam
    (revolve keeps only r >= 0).
    """
    d = np.gradient(midline, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    normal = np.stack([d[:, 1], -d[:, 0]], axis=1)  # right of travel: outside of the wall
    half = thickness / 2
    outer = midline + half * normal
    inner = midline - half * normal
    n_cap = max(6, int(math.pi * half / step))
    angle0 = math.atan2(normal[-1, 1], normal[-1, 0])
    angles = angle0 + np.linspace(0, math.pi, n_cap + 1)[1:-1]
    cap = midline[-1] + half * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return np.concatenate([outer, cap, inner[::-1]])


def _smooth_midline(control: np.ndarray, step: float) -> np.ndarray:
    """Monotone (non-overshooting) curve through control points, sampled every ``step`` mm."""
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(control, axis=0), axis=1))])
    n = max(8, int(chord[-1] / step))
    s = np.linspace(0.0, chord[-1], n)
    return np.stack([PchipInterpolator(chord, control[:, k])(s) for k in range(2)], axis=1)


def _revolve(polygons: list[np.ndarray], r_max: float, edge: float) -> m3d.Manifold:
    """Revolve (r, z) polygons about z, then split long edges so triangles are near ``edge``."""
    segments = max(24, 4 * round(2 * math.pi * r_max / edge / 4))
    section = m3d.CrossSection([_ccw(p) for p in polygons])
    return m3d.Manifold.revolve(section, segments).refine_to_length(edge)


def _signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _ccw(poly: np.ndarray) -> np.ndarray:
    """Counter-clockwise copy: CrossSection's positive fill rule drops clockwise outlines."""
    return poly if _signed_area(poly) > 0 else poly[::-1]


def _bowl(rng: np.random.Generator) -> _Builder:
    """A thick-walled bowl on a foot ring: the classic archaeological sherd source."""
    rim, height, wall = rng.uniform(62, 82), rng.uniform(50, 75), rng.uniform(6.0, 8.5)
    flare = rng.uniform(0.8, 0.97)
    foot_w, foot_h = rng.uniform(5, 8), rng.uniform(4, 7)

    def build(edge: float) -> m3d.Manifold:
        control = np.array([
            [-2.0, wall / 2], [0.35 * rim, wall / 2], [0.62 * rim, 0.16 * height],
            [flare * rim, 0.6 * height], [rim, height],
        ])
        outline = _thick_profile(_smooth_midline(control, edge), wall, edge)
        foot_in, foot_out = 0.28 * rim, 0.28 * rim + foot_w
        foot = np.array([[foot_in, -foot_h], [foot_out, -foot_h], [foot_out, 1.0], [foot_in, 1.0]])
        return _revolve([outline, foot], rim + wall, edge)

    return build


def _vase(rng: np.random.Generator) -> _Builder:
    """A closed-bottom vase with belly, neck and flared lip: hollow, tall, doubly curved."""
    height, belly, wall = rng.uniform(150, 195), rng.uniform(45, 60), rng.uniform(4.5, 6.0)
    neck, lip, waist = rng.uniform(15, 22), rng.uniform(24, 32), rng.uniform(0.3, 0.45)
    control = np.array([
        [-2.0, wall / 2], [0.6 * belly, wall / 2], [belly, waist * height],
        [0.55 * (belly + neck), 0.68 * height], [neck, 0.85 * height], [lip, height],
    ])

    def build(edge: float) -> m3d.Manifold:
        outline = _thick_profile(_smooth_midline(control, edge), wall, edge)
        return _revolve([outline], belly + wall, edge)

    return build


def _tile(rng: np.random.Generator) -> _Builder:
    """A gently bent rounded slab (roof tile / plaque): breaks through its thickness."""
    a, b, c = rng.uniform(60, 80), rng.uniform(40, 55), rng.uniform(7, 11)
    radius, bend = min(4.0, 0.45 * c), rng.uniform(0.0, 0.004)
    half = np.array([a, b, c])

    def sdf(x: float, y: float, z: float) -> float:
        p = np.abs(np.array([x, y, z - bend * x * x])) - half + radius
        return radius - (float(np.linalg.norm(np.maximum(p, 0.0))) + min(float(p.max()), 0.0))

    def build(edge: float) -> m3d.Manifold:
        pad = radius + 2 * edge
        top = c + bend * a * a
        bounds = [-a - pad, -b - pad, -c - pad, a + pad, b + pad, top + pad]
        return m3d.Manifold.level_set(sdf, bounds, edge)

    return build


def _bone(rng: np.random.Generator) -> _Builder:
    """A long bone: a shaft blending smoothly into knobbly ends, so fractures cross solid bone."""
    half_len, shaft = rng.uniform(70, 95), rng.uniform(9, 13)
    knob = shaft * rng.uniform(1.45, 1.8)
    ends = []
    for sx in (-1.0, 1.0):
        for sy in (-1.0, 1.0):
            ends.append((sx * half_len, sy * knob * 0.45, rng.uniform(-2, 2), knob * rng.uniform(0.8, 1.0)))
    blend = 6.0

    def sdf(x: float, y: float, z: float) -> float:
        # positive inside; smooth-max of the shaft (a capsule) and the four knobs
        cx = min(max(x, -half_len), half_len)
        d = shaft - math.sqrt((x - cx) ** 2 + y * y + z * z)
        for kx, ky, kz, kr in ends:
            e = kr - math.sqrt((x - kx) ** 2 + (y - ky) ** 2 + (z - kz) ** 2)
            h = min(max(0.5 + 0.5 * (e - d) / blend, 0.0), 1.0)
            d = d * (1 - h) + e * h + blend * h * (1 - h)
        return d

    def build(edge: float) -> m3d.Manifold:
        pad = 2 * knob + 2 * edge
        bounds = [-half_len - pad, -pad, -pad, half_len + pad, pad, pad]
        return m3d.Manifold.level_set(sdf, bounds, edge)

    return build


_BUILDERS: dict[str, Callable[[np.random.Generator], _Builder]] = {
    "bowl": _bowl, "vase": _vase, "tile": _tile, "bone": _bone,
}


# --------------------------------------------------------------------------------------------
# fracture


def _frame(normal: np.ndarray) -> np.ndarray:
    """Rows u, v, n: an orthonormal frame whose third axis is ``normal``."""
    n = normal / np.linalg.norm(normal)
    helper = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(n, helper)
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(n, u), n])


@dataclass(frozen=True)
class _Roughness:
    """A fracture relief: a sum of plane waves whose amplitude grows with wavelength.

    Brittle fractures are self-affine (rough at every scale, more so at large scales), and a
    relief sized to the cross-section it crosses keeps a thin bone shaft and a wide bowl equally
    rough instead of leaving the small cuts nearly planar.
    """

    k: np.ndarray  # (W, 2) wave vectors, rad/mm
    amp: np.ndarray  # (W,) mm
    phase: np.ndarray  # (W,)

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        arg = x[..., None] * self.k[:, 0] + y[..., None] * self.k[:, 1] + self.phase
        return np.sin(arg) @ self.amp

    @classmethod
    def draw(cls, rng: np.random.Generator, span: float, spacing: float) -> _Roughness:
        """Waves for a cut crossing ``span`` mm of material on a grid of ``spacing`` mm."""
        bands = [(0.5, 1.0), (0.2, 0.4), (0.08, 0.15)]  # wavelength as a fraction of the span
        wavelength = np.concatenate([rng.uniform(lo, hi, 2) * span for lo, hi in bands])
        wavelength = np.maximum(wavelength, 4 * spacing)  # finer waves would only alias
        amp = rng.uniform(0.035, 0.055, len(wavelength)) * np.minimum(wavelength, 120.0)
        theta = rng.uniform(0, 2 * np.pi, len(wavelength))
        k = np.stack([np.cos(theta), np.sin(theta)], axis=1) * (2 * np.pi / wavelength)[:, None]
        return cls(k=k, amp=amp, phase=rng.uniform(0, 2 * np.pi, len(wavelength)))


def _cutter(center: np.ndarray, normal: np.ndarray, reach: float, spacing: float,
            relief: _Roughness) -> m3d.Manifold:
    """A thick slab whose top face is the rough fracture surface; everything below it is "in".

    It spans ``reach`` around ``center`` in every direction, so only the rough face ever touches
    the piece and every face the cutter adds to a piece is fracture surface.
    """
    n = max(4, int(math.ceil(2 * reach / spacing)))
    g = np.linspace(-reach, reach, n + 1)
    x, y = np.meshgrid(g, g, indexing="ij")
    top = np.stack([x, y, relief.height(x, y)], axis=-1).reshape(-1, 3)
    bottom = np.stack([x, y, np.full_like(x, -reach)], axis=-1).reshape(-1, 3)
    vertices = np.concatenate([top, bottom])
    faces = _slab_faces(n)
    frame = _frame(normal)
    return _to_manifold(vertices @ frame + center, faces)


def _slab_faces(n: int) -> np.ndarray:
    """Triangles of a closed slab from two (n+1)^2 grids: top (outward +z), bottom, four walls."""
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    top = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    off = (n + 1) ** 2
    bottom = top[:, ::-1] + off
    ring = np.concatenate([idx[:, 0], idx[-1, 1:], idx[-2::-1, -1], idx[0, -2:0:-1]])  # ccw in x,y
    nxt = np.roll(ring, -1)
    walls = np.concatenate([np.stack([ring, ring + off, nxt], 1), np.stack([nxt, ring + off, nxt + off], 1)])
    return np.concatenate([top, bottom, walls])


def _cut_normal(rng: np.random.Generator, vertices: np.ndarray) -> np.ndarray:
    """A random cut direction favouring the piece's long axes, so pieces stay chunky.

    Real pots and tiles break through their wall, not parallel to it, and a bone snaps across
    its shaft: weighting the normal by the piece's extent along each principal axis gives that.
    """
    centred = vertices - vertices.mean(axis=0)
    evals, evecs = np.linalg.eigh(centred.T @ centred / len(centred))
    spread = np.sqrt(np.maximum(evals, 1e-12))
    normal = evecs @ (rng.normal(size=3) * spread**1.5)
    return normal / np.linalg.norm(normal)


@dataclass
class _Part:
    solid: m3d.Manifold
    volume: float


def _span(vertices: np.ndarray, centre: np.ndarray, normal: np.ndarray, spacing: float) -> float:
    """How far the cut plane runs through the piece: the extent of the vertices near it."""
    offset = vertices - centre
    near = offset[np.abs(offset @ normal) < 1.5 * spacing]
    if len(near) < 3:
        near = offset
    flat = near - np.outer(near @ normal, normal)
    return float(2 * np.linalg.norm(flat - flat.mean(axis=0), axis=1).max())


def _try_split(part: _Part, rng: np.random.Generator, spacing: float,
               min_volume: float) -> tuple[_Part, _Part, int] | None:
    """One attempt to break ``part`` in two; None when the break would leave a crumb or shatter it."""
    vertices, _, _ = _arrays(part.solid)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    normal = _cut_normal(rng, vertices)
    centre = (lo + hi) / 2 + rng.normal(scale=0.08, size=3) * (hi - lo)
    relief = _Roughness.draw(rng, _span(vertices, centre, normal, spacing), spacing)
    reach = float(np.linalg.norm(vertices - centre, axis=1).max()) + float(relief.amp.sum()) + spacing
    cutter = _cutter(centre, normal, reach, spacing, relief).as_original()
    below, above = part.solid.split(cutter)
    halves = []
    for half in (below, above):
        volume = half.volume()
        if volume < min_volume or len(half.decompose()) != 1:
            return None
        halves.append(_Part(half, volume))
    return halves[0], halves[1], cutter.original_id()


def _shatter(solid: m3d.Manifold, n_pieces: int, rng: np.random.Generator,
             spacing: float) -> tuple[list[m3d.Manifold], list[int]]:
    """Split the largest piece until there are ``n_pieces``; returns the pieces and cutter IDs.

    Always breaking the largest piece keeps sizes comparable, like a pot dropped once rather than
    chipped at one corner.
    """
    total = solid.volume()
    min_volume = min(0.05, 0.5 / n_pieces) * total
    parts = [_Part(solid, total)]
    cutter_ids: list[int] = []
    while len(parts) < n_pieces:
        for index in np.argsort([-p.volume for p in parts]):
            result = None
            for _ in range(_TRIES_PER_SPLIT):
                result = _try_split(parts[index], rng, spacing, min_volume)
                if result is not None:
                    break
            if result is not None:
                a, b, cid = result
                parts[index: index + 1] = [a, b]
                cutter_ids.append(cid)
                break
        else:
            raise RuntimeError(f"could not break the object into {n_pieces} pieces")
    return [p.solid for p in parts], cutter_ids


# --------------------------------------------------------------------------------------------
# scramble


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation from a normalised Gaussian quaternion."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _scatter(rng: np.random.Generator, radii: list[float], size: float) -> np.ndarray:
    """Centres for the pieces, far enough apart that their bounding spheres never touch."""
    gap = 0.1 * size
    box = 1.0 * size
    centres: list[np.ndarray] = []
    for r in radii:
        attempt = 0
        while True:
            grow = 1.0 + attempt / 200  # widen the table if it gets crowded
            c = rng.uniform(-box * grow, box * grow, size=3)
            placed = zip(centres, radii[: len(centres)], strict=True)
            if all(np.linalg.norm(c - o) > r + ro + gap for o, ro in placed):
                break
            attempt += 1
        centres.append(c)
    return np.array(centres)


# --------------------------------------------------------------------------------------------
# public API


def generate(seed: int = 0, n_pieces: int | None = None, shape: str | None = None,
             faces_target: int = DEFAULT_FACES) -> FracturedObject:
    """Break a procedural object into pieces, deterministically by ``seed``.

    ``n_pieces`` and ``shape`` default to values drawn from the seed; passing them does not shift
    the other random draws, so ``generate(s)`` and ``generate(s, shape=generate(s).shape)`` agree.
    ``faces_target`` sets the mesh resolution: the pieces together get roughly 1-1.5 times as
    many faces (more for solid shapes, whose breaks have more area than a thin wall's).
    """
    rng = np.random.default_rng(seed)
    drawn_n = int(rng.integers(MIN_PIECES, MAX_PIECES + 1))
    drawn_shape = SHAPES[int(rng.integers(len(SHAPES)))]
    n = drawn_n if n_pieces is None else int(n_pieces)
    shape = drawn_shape if shape is None else shape
    if not MIN_PIECES <= n <= MAX_PIECES:
        raise ValueError(f"n_pieces must be in {MIN_PIECES}..{MAX_PIECES}, got {n}")
    if shape not in _BUILDERS:
        raise ValueError(f"unknown shape {shape!r}; choose one of: {', '.join(SHAPES)}")

    build = _BUILDERS[shape](rng)
    base_faces = int(faces_target * _BASE_SHARE)
    base = build(_edge_length(shape, build, base_faces))
    if base.status() != m3d.Error.NoError or base.is_empty():
        raise RuntimeError(f"building the {shape} failed: {base.status()}")
    base = base.as_original()
    base_id = base.original_id()
    vertices, faces, _ = _arrays(base)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    size = float(np.linalg.norm(hi - lo))
    # cutter grid triangles (half squares) about as large as the surface's triangles
    spacing = math.sqrt(2 * base.surface_area() / base.num_tri())

    solids, cutter_ids = _shatter(base, n, rng, spacing)
    cut_index = {cid: k for k, cid in enumerate(cutter_ids)}
    pieces_raw = [_arrays(s) for s in solids]
    radii = [float(np.linalg.norm(v - v.mean(axis=0), axis=1).max()) for v, _, _ in pieces_raw]
    centres = _scatter(rng, radii, size)

    pieces = []
    for i, ((v, f, origin), where) in enumerate(zip(pieces_raw, centres, strict=True)):
        rot = _random_rotation(rng)
        anchor = v.mean(axis=0)
        file_vertices = (v - anchor) @ rot.T + where
        transform = np.eye(4)
        transform[:3, :3] = rot.T
        transform[:3, 3] = anchor - rot.T @ where
        face_cut = np.array([cut_index.get(int(o), -1) for o in origin], dtype=np.int64)
        if np.any((face_cut < 0) & (origin != base_id)):
            raise RuntimeError("a piece has faces of unknown origin")
        fracture = face_cut >= 0
        fracture_vertices = np.zeros(len(v), dtype=bool)
        fracture_vertices[f[fracture].ravel()] = True
        pieces.append(Piece(
            name=f"piece_{i:02d}", vertices=file_vertices, faces=f, transform=transform,
            fracture_faces=fracture, fracture_vertices=fracture_vertices, face_cut=face_cut,
        ))
    return FracturedObject(seed=int(seed), shape=shape, vertices=vertices, faces=faces, pieces=pieces)


def make(out_dir: Path, seed: int = 0) -> list[Path]:
    """Write ``piece_NN.ply`` for each piece and ``gt.json``; nothing else, so the folder opens
    as one Fragments layer. The fracture mask stays out of the files: a model reading them must
    find the fracture surfaces itself."""
    from kintsugi.core import Mesh
    from kintsugi.io import write_json, write_mesh

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    obj = generate(seed)
    written = []
    for piece in obj.pieces:
        mesh = Mesh(name=piece.name, vertices=piece.vertices, faces=piece.faces)
        written.append(write_mesh(mesh, out / f"{piece.name}.ply"))
    written.append(write_json(obj.ground_truth(), out / "gt.json"))
    return written

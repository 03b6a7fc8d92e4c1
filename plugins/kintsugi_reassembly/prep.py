"""Turn a Fragments layer into sampled, normal-carrying point sets the matchers can work on.

Everything downstream works on points (meshes are sampled by area, point clouds used as they
are), so one pipeline serves meshes and faceless scans alike. Coordinates are divided by a
common object scale so every threshold is relative, which is what lets pieces arrive in mm,
cm or anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from kintsugi.core import Fragments, Mesh, PointCloud

MIN_PIECES, MAX_PIECES = 2, 50
MAX_FACES = 200_000  # above this a piece is decimated (with a notice) before sampling


@dataclass(eq=False)
class Part:
    """One piece as points in its file coordinates divided by ``scale`` (shared by all parts)."""

    name: str
    file: str
    points: np.ndarray  # (N, 3) normalised file coordinates
    normals: np.ndarray  # (N, 3) unit, outward
    area: float  # surface area in normalised units (estimated for point clouds)
    vertices: np.ndarray | None = None  # mesh vertices in normalised coordinates, for outputs
    faces: np.ndarray | None = None
    fracture: np.ndarray | None = None  # (N,) probability of lying on a fracture surface
    extra: dict = field(default_factory=dict)
    frac_points: np.ndarray | None = None  # dense samples of the fracture surface (meshes) or a subset
    frac_normals: np.ndarray | None = None
    frac_area: float = 0.0
    threshold: float = 0.5  # fracture probability above which a sample counts as fracture (set_fracture)

    def set_fracture(self, prob: np.ndarray, rng: np.random.Generator, density: float,
                     threshold: float = 0.5, min_points: int = 60) -> None:
        """Store the fracture probability and sample the fracture surface at ``density`` points/area.

        A mesh's fracture faces are those whose centre's nearest sample point is fracture; they
        are re-sampled densely, since a thin wall's break is a narrow strip that the uniform
        sample covers with few points.
        """
        self.fracture = prob
        self.threshold = threshold
        mask = prob > threshold
        if mask.sum() < min(min_points, len(prob) // 4):
            mask = np.zeros(len(prob), bool)
            mask[np.argsort(-prob)[: max(min(min_points, len(prob) // 3), 8)]] = True
        if self.faces is not None:
            centres = self.vertices[self.faces].mean(axis=1)
            _, near = cKDTree(self.points).query(centres)
            fmask = mask[near]
            if fmask.sum() == 0:
                fmask[:] = True
            faces = self.faces[fmask]
            self.frac_area = float(face_areas(self.vertices, faces).sum())
            n = int(np.clip(density * self.frac_area, min_points, 4000))
            self.frac_points, self.frac_normals, _ = sample_mesh(self.vertices, faces, n, rng)
        else:
            self.frac_points, self.frac_normals = self.points[mask], self.normals[mask]
            self.frac_area = self.area * mask.mean()


@dataclass
class Prepared:
    parts: list[Part]
    scale: float  # file units per normalised unit
    notices: list[str]


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    cross = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    return 0.5 * np.linalg.norm(cross, axis=1)


def sample_mesh(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator,
                face_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area-uniform points with their face normals; also returns the face each point came from."""
    areas = face_areas(vertices, faces)
    prob = areas / areas.sum()
    idx = rng.choice(len(faces), size=n, p=prob)
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    a, b, c = (vertices[faces[idx, k]] for k in range(3))
    pts = a + u[:, None] * (b - a) + v[:, None] * (c - a)
    nrm = np.cross(b - a, c - a)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    return pts, nrm, idx


def estimate_normals(points: np.ndarray, k: int = 16) -> np.ndarray:
    """PCA normals oriented consistently by propagation over the kNN graph, then outward.

    Outward is chosen so that sum((p - c) . n) > 0, which holds for any closed surface
    (divergence theorem), so it also works for thin curved sherds whose centroid lies outside.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

    k = min(k, len(points) - 1)
    tree = cKDTree(points)
    _, nb = tree.query(points, k + 1)
    nbp = points[nb] - points[nb].mean(axis=1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", nbp, nbp)
    _, vecs = np.linalg.eigh(cov)
    normals = vecs[:, :, 0]
    rows = np.repeat(np.arange(len(points)), k)
    cols = nb[:, 1:].ravel()
    w = 1.0 - np.abs(np.einsum("ij,ij->i", normals[rows], normals[cols])) + 1e-3
    graph = minimum_spanning_tree(coo_matrix((w, (rows, cols)), shape=(len(points),) * 2).tocsr())
    graph = graph + graph.T
    seen = np.zeros(len(points), bool)
    for start in range(len(points)):
        if seen[start]:
            continue
        order, pred = breadth_first_order(graph, start, directed=False)
        seen[order] = True
        for node in order[1:]:
            if normals[node] @ normals[pred[node]] < 0:
                normals[node] = -normals[node]
        comp = order
        if np.sum((points[comp] - points[comp].mean(0)) * normals[comp]) < 0:
            normals[comp] = -normals[comp]
    return normals


def _decimate(vertices: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    import pyvista as pv

    cells = np.hstack([np.full((len(faces), 1), 3), faces]).ravel()
    mesh = pv.PolyData(vertices, cells).decimate(1.0 - target / len(faces))
    return np.asarray(mesh.points, float), mesh.faces.reshape(-1, 4)[:, 1:].astype(np.int64)


def _geometry(frag) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    g = frag.geometry
    if isinstance(g, Mesh):
        return g.vertices, (g.faces if len(g.faces) else None), None
    if isinstance(g, PointCloud):
        return g.points, None, g.normals
    raise ValueError(f"fragment '{frag.name}' is neither a mesh nor a point cloud")


def prepare(fragments: Fragments, points_total: int = 6000, min_points: int = 150, seed: int = 0,
            unit_check: bool = True) -> Prepared:
    """Validate the pieces and sample them; raises ValueError with a one-line reason for bad input."""
    items = list(fragments)
    if len(items) < MIN_PIECES:
        raise ValueError(f"reassembly needs at least {MIN_PIECES} fragments, got {len(items)}")
    if len(items) > MAX_PIECES:
        raise ValueError(f"reassembly handles at most {MAX_PIECES} fragments, got {len(items)}")
    rng = np.random.default_rng(seed)
    notices: list[str] = []
    raw = []
    for frag in items:
        verts, faces, normals = _geometry(frag)
        if len(verts) == 0:
            raise ValueError(f"fragment '{frag.name}' is empty (no vertices)")
        if faces is not None:
            areas = face_areas(verts, faces)
            keep = areas > 1e-12 * max(float(np.ptp(verts, axis=0).max()) ** 2, 1e-30)
            if not keep.any():
                raise ValueError(f"fragment '{frag.name}' is degenerate (all its faces have zero area)")
            faces = faces[keep]
            if len(faces) > MAX_FACES:
                notices.append(f"fragment '{frag.name}' has {len(faces)} faces: decimated to {MAX_FACES}")
                verts, faces = _decimate(verts, faces, MAX_FACES)
        elif len(verts) < 20:
            raise ValueError(f"fragment '{frag.name}' has only {len(verts)} points (a point cloud needs 20 or more)")
        extent = np.ptp(verts, axis=0)
        if float(extent.max()) <= 0 or np.sort(extent)[1] <= 1e-9 * extent.max():
            raise ValueError(f"fragment '{frag.name}' is degenerate (its points lie on a line or a point)")
        raw.append((frag, verts, faces, normals))
    diam = np.array([float(np.linalg.norm(np.ptp(v, axis=0))) for _, v, _, _ in raw])
    if unit_check and diam.max() / diam.min() > 40:
        big, small = raw[int(diam.argmax())][0].name, raw[int(diam.argmin())][0].name
        raise ValueError(f"fragments seem to be in different units: '{big}' is {diam.max() / diam.min():.0f}x "
                         f"larger than '{small}'; convert them to one unit first")
    # sampling budget by area (meshes) or by point count share (clouds)
    areas = []
    for _, v, f, _ in raw:
        areas.append(face_areas(v, f).sum() if f is not None else None)
    mesh_area = [a for a in areas if a is not None]
    scale = float(np.sqrt(sum(mesh_area))) if len(mesh_area) == len(raw) else float(np.linalg.norm(diam))
    weights = np.array([a if a is not None else np.median(mesh_area or [1.0]) for a in areas], float)
    counts = np.maximum(min_points, np.round(points_total * weights / weights.sum())).astype(int)
    parts = []
    estimated: list[str] = []
    for (frag, v, f, nrm), n in zip(raw, counts, strict=True):
        name = frag.name
        file = _file_name(frag)
        vn = v / scale
        if f is not None:
            pts, nr, fidx = sample_mesh(vn, f, int(n), rng)
            area = float(face_areas(vn, f).sum())
            parts.append(Part(name, file, pts, nr, area, vertices=vn, faces=f, extra={"face": fidx}))
        else:
            pts = vn
            if nrm is not None and np.all(np.isfinite(nrm)) and np.all(np.linalg.norm(nrm, axis=1) > 0.5):
                nr = nrm / np.linalg.norm(nrm, axis=1, keepdims=True)
            else:
                nr = estimate_normals(pts)
                estimated.append(frag.name)
            d, _ = cKDTree(pts).query(pts, 2)
            area = float(len(pts) * np.median(d[:, 1]) ** 2 * 1.1)
            parts.append(Part(name, file, pts, nr, area, vertices=vn))
    if len(mesh_area) != len(raw):  # point clouds: rescale so that sqrt(total area) is about 1
        total = sum(p.area for p in parts)
        s = float(np.sqrt(total))
        for p in parts:
            p.points = p.points / s
            p.vertices = p.vertices / s
            p.area /= s * s
        scale *= s
    if estimated:
        # Normals estimated from a cloud flip between the two faces of a thin wall (a sherd), and a flipped
        # break matches nothing: on the project's held-out objects such clouds reassemble poorly (MODEL.md).
        names = ", ".join(f"'{x}'" for x in estimated[:3]) + (" …" if len(estimated) > 3 else "")
        notices.append(f"{len(estimated)} point cloud(s) without normals ({names}): normals estimated from the "
                       "points; thin walls may get flipped normals and wrong poses. Export normals with the scan "
                       "(or send meshes) for a reliable result")
    return Prepared(parts, scale, notices)


def _file_name(frag) -> str:
    from pathlib import Path

    if frag.source:
        src = Path(frag.source)
        if "/" in frag.name:  # a body inside a multi-body file
            return f"{src.name}#{frag.name.split('/', 1)[1]}"
        return src.name
    return f"{frag.name}.ply"

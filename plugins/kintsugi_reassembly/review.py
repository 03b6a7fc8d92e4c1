"""The expert in the loop: what the review panel does, as plain functions (no Qt).

An automatic assembly is a proposal. The archaeologist looks at it, moves a piece that is wrong,
declares pairs that are certainly right ("locks"), and asks for the rest to be re-fitted around them;
then exports the poses for other tools. Each of those steps is here, usable from scripts and tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from kintsugi.core import Fragment, Fragments, Mesh, PointCloud, check_rigid, palette_color
from kintsugi.plugins import NO_PROGRESS, Param, Progress, TaskResult


def interpolate_poses(start: list[np.ndarray], end: list[np.ndarray], t: float) -> list[np.ndarray]:
    """Poses a fraction ``t`` of the way from ``start`` to ``end`` (rotation by slerp, translation linearly)."""
    out = []
    for a, b in zip(start, end, strict=True):
        rots = Rotation.from_matrix(np.stack([a[:3, :3], b[:3, :3]]))
        m = np.eye(4)
        m[:3, :3] = Slerp([0.0, 1.0], rots)([float(t)]).as_matrix()[0]
        m[:3, 3] = (1 - t) * a[:3, 3] + t * b[:3, 3]
        out.append(m)
    return out


def nudge(pose: np.ndarray, translation: tuple[float, float, float], rotation_deg: tuple[float, float, float],
          centre: np.ndarray) -> np.ndarray:
    """``pose`` moved by a rotation about ``centre`` (the piece's centre, in the assembled frame) and a shift."""
    r = np.eye(4)
    r[:3, :3] = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    to_centre, back = np.eye(4), np.eye(4)
    to_centre[:3, 3] = -np.asarray(centre, float)
    back[:3, 3] = np.asarray(centre, float) + np.asarray(translation, float)
    return check_rigid(back @ r @ to_centre @ pose)


def piece_centre(fragment: Fragment) -> np.ndarray:
    return fragment.posed_points().mean(axis=0)


def meshlab_matrix(pose: np.ndarray) -> str:
    """A 4x4 matrix as MeshLab's Filters ▸ Normals, Curvatures ▸ Matrix: Set from file reads it."""
    return "\n".join(" ".join(f"{v:.9g}" for v in row) for row in np.asarray(pose, float)) + "\n"


def export_transforms(fragments: Fragments, folder: str | Path) -> list[Path]:
    """``assembly.json`` (file name → 4x4 row-major) plus one MeshLab matrix file per piece."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written, records = [], []
    for frag in fragments:
        file = Path(frag.source).name if frag.source else f"{frag.name}.ply"
        records.append({"file": file, "transform": np.asarray(frag.pose, float).tolist()})
        path = folder / f"{Path(file).stem}.meshlab.txt"
        path.write_text(meshlab_matrix(frag.pose))
        written.append(path)
    doc = {"fragments": records, "note": "transform maps the file's own coordinates into the assembled frame",
           "locked_pairs": fragments.metadata.get("locked_pairs", [])}
    path = folder / "assembly.json"
    path.write_text(json.dumps(doc, indent=1))
    return [path, *written]


def write_assembled(fragments: Fragments, path: str | Path) -> Path:
    """All pieces in place in one PLY or GLB file, each piece in its colour (vertex colours)."""
    import trimesh

    path = Path(path)
    if path.suffix.lower() not in (".ply", ".glb"):
        raise ValueError(f"{path.name}: export the assembled mesh as .ply or .glb")
    mesh = assembled_mesh(fragments)
    colors = mesh.scalars["piece_rgb"] if isinstance(mesh, Mesh) else mesh.colors
    if isinstance(mesh, Mesh):
        out = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=colors, process=False)
    else:
        out = trimesh.PointCloud(mesh.points, colors=colors)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.export(path)
    return path


def assembled_mesh(fragments: Fragments) -> Mesh | PointCloud:
    """All pieces in place as one mesh (or point cloud), coloured by piece: for PLY/GLB export."""
    meshes = [f for f in fragments if isinstance(f.geometry, Mesh) and f.geometry.n_faces]
    if len(meshes) == len(fragments):
        verts, faces, colors, offset = [], [], [], 0
        for k, frag in enumerate(fragments):
            g = frag.geometry
            verts.append(frag.posed_points())
            faces.append(g.faces + offset)
            colors.append(np.tile(np.array(g.color or palette_color(k), np.uint8), (len(g.vertices), 1)))
            offset += len(g.vertices)
        return Mesh(name=f"{fragments.name} assembled", vertices=np.concatenate(verts), faces=np.concatenate(faces),
                    scalars={"piece_rgb": np.concatenate(colors)})
    pts = np.concatenate([f.posed_points() for f in fragments])
    cols = np.concatenate([np.tile(np.array(f.geometry.color or palette_color(k), np.uint8), (len(f.posed_points()), 1))
                           for k, f in enumerate(fragments)])
    return PointCloud(name=f"{fragments.name} assembled", points=pts, colors=cols)


def parse_locks(text: str, names: list[str]) -> list[tuple[int, int]]:
    """``"a-b, c-d"`` (piece names or 0-based indices) → index pairs; a clear error for unknown pieces."""
    pairs = []
    for chunk in filter(None, (c.strip() for c in str(text).split(","))):
        if "-" not in chunk and ":" not in chunk:
            raise ValueError(f"lock {chunk!r}: write two pieces as A-B")
        a, b = (x.strip() for x in chunk.replace(":", "-").rsplit("-", 1))
        pair = []
        for x in (a, b):
            if x in names:
                pair.append(names.index(x))
            elif x.isdigit() and int(x) < len(names):
                pair.append(int(x))
            else:
                raise ValueError(f"lock {chunk!r}: no piece named {x!r} (pieces: {', '.join(names)})")
        if pair[0] == pair[1]:
            raise ValueError(f"lock {chunk!r}: a piece cannot be locked to itself")
        pairs.append((pair[0], pair[1]))
    return pairs


def _groups(n: int, locks: list[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in locks:
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def refine_with_locks(fragments: Fragments, locks: list[tuple[int, int]], seed: int = 0, rounds: int = 3,
                      progress: Progress = NO_PROGRESS) -> list[np.ndarray]:
    """Re-fit the current poses by ICP on the fracture surfaces, moving locked pieces together.

    Locked pieces become one rigid body (their union), so a pair the expert confirmed keeps its relative
    pose; the body holding the largest piece stays where it is.
    """
    from kintsugi_reassembly import geometric
    from kintsugi_reassembly.pipeline import segment_parts
    from kintsugi_reassembly.prep import prepare

    rng = np.random.default_rng(seed)
    progress(0.05, "sampling the pieces")
    prep = prepare(fragments, seed=seed)
    segment_parts(prep, rng)
    geos = geometric.to_geo(prep.parts)
    h = geometric.spacing(geos)
    poses = {}
    for k, frag in enumerate(fragments):
        m = np.asarray(frag.pose, float).copy()
        m[:3, 3] /= prep.scale  # file units -> the normalised units the matcher works in
        poses[k] = m
    groups = _groups(len(geos), locks)
    anchor_part = int(np.argmax([p.area for p in prep.parts]))
    bodies, body_poses = [], {}
    for g, members in enumerate(groups):
        if len(members) == 1:
            bodies.append(geos[members[0]])
            body_poses[g] = poses[members[0]]
        else:
            bodies.append(geometric._union(geos, {k: poses[k] for k in members}))
            body_poses[g] = np.eye(4)  # the union is built in the assembled frame
    anchor = next(g for g, members in enumerate(groups) if anchor_part in members)
    progress(0.4, f"refining {len(groups)} bodies ({len(locks)} locked pairs)")
    refined = geometric.refine(bodies, body_poses, anchor, h, rounds=rounds)
    out = [None] * len(geos)
    for g, members in enumerate(groups):
        delta = refined[g] @ np.linalg.inv(body_poses[g])
        for k in members:
            m = delta @ poses[k]
            m[:3, 3] *= prep.scale
            out[k] = check_rigid(m)
    progress(1.0, "refined")
    return out


def refine(fragments: Fragments,
           locks: Annotated[str, Param(help="pairs known to be right, kept together: A-B, C-D (piece names)")] = "",
           seed: Annotated[int, Param(min=0, help="random seed (sampling)")] = 0,
           *, progress: Progress = NO_PROGRESS) -> TaskResult:
    """Re-fit an assembly around the pairs the expert locked (and the hand moves already made)."""
    names = [f.name for f in fragments]
    pairs = parse_locks(locks, names)
    pairs += [tuple(p) for p in fragments.metadata.get("locked_pairs", []) if tuple(p) not in pairs]
    poses = refine_with_locks(fragments, pairs, seed=seed, progress=progress)
    items = [Fragment(f.name, f.geometry, p, source=f.source) for f, p in zip(fragments, poses, strict=True)]
    name = fragments.name if fragments.name.endswith("refined") else f"{fragments.name} refined"
    layer = Fragments(name=name, items=items, unit=fragments.unit,
                      metadata={**fragments.metadata, "locked_pairs": [list(p) for p in pairs]})
    doc = {"fragments": [{"file": Path(f.source).name if f.source else f.name, "transform": f.pose.tolist()}
                         for f in items], "locked_pairs": [list(p) for p in pairs]}
    return TaskResult(layers=[layer], files={"assembly.json": doc}, summary={"locked pairs": len(pairs)})

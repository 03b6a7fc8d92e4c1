"""Tasks: reassembly.assemble (fragments -> poses, assembled mesh) and reassembly.evaluate (GARF metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np

from kintsugi.core import Fragment, Fragments, Mesh, PointCloud, Table, palette_color
from kintsugi.plugins import NO_PROGRESS, Param, Progress, TaskResult


def _assembled_ply(fragments: Fragments, poses: list[np.ndarray]) -> bytes:
    """All pieces in place, one colour per piece (a point cloud when any piece has no faces)."""
    import trimesh

    verts, faces, colors, offset, any_cloud = [], [], [], 0, False
    for k, (frag, pose) in enumerate(zip(fragments, poses, strict=True)):
        g = frag.geometry
        pts = g.vertices if isinstance(g, Mesh) else g.points
        moved = pts @ pose[:3, :3].T + pose[:3, 3]
        verts.append(moved)
        colors.append(np.tile([*palette_color(k), 255], (len(moved), 1)))
        if isinstance(g, Mesh) and len(g.faces):
            faces.append(g.faces + offset)
        else:
            any_cloud = True
        offset += len(moved)
    v = np.concatenate(verts)
    c = np.concatenate(colors).astype(np.uint8)
    if any_cloud or not faces:
        geom = trimesh.PointCloud(v, colors=c)
    else:
        geom = trimesh.Trimesh(v, np.concatenate(faces), vertex_colors=c, process=False)
    data = geom.export(file_type="ply")
    return data if isinstance(data, bytes) else data.encode()


def _per_vertex_contact(fragments: Fragments, poses: list[np.ndarray]) -> list[np.ndarray]:
    """Distance (file units) from each vertex to the nearest other piece: the contact map."""
    from scipy.spatial import cKDTree

    placed = []
    for frag, pose in zip(fragments, poses, strict=True):
        g = frag.geometry
        pts = g.vertices if isinstance(g, Mesh) else g.points
        placed.append(pts @ pose[:3, :3].T + pose[:3, 3])
    out = []
    for k in range(len(placed)):
        others = np.concatenate([p for i, p in enumerate(placed) if i != k])
        d, _ = cKDTree(others).query(placed[k])
        out.append(d.astype(np.float32))
    return out


def _posed_layer(fragments: Fragments, poses: list[np.ndarray], name: str) -> Fragments:
    contact = _per_vertex_contact(fragments, poses)
    items = []
    for k, (frag, pose, dist) in enumerate(zip(fragments, poses, contact, strict=True)):
        g = frag.geometry
        if isinstance(g, Mesh):
            geom = Mesh(name=g.name, vertices=g.vertices, faces=g.faces, normals=g.normals,
                        scalars={**g.scalars, "contact_distance": dist}, color=palette_color(k), unit=g.unit)
        else:
            geom = PointCloud(name=g.name, points=g.points, normals=g.normals, colors=g.colors,
                              scalars={**g.scalars, "contact_distance": dist}, color=palette_color(k), unit=g.unit)
        items.append(Fragment(frag.name, geom, pose, source=frag.source))
    return Fragments(name=name, items=items, unit=fragments.unit,
                     metadata={"reassembly": "poses map file coordinates to the assembled frame",
                               "scalars": "contact_distance: distance to the nearest other piece"})


def assemble(fragments: Fragments,
             method: Literal["combined", "geometric", "learned"] = "combined",
             points: Annotated[int, Param(min=1000, max=50_000, help="surface samples per object")] = 8000,
             seed: Annotated[int, Param(min=0, help="random seed (RANSAC, sampling)")] = 0,
             *, progress: Progress = NO_PROGRESS) -> TaskResult:
    """Put the fragments back together: poses per file, an assembled coloured PLY and a contact map."""
    from kintsugi_reassembly.pipeline import run

    progress(0.0, "reading fragments")
    result = run(fragments, method=method, seed=seed, points_total=points, progress=progress)
    progress(0.95, "writing outputs")
    records = [{"file": f, "transform": p.tolist()} for f, p in zip(result.files, result.poses, strict=True)]
    doc = {
        "fragments": records,
        "anchor": result.files[result.anchor],
        "scores": result.scores,
        "alternatives": result.alternatives,
        "notices": result.notices,
        "units": fragments.unit,
        "note": "transform maps the file's own coordinates into the assembled frame (4x4 row-major)",
    }
    layer = _posed_layer(fragments, result.poses, f"{fragments.name} assembled")
    layer.metadata["alternatives"] = result.alternatives  # the review panel offers them
    layer.metadata["scores"] = result.scores
    table = Table.from_records(
        [{"file": f, "contact_mean": float(np.mean(d < 0.01 * result.prepared.scale))}
         for f, d in zip(result.files, result.contact_distance, strict=True)],
        name=f"{fragments.name} contact")
    progress(1.0, f"assembled {len(records)} fragments")
    return TaskResult(
        layers=[layer, table],
        files={"assembly.json": doc, "assembled.ply": _assembled_ply(fragments, result.poses)},
        summary={"fragments": len(records), "score": round(float(result.scores["score"]), 4),
                 "contact": round(float(result.scores["contact"]), 4),
                 "unmatched": len(result.scores["unmatched"]), "seconds": round(result.seconds, 2),
                 # shown with the result (CLI output, the window's log), not only inside assembly.json
                 **({"notices": "; ".join(result.notices)} if result.notices else {})})


def _file_key(frag) -> str:
    return Path(frag.source).name if frag.source else f"{frag.name}.ply"


def _poses_by_file(doc: dict, what: str) -> dict[str, np.ndarray]:
    from kintsugi.core import check_rigid

    if not isinstance(doc, dict) or not isinstance(doc.get("fragments"), list):
        raise ValueError(f"{what} has no 'fragments' list")
    out = {}
    for rec in doc["fragments"]:
        try:
            out[str(rec["file"])] = check_rigid(np.asarray(rec["transform"], float))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{what}: bad entry {rec!r:.80}: {e}") from None
    return out


def sample_points(fragments: Fragments, total: int = 5000, seed: int = 0) -> list[np.ndarray]:
    """Points per piece in file coordinates, ~``total`` per object split by area (GARF: 5000)."""
    from kintsugi_reassembly.prep import face_areas, sample_mesh

    rng = np.random.default_rng(seed)
    areas = []
    for frag in fragments:
        g = frag.geometry
        areas.append(face_areas(g.vertices, g.faces).sum() if isinstance(g, Mesh) and len(g.faces) else None)
    known = [a for a in areas if a is not None]
    fill = float(np.median(known)) if known else 1.0
    w = np.array([a if a is not None else fill for a in areas])
    out = []
    for frag, wk in zip(fragments, w, strict=True):
        g = frag.geometry
        n = max(20, int(round(total * wk / w.sum())))
        if isinstance(g, Mesh) and len(g.faces):
            out.append(sample_mesh(g.vertices, g.faces, n, rng)[0])
        else:
            pts = g.vertices if isinstance(g, Mesh) else g.points
            out.append(pts[rng.permutation(len(pts))[:n]])
    return out


def evaluate(fragments: Fragments, assembly: Path, gt: Path, *, progress: Progress = NO_PROGRESS) -> TaskResult:
    """GARF metrics of an assembly against the ground truth, largest piece as anchor."""
    from kintsugi.io import read_json
    from kintsugi_reassembly.metrics import evaluate as garf

    progress(0.1, "reading transforms")
    pred = _poses_by_file(read_json(assembly), str(assembly))
    true = _poses_by_file(read_json(gt), str(gt))
    keys = [_file_key(f) for f in fragments]
    missing = [k for k in keys if k not in pred or k not in true]
    if missing:
        raise ValueError(f"no transform for {', '.join(missing[:5])} in the assembly or the ground truth")
    progress(0.3, "sampling points")
    points = sample_points(fragments)
    from kintsugi_reassembly.prep import face_areas

    sizes = [face_areas(f.geometry.vertices, f.geometry.faces).sum()
             if isinstance(f.geometry, Mesh) and len(f.geometry.faces) else len(p)
             for f, p in zip(fragments, points, strict=True)]
    anchor = int(np.argmax(sizes))
    metrics = garf([pred[k] for k in keys], [true[k] for k in keys], points, anchor)
    metrics["anchor"] = keys[anchor]
    progress(1.0, f"PA {metrics['part_accuracy']:.2f}")
    table = Table.from_records([{k: v for k, v in metrics.items()}], name="reassembly metrics")
    return TaskResult(layers=[table], files={"metrics.json": metrics},
                      summary={k: metrics[k] for k in ("part_accuracy", "rmse_r_deg", "rmse_t", "chamfer")})



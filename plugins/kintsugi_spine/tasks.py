"""Task ``spine.height_loss``: vertebral height loss, Genant grade and height-loss maps.

Pure function: a vertebra label map (and optionally the CT) in, a TaskResult out — vertebrae.json,
one PNG per level, height_loss_maps.npz and report.html as files; a vertebra Table, per-body meshes
coloured by local height loss and the per-level figures as layers for the GUI.
"""

from __future__ import annotations

import io
from typing import Annotated, Literal

import numpy as np
from PIL import Image
from scipy import ndimage

from kintsugi.core import Image2D, LabelMap, Mesh, Table, Volume
from kintsugi.plugins import NO_PROGRESS, Param, Progress, TaskResult, Weights
from kintsugi_spine import measure as M
from kintsugi_spine.analyze import Analysis, analyze
from kintsugi_spine.grading import GRADE_COLOURS
from kintsugi_spine.render import figure, loss_map, report_html

WEIGHTS_NAME = "height_generator"


def _net_predict(weights: Weights | None, device: str):
    from kintsugi_spine import model

    if weights is None or WEIGHTS_NAME not in weights:
        raise ValueError("the learned reference needs the plugin's weights (height_generator); "
                         "use --reference neighbours")
    dev = model.pick_device(device)
    net = model.load(weights.load(WEIGHTS_NAME, dev), dev)
    return lambda x: model.predict(net, x, dev)


def _body_hu(a: Analysis, image: Volume, labels: LabelMap) -> tuple[list[float | None], str]:
    """Median CT value inside each body (cancellous bone: a hint of bone density), any grid."""
    same = image.geometry == labels.geometry and image.shape == labels.shape
    values, outside = [], 0
    m = np.linalg.inv(image.geometry.direction @ np.diag(image.geometry.spacing))
    for vb in a.vertebrae:
        assert vb.occupancy is not None
        occ = vb.occupancy
        inner = ndimage.binary_erosion(occ >= 0.99, iterations=3)
        k = np.argwhere(inner)
        if len(k) == 0:
            values.append(None)
            continue
        k = k[:: max(1, len(k) // 4000)]
        g = M.grid_coords()
        u = vb.u_mid + g[k[:, 2]] * vb.half_w
        v = vb.v_mid + g[k[:, 1]] * vb.half_d
        w = vb.wf0 + k[:, 0] * vb.wstep  # type: ignore[attr-defined]
        phys = vb.local_to_physical(u, v, w)
        idx = (phys - np.asarray(image.geometry.origin)) @ m.T  # ITK (x, y, z)
        size = np.array(image.shape[::-1])
        inside = np.all((idx >= -0.5) & (idx <= size - 0.5), axis=1)
        if inside.mean() < 0.5:
            outside += 1
            values.append(None)
            continue
        hu = ndimage.map_coordinates(image.data.astype(np.float32), idx[inside][:, ::-1].T, order=1)
        values.append(round(float(np.median(hu)), 1))
    if outside == len(a.vertebrae):
        raise ValueError("the CT and the label map do not overlap in space (check that they belong together)")
    note = "CT on the labels' grid" if same else "CT on a different grid: sampled at the bodies' physical positions"
    if outside:
        note += f"; {outside} body(ies) outside the CT"
    return values, note


def _mesh(vb: M.Vertebra, loss: np.ndarray, record: dict) -> Mesh | None:
    """Surface of the body with the height loss of the column under each vertex."""
    from skimage.measure import marching_cubes

    occ = vb.occupancy
    if occ is None or occ.max() < 0.5:
        return None
    n = M.GRID_N
    cell = 2 * M.GRID_EXTENT / (n - 1)
    verts, faces, _, _ = marching_cubes(np.pad(occ, 1), level=0.5, step_size=2)
    a = verts - 1.0
    w = vb.wf0 + a[:, 0] * vb.wstep  # type: ignore[attr-defined]
    t = -M.GRID_EXTENT + a[:, 1] * cell
    s = -M.GRID_EXTENT + a[:, 2] * cell
    phys = vb.local_to_physical(vb.u_mid + s * vb.half_w, vb.v_mid + t * vb.half_d, w)
    tri = phys[faces]
    if np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() < 0:
        faces = faces[:, ::-1]  # outward normals whatever the handedness of the frame
    valid = np.isfinite(loss)
    if valid.any():
        _, (ii, jj) = ndimage.distance_transform_edt(~valid, return_indices=True)
        filled = loss[ii, jj]
    else:
        filled = np.zeros_like(loss)
    scal = ndimage.map_coordinates(filled, [a[:, 1], a[:, 2]], order=1, mode="nearest")
    colour = GRADE_COLOURS[record["genant_grade"]]
    return Mesh(vertices=phys, faces=faces, scalars={"height_loss": np.clip(scal, -1, 1).astype(np.float32)},
                color=colour, name=f"{vb.level} body", metadata={"level": vb.level, "label": vb.label,
                                                                   "genant_grade": record["genant_grade"],
                                                                   # 0 to grade 3's 40 % and beyond; a column
                                                                   # taller than its reference is just 0
                                                                   "clim": [0.0, 0.5]})


def height_loss(
    labels: LabelMap,
    image: Volume | None = None,
    scheme: Annotated[Literal["auto", "verse", "totalseg"],
                      Param(help="label numbering: VerSe (1-25, 28 T13) or TotalSegmentator v2 (26 S1 ... 50 C1)")]
    = "auto",
    reference: Annotated[Literal["neighbours", "learned"],
                         Param(help="pre-fracture reference: healthy-looking neighbours' height maps, "
                                    "or the small generator trained on phantoms")] = "neighbours",
    meshes: Annotated[bool, Param(help="body surfaces coloured by local height loss (3D view)")] = True,
    *,
    progress: Progress = NO_PROGRESS,
    device: str = "cpu",
    weights: Weights | None = None,
) -> TaskResult:
    """Per-vertebra height loss (anterior/middle/posterior), Genant grade, morphology and maps."""
    progress(0.0, "reading labels")
    net = _net_predict(weights, device) if reference == "learned" else None
    a = analyze(labels, scheme=scheme, method=reference, net_predict=net, progress=progress)
    notes: dict[str, str] = {"numbering": a.numbering.note, **a.skipped}
    hu: list[float | None] = [None] * len(a.vertebrae)
    if image is not None:
        progress(0.86, "CT values in the bodies")
        hu, notes["CT"] = _body_hu(a, image, labels)

    progress(0.88, "maps and figures")
    files: dict[str, object] = {}
    arrays: dict[str, np.ndarray] = {"grid": M.grid_coords()}
    pngs: dict[str, bytes] = {}
    layers: list = []
    rows = []
    for vb, ref, rec, h in zip(a.vertebrae, a.refs, a.records, hu, strict=True):
        assert vb.hmap is not None and vb.footprint is not None
        sec = M.sections(vb.hmap, ref.ref_map, vb.footprint)
        lmap = loss_map(vb.hmap, ref.ref_map, vb.footprint)
        png = figure(vb.level, vb.hmap, ref.ref_map, vb.footprint, sec["masks"], vb.half_w, vb.half_d, rec)
        pngs[vb.level] = png
        files[f"{vb.level}_height_loss.png"] = png
        arrays[f"{vb.level}_height_mm"] = vb.hmap.astype(np.float32)
        arrays[f"{vb.level}_reference_mm"] = ref.ref_map.astype(np.float32)
        arrays[f"{vb.level}_loss"] = lmap.astype(np.float32)
        arrays[f"{vb.level}_footprint"] = vb.footprint
        arrays[f"{vb.level}_half_extent_mm"] = np.array([vb.half_w, vb.half_d])
        if h is not None:
            rec["body_ct_median_hu"] = h
        rows.append({
            "level": vb.level, "label": vb.label, "genant_grade": rec["genant_grade"],
            # a named shape under grade 1 is not a fracture: the table says so, as the report does
            "morphology": ("borderline " if rec["borderline"] else "") + rec["morphology"],
            **{f"{k}_mm": rec["heights_mm"][k] for k in M.SECTIONS},
            **{f"{k}_ref_mm": rec["reference_heights_mm"][k] for k in M.SECTIONS},
            **{f"loss_{k}_pct": round(100 * rec["height_loss"][k], 1) for k in (*M.SECTIONS, "overall")},
            "reference": rec["reference"]["method"] + (" (flagged)" if rec["reference"]["flagged"] else ""),
            "body_ct_hu": h,
            "x_mm": rec["body_centroid_mm"][0], "y_mm": rec["body_centroid_mm"][1], "z_mm": rec["body_centroid_mm"][2],
            "map_png": f"{vb.level}_height_loss.png",
            # For the Table dock: a row click shows this level's map; the row wears its grade's colour.
            "layer": f"{vb.level} height loss", "color": list(GRADE_COLOURS[rec["genant_grade"]]),
        })
        if meshes:
            mesh = _mesh(vb, lmap, rec)
            if mesh is not None:
                layers.append(mesh)
        fig = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        layers.append(Image2D(data=fig, name=f"{vb.level} height loss", visible=False,
                              metadata={"level": vb.level, "kind": "height_loss_figure"}))
    table = Table.from_records(rows, name=f"{labels.name} vertebrae",
                               metadata={"grade_colours": {str(k): list(v) for k, v in GRADE_COLOURS.items()},
                                         "centre_columns": ["x_mm", "y_mm", "z_mm"], "numbering": a.numbering.scheme})
    layers.insert(0, table)

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    files["vertebrae.json"] = {"vertebrae": a.records, "numbering": a.numbering.scheme,
                               "reference_method": reference, "notes": notes}
    files["height_loss_maps.npz"] = buf.getvalue()
    info = {"source": labels.name, "numbering": a.numbering.note, "method": reference, "notes": notes}
    files["report.html"] = report_html(a.records, pngs, info)
    files["vertebrae.csv"] = table
    progress(1.0, f"{len(a.records)} vertebrae")
    fractured = [r["level"] for r in a.records if r["genant_grade"] > 0]
    return TaskResult(layers=layers, files=files, summary={
        "vertebrae": len(a.records), "numbering": a.numbering.scheme, "reference": reference,
        "fractured (grade >= 1)": ", ".join(fractured) or "none",
        "max grade": max((r["genant_grade"] for r in a.records), default=0)})

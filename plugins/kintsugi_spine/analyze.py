"""The whole measurement, without files or layers: labels in, one record per vertebra out.

Kept apart from tasks.py so the bench and train.py run exactly the code the task runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kintsugi.core import LabelMap
from kintsugi_spine import measure as M
from kintsugi_spine import reference as R
from kintsugi_spine.grading import genant_grade, morphology
from kintsugi_spine.levels import Numbering, detect, measurable

METHODS = ("neighbours", "learned")


@dataclass
class Analysis:
    numbering: Numbering
    vertebrae: list[M.Vertebra]  # measured, superior first
    records: list[dict]  # one per measured vertebra (contract fields plus extras)
    refs: list[R.Reference]
    skipped: dict[str, str] = field(default_factory=dict)  # "L5 (27)" -> why
    method: str = "neighbours"


def _noop(frac: float, msg: str) -> None:
    return None


def _result(vb: M.Vertebra, ref: R.Reference) -> tuple[dict, dict]:
    assert vb.hmap is not None and vb.footprint is not None
    sec = M.sections(vb.hmap, ref.ref_map, vb.footprint)
    loss = {k: (sec["ref"][k] - sec["obs"][k]) / sec["ref"][k] if sec["ref"][k] > 0 else 0.0
            for k in (*M.SECTIONS, "overall")}
    grade = genant_grade(max(loss[k] for k in M.SECTIONS))
    return sec, {"loss": loss, "grade": grade, "morphology": morphology(loss, grade)}


def analyze(labels: LabelMap, scheme: str = "auto", method: str = "neighbours",
            net_predict: Callable[[np.ndarray], np.ndarray] | None = None,
            progress: Callable[[float, str], None] = _noop) -> Analysis:
    """Measure every vertebral body and grade it against a pre-fracture reference."""
    if method not in METHODS:
        raise ValueError(f"reference method must be one of {', '.join(METHODS)}, got {method!r}")
    numbering = detect(labels.present_labels(), scheme)
    skipped = {f"{name} ({value})": "not measured: " + ("atlas and axis have no comparable body"
                                                         if name in ("C1", "C2") else "sacrum")
               for value, name in numbering.levels.items() if not measurable(name)}
    skipped.update({f"label {v}": why for v, why in numbering.ignored.items()})
    levels = {v: n for v, n in numbering.levels.items() if measurable(n)}
    if not levels:
        raise ValueError("no measurable vertebra (C3-L6) among the labels "
                         f"{sorted(numbering.levels)} ({numbering.scheme} numbering)")
    progress(0.05, f"{len(levels)} vertebrae ({numbering.scheme} numbering)")
    verts = M.collect(labels, levels)
    if verts:
        med = float(np.median([v.voxels for v in verts]))
        partial = [v for v in verts if v.voxels < 0.4 * med or (v.touches_edge and v.voxels < 0.8 * med)]
        for v in partial:
            skipped[f"{v.level} ({v.label})"] = "not measured: cut by the edge of the volume or incomplete label"
        verts = [v for v in verts if v not in partial]
    if not verts:
        raise ValueError("no complete vertebra in the label map (all are cut by the volume edge)")
    M.locate_bodies(verts, labels)
    for i, vb in enumerate(verts):
        progress(0.1 + 0.6 * i / len(verts), f"measuring {vb.level}")
        M.measure(verts, labels, i)
    cut = [vb for vb in verts if vb.body_cut_by_edge(labels)]
    for vb in cut:
        skipped[f"{vb.level} ({vb.label})"] = "not measured: the edge of the volume cuts through its body"
    verts = [vb for vb in verts if vb not in cut]
    if not verts:
        raise ValueError("no complete vertebral body in the label map (the volume's edges cut through all)")

    # Levels that look fractured are not borrowed from (robust to fractured neighbours).
    suspects = R.find_suspects(verts)
    progress(0.75, "pre-fracture references")
    refs: list[R.Reference] = []
    preds = None
    if method == "learned" and len(verts) > 1:
        if net_predict is None:
            raise ValueError("the learned reference needs the model weights")
        preds = net_predict(np.stack([R.learned_inputs(verts, i) for i in range(len(verts))]))
    for i, vb in enumerate(verts):
        ref = R.neighbour_reference(verts, i, suspects)
        if ref is None:
            refs.append(R.norm_reference(vb))
        elif preds is not None and R.neighbour_slots(verts, i):
            refs.append(R.conform(R.learned_reference(verts, i, preds[i]), vb))
        else:
            refs.append(R.conform(ref, vb))

    records = []
    for vb, ref in zip(verts, refs, strict=True):
        sec, res = _result(vb, ref)
        rec = {
            "label": vb.label,
            "level": vb.level,
            "heights_mm": {k: round(sec["obs"][k], 2) for k in M.SECTIONS},
            "reference_heights_mm": {k: round(sec["ref"][k], 2) for k in M.SECTIONS},
            "height_loss": {k: round(float(np.clip(res["loss"][k], 0.0, 1.0)), 4) for k in (*M.SECTIONS, "overall")},
            "genant_grade": res["grade"],
            "morphology": res["morphology"],
            "borderline": bool(res["grade"] == 0 and res["morphology"] != "normal"),
            "signed_height_loss": {k: round(res["loss"][k], 4) for k in (*M.SECTIONS, "overall")},
            "reference": {"method": ref.method, "from_levels": ref.used, "flagged": ref.flagged,
                          **({"note": ref.note} if ref.note else {})},
            "body_centroid_mm": [round(float(x), 2) for x in vb.body_centroid],
            "axes": {"left": vb.frame[:, 0].round(5).tolist(), "anterior": vb.frame[:, 1].round(5).tolist(),
                     "superior": vb.frame[:, 2].round(5).tolist()},
            "body_size_mm": {"width": round(vb.width_mm, 1), "depth": round(vb.depth_mm, 1)},
        }
        if vb.notes:
            rec["notes"] = list(vb.notes)
        records.append(rec)
    progress(0.85, "graded")
    return Analysis(numbering, verts, records, refs, skipped, method)

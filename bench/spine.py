"""spine.height_loss: accuracy on held-out phantoms (both reference methods), real data, speed.

Phantoms: ``kintsugi.samples.spine.generate`` with seeds 0..N-1 (the learned reference trained on
seeds 100000+), T11-L4 with the seed's default wedge/biconcave/crush fractures (Genant 1, 2, 3), on
three grids (1 mm; 0.8 x 0.8 x 1 mm oblique 20 deg; 0.7 x 0.7 x 2 mm oblique 35 deg). Real data from
../shared/data/spine when present: TotalSegmentator's example (3 mm) and HealthiVert's mask 0007.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from bench.results_table import Row, machine, today

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spine"
SECTIONS = ("anterior", "middle", "posterior")
GRIDS = [((1.0, 1.0, 1.0), 0.0), ((0.8, 0.8, 1.0), 20.0), ((0.7, 0.7, 2.0), 35.0)]
N_PHANTOMS = 24


def _phantom_accuracy(method: str, phantoms: list) -> dict[str, float]:
    from kintsugi.plugins import run_task

    errs, exact, morph, healthy_ok, healthy_plain = [], [], [], [], []
    for ph in phantoms:
        res = run_task("spine.height_loss", labels=ph.labels, reference=method, meshes=False)
        for rec, tr in zip(res.files["vertebrae.json"]["vertebrae"], ph.truth["vertebrae"], strict=True):
            errs += [100 * abs(rec["signed_height_loss"][k] - tr["height_loss"][k]) for k in SECTIONS]
            exact.append(rec["genant_grade"] == tr["genant_grade"])
            if tr["genant_grade"] > 0:
                morph.append(rec["morphology"] == tr["morphology"])
            else:
                healthy_ok.append(rec["genant_grade"] == 0)
                healthy_plain.append(rec["morphology"] == "normal")
    return {"mae": float(np.mean(errs)), "p95": float(np.percentile(errs, 95)), "max": float(np.max(errs)),
            "exact": 100 * float(np.mean(exact)), "morph": 100 * float(np.mean(morph)), "n": len(exact),
            "n_fractured": len(morph), "healthy_ok": 100 * float(np.mean(healthy_ok)),
            "healthy_plain": 100 * float(np.mean(healthy_plain)), "n_healthy": len(healthy_ok)}


def _real(rows: list[Row], where: str, when: str) -> None:
    from kintsugi.plugins import run_task

    cases = {
        "TotalSegmentator example (3 mm, totalseg)": (DATA / "totalsegmentator" / "example_ct_vertebrae.nii.gz",
                                                     DATA / "totalsegmentator" / "example_ct.nii.gz"),
        "HealthiVert 0007 mask (1 mm, verse)": (DATA / "healthivert_0007" / "0007_msk.nii.gz", None),
    }
    for name, (labels, image) in cases.items():
        if not labels.exists():
            print(f"real data missing: {labels}")
            continue
        kw = {"labels": str(labels)} | ({"image": str(image)} if image is not None and image.exists() else {})
        t0 = time.perf_counter()
        res = run_task("spine.height_loss", **kw)
        dt = time.perf_counter() - t0
        recs = res.files["vertebrae.json"]["vertebrae"]
        graded = ", ".join(f"{r['level']} {r['genant_grade']}" for r in recs)
        print(f"{name}: {dt:.1f} s; grades {graded}")
        for r in recs:
            h = r["heights_mm"]
            print(f"   {r['level']}: A/M/P {h['anterior']:.1f} / {h['middle']:.1f} / {h['posterior']:.1f} mm, "
                  f"loss {100 * r['height_loss']['overall']:.0f} %, grade {r['genant_grade']} {r['morphology']}")
        rows.append(Row("spine", f"real {name}: runs, levels measured", str(len(recs)), "vertebrae", where, when))
        rows.append(Row("spine", f"real {name}: Genant grade per level", graded, "", where, when))
        l1 = next((r for r in recs if r["level"] == "L1"), None)
        if l1 is not None:
            h = l1["heights_mm"]
            rows.append(Row("spine", f"real {name}: L1 body height A/M/P",
                            f"{h['anterior']:.1f} / {h['middle']:.1f} / {h['posterior']:.1f}", "mm", where, when))


def _timing(repeats: int) -> tuple[float, float, float, int]:
    from kintsugi.plugins import run_task
    from kintsugi.samples.spine import generate
    from kintsugi_spine.analyze import analyze

    levels = [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    ph = generate(seed=7, levels=levels, spacing=(1.0, 1.0, 1.0))
    full, cpu, core = [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_task("spine.height_loss", labels=ph.labels, image=ph.ct)
        full.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        t0 = time.perf_counter()
        analyze(ph.labels)
        core.append(time.perf_counter() - t0)
    n = len(res.files["vertebrae.json"]["vertebrae"])
    return statistics.median(full), statistics.median(cpu), statistics.median(core), n


def run(workdir: Path, repeats: int = 3) -> list[Row]:
    import torch

    from kintsugi.samples.spine import generate

    torch.set_num_threads(1)
    where, when = machine(), today()
    rows: list[Row] = []
    phantoms = [generate(seed=s, spacing=GRIDS[s % 3][0], oblique_deg=GRIDS[s % 3][1]) for s in range(N_PHANTOMS)]
    for method in ("neighbours", "learned"):
        m = _phantom_accuracy(method, phantoms)
        print(f"{method}: section error {m['mae']:.2f} pp (p95 {m['p95']:.1f}, max {m['max']:.1f}), Genant exact "
              f"{m['exact']:.1f} % of {m['n']}, morphology {m['morph']:.0f} % of {m['n_fractured']} fractured, "
              f"healthy graded 0: {m['healthy_ok']:.0f} %, healthy given no shape: {m['healthy_plain']:.0f} %",
              flush=True)
        tag = f"phantoms seeds 0-{N_PHANTOMS - 1}, reference {method}"
        rows += [
            Row("spine", f"{tag}: section height-loss error (mean abs; goal <= 3)", f"{m['mae']:.2f}", "pp", where,
                when),
            Row("spine", f"{tag}: section height-loss error p95 / max", f"{m['p95']:.1f} / {m['max']:.1f}", "pp",
                where, when),
            Row("spine", f"{tag}: Genant grade exact (goal >= 90)", f"{m['exact']:.1f}", f"% of {m['n']}", where,
                when),
            Row("spine", f"{tag}: morphology right, fractured (goal 100)", f"{m['morph']:.0f}",
                f"% of {m['n_fractured']}", where, when),
            Row("spine", f"{tag}: healthy vertebrae graded 0 / given no shape (not even borderline)",
                f"{m['healthy_ok']:.0f} / {m['healthy_plain']:.0f}", f"% of {m['n_healthy']}", where, when),
        ]
    _real(rows, where, when)
    full, cpu, core, n = _timing(repeats)
    print(f"{n} vertebrae at 1 mm: task {full:.2f} s wall, {cpu:.2f} s CPU (with CT, figures, meshes), "
          f"measurement alone {core:.2f} s")
    rows.append(Row("spine", f"time, {n} vertebrae (T1-L5) at 1 mm, whole task with CT, maps, meshes (goal <= 10)",
                    f"{full:.2f}", "s", where, when))
    rows.append(Row("spine", f"CPU time of the same task, {n} vertebrae at 1 mm (one thread)", f"{cpu:.2f}", "s",
                    where, when))
    rows.append(Row("spine", f"time, {n} vertebrae at 1 mm, measurement and grading only", f"{core:.2f}", "s",
                    where, when))
    return rows

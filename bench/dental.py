"""Dental plugin: held-out phantom accuracy (RAIL weights vs supervised-only) and the time for a 256^3 CBCT."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from bench.results_table import Row, machine, today

WEIGHTS = Path(__file__).resolve().parents[1] / "plugins" / "kintsugi_dental" / "weights"


def _big_volume():
    """Both jaws at 0.25 mm, padded with air (and noise) to a 256^3 grid: a realistic full-field CBCT size."""
    from kintsugi.core import Geometry, Volume
    from kintsugi.samples import dental

    ph = dental.generate(9100, jaws=("upper", "lower"))  # 0.4 mm, upsampled: drawing at 0.25 mm takes minutes
    src = ndi.zoom(ph.cbct.data, 1.6, order=1, grid_mode=True, mode="nearest")[:256, :256, :256]
    rng = np.random.default_rng(0)
    data = (rng.normal(-1000, 20, (256, 256, 256))).astype(np.int16)
    off = [(256 - s) // 2 for s in src.shape]
    data[off[0]:off[0] + src.shape[0], off[1]:off[1] + src.shape[1], off[2]:off[2] + src.shape[2]] = src
    g = ph.cbct.geometry
    sp = np.asarray(g.spacing) / 1.6
    origin = np.asarray(g.origin) - 0.1875 * np.asarray(g.spacing) - np.asarray(off[::-1]) * sp
    return Volume(name="cbct256", data=data, geometry=Geometry(tuple(sp), tuple(origin))), len(ph.truth)


def run(workdir: Path, repeats: int = 3) -> list[Row]:
    import torch

    import kintsugi
    from kintsugi.plugins.weights import WeightsFile, sha256_of
    from kintsugi_dental.evaluate import HELD_OUT_SEEDS, evaluate
    from kintsugi_dental.model import load_model

    where, when = machine(), today()
    rows: list[Row] = []
    shipped = sha256_of(WEIGHTS / "dental_unet.safetensors")
    for name, file in (("RAIL semi-supervised", "dental_unet_rail.safetensors"),
                       ("supervised only", "dental_unet_supervised.safetensors")):
        if sha256_of(WEIGHTS / file) == shipped:
            name += " (ships)"
        model = load_model(WeightsFile(name, WEIGHTS / file).load("cpu"))
        ev = evaluate(model, HELD_OUT_SEEDS, verbose=True)
        n = len(HELD_OUT_SEEDS)
        print(f"dental {name}: dice {ev['dice']:.3f} f1 {ev['f1']:.3f} tooth dice {ev['tooth_dice']:.3f}", flush=True)
        what = f"{name}, {n} held-out phantoms (seeds {HELD_OUT_SEEDS[0]}-{HELD_OUT_SEEDS[-1]})"
        rows += [Row("dental", f"{what}: binary Dice (goal >= 0.90)", f"{ev['dice']:.3f}", "", where, when),
                 Row("dental", f"{what}: instance F1 at IoU>=0.5 (goal >= 0.90)", f"{ev['f1']:.3f}", "", where, when),
                 Row("dental", f"{what}: per-tooth Dice (mean)", f"{ev['tooth_dice']:.3f}", "", where, when),
                 Row("dental", f"{what}: tooth count exact", f"{ev['teeth_exact']}/{n}", "scans", where, when)]
    vol, n_true = _big_volume()
    times, found = [], 0
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        res = kintsugi.run("dental.segment_teeth", image=vol, output=workdir / "dental256")
        times.append(time.perf_counter() - t0)
        found = res.summary["teeth"]
    print(f"dental 256^3: {statistics.median(times):.1f} s, {found}/{n_true} teeth, "
          f"{torch.get_num_threads()} threads", flush=True)
    rows.append(Row("dental", f"256^3 CBCT (0.25 mm, both jaws, {n_true} teeth) segment + meshes + files, "
                    f"{torch.get_num_threads()} threads (goal <= 60 s)", f"{statistics.median(times):.1f}", "s",
                    where, when))
    return rows

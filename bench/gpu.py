"""The models on a CUDA device: the same answers as on the CPU, and the time each takes there.

Skipped (no rows) where torch sees no CUDA device, which is every machine the project is developed and
tested on; it ran on a lent GPU machine (see the rows' machine column). What it checks is what a user
with a GPU gets: the task picks the device it is given, moves the model and the data there, and gives
the answer the CPU gives (a mask, labels or losses that agree), only sooner. Reassembly runs on the
CPU only (its models are tiny and its time is in the geometry), so it is not here.

Found on an H200 (2026-11-28): every answer agrees (crack masks IoU 0.9998, identical losses and teeth),
and the GPU saves little, because the networks are small: of the crack task's 1.9 s on the GPU, 0.8 s is
the distance transform of the width measurement and most of the rest Retinex in numpy.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from bench.results_table import Row, machine, today

DEVICES = ("cpu", "cuda")  # the CPU first: its answer is the one the GPU must give


def _timed(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up: CUDA context, kernels, weights
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def _crack(repeats: int) -> list[tuple[str, str, str]]:
    import kintsugi
    from kintsugi.core import Image2D
    from kintsugi.samples.crack import render_scene

    img, _ = render_scene(np.random.default_rng(1), (512, 512))
    img = np.tile(img, (5, 5, 1))[:2048, :2048].copy()
    photo = Image2D(name="bench", data=img, modality="photo")
    masks, times = {}, {}
    for dev in DEVICES:
        times[dev], res = _timed(lambda d=dev: kintsugi.run("crack.segment_layers", image=photo, device=d), repeats)
        masks[dev] = res.layers[0].data > 0
        print(f"crack 2048^2 on {dev}: {times[dev]:.2f} s", flush=True)
    a, b = masks["cpu"], masks["cuda"]
    iou = float((a & b).sum() / max((a | b).sum(), 1))
    return [("crack", "2048x2048 photo, task in memory, on the GPU (on the same machine's CPU)",
             f"{times['cuda']:.2f} ({times['cpu']:.2f})", "s"),
            ("crack", "2048x2048 photo: crack-mask IoU between GPU and CPU runs (1 = identical)", f"{iou:.4f}", "")]


def _dental(repeats: int) -> list[tuple[str, str, str]]:
    import kintsugi
    from bench.dental import _big_volume

    vol, n_true = _big_volume()
    labels, times, teeth = {}, {}, {}
    for dev in DEVICES:
        times[dev], res = _timed(lambda d=dev: kintsugi.run("dental.segment_teeth", image=vol, device=d), repeats)
        lab = next(x for x in res.layers if x.kind == "labels")
        labels[dev], teeth[dev] = lab.data > 0, res.summary["teeth"]
        print(f"dental 256^3 on {dev}: {times[dev]:.2f} s, {teeth[dev]} teeth", flush=True)
    a, b = labels["cpu"], labels["cuda"]
    dice = float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
    return [("dental", f"256^3 CBCT ({n_true} teeth), task in memory, on the GPU (on the same machine's CPU)",
             f"{times['cuda']:.2f} ({times['cpu']:.2f})", "s"),
            ("dental", "256^3 CBCT: tooth Dice between GPU and CPU runs; teeth found GPU / CPU",
             f"{dice:.4f}; {teeth['cuda']} / {teeth['cpu']}", "")]


def _spine(repeats: int) -> list[tuple[str, str, str]]:
    import kintsugi
    from kintsugi.samples import spine

    ph = spine.generate(seed=0)
    losses, times = {}, {}
    for dev in DEVICES:
        times[dev], res = _timed(lambda d=dev: kintsugi.run("spine.height_loss", labels=ph.labels, reference="learned",
                                                           meshes=False, device=d), repeats)
        recs = res.files["vertebrae.json"]["vertebrae"]
        losses[dev] = np.array([[r["signed_height_loss"][k] for k in ("anterior", "middle", "posterior")]
                                for r in recs])
        print(f"spine learned on {dev}: {times[dev]:.2f} s", flush=True)
    diff = float(np.abs(losses["cpu"] - losses["cuda"]).max()) * 100
    return [("spine", "phantom seed 0, learned reference, task in memory, on the GPU (on the same machine's CPU)",
             f"{times['cuda']:.2f} ({times['cpu']:.2f})", "s"),
            ("spine", "learned reference: largest section-loss difference between GPU and CPU runs", f"{diff:.3f}",
             "pp")]


def run(workdir: Path, repeats: int = 3) -> list[Row]:
    import torch

    if not torch.cuda.is_available():
        print("gpu: no CUDA device here, nothing measured")
        return []
    where = f"{_gpu_name()} + {machine()}"
    when = today()
    rows: list[Row] = []
    for part in (_crack, _spine, _dental):
        try:
            found = part(repeats)
        except Exception as e:  # one model failing on the GPU is a finding, not the end of the check
            name = part.__name__.strip("_")
            print(f"{name} failed on the GPU: {type(e).__name__}: {e}", flush=True)
            found = [(name, "runs on the GPU", f"FAILED: {type(e).__name__}: {e}"[:120], "")]
        rows += [Row(f"gpu {b}", m, v, u, where, when) for b, m, v, u in found]
    return rows

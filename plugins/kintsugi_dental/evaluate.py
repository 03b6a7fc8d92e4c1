"""Held-out evaluation of a model through the whole task pipeline, at the phantom's native 0.4 mm grid."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from kintsugi.samples import dental

from .data import jaws_for
from .infer import segment_array
from .metrics import binary_dice, instance_scores

HELD_OUT_SEEDS = tuple(range(9000, 9009))  # disjoint from training (100-139) and from the sample (0-2)


def evaluate(model: torch.nn.Module, seeds: Iterable[int] = HELD_OUT_SEEDS, device: str = "cpu",
             verbose: bool = False) -> dict[str, Any]:
    rows = []
    for seed in seeds:
        ph = dental.generate(seed, jaws=jaws_for(seed))
        t0 = time.perf_counter()
        seg = segment_array(model, ph.cbct.data, tuple(ph.cbct.geometry.spacing[::-1]), device)
        dt = time.perf_counter() - t0
        truth = ph.labels.data
        row = {"seed": seed, "jaws": "+".join(jaws_for(seed)), "dice": binary_dice(seg.labels, truth),
               "seconds": dt, **instance_scores(seg.labels, truth)}
        rows.append(row)
        if verbose:
            print(f"  seed {seed} {row['jaws']:<11} dice {row['dice']:.3f} f1 {row['f1']:.3f} "
                  f"tooth {row['tooth_dice']:.3f} teeth {row['n_pred']}/{row['n_true']} {dt:.1f}s", flush=True)
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    return {"dice": float(np.mean([r["dice"] for r in rows])),
            "f1": 2 * tp / max(2 * tp + fp + fn, 1),
            "tooth_dice": float(np.mean([r["tooth_dice"] for r in rows])),
            "teeth_exact": sum(r["n_pred"] == r["n_true"] for r in rows), "cases": rows}

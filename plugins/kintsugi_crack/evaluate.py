"""Scores for crack masks and the held-out evaluation behind MODEL.md (bench/crack.py reuses it).

    .venv/bin/python -m kintsugi_crack.evaluate [--n 24] [--real /work/shared/data/crack]

Scores, pooled over a set (as CrackNex pools them): crack IoU, mIoU = mean of background and crack
IoU, and F1 with a 2 px tolerance (a predicted crack pixel counts as right if a true crack pixel is
within 2 px, and a true one as found if a predicted one is within 2 px).

Held-out synthetic scenes use seeds below 10 000; training uses 20 000 and up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "kintsugi_crack"

from kintsugi_crack.lowlight import darken  # noqa: E402

TOLERANCE_PX = 2.0
EVAL_SEED = 7
SUPPORT_SEED = 8


@dataclass
class Scores:
    """Pooled counts over a set of (prediction, truth) masks."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    prec_hit: int = 0
    pred_px: int = 0
    rec_hit: int = 0
    true_px: int = 0
    seconds: list[float] = field(default_factory=list)

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        p, t = pred > 0, truth > 0
        self.tp += int(np.sum(p & t))
        self.fp += int(np.sum(p & ~t))
        self.fn += int(np.sum(~p & t))
        self.tn += int(np.sum(~p & ~t))
        near_t = ndi.distance_transform_edt(~t) <= TOLERANCE_PX if t.any() else np.zeros_like(t)
        near_p = ndi.distance_transform_edt(~p) <= TOLERANCE_PX if p.any() else np.zeros_like(p)
        self.prec_hit += int(np.sum(p & near_t))
        self.pred_px += int(p.sum())
        self.rec_hit += int(np.sum(t & near_p))
        self.true_px += int(t.sum())

    @property
    def iou(self) -> float:
        return self.tp / max(self.tp + self.fp + self.fn, 1)

    @property
    def miou(self) -> float:
        return 0.5 * (self.iou + self.tn / max(self.tn + self.fp + self.fn, 1))

    @property
    def f1(self) -> float:
        pr = self.prec_hit / max(self.pred_px, 1)
        rc = self.rec_hit / max(self.true_px, 1)
        return 2 * pr * rc / max(pr + rc, 1e-12)

    def as_dict(self) -> dict[str, float]:
        return {"iou": round(self.iou, 4), "miou": round(self.miou, 4), "f1_2px": round(self.f1, 4),
                "precision_2px": round(self.prec_hit / max(self.pred_px, 1), 4),
                "recall_2px": round(self.rec_hit / max(self.true_px, 1), 4)}


Pair = tuple[np.ndarray, np.ndarray, str]  # (RGB uint8, bool mask, name)


def synthetic_pairs(seed: int, n: int, size: tuple[int, int] = (384, 512)) -> tuple[list[Pair], list[Pair]]:
    """(normal-light, low-light) held-out scenes; the generator's own low-light rendering."""
    from kintsugi.samples.crack import make_scene

    rng = np.random.default_rng(seed)
    normal, low = [], []
    for i in range(n):
        s = make_scene(rng, size)
        normal.append((s.image, s.mask, f"syn{seed}_{i}"))
        low.append((s.low_light, s.mask, f"syn{seed}_{i}"))
    return normal, low


def darkened(pairs: list[Pair], seed: int) -> list[Pair]:
    """Darkened copies (x0.15-0.3, gamma 0.8-1.4, shot and read noise), one fixed draw per image."""
    rng = np.random.default_rng(seed)
    return [(darken(img, rng), m, name) for img, m, name in pairs]


def _read_rgb(path: Path) -> np.ndarray:
    from kintsugi.io import read_image

    data = read_image(path).data
    if data.ndim == 2:
        data = np.repeat(data[..., None], 3, axis=2)
    return np.ascontiguousarray(data[..., :3])


def uav75(root: Path, part: str) -> list[Pair]:
    """UAV75 ``train``/``val`` pairs; only the pure-white label colour is crack (204 grey = planking)."""
    from kintsugi.io import read_image

    out = []
    for img in sorted((root / f"{part}_img").glob("*")):
        lab = next((root / f"{part}_lab").glob(img.stem + ".*"), None)
        if lab is None:
            continue
        ld = read_image(lab).data
        ld = ld[..., :3].min(axis=2) if ld.ndim == 3 else ld
        out.append((_read_rgb(img), ld >= 250, img.stem))
    return out


def deepcrack(root: Path) -> list[Pair]:
    from kintsugi.io import read_image

    out = []
    for img in sorted((root / "figures_deepcrack").glob("*_image.png")):
        lab = img.with_name(img.name.replace("_image", "_label_viz"))
        if lab.exists():
            ld = read_image(lab).data
            ld = ld[..., :3].max(axis=2) if ld.ndim == 3 else ld
            out.append((_read_rgb(img), ld > 127, img.stem))
    demo = root / "demo"
    if (demo / "crack_image.png").exists():
        ld = read_image(demo / "crack_label.png").data
        ld = ld[..., :3].max(axis=2) if ld.ndim == 3 else ld
        out.append((_read_rgb(demo / "crack_image.png"), ld > 127, "demo"))
    return out


class Segmenter:
    """The plugin's paths as plain functions RGB -> uint8 mask, for evaluation."""

    def __init__(self, threshold: float = 0.5) -> None:
        from kintsugi_crack.infer import load_model
        from kintsugi_crack.tasks import model_tensors

        self.net = load_model(model_tensors(None, "cpu"))
        self.threshold = threshold

    def network(self, protos: dict[str, Any] | None = None, views: int = 1) -> Callable[[np.ndarray], np.ndarray]:
        from kintsugi_crack.infer import predict

        cut = round(self.threshold * 255)
        return lambda img: (predict(img, self.net, protos, views=views) >= cut).astype(np.uint8) * 255

    def prototypes(self, support: list[Pair], adapt: bool = False) -> dict[str, Any]:
        from kintsugi_crack.tasks import build_prototypes

        return build_prototypes(self.net, [(i, m, n) for i, m, n in support], 1024, "cpu", adapt=adapt)

    @staticmethod
    def ridge() -> Callable[[np.ndarray], np.ndarray]:
        from kintsugi_crack.infer import ridge

        return lambda img: ridge(img)


def score(pairs: list[Pair], fn: Callable[[np.ndarray], np.ndarray]) -> Scores:
    s = Scores()
    for img, truth, _ in pairs:
        t0 = time.perf_counter()
        pred = fn(img)
        s.seconds.append(time.perf_counter() - t0)
        s.add(pred, truth)
    return s


def pick_support(pairs: list[Pair], k: int, seed: int = 0) -> list[Pair]:
    """K support examples that show cracks (a support mask must not be empty)."""
    rng = np.random.default_rng(seed)
    usable = [p for p in pairs if p[1].sum() >= 50]
    idx = rng.choice(len(usable), size=min(k, len(usable)), replace=False)
    return [usable[i] for i in sorted(idx)]


def run_all(sets: dict[str, list[Pair]], supports: dict[str, list[Pair]], seg: Segmenter,
            log: Callable[[str], None] = print) -> dict[str, dict[str, dict[str, float]]]:
    """Scores for ridge, network, 1-shot and 5-shot on each named set; ``supports[set]`` is the pool
    the K-shot examples come from (disjoint from the set)."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    proto_cache: dict[tuple[str, int], dict[str, Any]] = {}
    for name, pairs in sets.items():
        base = name.split(":")[0]
        res: dict[str, dict[str, float]] = {}
        methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {"ridge": seg.ridge(), "network": seg.network(),
                                                                  "network (2 views)": seg.network(views=2)}
        for k, fit in ((1, False), (5, False), (1, True), (5, True)):
            if supports.get(base) and (not fit or not base.startswith("synthetic")):
                key = (base, k, fit)
                if key not in proto_cache:
                    t0 = time.perf_counter()
                    proto_cache[key] = seg.prototypes(pick_support(supports[base], k), adapt=fit)
                    log(f"{base}: {k}-shot{' + head fit' if fit else ''} built in {time.perf_counter() - t0:.1f} s")
                methods[f"{k}-shot" + (" + head fit" if fit else "")] = seg.network(proto_cache[key])
        for m, fn in methods.items():
            sc = score(pairs, fn)
            res[m] = sc.as_dict() | {"s_per_image": round(float(np.median(sc.seconds)), 3)}
            log(f"{name:<24} {m:<8} IoU {sc.iou:.3f} mIoU {sc.miou:.3f} F1@2px {sc.f1:.3f}")
        results[name] = res
    return results


def main(argv: list[str] | None = None) -> None:
    import torch

    ap = argparse.ArgumentParser(description="held-out numbers for MODEL.md")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--real", type=Path, default=Path("/work/shared/data/crack"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "weights" / "eval.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    normal, low = synthetic_pairs(EVAL_SEED, a.n)
    sup_normal, _ = synthetic_pairs(SUPPORT_SEED, 8)
    sets = {"synthetic": normal, "synthetic:generator-low-light": low, "synthetic:darkened": darkened(normal, 99)}
    supports = {"synthetic": sup_normal}
    if (a.real / "uav75" / "val_img").is_dir():
        val = uav75(a.real / "uav75", "val")
        sets |= {"uav75-val": val, "uav75-val:darkened": darkened(val, 99)}
        supports["uav75-val"] = uav75(a.real / "uav75", "train")
    seg = Segmenter()
    res = run_all(sets, supports, seg)
    a.out.write_text(json.dumps(res, indent=1))
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()

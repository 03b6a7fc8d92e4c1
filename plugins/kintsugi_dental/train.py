"""Train the tooth network on dental phantoms: RAIL (semi-supervised) and a supervised-only comparison.

    .venv/bin/python -m kintsugi_dental.train            # ~20 min on one CPU thread; writes weights + MODEL.md
    .venv/bin/python -m kintsugi_dental.train --iters 3000 --unlabelled 40   # a fuller run

RAIL, as implemented here (REFERENCES.md, arXiv 2505.03538), on a few labelled phantoms and an unlabelled rest:
- two groups of two students, each group a plain and a residual U-Net, groups trained alternately, one mean
  teacher shared by both groups: the EMA of the first group's plain U-Net (averaging the weights of students
  that started from different random weights gives a network that predicts nothing — tried, Dice 0);
- Disagreement-Focused Supervision on labelled patches: Dice + BCE for every student, plus a BCE restricted
  to the voxels where a student disagrees with its peer or with the ground truth; the weaker student (higher
  Dice loss) is also pulled towards the better one there;
- Confidence-Aware Learning on unlabelled patches: each student follows the teacher's prediction sharpened at
  temperature 0.1, weighted voxel by voxel by the teacher's confidence |2p - 1| (low-confidence voxels count
  little), ramped up over the first 40 % of the run.
The supervised-only run trains one U-Net on the same labelled phantoms for the same number of iterations.
Both are scored on three validation phantoms (seeds 8000-8002) and the better one ships as
weights/dental_unet.safetensors; both are then scored on the held-out phantoms (seeds 9000-9008) for MODEL.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from kintsugi.plugins import sha256_of

from .data import Case, make_case
from .evaluate import HELD_OUT_SEEDS, evaluate
from .model import UNet3D, load_model

HERE = Path(__file__).resolve().parent
PATCH = 40
LABELLED_SEEDS = tuple(range(100, 104))  # 4 labelled phantoms (lower, upper, both jaws by seed)
UNLABELLED_BASE = 110


# ------------------------------------------------------------------------------------------- patches


def _patch(case: Case, rng: np.random.Generator, size: int = PATCH) -> tuple[np.ndarray, np.ndarray]:
    """A patch (image, targets(2)) centred on a tooth voxel two times in three, anywhere otherwise."""
    img = case.image
    shape = np.asarray(img.shape)
    labelled = case.tooth.size == img.size
    if rng.random() < 0.67:  # labelled: a tooth voxel; unlabelled: a dentin-bright voxel (image only)
        pts = np.argwhere(case.tooth) if labelled else np.argwhere(img[::2, ::2, ::2] > 0.55) * 2
        c = pts[rng.integers(len(pts))] if len(pts) else rng.integers(0, shape)
    else:
        c = rng.integers(0, shape)
    lo = np.clip(c - size // 2, 0, np.maximum(shape - size, 0))
    sl = tuple(slice(int(a), int(a) + size) for a in lo)
    x = img[sl]
    if labelled:
        y = np.stack([case.tooth[sl], case.core[sl]]).astype(np.float32)
    else:
        y = np.zeros((2, *x.shape), np.float32)
    pad = [(0, size - s) for s in x.shape]
    x = np.pad(x, pad, mode="edge")
    y = np.pad(y, [(0, 0), *pad])
    if rng.random() < 0.5:  # left-right mirror: a dentition is nearly symmetric
        x, y = x[:, :, ::-1], y[:, :, :, ::-1]
    if rng.random() < 0.3:  # front-back mirror: unusual, but makes the net lean on local shape
        x, y = x[:, ::-1], y[:, :, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scanner variety: gain, offset, gamma and noise (uncalibrated CBCT differs from scan to scan)."""
    x = x * rng.uniform(0.85, 1.15) + rng.uniform(-0.06, 0.06)
    x = np.clip(x, 0, 1) ** rng.uniform(0.8, 1.25)
    x = x + rng.normal(0, rng.uniform(0, 0.03), x.shape)
    return np.clip(x, 0, 1).astype(np.float32)


def _batch(cases: list[Case], n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*[_patch(cases[rng.integers(len(cases))], rng) for _ in range(n)], strict=True)
    x = np.stack([_augment(a, rng) for a in xs])[:, None]
    return torch.from_numpy(x), torch.from_numpy(np.stack(ys))


# -------------------------------------------------------------------------------------------- losses


def dice_loss(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dims = (0, 2, 3, 4)
    inter = (p * y).sum(dims)
    return (1 - (2 * inter + 1) / (p.sum(dims) + y.sum(dims) + 1)).mean()


def sup_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dice + BCE (the core channel weighted a little less); also returns the Dice part, RAIL's ranking."""
    p = torch.sigmoid(logits)
    d = dice_loss(p, y)
    bce = F.binary_cross_entropy_with_logits(logits, y, weight=torch.tensor([1.0, 0.7]).view(1, 2, 1, 1, 1))
    return d + bce, d.detach()


def sharpen(p: torch.Tensor, t: float = 0.1) -> torch.Tensor:
    a, b = p ** (1 / t), (1 - p) ** (1 / t)
    return a / (a + b + 1e-8)


def rampup(step: int, total: int, frac: float = 0.4) -> float:
    x = min(step / max(frac * total, 1), 1.0)
    return float(np.exp(-5 * (1 - x) ** 2))


# -------------------------------------------------------------------------------------------- training


def _lr(opt: torch.optim.Optimizer, base: float, step: int, total: int) -> None:
    for g in opt.param_groups:
        g["lr"] = base * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * step / total)))


def train_supervised(labelled: list[Case], iters: int, seed: int, lr: float = 3e-3, batch: int = 2,
                     log: bool = True) -> UNet3D:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = UNet3D()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    t0 = time.time()
    for step in range(iters):
        _lr(opt, lr, step, iters)
        x, y = _batch(labelled, batch, rng)
        loss, _ = sup_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log and (step % 100 == 0 or step == iters - 1):
            print(f"[sup] {step:5d} loss {loss.item():.4f} {time.time() - t0:6.0f}s", flush=True)
    return net.eval()


@torch.no_grad()
def _ema(teacher: UNet3D, student: UNet3D, decay: float) -> None:
    src = student.state_dict()
    for name, tp in teacher.state_dict().items():
        tp.mul_(decay).add_(src[name].float(), alpha=1 - decay)


def train_rail(labelled: list[Case], unlabelled: list[Case], iters: int, seed: int, lr: float = 3e-3,
               batch: int = 2, ema: float = 0.99, w_dfs: float = 0.5, w_cal: float = 1.0,
               log: bool = True) -> UNet3D:
    """Returns the mean teacher (what ships)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    groups = [[UNet3D(residual=False), UNet3D(residual=True)] for _ in range(2)]
    teacher = copy.deepcopy(groups[0][0])
    for p in teacher.parameters():
        p.requires_grad_(False)
    opts = [[torch.optim.Adam(s.parameters(), lr=lr) for s in g] for g in groups]
    t0 = time.time()
    for step in range(iters):
        g = step % 2  # the two groups take turns
        students, sopts = groups[g], opts[g]
        for o in sopts:
            _lr(o, lr, step, iters)
        xl, yl = _batch(labelled, batch, rng)
        xu, _ = _batch(unlabelled, batch, rng)
        with torch.no_grad():
            pt = torch.sigmoid(teacher(xu + 0.02 * torch.randn_like(xu)))
        target = sharpen(pt)
        conf = (2 * pt - 1).abs()
        w_c = w_cal * rampup(step, iters)
        logits = [s(torch.cat([xl, xu])) for s in students]
        ll = [lg[:batch] for lg in logits]
        pl = [torch.sigmoid(lg) for lg in ll]
        sups = [sup_loss(lg, yl) for lg in ll]
        best = int(np.argmin([d.item() for _, d in sups]))
        hard = [(p > 0.5).float() for p in pl]
        total = 0.0
        for i in range(2):
            other = 1 - i
            region = ((hard[i] != hard[other]) | (hard[i] != yl)).float()  # disagreement focus
            bce = F.binary_cross_entropy_with_logits(ll[i], yl, reduction="none")
            dfs = (bce * region).sum() / (region.sum() + 1)
            if i != best:  # the weaker student also learns from the better one where they disagree
                right = region * (hard[best] == yl).float()
                dfs = dfs + ((pl[i] - pl[best].detach()) ** 2 * right).sum() / (right.sum() + 1)
            pu = torch.sigmoid(logits[i][batch:])
            cal = (conf * (pu - target) ** 2).mean() / (conf.mean() + 1e-6)
            total = total + sups[i][0] + w_dfs * dfs + w_c * cal
        for o in sopts:
            o.zero_grad()
        total.backward()
        for o in sopts:
            o.step()
        if g == 0:  # one lineage: weights of independently initialised students cannot be averaged
            _ema(teacher, students[0], ema if step > 20 else 0.0)
        if log and (step % 100 == 0 or step == iters - 1):
            print(f"[rail] {step:5d} group {g} loss {float(total.detach()):.4f} best {best} ramp {w_c:.2f} "
                  f"{time.time() - t0:6.0f}s", flush=True)
    return teacher.eval()


# ------------------------------------------------------------------------------------------------ main


def _cached(seed: int, cache: Path | None) -> Case:
    """A phantom case, kept as .npz in ``cache`` when given (generation is deterministic per seed)."""
    if cache is None:
        return make_case(seed)
    f = cache / f"case_{seed}.npz"
    if f.is_file():
        z = np.load(f)
        return Case(seed, z["image"], z["tooth"], z["core"], z["labels"])
    c = make_case(seed)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(f, image=c.image, tooth=c.tooth, core=c.core, labels=c.labels)
    return c


def save(net: UNet3D, path: Path) -> str:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return sha256_of(path)


VAL_SEEDS = (8000, 8001, 8002)


def _score(ev: dict) -> float:
    return 0.5 * (ev["dice"] + ev["f1"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=700, help="iterations of each run (both runs use the same)")
    ap.add_argument("--unlabelled", type=int, default=16, help="number of unlabelled phantoms")
    ap.add_argument("--only", choices=("both", "rail", "supervised"), default="both",
                    help="retrain one run and keep the other's weights and report")
    ap.add_argument("--evaluate-only", action="store_true",
                    help="no training: score the saved weights again (after a change of post-processing)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "weights")
    ap.add_argument("--cache", type=Path, default=None, help="folder to keep generated phantoms between runs")
    ap.add_argument("--eval-seeds", type=int, default=len(HELD_OUT_SEEDS))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    labelled: list[Case] = []
    unlabelled: list[Case] = []
    if not args.evaluate_only:
        print("generating phantoms", flush=True)
        labelled = [_cached(s, args.cache) for s in LABELLED_SEEDS]
        unlabelled = [_cached(UNLABELLED_BASE + i, args.cache) for i in range(args.unlabelled)]
    for c in unlabelled:  # unlabelled means unlabelled: the targets are never read
        c.tooth, c.core, c.labels = np.zeros(0, np.uint8), np.zeros(0, np.uint8), np.zeros(0, np.int16)
    t_data = time.time() - t_start
    seeds = HELD_OUT_SEEDS[: args.eval_seeds]
    runs = ("rail", "supervised") if args.only == "both" else (args.only,)
    for run in runs:
        t0 = time.time()
        path = args.out / f"dental_unet_{run}.safetensors"
        if args.evaluate_only:
            old = json.loads((args.out / f"report_{run}.json").read_text())
            net, t_train, sha = load_model(load_file(str(path))), old["seconds"]["train"], sha256_of(path)
            t_data = old["seconds"]["data"]
        else:
            if run == "rail":
                net = train_rail(labelled, unlabelled, args.iters, args.seed)
            else:
                net = train_supervised(labelled, args.iters, args.seed)
            t_train = time.time() - t0
            sha = save(net, path)
        print(f"validation ({run})", flush=True)
        ev_val = evaluate(net, VAL_SEEDS, verbose=True)
        print(f"held-out evaluation ({run})", flush=True)
        ev = evaluate(net, seeds, verbose=True)
        report = {"run": run, "iters": args.iters, "labelled_seeds": list(LABELLED_SEEDS),
                  "unlabelled_seeds": [UNLABELLED_BASE + i for i in range(args.unlabelled)] if run == "rail" else [],
                  "validation_seeds": list(VAL_SEEDS), "held_out_seeds": list(seeds), "seed": args.seed,
                  "threads": args.threads, "seconds": {"data": round(t_data), "train": round(t_train)},
                  "sha256": sha, "validation": ev_val, "held_out": ev}
        (args.out / f"report_{run}.json").write_text(json.dumps(report, indent=1, default=float))
        print(f"{run}: train {t_train:.0f}s  held-out dice {ev['dice']:.3f} f1 {ev['f1']:.3f} "
              f"tooth dice {ev['tooth_dice']:.3f} exact count {ev['teeth_exact']}/{len(seeds)}", flush=True)
    reports = {r: json.loads((args.out / f"report_{r}.json").read_text()) for r in ("rail", "supervised")
               if (args.out / f"report_{r}.json").is_file()}
    best = max(reports, key=lambda r: _score(reports[r]["validation"]))
    shutil.copyfile(args.out / f"dental_unet_{best}.safetensors", args.out / "dental_unet.safetensors")
    print(f"shipping {best} (validation score {_score(reports[best]['validation']):.3f}); "
          f"total {time.time() - t_start:.0f}s", flush=True)


if __name__ == "__main__":
    main()

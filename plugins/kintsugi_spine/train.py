"""Train the learned pre-fracture reference (model.HeightGenerator) on the project's spine phantoms.

    .venv/bin/python -m kintsugi_spine.train            # 120 phantoms, 30 epochs: ~5 min data + ~5 min training
    .venv/bin/python -m kintsugi_spine.train --seeds 400 --epochs 60   # longer, more data

Data: ``kintsugi.samples.spine.generate`` with seeds TRAIN_SEED0 + k (disjoint from the evaluation
seeds 0..999 that the bench and tests use), random contiguous segments of 5-8 levels between C3 and
L5, random fractures (each level with probability 0.3: wedge/biconcave/crush, severity 0.1-0.6, so
neighbours are often fractured), random spacing and obliquity. Each phantom runs through exactly the
task's measurement; every level whose truth is healthy becomes one sample: inputs = its neighbours'
maps (scaled as the task scales them) + its footprint, target = its own measured map. The real masks
are NOT used for training (they stay for validation). Fixed seeds, no network, CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

TRAIN_SEED0 = 100_000
HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights" / "height_generator.safetensors"
LEVELS = [f"C{i}" for i in range(3, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
SPACINGS = [(1.0, 1.0, 1.0), (1.2, 1.2, 1.5), (1.5, 1.5, 1.5), (0.8, 0.8, 2.0)]


def phantom_samples(seed: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Inputs, targets and target footprints from one training phantom."""
    from kintsugi.samples.spine import generate
    from kintsugi_spine import measure as M
    from kintsugi_spine import reference as R
    from kintsugi_spine.levels import detect

    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 9))
    start = int(rng.integers(0, len(LEVELS) - n + 1))
    levels = LEVELS[start:start + n]
    fractures = {}
    for lv in levels:
        if rng.random() < 0.3:
            fractures[lv] = (str(rng.choice(["wedge", "biconcave", "crush"])), float(rng.uniform(0.1, 0.6)))
    spacing = SPACINGS[int(rng.integers(len(SPACINGS)))]
    oblique = float(rng.choice([0.0, 0.0, 15.0, 30.0]))
    ph = generate(seed=seed, levels=levels, fractures=fractures, spacing=spacing, oblique_deg=oblique)
    num = detect(ph.labels.present_labels())
    verts = M.collect(ph.labels, num.levels)
    M.locate_bodies(verts, ph.labels)
    for i in range(len(verts)):
        M.measure(verts, ph.labels, i)
    truth = {t["level"]: t for t in ph.truth["vertebrae"]}
    xs, ys, fps = [], [], []
    for i, vb in enumerate(verts):
        if truth[vb.level]["deformation"] != "normal" or not R.neighbour_slots(verts, i):
            continue
        xs.append(R.learned_inputs(verts, i))
        ys.append(vb.hmap.astype(np.float32))
        fps.append(vb.footprint.astype(np.float32))
    return xs, ys, fps


def build_dataset(n_seeds: int, cache: Path | None) -> dict[str, np.ndarray]:
    if cache is not None and cache.exists():
        d = dict(np.load(cache))
        if int(d["n_seeds"]) == n_seeds:
            return d
    xs, ys, fps, seeds = [], [], [], []
    t0 = time.perf_counter()
    for k in range(n_seeds):
        seed = TRAIN_SEED0 + k
        x, y, f = phantom_samples(seed)
        xs += x
        ys += y
        fps += f
        seeds += [seed] * len(x)
        if k % 25 == 0:
            print(f"  phantom {k}/{n_seeds}: {len(xs)} samples, {time.perf_counter() - t0:.0f} s", flush=True)
    d = {"x": np.stack(xs), "y": np.stack(ys), "fp": np.stack(fps), "seed": np.array(seeds),
         "n_seeds": np.array(n_seeds)}
    if cache is not None:
        np.savez_compressed(cache, **d)
    return d


def train(d: dict[str, np.ndarray], epochs: int, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    from kintsugi_spine.model import OFFSETS, HeightGenerator

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(d["x"])
    y = torch.from_numpy(d["y"])[:, None]
    fp = torch.from_numpy(d["fp"])[:, None]
    # Hold out the last 10 % of phantoms (by seed) to watch for over-fitting.
    seeds = np.unique(d["seed"])
    val_seeds = set(seeds[int(0.9 * len(seeds)):].tolist())
    is_val = torch.from_numpy(np.array([s in val_seeds for s in d["seed"]]))
    tr, va = torch.nonzero(~is_val)[:, 0], torch.nonzero(is_val)[:, 0]
    net = HeightGenerator()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * ((len(tr) + 31) // 32))
    k = len(OFFSETS)
    log = []
    for ep in range(epochs):
        net.train()
        perm = tr[torch.randperm(len(tr))]
        total = 0.0
        for b in range(0, len(perm), 32):
            idx = perm[b:b + 32]
            xb, yb, fb = x[idx].clone(), y[idx], fp[idx]
            # Drop neighbours at random (ends of a scan, unlabelled levels) and mirror left-right.
            drop = torch.from_numpy(rng.random((len(idx), k)) < 0.15)
            keep_one = drop.all(1)
            drop[keep_one, 1] = False
            xb[:, :k][drop] = 0.0
            xb[:, k:2 * k][drop] = 0.0
            if rng.random() < 0.5:
                xb, yb, fb = xb.flip(-1), yb.flip(-1), fb.flip(-1)
            pred = net(xb)
            loss = ((pred - yb).abs() * fb).sum() / fb.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        net.eval()
        with torch.no_grad():
            pv = net(x[va])
            val = float(((pv - y[va]).abs() * fp[va]).sum() / fp[va].sum())
            base = x[va][:, :k] * 30.0
            pres = x[va][:, k:2 * k]
            mean = (base * pres).sum(1, keepdim=True) / pres.sum(1, keepdim=True).clamp(min=1)
            val_base = float(((mean - y[va]).abs() * fp[va]).sum() / fp[va].sum())
        log.append({"epoch": ep + 1, "train_l1_mm": total / len(tr), "val_l1_mm": val,
                    "val_l1_mm_neighbour_mean": val_base})
        print(f"  epoch {ep + 1:3d}: train {total / len(tr):.3f} mm, held-out {val:.3f} mm "
              f"(plain neighbour mean {val_base:.3f} mm)", flush=True)
    return net, {"log": log, "train_samples": int(len(tr)), "val_samples": int(len(va)),
                 "val_seeds": [int(min(val_seeds)), int(max(val_seeds))]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=120, help="number of training phantoms")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/kintsugi_spine_train.npz"),
                    help="dataset cache (npz); reused when it holds the same number of phantoms")
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    print(f"building the dataset from {args.seeds} phantoms (seeds {TRAIN_SEED0}..{TRAIN_SEED0 + args.seeds - 1})")
    d = build_dataset(args.seeds, args.cache)
    t_data = time.perf_counter() - t0
    print(f"{len(d['x'])} samples in {t_data:.0f} s; training {args.epochs} epochs")
    net, info = train(d, args.epochs)
    t_all = time.perf_counter() - t0
    from safetensors.torch import save_file

    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(args.out))
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    info.update({"seeds": [TRAIN_SEED0, TRAIN_SEED0 + args.seeds - 1], "epochs": args.epochs,
                 "samples": int(len(d["x"])), "data_s": round(t_data, 1), "total_s": round(t_all, 1),
                 "parameters": int(sum(p.numel() for p in net.parameters())), "sha256": digest})
    (args.out.parent / "train_log.json").write_text(json.dumps(info, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB, sha256 {digest}) in {t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Train the reassembly models on the project's synthetic fractures (CPU, fixed seeds): the
fracture-surface point classifier here, then the flow-matching pose model (train_flow.py).

Labels are exact: a sample is "fracture" when the face it was drawn from was made by a cut (the
generator traces every fracture face to its cutter; GARF's shared-face rule gives the same set).
Training objects use seeds TRAIN_SEED0.., held-out ones HELDOUT_SEED0.. (disjoint objects).

    .venv/bin/python -m kintsugi_reassembly.train [--objects 50] [--heldout 15] [--epochs 20] [--only segmenter|flow]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: python plugins/kintsugi_reassembly/train.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kintsugi_reassembly import data  # noqa: E402
from kintsugi_reassembly.features import geometric_fracture, segmentation_features  # noqa: E402
from kintsugi_reassembly.prep import prepare  # noqa: E402
from kintsugi_reassembly.segment import region_vote  # noqa: E402

SEED = 1234


def _object_points(seed: int, rng: np.random.Generator, noise: float) -> list[tuple[np.ndarray, ...]]:
    obj = data.generate(seed)
    sample = data.to_sample(obj, noise=noise, rng=rng)
    prep = prepare(sample.fragments, points_total=8000, seed=seed)
    out = []
    for part, piece in zip(prep.parts, obj.pieces, strict=True):
        labels = piece.fracture_faces[part.extra["face"]].astype(np.float32)
        feats, regions = segmentation_features(part.points, part.normals)
        out.append((feats, labels, regions, part.points, part.normals))
    return out


def build_set(seeds: list[int], rng: np.random.Generator, log) -> list[tuple[np.ndarray, ...]]:
    parts = []
    for k, s in enumerate(seeds):
        noise = 0.002 if k % 3 == 2 else 0.0  # a third of the objects with 0.2 % vertex noise
        parts.extend(_object_points(s, rng, noise))
        if k % 10 == 0:
            log(f"  data {k + 1}/{len(seeds)}")
    return parts


def main(argv: list[str] | None = None) -> int:
    import torch
    from safetensors.torch import save_file

    from kintsugi_reassembly.segment import WEIGHTS, build_mlp

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=50)
    ap.add_argument("--heldout", type=int, default=15)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--only", choices=["all", "segmenter", "flow"], default="all")
    args = ap.parse_args(argv)
    if args.only == "flow":
        from kintsugi_reassembly import train_flow

        return train_flow.main([])
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.0f}s] {msg}", flush=True)

    log("training data")
    train = build_set(data.train_seeds(args.objects), rng, log)
    log("held-out data")
    held = build_set(data.heldout_seeds(args.heldout), rng, log)
    x = np.concatenate([p[0] for p in train])
    y = np.concatenate([p[1] for p in train])
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std)
    yt = torch.from_numpy(y)
    model = build_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    pos_weight = torch.tensor([(1 - y.mean()) / max(y.mean(), 1e-6)])
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xt))
        total = 0.0
        for b in range(0, len(xt), 4096):
            idx = perm[b:b + 4096]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx])[:, 0], yt[idx])
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        if epoch % 5 == 0 or epoch == args.epochs - 1:
            log(f"epoch {epoch} loss {total / len(xt):.4f}")
    model.eval()

    def scores(parts, predict) -> dict[str, float]:
        tp = fp = fn = correct = n = 0
        for p in parts:
            pred = predict(p) > 0.5
            lab = p[1] > 0.5
            tp += int(np.sum(pred & lab))
            fp += int(np.sum(pred & ~lab))
            fn += int(np.sum(~pred & lab))
            correct += int(np.sum(pred == lab))
            n += len(lab)
        return {"accuracy": correct / n, "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
                "iou": tp / max(tp + fp + fn, 1)}

    def learned(p) -> np.ndarray:
        with torch.no_grad():
            logit = model(torch.from_numpy((p[0] - mean) / std)).numpy()[:, 0]
        return region_vote(1 / (1 + np.exp(-logit)), p[2])

    res = {"learned_heldout": scores(held, learned),
           "geometric_heldout": scores(held, lambda p: geometric_fracture(p[3], p[4])),
           "learned_train": scores(train, learned),
           "train_objects": args.objects, "heldout_objects": args.heldout, "epochs": args.epochs,
           "train_points": int(len(x)), "seed": SEED, "wall_s": round(time.time() - t0, 1)}
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["feat_mean"] = torch.from_numpy(mean.astype(np.float32))
    state["feat_std"] = torch.from_numpy(std.astype(np.float32))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out))
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    log(json.dumps(res))
    if args.only == "all":  # the pose model, with its own defaults (about 20 min on two cores)
        from kintsugi_reassembly import train_flow

        return train_flow.main([])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

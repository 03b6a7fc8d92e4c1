"""Train the reassembly models on the project's synthetic fractures (CPU, fixed seeds): the
fracture-surface point classifier here, then the flow-matching pose model (train_flow.py).

Labels are exact: a sample is "fracture" when the face it was drawn from was made by a cut (the
generator traces every fracture face to its cutter; GARF's shared-face rule gives the same set).
Training objects use seeds TRAIN_SEED0.., held-out ones HELDOUT_SEED0.. (disjoint objects).

    .venv/bin/python -m kintsugi_reassembly.train [--objects 50] [--heldout 15] [--epochs 20]
        [--only segmenter|region|flow]

The region classifier (second stage) is trained on the point classifier's outputs, so
``--only segmenter`` retrains it too; ``--only region`` trains it alone on the shipped point weights.
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
from kintsugi_reassembly.features import (  # noqa: E402
    geometric_fracture,
    region_features,
    segmentation_features,
)
from kintsugi_reassembly.prep import prepare  # noqa: E402
from kintsugi_reassembly.segment import point_probability, region_vote  # noqa: E402

SEED = 1234
REGION_SEED = 2345
VALIDATION_SEED0 = 500_000  # validation objects: model choices only (disjoint from training and held-out)


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


def _point_scores(parts, predict) -> dict[str, float]:
    """Per-point accuracy / precision / recall / IoU of ``predict(part) > 0.5`` against the labels."""
    tp = fp = fn = correct = n = 0
    for p in parts:
        pred = predict(p) > 0.5
        lab = p[1] > 0.5
        tp += int(np.sum(pred & lab))
        fp += int(np.sum(pred & ~lab))
        fn += int(np.sum(~pred & lab))
        correct += int(np.sum(pred == lab))
        n += len(lab)
    return {"accuracy": correct / max(n, 1), "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "iou": tp / max(tp + fp + fn, 1)}


def _with_probs(parts, point_model) -> list[tuple]:
    """Append the point classifier's raw (pre-vote) probabilities to each part tuple."""
    return [(*p, point_probability(point_model, p[0])) for p in parts]


def train_regions(point_model, objects: int, epochs: int, validation: int, heldout: int, out: Path, log) -> dict:
    """Second stage: a small MLP giving one fracture probability per crease-bounded region.

    Targets are each region's exact fracture share (soft labels), weighted by sqrt(region size).
    Scored per point (cut 0.5) against the first stage's region vote cut at segment.THRESHOLD.
    """
    import torch
    from safetensors.torch import save_file

    from kintsugi_reassembly.segment import THRESHOLD, build_region_mlp, region_classify

    torch.manual_seed(REGION_SEED)
    rng = np.random.default_rng(REGION_SEED)
    log(f"region data: {objects} training objects")
    train = _with_probs(build_set(data.train_seeds(objects), rng, log), point_model)
    xs, ys, ws = [], [], []
    for feats, lab, regions, pts, nrm, prob in train:
        f, ids = region_features(pts, nrm, feats, regions, prob)
        for j, r in enumerate(ids):
            m = regions == r
            xs.append(f[j])
            ys.append(float(lab[m].mean()))
            ws.append(float(np.sqrt(m.sum())))
    x, y, w = np.asarray(xs), np.asarray(ys, np.float32), np.asarray(ws, np.float32)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy(((x - mean) / std).astype(np.float32))
    yt, wt = torch.from_numpy(y), torch.from_numpy(w)
    model = build_region_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    for epoch in range(epochs):
        perm = torch.randperm(len(xt))
        total = 0.0
        for b in range(0, len(xt), 512):
            idx = perm[b:b + 512]
            opt.zero_grad()
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(model(xt[idx])[:, 0], yt[idx],
                                                                         reduction="none") * wt[idx]).mean()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if epoch % 100 == 0 or epoch == epochs - 1:
            log(f"region epoch {epoch} loss {total / len(xt):.4f}")
    model.eval()
    loaded = (model, mean.astype(np.float32), std.astype(np.float32))

    def stage1(p) -> np.ndarray:
        return (region_vote(p[5], p[2]) > THRESHOLD).astype(float)

    def stage2(p) -> np.ndarray:
        return region_classify(p[3], p[4], p[0], p[2], p[5], loaded=loaded)

    res = {"region_train_objects": objects, "region_regions": int(len(x)), "region_epochs": epochs,
           "region_seed": REGION_SEED}
    sets = [("validation", [VALIDATION_SEED0 + k for k in range(validation)])]
    if heldout:
        sets.append(("heldout", data.heldout_seeds(heldout)))
    for name, seeds in sets:
        rng_e = np.random.default_rng(REGION_SEED + 1)
        by_shape: dict[str, list] = {}
        for k, s in enumerate(seeds):
            noise = 0.002 if k % 3 == 2 else 0.0
            parts = _with_probs(_object_points(s, rng_e, noise), point_model)
            by_shape.setdefault(data.generate(s).shape, []).extend(parts)
        every = [p for ps in by_shape.values() for p in ps]
        res[f"{name}_objects"] = len(seeds)
        res[f"{name}_stage1_vote"] = _point_scores(every, stage1)
        res[f"{name}_stage2_regions"] = _point_scores(every, stage2)
        for shape, ps in sorted(by_shape.items()):
            res[f"{name}_iou_{shape}"] = {"stage1": round(_point_scores(ps, stage1)["iou"], 3),
                                          "stage2": round(_point_scores(ps, stage2)["iou"], 3)}
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["feat_mean"] = torch.from_numpy(mean.astype(np.float32))
    state["feat_std"] = torch.from_numpy(std.astype(np.float32))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out))
    out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    log(json.dumps(res))
    return res


def main(argv: list[str] | None = None) -> int:
    import torch
    from safetensors.torch import save_file

    from kintsugi_reassembly.segment import REGION_WEIGHTS, WEIGHTS, build_mlp, load

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=50)
    ap.add_argument("--heldout", type=int, default=15)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--only", choices=["all", "segmenter", "region", "flow"], default="all")
    ap.add_argument("--region-objects", type=int, default=200)
    ap.add_argument("--region-epochs", type=int, default=300)
    ap.add_argument("--region-validation", type=int, default=60, help="validation objects scored (seeds 500000+)")
    ap.add_argument("--region-heldout", type=int, default=15, help="held-out objects scored (0: none)")
    ap.add_argument("--region-out", type=Path, default=REGION_WEIGHTS)
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

    if args.only == "region":
        point_model = load(args.out)
        if point_model is None:
            raise SystemExit(f"no point classifier at {args.out}: train it first (--only segmenter)")
        train_regions(point_model, args.region_objects, args.region_epochs, args.region_validation,
                      args.region_heldout, args.region_out, log)
        return 0

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
            total += loss.item() * len(idx)
        if epoch % 5 == 0 or epoch == args.epochs - 1:
            log(f"epoch {epoch} loss {total / len(xt):.4f}")
    model.eval()

    def learned(p) -> np.ndarray:
        return region_vote(point_probability((model, mean, std), p[0]), p[2])

    res = {"learned_heldout": _point_scores(held, learned),
           "geometric_heldout": _point_scores(held, lambda p: geometric_fracture(p[3], p[4])),
           "learned_train": _point_scores(train, learned),
           "train_objects": args.objects, "heldout_objects": args.heldout, "epochs": args.epochs,
           "train_points": int(len(x)), "seed": SEED, "wall_s": round(time.time() - t0, 1)}
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["feat_mean"] = torch.from_numpy(mean.astype(np.float32))
    state["feat_std"] = torch.from_numpy(std.astype(np.float32))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out))
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    log(json.dumps(res))
    train_regions((model, mean.astype(np.float32), std.astype(np.float32)), args.region_objects,
                  args.region_epochs, args.region_validation, args.region_heldout, args.region_out, log)
    if args.only == "all":  # the pose model, with its own defaults (about 20 min on two cores)
        from kintsugi_reassembly import train_flow

        return train_flow.main([])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Train the learned pose model (flow matching, see flow.py) on synthetic fractures, CPU, fixed seed.

    .venv/bin/python -m kintsugi_reassembly.train_flow [--objects 300] [--minutes 12] [--steps N] [--heldout 30]

Training objects: seeds TRAIN_SEED0.. (disjoint from the held-out seeds HELDOUT_SEED0.. used for
the numbers written to weights/flow.json and MODEL.md). Inputs use the exact fracture labels in
training and the segmenter's predictions at evaluation, as in use.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kintsugi_reassembly import data, flow, se3  # noqa: E402
from kintsugi_reassembly.prep import face_areas, sample_mesh  # noqa: E402

SEED = 4321


def object_record(seed: int, rng: np.random.Generator) -> dict:
    obj = data.generate(seed)
    areas = [face_areas(p.vertices, p.faces).sum() for p in obj.pieces]
    scale = float(np.sqrt(sum(areas)))
    anchor = int(np.argmax(areas))
    ins, cents, radii = [], [], []
    for p in obj.pieces:
        pts, nrm, fi = sample_mesh(p.vertices / scale, p.faces, 1500, rng)
        x, c, r = flow.part_inputs(pts, nrm, p.fracture_faces[fi].astype(np.float32), rng)
        ins.append(x)
        cents.append(c)
        radii.append(r)
    ga = obj.pieces[anchor].transform.copy()
    ga[:3, 3] /= scale
    rots, trans = [], []
    for p, c in zip(obj.pieces, cents, strict=True):
        g = p.transform.copy()
        g[:3, 3] /= scale
        m = se3.inv(ga) @ g
        rots.append(m[:3, :3])
        trans.append(se3.apply(m, c[None])[0] - cents[anchor])
    return {"x": np.stack(ins), "radius": np.array(radii, np.float32), "rot": np.stack(rots).astype(np.float32),
            "trans": (np.stack(trans) * flow.T_SCALE).astype(np.float32), "anchor": anchor}


def _random_rot(rng: np.random.Generator, n: int) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def batch(records: list[dict], rng: np.random.Generator):
    """Padded batch with every part (and the frame) randomly re-rotated."""
    import torch

    pmax = max(len(r["x"]) for r in records)
    b = len(records)
    x = np.zeros((b, pmax, flow.N_POINTS, 7), np.float32)
    rad = np.zeros((b, pmax), np.float32)
    rot = np.tile(np.eye(3, dtype=np.float32), (b, pmax, 1, 1))
    tr = np.zeros((b, pmax, 3), np.float32)
    anc = np.zeros((b, pmax), bool)
    pad = np.ones((b, pmax), bool)
    for i, r in enumerate(records):
        p = len(r["x"])
        q = _random_rot(rng, p).astype(np.float32)
        qa = q[r["anchor"]]
        xi = r["x"].copy()
        xi[..., :3] = np.einsum("pij,pnj->pni", q, xi[..., :3])
        xi[..., 3:6] = np.einsum("pij,pnj->pni", q, xi[..., 3:6])
        x[i, :p], rad[i, :p] = xi, r["radius"] * flow.T_SCALE
        rot[i, :p] = np.einsum("ij,pjk,plk->pil", qa, r["rot"], q)
        tr[i, :p] = r["trans"] @ qa.T
        anc[i, r["anchor"]] = True
        pad[i, :p] = False
    return [torch.from_numpy(a) for a in (x, rad, rot, tr, anc, pad)]


def main(argv: list[str] | None = None) -> int:
    import torch
    from safetensors.torch import save_file

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=300)
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: only the time limit)")
    ap.add_argument("--heldout", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", type=Path, default=flow.WEIGHTS)
    args = ap.parse_args(argv)
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.0f}s] {msg}", flush=True)

    records = []
    for k, s in enumerate(data.train_seeds(args.objects)):
        records.append(object_record(s + 50_000, rng))  # seeds apart from the segmenter's, all training-side
        if k % 50 == 0:
            log(f"data {k}/{args.objects}")
    model = build = flow.build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-4)
    step, losses = 0, []
    deadline = time.time() + 60 * args.minutes
    model.train()
    while time.time() < deadline and (args.steps <= 0 or step < args.steps):
        pick = rng.choice(len(records), args.batch, replace=False)
        x, rad, r0, t0_, anc, pad = batch([records[i] for i in pick], rng)
        b, p = t0_.shape[:2]
        t = torch.rand(b)
        w = torch.from_numpy(_log_uniform(rng, b * p).astype(np.float32)).reshape(b, p, 3)
        noise_t = torch.randn(b, p, 3)
        rt = flow.exp_so3(t[:, None, None] * w) @ r0
        tt = (1 - t[:, None, None]) * t0_ + t[:, None, None] * noise_t
        keep = ~pad & ~anc
        rt[anc], tt[anc] = r0[anc], t0_[anc]
        vr, vt = model(model.embed(x, rad), rt, tt, t, anc, pad)
        loss = ((vr - w) ** 2).sum(-1)[keep].mean() + ((vt - (noise_t - t0_)) ** 2).sum(-1)[keep].mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss))
        step += 1
        if step % 200 == 0:
            log(f"step {step} loss {np.mean(losses[-200:]):.3f}")
    del build
    model.eval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out))
    train_s = time.time() - t0
    log(f"trained {step} steps; evaluating on {args.heldout} held-out objects")
    res = {"steps": step, "train_objects": args.objects, "seed": SEED, "train_wall_s": round(train_s, 1),
           "final_loss": float(np.mean(losses[-200:])) if losses else None}
    res.update(evaluate_heldout(args.heldout, log, args.out))
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    log(json.dumps(res))
    return 0


def _log_uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    """Axis-angle Log of uniform random rotations."""
    return se3.log_so3(_random_rot(rng, n)).reshape(n, 3)


def evaluate_heldout(n: int, log, path: Path) -> dict:
    """Learned-only metrics (first sample, and best of 4 by GARF PA as an oracle upper bound)."""
    from kintsugi_reassembly import flow as fl
    from kintsugi_reassembly.metrics import evaluate
    from kintsugi_reassembly.pipeline import segment_parts
    from kintsugi_reassembly.prep import prepare
    from kintsugi_reassembly.tasks import sample_points

    model = fl.load(path)
    first, oracle = [], []
    for s in data.heldout_seeds(n):
        obj = data.generate(s)
        sample = data.to_sample(obj)
        prep = prepare(sample.fragments, seed=0)
        segment_parts(prep, np.random.default_rng(0))
        anchor = int(np.argmax([p.area for p in prep.parts]))
        hyps = fl.hypotheses(prep.parts, anchor, n_samples=4, model=model)
        pts = sample_points(sample.fragments)
        ms = []
        for h in hyps:
            poses = []
            for k in range(len(prep.parts)):
                m = h[k].copy()
                m[:3, 3] *= prep.scale
                poses.append(m)
            ms.append(evaluate(poses, sample.gt, pts, anchor))
        first.append(ms[0])
        oracle.append(max(ms, key=lambda m: m["part_accuracy"]))
    agg = lambda rows, k: float(np.mean([r[k] for r in rows]))  # noqa: E731
    out = {"heldout_objects": n}
    for name, rows in (("learned_first_sample", first), ("learned_best_of_4_oracle", oracle)):
        out[name] = {k: agg(rows, k) for k in ("part_accuracy", "rmse_r_deg", "rmse_t", "chamfer")}
    return out


if __name__ == "__main__":
    raise SystemExit(main())

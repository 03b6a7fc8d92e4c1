"""Train the brightness denoiser (``kintsugi_crack.denoise``) on synthetic noisy/clean pairs.

    .venv/bin/python -m kintsugi_crack.train_denoiser [--out plugins/kintsugi_crack/weights]

(defaults = the shipped weights: 3000 pixel iterations, then 800 task iterations, width 8, seed 40 000;
about 11 min on one thread of a shared 2-core machine.)

Data (no third-party photo pixels): 400 scenes of the project's generator ``kintsugi.samples.crack``
(thin cracks, hairlines, joints, pores; seed 40 000, disjoint from the segmenter's 20 000 and the
development scenes of 30 000) and, for a fifth of the pixel-stage samples, crops of scikit-image's
CC0 textures (``brick``, ``grass``, ``gravel``). Each sample is darkened as ``lowlight.darken`` does
(linear intensity x0.08-0.4, gamma 0.8-1.4, Poisson shot noise at 80-1500 photons, read noise 1-4):
the input is the exposure-normalised grey level *with* the noise, the target the same darkening
*without* it (dimming and gamma alone cost the crack network nothing).

Stage 1 (pixels): L1 loss, crack pixels (dilated by 1 px) weighted x5. Alone this was not enough: it
removed the noise (RMSE / 3) but also half the contrast of the faint real cracks, and the crack network
lost F1 on darkened photos (development set; MODEL.md). Stage 2 (task): the denoiser is fine-tuned
*through the frozen crack network* (``task_stage``): the network's crack probability on the denoised
photo should match its probability on the same photo darkened without noise (soft BCE, pixels the
teacher calls crack-ish x5), plus 0.2 x the pixel L1. Fixed seeds; one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "kintsugi_crack"

from kintsugi_crack.denoise import PAD, WIDTH, build, noise_level  # noqa: E402
from kintsugi_crack.lowlight import GAMMA, darken  # noqa: E402
from kintsugi_crack.retinex import illumination  # noqa: E402

SEED = 40_000
SIZE = (256, 256)
CROP = 64


def make_pool(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from kintsugi.samples.crack import render_scene

    rng = np.random.default_rng(seed)
    imgs = np.empty((n, *SIZE, 3), np.uint8)
    masks = np.empty((n, *SIZE), bool)
    for i in range(n):
        imgs[i], masks[i] = render_scene(rng, SIZE, low_light=bool(rng.random() < 0.3), p_empty=0.05)
    return imgs, masks


def textures() -> list[np.ndarray]:
    from skimage import data

    return [getattr(data, name)() for name in ("brick", "grass", "gravel")]


def texture_sample(rng: np.random.Generator, tex: list[np.ndarray]) -> np.ndarray:
    t = tex[int(rng.integers(len(tex)))]
    y, x = rng.integers(0, t.shape[0] - SIZE[0] + 1), rng.integers(0, t.shape[1] - SIZE[1] + 1)
    g = t[y:y + SIZE[0], x:x + SIZE[1]].astype(np.float32) / 255
    g = np.clip(g * rng.uniform(0.6, 1.1) + rng.uniform(-0.1, 0.15), 0, 1)
    tint = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    return np.round(np.clip(g[..., None] * tint, 0, 1) * 255).astype(np.uint8)


def pair(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(noisy grey, clean grey) exposure-normalised float32, and the noisy photo's noise estimate."""
    if rng.random() < 0.1:  # no darkening: the photo's own noise (the gate usually skips these)
        noisy = img
        clean = img.astype(np.float32) / 255
    else:
        f, g = float(rng.uniform(0.08, 0.4)), float(rng.uniform(0.8, 1.4))
        ph, rn = float(np.exp(rng.uniform(np.log(80), np.log(1500)))), float(rng.uniform(1.0, 4.0))
        noisy = darken(img, rng, f, g, ph, rn)
        clean = ((img.astype(np.float32) / 255) ** GAMMA * f) ** (g / GAMMA)
    exposure = illumination(noisy).exposure
    gain = 0.8 / exposure
    sigma = noise_level(noisy, exposure)
    return (noisy.astype(np.float32).mean(axis=2) / 255 * gain, clean.mean(axis=2) * gain, sigma)


def batch(rng: np.random.Generator, imgs: np.ndarray, masks: np.ndarray, tex: list[np.ndarray], scenes: int,
          per: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from scipy import ndimage as ndi

    xs, ys, ws, ss = [], [], [], []
    for _ in range(scenes):
        if rng.random() < 0.2:
            img, m = texture_sample(rng, tex), np.zeros(SIZE, bool)
        else:
            k = int(rng.integers(len(imgs)))
            img, m = imgs[k], masks[k]
        noisy, clean, sigma = pair(rng, img)
        wmap = 1 + 4 * ndi.binary_dilation(m).astype(np.float32)
        noisy = np.pad(noisy, PAD, mode="reflect")
        for _ in range(per):
            y, x = rng.integers(0, SIZE[0] - CROP + 1), rng.integers(0, SIZE[1] - CROP + 1)
            a = noisy[y:y + CROP + 2 * PAD, x:x + CROP + 2 * PAD]
            b, w = clean[y:y + CROP, x:x + CROP], wmap[y:y + CROP, x:x + CROP]
            r = int(rng.integers(4))
            a, b, w = np.rot90(a, r), np.rot90(b, r), np.rot90(w, r)
            if rng.random() < 0.5:
                a, b, w = a[:, ::-1], b[:, ::-1], w[:, ::-1]
            xs.append(a.copy())
            ys.append(b.copy())
            ws.append(w.copy())
            ss.append(sigma)
    t = torch.from_numpy
    return (t(np.stack(xs))[:, None], t(np.stack(ys))[:, None], t(np.stack(ws))[:, None],
            torch.tensor(ss, dtype=torch.float32))


def segmenter():
    from kintsugi_crack.infer import load_model
    from kintsugi_crack.tasks import model_tensors

    return load_model(model_tensors(None, "cpu"))


def task_sample(rng: np.random.Generator, img: np.ndarray, seg) -> dict:
    """One darkened scene for the task stage: the crack network's probability on the noise-free
    darkening (the teacher), and what the student path needs to rebuild the network input from a
    denoised grey level (colour part, illumination, exposure) as ``retinex.network_input`` does."""
    from kintsugi_crack.retinex import _colour_half, to_float_rgb
    from kintsugi_crack.train import prepare

    f, g = float(rng.uniform(0.08, 0.3)), float(rng.uniform(0.8, 1.4))
    ph, rn = float(np.exp(rng.uniform(np.log(80), np.log(600)))), float(rng.uniform(1.0, 4.0))
    noisy = darken(img, rng, f, g, ph, rn)
    clean = ((img.astype(np.float32) / 255) ** GAMMA * f) ** (g / GAMMA)
    with torch.no_grad():
        teacher = torch.sigmoid(seg(torch.from_numpy(prepare(np.round(clean * 255).astype(np.uint8)))[None]))[0]
    il = illumination(noisy)
    rgb = to_float_rgb(noisy)
    col = _colour_half(rgb, 2.0)
    col = np.repeat(np.repeat(col, 2, 0), 2, 1)
    gain = 0.8 / il.exposure
    return {"grey": np.pad(rgb.mean(axis=2) * gain, PAD, mode="reflect"), "col": np.moveaxis(col, 2, 0),
            "illum": il.at(0, 0, *rgb.shape[:2]), "exposure": il.exposure, "sigma": il.noise, "teacher": teacher,
            "clean": clean.mean(axis=2) * gain}


def student_input(den: torch.Tensor, s: dict) -> torch.Tensor:
    """(4, H, W) network input from a denoised exposure-normalised grey (H, W): ``network_input``."""
    from kintsugi_crack.retinex import EPS

    gain = 0.8 / s["exposure"]
    e = EPS + 0.01 * s["exposure"]
    col = torch.from_numpy(s["col"])
    rgb = torch.clamp(den[None] + col * gain, 0, 1.5)
    refl = torch.clamp((den / gain + col.max(0).values + e) * 0.5 / (torch.from_numpy(s["illum"]) + e), 0, 1)
    return torch.cat([rgb, refl[None]], 0)


def task_stage(net, seg, rng: np.random.Generator, imgs: np.ndarray, iters: int, lr: float, bs: int,
               pixel_w: float, log: list, t0: float) -> None:
    """Fine-tune the denoiser through the frozen crack network: its output on the denoised photo should
    match its output on the same photo darkened without noise (soft BCE, crack-ish pixels x5), plus a
    small pixel loss that keeps the output an image."""
    import torch.nn.functional as F

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=iters, pct_start=0.1)
    run = 0.0
    for it in range(iters):
        samples = [task_sample(rng, imgs[int(rng.integers(len(imgs)))], seg) for _ in range(bs)]
        x = torch.from_numpy(np.stack([s["grey"] for s in samples]))[:, None]
        den = net(x, torch.tensor([s["sigma"] for s in samples], dtype=torch.float32))[:, 0]
        inp = torch.stack([student_input(den[i], s) for i, s in enumerate(samples)])
        logit = seg(inp)
        teacher = torch.stack([s["teacher"] for s in samples])
        w = 1 + 4 * (teacher > 0.2).float()
        loss = F.binary_cross_entropy_with_logits(logit, teacher, weight=w)
        clean = torch.from_numpy(np.stack([s["clean"] for s in samples]))
        lv = _step(opt, sched, loss + pixel_w * (den - clean).abs().mean())
        run = 0.95 * run + 0.05 * lv if it else lv
        if (it + 1) % 25 == 0:
            log.append({"task_iter": it + 1, "loss": round(run, 5), "seconds": round(time.perf_counter() - t0, 1)})
            print(log[-1], flush=True)


def _step(opt, sched, loss) -> float:
    """One optimiser and schedule step on ``loss``; its value."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def train(iters: int, out_dir: Path, pool: int, seed: int = SEED, lr: float = 2e-3, task_iters: int = 0,
          task_lr: float = 5e-4, task_bs: int = 4, pixel_w: float = 0.2, init: Path | None = None,
          width: int = WIDTH) -> dict:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    imgs, masks = make_pool(pool, seed)
    tex = textures()
    t_data = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 1)
    net = build(width)
    if init is not None:
        from safetensors.torch import load_file

        net.load_state_dict(load_file(str(init)))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(iters, 1), pct_start=0.1)
    log: list = []
    run = 0.0
    for it in range(iters if iters > 0 else 0):
        x, y, w, s = batch(rng, imgs, masks, tex, 4, 4)
        out = net(x, s)
        lv = _step(opt, sched, (w * (out - y).abs()).sum() / w.sum())
        run = 0.98 * run + 0.02 * lv if it else lv
        if (it + 1) % 100 == 0:
            log.append({"iter": it + 1, "loss": round(run, 5), "seconds": round(time.perf_counter() - t0, 1)})
            print(log[-1], flush=True)
    if task_iters:
        task_stage(net, segmenter(), np.random.default_rng(seed + 2), imgs, task_iters, task_lr, task_bs, pixel_w,
                   log, t0)
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out_dir / "denoiser.safetensors"))
    info = {"iters": iters, "pool": pool, "seed": seed, "max_lr": lr, "task_iters": task_iters, "task_lr": task_lr,
            "task_bs": task_bs, "pixel_w": pixel_w, "width": width, "init": str(init) if init else None,
            "data_seconds": round(t_data, 1),
            "wall_seconds": round(time.perf_counter() - t0, 1), "log": log}
    (out_dir / "denoiser_train_log.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="train the low-light brightness denoiser")
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--pool", type=int, default=400)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--max-lr", type=float, default=2e-3)
    ap.add_argument("--task-iters", type=int, default=800)
    ap.add_argument("--task-lr", type=float, default=5e-4)
    ap.add_argument("--task-bs", type=int, default=4)
    ap.add_argument("--pixel-w", type=float, default=0.2)
    ap.add_argument("--init", type=Path, default=None)
    ap.add_argument("--width", type=int, default=WIDTH)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "weights")
    a = ap.parse_args(argv)
    info = train(a.iters, a.out, a.pool, a.seed, a.max_lr, a.task_iters, a.task_lr, a.task_bs, a.pixel_w, a.init,
                 a.width)
    print(f"done in {info['wall_seconds']} s -> {a.out / 'denoiser.safetensors'}")


if __name__ == "__main__":
    main()

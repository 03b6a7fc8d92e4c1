"""CrackProtoNet: a compact CrackNex-style segmentation network (RGB + reflectance, prototypes).

Why this shape: CrackNex showed two things that matter for inspectors' photos: reflectance makes
crack features stable under low light, and a few annotated examples of a new site, turned into
foreground/background *prototypes* by masked average pooling, steer the prediction without
retraining. Here both ideas live in a network small enough for a 2048 x 2048 photo on a laptop CPU:

* two stems (RGB, reflectance) at 1/2 resolution, a shared encoder down to 1/8 with dilation for
  context, a decoder back to 1/2 giving query features ``F`` (``FEAT`` channels) and reflectance
  features ``Fr``;
* a learned head on ``F`` (works with no support at all);
* with support: prototypes ``p_fg, p_bg`` from ``F`` and ``r_fg, r_bg`` from ``Fr`` by masked average
  pooling; the reflectance prototypes re-weight the channels (fusion), then cosine similarity x 10
  to each prototype gives two maps that a 1x1 layer adds to the head's logit;
* a full-resolution refinement from the upsampled logit and the reflectance, for 1 px hairlines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FEAT = 32
REF_FEAT = 16
MARGIN = 48  # px of context each tile side needs (receptive field of the network, with room)
CROP = 384  # px of each support tile kept for the few-shot head fit
# The head fit: Adam steps, step size, and the pull to the trained head for ONE example (divided by the
# number of examples: more examples, more trust in them). Chosen on the development set (UAV75 training
# part: support from one half, scored on the other, normal and darkened; synthetic scenes as another
# site): without a pull, a single example could halve F1 (and cost another site ~15 %), with a strong
# one five examples gain little.
FIT_STEPS, FIT_LR, FIT_L2 = 100, 0.05, 0.015


def cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class Prototypes:
    """Sums for masked average pooling, accumulated over support tiles/images (K-shot = pooled)."""

    def __init__(self, seed: int = 0) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.fg_px = 0.0
        self.bg_px = 0.0
        self.crops: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []  # for adapt_head
        self.gen = torch.Generator().manual_seed(seed)

    def keep_crop(self, x: torch.Tensor, feats: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor) -> None:
        """Keep a window (at most ``CROP`` px, around a random crack pixel) of a support tile:
        (network input, features, full-res mask, full-res valid) for ``adapt_head``."""
        h, w = x.shape[2:]
        ys, xs = torch.nonzero(mask[0, 0] * valid[0, 0] > 0, as_tuple=True)
        if len(ys) == 0:
            return
        k = int(torch.randint(len(ys), (1,), generator=self.gen))
        y0 = max(0, min(h - CROP, int(ys[k]) - CROP // 2)) // 8 * 8
        x0 = max(0, min(w - CROP, int(xs[k]) - CROP // 2)) // 8 * 8
        y1, x1 = min(h, y0 + CROP), min(w, x0 + CROP)
        y1, x1 = y0 + (y1 - y0) // 8 * 8, x0 + (x1 - x0) // 8 * 8
        self.crops.append((x[:, :, y0:y1, x0:x1].clone(), feats[:, :, y0 // 2:y1 // 2, x0 // 2:x1 // 2].clone(),
                           mask[:, :, y0:y1, x0:x1].clone(), valid[:, :, y0:y1, x0:x1].clone()))

    def add(self, feats: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor) -> None:
        """``mask``/``valid``: (N, 1, h, w) in [0, 1] at feature resolution."""
        fg, bg = mask * valid, (1 - mask) * valid
        for name, f in (("f", feats), ("r", ref)):
            for part, m in (("fg", fg), ("bg", bg)):
                s = (f * m).sum(dim=(0, 2, 3))
                key = f"{name}_{part}"
                self.sums[key] = self.sums[key] + s if key in self.sums else s
        self.fg_px += float(fg.sum())
        self.bg_px += float(bg.sum())
    def vectors(self) -> dict[str, torch.Tensor]:
        if self.fg_px < 1e-6:
            raise ValueError("the support masks mark no crack pixels: draw at least one crack in a support mask")
        if self.bg_px < 1e-6:
            raise ValueError("the support masks mark every pixel as crack: leave some background unmarked")
        return {k: v / (self.fg_px if k.endswith("fg") else self.bg_px) for k, v in self.sums.items()}


class CrackProtoNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rgb_stem = cbr(3, 16, 2)
        self.ref_stem = nn.Sequential(cbr(1, 8, 2), cbr(8, REF_FEAT))
        self.enc1 = nn.Sequential(cbr(16 + REF_FEAT, 32, 2), cbr(32, 32))  # 1/4
        self.enc2 = nn.Sequential(cbr(32, 64, 2), cbr(64, 64, dilation=2), cbr(64, 64, dilation=4))  # 1/8
        self.lat2 = nn.Conv2d(64, 32, 1)
        self.dec1 = nn.Sequential(nn.Conv2d(32 + 32, 32, 1, bias=False), cbr(32, 32))  # 1/4
        # 1x1 at 1/2 resolution: a 3x3 here alone would cost more than the rest of the network.
        self.dec0 = nn.Sequential(nn.Conv2d(32 + 16 + REF_FEAT, FEAT, 1, bias=False), nn.BatchNorm2d(FEAT),
                                  nn.ReLU(inplace=True))  # 1/2
        self.head = nn.Conv2d(FEAT, 1, 1)
        self.fuse = nn.Linear(2 * REF_FEAT, FEAT)  # reflectance prototypes -> channel weights
        self.proto_mix = nn.Conv2d(2, 1, 1)  # (cos to fg, cos to bg) -> logit offset
        nn.init.zeros_(self.proto_mix.weight)
        nn.init.zeros_(self.proto_mix.bias)
        self.refine = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(8, 1, 3, padding=1))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(F, Fr) at 1/2 resolution; ``x`` is (N, 4, H, W) with H, W divisible by 8."""
        s = self.rgb_stem(x[:, :3])
        r = self.ref_stem(x[:, 3:4])
        s0 = torch.cat([s, r], 1)
        e1 = self.enc1(s0)
        e2 = self.enc2(e1)
        d1 = self.dec1(torch.cat([F.interpolate(self.lat2(e2), scale_factor=2, mode="bilinear",
                                                align_corners=False), e1], 1))
        d0 = self.dec0(torch.cat([F.interpolate(d1, scale_factor=2, mode="bilinear", align_corners=False), s0], 1))
        return d0, r

    def features_fast(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features`` without concatenations, for inference (same weights, same result).

        A convolution of a concatenation is the sum of convolutions of its parts, and a 1x1
        convolution commutes with bilinear upsampling, so the decoder's 1x1 layers run at the lower
        resolution before upsampling and no half-resolution 64-channel copy is ever made."""
        s = self.rgb_stem(x[:, :3])
        r = self.ref_stem(x[:, 3:4])
        c1 = self.enc1[0][0]
        w1 = c1.weight
        e1 = F.conv2d(s, w1[:, :16], c1.bias, c1.stride, c1.padding) + F.conv2d(r, w1[:, 16:], None, c1.stride,
                                                                                   c1.padding)
        e1 = self.enc1[1](self.enc1[0][2](self.enc1[0][1](e1)))
        e2 = self.enc2(e1)
        c2 = self.dec1[0]
        lat = F.conv2d(self.lat2(e2), c2.weight[:, :32])
        d1 = F.interpolate(lat, scale_factor=2, mode="bilinear", align_corners=False) + F.conv2d(e1, c2.weight[:, 32:])
        d1 = self.dec1[1](d1)
        c0, rest = self.dec0[0], self.dec0[1:]
        w0 = c0.weight
        d0 = (F.interpolate(F.conv2d(d1, w0[:, :32]), scale_factor=2, mode="bilinear", align_corners=False)
              + F.conv2d(s, w0[:, 32:48], c0.bias) + F.conv2d(r, w0[:, 48:]))
        return rest(d0), r

    def proto_logit(self, feats: torch.Tensor, protos: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cosine similarity to the fused fg/bg prototypes, mixed into a logit offset (N, 1, h, w)."""
        w = torch.sigmoid(self.fuse(torch.cat([protos["r_fg"], protos["r_bg"]], -1)))  # (C,) or (N, C)
        w = w.view(-1, FEAT, 1, 1) if w.dim() == 2 else w.view(1, FEAT, 1, 1)
        q = F.normalize(feats * w, dim=1)
        out = []
        for part in ("f_fg", "f_bg"):
            p = protos[part]
            p = p.view(-1, FEAT, 1, 1) if p.dim() == 2 else p.view(1, FEAT, 1, 1)
            out.append(10.0 * (q * F.normalize(p * w, dim=1)).sum(1, keepdim=True))
        return self.proto_mix(torch.cat(out, 1))

    def forward(self, x: torch.Tensor, protos: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Full-resolution crack logits (N, 1, H, W)."""
        feats, _ = self.features(x) if self.training else self.features_fast(x)
        if protos is not None and "head_w" in protos:
            logit = F.conv2d(feats, protos["head_w"], protos["head_b"])
        else:
            logit = self.head(feats)
        if protos is not None:
            logit = logit + self.proto_logit(feats, protos)
        up = F.interpolate(logit, scale_factor=2, mode="bilinear", align_corners=False)
        return up + self.refine(torch.cat([up, x[:, 3:4], x[:, :3].mean(1, keepdim=True)], 1))


def batch_prototypes(feats: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample prototypes (N, C) for training episodes; ``mask`` (N, 1, H, W) full-res in {0, 1}."""
    m = F.avg_pool2d(mask, 2)
    out = {}
    for name, f in (("f", feats), ("r", ref)):
        out[f"{name}_fg"] = (f * m).sum((2, 3)) / m.sum((2, 3)).clamp_min(1e-3)
        out[f"{name}_bg"] = (f * (1 - m)).sum((2, 3)) / (1 - m).sum((2, 3)).clamp_min(1e-3)
    return out


def adapt_head(net: CrackProtoNet, protos: dict[str, torch.Tensor], crops: list, n_examples: int = 1,
               steps: int | None = None, l2: float | None = None, lr: float | None = None
               ) -> dict[str, torch.Tensor]:
    """Few-shot head refit: the 1x1 head (33 numbers) re-fitted to the support examples in seconds,
    through the full-resolution refinement, with the prototype term as a fixed offset and a pull
    towards the trained head (``l2 / n_examples``). Backbone and refinement stay frozen.

    Why: the prototype term can only say "like these crack pixels / unlike this background"; a new
    site's own distractors (formwork, planking) need the decision boundary itself to move."""
    if not crops:
        return {}
    crops = [tuple(t.clone() for t in c) for c in crops]  # out of inference mode: tensors autograd may save
    w0 = net.head.weight.detach().clone()
    b0 = net.head.bias.detach().clone()
    w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    steps = FIT_STEPS if steps is None else steps
    l2 = (FIT_L2 if l2 is None else l2) / max(n_examples, 1)
    opt = torch.optim.Adam([w, b], lr=FIT_LR if lr is None else lr)
    with torch.no_grad():
        offsets = [net.proto_logit(f, protos) for _, f, _, _ in crops]
    threads = torch.get_num_threads()
    # One thread: these are small tensors, and on a busy 2-core machine two OpenMP threads made each step
    # about 25x slower (73 s against 2.8 s for one example), spinning while the other core was taken.
    torch.set_num_threads(1)
    try:
        _fit(net, crops, offsets, w, b, w0, l2, steps, opt)
    finally:
        torch.set_num_threads(threads)
    return {"head_w": w.detach(), "head_b": b.detach()}


def _fit(net: CrackProtoNet, crops: list, offsets: list, w: torch.Tensor, b: torch.Tensor, w0: torch.Tensor,
         l2: float, steps: int, opt: torch.optim.Optimizer) -> None:
    with torch.enable_grad():
        for _ in range(steps):
            loss = l2 * ((w - w0) ** 2).sum()
            for (x, f, m, v), off in zip(crops, offsets, strict=True):
                logit = F.conv2d(f, w, b) + off
                up = F.interpolate(logit, scale_factor=2, mode="bilinear", align_corners=False)
                out = up + net.refine(torch.cat([up, x[:, 3:4], x[:, :3].mean(1, keepdim=True)], 1))
                bce = F.binary_cross_entropy_with_logits(out, m, weight=v, pos_weight=torch.tensor(3.0))
                p = torch.sigmoid(out) * v
                dice = 1 - (2 * (p * m).sum() + 1) / (p.sum() + (m * v).sum() + 1)
                loss = loss + (bce + dice) / len(crops)
            opt.zero_grad()
            loss.backward()
            opt.step()

"""Learned pose path: a small GARF-style transformer with flow matching on SO(3) x R^3.

Per part: a PointNet over its points (centred, normals, fracture probability) gives a token;
the current pose and flow time are added; a transformer over the parts predicts a rotation
velocity (axis-angle) and a translation velocity. Training follows GARF's flow: translations
interpolate linearly to Gaussian noise, rotations go R_t = Exp(t Log R_noise) R_0 with R_noise
uniform; sampling runs ~20 Euler steps from noise (t=1) to the assembly (t=0), the anchor held
at its pose. Sized to train on a CPU in minutes, so expect far less than GARF's accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).parent / "weights" / "flow.safetensors"
N_POINTS = 192  # per part
MAX_PARTS = 50
T_SCALE = 2.0  # translations (normalised units) are multiplied by this for the network


def _torch():
    import torch

    return torch


def build_model(width: int = 128, layers: int = 3, heads: int = 4):
    torch = _torch()
    nn = torch.nn

    class FlowNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.point = nn.Sequential(nn.Linear(7, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128))
            self.part = nn.Sequential(nn.Linear(256 + 1, width), nn.ReLU(), nn.Linear(width, width))
            self.state = nn.Sequential(nn.Linear(9 + 3 + 16 + 1, width), nn.ReLU(), nn.Linear(width, width))
            layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 6))

        def embed(self, pts, scale):
            """(B, P, N, 7), (B, P) -> (B, P, width): the part tokens (pose-independent, cached)."""
            f = self.point(pts)
            pooled = torch.cat([f.max(dim=2).values, f.mean(dim=2)], dim=-1)
            return self.part(torch.cat([pooled, scale[..., None]], dim=-1))

        def forward(self, tokens, rot, trans, t, anchor, mask):
            """rot (B,P,3,3), trans (B,P,3), t (B,), anchor (B,P) bool, mask (B,P) True = padding."""
            freqs = torch.arange(8, dtype=tokens.dtype) + 1.0
            temb = torch.cat([torch.sin(t[:, None] * freqs * 3.14159), torch.cos(t[:, None] * freqs * 3.14159)], -1)
            b, p = trans.shape[:2]
            state = torch.cat([rot.reshape(b, p, 9), trans, temb[:, None].expand(b, p, 16),
                               anchor[..., None].to(tokens.dtype)], dim=-1)
            x = self.encoder(tokens + self.state(state), src_key_padding_mask=mask)
            out = self.head(x)
            return out[..., :3], out[..., 3:]

    return FlowNet()


def hat(w):
    torch = _torch()
    z = torch.zeros_like(w[..., 0])
    return torch.stack([torch.stack([z, -w[..., 2], w[..., 1]], -1), torch.stack([w[..., 2], z, -w[..., 0]], -1),
                        torch.stack([-w[..., 1], w[..., 0], z], -1)], -2)


def exp_so3(w):
    torch = _torch()
    theta = w.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    k = hat(w / theta)
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=w.dtype).expand(k.shape)
    return eye + s * k + (1 - c) * (k @ k)


def part_inputs(points: np.ndarray, normals: np.ndarray, prob: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """(N_POINTS, 7) centred inputs, the centroid, and the part radius."""
    pick = rng.choice(len(points), N_POINTS, replace=len(points) < N_POINTS)
    c = points.mean(0)
    p = points[pick] - c
    radius = float(np.linalg.norm(p, axis=1).max()) + 1e-9
    x = np.concatenate([p * T_SCALE, normals[pick], prob[pick, None]], axis=1).astype(np.float32)
    return x, c, radius


_MODEL = None


def load(path: Path | None = None):
    global _MODEL
    path = path or WEIGHTS
    if _MODEL is not None and path == WEIGHTS:
        return _MODEL
    if not path.exists():
        return None
    from safetensors.torch import load_file

    model = build_model()
    model.load_state_dict(load_file(str(path)))
    model.eval()
    if path == WEIGHTS:
        _MODEL = model
    return model


def sample_poses(model, inputs: np.ndarray, radii: np.ndarray, anchor: int, n_samples: int = 4,
                 steps: int = 20, seed: int = 0) -> np.ndarray:
    """(S, P, 4, 4) poses of centred parts in the anchor's centred frame (normalised units)."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    p = len(inputs)
    with torch.no_grad():
        x = torch.from_numpy(inputs)[None].expand(n_samples, -1, -1, -1)
        tokens = model.embed(x, torch.from_numpy(radii.astype(np.float32) * T_SCALE)[None].expand(n_samples, -1))
        anc = torch.zeros(n_samples, p, dtype=torch.bool)
        anc[:, anchor] = True
        mask = torch.zeros(n_samples, p, dtype=torch.bool)
        q = torch.randn(n_samples, p, 4, generator=g)
        rot = quat_to_matrix(q / q.norm(dim=-1, keepdim=True))
        trans = torch.randn(n_samples, p, 3, generator=g)
        eye = torch.eye(3).expand(n_samples, 3, 3)
        rot[:, anchor], trans[:, anchor] = eye, 0.0
        dt = 1.0 / steps
        for k in range(steps):
            t = torch.full((n_samples,), 1.0 - k * dt)
            vr, vt = model(tokens, rot, trans, t, anc, mask)
            rot = exp_so3(-dt * vr) @ rot
            trans = trans - dt * vt
            rot[:, anchor], trans[:, anchor] = eye, 0.0
    out = np.tile(np.eye(4), (n_samples, p, 1, 1))
    out[:, :, :3, :3] = rot.numpy()
    out[:, :, :3, 3] = trans.numpy() / T_SCALE
    return out


def quat_to_matrix(q):
    torch = _torch()
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def hypotheses(parts, anchor: int, n_samples: int = 4, seed: int = 0, model=None) -> list[dict[int, np.ndarray]]:
    """Learned assemblies as {part: pose} (part file frame -> anchor file frame, normalised units)."""
    model = model or load()
    if model is None:
        return []
    rng = np.random.default_rng(seed)
    ins, cents, radii = [], [], []
    for part in parts:
        prob = part.fracture if part.fracture is not None else np.zeros(len(part.points))
        x, c, r = part_inputs(part.points, part.normals, prob, rng)
        ins.append(x)
        cents.append(c)
        radii.append(r)
    centred = sample_poses(model, np.stack(ins), np.array(radii), anchor, n_samples, seed=seed)
    out = []
    ca = cents[anchor]
    for s in range(len(centred)):
        poses = {}
        for k, c in enumerate(cents):
            m = centred[s, k].copy()
            # file -> centred part -> anchor centred -> anchor file
            m[:3, 3] = m[:3, 3] - m[:3, :3] @ c + ca
            poses[k] = m
        out.append(poses)
    return out

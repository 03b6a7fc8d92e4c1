"""Fracture segmentation: the region-level second stage (one answer per crease-bounded region)."""

from __future__ import annotations

import numpy as np
import pytest


def _smooth_patch(rng: np.random.Generator, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """A patch of a cylinder (an original surface: normals vary smoothly with position)."""
    th, y = rng.uniform(-0.6, 0.6, n), rng.uniform(-1, 1, n)
    nrm = np.stack([np.sin(th), np.zeros(n), np.cos(th)], axis=1)
    return np.stack([2 * np.sin(th), y, 2 * np.cos(th)], axis=1), nrm


def _relief_patch(rng: np.random.Generator, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """A wavy height field (a break's relief) with its analytic normals."""
    xy = rng.uniform(-1, 1, size=(n, 2))
    k = rng.normal(size=(6, 2)) * 4.0
    amp, ph = rng.uniform(0.02, 0.05, 6), rng.uniform(0, 2 * np.pi, 6)
    arg = xy @ k.T + ph
    grad = (np.cos(arg) * amp) @ k
    nrm = np.concatenate([-grad, np.ones((n, 1))], axis=1)
    return np.concatenate([xy, (np.sin(arg) @ amp)[:, None] + 3.0], axis=1), nrm / np.linalg.norm(nrm, axis=1,
                                                                                                    keepdims=True)


def test_region_features_tell_a_relief_from_a_smooth_surface():
    from kintsugi_reassembly.features import N_REGION_FEATURES, N_SEG_FEATURES, region_features

    rng = np.random.default_rng(0)
    (ps, ns), (pr, nr) = _smooth_patch(rng), _relief_patch(rng)
    pts, nrm = np.concatenate([ps, pr, pr[:3] + 5]), np.concatenate([ns, nr, nr[:3]])
    regions = np.concatenate([np.zeros(300, int), np.ones(300, int), np.full(3, 2)])
    feats = np.zeros((len(pts), N_SEG_FEATURES), np.float32)
    f, ids = region_features(pts, nrm, feats, regions, np.full(len(pts), 0.5))
    assert f.shape == (2, N_REGION_FEATURES) and list(ids) == [0, 1]  # the 3-point region is left out
    # normal residual after a fit linear in position, relative to the normals' spread: low on the cylinder
    assert f[0, 5] < 0.2 < 0.5 < f[1, 5]


def test_region_classify_gives_one_answer_per_region_and_keeps_small_regions():
    import torch

    from kintsugi_reassembly.features import N_REGION_FEATURES, N_SEG_FEATURES
    from kintsugi_reassembly.segment import region_classify

    rng = np.random.default_rng(1)
    (ps, ns), (pr, nr) = _smooth_patch(rng, 100), _relief_patch(rng, 100)
    pts, nrm = np.concatenate([ps, pr, pr[:4] + 5]), np.concatenate([ns, nr, nr[:4]])
    regions = np.concatenate([np.zeros(100, int), np.ones(100, int), np.full(4, 2)])
    prob = rng.uniform(0.1, 0.9, len(pts))
    lin = torch.nn.Linear(N_REGION_FEATURES, 1)
    with torch.no_grad():  # a stub that answers with the region's mean point logit (feature 0)
        lin.weight.zero_()
        lin.bias.zero_()
        lin.weight[0, 0] = 1.0
    feats = np.zeros((len(pts), N_SEG_FEATURES), np.float32)
    out = region_classify(pts, nrm, feats, regions, prob,
                          loaded=(lin, np.zeros(N_REGION_FEATURES, np.float32), np.ones(N_REGION_FEATURES, np.float32)))
    for r in (0, 1):
        m = regions == r
        lg = np.log(prob[m] / (1 - prob[m])).mean()
        assert np.allclose(out[m], 1 / (1 + np.exp(-lg)), atol=1e-5)
    assert np.allclose(out[regions == 2], prob[regions == 2])


def test_shipped_region_classifier_fixes_whole_regions_on_a_validation_tile():
    """Validation tile 500020 (never trained on): the point classifier's region vote calls a large
    original region of one piece a break and misses break regions; the second stage gets them."""
    pytest.importorskip("torch")
    from kintsugi_reassembly import data, segment
    from kintsugi_reassembly.features import segmentation_features
    from kintsugi_reassembly.prep import prepare

    if segment.load() is None or segment.load_regions() is None:
        pytest.skip("segmentation weights not installed")
    obj = data.generate(500020)
    assert obj.shape == "tile"
    prep = prepare(data.to_sample(obj).fragments, points_total=8000, seed=0)
    iou = {}
    for name in ("vote", "regions"):
        tp = fp = fn = 0
        for part, piece in zip(prep.parts, obj.pieces, strict=True):
            lab = piece.fracture_faces[part.extra["face"]]
            if name == "regions":
                pred = segment.fracture_probability(part.points, part.normals) > segment.THRESHOLD
            else:
                import torch

                model, mean, std = segment.load()
                feats, regions = segmentation_features(part.points, part.normals)
                with torch.no_grad():
                    p = torch.sigmoid(model(torch.from_numpy((feats - mean) / std)))[:, 0].numpy()
                pred = segment.region_vote(p, regions) > segment.THRESHOLD
            tp, fp, fn = tp + np.sum(pred & lab), fp + np.sum(pred & ~lab), fn + np.sum(~pred & lab)
        iou[name] = tp / (tp + fp + fn)
    assert iou["regions"] > iou["vote"] + 0.05, iou


def test_training_script_writes_both_stages_that_load(tmp_path):
    """`train --only segmenter` on a couple of objects writes a point and a region classifier that the
    pipeline's loaders read, with their scores beside them."""
    import json

    from kintsugi_reassembly.segment import load, load_regions
    from kintsugi_reassembly.train import main

    seg, reg = tmp_path / "seg.safetensors", tmp_path / "reg.safetensors"
    assert main(["--only", "segmenter", "--objects", "2", "--heldout", "1", "--epochs", "1", "--region-objects", "2",
                 "--region-epochs", "2", "--region-validation", "1", "--region-heldout", "0", "--out", str(seg),
                 "--region-out", str(reg)]) in (0, None)
    assert load(seg) is not None and load_regions(reg) is not None
    scores = json.loads(reg.with_suffix(".json").read_text())
    assert scores["region_train_objects"] == 2 and 0.0 <= scores["validation_stage2_regions"]["iou"] <= 1.0

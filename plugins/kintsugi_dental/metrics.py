"""Held-out metrics: binary Dice, instance detection F1 at IoU >= 0.5, per-tooth Dice."""

from __future__ import annotations

import numpy as np


def binary_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    p, t = pred > 0, truth > 0
    denom = int(p.sum()) + int(t.sum())
    return 1.0 if denom == 0 else 2.0 * int((p & t).sum()) / denom


def _overlaps(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contingency of truth labels (rows) against predicted labels (columns), and the sizes of each."""
    t, p = truth.ravel().astype(np.int64), pred.ravel().astype(np.int64)
    nt, np_ = int(t.max()) + 1, int(p.max()) + 1
    both = (t > 0) & (p > 0)
    table = np.bincount(t[both] * np_ + p[both], minlength=nt * np_).reshape(nt, np_)
    return table, np.bincount(t, minlength=nt), np.bincount(p, minlength=np_)


def instance_scores(pred: np.ndarray, truth: np.ndarray, iou_min: float = 0.5) -> dict[str, float]:
    """F1 of tooth detection (a predicted tooth matches a true one at IoU >= ``iou_min``; at that threshold
    a match is unique) and the mean per-tooth Dice over the true teeth (a missed tooth counts 0)."""
    table, st, sp = _overlaps(pred, truth)
    t_ids = [i for i in range(1, len(st)) if st[i] > 0]
    p_ids = [j for j in range(1, len(sp)) if sp[j] > 0]
    tp, dices = 0, []
    for i in t_ids:
        if not p_ids:
            dices.append(0.0)
            continue
        inter = table[i, p_ids]
        j = p_ids[int(np.argmax(inter))]
        a = int(table[i, j])
        iou = a / (st[i] + sp[j] - a)
        dices.append(2 * a / (st[i] + sp[j]))
        tp += int(iou >= iou_min)
    fp, fn = len(p_ids) - tp, len(t_ids) - tp
    f1 = 1.0 if not t_ids and not p_ids else 2 * tp / max(2 * tp + fp + fn, 1)
    return {"f1": f1, "tooth_dice": float(np.mean(dices)) if dices else 1.0, "tp": tp, "fp": fp, "fn": fn,
            "n_true": len(t_ids), "n_pred": len(p_ids)}

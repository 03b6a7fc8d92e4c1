"""Dental plugin pieces without the network: orientation, resampling, instance separation, metrics, FDI."""

import numpy as np
import pytest

from kintsugi.samples import dental
from kintsugi_dental.data import core_of
from kintsugi_dental.fdi import crown_lift, fdi_numbers
from kintsugi_dental.instances import separate
from kintsugi_dental.metrics import binary_dice, instance_scores
from kintsugi_dental.preprocess import MAX_WORK_VOXELS, canonical, from_working, to_working


@pytest.mark.parametrize("direction", [
    np.eye(3),
    np.diag([-1.0, -1.0, 1.0]),  # RAS-stored
    np.array([[0, 0, -1.0], [1, 0, 0], [0, -1, 0]]),  # axes permuted and flipped
])
def test_canonical_round_trip_and_frame(direction):
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    c = canonical(direction, (1.0, 2.0, 3.0))
    back = c.inverse(c.forward(a))
    assert np.array_equal(back, a)
    # the canonical array's x axis must run along physical +x (patient's left)
    col_x = direction[:, 2 - c.perm[2]] * (-1 if c.flip[2] else 1)
    assert col_x[0] == pytest.approx(1.0)


def test_to_working_and_back_keeps_geometry():
    rng = np.random.default_rng(0)
    a = np.zeros((50, 60, 70), np.float32)
    a[10:35, 15:45, 20:60] = 1000
    w, f = to_working(a + rng.normal(0, 1, a.shape).astype(np.float32), (0.3, 0.3, 0.3), 0.6)
    assert w.shape == (25, 30, 35) and f == pytest.approx((2.0, 2.0, 2.0))
    back = from_working((w > 500).astype(np.float32), f, a.shape, order=1) > 0.5
    assert binary_dice(back, a > 0) > 0.93
    shift = np.argwhere(back).mean(axis=0) - np.argwhere(a > 0).mean(axis=0)
    assert np.all(np.abs(shift) < 0.6)  # no half-voxel drift between the grids


def test_huge_extent_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match=r"covers 300 x 200 x 400 mm \(x, y, z\).*crop it to the jaws"):
        to_working(np.zeros((40, 20, 30), np.int16), (10.0, 10.0, 10.0))  # (z, y, x) voxels of 10 mm
    assert MAX_WORK_VOXELS >= 256**3


def test_touching_balls_are_separated_by_their_cores():
    zz, yy, xx = np.mgrid[0:30, 0:30, 0:50]
    a = ((zz - 15) ** 2 + (yy - 15) ** 2 + (xx - 15) ** 2) < 100
    b = ((zz - 15) ** 2 + (yy - 15) ** 2 + (xx - 33) ** 2) < 100  # overlaps a: one blob
    truth = np.zeros(a.shape, np.int16)
    truth[a] = 1
    truth[b & ~a] = 2
    core = core_of(truth, 0.6)
    labels = separate((a | b).astype(np.float32), core.astype(np.float32), 0.6)
    s = instance_scores(labels, truth)
    assert s["n_pred"] == 2 and s["f1"] == 1.0 and s["tooth_dice"] > 0.95


def test_instance_scores_count_misses_and_extras():
    t = np.zeros((10, 10, 10), np.int16)
    t[1:4, 1:4, 1:4], t[6:9, 6:9, 6:9] = 1, 2
    p = np.zeros_like(t)
    p[1:4, 1:4, 1:4] = 5  # found
    p[0, 9, 0] = 7  # an extra
    s = instance_scores(p, t)
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1) and s["f1"] == pytest.approx(0.5)
    assert s["tooth_dice"] == pytest.approx(0.5)


@pytest.mark.parametrize("seed,jaws", [(5, ("lower",)), (6, ("upper",)), (7, ("upper", "lower"))])
def test_fdi_guess_on_true_teeth(seed, jaws):
    ph = dental.generate(seed, jaws=jaws, spacing=(0.6, 0.6, 0.6))
    cen = np.array([t["centroid_mm"] for t in ph.truth])
    guess = fdi_numbers(cen, crown_lift(ph.labels.data, ph.labels.geometry, cen))
    truth = [t["fdi"] for t in ph.truth]
    assert np.mean([g == t for g, t in zip(guess, truth, strict=True)]) >= 0.9

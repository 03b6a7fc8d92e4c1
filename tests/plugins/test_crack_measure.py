"""Crack measurements: cracks of known length and width, drawn as the sample generator draws them."""

from __future__ import annotations

import numpy as np
import pytest

from kintsugi_crack.measure import measure, width_map


def band(shape: tuple[int, int], points: np.ndarray, width: float) -> tuple[np.ndarray, float]:
    """Mask of pixel centres within width/2 of a polyline (the generator's convention); its length."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    dist = np.full(shape, np.inf)
    for p0, p1 in zip(points[:-1], points[1:], strict=True):
        d = p1 - p0
        seg = float(np.hypot(*d))
        u = d / seg
        t = np.clip((xx - p0[0]) * u[0] + (yy - p0[1]) * u[1], 0, seg)
        dist = np.minimum(dist, np.hypot(xx - p0[0] - t * u[0], yy - p0[1] - t * u[1]))
    length = float(np.sum(np.hypot(*np.diff(points, axis=0).T)))
    return dist <= max(width, 1) / 2, length


# Exactly 45 deg is left to its own test: there a straight digital band of width w holds up to 19 %
# more (or fewer) pixels than w per unit length, depending on where the centreline sits in the pixel.
@pytest.mark.parametrize("angle", [0.0, 17.0, 22.5, 38.0, 52.0, 71.0, 90.0, 123.0])
@pytest.mark.parametrize("width", [2.0, 3.0, 5.0, 7.0])
def test_straight_crack_length_width_orientation_within_5_percent(angle: float, width: float) -> None:
    a = np.radians(angle)
    c = np.array([150.3, 149.6])
    d = 110 * np.array([np.cos(a), -np.sin(a)])  # counter-clockwise on screen: y points down
    mask, length = band((300, 300), np.array([c - d, c + d]), width)
    cracks, totals, _, _ = measure(mask.astype(np.uint8) * 255)
    assert len(cracks) == 1
    r = cracks[0]
    assert r["length_px"] == pytest.approx(length, rel=0.05)
    assert r["mean_width_px"] == pytest.approx(width, rel=0.05)
    assert r["max_width_px"] == pytest.approx(width, abs=1.5)
    assert min(abs(r["orientation_deg"] - angle % 180), 180 - abs(r["orientation_deg"] - angle % 180)) < 1.0
    assert totals["n_cracks"] == 1 and totals["total_length_px"] == r["length_px"]


@pytest.mark.parametrize("width", [2.0, 3.0, 5.0])
def test_45_degree_crack(width: float) -> None:
    c, d = np.array([150.3, 149.6]), 100 * np.array([1.0, -1.0]) / np.sqrt(2)
    mask, length = band((300, 300), np.array([c - d, c + d]), width)
    r = measure(mask)[0][0]
    assert r["length_px"] == pytest.approx(length, rel=0.05)
    assert r["mean_width_px"] == pytest.approx(mask.sum() / length, rel=0.05)  # the band's own pixel width
    assert r["orientation_deg"] == pytest.approx(45.0, abs=1.0)


def test_curved_crack_and_mm_units() -> None:
    t = np.linspace(0, np.pi, 200)
    pts = np.column_stack([200 + 150 * np.cos(t), 220 - 150 * np.sin(t)])  # a half circle, radius 150
    mask, length = band((400, 400), pts, 4.0)
    cracks, totals, sk, local_w = measure(mask, pixel_mm=0.2)
    assert length == pytest.approx(np.pi * 150, rel=1e-3)
    assert cracks[0]["length_px"] == pytest.approx(length, rel=0.05)
    assert cracks[0]["mean_width_px"] == pytest.approx(4.0, rel=0.05)
    assert cracks[0]["length_mm"] == pytest.approx(cracks[0]["length_px"] * 0.2, rel=1e-3)
    assert totals["total_length_mm"] == pytest.approx(totals["total_length_px"] * 0.2, rel=1e-3)
    wm = width_map(sk, local_w)
    assert wm.shape == mask.shape and wm.dtype == np.uint8
    assert set(np.unique(wm[wm > 0])) <= {3, 4, 5, 6}


def test_several_cracks_totals_and_small_pieces_dropped() -> None:
    m1, l1 = band((200, 300), np.array([[10.0, 30.0], [280.0, 40.0]]), 3.0)
    m2, l2 = band((200, 300), np.array([[50.0, 190.0], [60.0, 80.0], [150.0, 90.0]]), 5.0)
    speck, _ = band((200, 300), np.array([[250.0, 150.0], [253.0, 150.0]]), 2.0)
    cracks, totals, _, _ = measure(m1 | m2 | speck, min_length_px=10)
    assert totals["n_cracks"] == 2
    assert sorted(c["length_px"] for c in cracks) == pytest.approx(sorted([l1, l2]), rel=0.05)
    assert totals["total_length_px"] == pytest.approx(l1 + l2, rel=0.05)
    assert totals["mean_width_px"] == pytest.approx((3 * l1 + 5 * l2) / (l1 + l2), rel=0.08)
    assert cracks[0]["length_px"] >= cracks[1]["length_px"]  # longest first
    assert totals["total_length_mm"] is None  # no pixel size: px only


def test_empty_mask_measures_nothing() -> None:
    cracks, totals, _, _ = measure(np.zeros((50, 60), np.uint8))
    assert cracks == [] and totals["n_cracks"] == 0 and totals["total_length_px"] == 0


def test_tiled_skeleton_matches_whole_image() -> None:
    from kintsugi_crack.measure import skeleton_points

    mask, length = band((500, 520), np.array([[5.0, 10.0], [300.0, 260.0], [510.0, 480.0]]), 4.0)
    whole = measure(mask, skeleton=skeleton_points(mask, tile=2048))[0]
    tiled = measure(mask, skeleton=skeleton_points(mask, tile=128))[0]
    assert len(tiled) == 1
    assert tiled[0]["length_px"] == pytest.approx(whole[0]["length_px"], rel=0.02)
    assert tiled[0]["length_px"] == pytest.approx(length, rel=0.05)


def test_thin_and_wide_masks_take_different_transforms_to_the_same_measurements(monkeypatch) -> None:
    """Thin cracks use nearest-neighbour queries, wide ones whole-crop distance transforms: the
    distances at the skeleton are the same, and every crack pixel is owned once in both."""
    import kintsugi_crack.measure as m

    mask = np.zeros((300, 400), bool)
    for pts, wd in (([(20, 30), (380, 120)], 3.0), ([(50, 250), (200, 180), (360, 280)], 6.0)):
        mask |= band(mask.shape, np.array(pts, float), wd)[0]
    sparse = m.skeleton_points(mask)
    monkeypatch.setattr(m, "SPARSE_FRACTION", -1.0)  # force the dense path
    dense = m.skeleton_points(mask)
    assert np.array_equal(sparse.ys, dense.ys) and np.array_equal(sparse.xs, dense.xs)
    np.testing.assert_array_equal(sparse.dt, dense.dt)
    assert sparse.area.sum() == pytest.approx(dense.area.sum()) == mask.sum()
    a, b = measure(mask, skeleton=sparse)[0], measure(mask, skeleton=dense)[0]
    assert [c["length_px"] for c in a] == [c["length_px"] for c in b]
    for x, y in zip(a, b, strict=True):
        assert x["mean_width_px"] == pytest.approx(y["mean_width_px"], rel=1e-3)
        assert x["max_width_px"] == pytest.approx(y["max_width_px"], rel=0.08)


def test_a_pixel_equally_near_two_skeleton_pixels_is_shared() -> None:
    """An even-width crack has pixels equidistant from two skeleton pixels: shared, the result the same
    wherever the crack lies in the photo."""
    from kintsugi_crack.measure import skeleton_points

    out = []
    for shift in (0, 37, 211):
        mask = np.zeros((120, 400), bool)
        mask[40:44, 20 + shift:160 + shift] = True  # 4 px wide
        sk = skeleton_points(mask)
        out.append(np.sort(sk.area))
    assert out[0].sum() == mask.sum()
    np.testing.assert_allclose(out[0], out[1])
    np.testing.assert_allclose(out[0], out[2])

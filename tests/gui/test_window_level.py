"""Window/level arithmetic: presets as width/level, limits round trip, drag adjustment (pure, no Qt)."""

import pytest

from kintsugi.gui.viewers import window_level as wl


def test_presets_are_width_level_as_in_slicer():
    assert wl.PRESETS["bone"] == (1000, 400)
    assert wl.PRESETS["soft tissue"] == (400, 40)
    assert wl.PRESETS["lung"] == (1500, -600)
    assert wl.PRESETS["brain"] == (80, 40)
    assert wl.preset("Soft_Tissue") == wl.preset("soft-tissue") == (400, 40)
    with pytest.raises(KeyError, match="bone"):
        wl.preset("liver")


def test_limits_and_window_round_trip():
    assert wl.contrast_limits(1000, 400) == (-100, 900)
    assert wl.contrast_limits(1500, -600) == (-1350, 150)
    assert wl.window_from_limits(-160, 240) == (400, 40)
    for w, level in wl.PRESETS.values():
        assert wl.window_from_limits(*wl.contrast_limits(w, level)) == pytest.approx((w, level))
    with pytest.raises(ValueError):
        wl.contrast_limits(0, 40)


def test_drag_scale_follows_the_value_range():
    assert wl.drag_scale(-1000, 1500) == pytest.approx(2500 / wl.DRAG_PIXELS_PER_RANGE)
    assert wl.drag_scale(0.0, 1.0, pixels=100) == pytest.approx(0.01)
    assert wl.drag_scale(5, 5) == 1.0  # flat volume: still draggable


def test_drag_adjust_horizontal_width_vertical_level():
    scale = wl.drag_scale(-1000, 1500)  # 5 HU per pixel
    assert wl.drag_adjust(400, 40, 20, 0, scale) == pytest.approx((500, 40))  # right: wider
    assert wl.drag_adjust(400, 40, -20, 0, scale) == pytest.approx((300, 40))
    assert wl.drag_adjust(400, 40, 0, 10, scale) == pytest.approx((400, 90))  # down: higher level, darker
    assert wl.drag_adjust(400, 40, 0, -10, scale) == pytest.approx((400, -10))  # up: brighter
    assert wl.drag_adjust(400, 40, 20, -10, scale) == pytest.approx((500, -10))
    # The width never collapses, whatever the drag.
    w, _ = wl.drag_adjust(400, 40, -10_000, 0, scale)
    assert w == pytest.approx(scale)
    assert wl.drag_adjust(400, 40, -10_000, 0, scale, min_width=1.0)[0] == 1.0

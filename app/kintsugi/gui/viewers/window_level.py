"""Window/level arithmetic for slice views: presets and mouse-drag adjustment (pure functions, no Qt).

A *window* is a (width, level) pair in the volume's units (HU for CT): values below
``level - width/2`` show black, above ``level + width/2`` white. napari's ``contrast_limits`` are the
same window written as (lo, hi).
"""

from __future__ import annotations

import math

# Width, level -- the CT presets of 3D Slicer's Volumes module (CT-bone, CT-abdomen, CT-lung, CT-brain).
PRESETS: dict[str, tuple[float, float]] = {
    "bone": (1000.0, 400.0),
    "soft tissue": (400.0, 40.0),
    "lung": (1500.0, -600.0),
    "brain": (80.0, 40.0),
}

# Dragging across this many pixels sweeps the window through the volume's whole value range.
DRAG_PIXELS_PER_RANGE = 500.0


def preset(name: str) -> tuple[float, float]:
    """(width, level) of a preset; ``name`` is case-insensitive and may use ``_`` or ``-`` for spaces."""
    key = name.strip().lower().replace("_", " ").replace("-", " ")
    try:
        return PRESETS[key]
    except KeyError:
        raise KeyError(f"unknown window/level preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def contrast_limits(width: float, level: float) -> tuple[float, float]:
    """(lo, hi) contrast limits of a window ``width`` centred on ``level``."""
    width = float(width)
    if not width > 0 or not math.isfinite(width) or not math.isfinite(float(level)):
        raise ValueError(f"window width must be positive and finite, level finite; got {width}, {level}")
    return float(level) - width / 2.0, float(level) + width / 2.0


def window_from_limits(lo: float, hi: float) -> tuple[float, float]:
    """(width, level) of contrast limits (lo, hi)."""
    lo, hi = float(lo), float(hi)
    return hi - lo, (lo + hi) / 2.0


def drag_scale(value_min: float, value_max: float, pixels: float = DRAG_PIXELS_PER_RANGE) -> float:
    """Units per pixel of drag for a volume with this value range (1 unit/px for a flat volume)."""
    span = float(value_max) - float(value_min)
    return span / pixels if span > 0 and math.isfinite(span) else 1.0


def drag_adjust(width: float, level: float, dx: float, dy: float, scale: float,
                min_width: float | None = None) -> tuple[float, float]:
    """New (width, level) after dragging the mouse by (dx, dy) screen pixels from a window (width, level).

    Horizontal drag changes the width (right = wider, less contrast), vertical drag changes the level
    (down = higher level, darker image), each by ``scale`` units per pixel -- as in 3D Slicer, where
    dragging up brightens. ``dx``/``dy`` are measured from where the drag started, in screen
    coordinates (y grows downwards), and apply to the window the drag started from. The width never
    drops below ``min_width`` (default: one pixel's worth, ``scale``).
    """
    floor = float(scale) if min_width is None else float(min_width)
    floor = max(floor, 1e-12)
    return max(float(width) + float(dx) * float(scale), floor), float(level) + float(dy) * float(scale)

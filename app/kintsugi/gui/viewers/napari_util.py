"""Helpers shared by the napari panes (single slice view and the linked slice grid).

napari's world axes follow the array order (z, y, x); our geometry maps array indices to LPS (x, y, z).
Reversing the rows of that affine gives napari a world in (z, y, x) millimetres, so an axial slice
shows the patient's left on the right of the screen and posterior at the bottom (radiological view).
"""

from __future__ import annotations

import itertools

import numpy as np

from kintsugi.core import LabelMap, Layer, Volume


def napari_affine(layer: Volume | LabelMap) -> np.ndarray:
    """4x4 affine from numpy index (k, j, i) to napari world (z, y, x) in LPS millimetres."""
    a = layer.geometry.array_affine()
    perm = np.eye(4)
    perm[:3, :3] = np.eye(3)[::-1]
    return perm @ a


def display_axes(layer: Volume | LabelMap) -> tuple[int, int, int]:
    """Array axes in the order of napari's world axes (z, y, x): the permutation whose axes lie closest.

    A volume stored in another axis order (a NIfTI whose first array axis runs head-feet, say) has an
    affine that is a permutation: napari slices it by the affine's 2x2 block of the shown axes, which
    is then singular, and every draw fails. Shown through a transposed view, the same voxels get an
    affine with a dominant diagonal again.
    """
    m = napari_affine(layer)[:3, :3]
    rot = np.abs(m) / np.maximum(np.linalg.norm(m, axis=0, keepdims=True), 1e-12)
    return max(itertools.permutations(range(3)), key=lambda p: sum(rot[r, p[r]] for r in range(3)))


def napari_view(layer: Volume | LabelMap) -> tuple[np.ndarray, np.ndarray]:
    """The array napari shows (a view of the layer's own data, so a brush stroke lands in it) and its affine."""
    axes = display_axes(layer)
    affine = napari_affine(layer)
    if axes == (0, 1, 2):
        return layer.data, affine
    to_array = np.eye(4)  # view index d -> array index: array axis axes[r] is view axis r
    to_array[:3, :3] = 0.0
    for r, c in enumerate(axes):
        to_array[c, r] = 1.0
    return layer.data.transpose(axes), affine @ to_array


def shows_data_of(napari_data: object, layer: Volume | LabelMap) -> bool:
    """Whether a napari layer still shows the layer's current array (itself or a view of it)."""
    return napari_data is layer.data or (isinstance(napari_data, np.ndarray)
                                         and np.may_share_memory(napari_data, layer.data))


def label_colormap(layer: LabelMap) -> dict:
    """napari Labels colour dict: each label's colour, background and unknown values transparent."""
    colors: dict = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
    for value, info in layer.labels.items():
        colors[value] = (*(c / 255.0 for c in info.color), 1.0)
    return colors


def initial_contrast(data: np.ndarray, layer: Layer) -> tuple[float, float]:
    """First contrast limits of a layer: its stored window, a CT soft-tissue window, or percentiles."""
    window = layer.metadata.get("window")
    if isinstance(window, dict):
        c, w = float(window["center"]), float(window["width"])
        return c - w / 2, c + w / 2
    sample = data.reshape(-1)[:: max(1, data.size // 1_000_000)]
    if isinstance(layer, Volume) and layer.unit == "HU":
        tissue = sample[sample > -500]
        # Soft-tissue window (W 400 / L 40) is what a radiologist expects first -- unless much of the
        # object is denser than any body CT shows (teeth, metal, a bone specimen): then fit the window.
        if tissue.size == 0 or (np.mean(tissue > 1500) < 0.03 and np.mean((tissue >= -160) & (tissue <= 240)) >= 0.4):
            return -160.0, 240.0
        lo, hi = np.percentile(tissue, [1, 99.5])
        return float(lo), float(max(hi, lo + 1.0))
    lo, hi = np.percentile(sample, [0.5, 99.5]) if sample.size else (0, 1)
    return float(lo), float(max(hi, lo + 1e-6))


def prime_gl_queries() -> None:
    """napari asks OpenGL for its extensions once (cached) on the first layer. Ask now, before VTK makes
    its core-profile context current, where glGetString(GL_EXTENSIONS) is an error."""
    from napari._vispy.utils.gl import get_gl_extensions, get_max_texture_sizes

    try:
        get_gl_extensions()
        get_max_texture_sizes()
    except Exception:  # noqa: BLE001 - without a GL context napari will retry (and report) itself
        pass


def make_current(qt_viewer) -> None:
    """vispy sets up GL state when a layer is added, on whatever context is current; with VTK's
    core-profile context current that fails (glGetString(GL_EXTENSIONS)), so take the napari canvas's
    context first."""
    canvas = getattr(qt_viewer.canvas, "_scene_canvas", None)
    if canvas is not None and qt_viewer.canvas.native.isVisible():
        canvas.set_current()


# Offered in the Layers dock: perceptual maps for quantities, grey for anatomy, fire/ice for overlays.
COLORMAPS = ("gray", "gray_r", "viridis", "magma", "inferno", "plasma", "turbo", "fire", "ice", "twilight")


def safe_colormap(name: str) -> str:
    """A colormap napari knows: an unknown name (a workspace from a newer version) falls back to grey."""
    from napari.utils.colormaps import AVAILABLE_COLORMAPS

    return name if name in AVAILABLE_COLORMAPS else "gray"

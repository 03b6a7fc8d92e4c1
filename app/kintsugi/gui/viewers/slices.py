"""Volumes, label maps and 2D images in a napari canvas, placed in physical space.

napari's world axes follow the array order (z, y, x); our geometry maps array indices to LPS (x, y, z).
Reversing the rows of that affine gives napari a world in (z, y, x) millimetres, so an axial slice
shows the patient's left on the right of the screen and posterior at the bottom (radiological view).
"""

from __future__ import annotations

import numpy as np
from napari.components import ViewerModel
from napari.qt import QtViewer
from qtpy.QtWidgets import QVBoxLayout, QWidget

from kintsugi.core import Image2D, LabelMap, Layer, Volume
from kintsugi.gui.viewers.kinds import is_mask, is_overlay
from kintsugi.gui.viewers.napari_util import initial_contrast as _contrast
from kintsugi.gui.viewers.napari_util import label_colormap as _label_colormap
from kintsugi.gui.viewers.napari_util import make_current, napari_view, safe_colormap, shows_data_of
from kintsugi.gui.viewers.napari_util import napari_affine as napari_affine
from kintsugi.gui.viewers.napari_util import prime_gl_queries as _prime_gl_queries


class SliceView(QWidget):
    """One napari canvas; later issues add linked axial/sagittal/coronal panes on the same model."""

    def __init__(self, parent: QWidget | None = None, images: bool = False) -> None:
        super().__init__(parent)
        # Volumes and 2D photos live in different worlds (mm in a patient vs pixels of a photo), so
        # each gets its own canvas: ``images=True`` shows Image2D layers, otherwise volumes and labels.
        self.images = images
        self.model = ViewerModel(title="images" if images else "slices")
        self.qt_viewer = QtViewer(self.model, show_welcome_screen=False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.qt_viewer)
        self._napari_layers: dict[int, object] = {}
        _prime_gl_queries()

    def supports(self, layer: Layer) -> bool:
        return isinstance(layer, Image2D) if self.images else isinstance(layer, Volume | LabelMap)

    def _make_current(self) -> None:
        """vispy sets up GL state when a layer is added, on whatever context is current; with VTK's
        core-profile context current that fails (glGetString(GL_EXTENSIONS)), so take ours first."""
        make_current(self.qt_viewer)

    def add(self, layer: Layer) -> None:
        self._make_current()
        if isinstance(layer, LabelMap):
            data, affine = napari_view(layer)
            nl = self.model.add_labels(data, name=layer.name, affine=affine,
                                       colormap=_label_colormap(layer), opacity=0.5 * layer.opacity)
        elif isinstance(layer, Volume):
            data, affine = napari_view(layer)
            nl = self.model.add_image(data, name=layer.name, affine=affine,
                                      contrast_limits=layer.contrast or _contrast(layer.data, layer),
                                      colormap=safe_colormap(layer.colormap), opacity=layer.opacity)
        elif isinstance(layer, Image2D):
            sx, sy = layer.geometry.spacing
            if is_mask(layer):
                # The mask's own 0/255 array, no copy: a brush stroke lands in the layer's data directly.
                nl = self.model.add_labels(layer.data, name=layer.name, scale=(sy, sx), opacity=0.6,
                                           colormap=MASK_COLORS)
                nl.events.paint.connect(lambda _e, layer=layer, nl=nl: self._on_mask_stroke(layer, nl))
            elif is_overlay(layer):
                nl = self.model.add_image(layer.data, name=layer.name, scale=(sy, sx), blending="additive",
                                          colormap=safe_colormap(layer.colormap if layer.colormap != "gray"
                                                                 else "inferno"),  # black adds nothing
                                          contrast_limits=layer.contrast or _overlay_range(layer.data))
            elif layer.is_rgb:
                nl = self.model.add_image(layer.data, name=layer.name, rgb=True, scale=(sy, sx))
            else:
                nl = self.model.add_image(layer.data, name=layer.name, scale=(sy, sx),
                                          colormap=safe_colormap(layer.colormap),
                                          contrast_limits=layer.contrast or _contrast(layer.data, layer))
        else:
            return
        nl.visible = layer.visible
        first = not self._napari_layers
        self._napari_layers[id(layer)] = nl
        if first and isinstance(layer, Image2D):
            from qtpy.QtCore import QTimer

            self.model.reset_view()
            QTimer.singleShot(0, self.model.reset_view)  # again once the pane has its final size
        if isinstance(layer, Volume | LabelMap):
            self._center_on(layer)

    def sync_order(self, layers: list[Layer]) -> None:
        """Stack napari layers in scene order (an undone delete comes back in its place, not on top)."""
        wanted = [self._napari_layers[id(x)] for x in layers if id(x) in self._napari_layers]
        for target, nl in enumerate(wanted):
            current = self.model.layers.index(nl)
            if current != target:
                self.model.layers.move(current, target)

    def _center_on(self, layer: Volume | LabelMap) -> None:
        dims = self.model.dims
        if dims.ndim == 3:
            centre_index = (np.array(layer.size_xyz) - 1) / 2.0
            centre = layer.geometry.index_to_physical(centre_index)[::-1]
            dims.current_step = tuple(
                int(round((c - r[0]) / r[2])) if r[2] else 0
                for c, r in zip(centre, dims.range, strict=False)
            )
        self.model.reset_view()

    def remove(self, layer: Layer) -> None:
        nl = self._napari_layers.pop(id(layer), None)
        self._make_current()
        if nl is not None and nl in self.model.layers:
            self.model.layers.remove(nl)

    def update(self, layer: Layer, what: str) -> None:  # type: ignore[override]
        nl = self._napari_layers.get(id(layer))
        if nl is None:
            return
        self._make_current()
        if what == "visible":
            nl.visible = layer.visible
        elif what == "opacity":
            nl.opacity = layer.opacity
        elif what == "data":
            if not isinstance(layer, Volume | LabelMap):
                if nl.data is layer.data:
                    nl.refresh()  # edited in place (a stroke): resetting data would drop napari's stroke history
                else:
                    nl.data = layer.data
            elif shows_data_of(nl.data, layer):
                nl.refresh()
            else:
                nl.data = napari_view(layer)[0]
        elif what == "name":
            nl.name = layer.name
        elif what == "colormap" and getattr(nl, "rgb", True) is False and hasattr(layer, "colormap"):
            nl.colormap = safe_colormap(layer.colormap)
        elif what == "contrast" and getattr(nl, "rgb", True) is False and hasattr(layer, "contrast"):
            nl.contrast_limits = layer.contrast or _contrast(layer.data, layer)

    # -- painting masks on photos (support examples for few-shot models, corrections) ----------------
    history = None  # the window's UndoStack, set by the window: each stroke becomes one undoable step
    _replaying = False

    def set_mask_mode(self, layer: Image2D, mode: str, brush_size: int | None = None) -> None:
        """paint / erase / fill / pan_zoom on a mask shown in this pane."""
        nl = self._napari_layers.get(id(layer))
        if nl is None or not is_mask(layer):
            raise ValueError(f"'{layer.name}' is not a mask shown in the image pane")
        nl.selected_label = 255
        if brush_size is not None:
            nl.brush_size = int(brush_size)
        nl.mode = mode

    def _on_mask_stroke(self, layer: Image2D, nl) -> None:
        if self._replaying:
            return
        layer.changed.emit("data")  # the stroke is already in layer.data (the shared array): announce it
        if self.history is not None:
            from kintsugi.gui.viewers.label_editing import stroke_command

            command = stroke_command(self, f"paint '{layer.name}'", nl, lambda: layer.changed.emit("data"))
            self.history.push(command, applied=True)

    def close_viewer(self) -> None:
        self.qt_viewer.close()


def _overlay_range(data: np.ndarray) -> tuple[float, float]:
    """0 to the top of the values that say something (the zeros are most of an overlay)."""
    said = data[data > 0]
    hi = float(np.percentile(said, 99)) if said.size else 1.0
    return 0.0, max(hi, 1e-6)


MASK_COLORS = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0), 255: (1.0, 0.25, 0.2, 1.0)}

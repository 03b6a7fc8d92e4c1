"""The Layers dock: visibility, rename, delete, opacity, colour, colormap, contrast and facts of each layer.

Every edit goes through the window's UndoStack, so Ctrl+Z brings back a deleted layer (the same
object, in its place) as well as a rename or an opacity change.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QKeySequence, QShortcut
from qtpy.QtWidgets import (
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from kintsugi.core import Image2D, Layer, Mesh, PointCloud, Scene, Volume
from kintsugi.core.history import UndoStack, remove_layer, set_attributes
from kintsugi.gui.viewers.kinds import is_mask
from kintsugi.gui.viewers.napari_util import COLORMAPS, initial_contrast

_ICONS = {"volume": "▦", "labels": "◩", "image": "▣", "mesh": "◆", "points": "⁘", "fragments": "❖", "table": "☰"}


class LayersPanel(QWidget):
    def __init__(self, scene: Scene, history: UndoStack | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scene = scene
        self.history = history or UndoStack()
        self.list = QListWidget(self)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.list.setToolTip("Check to show, double-click to rename, Delete to remove (Ctrl+Z brings it back)")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.list, 3)
        buttons = QHBoxLayout()
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.clicked.connect(self.delete_selected)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        props = QFormLayout()
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.valueChanged.connect(self._opacity_live)
        self.opacity.sliderPressed.connect(self._opacity_begin)
        self.opacity.sliderReleased.connect(self._opacity_end)
        props.addRow("opacity", self.opacity)
        self.color_button = QPushButton("colour…", self)
        self.color_button.clicked.connect(self._choose_color)
        props.addRow("colour", self.color_button)
        self.colormap = QComboBox(self)
        self.colormap.addItems(COLORMAPS)
        self.colormap.setToolTip("How values map to colours (volumes and grey images)")
        self.colormap.activated.connect(lambda _i: self._set_colormap(self.colormap.currentText()))
        props.addRow("colormap", self.colormap)
        contrast = QHBoxLayout()
        self.contrast_low, self.contrast_high = QDoubleSpinBox(self), QDoubleSpinBox(self)
        for box, tip in ((self.contrast_low, "value shown black"), (self.contrast_high, "value shown white")):
            box.setRange(-1e9, 1e9)
            box.setDecimals(1)
            box.setKeyboardTracking(False)
            box.setToolTip(tip + " (or drag with the right mouse button in a slice pane)")
            box.editingFinished.connect(self._contrast_edited)
            contrast.addWidget(box)
        self.contrast_auto = QPushButton("auto", self)
        self.contrast_auto.setToolTip("Back to the automatic contrast")
        self.contrast_auto.clicked.connect(lambda: self.set_contrast(self.current(), None))
        contrast.addWidget(self.contrast_auto)
        props.addRow("contrast", contrast)
        layout.addLayout(props)
        self.info = QLabel(self)
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setAlignment(Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.info, 2)
        self._items: dict[int, QListWidgetItem] = {}
        self._opacity_before: float | None = None
        scene.layer_added.connect(self._on_added)
        scene.layer_removed.connect(self._on_removed)
        scene.layer_changed.connect(self._on_changed)
        scene.selection_changed.connect(self._on_scene_selection)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.itemSelectionChanged.connect(self._on_selection)
        delete = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.list)
        delete.activated.connect(self.delete_selected)
        self._show_properties(None)

    # -- scene -> list -----------------------------------------------------------------------------
    def _on_added(self, layer: Layer, index: int) -> None:
        item = QListWidgetItem(layer.name)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable)
        item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
        item.setData(Qt.ItemDataRole.UserRole, id(layer))
        self._decorate(item, layer)
        self.list.blockSignals(True)
        self.list.insertItem(index, item)
        self.list.blockSignals(False)
        self._items[id(layer)] = item

    def _decorate(self, item: QListWidgetItem, layer: Layer) -> None:
        item.setToolTip(f"{_ICONS.get(layer.kind, '•')} {type(layer).__name__}\n" +
                        "\n".join(f"{k}: {v}" for k, v in layer.describe().items() if k not in ("type", "name")))

    def _on_removed(self, layer: Layer, index: int) -> None:
        item = self._items.pop(id(layer), None)
        if item is not None:
            self.list.takeItem(self.list.row(item))

    def _on_changed(self, layer: Layer, what: str) -> None:
        item = self._items.get(id(layer))
        if item is None:
            return
        self.list.blockSignals(True)
        if what == "visible":
            item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
        elif what == "name":
            item.setText(layer.name)
        # Facts (value ranges) cost a pass over the data: refresh them only when the data or name changed,
        # not on every opacity step of a slider drag.
        refresh = what not in ("visible", "opacity", "colormap", "contrast")
        if what in ("colormap", "contrast") and self.current() is layer:
            self._show_display(layer)
        if refresh:
            self._decorate(item, layer)
        self.list.blockSignals(False)
        if refresh and self.current() is layer:
            self._show_properties(layer)

    # -- list -> scene (through the undo stack) ---------------------------------------------------
    def _layer_of(self, item: QListWidgetItem) -> Layer | None:
        key = item.data(Qt.ItemDataRole.UserRole)
        return next((layer for layer in self.scene if id(layer) == key), None)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        layer = self._layer_of(item)
        if layer is None:
            return
        visible = item.checkState() == Qt.CheckState.Checked
        if visible != layer.visible:
            self.history.push(set_attributes(layer, f"{'show' if visible else 'hide'} '{layer.name}'",
                                             visible=visible))
        name = item.text().strip()
        if name and name != layer.name:
            if name in self.scene:
                name = self.scene.unique_name(name)
            self.history.push(set_attributes(layer, f"rename '{layer.name}'", name=name))
        elif not name:
            self.list.blockSignals(True)
            item.setText(layer.name)
            self.list.blockSignals(False)

    def _on_selection(self) -> None:
        chosen = [layer for item in self.list.selectedItems() if (layer := self._layer_of(item)) is not None]
        self.scene.select(chosen)
        self._show_properties(chosen[0] if len(chosen) == 1 else None)

    def _on_scene_selection(self, layers: list[Layer]) -> None:
        """Selection made elsewhere (a pick in 3D) shows here too."""
        wanted = {id(x) for x in layers}
        self.list.blockSignals(True)
        for key, item in self._items.items():
            item.setSelected(key in wanted)
        self.list.blockSignals(False)
        self._show_properties(layers[0] if len(layers) == 1 else None)

    def current(self) -> Layer | None:
        items = self.list.selectedItems()
        return self._layer_of(items[0]) if len(items) == 1 else None

    def delete_selected(self) -> None:
        for item in list(self.list.selectedItems()):
            layer = self._layer_of(item)
            if layer is not None:
                self.history.push(remove_layer(self.scene, layer))

    # -- properties -------------------------------------------------------------------------------
    def _show_properties(self, layer: Layer | None) -> None:
        enabled = layer is not None
        self.opacity.setEnabled(enabled)
        self.delete_button.setEnabled(bool(self.list.selectedItems()))
        self.color_button.setEnabled(isinstance(layer, Mesh | PointCloud))
        self._show_display(layer)
        if layer is None:
            self.info.setText("")
            return
        self.opacity.blockSignals(True)
        self.opacity.setValue(int(round(layer.opacity * 100)))
        self.opacity.blockSignals(False)
        facts = layer.describe()
        rows = "".join(f"<tr><td><i>{k}</i></td><td>{v}</td></tr>" for k, v in facts.items())
        if layer.provenance is not None:
            p = layer.provenance
            rows += (f"<tr><td><i>made by</i></td><td>{p.task} ({p.plugin} {p.plugin_version}) on {p.device}, "
                     f"{p.duration_s:.2f} s</td></tr>")
        self.info.setText(f"<table>{rows}</table>")

    def _opacity_begin(self) -> None:
        layer = self.current()
        self._opacity_before = layer.opacity if layer is not None else None

    def _opacity_live(self, value: int) -> None:
        layer = self.current()
        if layer is None:
            return
        if self._opacity_before is None:  # keyboard or click: one undoable step
            self.history.push(set_attributes(layer, f"opacity of '{layer.name}'", opacity=value / 100))
        else:
            layer.set(opacity=value / 100)

    def _opacity_end(self) -> None:
        layer = self.current()
        if layer is not None and self._opacity_before is not None and self._opacity_before != layer.opacity:
            command = set_attributes(layer, f"opacity of '{layer.name}'", before={"opacity": self._opacity_before},
                                     opacity=layer.opacity)
            self.history.push(command, applied=True)
        self._opacity_before = None

    def _choose_color(self) -> None:
        layer = self.current()
        if not isinstance(layer, Mesh | PointCloud):
            return
        start = QColor(*(layer.color or (200, 200, 200)))
        color = QColorDialog.getColor(start, self, f"Colour of {layer.name}")
        if color.isValid():
            self.set_color(layer, (color.red(), color.green(), color.blue()))

    def set_color(self, layer: Mesh | PointCloud, rgb: tuple[int, int, int]) -> None:
        self.history.push(set_attributes(layer, f"colour of '{layer.name}'", color=tuple(rgb)))

    # -- colormap and contrast (volumes, grey images) -------------------------------------------
    @staticmethod
    def _has_display(layer: Layer | None) -> bool:
        return isinstance(layer, Volume) or (isinstance(layer, Image2D) and not layer.is_rgb and not is_mask(layer))

    def _show_display(self, layer: Layer | None) -> None:
        enabled = self._has_display(layer)
        for w in (self.colormap, self.contrast_low, self.contrast_high, self.contrast_auto):
            w.setEnabled(enabled)
        if not enabled:
            return
        self.colormap.blockSignals(True)
        if self.colormap.findText(layer.colormap) < 0:
            self.colormap.addItem(layer.colormap)
        self.colormap.setCurrentText(layer.colormap)
        self.colormap.blockSignals(False)
        lo, hi = layer.contrast or initial_contrast(layer.data, layer)
        decimals = 1 if max(abs(lo), abs(hi)) >= 10 else 4
        for box, value in ((self.contrast_low, lo), (self.contrast_high, hi)):
            box.blockSignals(True)
            box.setDecimals(decimals)
            box.setValue(value)
            box.blockSignals(False)

    def _set_colormap(self, name: str) -> None:
        layer = self.current()
        if self._has_display(layer) and name != layer.colormap:
            self.history.push(set_attributes(layer, f"colormap of '{layer.name}'", colormap=name))

    def _contrast_edited(self) -> None:
        layer = self.current()
        if not self._has_display(layer):
            return
        lo, hi = self.contrast_low.value(), self.contrast_high.value()
        if lo >= hi:
            self._show_display(layer)  # refuse quietly: the boxes go back to the layer's values
            return
        current = layer.contrast or initial_contrast(layer.data, layer)
        if (lo, hi) != tuple(round(v, self.contrast_low.decimals()) for v in current):
            self.set_contrast(layer, (lo, hi))

    def set_contrast(self, layer: Layer | None, limits: tuple[float, float] | None) -> None:
        """Undoable contrast change; ``None`` returns to the automatic contrast."""
        if self._has_display(layer) and limits != layer.contrast:
            self.history.push(set_attributes(layer, f"contrast of '{layer.name}'", contrast=limits))

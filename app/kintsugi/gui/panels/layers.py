"""The Layers dock: one row per layer with a visibility check box; selection mirrors the Scene."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from kintsugi.core import Layer, Scene

_ICONS = {"volume": "▦", "labels": "◩", "image": "▣", "mesh": "◆", "points": "⁘", "fragments": "❖", "table": "☰"}


class LayersPanel(QWidget):
    def __init__(self, scene: Scene, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scene = scene
        self.list = QListWidget(self)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.list)
        self._items: dict[int, QListWidgetItem] = {}
        scene.layer_added.connect(self._on_added)
        scene.layer_removed.connect(self._on_removed)
        scene.layer_changed.connect(self._on_changed)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.itemSelectionChanged.connect(self._on_selection)

    def _label(self, layer: Layer) -> str:
        return f"{_ICONS.get(layer.kind, '•')}  {layer.name}"

    def _on_added(self, layer: Layer, index: int) -> None:
        item = QListWidgetItem(self._label(layer))
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
        item.setData(Qt.ItemDataRole.UserRole, id(layer))
        item.setToolTip("\n".join(f"{k}: {v}" for k, v in layer.describe().items()))
        self.list.blockSignals(True)
        self.list.insertItem(index, item)
        self.list.blockSignals(False)
        self._items[id(layer)] = item

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
            item.setText(self._label(layer))
        self.list.blockSignals(False)

    def _layer_of(self, item: QListWidgetItem) -> Layer | None:
        key = item.data(Qt.ItemDataRole.UserRole)
        return next((layer for layer in self.scene if id(layer) == key), None)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        layer = self._layer_of(item)
        if layer is not None:
            visible = item.checkState() == Qt.CheckState.Checked
            if visible != layer.visible:
                layer.set(visible=visible)

    def _on_selection(self) -> None:
        chosen = [layer for item in self.list.selectedItems() if (layer := self._layer_of(item)) is not None]
        self.scene.select(chosen)

"""Widgets for a task's parameters and inputs, generated from its signature.

Hand-built on Qt rather than magicgui so that layer choosers follow the Scene live and every widget
reads back a plain value that ``prepare_kwargs`` validates exactly as the CLI's strings are validated.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QWidget,
)

from kintsugi.core import Layer, Scene
from kintsugi.plugins.params import InputSpec, ParamSpec

_BIG = 1e9


class ParamWidget:
    """A Qt widget for one parameter with ``value()``."""

    def __init__(self, spec: ParamSpec, parent: QWidget) -> None:
        self.spec = spec
        default = None if spec.required else spec.default
        if spec.choices is not None:
            w = QComboBox(parent)
            for c in spec.choices:
                w.addItem(str(c.value if isinstance(c, enum.Enum) else c), c)
            if default is not None:
                w.setCurrentIndex(list(spec.choices).index(default))
            self.value = lambda: w.currentData()
        elif spec.type is bool:
            w = QCheckBox(parent)
            w.setChecked(bool(default))
            self.value = w.isChecked
        elif spec.type is int:
            w = QSpinBox(parent)
            lo = int(spec.min if spec.min is not None else -_BIG)
            w.setRange(lo, int(spec.max if spec.max is not None else _BIG))
            w.setSingleStep(int(spec.step or 1))
            w.setValue(int(default or 0))
            self.value = w.value
        elif spec.type is float:
            w = QDoubleSpinBox(parent)
            w.setDecimals(4)
            w.setRange(spec.min if spec.min is not None else -_BIG, spec.max if spec.max is not None else _BIG)
            w.setSingleStep(spec.step or (0.1 if spec.max is not None and spec.max <= 10 else 1.0))
            w.setValue(float(default or 0.0))
            self.value = w.value
        else:
            w = QLineEdit(parent)
            w.setText("" if default is None else str(default))
            self.value = (lambda: Path(w.text()) if w.text() else None) if spec.type is Path else w.text
        w.setToolTip(spec.help or spec.describe_type())
        self.widget = w


class InputWidget:
    """Chooses the layer(s) of the scene that fit an input; follows layers being added and removed."""

    def __init__(self, spec: InputSpec, scene: Scene, parent: QWidget) -> None:
        self.spec = spec
        self.scene = scene
        if spec.multiple:
            self.list = QListWidget(parent)
            self.list.setMaximumHeight(90)
            self.widget: QWidget = self.list
        else:
            self.combo = QComboBox(parent)
            self.widget = self.combo
        tip = f"{spec.type_name}{' (' + spec.modality + ')' if spec.modality else ''}"
        self.widget.setToolTip(tip + (f": {spec.help}" if spec.help else ""))
        self.refresh()

    def _fits(self, layer: Layer) -> int:
        from kintsugi.gui.viewers.kinds import is_mask

        wants_mask = "mask" in f"{self.spec.name} {self.spec.help}".lower()
        score = 0 if is_mask(layer) and not wants_mask else 1
        modality = str(getattr(layer, "modality", "") or "").upper()
        if self.spec.modality and modality == self.spec.modality.upper():
            score += 1
        return score

    def candidates(self) -> list[Layer]:
        return [layer for layer in self.scene if isinstance(layer, self.spec.layer_type)]

    def refresh(self) -> None:
        layers = self.candidates()
        if self.spec.multiple:
            checked = {id(x) for x in self.value() or []}
            self.list.clear()
            for layer in layers:
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if id(layer) in checked else Qt.CheckState.Unchecked)
                item.setData(Qt.ItemDataRole.UserRole, layer)
                self.list.addItem(item)
            return
        current = self.combo.currentData()
        self.combo.clear()
        if self.spec.optional:
            self.combo.addItem("(none)", None)
        for layer in layers:
            self.combo.addItem(layer.name, layer)
        if not layers and not self.spec.optional:
            self.combo.addItem(f"(no {self.spec.type_name} layer open)", None)
        index = next((i for i in range(self.combo.count()) if self.combo.itemData(i) is current), -1)
        if index < 0 and layers:
            # Prefer the newest fitting layer (usually what the user just opened), and one that is what the
            # input asks for: a photo, not a mask painted on it; a CT, not some other volume.
            offset = self.combo.count() - len(layers)
            index = offset + max(range(len(layers)), key=lambda i: (self._fits(layers[i]), i))
        self.combo.setCurrentIndex(max(index, 0))

    def value(self) -> Any:
        if self.spec.multiple:
            if not hasattr(self, "list"):
                return []
            return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())
                    if self.list.item(i).checkState() == Qt.CheckState.Checked]
        return self.combo.currentData()


def path_row(line: QLineEdit, parent: QWidget) -> QWidget:
    from qtpy.QtWidgets import QFileDialog

    box = QWidget(parent)
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(line)
    button = QPushButton("…", box)
    button.setFixedWidth(28)
    button.clicked.connect(lambda: line.setText(QFileDialog.getOpenFileName(box, "Choose a file")[0] or line.text()))
    lay.addWidget(button)
    return box

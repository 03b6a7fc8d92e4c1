"""The Table dock: the rows of a Table layer (vertebrae, cracks, teeth), sortable, exportable, clickable.

Clicking a row takes the views to it, by convention on column names rather than by plugin, so any
plugin's table gets the behaviour for free:

- ``centroid_x``, ``centroid_y``, ``centroid_z`` (mm, LPS), or the three columns the table's
  ``metadata["centre_columns"]`` names: the slice panes' crosshair moves there;
- ``layer``: the layer of that name is selected (a tooth's mesh glows in 3D) and shown; when it is a
  picture, the pictures the other rows name are hidden (a vertebra's height-loss map replaces the last);
- ``color`` (``[r, g, b]`` 0-255): the row's background, e.g. a Genant grade's colour.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Qt
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kintsugi.core import Image2D, Layer, Scene, Table

CENTROID = ("centroid_x", "centroid_y", "centroid_z")
HIDDEN = {"color", "layer"}  # conventions the dock acts on, not facts to read


class _Item(QTableWidgetItem):
    """Sorts numbers as numbers (Qt sorts text otherwise: 10 before 9)."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if isinstance(a, int | float) and isinstance(b, int | float):
            return a < b
        return super().__lt__(other)


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)


class TablePanel(QWidget):
    def __init__(self, scene: Scene, go_to: Callable[[tuple[float, float, float]], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scene = scene
        self.go_to = go_to
        self.table: Table | None = None
        self.chooser = QComboBox(self)
        self.chooser.setToolTip("Which table to show (tables come from tasks and from opened CSV files)")
        self.chooser.activated.connect(self._choose)
        self.export_button = QPushButton("Export CSV…", self)
        self.export_button.clicked.connect(self._export_dialog)
        top = QHBoxLayout()
        top.addWidget(self.chooser, 1)
        top.addWidget(self.export_button)
        self.grid = QTableWidget(self)
        self.grid.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.grid.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.grid.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.grid.setSortingEnabled(True)
        self.grid.itemSelectionChanged.connect(self._on_row_selected)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.grid)
        scene.layer_added.connect(self._on_added)
        scene.layer_removed.connect(self._on_removed)
        scene.layer_changed.connect(self._on_changed)
        scene.selection_changed.connect(self._on_selection)
        self._refresh_chooser()

    def _choose(self, index: int) -> None:
        tables = self._tables()
        self.show_table(tables[index] if 0 <= index < len(tables) else None)

    def _tables(self) -> list[Table]:
        return [x for x in self.scene if isinstance(x, Table)]

    def _refresh_chooser(self) -> None:
        tables = self._tables()
        self.chooser.blockSignals(True)
        self.chooser.clear()
        self.chooser.addItems([t.name for t in tables])
        if self.table in tables:
            self.chooser.setCurrentIndex(tables.index(self.table))
        self.chooser.blockSignals(False)
        self.export_button.setEnabled(self.table is not None)

    # -- scene -> panel ---------------------------------------------------------------------------
    def _on_added(self, layer: Layer, index: int) -> None:
        if isinstance(layer, Table):
            self.show_table(layer)  # the newest table is the one the user just asked for

    def _on_removed(self, layer: Layer, index: int) -> None:
        if layer is self.table:
            tables = self._tables()
            self.show_table(tables[-1] if tables else None)
        else:
            self._refresh_chooser()

    def _on_changed(self, layer: Layer, what: str) -> None:
        if layer is self.table:
            self.show_table(layer)

    def _on_selection(self, layers: list) -> None:
        tables = [x for x in layers if isinstance(x, Table)]
        if tables and tables[0] is not self.table:
            self.show_table(tables[0])

    def show_table(self, table: Table | None) -> None:
        self.table = table
        self._refresh_chooser()
        self.grid.setSortingEnabled(False)
        self.grid.clear()
        if table is None:
            self.grid.setRowCount(0)
            self.grid.setColumnCount(0)
            return
        columns = [c for c in table.columns if c not in HIDDEN]
        self.grid.setColumnCount(len(columns))
        self.grid.setRowCount(table.n_rows)
        self.grid.setHorizontalHeaderLabels(columns)
        colors = table.columns.get("color")
        for r, record in enumerate(table.records()):
            brush = None
            if colors is not None and isinstance(colors[r], list | tuple) and len(colors[r]) >= 3:
                brush = QBrush(QColor(*[int(c) for c in colors[r][:3]], 90))
            for c, name in enumerate(columns):
                item = _Item(_text(record[name]))
                value = record[name]
                item.setData(Qt.ItemDataRole.UserRole, value if isinstance(value, int | float) else None)
                item.setData(Qt.ItemDataRole.UserRole + 1, r)  # the table's own row, whatever the sort
                if brush is not None:
                    item.setBackground(brush)
                self.grid.setItem(r, c, item)
        self.grid.resizeColumnsToContents()
        self.grid.setSortingEnabled(True)

    # -- panel -> views ---------------------------------------------------------------------------
    def _on_row_selected(self) -> None:
        items = self.grid.selectedItems()
        if items:
            self.activate_row(int(items[0].data(Qt.ItemDataRole.UserRole + 1)))

    def activate_row(self, row: int) -> None:
        """Go to what a row describes: its centroid in the slice panes, its layer in the Layers dock."""
        table = self.table
        if table is None or not 0 <= row < table.n_rows:
            return
        record = table.records()[row]
        centre = table.metadata.get("centre_columns")
        keys = centre if isinstance(centre, list | tuple) and len(centre) == 3 else CENTROID
        point = [record.get(k) for k in keys]
        if all(isinstance(v, int | float) for v in point):
            self.go_to(tuple(float(v) for v in point))
        name = record.get("layer")
        if isinstance(name, str) and name in self.scene:
            layer = self.scene[name]
            siblings = {n for n in table.columns.get("layer", []) if isinstance(n, str) and n != name}
            for other in self.scene:
                if isinstance(layer, Image2D) and other.name in siblings and other.visible:
                    other.set(visible=False)
            if not layer.visible:
                layer.set(visible=True)
            self.scene.select([layer])

    def _export_dialog(self) -> None:
        if self.table is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export table", f"{self.table.name}.csv", "CSV (*.csv)")
        if path:
            self.table.to_csv(path)

"""Painting label maps in the slice panes: paint, erase and fill, undoable from the Edit menu.

napari's Labels layer does the painting (on the very array of our LabelMap, no copy) and records each
stroke; we turn every stroke into one command of the window's UndoStack, refresh the other panes (they
show the same array) and announce the edit so the 3D surfaces and the autosave follow.
"""

from __future__ import annotations

from kintsugi.core import LabelMap
from kintsugi.core.history import Command, UndoStack

MODES = ("pan_zoom", "paint", "erase", "fill")


class LabelEditor:
    def __init__(self, grid, history: UndoStack | None) -> None:
        self.grid = grid
        self.history = history
        self._replaying = False

    def attach(self, layer: LabelMap) -> None:
        for pane, nl in self.grid.napari_layers(layer).items():
            nl.events.paint.connect(lambda event, pane=pane, nl=nl, layer=layer: self._on_stroke(layer, pane, nl))

    def _refresh(self, layer: LabelMap, except_pane: str | None = None) -> None:
        for pane, nl in self.grid.napari_layers(layer).items():
            if pane != except_pane:
                nl.refresh()

    def _on_stroke(self, layer: LabelMap, pane: str, nl) -> None:
        if self._replaying:
            return
        self._refresh(layer, except_pane=pane)
        layer.changed.emit("data")

        def after_replay() -> None:
            self._refresh(layer)
            layer.changed.emit("data")

        if self.history is not None:
            self.history.push(stroke_command(self, f"paint '{layer.name}'", nl, after_replay), applied=True)

    def set_mode(self, layer: LabelMap, mode: str, label: int | None = None, brush_size: int | None = None) -> None:
        """The same tool in every pane: a stroke in any view edits the one label map."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if label is not None and int(label) not in layer.labels:
            # A new label needs a name and a colour before its first stroke, or it would paint invisibly.
            from kintsugi.core import LabelInfo
            from kintsugi.core.layers import palette_color

            layer.labels[int(label)] = LabelInfo(f"label {int(label)}", palette_color(len(layer.labels)))
            self.grid.update(layer, "labels")
        for nl in self.grid.napari_layers(layer).values():
            if label is not None:
                nl.selected_label = int(label)
            if brush_size is not None:
                nl.brush_size = int(brush_size)
            nl.mode = mode


def stroke_command(owner, text: str, nl, after_replay) -> Command:
    """One napari Labels stroke as an undo step: replays napari's own undo/redo of that stroke.

    ``owner._replaying`` is raised during the replay so that the paint event napari emits then is not
    taken for a new stroke.
    """

    def replay(undo: bool) -> None:
        owner._replaying = True
        try:
            nl.undo() if undo else nl.redo()
        finally:
            owner._replaying = False
        after_replay()

    return Command(text, lambda: replay(False), lambda: replay(True))

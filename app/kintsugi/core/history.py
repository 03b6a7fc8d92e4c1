"""Undo and redo for everything a user edits: layer deletion, renames, display changes, label edits.

Headless on purpose: the GUI's Edit menu, scripts and tests drive the same stack. A command is a pair
of closures plus a description; ``push`` applies it (redo) and records it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psygnal import Signal

from kintsugi.core.layers import Layer
from kintsugi.core.scene import Scene


@dataclass
class Command:
    text: str
    redo: Callable[[], None]
    undo: Callable[[], None]


class UndoStack:
    changed = Signal()  # after push, undo, redo or clear

    def __init__(self, limit: int = 200) -> None:
        self._done: list[Command] = []
        self._undone: list[Command] = []
        self.limit = limit

    def push(self, command: Command, applied: bool = False) -> None:
        """Record ``command``; ``applied=True`` when the change already happened (e.g. a slider drag)."""
        if not applied:
            command.redo()
        self._done.append(command)
        del self._done[: -self.limit]
        self._undone.clear()
        self.changed.emit()

    def can_undo(self) -> bool:
        return bool(self._done)

    def can_redo(self) -> bool:
        return bool(self._undone)

    def undo_text(self) -> str:
        return self._done[-1].text if self._done else ""

    def redo_text(self) -> str:
        return self._undone[-1].text if self._undone else ""

    def undo(self) -> str | None:
        if not self._done:
            return None
        command = self._done.pop()
        command.undo()
        self._undone.append(command)
        self.changed.emit()
        return command.text

    def redo(self) -> str | None:
        if not self._undone:
            return None
        command = self._undone.pop()
        command.redo()
        self._done.append(command)
        self.changed.emit()
        return command.text

    def clear(self) -> None:
        self._done.clear()
        self._undone.clear()
        self.changed.emit()


def remove_layer(scene: Scene, layer: Layer) -> Command:
    """Deleting a layer keeps it (and its place) so undo brings back the very same object."""
    index = scene.index(layer)
    return Command(f"delete '{layer.name}'", lambda: scene.remove(layer), lambda: scene.add(layer, index))


def add_layer(scene: Scene, layer: Layer) -> Command:
    return Command(f"add '{layer.name}'", lambda: scene.add(layer), lambda: scene.remove(layer))


def set_attributes(layer: Layer, text: str | None = None, before: dict[str, Any] | None = None,
                   **changes: Any) -> Command:
    """``before`` gives the old values when the change was already applied live."""
    before = before if before is not None else {k: getattr(layer, k) for k in changes}
    label = text or f"change {', '.join(changes)} of '{layer.name}'"
    return Command(label, lambda: layer.set(**changes), lambda: layer.set(**before))

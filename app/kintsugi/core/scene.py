"""The Scene: the ordered set of layers a user is working on, announcing every change.

Views, the autosave and plugins subscribe to these signals instead of polling, so the data flows one
way (model -> views) and the model never needs to know who is watching.
"""

from __future__ import annotations

from collections.abc import Iterator

from psygnal import Signal

from kintsugi.core.layers import Layer


class Scene:
    layer_added = Signal(object, int)  # layer, index
    layer_removed = Signal(object, int)  # layer, former index
    layer_changed = Signal(object, str)  # layer, what changed
    selection_changed = Signal(list)  # selected layers

    def __init__(self) -> None:
        self._layers: list[Layer] = []
        self._selection: list[Layer] = []
        self._forwarders: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._layers))

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return any(layer.name == item for layer in self._layers)
        return any(layer is item for layer in self._layers)

    def __getitem__(self, key: int | str) -> Layer:
        if isinstance(key, str):
            for layer in self._layers:
                if layer.name == key:
                    return layer
            raise KeyError(f"no layer named {key!r}")
        return self._layers[key]

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def unique_name(self, name: str) -> str:
        names = {layer.name for layer in self._layers}
        if name not in names:
            return name
        i = 2
        while f"{name} [{i}]" in names:
            i += 1
        return f"{name} [{i}]"

    def add(self, layer: Layer, index: int | None = None) -> Layer:
        """Insert a layer (renamed if its name is taken) and announce it."""
        if not isinstance(layer, Layer):
            raise TypeError(f"expected a Layer, got {type(layer).__name__}")
        if layer in self:
            raise ValueError(f"layer {layer.name!r} is already in the scene")
        layer.name = self.unique_name(layer.name)
        index = len(self._layers) if index is None else max(0, min(index, len(self._layers)))
        self._layers.insert(index, layer)

        def forward(what: str, _layer: Layer = layer) -> None:
            self.layer_changed.emit(_layer, what)

        layer.changed.connect(forward)
        self._forwarders[id(layer)] = forward
        self.layer_added.emit(layer, index)
        return layer

    def extend(self, layers: list[Layer]) -> list[Layer]:
        return [self.add(layer) for layer in layers]

    def remove(self, key: Layer | int | str) -> Layer:
        layer = key if isinstance(key, Layer) else self[key]
        index = next((i for i, x in enumerate(self._layers) if x is layer), None)
        if index is None:
            raise KeyError(f"layer {layer.name!r} is not in the scene")
        del self._layers[index]
        forward = self._forwarders.pop(id(layer), None)
        if forward is not None:
            layer.changed.disconnect(forward)
        if layer in self._selection:
            self._selection = [x for x in self._selection if x is not layer]
            self.selection_changed.emit(list(self._selection))
        self.layer_removed.emit(layer, index)
        return layer

    def clear(self) -> None:
        for layer in reversed(self._layers):
            self.remove(layer)

    def index(self, layer: Layer) -> int:
        for i, x in enumerate(self._layers):
            if x is layer:
                return i
        raise ValueError(f"layer {layer.name!r} is not in the scene")

    @property
    def selection(self) -> list[Layer]:
        return list(self._selection)

    def select(self, layers: list[Layer] | Layer | None) -> None:
        if layers is None:
            chosen: list[Layer] = []
        elif isinstance(layers, Layer):
            chosen = [layers]
        else:
            chosen = list(layers)
        for layer in chosen:
            if layer not in self:
                raise ValueError(f"cannot select {layer.name!r}: not in the scene")
        if [id(x) for x in chosen] != [id(x) for x in self._selection]:
            self._selection = chosen
            self.selection_changed.emit(list(chosen))

"""What a task's signature means: layer inputs, typed parameters, and names the runtime injects.

A plugin author writes an ordinary typed function; this module reads it once, so the GUI form, the
``kintsugi run`` options, ``kintsugi plugins show`` and validation all agree on one description.

    def segment(image: Image2D,
                sensitivity: Annotated[float, Param(min=0, max=1, help="higher finds fainter cracks")] = 0.5,
                method: Literal["net", "ridge"] = "net",
                *, progress: Progress = NO_PROGRESS) -> TaskResult: ...
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from kintsugi.core import Fragments, Image2D, LabelMap, Layer, Mesh, PointCloud, Table, Volume

LAYER_TYPES: dict[str, type[Layer]] = {
    "Volume": Volume, "LabelMap": LabelMap, "Image2D": Image2D, "Mesh": Mesh, "PointCloud": PointCloud,
    "Fragments": Fragments, "Table": Table,
}
INJECTED = ("progress", "device", "weights")
SCALARS = (bool, int, float, str, Path)


@dataclass(frozen=True)
class Param:
    """Extra facts about a parameter: range, step, choices and help text (used by forms and the CLI)."""

    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""
    label: str = ""


@dataclass(frozen=True)
class Input:
    """Extra facts about a layer input: the modality it expects and help text."""

    modality: str | None = None
    help: str = ""
    label: str = ""


class SignatureError(TypeError):
    """The task function cannot be described (unsupported annotation, missing type)."""


@dataclass
class InputSpec:
    name: str
    layer_type: type[Layer]
    optional: bool = False
    multiple: bool = False
    modality: str | None = None
    help: str = ""
    label: str = ""

    @property
    def type_name(self) -> str:
        return self.layer_type.__name__

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type_name, "optional": self.optional, "multiple": self.multiple,
                "modality": self.modality, "help": self.help}


@dataclass
class ParamSpec:
    name: str
    type: type
    default: Any = inspect.Parameter.empty
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""
    label: str = ""
    optional: bool = False

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    @property
    def type_name(self) -> str:
        return self.type.__name__

    def convert(self, value: Any) -> Any:
        """Turn a CLI string (or a loosely typed value) into this parameter's type, checking range/choices."""
        if value is None and self.optional:
            return None
        try:
            if self.type is bool and isinstance(value, str):
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                out: Any = low in ("1", "true", "yes", "on")
            elif issubclass(self.type, enum.Enum):
                out = value if isinstance(value, self.type) else self.type(value)
            elif self.type is Path:
                out = Path(value)
            elif self.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            else:
                out = self.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter '{self.name}' must be {self.describe_type()}, got {value!r}") from None
        if self.choices is not None and out not in self.choices:
            raise ValueError(f"parameter '{self.name}' must be one of {', '.join(map(str, self.choices))}; got {out!r}")
        if self.min is not None and out < self.min:
            raise ValueError(f"parameter '{self.name}' must be ≥ {self.min}, got {out}")
        if self.max is not None and out > self.max:
            raise ValueError(f"parameter '{self.name}' must be ≤ {self.max}, got {out}")
        return out

    def describe_type(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        names = {bool: "true/false", int: "an integer", float: "a number", str: "text", Path: "a path"}
        text = names.get(self.type, self.type.__name__)
        if self.min is not None or self.max is not None:
            text += f" in [{'' if self.min is None else self.min}, {'' if self.max is None else self.max}]"
        return text

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "type": self.type_name, "help": self.help}
        if not self.required:
            d["default"] = self.default.value if isinstance(self.default, enum.Enum) else self.default
        for key in ("min", "max", "step"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.choices is not None:
            d["choices"] = list(self.choices)
        return d


@dataclass
class TaskSignature:
    inputs: list[InputSpec] = field(default_factory=list)
    params: list[ParamSpec] = field(default_factory=list)
    injected: tuple[str, ...] = ()

    def input(self, name: str) -> InputSpec:
        return next(i for i in self.inputs if i.name == name)

    def param(self, name: str) -> ParamSpec:
        return next(p for p in self.params if p.name == name)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _layer_type(tp: Any) -> tuple[type[Layer], bool] | None:
    """(layer class, multiple) if ``tp`` is a layer type or a list/tuple/Sequence of one."""
    if isinstance(tp, type) and issubclass(tp, Layer):
        return tp, False
    origin = get_origin(tp)
    if origin in (list, tuple, typing.Sequence, __import__("collections.abc").abc.Sequence):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], Layer):
            return args[0], True
    return None


def read_signature(fn: Any) -> TaskSignature:
    """Describe ``fn``'s inputs and parameters; raises SignatureError for what a form cannot show."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as e:
        raise SignatureError(f"cannot resolve the type hints of {fn.__qualname__}: {e}") from None
    sig = inspect.signature(fn)
    out = TaskSignature()
    injected = []
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in INJECTED:
            injected.append(name)
            continue
        if name not in hints:
            raise SignatureError(f"{fn.__qualname__}: parameter '{name}' has no type annotation")
        tp = hints[name]
        meta: list[Any] = []
        if get_origin(tp) is typing.Annotated:
            tp, *meta = get_args(tp)
        tp, optional = _strip_optional(tp)
        optional = optional or p.default is None
        info = next((m for m in meta if isinstance(m, Param | Input)), None)
        layer = _layer_type(tp)
        if layer is not None:
            cls, multiple = layer
            extra = info if isinstance(info, Input) else Input()
            out.inputs.append(InputSpec(name, cls, optional or multiple and p.default is not p.empty, multiple,
                                        extra.modality, extra.help, extra.label))
            continue
        extra = info if isinstance(info, Param) else Param()
        choices = extra.choices
        if get_origin(tp) is typing.Literal:
            choices = tuple(get_args(tp))
            tp = type(choices[0])
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            choices = tuple(tp)
        if not (isinstance(tp, type) and (issubclass(tp, SCALARS) or issubclass(tp, enum.Enum))):
            raise SignatureError(f"{fn.__qualname__}: parameter '{name}' has unsupported type {tp!r} "
                                 "(use bool, int, float, str, Path, Literal[...], an Enum, or a layer type)")
        out.params.append(ParamSpec(name, tp, p.default, extra.min, extra.max, extra.step, choices, extra.help,
                                    extra.label, optional))
    out.injected = tuple(injected)
    return out

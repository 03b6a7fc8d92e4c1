"""The plugin manifest (``kintsugi.toml`` inside the plugin package): what a plugin is and offers.

It names the plugin, its licence and references, its tasks (id, title, the function that runs them,
outputs, default device, weights) and its weights files with their sha256. Inputs and parameters
come from the task function's signature — one source of truth — and may be restated in the manifest
(with modality), in which case they must agree with the signature.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kintsugi.plugins.params import LAYER_TYPES, TaskSignature, read_signature
from kintsugi.plugins.weights import Weights, WeightsFile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST_NAME = "kintsugi.toml"


class ManifestError(ValueError):
    """The manifest is missing, malformed, or disagrees with the code it describes."""


@dataclass
class OutputSpec:
    name: str
    type: str
    help: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "help": self.help}


@dataclass
class TaskInfo:
    id: str
    title: str
    function: str
    plugin: PluginManifest
    description: str = ""
    device: str = "cpu"
    outputs: list[OutputSpec] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    declared_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    widget: str | None = None
    _fn: Any = field(default=None, repr=False)
    _signature: TaskSignature | None = field(default=None, repr=False)

    def load(self) -> Any:
        """Import the task function (lazily: listing plugins does not import their models)."""
        if self._fn is None:
            module_name, _, attr = self.function.partition(":")
            if not module_name or not attr:
                raise ManifestError(f"task {self.id}: function must be 'module:name', got {self.function!r}")
            module = importlib.import_module(module_name)
            fn = module
            for part in attr.split("."):
                fn = getattr(fn, part)
            self._fn = fn
        return self._fn

    @property
    def signature(self) -> TaskSignature:
        if self._signature is None:
            sig = read_signature(self.load())
            for name, declared in self.declared_inputs.items():
                match = next((i for i in sig.inputs if i.name == name), None)
                if match is None:
                    raise ManifestError(f"task {self.id}: manifest declares input '{name}' that the function lacks")
                if declared.get("type") and declared["type"] != match.type_name:
                    raise ManifestError(f"task {self.id}: input '{name}' is {match.type_name} in the code but "
                                        f"{declared['type']} in the manifest")
                match.modality = declared.get("modality", match.modality)
                match.help = declared.get("help", match.help)
            self._signature = sig
        return self._signature

    def task_weights(self, overrides: dict[str, str | Path] | None = None) -> Weights:
        files = {}
        for name in self.weights:
            files[name] = self.plugin.weights[name]
        for name, path in (overrides or {}).items():
            if name not in files:
                known = ", ".join(files) or "none"
                raise ManifestError(f"task {self.id} has no weights named '{name}' (it has: {known})")
            files[name] = WeightsFile(name, Path(path).expanduser().resolve(), None, user_supplied=True)
        return Weights(files)

    def to_dict(self) -> dict[str, Any]:
        sig = self.signature
        return {"id": self.id, "title": self.title, "description": self.description, "function": self.function,
                "device": self.device, "inputs": [i.to_dict() for i in sig.inputs],
                "parameters": [p.to_dict() for p in sig.params], "outputs": [o.to_dict() for o in self.outputs],
                "weights": self.weights}


@dataclass
class PluginManifest:
    name: str
    version: str
    title: str = ""
    license: str = ""
    description: str = ""
    references: list[str] = field(default_factory=list)
    tasks: list[TaskInfo] = field(default_factory=list)
    weights: dict[str, WeightsFile] = field(default_factory=dict)
    source: Path | None = None
    package: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "title": self.title, "license": self.license,
                "description": self.description, "references": self.references,
                "weights": {n: {"file": str(w.path), "sha256": w.sha256} for n, w in self.weights.items()},
                "tasks": [t.to_dict() for t in self.tasks]}


def _req(d: dict, key: str, where: str, kind: type = str) -> Any:
    if key not in d:
        raise ManifestError(f"{where}: missing '{key}'")
    if not isinstance(d[key], kind):
        raise ManifestError(f"{where}: '{key}' must be {kind.__name__}")
    return d[key]


def parse_manifest(data: dict[str, Any], source: Path | None = None, package: str = "",
                   default_version: str = "0.0.0") -> PluginManifest:
    where = str(source or "manifest")
    plugin = PluginManifest(
        name=_req(data, "name", where), version=str(data.get("version") or default_version),
        title=str(data.get("title", data.get("name"))), license=str(data.get("license", "")),
        description=str(data.get("description", "")), references=[str(r) for r in data.get("references", [])],
        source=source, package=package,
    )
    base = source.parent if source else Path.cwd()
    for wname, w in (data.get("weights") or {}).items():
        wfile = _req(w, "file", f"{where}: weights.{wname}")
        plugin.weights[wname] = WeightsFile(wname, (base / wfile).resolve(), str(w.get("sha256") or "") or None)
    seen = set()
    for i, t in enumerate(data.get("tasks") or []):
        tw = f"{where}: tasks[{i}]"
        tid = _req(t, "id", tw)
        if tid in seen:
            raise ManifestError(f"{tw}: duplicate task id '{tid}'")
        seen.add(tid)
        outputs = []
        for o in t.get("outputs", []):
            otype = _req(o, "type", f"{tw}.outputs")
            if otype not in LAYER_TYPES and otype not in ("json", "file"):
                raise ManifestError(f"{tw}: output type '{otype}' is not one of {', '.join(LAYER_TYPES)}, json, file")
            outputs.append(OutputSpec(_req(o, "name", f"{tw}.outputs"), otype, str(o.get("help", ""))))
        weights = [str(w) for w in t.get("weights", [])]
        for w in weights:
            if w not in plugin.weights:
                raise ManifestError(f"{tw}: uses weights '{w}' that [weights] does not define")
        device = str(t.get("device", "cpu"))
        if device not in ("auto", "cpu", "cuda", "mps"):
            raise ManifestError(f"{tw}: device must be auto, cpu, cuda or mps")
        declared = {}
        for inp in t.get("inputs", []):
            declared[_req(inp, "name", f"{tw}.inputs")] = dict(inp)
        plugin.tasks.append(TaskInfo(tid, str(t.get("title", tid)), _req(t, "function", tw), plugin,
                                     str(t.get("description", "")), device, outputs, weights, declared,
                                     t.get("widget")))
    if not plugin.tasks:
        raise ManifestError(f"{where}: the plugin declares no tasks")
    return plugin


def load_manifest(path: Path, package: str = "", default_version: str = "0.0.0") -> PluginManifest:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest ({MANIFEST_NAME}) found") from None
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{path}: invalid TOML: {e}") from None
    return parse_manifest(data, path, package, default_version)

"""What a batch will do: the inputs (from globs, lists or list files), which task input each one feeds,
the canonical parameters, and the key that says whether an input has been done already.

Everything here runs in the submitting process, before anything is queued: a typo in a parameter or a
glob that matches nothing is reported at once, not by forty workers.
"""

from __future__ import annotations

import enum
import functools
import glob
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kintsugi.plugins.execute import TaskInputError, check_known
from kintsugi.plugins.manifest import TaskInfo

LIST_SUFFIXES = (".txt", ".lst", ".list")


class BatchError(ValueError):
    """The batch cannot start as asked (no inputs, unknown parameter, an output folder of another batch)."""


@functools.lru_cache(maxsize=4)
def _manifests(plugin_path: str):  # noqa: ANN202 - kintsugi.plugins.Registry
    from kintsugi.plugins.registry import discover

    return discover(check=False)


def find_task(task: str | TaskInfo) -> TaskInfo:
    """A task by id, importing only its own plugin (reading every manifest, not every plugin's code).

    Batch clients and workers need one task; importing every plugin (torch and all) costs seconds each.
    Raises ``KeyError`` with a hint, like ``Registry.task``.
    """
    if isinstance(task, TaskInfo):
        return task
    info = _manifests(os.environ.get("KINTSUGI_PLUGIN_PATH", "")).task(task)
    _ = info.signature  # import the task's function and read its signature: a broken plugin fails here
    return info


def _read_list_file(path: Path) -> list[Path]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(os.path.expanduser(line))
        out.append(p if p.is_absolute() else path.parent / p)
    return out


def expand_inputs(inputs: str | Path | list[str | Path] | tuple) -> list[Path]:
    """Paths from globs (``scans/**/*.nii.gz``), plain paths, and list files (``@cohort.txt`` or any
    ``.txt``/``.lst`` file: one path a line, ``#`` comments, relative to the list file). Order kept,
    duplicates dropped; a pattern or path that matches nothing is an error."""
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    out: list[Path] = []
    for item in items:
        text = os.path.expanduser(str(item))
        if text.startswith("@"):
            listed = Path(text[1:])
            if not listed.is_file():
                raise BatchError(f"input list {listed} does not exist")
            found = _read_list_file(listed)
        elif Path(text).exists():
            p = Path(text)
            found = _read_list_file(p) if p.is_file() and p.suffix.lower() in LIST_SUFFIXES else [p]
        elif glob.has_magic(text):
            found = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            if not found:
                raise BatchError(f"no file matches {text!r}")
        else:
            raise BatchError(f"input {text} does not exist")
        for p in found:
            if not p.exists():
                raise BatchError(f"input {p} does not exist")
        out.extend(found)
    seen: set[str] = set()
    unique = []
    for p in out:
        key = str(p.resolve())
        if key not in seen:
            seen.add(key)
            unique.append(p)
    if not unique:
        raise BatchError("no inputs given")
    return unique


def content_hash(path: Path, memo: dict[str, dict] | None = None) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted).

    ``memo`` maps a path to the size/mtime/hash recorded last time; an unchanged file is not re-read.
    """
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stamp = [[str(f.relative_to(path)) if f != path else "", f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    key = str(path.resolve())
    if memo is not None and key in memo and memo[key].get("stamp") == stamp:
        return memo[key]["sha256"]
    h = hashlib.sha256()
    for f, (rel, _size, _mtime) in zip(files, stamp, strict=True):
        h.update(rel.encode("utf-8") + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    digest = h.hexdigest()
    if memo is not None:
        memo[key] = {"stamp": stamp, "sha256": digest}
    return digest


def stem_of(path: Path) -> str:
    """``ct_001.nii.gz`` -> ``ct_001``; a folder keeps its name."""
    name = path.name
    if path.is_file():
        for suffix in (".nii.gz", ".ome.tiff", ".ome.tif", ".tar.gz"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)] or name
        name = path.stem or name
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep or "input"


def jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def choose_input(task: TaskInfo, input_param: str | None) -> str:
    """The task input each batch item feeds: ``input_param`` or the task's first data input."""
    inputs = task.signature.inputs
    if not inputs:
        raise BatchError(f"task {task.id} takes no data input, so there is nothing to map over")
    if input_param is None:
        return inputs[0].name
    names = [i.name for i in inputs]
    if input_param.replace("-", "_") not in names:
        raise BatchError(f"task {task.id} has no input '{input_param}' (its inputs: {', '.join(names)})")
    return input_param.replace("-", "_")


def canonical_params(task: TaskInfo, values: dict[str, Any], input_param: str) -> tuple[dict, dict]:
    """(parameters with defaults filled in, converted and JSON-able; the other inputs as given).

    The same checks ``prepare_kwargs`` makes, without opening the batch input itself.
    """
    sig = task.signature
    check_known(task, values)
    if input_param in values:
        raise BatchError(f"input '{input_param}' comes from the batch inputs; do not give it as well "
                         f"(or choose another with --input-param)")
    others: dict[str, Any] = {}
    for spec in sig.inputs:
        if spec.name == input_param:
            continue
        value = values.get(spec.name)
        if value is None or value == []:
            if not spec.optional:
                raise TaskInputError(f"task {task.id} needs input '{spec.name}' ({spec.type_name}) besides the "
                                     f"batch input '{input_param}'")
            continue
        if spec.multiple:
            items = value if isinstance(value, list | tuple) else [value]
            others[spec.name] = [str(v) for v in items]
        else:
            others[spec.name] = str(value)
    params: dict[str, Any] = {}
    for spec in sig.params:
        if spec.name in values:
            try:
                params[spec.name] = jsonable(spec.convert(values[spec.name]))
            except ValueError as e:
                raise TaskInputError(str(e)) from None
        elif spec.required:
            raise TaskInputError(f"task {task.id} needs parameter '{spec.name}' ({spec.describe_type()})")
        else:
            params[spec.name] = jsonable(spec.default)
    return params, others


@dataclass
class Item:
    """One input of the batch."""

    input: Path
    stem: str
    sha256: str
    key: str

    def to_dict(self) -> dict[str, Any]:
        return {"input": str(self.input), "stem": self.stem, "sha256": self.sha256, "key": self.key}


@dataclass
class Plan:
    task: TaskInfo
    input_param: str
    params: dict[str, Any]
    other_inputs: dict[str, Any]
    output: Path
    items: list[Item] = field(default_factory=list)
    device: str | None = None
    weights: dict[str, str] = field(default_factory=dict)
    weights_sha256: dict[str, str] = field(default_factory=dict)
    fixed_sha256: dict[str, str] = field(default_factory=dict)
    hash_memo: dict[str, dict] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        """What makes two batches the same batch (besides their inputs)."""
        return {"task": self.task.id, "input_param": self.input_param, "params": self.params,
                "other_inputs": self.other_inputs, "other_inputs_sha256": self.fixed_sha256,
                "weights_sha256": self.weights_sha256}


def item_key(config: dict[str, Any], sha256: str) -> str:
    text = json.dumps({"config": config, "input": sha256}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_plan(task: TaskInfo, inputs, output: str | Path, values: dict[str, Any] | None = None,
              input_param: str | None = None, device: str | None = None,
              weights: dict[str, str | Path] | None = None, known_stems: dict[str, str] | None = None,
              hash_memo: dict[str, dict] | None = None) -> Plan:
    """Validate everything and hash every input. ``known_stems`` (input path -> stem from an earlier run)
    keeps each input's output folder where it was."""
    values = {k.replace("-", "_"): v for k, v in (values or {}).items() if v is not None}
    name = choose_input(task, input_param)
    params, others = canonical_params(task, values, name)
    w = task.task_weights(weights)
    checks = w.checksums() if w.files else {}
    memo = dict(hash_memo or {})
    plan = Plan(task, name, params, others, Path(output), device=device,
                weights={k: str(v) for k, v in (weights or {}).items()}, weights_sha256=checks, hash_memo=memo)
    for key, given in others.items():  # a fixed second input (a reference, an atlas) counts by content
        for p in given if isinstance(given, list) else [given]:
            if Path(p).exists():
                plan.fixed_sha256[f"{key}:{p}"] = content_hash(Path(p), memo)
    config = plan.config()
    known_stems = known_stems or {}
    used: set[str] = set()
    paths = expand_inputs(inputs)
    output_resolved = Path(output).resolve()
    for p in paths:
        if p.resolve() == output_resolved or output_resolved in p.resolve().parents:
            raise BatchError(f"input {p} lies inside the output folder {output}")
    for p in paths:
        stem = known_stems.get(str(p.resolve())) or stem_of(p)
        if stem in used or stem in ("batch.csv", "batch.json"):
            stem = f"{stem}-{hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:8]}"
        used.add(stem)
        digest = content_hash(p, memo)
        plan.items.append(Item(p, stem, digest, item_key(config, digest)))
    return plan

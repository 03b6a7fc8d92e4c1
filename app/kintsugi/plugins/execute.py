"""Running a task: validating inputs and parameters, injecting progress/device/weights, provenance.

The same preparation serves every front end: ``kintsugi.run`` (in this process), ``kintsugi run``
(the CLI), the GUI (through a worker process, see ``kintsugi.runtime``) and batch.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

from kintsugi.core import Layer, Provenance
from kintsugi.plugins.manifest import TaskInfo
from kintsugi.plugins.progress import NO_PROGRESS, Progress
from kintsugi.plugins.result import TaskResult, write_result
from kintsugi.plugins.weights import Weights


class TaskInputError(ValueError):
    """An input or parameter is missing or wrong: a user error, shown as one line."""


def _open_as(value: Any, spec) -> Layer:
    if isinstance(value, Layer):
        layer = value
    elif isinstance(value, str | Path):
        from kintsugi.io import open_path

        layers = open_path(value)
        matching = [x for x in layers if isinstance(x, spec.layer_type)]
        if not matching:
            kinds = ", ".join(type(x).__name__ for x in layers) or "nothing"
            raise TaskInputError(f"input '{spec.name}' needs a {spec.type_name}, but {value} opens as {kinds}")
        layer = matching[0]
    else:
        raise TaskInputError(f"input '{spec.name}' must be a {spec.type_name} layer or a path, "
                             f"not {type(value).__name__}")
    if not isinstance(layer, spec.layer_type):
        raise TaskInputError(f"input '{spec.name}' needs a {spec.type_name}, got a {type(layer).__name__}")
    return layer


def check_known(task: TaskInfo, values: dict[str, Any]) -> None:
    """Refuse names the task does not take, listing the ones it does (a typo in a script or batch call)."""
    sig = task.signature
    known = {i.name for i in sig.inputs} | {p.name for p in sig.params}
    unknown = [k for k in values if k not in known]
    if unknown:
        raise TaskInputError(f"task {task.id} has no input or parameter {', '.join(map(repr, unknown))} "
                             f"(it takes: {', '.join(sorted(known))})")


def prepare_kwargs(task: TaskInfo, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(kwargs for the function without injected names, the parameters as recorded in provenance)."""
    sig = task.signature
    check_known(task, values)
    kwargs: dict[str, Any] = {}
    for spec in sig.inputs:
        value = values.get(spec.name)
        if value is None or (spec.multiple and value == []):
            if not spec.optional:
                raise TaskInputError(f"task {task.id} needs input '{spec.name}' ({spec.type_name})")
            continue
        if spec.multiple:
            items = value if isinstance(value, list | tuple) else [value]
            kwargs[spec.name] = [_open_as(v, spec) for v in items]
        else:
            kwargs[spec.name] = _open_as(value, spec)
    params: dict[str, Any] = {}
    for spec in sig.params:
        if spec.name in values:
            try:
                kwargs[spec.name] = params[spec.name] = spec.convert(values[spec.name])
            except ValueError as e:
                raise TaskInputError(str(e)) from None
        elif spec.required:
            raise TaskInputError(f"task {task.id} needs parameter '{spec.name}' ({spec.describe_type()})")
        else:
            params[spec.name] = spec.default
    return kwargs, params


def accepts(fn: Any, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def attach_provenance(task: TaskInfo, raw: Any, params: dict[str, Any], device: str, duration_s: float,
                      weights: Weights, inputs: dict[str, Any]) -> TaskResult:
    result = TaskResult.coerce(raw)
    checksums = weights.checksums() if weights.files else {}
    prov = Provenance(
        task=task.id, plugin=task.plugin.name, plugin_version=task.plugin.version,
        parameters={k: (v.value if hasattr(v, "value") else str(v) if isinstance(v, Path) else v)
                    for k, v in params.items()},
        weights_sha256=";".join(f"{k}={v}" for k, v in checksums.items()) or None,
        device=device, duration_s=round(duration_s, 4),
        inputs=[x.name for v in inputs.values() for x in (v if isinstance(v, list) else [v]) if isinstance(x, Layer)],
    )
    result.provenance = prov
    for layer in result.layers:
        if layer.provenance is None:
            layer.provenance = prov
    return result


def run_task(task: TaskInfo | str, *, device: str | None = None, weights: dict[str, str | Path] | None = None,
             progress: Progress | None = None, output: str | Path | None = None, **values: Any) -> TaskResult:
    """Run a task in this process: ``kintsugi.run("crack.segment", image="photo.jpg", output="out/")``."""
    from kintsugi.plugins.registry import get_registry
    from kintsugi.runtime.device import resolve_device

    info = get_registry().task(task) if isinstance(task, str) else task
    kwargs, params = prepare_kwargs(info, values)
    fn = info.load()
    chosen = resolve_device(device or info.device)
    w = info.task_weights(weights)
    if w.files:
        w.checksums()  # fail before running if a file is missing or does not match its manifest
    extra = {"progress": progress or NO_PROGRESS, "device": chosen, "weights": w}
    for name, value in extra.items():
        if accepts(fn, name):
            kwargs[name] = value
    t0 = time.perf_counter()
    raw = fn(**kwargs)
    result = attach_provenance(info, raw, params, chosen, time.perf_counter() - t0, w, kwargs)
    if output is not None:
        write_result(result, output)
    return result


class PreparedTask:
    """A validated call, ready to send to a worker; ``finish`` turns the worker's return into a result.

    The parent validates inputs and parameters and checks weights before anything is queued, so a
    mistake is reported at once, in the GUI form or on the command line, not minutes later by a worker.
    """

    def __init__(self, task: TaskInfo, values: dict[str, Any], device: str | None = None,
                 weights: dict[str, str | Path] | None = None) -> None:
        self.task = task
        self.kwargs, self.params = prepare_kwargs(task, values)
        self.weights = task.task_weights(weights)
        if self.weights.files:
            self.weights.checksums()
        self.device = device or task.device

    def job_spec(self):  # noqa: ANN201 - kintsugi.runtime.JobSpec (imported lazily)
        from kintsugi.runtime.jobs import JobSpec

        return JobSpec(function=self.task.function, kwargs=self.kwargs, device=self.device,
                       weights=self.weights.to_spec(), task_id=self.task.id, title=self.task.title)

    def finish(self, raw: Any, device: str, duration_s: float) -> TaskResult:
        return attach_provenance(self.task, raw, self.params, device, duration_s, self.weights, self.kwargs)

"""What a Dask worker runs for one input: open it, run the task, write ``DIR/<stem>/``, return one row.

A worker prepares each task once (registry lookup, import of the plugin, weights checked against
their checksums) and keeps it for the life of the worker process, so a model's weights are read once
per worker, not once per input (``Weights.load`` caches the tensors per process; the cached
``Weights`` object means the checksum is not recomputed either).

Errors of an input (a corrupt file, a ``ValueError`` from the task) come back as a failed row; only a
worker that dies (segfault, ``os._exit``, out of memory) reaches the scheduler, which retries the
input elsewhere and then gives up on it with ``KilledWorker``.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import shutil
import time
import traceback
from pathlib import Path
from typing import Any


def dask_setup(worker) -> None:  # noqa: ANN001 - distributed.Worker; run by ``preload=["kintsugi.batch.work"]``
    """In a local cluster's worker process: leave Ctrl-C to the client, which cancels and closes cleanly
    (a terminal sends SIGINT to every process of the group, workers included)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


PREPARED_LOADS = 0
"""How many times this process prepared a task (imports, weights checks): one per task per worker."""


@functools.lru_cache(maxsize=16)
def prepared_task(task_id: str, weights_items: tuple[tuple[str, str], ...], plugin_path: str = ""):
    """(TaskInfo, function, Weights) for a task, made once per worker process."""
    global PREPARED_LOADS
    from kintsugi.batch.plan import find_task

    if plugin_path:
        # A worker started without the client's KINTSUGI_PLUGIN_PATH also looks in the client's plugin folders.
        known = [p for p in os.environ.get("KINTSUGI_PLUGIN_PATH", "").split(os.pathsep) if p]
        extra = [p for p in plugin_path.split(os.pathsep) if p and p not in known]
        if extra:
            os.environ["KINTSUGI_PLUGIN_PATH"] = os.pathsep.join(known + extra)
    try:
        info = find_task(task_id)
    except KeyError:
        raise LookupError(f"task {task_id} is not installed on worker {platform.node()} "
                          f"(install its plugin where the workers run)") from None
    fn = info.load()
    weights = info.task_weights(dict(weights_items) or None)
    if weights.files:
        weights.checksums()
    PREPARED_LOADS += 1
    return info, fn, weights


def _clean(value: Any) -> Any:
    """Summary values as plain JSON: numpy scalars to Python, NaN to None."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Run the task on ``job["input"]``; never raises for the input's own errors."""
    from kintsugi.plugins.execute import TaskInputError, accepts, attach_provenance, prepare_kwargs
    from kintsugi.plugins.progress import NO_PROGRESS
    from kintsugi.plugins.result import write_result
    from kintsugi.runtime.device import resolve_device

    t0 = time.perf_counter()
    row: dict[str, Any] = {"key": job["key"], "input": job["input"], "stem": job["stem"], "status": "failed",
                           "worker": f"{platform.node()}:{os.getpid()}", "summary": {}, "error": ""}
    out = Path(job["output"]) / job["stem"]
    tmp = out.parent / f".{job['stem']}.partial-{os.getpid()}"
    try:
        info, fn, weights = prepared_task(job["task"], tuple(sorted(job.get("weights", {}).items())),
                                          job.get("plugin_path", ""))
        values = dict(job.get("other_inputs", {}))
        values.update(job.get("params", {}))
        values[job["input_param"]] = job["input"]
        kwargs, params = prepare_kwargs(info, values)
        device = resolve_device(job.get("device") or info.device)
        extra = {"progress": NO_PROGRESS, "device": device, "weights": weights}
        for name, value in extra.items():
            if accepts(fn, name):
                kwargs[name] = value
        t1 = time.perf_counter()
        raw = fn(**kwargs)
        result = attach_provenance(info, raw, params, device, time.perf_counter() - t1, weights, kwargs)
        shutil.rmtree(tmp, ignore_errors=True)
        write_result(result, tmp)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)  # the folder appears whole or not at all
        row.update(status="done", summary=_clean(result.summary), device=device, output=str(out))
    except (TaskInputError, ValueError, LookupError) as e:  # bad input: one line, as the CLI says it
        row["error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
    except Exception as e:  # noqa: BLE001 - any failure of the task is this input's failure
        from kintsugi.io.errors import KintsugiIOError
        from kintsugi.plugins.weights import WeightsError

        text = str(e).splitlines()[0] if str(e) else ""
        row["error"] = text if isinstance(e, KintsugiIOError | WeightsError) else f"{type(e).__name__}: {text}"
        row["traceback"] = traceback.format_exc(limit=8)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    row["duration_s"] = round(time.perf_counter() - t0, 3)
    return row

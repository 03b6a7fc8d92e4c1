"""``run_batch``: map a task over many inputs on a Dask cluster (a local one unless told otherwise).

The client process plans (validates, hashes, skips what is done), submits one Dask task per input,
and records each result in the ledger as it arrives. The workers run :func:`kintsugi.batch.work.run_one`
and write each input's results straight into ``DIR/<stem>/``, so inputs and the output folder must be
on a filesystem every worker sees (always true for the local cluster).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kintsugi.batch.ledger import LEDGER, TABLE, Ledger
from kintsugi.batch.plan import BatchError, find_task, make_plan
from kintsugi.plugins.manifest import TaskInfo

CRASH_RETRIES = 1
"""A local cluster retries an input whose worker died once more (on a fresh worker), then fails it."""


class BatchCancelled(Exception):
    """The batch was stopped (Ctrl-C, Cancel); what finished is kept."""


@dataclass
class BatchProgress:
    """Where a batch stands; handed to the progress callback after every change."""

    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.perf_counter)
    running_since: float | None = None  # when the inputs were submitted (after the cluster started)
    workers: int = 0
    dashboard: str | None = None
    last: dict[str, Any] | None = None
    state: str = "starting"  # starting, running, done, failed, cancelled
    message: str = ""

    @property
    def finished(self) -> int:
        return self.skipped + self.done + self.failed

    @property
    def remaining(self) -> int:
        return self.total - self.finished

    @property
    def fraction(self) -> float:
        return self.finished / self.total if self.total else 1.0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def eta_s(self) -> float | None:
        ran = self.done + self.failed
        if ran == 0 or self.remaining == 0 or self.running_since is None:
            return None if self.remaining else 0.0
        return (time.perf_counter() - self.running_since) / ran * self.remaining

    def line(self) -> str:
        eta = self.eta_s
        eta_text = "" if eta is None else f" · ETA {_duration(eta)}"
        skipped = f" ({self.skipped} already done)" if self.skipped else ""
        return (f"{self.finished}/{self.total} · {self.done + self.skipped} done{skipped} · {self.failed} failed · "
                f"{self.remaining} left{eta_text}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class BatchReport:
    output: Path
    rows: list[dict[str, Any]]
    progress: BatchProgress
    state: str

    @property
    def csv(self) -> Path:
        return self.output / TABLE

    @property
    def json(self) -> Path:
        return self.output / LEDGER

    @property
    def ok(self) -> bool:
        return self.state == "done" and self.progress.failed == 0

    def counts(self) -> dict[str, int]:
        p = self.progress
        return {"total": p.total, "done": p.done, "skipped": p.skipped, "failed": p.failed,
                "remaining": p.remaining}


def default_workers(todo: int) -> int:
    """As many single-threaded worker processes as cores (and memory, at ~2 GB each), never more than inputs."""
    cores = os.cpu_count() or 1
    try:
        import psutil

        by_memory = max(1, int(psutil.virtual_memory().available / 2e9))
    except ImportError:  # pragma: no cover - psutil is a dependency
        by_memory = cores
    return max(1, min(cores, by_memory, todo))


def _start_client(scheduler: str | None, workers: int | None, todo: int):
    """(client, cluster or None, description)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as e:
            raise BatchError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        n = len(client.scheduler_info().get("workers", {}))
        return client, None, f"{scheduler} ({n} worker{'s' if n != 1 else ''})"
    n = workers or default_workers(todo)
    dashboard = ":0" if importlib.util.find_spec("bokeh") else None
    with dask.config.set({"distributed.scheduler.allowed-failures": CRASH_RETRIES,
                          "distributed.worker.daemon": False}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=dashboard,
                               silence_logs=logging.CRITICAL, host="127.0.0.1",
                               preload=["kintsugi.batch.work"])
        client = Client(cluster)
    return client, cluster, f"local ({n} worker process{'es' if n != 1 else ''})"


def _versions(client) -> dict[str, str]:
    import dask
    import distributed

    return {"dask": dask.__version__, "distributed": distributed.__version__}


def _dashboard(client) -> str | None:
    """The dashboard link, if the scheduler serves one (it needs bokeh; without it the page is a 404)."""
    import urllib.request

    with contextlib.suppress(Exception):
        if client.scheduler_info().get("services", {}).get("dashboard"):
            link = client.dashboard_link
            with urllib.request.urlopen(link, timeout=2) as response:  # noqa: S310 - the scheduler's own page
                if response.status == 200:
                    return link
    return None


def _killed(fut) -> bool:
    """Did this input fail because its worker process died (rather than by an error of its own)?"""
    from distributed.scheduler import KilledWorker

    return fut.status == "error" and isinstance(fut.exception(), KilledWorker)


def _crash_message(exc: BaseException) -> str:
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return ("the worker process died while running this input (crash, os._exit or out of memory), "
                "also on retry")
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def run_batch(task: str | TaskInfo, inputs, output: str | Path, params: dict[str, Any] | None = None, *,
              input_param: str | None = None, scheduler: str | None = None, workers: int | None = None,
              client=None, device: str | None = None, weights: dict[str, str | Path] | None = None,
              progress: Callable[[BatchProgress], None] | None = None, cancel: threading.Event | None = None,
              retry_failed: bool = True, **values: Any) -> BatchReport:
    """Run ``task`` on every input; results in ``output/<input-stem>/``, plus ``batch.csv`` and ``batch.json``.

    ``kintsugi.batch.run_batch("volume.threshold", "scans/*.nii.gz", "out/", level=300)``

    - ``inputs``: a glob, a path, a list of them, or a list file (``@cohort.txt``, ``cohort.txt``).
    - ``input_param``: which task input gets each path (default: the task's first data input).
    - ``scheduler``: a Dask scheduler address (``tcp://host:8786``); default: a local cluster of
      ``workers`` processes (default: sized to the machine). ``client``: an existing ``distributed.Client``.
    - A rerun skips inputs already done (same content, task and parameters) and retries failed ones
      (``retry_failed=False`` keeps them failed). ``cancel`` (a ``threading.Event``) or Ctrl-C stops it;
      what finished is kept and :class:`BatchCancelled` is raised (for Ctrl-C: ``KeyboardInterrupt``).
    """
    info = find_task(task)
    merged = dict(params or {})
    merged.update(values)
    output = Path(output)
    ledger = Ledger.open(output)
    plan = make_plan(info, inputs, output, merged, input_param, device, weights,
                     known_stems=ledger.known_stems(), hash_memo=ledger.hash_memo())
    ledger.check_same_batch(plan)
    for stale in output.glob(".*.partial-*"):  # left by a worker killed while writing (a crash, Ctrl-C)
        shutil.rmtree(stale, ignore_errors=True)
    todo, state = [], BatchProgress(total=len(plan.items))
    for it in plan.items:
        previous = ledger.rows.get(it.key, {})
        if ledger.is_done(it.key, it.stem):
            state.skipped += 1
        elif previous.get("status") == "failed" and not retry_failed:
            state.failed += 1
        else:
            todo.append(it)
    report = lambda: progress(state) if progress else None  # noqa: E731
    own_client = client is None and bool(todo)
    cluster = None
    description = "none needed" if not todo else "existing client"
    if own_client:
        state.message = "starting the Dask cluster"
        report()
        client, cluster, description = _start_client(scheduler, workers, len(todo))
    versions = _versions(client) if client is not None else {}
    ledger.start(plan, versions, description, todo={it.key for it in todo})
    ledger.write()
    outcome = "done"
    try:
        if todo:
            state.workers = len(client.scheduler_info().get("workers", {}))
            state.dashboard = _dashboard(client)
            outcome = _submit_and_collect(client, plan, todo, ledger, state, report, cancel)
    except KeyboardInterrupt:
        outcome = "cancelled"
        ledger.finish(outcome)
        _mark_cancelled(ledger)
        ledger.write()
        raise
    finally:
        if own_client:
            with contextlib.suppress(Exception):
                client.close(timeout=10)
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close(timeout=10)
    if outcome != "cancelled":
        outcome = "done" if state.failed == 0 else "failed"
    state.state = outcome
    state.message = state.line()
    ledger.finish(outcome)
    _mark_cancelled(ledger)
    ledger.write()
    report()
    result = BatchReport(output, ledger.ordered_rows(), state, outcome)
    if outcome == "cancelled":
        raise BatchCancelled(f"batch stopped: {state.line()}; finished inputs are kept in {output}")
    return result


def _mark_cancelled(ledger: Ledger) -> None:
    for row in ledger.rows.values():
        if row.get("status") in ("pending", "running"):
            row["status"] = "cancelled"


def _submit_and_collect(client, plan, todo, ledger: Ledger, state: BatchProgress, report, cancel) -> str:
    from kintsugi.batch.work import run_one

    job_base = {"task": plan.task.id, "input_param": plan.input_param, "params": plan.params,
                "other_inputs": plan.other_inputs, "device": plan.device, "weights": plan.weights,
                "output": str(plan.output.resolve()), "plugin_path": os.environ.get("KINTSUGI_PLUGIN_PATH", "")}
    futures = {}
    run_id = uuid.uuid4().hex[:6]  # a retry of the same input never meets the key of an earlier, failed try

    def submit(it, tag: str):
        job = {**job_base, "input": str(it.input.resolve()), "stem": it.stem, "key": it.key}
        fut = client.submit(run_one, job, key=f"kintsugi-{plan.task.id}-{it.stem}-{it.key[:12]}-{tag}", pure=False,
                            retries=0)
        futures[fut] = it
        return fut

    def record(fut) -> None:
        it = futures[fut]
        try:
            row = fut.result()
        except Exception as e:  # noqa: BLE001 - KilledWorker and friends: this input fails alone
            row = {"key": it.key, "input": str(it.input), "stem": it.stem, "status": "failed",
                   "error": _crash_message(e), "duration_s": None, "summary": {}}
        row["input"] = str(it.input)  # as the user wrote it, not as the worker saw it
        ledger.record(row)
        ledger.write()
        if row["status"] == "done":
            state.done += 1
        else:
            state.failed += 1
        state.last = row
        state.message = state.line()
        report()

    for it in todo:
        submit(it, run_id)
    state.state = "running"
    state.running_since = time.perf_counter()
    state.message = state.line()
    report()
    pending = set(futures)
    # Inputs whose worker died: Dask also blames the inputs queued on that worker, so an innocent one
    # that twice shared a worker with a crashing one comes back "killed" too. Each is tried once more,
    # alone, after the others: an innocent input then succeeds, a crashing one fails by itself.
    killed = []
    try:
        while pending:
            if cancel is not None and cancel.is_set():
                return "cancelled"
            finished = [f for f in pending if f.done()]
            if not finished:
                time.sleep(0.1)
                continue
            for fut in finished:
                pending.discard(fut)
                if _killed(fut):
                    killed.append(futures[fut])
                else:
                    record(fut)
        for n, it in enumerate(killed):
            fut = submit(it, f"{run_id}-alone{n}")
            pending.add(fut)
            while not fut.done():
                if cancel is not None and cancel.is_set():
                    return "cancelled"
                time.sleep(0.1)
            pending.discard(fut)
            record(fut)
        return "done"
    finally:
        if pending:
            with contextlib.suppress(Exception):
                client.cancel(list(pending), force=True)

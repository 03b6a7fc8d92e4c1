"""What running a task in a worker process costs on top of the task itself.

A no-op job through a warm worker (the price of every click), a 512x512x300 int16 CT volume (150 MB)
sent to a worker and returned (shared memory, not a pickled pipe), and the first job on a fresh
manager (spawning the worker), with and without the worker importing torch. The tasks live here so
the worker imports them by name.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from bench.results_table import Row, machine, today
from kintsugi.core import Geometry, Volume
from kintsugi.runtime import JobManager, JobSpec, JobState

SHAPE = (300, 512, 512)
NOOP_RUNS = 20


def noop() -> None:
    """Does nothing: what is measured is the runtime around it."""


def identity(volume: Volume) -> Volume:
    return volume


def _timed_run(manager: JobManager, spec: JobSpec) -> tuple[float, object]:
    t0 = time.perf_counter()
    job = manager.run(spec, timeout=120)
    seconds = time.perf_counter() - t0
    if job.state is not JobState.DONE:
        raise RuntimeError(f"benchmark job failed: {job.error}\n{job.traceback or ''}")
    return seconds, job.result


def run(workdir: Path, repeats: int = 3) -> list[Row]:
    noop_spec = JobSpec(f"{__name__}:noop", {}, device="cpu", title="no-op")
    cold, cold_torch = [], []
    for _ in range(max(1, repeats)):
        with JobManager() as fresh:
            cold.append(_timed_run(fresh, noop_spec)[0])
        with JobManager() as fresh:  # "auto" makes the worker import torch to look for a GPU
            cold_torch.append(_timed_run(fresh, JobSpec(f"{__name__}:noop", {}, device="auto"))[0])

    vol = Volume(data=np.random.default_rng(0).integers(-1000, 2000, SHAPE, dtype=np.int16),
                 geometry=Geometry((0.7, 0.7, 1.0), (-180.0, -180.0, -300.0)), modality="CT", unit="HU")
    with JobManager() as manager:
        _timed_run(manager, noop_spec)  # warm the worker
        warm = [_timed_run(manager, noop_spec)[0] for _ in range(NOOP_RUNS)]
        trips = []
        for _ in range(max(5, repeats)):
            seconds, result = _timed_run(manager, JobSpec(f"{__name__}:identity", {"volume": vol}, device="cpu"))
            trips.append(seconds)
        assert isinstance(result, Volume) and np.array_equal(result.data, vol.data)  # checked outside the timing

    where, when = machine(), today()
    measured = [
        ("no-op job, warm worker", f"median of {NOOP_RUNS}", statistics.median(warm) * 1000, "ms", 1),
        ("512x512x300 int16 (150 MB) to a worker and back", f"median of {len(trips)}", statistics.median(trips),
         "s", 3),
        ("first job on a fresh manager (worker start-up)", f"median of {len(cold)}", statistics.median(cold), "s", 3),
        ("first job on a fresh manager, device auto (worker imports torch)", f"median of {len(cold_torch)}",
         statistics.median(cold_torch), "s", 3),
    ]
    rows = []
    for metric, how, value, unit, digits in measured:
        print(f"runtime  {metric:<66} {value:8.{digits}f} {unit} ({how})", flush=True)
        rows.append(Row("runtime", metric, f"{value:.{digits}f}", unit, where, when))
    return rows

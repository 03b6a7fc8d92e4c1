"""Batch throughput: ``kintsugi batch`` on a local Dask cluster (1 and 2 workers) against ``kintsugi run`` in a
shell loop, for one task (``volume.threshold --largest-only``) on generated CT-like volumes.

Both are timed end to end from the shell (interpreter start, cluster start, hashing, writing), which is
what a user waits for. The shell loop pays the start-up of ``kintsugi`` once per input; the batch once.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.results_table import Row, machine, today

N_INPUTS = 40
N_LOOP = 10  # the shell loop is slow: time it on the first 10 inputs and report its rate
SHAPE = (96, 128, 128)
TASK = ("volume.threshold", "--level", "300", "--largest-only", "true")


def make_inputs(folder: Path, n: int = N_INPUTS) -> list[Path]:
    from kintsugi.core import Geometry, Volume
    from kintsugi.io import write_volume

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"ct_{i:03d}.nii.gz"
        if not path.exists():
            rng = np.random.default_rng(i)
            data = rng.normal(0, 30, SHAPE).astype(np.float32) - 1000
            zz, yy, xx = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
            for _ in range(3):  # a few bony blobs
                c = rng.uniform(8, np.array(SHAPE) - 8)
                r = rng.uniform(4, 9)
                data[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < r * r] = 700
            write_volume(Volume(name=path.name, data=data, geometry=Geometry((2.0, 0.8, 0.8), (0, 0, 0)),
                                modality="CT", unit="HU"), path)
        paths.append(path)
    return paths


def _kintsugi() -> str:
    exe = Path(sys.executable).parent / "kintsugi"
    return str(exe) if exe.exists() else "kintsugi"


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}… failed: {proc.stderr[-1000:]}")
    return took


def run(workdir: Path, repeats: int = 3) -> list[Row]:
    workdir = Path(workdir)
    inputs = make_inputs(workdir / "inputs")
    where, when = machine(), today()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    busy = load > (os.cpu_count() or 1)
    print(f"load average at start: {load:.1f} on {os.cpu_count()} cores", flush=True)
    note = (f"{N_INPUTS} CT volumes {'x'.join(map(str, SHAPE))}, volume.threshold --largest-only; wall clock incl. "
            f"start-up; median of {repeats}" + ("; machine busy with other jobs" if busy else ""))
    rows = []
    rates = {}
    for workers in (1, 2):
        times = []
        for r in range(repeats):
            out = workdir / f"batch-{workers}w-{r}"
            shutil.rmtree(out, ignore_errors=True)
            times.append(_timed([_kintsugi(), "batch", *TASK, "--inputs", str(workdir / "inputs" / "*.nii.gz"),
                                 "--workers", str(workers), "--output", str(out), "--quiet"]))
            shutil.rmtree(out, ignore_errors=True)
        t = statistics.median(times)
        rates[workers] = N_INPUTS / t * 60
        print(f"batch {workers} worker(s): {t:6.1f} s for {N_INPUTS} inputs = {rates[workers]:.1f} inputs/min",
              flush=True)
        rows.append(Row("batch", f"kintsugi batch, local cluster, {workers} worker{'s' if workers > 1 else ''} "
                        f"({note})", f"{rates[workers]:.1f}", "inputs/min", where, when))
    # Rerun of a finished batch: everything is skipped by content hash (no cluster is started).
    out = workdir / "batch-resume"
    shutil.rmtree(out, ignore_errors=True)
    _timed([_kintsugi(), "batch", *TASK, "--inputs", str(workdir / "inputs" / "*.nii.gz"), "--workers", "2",
            "--output", str(out), "--quiet"])
    resume = statistics.median(_timed([_kintsugi(), "batch", *TASK, "--inputs",
                                       str(workdir / "inputs" / "*.nii.gz"), "--output", str(out), "--quiet"])
                               for _ in range(repeats))
    shutil.rmtree(out, ignore_errors=True)
    print(f"rerun of a finished batch (all {N_INPUTS} skipped): {resume:.1f} s", flush=True)
    rows.append(Row("batch", f"rerun of a finished {N_INPUTS}-input batch (all skipped by content hash)",
                    f"{resume:.1f}", "s", where, when))
    loop_times = []
    for r in range(repeats):
        out = workdir / f"loop-{r}"
        shutil.rmtree(out, ignore_errors=True)
        script = ("set -e; for f in \"$@\"; do n=$(basename \"$f\" .nii.gz); "
                  f"\"{_kintsugi()}\" run {' '.join(TASK)} --volume \"$f\" --output \"{out}/$n\" --quiet "
                  ">/dev/null; done")
        loop_times.append(_timed(["bash", "-c", script, "loop", *map(str, inputs[:N_LOOP])]))
        shutil.rmtree(out, ignore_errors=True)
    t = statistics.median(loop_times)
    loop_rate = N_LOOP / t * 60
    print(f"shell loop of kintsugi run: {t:6.1f} s for {N_LOOP} inputs = {loop_rate:.1f} inputs/min", flush=True)
    busy_note = "; machine busy with other jobs" if busy else ""
    rows.append(Row("batch", f"shell loop of `kintsugi run`, one process per input (first {N_LOOP} of the same "
                    f"inputs; median of {repeats}{busy_note})", f"{loop_rate:.1f}", "inputs/min", where, when))
    rows.append(Row("batch", "speed-up of kintsugi batch (2 workers) over the shell loop",
                    f"{rates[2] / loop_rate:.1f}", "x", where, when))
    return rows

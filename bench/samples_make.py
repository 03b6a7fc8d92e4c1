"""Time to write each built-in sample (``kintsugi sample make``), seeds 0-2, and what it weighs on disk."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

from bench.results_table import Row, machine, today
from kintsugi.samples import make_sample, sample_names


def run(workdir: Path, repeats: int = 3) -> list[Row]:
    rows = []
    where, when = machine(), today()
    for name in sample_names():
        times, sizes = [], []
        for seed in range(repeats):
            out = workdir / f"{name}-{seed}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            files = make_sample(name, out, seed=seed)
            times.append(time.perf_counter() - t0)
            sizes.append(sum(f.stat().st_size for f in files) / 1e6)
        print(f"sample {name:<10} {statistics.median(times):6.2f} s  {statistics.median(sizes):6.2f} MB", flush=True)
        rows.append(Row("sample make", f"{name}: time (median of seeds 0-{repeats - 1})",
                        f"{statistics.median(times):.2f}", "s", where, when))
        rows.append(Row("sample make", f"{name}: size on disk (median)", f"{statistics.median(sizes):.2f}", "MB",
                        where, when))
    return rows

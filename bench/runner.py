"""Run the benchmarks and update bench/results.md."""

from __future__ import annotations

import argparse
import importlib
import tempfile
from pathlib import Path

from bench import cold_start, gui_heartbeat, io_load, runtime_overhead, samples_make, slice_scroll
from bench.results_table import RESULTS, update

BENCHMARKS = {"io": io_load.run, "samples": samples_make.run, "runtime": runtime_overhead.run,
              "heartbeat": gui_heartbeat.run, "slicescroll": slice_scroll.run, "coldstart": cold_start.run}
# Plugin benchmarks (accuracy and speed of each scientific plugin) live in bench/<plugin>.py and import
# their plugin only when run, so the platform benchmarks work without them.
PLUGIN_BENCHMARKS = ("reassembly", "spine", "crack", "dental")
for _name in PLUGIN_BENCHMARKS:
    BENCHMARKS[_name] = (lambda n: lambda workdir, repeats: importlib.import_module(f"bench.{n}").run(
        workdir, repeats=repeats))(_name)

BENCHMARKS["batch"] = lambda workdir, repeats: importlib.import_module("bench.batch").run(workdir, repeats=repeats)
# The models on a CUDA device against the CPU (no rows where there is none).
BENCHMARKS["gpu"] = lambda workdir, repeats: importlib.import_module("bench.gpu").run(workdir, repeats=repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="where to keep generated data (kept between runs)")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    workdir = args.workdir or Path(tempfile.gettempdir()) / "kintsugi-bench"
    for name in names:
        rows = BENCHMARKS[name](workdir / name, repeats=args.repeats)
        update(rows)
    print(f"updated {RESULTS}")
    return 0

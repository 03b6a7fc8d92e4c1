"""bench/results.md: one table, one row per (benchmark, metric), rewritten in place by each run.

Rows of benchmarks that did not run this time are kept, so each issue's numbers stay beside the others.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.md"
HEADER = "| benchmark | metric | value | unit | machine | date |\n|---|---|---|---|---|---|\n"
INTRO = (
    "# Benchmark results\n\n"
    "Written by `python -m bench` (see bench/README.md). Each row is the latest measurement of one metric;\n"
    "rerun a benchmark to refresh its rows. Times are medians over repeats unless the metric says otherwise.\n\n"
)


@dataclass
class Row:
    benchmark: str
    metric: str
    value: str
    unit: str
    machine: str
    date: str

    def line(self) -> str:
        return f"| {self.benchmark} | {self.metric} | {self.value} | {self.unit} | {self.machine} | {self.date} |"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        import psutil

        mem = f", {psutil.virtual_memory().total / 1024**3:.0f} GB"
    except ImportError:
        pass
    return f"{os.cpu_count()} cores{mem}, {cpu}".replace("|", "/")


def today() -> str:
    return dt.date.today().isoformat()


def read_rows(path: Path = RESULTS) -> list[Row]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] not in ("benchmark", "---") and not set(cells[0]) <= {"-"}:
            rows.append(Row(*cells))
    return rows


def update(new_rows: list[Row], path: Path = RESULTS) -> None:
    rows = {(r.benchmark, r.metric): r for r in read_rows(path)}
    for r in new_rows:
        rows[(r.benchmark, r.metric)] = r
    body = "\n".join(r.line() for r in rows.values())
    notes = ""
    if path.exists():
        text = path.read_text()
        if "\n## Notes" in text:
            notes = text[text.index("\n## Notes"):]
    path.write_text(INTRO + HEADER + body + "\n" + notes)

"""Misbehaving tasks for tests: each exercises one way a real plugin can go wrong."""

import ctypes
import time
from typing import Annotated

from kintsugi.core import Volume
from kintsugi.plugins import NO_PROGRESS, Param, Progress


def burn(seconds: Annotated[float, Param(min=0, max=120)] = 1.0, *, progress: Progress = NO_PROGRESS) -> dict:
    """Pure-Python busy loop holding the worker's GIL, reporting progress every 50 ms."""
    t0 = time.perf_counter()
    last = t0
    n = 0
    while (now := time.perf_counter()) - t0 < seconds:
        n += sum(i * i for i in range(2000))
        if now - last > 0.05:
            progress((now - t0) / seconds, f"{now - t0:.1f} s")
            last = now
    return {"iterations": n}


def fail(volume: Volume) -> dict:
    raise ValueError(f"volume '{volume.name}' is not what this task expects")


def crash(volume: Volume) -> dict:
    ctypes.string_at(0)  # segmentation fault
    return {}

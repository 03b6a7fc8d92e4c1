"""Tasks the runtime tests run in worker processes (imported there as ``runtime_tasks``).

The tests put this folder on sys.path; spawned workers inherit sys.path, so they can import it too.
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

import numpy as np

from kintsugi.core.layers import Volume
from kintsugi.plugins.progress import NO_PROGRESS, Progress
from kintsugi.plugins.weights import Weights


def add(a: float, b: float) -> float:
    return a + b


def brighten(volume: Volume, offset: float = 1.0, progress: Progress = NO_PROGRESS) -> Volume:
    progress(0.5, "adding")
    out = Volume(data=volume.data * 2 + np.float32(offset), geometry=volume.geometry, name=volume.name + " (x2)",
                 modality=volume.modality, unit=volume.unit)
    progress(1.0, "added")
    return out


def plain_values(items: list, mapping: dict, arr: np.ndarray) -> dict:
    return {"items": items[::-1], "mapping": {v: k for k, v in mapping.items()}, "sum": float(arr.sum()),
            "twice": arr * 2, "fortran": np.asfortranarray(np.ones((600, 700))), "strided": arr[::2]}


def steps(n: int = 10, delay: float = 0.0, linger: float = 0.0, progress: Progress = NO_PROGRESS) -> int:
    """Reports n steps; ``linger`` seconds of silence after the last, so a listener sees it while RUNNING."""
    for i in range(n):
        if delay:
            time.sleep(delay)
        progress((i + 1) / n, f"step {i + 1}")
    time.sleep(linger)
    return n


def _mark(flag: str) -> None:
    """Write this worker's pid to ``flag`` atomically: a test polls for the file and reads it at once, and
    a plain write_text let it read the file between its creation and its content (an empty pid)."""
    tmp = f"{flag}.{os.getpid()}.tmp"
    Path(tmp).write_text(str(os.getpid()))
    os.replace(tmp, flag)


def sleep_reporting(seconds: float = 60.0, flag: str = "", progress: Progress = NO_PROGRESS) -> str:
    """Sleeps in small steps, reporting progress (so cancel works); writes ``flag`` once running."""
    if flag:
        _mark(flag)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(0.02)
        progress(min(1.0, (time.monotonic() - t0) / seconds), "sleeping")
    return "slept"


def sleep_silent(seconds: float = 60.0, flag: str = "") -> str:
    """Never reports progress: only terminating the worker can stop it."""
    if flag:
        _mark(flag)
    time.sleep(seconds)
    return "slept"


def segfault() -> None:
    ctypes.string_at(0)


def exit3() -> None:
    os._exit(3)


def kill_myself() -> None:
    os.kill(os.getpid(), 9)


def fail(message: str = "the message") -> None:
    raise ValueError(message)


class _Exploder:
    """Kills the worker when pickled: after the arrays before it have been written to shared memory."""

    def __reduce__(self):
        os._exit(5)


def crash_while_sending(volume: Volume) -> list:
    """Dies half-way through sending its result, with its input mapped and a result segment written."""
    return [volume.data + 1, _Exploder()]


def which_device(device: str) -> str:
    return device


def everything(**kwargs: object) -> list[str]:
    return sorted(kwargs)


def weights_total(weights: Weights, device: str) -> float:
    tensors = weights.load("tiny", device=device)
    return float(sum(float(t.sum()) for t in tensors.values()))


def pid() -> int:
    return os.getpid()


def allocate(n_bytes: int) -> int:
    return len(bytearray(n_bytes))

"""The worker process: a loop that runs one job at a time and stays warm between jobs.

This module is what runs on the other side of the pipe (see :mod:`kintsugi.runtime.process` for the
parent's end). It keeps imports light: torch arrives only when a task or ``resolve_device("auto")``
imports it, and then stays imported for every later job, as do weights cached by ``Weights.load``.

Messages to the parent (tuples, ``seq`` = the job's sequence number on this worker)::

    ("ready", pid)  ("received", seq)  ("started", seq, device)  ("progress", seq, fraction, message)
    ("done", seq, payload)  ("failed", seq, one_line, traceback)  ("cancelled", seq)

and from the parent: ``("job", seq, segment_prefix, payload)`` and ``("stop",)``. Payloads are
:func:`kintsugi.runtime.transport.dumps` bytes. Cancel does not use the pipe (the worker is busy running
the task and does not read it): the parent writes the seq to cancel into a shared integer that the
task's :class:`~kintsugi.plugins.progress.Progress` polls on every report.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import importlib
import inspect
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from kintsugi.plugins.progress import Cancelled, Progress
from kintsugi.plugins.weights import Weights
from kintsugi.runtime import transport
from kintsugi.runtime.device import resolve_device

PROGRESS_INTERVAL_S = 0.05
"""At most 20 progress messages a second reach the parent; the latest one is never dropped."""


class _Channel:
    """The pipe to the parent, shared by the task thread and the progress flusher."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, msg: tuple) -> None:
        with self._lock:
            self._conn.send(msg)


class _ProgressSender:
    """Throttles a task's progress reports to one per ``interval`` without losing the latest.

    A report inside the interval is kept as pending and sent by a small thread when the interval ends,
    so a task that says "loading model" and then computes silently for a minute still shows it.
    """

    def __init__(self, channel: _Channel, seq: int, interval: float = PROGRESS_INTERVAL_S) -> None:
        self._channel, self._seq, self._interval = channel, seq, interval
        self._cond = threading.Condition()
        self._pending: tuple[float, str] | None = None
        self._last = -1e9
        self._closed = False
        self._thread: threading.Thread | None = None

    def report(self, fraction: float, message: str) -> None:
        with self._cond:
            self._pending = (fraction, message)
            if time.monotonic() - self._last >= self._interval:
                self._send_locked()
            elif self._thread is None:
                self._thread = threading.Thread(target=self._flush_later, name="kintsugi-progress", daemon=True)
                self._thread.start()
            else:
                self._cond.notify()

    def _send_locked(self) -> None:
        if self._pending is not None and not self._closed:
            fraction, message = self._pending
            self._pending = None
            self._last = time.monotonic()
            self._channel.send(("progress", self._seq, fraction, message))

    def _flush_later(self) -> None:
        with self._cond:
            while not self._closed:
                if self._pending is None:
                    self._cond.wait()
                    continue
                delay = self._last + self._interval - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                else:
                    self._send_locked()

    def close(self) -> None:
        """Send what is pending (the task's last word) and stop; called before the job's outcome is sent."""
        with self._cond:
            self._send_locked()
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()


def import_function(path: str) -> Callable[..., Any]:
    """``"package.module:name"`` (or ``"module:Class.attr"``) → the callable it names."""
    module_name, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{path} is a {type(obj).__name__}, not a function")
    return obj


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # some builtins have no signature: inject nothing
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def one_line(exc: BaseException) -> str:
    """``"ValueError: the message"``: the type and the first line of the message, for a status bar."""
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    return f"{name}: {text[0]}" if text else name


def _format_traceback(exc: BaseException) -> str:
    """The traceback from the task's own frames on: the worker's frame above them is noise to its author."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class _Worker:
    def __init__(self, conn: Any, cancel_seq: Any) -> None:
        self.channel = _Channel(conn)
        self.conn = conn
        self.cancel_seq = cancel_seq
        self._weights: dict[tuple, Weights] = {}

    def cancelled(self, seq: int) -> bool:
        return self.cancel_seq.value == seq

    def weights(self, spec: dict) -> Weights:
        """One Weights object per weights spec (and file state) for the life of the worker.

        Keeping it means a file is hashed once, not once per job; its size and mtime are part of the key
        so a file replaced on disk is checked again.
        """
        key = []
        for name, d in sorted((spec or {}).items()):
            try:
                st = os.stat(d["path"])
                stamp: tuple = (st.st_size, st.st_mtime_ns)
            except OSError:
                stamp = ()
            key.append((name, str(d["path"]), d.get("sha256"), bool(d.get("user_supplied")), stamp))
        k = tuple(key)
        if k not in self._weights:
            self._weights[k] = Weights.from_spec(spec)
        return self._weights[k]

    def run(self, seq: int, prefix: str, payload: bytes) -> None:
        outcome = self._execute(seq, prefix, payload)
        # The task's arrays (and the input segments they map) are unreferenced now: free them before
        # idling rather than whenever the next job happens to trigger a collection.
        gc.collect()
        self.channel.send(outcome)

    def _execute(self, seq: int, prefix: str, payload: bytes) -> tuple:
        sender = _ProgressSender(self.channel, seq)
        try:
            spec = transport.loads(payload)
            del payload
            device = resolve_device(spec.device)
            self.channel.send(("started", seq, device))
            fn = import_function(spec.function)
            kwargs = dict(spec.kwargs)
            injected = {
                "progress": Progress(sender.report, lambda: self.cancelled(seq)),
                "device": device,
                "weights": self.weights(spec.weights),
            }
            kwargs.update({k: v for k, v in injected.items() if _accepts(fn, k)})
            del spec
            if self.cancelled(seq):
                raise Cancelled("cancelled before it started")
            result = fn(**kwargs)
            del kwargs
            sender.close()  # the last progress report goes out before the result
            data, _ = transport.dumps(result, prefix + "r")
            return ("done", seq, data)
        except Cancelled:
            return ("cancelled", seq)
        except BaseException as e:  # SystemExit in a task fails the job, not the worker
            return ("failed", seq, one_line(e), _format_traceback(e))
        finally:
            sender.close()

    def loop(self) -> None:
        self.channel.send(("ready", os.getpid()))
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if msg[0] == "stop":
                return
            if msg[0] == "job":
                _, seq, prefix, payload = msg
                del msg
                # Before anything that could crash: tells the parent the job reached a live worker, so a
                # death before this (an idle worker killed) is retried and a death after it is the job's.
                self.channel.send(("received", seq))
                self.run(seq, prefix, payload)


def _exit_with_parent() -> None:
    """Leave when the parent dies, even mid-task, so a killed GUI does not leave a worker holding a GPU."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(70)

    threading.Thread(target=watch, name="kintsugi-parent-watch", daemon=True).start()


def _limit_memory(limit: int) -> None:
    """Cap the address space so a runaway allocation is a MemoryError in the task, not an OOM kill.

    Not for CUDA workers: the CUDA runtime reserves far more address space than it uses.
    """
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main(conn: Any, cancel_seq: Any, options: dict[str, Any]) -> None:
    """Entry point of a worker process (the target given to ``multiprocessing``'s spawn context)."""
    # Ctrl+C in a terminal reaches the whole process group; stopping jobs is the parent's decision.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if options.get("nice") and hasattr(os, "nice"):
        # Background work yields the CPU to the window: on a small machine a task that uses every core
        # must not make the GUI stutter. Jobs lose nothing when the machine is otherwise idle.
        with contextlib.suppress(OSError):
            os.nice(int(options["nice"]))
    log = options.get("crash_log")
    if log:
        fh = open(log, "w", buffering=1)  # noqa: SIM115 - open for the life of the process
        # A segfault, abort or the SIGTERM of a cancel writes the Python stack here; the parent reads it.
        faulthandler.enable(file=fh)
        if hasattr(signal, "SIGTERM") and sys.platform != "win32":
            faulthandler.register(signal.SIGTERM, file=fh, chain=True)
    if options.get("memory_limit_bytes"):
        _limit_memory(int(options["memory_limit_bytes"]))
    _exit_with_parent()
    preload = options.get("device")
    if preload and preload != "cpu":
        # Imports torch now, while no job waits, rather than during the first job; errors: the job says.
        with contextlib.suppress(Exception):
            resolve_device(preload)
    _Worker(conn, cancel_seq).loop()

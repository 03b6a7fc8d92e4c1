"""The parent's end of one worker process: start it (spawn), talk to it, and tell how it died.

Spawn, never fork: the GUI process holds Qt, OpenGL and CUDA state that a forked child would inherit
half-initialised. Spawn starts a clean interpreter, so the worker costs one Python start-up (and its
imports) once, then stays warm.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import tempfile
import time
from multiprocessing.connection import wait
from pathlib import Path

from kintsugi.runtime import transport, worker

_CTX = multiprocessing.get_context("spawn")
NICE = 5
"""Workers run at a lower CPU priority than the window (Unix ``nice``), so the GUI stays fluid."""
_numbers = itertools.count(1)


class WorkerDied(Exception):
    """The worker process ended (crash, kill, exit) while the parent expected an answer."""


def describe_exit(exitcode: int | None) -> str:
    """One line for a dead worker's exit code, in words a user can act on."""
    if exitcode is None:
        return "worker stopped responding"
    if exitcode < 0:
        signum = -exitcode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        if signum == getattr(signal, "SIGKILL", 9):
            return f"worker was killed ({name}), possibly out of memory"
        if signum == getattr(signal, "SIGTERM", 15):
            return f"worker was terminated ({name})"
        words = (signal.strsignal(signum) or name).lower() if hasattr(signal, "strsignal") else name
        return f"worker crashed: {words} ({name})"
    return f"worker exited with code {exitcode}"


class WorkerProcess:
    """A spawned worker plus its pipe and cancel flag. Used by one manager thread at a time."""

    def __init__(self, device: str, memory_limit_bytes: int | None = None) -> None:
        self.device = device
        self.number = next(_numbers)
        self.crash_log = Path(tempfile.gettempdir()) / f"{transport.PREFIX}{os.getpid()}-worker{self.number}.log"
        self.cancel_seq = _CTX.RawValue("q", -1)
        self._conn, child = _CTX.Pipe(duplex=True)
        options = {"crash_log": str(self.crash_log), "memory_limit_bytes": memory_limit_bytes, "device": device,
                   "nice": NICE}
        # Not daemonic: a daemonic process may not start children, and tasks may (torch DataLoader).
        self.process = _CTX.Process(target=worker.main, args=(child, self.cancel_seq, options),
                                    name=f"kintsugi-worker-{device}-{self.number}", daemon=False)
        self.process.start()
        child.close()  # so the parent sees EOF when the worker dies
        self.pid: int = self.process.pid  # type: ignore[assignment]
        self.ready = False

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def wait_ready(self, timeout: float) -> None:
        msg = self.recv(timeout)
        if msg is None:
            raise WorkerDied(f"worker did not start within {timeout:.0f} s")
        if msg[0] != "ready":
            raise WorkerDied(f"worker said {msg[0]!r} instead of ready")
        self.ready = True

    def send(self, msg: tuple) -> None:
        try:
            self._conn.send(msg)
        except (OSError, ValueError) as e:  # broken pipe: the worker is gone
            raise WorkerDied(self.exit_reason()) from e

    def recv(self, timeout: float) -> tuple | None:
        """The next message, or None after ``timeout`` seconds; raises WorkerDied when the worker is gone.

        Messages the worker sent before it died are still delivered first.
        """
        ready = wait([self._conn, self.process.sentinel], timeout)
        if not ready:
            return None
        if self._conn in ready or self._conn.poll(0):
            try:
                return self._conn.recv()
            except (EOFError, OSError):
                pass
        raise WorkerDied(self.exit_reason())

    def exit_reason(self) -> str:
        self.process.join(2.0)
        return describe_exit(self.process.exitcode)

    def crash_report(self) -> str | None:
        """What faulthandler wrote when the worker crashed (the Python stack at the fault), if anything."""
        try:
            text = self.crash_log.read_text(errors="replace").strip()
        except OSError:
            return None
        return text[-8000:] or None

    def cancel(self, seq: int) -> None:
        self.cancel_seq.value = seq

    def kill(self, term_wait_s: float = 0.5) -> None:
        """SIGTERM (the stack goes to the crash log), then SIGKILL if it is still there; returns when gone."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(term_wait_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5.0)

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the worker to leave, and make sure it did; releases the pipe and the crash log."""
        if self.process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(("stop",))
            deadline = time.monotonic() + timeout
            self.process.join(max(0.0, deadline - time.monotonic()))
        self.kill()
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.close()
        with contextlib.suppress(ValueError, AttributeError):
            self.process.close()
        with contextlib.suppress(OSError):
            self.crash_log.unlink()

"""JobManager: queues jobs per device, feeds them to warm workers, and reports what happens.

Threads, and why each exists:

- one *slot* thread per worker (``workers_per_device`` per requested device string): it takes the
  next queued job for its device, talks to its worker until the job ends, and replaces the worker
  when it crashed or had to be killed. Waiting on a pipe is all it does, so a busy GUI never delays it.
- one *event* thread: every ``job_added`` / ``job_changed`` is emitted there, in order, so listeners
  (a Qt bridge, the CLI's progress bar) never run inside the manager's locks and a slow listener
  cannot stall a worker's progress stream.

Jobs are queued by device (``device.queue_key``: "auto" joins the queue of the device it will most
likely use, judged without torch); "auto" is resolved exactly inside the worker, so the parent never
imports torch just to choose a device.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import logging
import multiprocessing.util  # noqa: F401 - import before registering our atexit hook; see _at_exit
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from psygnal import Signal

from kintsugi.runtime import transport
from kintsugi.runtime.device import queue_key
from kintsugi.runtime.jobs import Job, JobSpec, JobState
from kintsugi.runtime.process import WorkerDied, WorkerProcess

log = logging.getLogger(__name__)

POLL_S = 0.1
"""How often a slot thread looks at a running job's cancel deadline; bounds how late a kill can be."""


class _Events:
    """Delivers signal emissions on one background thread, in the order they were posted."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="kintsugi-job-events", daemon=True)
        self._thread.start()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((fn, args))

    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _loop(self) -> None:
        while True:
            fn, args = self._queue.get()
            if fn is None:
                return
            try:
                fn(*args)
            except Exception:  # a listener's bug must not stop the others from hearing about jobs
                log.exception("job event listener failed")

    def stop(self) -> None:
        self._queue.put((None, ()))
        if not self.on_thread():
            self._thread.join(10.0)


class _Slot:
    """One worker seat for one device: its thread, its process (when started) and what it runs now."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.worker: WorkerProcess | None = None
        self.job: Job | None = None
        self.seq = 0  # sequence number of the job the worker runs now (0: none sent yet)
        self.deadline: float | None = None  # when a cancelled job's grace period ends
        self.warm = False  # warm_up asked for a worker before any job
        self.thread: threading.Thread | None = None


_live: weakref.WeakSet[JobManager] = weakref.WeakSet()


class JobManager:
    """Runs :class:`JobSpec` jobs in warm worker processes; see the module docstring for the threads.

    ``grace_s``: after ``cancel``, how long a running task may take to notice (at its next progress
    report) before its worker is terminated. 1 s keeps a hung task's worker gone within 2 s of cancel.
    ``memory_limit_bytes`` caps each worker's address space (not for CUDA: see worker._limit_memory).
    """

    job_added = Signal(object)
    job_changed = Signal(object)

    def __init__(self, workers_per_device: int = 1, grace_s: float = 1.0, memory_limit_bytes: int | None = None,
                 start_timeout_s: float = 60.0) -> None:
        if workers_per_device < 1:
            raise ValueError("workers_per_device must be at least 1")
        self.workers_per_device = workers_per_device
        self.grace_s = grace_s
        self.memory_limit_bytes = memory_limit_bytes
        self.start_timeout_s = start_timeout_s
        self._cond = threading.Condition()
        self._queues: dict[str, collections.deque[Job]] = {}
        self._slots: dict[str, list[_Slot]] = {}
        self._jobs: dict[str, Job] = {}
        self._closing = False
        self._closed = threading.Event()
        self._events = _Events()
        _ = self.job_added, self.job_changed  # create the signal instances now, not racing in two threads
        _sweep_once()
        _live.add(self)

    # ---- public API -------------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Job:
        """Queue a job and return at once; inputs are read when it starts, not now."""
        transport.check_picklable(spec)  # a bad argument fails here, in the caller, not later in a thread
        job = Job(spec)
        with self._cond:
            if self._closing:
                raise RuntimeError("this JobManager has been shut down")
            self._jobs[job.id] = job
            key = job.queue_key = queue_key(spec.device)
            self._queues.setdefault(key, collections.deque()).append(job)
            self._ensure_slots(key)
            self._cond.notify_all()
        self._events.post(self.job_added.emit, job)
        return job

    def cancel(self, job: Job | str) -> None:
        """Stop a job: a queued one at once, a running one at its next progress report or after grace_s."""
        with self._cond:
            job = self._jobs[job] if isinstance(job, str) else job
            if job.done or job.cancel_requested:
                return
            job.cancel_requested = True
            q = self._queues.get(job.queue_key)
            if job.state is JobState.QUEUED and q is not None and job in q:
                q.remove(job)
                queued = True
            else:
                queued = False
                for slot in self._slots.get(job.queue_key, ()):
                    if slot.job is job:
                        slot.deadline = time.monotonic() + self.grace_s
                        w = slot.worker
                        if slot.seq and w is not None:
                            w.cancel(slot.seq)
                self._cond.notify_all()
        if queued:
            self._finish(job, JobState.CANCELLED, message="cancelled before it started")
        elif job._update(message="cancelling…"):
            self._changed(job)

    def wait(self, job: Job, timeout: float | None = None) -> Job:
        """Block until the job ended and listeners heard it; TimeoutError if it did not in ``timeout`` s."""
        event = job._final if self._events.on_thread() else job._delivered  # a listener must not wait on itself
        if not event.wait(timeout):
            raise TimeoutError(f"job {job.id} ({job.title}) did not finish within {timeout} s")
        return job

    def run(self, spec: JobSpec, timeout: float | None = None) -> Job:
        """Submit and wait; on timeout the job is cancelled and TimeoutError raised."""
        job = self.submit(spec)
        try:
            return self.wait(job, timeout)
        except TimeoutError:
            self.cancel(job)
            with contextlib.suppress(TimeoutError):
                self.wait(job, self.grace_s + 10.0)
            raise

    def warm_up(self, device: str = "auto") -> None:
        """Start a worker for ``device`` now (in the background), so the first job skips the start-up."""
        device = queue_key(device)
        with self._cond:
            if self._closing:
                raise RuntimeError("this JobManager has been shut down")
            slots = self._ensure_slots(device)
            if slots[0].worker is None:
                slots[0].warm = True
            self._cond.notify_all()

    def jobs(self) -> list[Job]:
        """Every job submitted and not forgotten, oldest first."""
        with self._cond:
            return list(self._jobs.values())

    def forget(self, job: Job | str) -> None:
        """Drop a finished job from :meth:`jobs`, so the manager no longer holds its result in memory."""
        with self._cond:
            job = self._jobs[job] if isinstance(job, str) else job
            if not job.done:
                raise ValueError(f"job {job.id} has not finished; cancel it first")
            self._jobs.pop(job.id, None)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel every job, stop every worker, release all shared memory. Safe to call twice.

        With ``wait=False`` the same happens on a background thread and this returns at once.
        """
        with self._cond:
            first = not self._closing
            self._closing = True
            slots = [s for group in self._slots.values() for s in group]
            queued = [j for q in self._queues.values() for j in q]
            for q in self._queues.values():
                q.clear()
            running = [s.job for s in slots if s.job is not None]
            self._cond.notify_all()
        if first:
            for job in queued:
                job.cancel_requested = True
                self._finish(job, JobState.CANCELLED, message="cancelled: the job manager shut down")
            for job in running:
                self.cancel(job)
            if wait:
                self._close(slots)
            else:
                threading.Thread(target=self._close, args=(slots,), name="kintsugi-jobs-shutdown",
                                 daemon=True).start()
        elif wait:
            self._closed.wait(30.0)

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ---- internals --------------------------------------------------------------------------------

    def _close(self, slots: list[_Slot]) -> None:
        for slot in slots:
            if slot.thread is not None and slot.thread is not threading.current_thread():
                slot.thread.join(self.grace_s + 30.0)
        for job in list(self._jobs.values()):
            transport.release(transport.job_prefix(job.id))
        self._events.stop()
        self._closed.set()
        _live.discard(self)

    def _ensure_slots(self, device: str) -> list[_Slot]:
        """Create the slots (and their threads) of a device on first use; call with the lock held."""
        slots = self._slots.get(device)
        if slots is None:
            slots = self._slots[device] = [_Slot(device) for _ in range(self.workers_per_device)]
            self._queues.setdefault(device, collections.deque())
            for i, slot in enumerate(slots):
                slot.thread = threading.Thread(target=self._serve, args=(slot,), daemon=True,
                                               name=f"kintsugi-jobs-{device}-{i}")
                slot.thread.start()
        return slots

    def _changed(self, job: Job) -> None:
        self._events.post(self.job_changed.emit, job)

    def _finish(self, job: Job, state: JobState, **fields: Any) -> None:
        """Record a final state: release the job's shared memory first, then tell listeners, then waiters."""
        transport.release(transport.job_prefix(job.id))
        if job._update(state=state, **fields):
            self._changed(job)
            self._events.post(job._delivered.set)

    def _next(self, slot: _Slot) -> Job | None:
        """Block until there is a job for this slot (returned) or the manager closes (None)."""
        with self._cond:
            while True:
                if self._closing:
                    return None
                q = self._queues[slot.device]
                if q:
                    job = q.popleft()
                    slot.job, slot.seq, slot.deadline = job, 0, None
                    return job
                if slot.warm:
                    slot.warm = False
                    return None if self._closing else _WARM
                self._cond.wait()

    def _serve(self, slot: _Slot) -> None:
        try:
            while (job := self._next(slot)) is not None:
                if job is _WARM:
                    try:
                        self._worker(slot)
                    except Exception:  # the first job will try again and report why it cannot start
                        log.warning("warm-up of a %s worker failed", slot.device, exc_info=True)
                    continue
                try:
                    self._run(slot, job)
                except Exception as e:  # a bug here must fail the job, not hang its waiters forever
                    log.exception("job %s: runtime error", job.id)
                    if slot.worker is not None:
                        slot.worker.kill()
                        slot.worker.close()
                        slot.worker = None
                    if not job.done:
                        detail = " ".join(str(e).split())[:300]  # one line, whatever the exception printed
                        self._finish(job, JobState.FAILED, error=f"runtime error: {type(e).__name__}: {detail}")
                finally:
                    with self._cond:
                        slot.job, slot.seq, slot.deadline = None, 0, None
        finally:
            if slot.worker is not None:
                slot.worker.stop()
                slot.worker = None

    def _worker(self, slot: _Slot) -> WorkerProcess:
        """The slot's live worker, starting a fresh one if there is none (first use, or after a crash)."""
        if slot.worker is not None and slot.worker.alive:
            return slot.worker
        if slot.worker is not None:
            slot.worker.close()
            slot.worker = None
        w = WorkerProcess(slot.device, self.memory_limit_bytes)
        try:
            w.wait_ready(self.start_timeout_s)
        except WorkerDied:
            w.kill()
            w.close()
            raise
        slot.worker = w
        return w

    def _run(self, slot: _Slot, job: Job) -> None:
        cold = slot.worker is None or not slot.worker.alive
        job._update(state=JobState.RUNNING, message="starting a worker…" if cold else "starting…")
        self._changed(job)
        try:
            w = self._worker(slot)
        except WorkerDied as e:
            self._finish(job, JobState.FAILED, error=f"worker failed to start: {e}")
            return
        job._update(worker_pid=w.pid)
        prefix = transport.job_prefix(job.id)
        try:
            payload, _ = transport.dumps(job.spec, prefix + "a")
        except Exception as e:  # e.g. no room for the inputs in shared memory or on disk
            self._finish(job, JobState.FAILED, error=f"could not send the inputs: {type(e).__name__}: {e}")
            return
        with self._cond:
            if job.cancel_requested:
                payload = b""
            else:
                slot.seq = seq = next(_seqs)
        if not payload:
            self._finish(job, JobState.CANCELLED, message="cancelled before it started")
            return
        message = ("job", seq, prefix, payload)
        del payload
        retried = False
        while True:
            try:
                w.send(message)
                self._talk(slot, w, job, seq)
                return
            except WorkerDied as e:
                reason, report, received = str(e), w.crash_report(), getattr(e, "received", False)
                w.close()
                slot.worker = None
            if not received and not retried and not job.cancel_requested:
                # The worker died before it read the job (killed while idle, noticed only now): the job
                # never ran, so a fresh worker gets it, once.
                retried = True
                try:
                    w = self._worker(slot)
                except WorkerDied as e:
                    self._finish(job, JobState.FAILED, error=f"worker failed to start: {e}")
                    return
                job._update(worker_pid=w.pid)
                with self._cond:
                    if job.cancel_requested:  # cancel() may have flagged the dead worker meanwhile
                        w.cancel(seq)
                continue
            if job.cancel_requested:
                self._finish(job, JobState.CANCELLED, message="cancelled", traceback=report)
            else:
                self._finish(job, JobState.FAILED, error=reason, message=reason, traceback=report)
            return

    def _talk(self, slot: _Slot, w: WorkerProcess, job: Job, seq: int) -> None:
        """Relay the worker's messages about ``job`` until it ends; kill the worker if a cancel times out."""
        received = False
        while True:
            deadline = slot.deadline
            timeout = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.monotonic()))
            try:
                msg = w.recv(timeout)
            except WorkerDied as e:
                e.received = received  # type: ignore[attr-defined]
                raise
            if msg is None:
                if deadline is not None and time.monotonic() >= deadline:
                    w.kill()
                    report = w.crash_report()
                    w.close()
                    slot.worker = None
                    self._finish(job, JobState.CANCELLED, traceback=report,
                                 message=f"cancelled (the task did not stop within {self.grace_s:g} s, "
                                         f"so its worker was stopped)")
                    return
                continue
            kind = msg[0]
            if len(msg) < 2 or msg[1] != seq:
                continue  # a late message about an earlier job
            if kind == "received":
                received = True
            elif kind == "started":
                job._update(device=msg[2], message="running")
                self._changed(job)
            elif kind == "progress":
                if job._update(fraction=msg[2], message=msg[3]):
                    self._changed(job)
            elif kind == "done":
                try:
                    result = transport.loads(msg[2])
                except Exception as e:
                    self._finish(job, JobState.FAILED, error=f"could not read the result: {type(e).__name__}: {e}")
                else:
                    self._finish(job, JobState.DONE, result=result, message="done")
                return
            elif kind == "failed":
                self._finish(job, JobState.FAILED, error=msg[2], message=msg[2], traceback=msg[3])
                return
            elif kind == "cancelled":
                self._finish(job, JobState.CANCELLED, message="cancelled")
                return


_WARM: Any = object()
_seqs = itertools.count(1)  # job numbers on the wire; next() on a count is atomic under the GIL


_swept = False


def _sweep_once() -> None:
    global _swept
    if not _swept:
        _swept = True
        with contextlib.suppress(OSError):
            transport.sweep_stale()


_default: JobManager | None = None
_default_lock = threading.Lock()


def default_manager() -> JobManager:
    """A process-wide manager created on first use (one worker per device)."""
    global _default
    with _default_lock:
        if _default is None or _default._closing:
            _default = JobManager()
        return _default


def run_job(spec: JobSpec, timeout: float | None = None) -> Job:
    """Run one job on the default manager and return it finished (see :meth:`JobManager.run`)."""
    return default_manager().run(spec, timeout)


def _at_exit() -> None:
    # Registered after multiprocessing.util's own hook, so it runs first (atexit is last-in, first-out):
    # that hook joins every non-daemonic child, and our workers only leave when told to.
    for manager in list(_live):
        with contextlib.suppress(Exception):
            manager.shutdown(wait=True)
    with contextlib.suppress(OSError):
        transport.release(f"{transport.PREFIX}{os.getpid()}-")


atexit.register(_at_exit)

"""What a job is: the picklable spec a worker runs, and the Job record the GUI and CLI watch.

The spec names its function by import path (``"package.module:function"``) rather than holding the
function, so the parent never has to import a plugin's model code (and torch) just to submit a job.
"""

from __future__ import annotations

import enum
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JobSpec:
    """Everything a worker needs to run one task; must pickle (layers and plain values do)."""

    function: str
    """``"package.module:function_name"`` (``"module:Class.method"`` works too), imported in the worker."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments; numpy arrays of 1 MB or more travel by shared memory."""
    device: str = "auto"
    """Requested device; resolved in the worker with :func:`kintsugi.runtime.device.resolve_device`."""
    weights: dict = field(default_factory=dict)
    """:meth:`kintsugi.plugins.weights.Weights.to_spec` form; becomes a ``Weights`` in the worker."""
    task_id: str = ""
    title: str = ""

    def __post_init__(self) -> None:
        module, sep, name = self.function.partition(":")
        if not (module and sep and name):
            raise ValueError(f"JobSpec.function must look like 'package.module:function', got {self.function!r}")
        self.device = (self.device or "auto").strip().lower()

    @property
    def label(self) -> str:
        return self.title or self.task_id or self.function


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)

    def __str__(self) -> str:
        return self.value


_FIELDS = ("state", "fraction", "message", "result", "error", "traceback", "device", "started", "finished",
           "duration_s", "worker_pid")


class Job:
    """One submitted task and what became of it.

    Only the :class:`~kintsugi.runtime.manager.JobManager` changes a Job, always under the job's lock
    and from its own threads; readers may read attributes at any time (each is replaced whole) or take
    a consistent :meth:`snapshot`. ``device`` is the device the worker actually resolved.
    """

    def __init__(self, spec: JobSpec) -> None:
        self.id: str = uuid.uuid4().hex[:8]
        self.spec = spec
        self.state = JobState.QUEUED
        self.fraction = 0.0
        self.message = "queued"
        self.result: Any = None
        self.error: str | None = None
        self.traceback: str | None = None
        self.device: str | None = None
        self.submitted: float = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.duration_s: float | None = None
        self.worker_pid: int | None = None
        self.cancel_requested = False
        self.queue_key: str = spec.device  # set by the manager: which device queue the job waits in
        self._lock = threading.Lock()
        self._t0 = 0.0
        self._final = threading.Event()  # state is final
        self._delivered = threading.Event()  # ... and listeners have been told

    @property
    def done(self) -> bool:
        return self.state.final

    @property
    def title(self) -> str:
        return self.spec.label

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the changing fields (for a view that must not see half an update)."""
        with self._lock:
            return {"id": self.id, **{k: getattr(self, k) for k in _FIELDS}}

    def _update(self, **changes: Any) -> bool:
        """Apply changes; False (and nothing changed) once the job has ended: a final state is final."""
        with self._lock:
            if self.state.final:
                return False
            for key, value in changes.items():
                setattr(self, key, value)
            state = changes.get("state")
            if state is JobState.RUNNING and self.started is None:
                self.started, self._t0 = time.time(), time.perf_counter()
            if state is not None and state.final:
                self.finished = time.time()
                self.duration_s = time.perf_counter() - self._t0 if self.started is not None else 0.0
                if state is JobState.DONE:
                    self.fraction = 1.0
                self._final.set()
            return True

    def __repr__(self) -> str:
        extra = f", error={self.error!r}" if self.error else ""
        return f"Job({self.id}, {self.title!r}, {self.state.value}, {self.fraction:.0%}{extra})"

"""Turn the job manager's events (emitted on its background thread) into Qt signals, coalesced.

Events are collected per job and delivered in the GUI thread at most every ``interval_ms`` (a job
that finishes is delivered at once). Every repaint of a window holding OpenGL views costs several
milliseconds of compositing, so coalescing is what keeps the UI fluid while several jobs stream
progress; the UI thread only ever reacts, it never waits on a job.
"""

from __future__ import annotations

import contextlib
import threading

from qtpy.QtCore import QObject, QTimer, Signal


class JobsBridge(QObject):
    job_changed = Signal(object)
    # Emitted from the manager's thread and queued by Qt to the GUI thread; deliberately argument-less
    # (jobs travel in self._pending): PySide6 mis-counts references of objects sent through queued signals.
    _wake = Signal()
    _wake_urgent = Signal()

    def __init__(self, manager, parent: QObject | None = None, interval_ms: int = 100) -> None:
        super().__init__(parent)
        self.manager = manager
        self.interval_ms = interval_ms
        self._pending: dict[str, object] = {}
        self._lock = threading.Lock()
        self._scheduled = False
        self._wake.connect(self._schedule)
        self._wake_urgent.connect(self.flush)
        manager.job_added.connect(self._relay)
        manager.job_changed.connect(self._relay)

    def _relay(self, job) -> None:
        with self._lock:
            first = not self._pending
            self._pending[job.id] = job
        if job.done:
            self._wake_urgent.emit()
        elif first:
            self._wake.emit()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            QTimer.singleShot(self.interval_ms, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        with self._lock:
            jobs, self._pending = list(self._pending.values()), {}
        for job in jobs:
            self.job_changed.emit(job)

    def detach(self) -> None:
        for signal in (self.manager.job_added, self.manager.job_changed):
            with contextlib.suppress(ValueError, RuntimeError):
                signal.disconnect(self._relay)

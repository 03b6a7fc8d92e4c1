"""Turn the job manager's events (emitted on its background threads) into Qt signals.

The signal is emitted from whatever thread the manager uses; because the bridge lives in the GUI
thread, Qt queues delivery there. The UI thread therefore only ever reacts, it never waits on a job.
"""

from __future__ import annotations

import contextlib

from qtpy.QtCore import QObject, Signal


class JobsBridge(QObject):
    job_changed = Signal(object)

    def __init__(self, manager, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.manager = manager
        manager.job_added.connect(self._relay)
        manager.job_changed.connect(self._relay)

    def _relay(self, job) -> None:
        self.job_changed.emit(job)

    def detach(self) -> None:
        for signal in (self.manager.job_added, self.manager.job_changed):
            with contextlib.suppress(ValueError, RuntimeError):
                signal.disconnect(self._relay)

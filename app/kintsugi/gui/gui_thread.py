"""Run a function on the GUI thread from a background thread, waiting a bounded time for the result.

The autosave thread uses it to snapshot the scene where the scene lives, so a snapshot never sees half
an edit; the timeout means a busy or closing GUI can never deadlock the saver (it just skips a turn).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, QThread, Signal


class GuiThreadRunner(QObject):
    _call = Signal(object)

    def __init__(self, parent: QObject | None = None, timeout_s: float = 5.0) -> None:
        super().__init__(parent)
        self.timeout_s = timeout_s
        self._call.connect(self._run)

    def _run(self, box: dict) -> None:
        try:
            box["result"] = box["fn"]()
        except Exception as e:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = e
        box["done"].set()

    def __call__(self, fn: Callable[[], Any]) -> Any:
        if QThread.currentThread() is self.thread():
            return fn()
        box: dict[str, Any] = {"fn": fn, "done": threading.Event()}
        self._call.emit(box)
        if not box["done"].wait(self.timeout_s):
            return None
        if "error" in box:
            raise box["error"]
        return box.get("result")

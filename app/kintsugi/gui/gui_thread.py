"""Run a function on the GUI thread from a background thread, waiting a bounded time for the result.

The autosave thread uses it to snapshot the scene where the scene lives, so a snapshot never sees half
an edit; the timeout means a busy or closing GUI can never deadlock the saver (it just skips a turn).
Calls travel through a plain queue and an argument-less signal: no Python object crosses Qt's queued
connection (PySide6 mis-counted references of objects sent that way, which aborted the interpreter).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, QThread, Signal


class GuiThreadRunner(QObject):
    _wake = Signal()

    def __init__(self, parent: QObject | None = None, timeout_s: float = 5.0) -> None:
        super().__init__(parent)
        self.timeout_s = timeout_s
        self._calls: queue.Queue = queue.Queue()
        self._wake.connect(self._drain)

    def _drain(self) -> None:
        while True:
            try:
                box = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                box["result"] = box["fn"]()
            except Exception as e:  # noqa: BLE001 - handed back to the caller's thread
                box["error"] = e
            box["done"].set()

    def __call__(self, fn: Callable[[], Any]) -> Any:
        if QThread.currentThread() is self.thread():
            return fn()
        box: dict[str, Any] = {"fn": fn, "done": threading.Event()}
        self._calls.put(box)
        self._wake.emit()
        if not box["done"].wait(self.timeout_s):
            return None
        if "error" in box:
            raise box["error"]
        return box.get("result")

"""Progress reporting and cooperative cancel, the one thing every task receives.

A task calls ``progress(fraction, message)`` now and then; that call is also where a cancel request
surfaces (as :class:`Cancelled`), so a task that reports progress is cancellable for free.
"""

from __future__ import annotations

from collections.abc import Callable


class Cancelled(Exception):
    """Raised inside a task when the user asked to stop it."""


class Progress:
    """Reports fraction done (0..1) and a message; raises Cancelled once cancel was requested.

    ``sink`` receives (fraction, message); ``is_cancelled`` is polled on every report.
    ``span(start, end)`` gives a child whose 0..1 maps onto start..end of this one, so a task can hand a
    sub-step its own progress without knowing where it sits in the whole.
    """

    def __init__(self, sink: Callable[[float, str], None] | None = None,
                 is_cancelled: Callable[[], bool] | None = None, start: float = 0.0, end: float = 1.0) -> None:
        self._sink = sink
        self._is_cancelled = is_cancelled
        self._start, self._end = start, end
        self.fraction = 0.0
        self.message = ""

    def __call__(self, fraction: float | None = None, message: str | None = None) -> None:
        if fraction is not None:
            f = min(1.0, max(0.0, float(fraction)))
            self.fraction = self._start + f * (self._end - self._start)
        if message is not None:
            self.message = message
        self.check()
        if self._sink is not None:
            self._sink(self.fraction, self.message)

    update = __call__

    def check(self) -> None:
        """Raise Cancelled if the user asked to stop; call it in tight loops that report nothing."""
        if self._is_cancelled is not None and self._is_cancelled():
            raise Cancelled("cancelled by the user")

    @property
    def cancelled(self) -> bool:
        return bool(self._is_cancelled and self._is_cancelled())

    def span(self, start: float, end: float) -> Progress:
        width = self._end - self._start
        return Progress(self._sink, self._is_cancelled, self._start + start * width, self._start + end * width)


NO_PROGRESS = Progress()

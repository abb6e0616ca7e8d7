"""Watching a long run: its phase and elapsed time on a terminal, Ctrl-C as "stop and
report what was seen so far".

While a :class:`RunWatch` is active (main thread only), the first SIGINT only sets a
flag; :meth:`RunWatch.poll`, which the session calls about every 50 ms while the guest
runs, then raises :class:`RunInterrupted`, which leaves the guest running in a consistent
state for ``Session.interrupt()``. The command then diagnoses what it has and exits 130.
A second Ctrl-C is Python's KeyboardInterrupt again (the usual one-line ending).
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from lhvdbg.ui.status import RunStatus

__all__ = ["RunInterrupted", "RunWatch"]


class RunInterrupted(Exception):
    """Ctrl-C during a run: stop the guest and report."""


class RunWatch:
    """The run's phase (shown on ``stream`` when it is a terminal) and its Ctrl-C."""

    def __init__(self, stream: TextIO | None) -> None:
        self.started = time.monotonic()
        self.interrupted = False
        self.interrupted_at = (0.0, "")  # elapsed seconds and phase at the Ctrl-C
        self._status: RunStatus | None = None
        if stream is not None and hasattr(stream, "isatty") and stream.isatty():
            from lhvdbg.ui.status import RunStatus  # rich: only for a terminal

            self._status = RunStatus(stream)
        self._phase = "starting QEMU and gdb"
        self._saved: Any = None

    @property
    def phase(self) -> str:
        """What the run is doing now (``booting``, ``kernel entered: waiting for ...``)."""
        return self._phase

    @phase.setter
    def phase(self, text: str) -> None:
        self._phase = text
        if self._status is not None:
            self._status.phase = text

    @property
    def elapsed(self) -> float:
        """Seconds since the watch began."""
        return time.monotonic() - self.started

    def _on_sigint(self, number: int, frame: FrameType | None) -> None:
        if self.interrupted:  # a second Ctrl-C: the usual ending
            raise KeyboardInterrupt
        self.interrupted = True
        self.interrupted_at = (self.elapsed, self._phase)

    def poll(self) -> None:
        """Raise :class:`RunInterrupted` once Ctrl-C was pressed."""
        if self.interrupted:
            raise RunInterrupted

    def __enter__(self) -> RunWatch:
        if threading.current_thread() is threading.main_thread():
            self._saved = signal.signal(signal.SIGINT, self._on_sigint)
        if self._status is not None:
            self._status.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.stop()
        if self._saved is not None:
            signal.signal(signal.SIGINT, self._saved)
            self._saved = None

    def note(self) -> str:
        """The report's note after a Ctrl-C."""
        elapsed, phase = self.interrupted_at
        return (
            f"interrupted (Ctrl-C) after {elapsed:.1f} s, {phase}: "
            "this report covers what was seen so far"
        )

"""A one-line status of a long run on a terminal: what it is doing, for how long.

Shown on the given stream only when it is a terminal, and only once the run has lasted
``delay`` seconds (short runs print nothing extra); transient: erased when the run ends,
so the report that follows stands alone. Nothing at all when piped.
"""

from __future__ import annotations

import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from lhvdbg.ui.console import is_terminal

__all__ = ["RunStatus"]

DELAY = 0.5
REFRESH_PER_SECOND = 4


class RunStatus:
    """``phase`` is read at every refresh (a background thread of rich's ``Live``)."""

    def __init__(self, stream: TextIO, *, delay: float = DELAY) -> None:
        self.phase = "starting QEMU and gdb"
        self.delay = delay
        self.started = time.monotonic()
        self._live: Live | None = None
        self.shown = is_terminal(stream)
        self._stream = stream

    def __rich__(self) -> Text:
        elapsed = time.monotonic() - self.started
        if elapsed < self.delay:
            return Text("")
        return Text(f"lhvdbg: {self.phase} … {elapsed:.1f} s", style="dim")

    def start(self) -> None:
        """Begin refreshing (on a terminal only)."""
        if not self.shown or self._live is not None:
            return
        console = Console(file=self._stream, highlight=False, emoji=False)
        self._live = Live(
            self,
            console=console,
            transient=True,
            refresh_per_second=REFRESH_PER_SECOND,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def stop(self) -> None:
        """Erase the line and stop refreshing."""
        if self._live is not None:
            self._live.stop()
            self._live = None

"""A synchronous QMP facade over qemu.qmp's asyncio ``QMPClient``.

The async client runs on a private event-loop thread; every public method is a blocking
call with a timeout. Events (SHUTDOWN, RESET, STOP, GUEST_PANICKED, ...) are recorded with
their timestamps as they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class QmpEvent:
    """One QMP event: name, data, and the time it was received (``time.monotonic()``)
    plus QEMU's own timestamp (seconds since the epoch)."""

    name: str
    data: dict[str, Any]
    received: float
    qemu_time: float


class QmpClient:
    """QMP over a Unix socket."""

    def __init__(self, socket_path: Path, *, timeout: float = 5.0) -> None:
        """Connect (retrying until the socket exists, up to ``timeout``); QmpError or
        TargetTimeout on failure."""
        raise NotImplementedError

    @property
    def qemu_version(self) -> str:
        """QEMU's version from the greeting, e.g. ``"7.2.22"``."""
        raise NotImplementedError

    def execute(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> Any:
        """Run a QMP command; QmpError with ``command`` and ``reply`` on failure."""
        raise NotImplementedError

    def hmp(self, command_line: str, *, timeout: float = 5.0) -> str:
        """``human-monitor-command``: the text of e.g. ``info registers``."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """``query-status``: ``{"running": bool, "status": "paused"|...}``."""
        raise NotImplementedError

    def events(self) -> list[QmpEvent]:
        """Events received so far, oldest first."""
        raise NotImplementedError

    def wait_event(self, names: set[str], timeout: float) -> QmpEvent | None:
        """The first event (new or not yet waited for) named in ``names``, or None."""
        raise NotImplementedError

    def quit(self) -> None:
        """Ask QEMU to quit (ignores a connection already gone)."""
        raise NotImplementedError

    def close(self) -> None:
        """Disconnect and stop the event-loop thread. Idempotent."""
        raise NotImplementedError

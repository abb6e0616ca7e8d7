"""gdb/MI client: token-matched commands over pygdbmi, never its 0.2 s default read.

Each command is sent as ``<token>-command`` and the client reads with small timeouts until
the result record (``^done``/``^running``/``^connected``/``^error``/``^exit``) carrying that
token arrives. Async records (``*stopped``, ``*running``, ``=...``) and stream output seen
meanwhile are queued for :meth:`GdbMi.wait_stopped`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MiRecord:
    """One parsed MI record (pygdbmi's dict, typed)."""

    type: str  # "result", "notify" (async * and =), "console", "log", "target", "output"
    message: str | None  # "done", "error", "stopped", "running", ...
    payload: Any
    token: int | None
    stream: str = ""  # for stream records ("console", "log", "target")


@dataclass(frozen=True)
class MiResult:
    """The result record of one command and the other records seen while waiting."""

    command: str
    token: int
    message: str  # "done", "running", "connected", "exit"
    payload: dict[str, Any]
    records: tuple[MiRecord, ...] = field(default_factory=tuple)


class GdbMi:
    """A gdb process in MI mode (``gdb --interpreter=mi3 -nx -q``)."""

    def __init__(self, gdb_path: str = "gdb", *, timeout: float = 10.0) -> None:
        """Start gdb (own process group, PR_SET_PDEATHSIG); ToolMissingError if absent."""
        raise NotImplementedError

    @property
    def pid(self) -> int:
        """gdb's process id."""
        raise NotImplementedError

    def command(self, command: str, *, timeout: float = 10.0) -> MiResult:
        """Send one MI command (CLI commands via ``-interpreter-exec console``) and wait
        for its token's result; GdbError (with ``command`` and ``reply``) on ``^error``,
        gdb exiting, or timeout."""
        raise NotImplementedError

    def wait_stopped(self, timeout: float) -> MiRecord | None:
        """The next ``*stopped`` async record, or None after ``timeout`` seconds."""
        raise NotImplementedError

    def pending_stopped(self) -> MiRecord | None:
        """A ``*stopped`` record already received and not yet consumed, if any."""
        raise NotImplementedError

    def interrupt(self) -> None:
        """Send ``-exec-interrupt`` (gdb answers ``^done``; the ``*stopped`` follows)."""
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        """Whether the gdb process is still running."""
        raise NotImplementedError

    def close(self) -> None:
        """Quit gdb (``-gdb-exit``), then SIGTERM/SIGKILL its process group. Idempotent."""
        raise NotImplementedError

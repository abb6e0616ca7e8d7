"""A small synchronous QMP client over a Unix socket.

QMP (QEMU Machine Protocol, ``docs/interop/qmp-spec`` in QEMU) is one JSON object per
line: a greeting with QEMU's version, ``qmp_capabilities`` to enter command mode, then
commands and their replies, and events (SHUTDOWN, RESET, STOP, GUEST_PANICKED...) in
between. QEMU reads a request one byte per turn of its main loop (about 10 µs a byte on
this 2-core machine under load), so requests are sent without spaces and without an
``id``: in-band commands are answered one after another in order, so the n-th reply is
the n-th request's. Everything here runs on the caller's thread:
a command is one ``send`` and the reads that bring its reply back, with no event loop or
thread hand-off in between (under load those hand-offs cost more than QEMU's answer).
Events are collected whenever the socket is read, and :meth:`QmpClient.events` reads
what is pending first. Several HMP commands can be issued together
(:meth:`QmpClient.hmp_many`): one write, their replies matched by order.

An error reply keeps QMP's structure: :class:`~lhvdbg.errors.QmpError` carries its
``error_class`` (``GenericError``, ``CommandNotFound``...) and ``desc``. No reply in
time is :class:`~lhvdbg.errors.TargetTimeout`, the one timeout error.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lhvdbg.errors import QmpError, TargetTimeout
from lhvdbg.machine.monitor import connect_unix, receive

log = logging.getLogger(__name__)
#: QEMU reads a QMP request one byte per main-loop turn (``monitor_can_read`` says 1),
#: so every byte sent costs time: no spaces.
COMPACT = (",", ":")


@dataclass(frozen=True)
class QmpEvent:
    """One QMP event: its name and data, when it was read (``time.monotonic()``), and
    QEMU's own timestamp (seconds since the epoch)."""

    name: str
    data: dict[str, Any]
    received: float
    qemu_time: float


@dataclass(frozen=True)
class PendingQmp:
    """Commands written by :meth:`QmpClient.send` whose replies are not read yet."""

    commands: tuple[str, ...]
    ids: tuple[int, ...]


def is_read_only(command: str, arguments: dict[str, Any] | None) -> bool:
    """Whether a command only reads: ``query-*``, ``qmp_capabilities`` and HMP ``info``
    commands (anything else may change the machine: :attr:`QmpClient.changes`)."""
    if command == "human-monitor-command":
        line = str((arguments or {}).get("command-line", ""))
        return line == "info" or line.startswith("info ")
    return command.startswith("query-") or command == "qmp_capabilities"


def qmp_failure(command: str, reply: dict[str, Any]) -> QmpError:
    """The QmpError for an ``{"error": {"class": ..., "desc": ...}}`` reply."""
    error = reply.get("error") or {}
    error_class = str(error.get("class", "GenericError"))
    desc = str(error.get("desc", ""))
    return QmpError(
        f"QMP {command} failed: {error_class}: {desc}",
        error_class=error_class,
        desc=desc,
        command=command,
        reply=json.dumps(reply),
    )


class QmpClient:
    """QMP over a Unix socket, with a blocking API (thread-safe: one caller at a time)."""

    def __init__(
        self,
        socket_path: Path,
        *,
        timeout: float = 5.0,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        """Connect (retrying until the socket accepts, up to ``timeout`` seconds, while
        ``alive()`` stays true) and enter command mode; TargetTimeout or QmpError."""
        self.socket_path = socket_path
        self._events: list[QmpEvent] = []
        self._consumed = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._buffer = b""
        self._next_id = 1  # the number of the next request; replies are counted as they come
        self._replied = 0
        self._lock = threading.RLock()
        self._closed = False
        self._greeting: dict[str, Any] = {}
        self.changes = 0  # commands sent that may have changed the machine (not reads)
        self._sock = connect_unix(socket_path, timeout, alive, "QMP")
        try:
            deadline = time.monotonic() + timeout
            while not self._greeting:
                self._read(deadline, "the QMP greeting")
            self.execute("qmp_capabilities", timeout=timeout)
        except BaseException:
            self.close()
            raise

    # --- plumbing -----------------------------------------------------------------

    def _send(self, messages: list[dict[str, Any]]) -> None:
        log.debug("--> %s", messages)
        try:
            data = "".join(json.dumps(m, separators=COMPACT) + "\n" for m in messages)
            self._sock.sendall(data.encode())
        except OSError as exc:
            raise QmpError(
                f"QMP connection lost: {exc}", command=str(messages[0].get("execute"))
            ) from exc

    def _read(self, deadline: float | None, what: str) -> bool:
        """Read what has arrived (waiting until ``deadline``; None: do not wait) and
        file every whole message; False when nothing came in time."""
        chunk = receive(self._sock, deadline, what, "qmp")
        if chunk is None:
            return False
        data = self._buffer + chunk
        end = data.rfind(b"\n") + 1
        self._buffer = data[end:]
        for line in data[:end].splitlines():
            if line.strip():
                self._file(json.loads(line))
        return True

    def _file(self, message: dict[str, Any]) -> None:
        if "event" in message:
            stamp = message.get("timestamp", {})
            event = QmpEvent(
                name=str(message["event"]),
                data=dict(message.get("data", {})),
                received=time.monotonic(),
                qemu_time=float(stamp.get("seconds", 0)) + stamp.get("microseconds", 0) / 1e6,
            )
            log.debug("<-- event %s %s", event.name, event.data)
            self._events.append(event)
        elif "QMP" in message:
            self._greeting = message
        elif "return" in message or "error" in message:
            # requests carry no id (fewer bytes for QEMU to read one at a time); QEMU
            # answers in-band commands one after another, in order
            log.debug("<-- %s", message)
            self._replied += 1
            self._replies[self._replied] = message

    def _call(
        self, commands: Sequence[tuple[str, dict[str, Any] | None]], timeout: float
    ) -> list[Any]:
        """Send every command at once; their ``return`` values in order (QmpError for
        the first error reply, after all replies are in)."""
        return self.collect(self.send(commands), timeout=timeout)

    def send(self, commands: Sequence[tuple[str, dict[str, Any] | None]]) -> PendingQmp:
        """Write ``commands`` now and return at once; :meth:`collect` reads the replies
        later, so the caller can do other I/O (gdb) while QEMU answers."""
        if self._closed:
            raise QmpError("QMP connection is closed", command=commands[0][0])
        ids = []
        messages = []
        with self._lock:
            for command, arguments in commands:
                ids.append(self._next_id)
                message: dict[str, Any] = {"execute": command}
                if arguments:
                    message["arguments"] = arguments
                self._next_id += 1
                self.changes += not is_read_only(command, arguments)
                messages.append(message)
            self._send(messages)  # one write: QEMU reads them together
        return PendingQmp(tuple(c for c, _ in commands), tuple(ids))

    def collect(self, pending: PendingQmp, *, timeout: float = 5.0) -> list[Any]:
        """The ``return`` values of a :meth:`send`, in order; QmpError for the first
        error reply (after all replies are in); ``timeout`` counts from this call."""
        replies = self.replies(pending, timeout=timeout)
        for command, reply in zip(pending.commands, replies, strict=True):
            if "error" in reply:
                raise qmp_failure(command, reply)
        return [reply.get("return") for reply in replies]

    def replies(self, pending: PendingQmp, *, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The whole reply objects of a :meth:`send` (``return`` or ``error``), in order."""
        what = ", ".join(pending.commands)
        with self._lock:
            deadline = time.monotonic() + timeout
            while not all(i in self._replies for i in pending.ids):
                self._read(deadline, what)
            return [self._replies.pop(i) for i in pending.ids]

    def send_hmp(self, command_lines: Sequence[str]) -> PendingQmp:
        """:meth:`send` for HMP command lines (texts come back from :meth:`collect`)."""
        return self.send([("human-monitor-command", {"command-line": c}) for c in command_lines])

    # --- API ----------------------------------------------------------------------

    @property
    def qemu_version(self) -> str:
        """QEMU's version from the greeting, e.g. ``"7.2.22"``."""
        try:
            v = self._greeting["QMP"]["version"]["qemu"]
            return f"{v['major']}.{v['minor']}.{v['micro']}"
        except (KeyError, TypeError):
            return "unknown"

    def execute(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> Any:
        """Run a QMP command; QmpError (``error_class``, ``desc``) on an error reply."""
        return self._call([(command, arguments)], timeout)[0]

    def hmp(self, command_line: str, *, timeout: float = 5.0) -> str:
        """``human-monitor-command``: the text of e.g. ``info registers``."""
        return self.hmp_many([command_line], timeout=timeout)[0]

    def hmp_many(self, command_lines: Sequence[str], *, timeout: float = 5.0) -> list[str]:
        """Several HMP commands sent together; their texts in order."""
        return [str(t) for t in self.collect(self.send_hmp(command_lines), timeout=timeout)]

    def status(self) -> dict[str, Any]:
        """``query-status``: ``{"running": bool, "status": "paused"|"running"|...}``."""
        return dict(self.execute("query-status"))

    def events(self) -> list[QmpEvent]:
        """Events received so far, oldest first (what is waiting on the socket too)."""
        with self._lock:
            if not self._closed:
                try:
                    while self._read(None, "events"):
                        pass
                except QmpError as exc:  # QEMU gone: the events read so far stand
                    log.debug("events: %s", exc)
            return list(self._events)

    def wait_event(self, names: set[str], timeout: float) -> QmpEvent | None:
        """The first event named in ``names`` not returned by an earlier wait (even if it
        arrived before this call), or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for i in range(self._consumed, len(self._events)):
                    if self._events[i].name in names:
                        self._consumed = i + 1
                        return self._events[i]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return None
                try:
                    self._read(time.monotonic() + min(remaining, 0.05), "events")
                except TargetTimeout:
                    continue

    def quit(self) -> None:
        """Ask QEMU to quit (a connection already gone is fine)."""
        if self._closed:
            return
        try:
            self.execute("quit", timeout=1.0)
        except (QmpError, TargetTimeout) as exc:  # EOF as QEMU goes away is normal
            log.debug("quit: %s", exc)

    def close(self) -> None:
        """Disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._sock.close()

"""A synchronous QMP facade over qemu.qmp's asyncio ``QMPClient``.

The async client runs on a private event-loop thread; every public method is a blocking
call with a timeout. Events (SHUTDOWN, RESET, STOP, GUEST_PANICKED, ...) are recorded,
with the time they arrived, as they arrive. Several HMP commands can be issued together
(:meth:`QmpClient.hmp_many`): QMP matches replies by id, so they cost one round trip.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lhvdbg.errors import QmpError, TargetTimeout

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class QmpEvent:
    """One QMP event: its name and data, when it arrived (``time.monotonic()``), and
    QEMU's own timestamp (seconds since the epoch)."""

    name: str
    data: dict[str, Any]
    received: float
    qemu_time: float


class QmpClient:
    """QMP over a Unix socket, with a blocking API."""

    def __init__(
        self,
        socket_path: Path,
        *,
        timeout: float = 5.0,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        """Connect (retrying until the socket accepts, up to ``timeout`` seconds, while
        ``alive()`` stays true); TargetTimeout or QmpError on failure."""
        from qemu.qmp import QMPClient

        self.socket_path = socket_path
        self._events: list[QmpEvent] = []
        self._consumed = 0
        self._cond = threading.Condition()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="lhvdbg-qmp", daemon=True
        )
        self._thread.start()
        self._client: Any = QMPClient("lhvdbg")
        try:
            self._connect(timeout, alive)
        except BaseException:
            self.close()
            raise

    # --- plumbing -----------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float, what: str) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TargetTimeout(
                f"QMP: no reply to {what} within {timeout:g} s", command=what, backend="qmp"
            ) from None

    def _connect(self, timeout: float, alive: Callable[[], bool] | None) -> None:
        from qemu.qmp import EventListener

        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while True:
            if alive is not None and not alive():
                raise QmpError("QEMU exited before its QMP socket accepted a connection")
            if self.socket_path.exists():
                try:
                    self._run(self._client.connect(str(self.socket_path)), 2.0, "connect")
                    break
                except QmpError:
                    raise
                except Exception as exc:
                    last = exc
            if time.monotonic() >= deadline:
                raise TargetTimeout(
                    f"QMP socket {self.socket_path} did not accept a connection within "
                    f"{timeout:g} s" + (f" ({last})" if last else ""),
                    socket=str(self.socket_path),
                )
            time.sleep(0.001)
        listener = EventListener()
        self._client.register_listener(listener)
        asyncio.run_coroutine_threadsafe(self._pump_events(listener), self._loop)

    async def _pump_events(self, listener: Any) -> None:
        async for msg in listener:
            stamp = msg.get("timestamp", {})
            event = QmpEvent(
                name=str(msg.get("event")),
                data=dict(msg.get("data", {})),
                received=time.monotonic(),
                qemu_time=float(stamp.get("seconds", 0)) + stamp.get("microseconds", 0) / 1e6,
            )
            log.debug("<-- event %s %s", event.name, event.data)
            with self._cond:
                self._events.append(event)
                self._cond.notify_all()

    # --- API ----------------------------------------------------------------------

    @property
    def qemu_version(self) -> str:
        """QEMU's version from the greeting, e.g. ``"7.2.22"``."""
        greeting = self._client.greeting
        if greeting is None:
            return "unknown"
        v = greeting.QMP.version["qemu"]
        return f"{v['major']}.{v['minor']}.{v['micro']}"

    def execute(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> Any:
        """Run a QMP command; QmpError with ``command`` and ``reply`` on failure."""
        if self._closed:
            raise QmpError("QMP connection is closed", command=command)
        log.debug("--> %s %s", command, arguments or "")
        try:
            return self._run(self._client.execute(command, arguments), timeout, command)
        except (QmpError, TargetTimeout):
            raise
        except Exception as exc:
            raise qmp_failure(command, exc) from exc

    def hmp(self, command_line: str, *, timeout: float = 5.0) -> str:
        """``human-monitor-command``: the text of e.g. ``info registers``."""
        return str(
            self.execute("human-monitor-command", {"command-line": command_line}, timeout=timeout)
        )

    def hmp_many(self, command_lines: Sequence[str], *, timeout: float = 5.0) -> list[str]:
        """Several HMP commands issued concurrently; their texts in order."""
        if self._closed:
            raise QmpError("QMP connection is closed", command=command_lines[0])

        async def all_of() -> list[Any]:
            return list(
                await asyncio.gather(
                    *(
                        self._client.execute("human-monitor-command", {"command-line": c})
                        for c in command_lines
                    )
                )
            )

        try:
            return [str(t) for t in self._run(all_of(), timeout, ", ".join(command_lines))]
        except (QmpError, TargetTimeout):
            raise
        except Exception as exc:
            raise qmp_failure(", ".join(command_lines), exc) from exc

    def status(self) -> dict[str, Any]:
        """``query-status``: ``{"running": bool, "status": "paused"|"running"|...}``."""
        return dict(self.execute("query-status"))

    def events(self) -> list[QmpEvent]:
        """Events received so far, oldest first."""
        with self._cond:
            return list(self._events)

    def wait_event(self, names: set[str], timeout: float) -> QmpEvent | None:
        """The first event named in ``names`` not returned by an earlier wait (even if it
        arrived before this call), or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(self._consumed, len(self._events)):
                    if self._events[i].name in names:
                        self._consumed = i + 1
                        return self._events[i]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def quit(self) -> None:
        """Ask QEMU to quit (a connection already gone is fine)."""
        if self._closed:
            return
        try:
            self._run(self._client.execute("quit"), 1.0, "quit")
        except Exception as exc:  # EOF as QEMU goes away is the normal outcome
            log.debug("quit: %s", exc)

    def close(self) -> None:
        """Disconnect and stop the event-loop thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._client.disconnect(), 1.0, "disconnect")
        except Exception as exc:  # EOFError after quit is expected
            log.debug("disconnect: %s", exc)
        try:
            self._run(_cancel_other_tasks(), 1.0, "shutdown")
        except Exception as exc:
            log.debug("shutdown: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2)
        if not self._thread.is_alive():
            self._loop.close()


def qmp_failure(command: str, exc: BaseException) -> QmpError:
    """A QmpError for a failed command; a QMP error reply (qemu.qmp's ``ExecuteError``)
    keeps its structure: ``error_class`` and ``desc`` as QEMU sent them."""
    error = getattr(exc, "error", None)
    error_class = getattr(error, "class_", None)
    desc = getattr(error, "desc", None)
    if isinstance(error_class, str):
        return QmpError(
            f"QMP {command} failed: {error_class}: {desc}",
            error_class=error_class,
            desc=str(desc),
            command=command,
            reply=str(exc),
        )
    return QmpError(
        f"QMP {command} failed: {type(exc).__name__}: {exc}", command=command, reply=str(exc)
    )


async def _cancel_other_tasks() -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

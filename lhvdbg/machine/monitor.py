"""QEMU's human monitor (HMP) on a Unix socket of its own: ``info registers`` and the like
without QMP's JSON around them.

QEMU reads a monitor's input one byte per turn of its main loop (``monitor_can_read``
answers 1), so what a request costs QEMU is its length: ``info registers\\n`` is 15 bytes,
the same command as QMP's ``human-monitor-command`` 83. Measured on QEMU 7.2 at load
average 8, the three texts a capture needs came back in 2.1 ms instead of 8.9 ms and cost
QEMU 1.4 ms of CPU instead of 2.9. The text is QMP's to the byte (both run the command on
an HMP monitor that prints through ``monitor_puts``, ``\\r\\n`` line ends; compared in
``tests/integration/test_session_monitor.py``).

A readline monitor echoes what it reads (redrawing the line with escape sequences, never
a line end) and prints ``(qemu) `` when it is ready for the next line: a reply is what
follows the first ``\\r\\n`` after a prompt, up to the next prompt. Lines are answered in
order, so several can be written at once and the n-th reply is the n-th line's. Only
printable ASCII lines go this way (a tab or a control character means something to
readline), and not ``quit`` (QEMU closes the socket before any prompt);
:meth:`HmpClient.accepts` says which.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lhvdbg.errors import QmpError, TargetTimeout

log = logging.getLogger(__name__)

PROMPT = b"(qemu) "
READLINE_MAX = 4000  # below QEMU's READLINE_CMD_BUF_SIZE (4095): readline cuts a longer line


@dataclass(frozen=True)
class PendingHmp:
    """Lines written by :meth:`HmpClient.send` whose replies are not read yet."""

    lines: tuple[str, ...]
    first: int  # the number of the first line's reply


def receive(sock: socket.socket, deadline: float | None, what: str, backend: str) -> bytes | None:
    """What has arrived on a monitor socket of QEMU (``backend``: ``qmp`` or ``hmp``),
    waiting until ``deadline`` (None: not at all); None when nothing came and the deadline
    is not past. TargetTimeout when it is, QmpError when QEMU lost or closed the socket."""
    name = backend.upper()
    wait = 0.0 if deadline is None else max(0.0, deadline - time.monotonic())
    ready, _, _ = select.select([sock], [], [], wait)
    if not ready:
        if deadline is not None and time.monotonic() >= deadline:
            raise TargetTimeout(
                f"{name}: no reply to {what} in time", command=what, backend=backend
            )
        return None
    try:
        chunk = sock.recv(1 << 16)
    except OSError as exc:
        raise QmpError(f"{name} connection lost: {exc}", command=what) from exc
    if not chunk:
        raise QmpError(f"{name} connection closed by QEMU", command=what)
    return chunk


def connect_unix(
    path: Path, timeout: float, alive: Callable[[], bool] | None, what: str
) -> socket.socket:
    """A connected Unix stream socket, retrying every 1 ms while it does not accept
    (QEMU still starting) and ``alive()`` holds; TargetTimeout after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    while True:
        if alive is not None and not alive():
            raise QmpError(f"QEMU exited before its {what} socket accepted a connection")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except OSError as exc:  # not there yet, or not listening yet
            sock.close()
            last = exc
        if time.monotonic() >= deadline:
            raise TargetTimeout(
                f"{what} socket {path} did not accept a connection within {timeout:g} s"
                + (f" ({last})" if last else ""),
                socket=str(path),
                backend=what.lower(),
            )
        time.sleep(0.001)


def reply_text(segment: bytes) -> str:
    """The command's output in what a readline monitor printed between two prompts (the
    echoed line, up to its ``\\r\\n``, is dropped)."""
    _, _, text = segment.partition(b"\r\n")
    return text.decode("utf-8", "replace")


class HmpClient:
    """An HMP monitor (``-mon chardev=...,mode=readline``) over a Unix socket; one caller
    at a time (a lock keeps threads apart)."""

    def __init__(
        self, socket_path: Path, *, timeout: float = 5.0, alive: Callable[[], bool] | None = None
    ) -> None:
        """Connect and read the banner up to the first prompt; TargetTimeout or
        QmpError."""
        self.socket_path = socket_path
        self.changes = 0  # lines sent that may have changed the machine (not ``info``)
        self._lock = threading.RLock()
        self._buffer = b""
        self._replies: dict[int, str] = {}
        self._sent = 0
        self._prompts = 0  # prompts seen: the banner ends with the first
        self._closed = False
        self._sock = connect_unix(socket_path, timeout, alive, "HMP")
        try:
            self._wait(1, time.monotonic() + timeout, "the HMP banner")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def accepts(line: str) -> bool:
        """Whether ``line`` can be typed into readline as it is (printable ASCII, shorter
        than its 4 KiB line buffer) and gets a prompt after it (``quit`` does not: QEMU
        closes the socket first; QMP answers it)."""
        if len(line) >= READLINE_MAX or not (line.isascii() and line.isprintable()):
            return False
        return line.split()[:1] not in (["quit"], ["q"])

    def _read(self, deadline: float, what: str) -> None:
        chunk = receive(self._sock, deadline, what, "hmp")
        if chunk is None:  # select woke a hair before the deadline: it has passed
            raise TargetTimeout(f"HMP: no reply to {what} in time", command=what, backend="hmp")
        self._buffer += chunk
        while (end := self._buffer.find(PROMPT)) >= 0:
            segment, self._buffer = self._buffer[:end], self._buffer[end + len(PROMPT) :]
            self._prompts += 1
            if self._prompts >= 2:  # reply n ends with prompt n + 2
                self._replies[self._prompts - 2] = reply_text(segment)

    def _wait(self, prompts: int, deadline: float, what: str) -> None:
        while self._prompts < prompts:
            self._read(deadline, what)

    def send(self, lines: Sequence[str]) -> PendingHmp:
        """Write ``lines`` now (one write) and return at once; :meth:`collect` reads the
        replies later. ValueError for a line :meth:`accepts` refuses."""
        if self._closed:
            raise QmpError("HMP connection is closed", command=lines[0] if lines else "")
        for line in lines:
            if not self.accepts(line):
                raise ValueError(f"not a line for readline: {line!r}")
            self.changes += not (line == "info" or line.startswith("info "))
        with self._lock:
            first = self._sent
            self._sent += len(lines)
            log.debug("--> HMP %s", lines)
            try:
                self._sock.sendall("".join(f"{line}\n" for line in lines).encode())
            except OSError as exc:
                raise QmpError(f"HMP connection lost: {exc}", command=lines[0]) from exc
        return PendingHmp(tuple(lines), first)

    def collect(self, pending: PendingHmp, *, timeout: float = 5.0) -> list[str]:
        """The texts of a :meth:`send`, in order; ``timeout`` counts from this call."""
        what = ", ".join(pending.lines)
        last = pending.first + len(pending.lines) - 1
        with self._lock:
            self._wait(last + 2, time.monotonic() + timeout, what)
            return [self._replies.pop(pending.first + i) for i in range(len(pending.lines))]

    def run(self, line: str, *, timeout: float = 5.0) -> str:
        """The text of one command line."""
        return self.collect(self.send([line]), timeout=timeout)[0]

    def close(self) -> None:
        """Disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._sock.close()

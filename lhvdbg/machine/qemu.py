"""QEMU's process as a session owns it: started, watched, explained when it ends, killed.

:class:`QemuProcess` starts QEMU with :func:`~lhvdbg.machine.process.popen_owned` (own
process group, killed if lhvdbg dies) and turns how it ended into one-line errors:
``QEMU exited at start (status 1): <its stderr>``, ``QEMU was killed by SIGKILL``.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lhvdbg.errors import MachineError, QemuError, TargetTimeout
from lhvdbg.machine import process as processes
from lhvdbg.machine.process import exit_status, is_running, kill_process_group

if TYPE_CHECKING:
    from lhvdbg.machine.monitor import HmpClient
    from lhvdbg.machine.qmp import QmpClient


class QemuProcess:
    """One QEMU process, its command line and its stderr file."""

    def __init__(self, argv: list[str], stderr_path: Path) -> None:
        """Start QEMU (stdout and stderr to ``stderr_path``)."""
        self.argv = argv
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as err:
            # looked up at call time, so a test can stand in for it
            self.process = processes.popen_owned(
                argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err
            )

    @property
    def pid(self) -> int:
        """QEMU's process id."""
        return self.process.pid

    def running(self) -> bool:
        """Whether QEMU has not exited (without reaping it)."""
        return is_running(self.process)

    def status(self) -> int | None:
        """The exit status once exited (negative: killed by that signal), else None."""
        return exit_status(self.process)

    def stderr_text(self) -> str:
        """What QEMU wrote to stderr so far."""
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def how_it_ended(self) -> str:
        """``QEMU was killed by SIGKILL`` or ``QEMU has exited (status 0)``."""
        status = self.status()
        if status is not None and status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            return f"QEMU was killed by {name}"
        return f"QEMU has exited (status {status})"

    def gone_error(self, what: str) -> QemuError:
        """The error for an operation ``what`` that found QEMU gone."""
        return QemuError(f"{what}: {self.how_it_ended()}", qemu_command=self.argv)

    def start_error(self) -> QemuError:
        """The error for QEMU exiting while the session starts (its last stderr lines)."""
        text = self.stderr_text().strip()
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        why = "; ".join(lines[-3:]) if lines else "no message"
        return QemuError(
            f"QEMU exited at start (status {self.status()}): {why}",
            qemu_command=self.argv,
            stderr=text,
        )

    def wait_for_socket(self, path: Path, timeout: float) -> None:
        """Wait until QEMU has created the socket ``path``; the start error if QEMU
        exits first, TargetTimeout after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not path.exists():
            if not self.running():
                raise self.start_error()
            if time.monotonic() > deadline:
                raise TargetTimeout(
                    f"QEMU's socket {path.name} did not appear within {timeout:g} s",
                    socket=str(path),
                    qemu_command=self.argv,
                )
            time.sleep(0.001)

    def connect_qmp(self, socket_path: Path, timeout: float) -> QmpClient:
        """A QMP client connected to this QEMU's monitor; QEMU's start error (with its
        stderr) when QEMU exits before it accepts."""
        from lhvdbg.machine.qmp import QmpClient

        try:
            return QmpClient(socket_path, timeout=timeout, alive=self.running)
        except MachineError as exc:
            if not self.running():
                raise self.start_error() from exc
            raise

    def connect_hmp(self, socket_path: Path, timeout: float) -> HmpClient:
        """An HMP client on this QEMU's readline monitor (errors as :meth:`connect_qmp`)."""
        from lhvdbg.machine.monitor import HmpClient

        try:
            return HmpClient(socket_path, timeout=timeout, alive=self.running)
        except MachineError as exc:
            if not self.running():
                raise self.start_error() from exc
            raise

    def wait_gone(self, grace: float) -> bool:
        """Whether QEMU has exited within ``grace`` seconds."""
        deadline = time.monotonic() + grace
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self.running()

    def kill(self, grace: float, *, reap: bool = True) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds, to QEMU's process group; reaped
        unless ``reap`` is false."""
        kill_process_group(self.process, grace=grace, reap=reap)

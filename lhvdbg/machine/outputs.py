"""What a session's guest left in files: the serial port, the ``-d int`` log, QMP events.

:class:`SessionOutputs` is a base class of :class:`~lhvdbg.machine.session.Session`; it
reads files in the session's private folder and never touches gdb or the run state.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lhvdbg.machine.launch import LaunchConfig
    from lhvdbg.machine.qmp import QmpClient, QmpEvent
    from lhvdbg.machine.workdir import SessionPaths


class SessionOutputs:
    """Serial output, the interrupt log and QMP events of a session."""

    config: LaunchConfig
    accel: str
    paths: SessionPaths
    _serial_offset: int

    @property
    def alive(self) -> bool:
        raise NotImplementedError

    @property
    def qmp(self) -> QmpClient:
        raise NotImplementedError

    def serial_text(self) -> str:
        """Everything the guest wrote to COM1 so far."""
        try:
            return self.paths.serial_log.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def serial_new(self) -> str:
        """Serial output written since the previous call (for streaming)."""
        try:
            with open(self.paths.serial_log, "rb") as f:
                f.seek(self._serial_offset)
                data = f.read()
        except FileNotFoundError:
            return ""
        self._serial_offset += len(data)
        return data.decode("utf-8", "replace")

    def wait_for_serial(self, text: str, *, timeout: float) -> bool:
        """Wait until ``text`` appears in the serial output; False on timeout or if QEMU
        exits first. Does not change run state (the guest must be running)."""
        deadline = time.monotonic() + timeout
        while text not in self.serial_text():
            if time.monotonic() >= deadline or not self.alive:
                return text in self.serial_text()
            time.sleep(0.005)
        return True

    @property
    def int_log_path(self) -> Path | None:
        """Path of the ``-d int,cpu_reset`` log (None under KVM / without int_log)."""
        if self.accel != "tcg" or not self.config.int_log:
            return None
        return self.paths.int_log

    def int_log_text(self) -> str:
        """The ``-d int,cpu_reset`` log so far; ``""`` under KVM or without int_log."""
        path = self.int_log_path
        try:
            return path.read_text(errors="replace") if path is not None else ""
        except FileNotFoundError:
            return ""

    @property
    def serial_path(self) -> Path:
        """Path of the file the serial port is written to."""
        return self.paths.serial_log

    def events(self) -> list[QmpEvent]:
        """QMP events received so far (SHUTDOWN, RESET, STOP, GUEST_PANICKED...)."""
        return self.qmp.events()

    def guest_powered_off(self) -> bool:
        """Whether QEMU is held in ``shutdown`` because the guest asked to power off, not
        to reset: the last QMP ``SHUTDOWN`` event says ``guest-shutdown``. QEMU ≥ 9.1 turns
        an isa-debug-exit write into such a shutdown (7.2 exits at once), which ``-action
        shutdown=pause`` holds; a triple fault is ``guest-reset`` (``reboot=shutdown``)."""
        shutdowns = [e for e in self.events() if e.name == "SHUTDOWN"]
        return bool(shutdowns) and shutdowns[-1].data.get("reason") == "guest-shutdown"

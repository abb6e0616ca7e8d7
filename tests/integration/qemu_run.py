"""Boot a firmware image in real QEMU (TCG) for the firmware boot tests.

One function, :func:`run_qemu`: serial output to a file, the ``-d int,cpu_reset`` log to
a file, QEMU's isa-debug-exit device at the firmware's ``LHV_PORT_DEBUG_EXIT`` (its
DWARF), no display, ``-no-reboot`` (a triple fault ends QEMU with status 0), a hard
timeout, and QEMU always killed and reaped. Everything lives in a private temporary
directory; nothing listens on a socket.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lhvdbg.state.firmware_facts import firmware_facts
from tests.firmware_facts import facts

QEMU_BINARY = {"amd64": "qemu-system-x86_64", "i386": "qemu-system-i386"}
POLL_SECONDS = 0.01

# The lines of a `-d int,cpu_reset` log that tell what was delivered, in order.
EVENT_RE = re.compile(
    r"^(Servicing hardware INT=0x[0-9a-f]+|check_exception old: 0x[0-9a-f]+ new 0x[0-9a-f]+"
    r"|Triple fault|\s*\d+: v=[0-9a-f]{2} .*)$"
)


@dataclass(frozen=True)
class QemuResult:
    """How one QEMU run ended and what it left behind."""

    argv: tuple[str, ...]
    returncode: int | None  # None: QEMU was killed (timeout or `until` seen)
    timed_out: bool
    serial: str
    log: str
    elapsed: float

    def events(self) -> list[str]:
        """The interrupt/exception lines of the log, stripped, in order."""
        return [line.strip() for line in self.log.splitlines() if EVENT_RE.match(line)]


def run_qemu(
    arch: str,
    *,
    kernel: Path | None = None,
    cdrom: Path | None = None,
    append: str | None = None,
    debug_exit: bool = True,
    timeout: float = 10.0,
    until: str | None = None,
) -> QemuResult:
    """Boot ``kernel`` (multiboot, ``-kernel``) or ``cdrom`` and wait for QEMU to end.

    Stops early (killing QEMU) once the serial output contains ``until``; kills QEMU at
    ``timeout`` seconds. ``returncode`` is QEMU's exit status when it ended by itself.
    """
    if (kernel is None) == (cdrom is None):
        raise ValueError("give exactly one of kernel and cdrom")
    with tempfile.TemporaryDirectory(prefix="lhv-qemu-") as tmp:
        serial_path = Path(tmp) / "serial.txt"
        log_path = Path(tmp) / "int.log"
        argv = [
            QEMU_BINARY[arch],
            "-accel",
            "tcg",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            f"file:{serial_path}",
            "-monitor",
            "none",
            "-d",
            "int,cpu_reset",
            "-D",
            str(log_path),
        ]
        if debug_exit:
            port = facts(arch).exit_port  # the port the firmware writes its exit code to
            argv += ["-device", f"isa-debug-exit,iobase={port:#x},iosize=0x04"]
        if kernel is not None:
            argv += ["-kernel", str(kernel)]
        else:
            argv += ["-cdrom", str(cdrom)]
        if append is not None:
            argv += ["-append", append]

        start = time.monotonic()
        with (Path(tmp) / "stderr.txt").open("wb") as stderr:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
            try:
                returncode = _wait(proc, start + timeout, serial_path, until)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        elapsed = time.monotonic() - start
        return QemuResult(
            argv=tuple(argv),
            returncode=returncode,
            timed_out=returncode is None and time.monotonic() - start >= timeout,
            serial=_read(serial_path),
            log=_read(log_path),
            elapsed=elapsed,
        )


def _wait(
    proc: subprocess.Popen[bytes], deadline: float, serial: Path, until: str | None
) -> int | None:
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            return code
        if until is not None and until in _read(serial):
            return None
        time.sleep(POLL_SECONDS)
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def exit_status(elf: Path, name: str) -> int:
    """QEMU's exit status for the firmware's ``enum lhv_exit_code`` member ``name``
    (``LHV_EXIT_OK``...), read from the ELF's DWARF: ``(value << 1) | 1``."""
    return firmware_facts(elf).exit_status(name.removeprefix("LHV_EXIT_"))

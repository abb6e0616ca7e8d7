"""The live session: one QEMU (started with ``-S``) and one gdb, owned together.

A :class:`Session` starts ``qemu-system-x86_64`` (or ``-i386``) and gdb side by side,
connects gdb to the gdbstub and a QMP client to the monitor (both on Unix sockets in a
private 0700 temporary directory), and guarantees that neither process outlives it:
process groups, ``PR_SET_PDEATHSIG`` and a context manager.

Only gdb controls run state (continue, step, interrupt, breakpoints); QMP is used for what
the gdbstub cannot show (``info registers`` with the hidden segment parts, ``info pic``,
``info lapic``) and for events (SHUTDOWN, RESET, STOP, GUEST_PANICKED).

Usage::

    with Session(LaunchConfig.for_variant("good")) as s:
        s.break_at("kernel_main")
        event = s.cont(timeout=5)
        snap = s.target.capture()
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import lhvdbg
from lhvdbg.x86.cpustate import Arch

if TYPE_CHECKING:
    from lhvdbg.machine.gdbmi import GdbMi
    from lhvdbg.machine.live import LiveTarget
    from lhvdbg.machine.qmp import QmpClient, QmpEvent
    from lhvdbg.state.elf import KernelInfo
    from lhvdbg.state.snapshot import Snapshot

Accel = Literal["tcg", "kvm", "auto"]
StopReason = Literal[
    "breakpoint",  # a breakpoint or watchpoint set by break_at (or internally) was hit
    "vector",  # run_to_vector reached the handler IDT[v] gives
    "step",  # stepi finished
    "signal",  # gdb reported a signal (SIGTRAP with no breakpoint, SIGSEGV, ...)
    "interrupted",  # interrupt() stopped a running guest
    "timeout",  # cont/run_to_vector ran out of time; the guest was interrupted
    "exited",  # QEMU exited (isa-debug-exit: exit_code is the guest's value)
    "shutdown",  # triple fault / guest shutdown: QEMU paused for post-mortem
]

DEFAULT_VARIANT = "pic-unremapped"
DEFAULT_ARCH: Arch = "amd64"
FIRMWARE_DIR_ENV = "LHVDBG_FIRMWARE_DIR"


def firmware_dir() -> Path:
    """The firmware source directory: ``$LHVDBG_FIRMWARE_DIR`` or ``<repo>/firmware``."""
    env = os.environ.get(FIRMWARE_DIR_ENV)
    if env:
        return Path(env)
    return Path(lhvdbg.__file__).resolve().parents[1] / "firmware"


def firmware_path(arch: Arch, variant: str) -> Path:
    """Where the built firmware ELF for ``arch``/``variant`` lives (it may not exist)."""
    return firmware_dir() / "build" / arch / f"lhv-{variant}.elf"


def kvm_usable() -> bool:
    """Whether ``/dev/kvm`` can be opened read-write by this process."""
    raise NotImplementedError


@dataclass(frozen=True)
class LaunchConfig:
    """How to start the machine. Exactly one of ``kernel``/``cdrom``/``variant`` is used.

    ``kernel`` is any multiboot kernel (ELF32, or ELF64 with the a.out kludge); ``cdrom``
    an ISO image (e.g. GRUB); ``variant`` a built firmware variant of ``arch``
    (``firmware/build/<arch>/lhv-<variant>.elf``). ``accel`` is ``tcg``, ``kvm`` or ``auto``
    (KVM when ``/dev/kvm`` is usable). ``extra_args`` are appended to QEMU's command line.
    ``debug_exit`` adds ``isa-debug-exit`` at port 0xf4; ``int_log`` adds
    ``-d int,cpu_reset`` under TCG.
    """

    kernel: Path | None = None
    cdrom: Path | None = None
    arch: Arch = DEFAULT_ARCH
    variant: str | None = None
    accel: Accel = "tcg"
    memory_mb: int = 128
    append: str = ""
    extra_args: tuple[str, ...] = ()
    debug_exit: bool = True
    int_log: bool = True

    @classmethod
    def for_variant(
        cls, variant: str = DEFAULT_VARIANT, arch: Arch = DEFAULT_ARCH, **kwargs: object
    ) -> LaunchConfig:
        """A config for a built firmware variant (other fields as keyword arguments)."""
        raise NotImplementedError

    def kernel_path(self) -> Path | None:
        """The kernel ELF that will be booted (and whose symbols gdb loads), if any.

        For ``variant`` this is the firmware path; raises KernelError with the hint
        ``make -C firmware`` when it was not built. ``None`` for a plain ``cdrom``.
        """
        raise NotImplementedError

    def qemu_binary(self) -> str:
        """``qemu-system-x86_64`` or ``qemu-system-i386``."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short human description: ``amd64 lhv-good.elf (tcg)``."""
        raise NotImplementedError


@dataclass(frozen=True)
class StopEvent:
    """Why and where the guest stopped (or ended).

    ``address`` is the instruction pointer when known; ``breakpoint`` the gdb breakpoint
    number that was hit; ``exit_code`` the process exit code of QEMU for ``exited``
    (isa-debug-exit gives ``(value << 1) | 1``; see ``guest_exit_value``); ``detail`` a
    short human line (e.g. ``"breakpoint 2 at kernel_main (0x100120)"``); ``vector`` the
    vector for ``vector`` stops; ``signal`` the gdb signal name for ``signal`` stops.
    """

    reason: StopReason
    address: int | None = None
    breakpoint: int | None = None
    exit_code: int | None = None
    detail: str = ""
    vector: int | None = None
    signal: str | None = None
    elapsed: float = 0.0

    @property
    def guest_exit_value(self) -> int | None:
        """The value the guest wrote to isa-debug-exit (``exit_code >> 1``), if it did."""
        if self.reason != "exited" or self.exit_code is None or not self.exit_code & 1:
            return None
        return self.exit_code >> 1

    @property
    def stopped(self) -> bool:
        """Whether the CPU is stopped and can be inspected (not exited)."""
        return self.reason != "exited"


@dataclass
class SessionPaths:
    """Files of one session in its private temporary directory."""

    directory: Path
    qmp_socket: Path
    gdb_socket: Path
    serial_log: Path
    int_log: Path
    qemu_stderr: Path
    extra: dict[str, Path] = field(default_factory=dict)


class Session:
    """QEMU (``-S``) and gdb/MI started side by side and connected; a context manager.

    Attributes available after construction: ``config``, ``accel`` (the accelerator
    actually used, ``tcg`` or ``kvm``), ``qemu_version`` (e.g. ``"7.2.22"``), ``kernel``
    (the kernel path or None), ``kernel_info`` (pyelftools facts, or None), ``arch``,
    ``paths``, ``gdb`` (:class:`GdbMi`), ``qmp`` (:class:`QmpClient`), ``target``
    (:class:`LiveTarget`), ``qemu_argv`` (the command line), ``last_stop``.

    Errors: ToolMissingError (no QEMU/gdb), KernelError (not a bootable kernel, or the
    firmware was not built), QemuError (QEMU exited at start; message has its stderr),
    TargetTimeout (a socket did not appear), GdbError, QmpError.
    """

    config: LaunchConfig
    accel: str
    qemu_version: str
    kernel: Path | None
    kernel_info: KernelInfo | None
    arch: Arch
    paths: SessionPaths
    gdb: GdbMi
    qmp: QmpClient
    target: LiveTarget
    qemu_argv: list[str]
    last_stop: StopEvent | None

    def __init__(self, config: LaunchConfig, *, start_timeout: float = 10.0) -> None:
        """Check the kernel, start QEMU (paused) and gdb, connect QMP and the gdbstub."""
        raise NotImplementedError

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop gdb and QEMU (quit, then SIGTERM, then SIGKILL to their process groups)
        and remove the temporary directory. Idempotent."""
        raise NotImplementedError

    # --- run control (gdb only) -----------------------------------------------------

    def break_at(
        self,
        location: str | int,
        *,
        hardware: bool | None = None,
        temporary: bool = False,
    ) -> int:
        """Set a breakpoint at a symbol (``"kernel_main"``, ``"kernel_main+4"``) or an
        address; return its gdb number. ``hardware=None`` chooses: software under TCG,
        hardware under KVM (software breakpoints crash the guest there; logged)."""
        raise NotImplementedError

    def watch(self, address: int, size: int, *, access: str = "write") -> int:
        """Set a hardware watchpoint (``write``/``read``/``access``); return its number.
        TCG only in practice (kvm-pvm never fires them)."""
        raise NotImplementedError

    def delete(self, number: int | None = None) -> None:
        """Delete breakpoint ``number``, or every breakpoint when None."""
        raise NotImplementedError

    def breakpoints(self) -> list[dict[str, object]]:
        """The breakpoint table: dicts with ``number``, ``type``, ``address`` (int),
        ``location`` (what was asked), ``hardware`` (bool), ``hits`` (int)."""
        raise NotImplementedError

    def cont(self, *, timeout: float) -> StopEvent:
        """Continue until a stop, QEMU exiting, a triple fault, or ``timeout`` seconds
        (then interrupt and return ``reason="timeout"``)."""
        raise NotImplementedError

    def stepi(self, count: int = 1) -> StopEvent:
        """Execute ``count`` instructions."""
        raise NotImplementedError

    def interrupt(self) -> StopEvent:
        """Stop a running guest (no-op event when already stopped)."""
        raise NotImplementedError

    def run_to_vector(self, vector: int, *, count: int = 1, timeout: float) -> StopEvent:
        """Run until the CPU has entered the handler that IDT[``vector``] points to
        ``count`` times, for any multiboot kernel (stripped too). Arms itself once the
        kernel runs ``lidt`` (found by scanning the executable segments), re-arms when
        the gate changes (write watchpoint, TCG). Returns ``reason="vector"`` at the
        handler's first instruction, or ``timeout``/``exited``/``shutdown``."""
        raise NotImplementedError

    def timer_vector(self) -> int | None:
        """The vector the timer interrupts arrive on now: the master PIC's ``irq_base``
        (IRQ0) when the PIC is initialised, else the LAPIC LVT timer vector when the
        LAPIC timer is unmasked; None when neither is known."""
        raise NotImplementedError

    # --- state (gdb for memory and GPRs, QMP for system registers) ------------------

    def read_memory(self, address: int, size: int) -> bytes:
        """Guest linear memory through gdb (``-data-read-memory-bytes``)."""
        raise NotImplementedError

    def write_memory(self, address: int, data: bytes) -> None:
        """Write guest linear memory through gdb."""
        raise NotImplementedError

    def read_registers(self, names: list[str] | None = None) -> dict[str, int]:
        """gdb register values by lower-case name (all gdbstub registers when None)."""
        raise NotImplementedError

    def write_register(self, name: str, value: int) -> None:
        """Set a gdbstub register (``rax``, ``rip``, ``eflags``, ...)."""
        raise NotImplementedError

    def read_string(self, address: int, max_length: int = 256) -> str:
        """A NUL-terminated string at ``address`` (latin-1, at most ``max_length``)."""
        raise NotImplementedError

    def backtrace(self) -> list[dict[str, object]]:
        """gdb's frames (``level``, ``address``, ``function``) where it can unwind;
        at least the current frame."""
        raise NotImplementedError

    def hmp(self, command: str) -> str:
        """The text of an HMP command (``info registers``, ``info pic``...) via QMP."""
        raise NotImplementedError

    def capture(self, *, note: str = "") -> Snapshot:
        """Shortcut for ``self.target.capture(note=note)``."""
        raise NotImplementedError

    # --- outputs -------------------------------------------------------------------

    def serial_text(self) -> str:
        """Everything the guest wrote to COM1 so far."""
        raise NotImplementedError

    def wait_for_serial(self, text: str, *, timeout: float) -> bool:
        """Wait until ``text`` appears in the serial output; False on timeout or if QEMU
        exits first. Does not change run state (the guest must be running)."""
        raise NotImplementedError

    def int_log_text(self) -> str:
        """The ``-d int,cpu_reset`` log so far; ``""`` under KVM or without int_log."""
        raise NotImplementedError

    @property
    def int_log_path(self) -> Path | None:
        """Path of the ``-d`` log (None under KVM / without int_log)."""
        raise NotImplementedError

    @property
    def serial_path(self) -> Path:
        """Path of the file the serial port is written to."""
        raise NotImplementedError

    def events(self) -> list[QmpEvent]:
        """QMP events received so far (SHUTDOWN, RESET, STOP, GUEST_PANICKED...)."""
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        """Whether QEMU is still running (not exited)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Restart QEMU and gdb with the same config (breakpoints are not kept)."""
        raise NotImplementedError

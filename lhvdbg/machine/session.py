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

import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import lhvdbg
from lhvdbg.errors import (
    GdbError,
    KernelError,
    MachineError,
    QemuError,
    QmpError,
    TargetTimeout,
    UsageError,
)
from lhvdbg.x86.cpustate import Arch

if TYPE_CHECKING:
    from lhvdbg.machine.gdbmi import GdbMi, MiRecord
    from lhvdbg.machine.live import LiveTarget
    from lhvdbg.machine.qmp import QmpClient, QmpEvent
    from lhvdbg.state.elf import KernelInfo
    from lhvdbg.state.snapshot import Snapshot

log = logging.getLogger(__name__)

Accel = Literal["tcg", "kvm", "auto"]
StopReason = Literal[
    "breakpoint",  # a breakpoint or watchpoint was hit
    "vector",  # run_to_vector reached the handler IDT[v] gives
    "step",  # stepi finished
    "signal",  # gdb reported a signal it did not cause on our request
    "interrupted",  # interrupt() stopped a running guest
    "timeout",  # cont/run_to_vector ran out of time; the guest was interrupted
    "exited",  # QEMU exited (isa-debug-exit: see StopEvent.guest_exit_value)
    "shutdown",  # triple fault / guest shutdown: QEMU paused for post-mortem
]

DEFAULT_VARIANT = "pic-unremapped"
DEFAULT_ARCH: Arch = "amd64"
FIRMWARE_DIR_ENV = "LHVDBG_FIRMWARE_DIR"
DEBUG_EXIT_PORT = 0xF4
KVM_HW_BREAKPOINTS = 4  # x86 DR0-DR3


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
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


@dataclass(frozen=True)
class LaunchConfig:
    """How to start the machine.

    ``kernel`` is any multiboot kernel (ELF32, or ELF64 with the a.out kludge); ``cdrom``
    an ISO image (e.g. GRUB); ``variant`` a built firmware variant of ``arch``
    (``firmware/build/<arch>/lhv-<variant>.elf``). With none of the three, the firmware
    variant ``pic-unremapped`` is used. ``symbols`` is the ELF gdb loads symbols from
    (default: the kernel; useful with ``cdrom``). ``accel`` is ``tcg``, ``kvm`` or ``auto``
    (KVM when ``/dev/kvm`` is usable). ``qemu_system`` is ``x86_64`` (default, for both
    arches) or ``i386``. ``extra_args`` are appended to QEMU's command line.
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
    symbols: Path | None = None
    qemu_system: Literal["x86_64", "i386"] = "x86_64"

    def __post_init__(self) -> None:
        given = [n for n in ("kernel", "cdrom", "variant") if getattr(self, n) is not None]
        if len(given) > 1:
            raise UsageError(f"give only one of --kernel, --cdrom, --variant (got {given})")
        if self.accel not in ("tcg", "kvm", "auto"):
            raise UsageError(f"unknown accelerator {self.accel!r} (tcg, kvm or auto)")
        if self.arch not in ("amd64", "i386"):
            raise UsageError(f"unknown arch {self.arch!r} (amd64 or i386)")
        if self.memory_mb < 2:
            raise UsageError(f"--memory {self.memory_mb}: too small (MiB)")

    @classmethod
    def for_variant(
        cls, variant: str = DEFAULT_VARIANT, arch: Arch = DEFAULT_ARCH, **kwargs: Any
    ) -> LaunchConfig:
        """A config for a built firmware variant (other fields as keyword arguments)."""
        return cls(variant=variant, arch=arch, **kwargs)

    @property
    def effective_variant(self) -> str | None:
        """The firmware variant booted (the default one when nothing was given)."""
        if self.variant is not None:
            return self.variant
        if self.kernel is None and self.cdrom is None:
            return DEFAULT_VARIANT
        return None

    def kernel_path(self) -> Path | None:
        """The kernel ELF booted with ``-kernel``, if any.

        For a firmware variant this is its build path; KernelError with the hint
        ``make -C firmware`` when it was not built. ``None`` for a CD-ROM.
        """
        if self.kernel is not None:
            return self.kernel
        variant = self.effective_variant
        if variant is None:
            return None
        path = firmware_path(self.arch, variant)
        if not path.is_file():
            raise KernelError(
                f"firmware {self.arch}/lhv-{variant}.elf is not built ({path}): "
                f"run make -C {firmware_dir()}",
                path=str(path),
            )
        return path

    def symbol_path(self) -> Path | None:
        """The ELF gdb and LiveTarget read symbols from, if any."""
        return self.symbols or self.kernel_path()

    def qemu_binary(self) -> str:
        """``qemu-system-x86_64`` or ``qemu-system-i386``."""
        return f"qemu-system-{self.qemu_system}"

    def resolved_accel(self) -> Literal["tcg", "kvm"]:
        """``auto`` resolved: kvm when ``/dev/kvm`` is usable, else tcg."""
        if self.accel == "auto":
            return "kvm" if kvm_usable() else "tcg"
        return self.accel

    def describe(self) -> str:
        """A short human description: ``amd64 lhv-good.elf``."""
        if self.cdrom is not None:
            return f"cdrom {self.cdrom.name}"
        if self.kernel is not None:
            return f"kernel {self.kernel.name}"
        return f"{self.arch} lhv-{self.effective_variant}.elf"


@dataclass(frozen=True)
class StopEvent:
    """Why and where the guest stopped (or ended).

    ``address`` is the instruction pointer when known; ``breakpoint`` the gdb breakpoint
    number that was hit; ``exit_code`` QEMU's process exit code for ``exited``
    (isa-debug-exit makes it ``(value << 1) | 1``; see ``guest_exit_value``); ``detail`` a
    short human line; ``vector`` the vector of a ``vector`` stop; ``signal`` the gdb signal
    name of a ``signal``/``interrupted`` stop; ``elapsed`` seconds the guest ran.
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (addresses as hex strings)."""
        return {
            "reason": self.reason,
            "address": None if self.address is None else f"{self.address:#x}",
            "breakpoint": self.breakpoint,
            "exit_code": self.exit_code,
            "guest_exit_value": self.guest_exit_value,
            "vector": self.vector,
            "signal": self.signal,
            "detail": self.detail,
            "elapsed": round(self.elapsed, 6),
        }


@dataclass
class SessionPaths:
    """Files of one session in its private temporary directory."""

    directory: Path
    qmp_socket: Path
    gdb_socket: Path
    serial_log: Path
    int_log: Path
    qemu_stderr: Path
    gdb_stderr: Path

    @classmethod
    def create(cls) -> SessionPaths:
        """A fresh 0700 directory (``mkdtemp`` creates it so) and the paths in it."""
        d = Path(tempfile.mkdtemp(prefix="lhvdbg-"))
        os.chmod(d, 0o700)
        return cls.inside(d)

    @classmethod
    def inside(cls, d: Path) -> SessionPaths:
        """The session's file names inside directory ``d``."""
        return cls(
            directory=d,
            qmp_socket=d / "qmp.sock",
            gdb_socket=d / "gdb.sock",
            serial_log=d / "serial.log",
            int_log=d / "int.log",
            qemu_stderr=d / "qemu.stderr",
            gdb_stderr=d / "gdb.stderr",
        )


@dataclass
class Breakpoint:
    """A breakpoint or watchpoint this session set."""

    number: int
    address: int
    location: str
    hardware: bool
    kind: str = "breakpoint"  # "breakpoint" or "watchpoint"
    hits: int = 0
    internal: bool = False

    def to_dict(self) -> dict[str, object]:
        """The form :meth:`Session.breakpoints` returns."""
        return {
            "number": self.number,
            "type": self.kind,
            "address": self.address,
            "location": self.location,
            "hardware": self.hardware,
            "hits": self.hits,
        }


_LOCATION_RE = re.compile(r"^\s*([A-Za-z_.$][\w.$@]*)?\s*(?:([+-])\s*(0x[0-9a-fA-F]+|\d+))?\s*$")


def build_qemu_argv(
    config: LaunchConfig,
    paths: SessionPaths,
    *,
    accel: str,
    kernel: Path | None,
) -> list[str]:
    """The QEMU command line for ``config`` (pure; the binary path is resolved later)."""
    argv = [
        config.qemu_binary(),
        "-S",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-parallel",
        "none",
        "-net",
        "none",
        "-m",
        str(config.memory_mb),
        "-accel",
        accel,
        "-chardev",
        f"file,id=ser0,path={paths.serial_log}",
        "-serial",
        "chardev:ser0",
        "-chardev",
        f"socket,id=gdb0,path={paths.gdb_socket},server=on,wait=off",
        "-gdb",
        "chardev:gdb0",
        "-chardev",
        f"socket,id=qmp0,path={paths.qmp_socket},server=on,wait=off",
        "-mon",
        "chardev=qmp0,mode=control",
        "-action",
        "reboot=shutdown,shutdown=pause",
    ]
    if accel == "tcg" and config.int_log:
        argv += ["-d", "int,cpu_reset", "-D", str(paths.int_log)]
    if config.debug_exit:
        argv += ["-device", f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"]
    if kernel is not None:
        argv += ["-kernel", str(kernel)]
        if config.append:
            argv += ["-append", config.append]
    if config.cdrom is not None:
        argv += ["-cdrom", str(config.cdrom), "-boot", "d"]
    argv += list(config.extra_args)
    return argv


F = TypeVar("F", bound=Callable[..., Any])


def _machine_call(method: F) -> F:
    """Turn a gdb/QMP failure caused by QEMU dying into the QemuError that explains it."""

    @functools.wraps(method)
    def wrapper(self: Session, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (GdbError, QmpError) as exc:
            if not self._closed and self._qemu is not None:
                deadline = time.monotonic() + 0.3
                while self._qemu_running() and time.monotonic() < deadline:
                    time.sleep(0.005)
                if not self._qemu_running():
                    raise self._qemu_gone_error(method.__name__.replace("_", " ")) from exc
            raise

    return wrapper  # type: ignore[return-value]


class Session:
    """QEMU (``-S``) and gdb/MI started side by side and connected; a context manager.

    Attributes: ``config``, ``accel`` (the accelerator used: ``tcg`` or ``kvm``),
    ``qemu_version`` (e.g. ``"7.2.22"``), ``kernel`` (the kernel path or None),
    ``kernel_info`` (pyelftools facts of the symbol ELF, or None), ``arch``, ``paths``,
    ``gdb`` (:class:`GdbMi`), ``qmp`` (:class:`QmpClient`), ``target``
    (:class:`LiveTarget`), ``qemu_argv``, ``last_stop``, ``notes`` (choices made on the
    user's behalf, e.g. hardware breakpoints under KVM, to show them).

    Errors: ToolMissingError (no QEMU/gdb), KernelError (not a bootable kernel, or the
    firmware not built), QemuError (QEMU exited at start, with its stderr; or died),
    TargetTimeout (a socket did not appear), GdbError, QmpError.
    """

    config: LaunchConfig
    accel: str
    qemu_version: str
    kernel: Path | None
    kernel_info: KernelInfo | None
    arch: Arch
    paths: SessionPaths
    target: LiveTarget
    qemu_argv: list[str]
    last_stop: StopEvent | None

    def __init__(self, config: LaunchConfig, *, start_timeout: float = 10.0) -> None:
        """Check the kernel, start QEMU (paused) and gdb, connect QMP and the gdbstub."""
        self.config = config
        self.start_timeout = start_timeout
        self.notes: list[str] = []
        self._closed = True
        self._qemu: subprocess.Popen[bytes] | None = None
        self._gdb: GdbMi | None = None
        self._qmp: QmpClient | None = None
        self._breakpoints: dict[int, Breakpoint] = {}
        self._register_numbers: dict[str, int] | None = None
        self._serial_offset = 0
        self._old_sigterm: Any = None
        self.last_stop = None
        self._start()

    # --- life cycle -------------------------------------------------------------------

    def _start(self) -> None:
        """Start gdb, then QEMU, at once; while gdb initialises (~55 ms, the longest
        step) read the kernel's facts, import and connect QMP; then collect gdb's set-up
        replies, whose last command already connected it to the gdbstub."""
        from lhvdbg.machine.gdbmi import GdbMi
        from lhvdbg.machine.process import popen_owned, which
        from lhvdbg.state.elf import elf_class_quick, kernel_class_quick

        config = self.config
        kernel = config.kernel_path()
        if config.cdrom is not None and not config.cdrom.is_file():
            raise KernelError(f"cdrom image not found: {config.cdrom}", path=str(config.cdrom))
        self.kernel = kernel
        self.kernel_info = None
        # bootability from the first 8 KiB (KernelError here, before anything starts)
        elf_class = kernel_class_quick(kernel) if kernel is not None else None
        symbol_path = config.symbols or kernel
        if symbol_path is not None and symbol_path != kernel:
            elf_class = elf_class_quick(symbol_path)
        if elf_class is not None and (config.kernel is not None or config.symbols):
            self.arch = "amd64" if elf_class == 64 else "i386"
        else:
            self.arch = config.arch
        self.accel = config.resolved_accel()
        if config.accel == "auto":
            self.notes.append(f"--accel auto chose {self.accel}")
        qemu_exe = which(config.qemu_binary(), "qemu-system-x86 (Debian package)")
        which("gdb", "gdb (Debian package gdb)")

        self.paths = SessionPaths.create()
        self._closed = False
        try:
            self.qemu_argv = [
                qemu_exe,
                *build_qemu_argv(config, self.paths, accel=self.accel, kernel=kernel)[1:],
            ]
            self._install_sigterm()
            # gdb first: it takes longest to start. Its set-up is written now and runs as
            # soon as it is up; QEMU's gdbstub socket exists long before (~20 ms).
            self._gdb = GdbMi(stderr_path=self.paths.gdb_stderr, timeout=self.start_timeout)
            gdb_arch = "i386:x86-64" if config.qemu_system == "x86_64" else "i386"
            setup = [
                "-gdb-set mi-async on",
                "-gdb-set pagination off",
                "-gdb-set confirm off",
                "-gdb-set width 0",
                "-gdb-set print symbol-loading off",
                f"-gdb-set architecture {gdb_arch}",
            ]
            if symbol_path is not None:
                # after the architecture: an ELF32 must not switch gdb to i386 ('g' packet)
                setup.append(f'-file-symbol-file "{_mi_quote(str(symbol_path))}"')
            connect = f"-target-select remote {self.paths.gdb_socket}"
            pending = self._gdb.send([*setup, connect])
            with open(self.paths.qemu_stderr, "wb") as err:
                self._qemu = popen_owned(
                    self.qemu_argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err
                )
            # meanwhile: the kernel's full facts (pyelftools), QMP (qemu.qmp, asyncio)
            self.kernel_info = self._read_kernel_info(kernel, symbol_path)
            from lhvdbg.machine.live import LiveTarget
            from lhvdbg.machine.qmp import QmpClient

            try:
                self._qmp = QmpClient(
                    self.paths.qmp_socket, timeout=self.start_timeout, alive=self._qemu_running
                )
            except MachineError as exc:
                if not self._qemu_running():
                    raise self._qemu_start_error() from exc
                raise
            self.qemu_version = self._qmp.qemu_version
            results = self._gdb.finish(pending, timeout=self.start_timeout, check=False)
            for res in results[:-1]:
                if res.message == "error":
                    msg = str(res.payload.get("msg", "unknown error"))
                    raise GdbError(
                        f"gdb: {res.command.split()[0]}: {(msg.splitlines() or [''])[0]}",
                        command=res.command,
                        reply=msg,
                    )
            if results[-1].message == "error":
                # QEMU was slower than gdb to open its socket: wait for it, connect again
                self._wait_for_socket(self.paths.gdb_socket)
                self._gdb.command(connect, timeout=self.start_timeout)
            self._gdb.drain_stopped()
            self.target = LiveTarget(self)
        except BaseException:
            self.close()
            raise
        log.debug("session up: %s", " ".join(self.qemu_argv))

    def _read_kernel_info(self, kernel: Path | None, symbol_path: Path | None) -> KernelInfo | None:
        """pyelftools facts of the symbol ELF (the kernel, checked bootable, by default)."""
        from lhvdbg.state.elf import inspect_kernel

        info = inspect_kernel(kernel) if kernel is not None else None
        if symbol_path is not None and symbol_path != kernel:
            info = _inspect_symbols(symbol_path)
        return info

    def _wait_for_socket(self, path: Path) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not path.exists():
            if not self._qemu_running():
                raise self._qemu_start_error()
            if time.monotonic() > deadline:
                raise TargetTimeout(
                    f"QEMU's socket {path.name} did not appear within {self.start_timeout:g} s",
                    socket=str(path),
                    qemu_command=self.qemu_argv,
                )
            time.sleep(0.001)

    def _qemu_running(self) -> bool:
        from lhvdbg.machine.process import is_running

        return self._qemu is not None and is_running(self._qemu)

    def _qemu_status(self) -> int | None:
        from lhvdbg.machine.process import exit_status

        return None if self._qemu is None else exit_status(self._qemu)

    def _qemu_stderr_text(self) -> str:
        try:
            return self.paths.qemu_stderr.read_text(errors="replace")
        except OSError:
            return ""

    def _qemu_start_error(self) -> QemuError:
        text = self._qemu_stderr_text().strip()
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        why = "; ".join(lines[-3:]) if lines else "no message"
        return QemuError(
            f"QEMU exited at start (status {self._qemu_status()}): {why}",
            qemu_command=self.qemu_argv,
            stderr=text,
        )

    def _install_sigterm(self) -> None:
        """Turn SIGTERM into SystemExit (so ``with`` blocks clean up) while we run in
        the main thread and nobody else handles it."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        self._old_sigterm = signal.signal(signal.SIGTERM, on_sigterm)

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
        if self._closed:
            return
        self._closed = True
        from lhvdbg.machine.process import kill_process_group

        quit_sent = False
        if self._qmp is not None:
            if self._qemu_running():
                self._qmp.quit()
                quit_sent = True
            self._qmp.close()
        if self._gdb is not None:
            # QEMU is gone or going: gdb has nothing left to detach from or save
            self._gdb.close(polite=not quit_sent and self._qemu_running())
        if self._qemu is not None:
            kill_process_group(self._qemu, grace=0.5)
        if self._old_sigterm is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        shutil.rmtree(self.paths.directory, ignore_errors=True)

    def reset(self) -> None:
        """Restart QEMU and gdb with the same config (breakpoints are not kept)."""
        self.close()
        self._breakpoints.clear()
        self._register_numbers = None
        self._serial_offset = 0
        self.last_stop = None
        self.notes = []
        self._start()

    @property
    def alive(self) -> bool:
        """Whether QEMU is still running (not exited)."""
        return not self._closed and self._qemu_running()

    @property
    def gdb(self) -> GdbMi:
        """The gdb/MI client."""
        if self._gdb is None:
            raise MachineError("session is not started")
        return self._gdb

    @property
    def qmp(self) -> QmpClient:
        """The QMP client."""
        if self._qmp is None:
            raise MachineError("session is not started")
        return self._qmp

    def _check_usable(self, what: str) -> None:
        if self._closed:
            raise MachineError(f"{what}: the session is closed")
        if not self._qemu_running():
            raise self._qemu_gone_error(what)
        if not self.gdb.alive:
            raise GdbError(f"{what}: gdb has exited", command=what)

    def _qemu_gone_error(self, what: str) -> QemuError:
        status = self._qemu_status()
        if status is not None and status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            how = f"QEMU was killed by {name}"
        else:
            how = f"QEMU has exited (status {status})"
        return QemuError(f"{what}: {how}", qemu_command=self.qemu_argv)

    # --- run control (gdb only) -------------------------------------------------------

    def resolve(self, location: str | int) -> int:
        """An address from an int, a number (``0x100000``), or ``symbol[+off]``."""
        if isinstance(location, int):
            return location
        text = location.strip().lstrip("*")
        try:
            return int(text, 0)
        except ValueError:
            pass
        m = _LOCATION_RE.match(text)
        if not m or not m.group(1):
            raise UsageError(f"not an address or symbol: {location!r}")
        name, sign, off = m.group(1), m.group(2), m.group(3)
        symbols = self.kernel_info.symbols if self.kernel_info else {}
        if name not in symbols:
            hint = " (the kernel has no symbols)" if not symbols else ""
            raise UsageError(f"unknown symbol: {name}{hint}")
        addr = symbols[name]
        if off is not None:
            addr = addr + int(off, 0) if sign == "+" else addr - int(off, 0)
        return addr

    def symbolize(self, address: int) -> str:
        """``name+0xoff`` when the kernel has a symbol at or below, else hex."""
        if self.kernel_info is not None:
            return self.kernel_info.symbolize(address)
        return f"{address:#x}"

    @_machine_call
    def break_at(
        self,
        location: str | int,
        *,
        hardware: bool | None = None,
        temporary: bool = False,
        internal: bool = False,
    ) -> int:
        """Set a breakpoint at a symbol (``"kernel_main"``, ``"kernel_main+4"``) or an
        address; return its gdb number. ``hardware=None`` chooses: software under TCG,
        hardware under KVM (software breakpoints crash the guest there; noted)."""
        self._check_usable("break")
        address = self.resolve(location)
        if hardware is None:
            hardware = self.accel == "kvm"
            if hardware:
                note = "KVM: using hardware breakpoints (software ones crash the guest here)"
                if note not in self.notes:
                    self.notes.append(note)
                    log.info(note)
        if hardware and self.accel == "kvm":
            used = sum(1 for b in self._breakpoints.values() if b.hardware)
            if used >= KVM_HW_BREAKPOINTS:
                raise UsageError(
                    f"KVM allows {KVM_HW_BREAKPOINTS} hardware breakpoints; delete one first"
                )
        flags = ("-h " if hardware else "") + ("-t " if temporary else "")
        result = self.gdb.command(f"-break-insert {flags}*{address:#x}")
        number = int(result.payload["bkpt"]["number"])
        self._breakpoints[number] = Breakpoint(
            number,
            address,
            location if isinstance(location, str) else f"{address:#x}",
            hardware,
            internal=internal,
        )
        return number

    @_machine_call
    def watch(
        self, address: int, size: int, *, access: str = "write", internal: bool = False
    ) -> int:
        """Set a hardware watchpoint (``write``/``read``/``access``) on ``size`` bytes at
        ``address``; return its number. TCG: fires; the kvm-pvm KVM here never does."""
        self._check_usable("watch")
        flag = {"write": "", "read": "-r ", "access": "-a "}.get(access)
        if flag is None:
            raise UsageError(f"watch access must be write, read or access, not {access!r}")
        result = self.gdb.command(f'-break-watch {flag}"*(unsigned char (*)[{size}]){address:#x}"')
        record = next(
            (v for k, v in result.payload.items() if k in ("wpt", "hw-rwpt", "hw-awpt")), None
        )
        if not isinstance(record, dict):
            raise GdbError("gdb did not set a watchpoint", command="-break-watch")
        number = int(record["number"])
        info = self.gdb.command(f"-break-info {number}")
        body = info.payload.get("BreakpointTable", {}).get("body", [])
        kind = str(body[0].get("type", "")) if body else ""
        if "hw" not in kind and "acc" not in kind and "read" not in kind:
            self.gdb.command(f"-break-delete {number}")
            raise GdbError(
                "gdb could only set a software watchpoint (too slow); not set",
                command="-break-watch",
                reply=kind,
            )
        self._breakpoints[number] = Breakpoint(
            number,
            address,
            f"{size} bytes at {address:#x}",
            True,
            kind="watchpoint",
            internal=internal,
        )
        return number

    @_machine_call
    def delete(self, number: int | None = None) -> None:
        """Delete breakpoint ``number``, or every breakpoint when None."""
        self._check_usable("delete")
        if number is None:
            if self._breakpoints:
                self.gdb.command("-break-delete " + " ".join(map(str, self._breakpoints)))
            self._breakpoints.clear()
            return
        if number not in self._breakpoints:
            raise UsageError(f"no breakpoint number {number}")
        self.gdb.command(f"-break-delete {number}")
        del self._breakpoints[number]

    def breakpoint_numbers(self) -> set[int]:
        """Numbers of every breakpoint and watchpoint set, internal ones included."""
        return set(self._breakpoints)

    def breakpoints(self, *, internal: bool = False) -> list[dict[str, object]]:
        """The breakpoint table: dicts with ``number``, ``type``, ``address`` (int),
        ``location`` (what was asked), ``hardware`` (bool), ``hits`` (int). Internal
        breakpoints (set by run_to_vector) only with ``internal=True``."""
        return [
            b.to_dict()
            for b in sorted(self._breakpoints.values(), key=lambda b: b.number)
            if internal or not b.internal
        ]

    def _run_state_check(self, what: str) -> StopEvent | None:
        """An ``exited`` event when QEMU is gone (normally or not), else None."""
        if self._closed:
            raise MachineError(f"{what}: the session is closed")
        if self._qemu_running():
            if not self.gdb.alive:
                raise GdbError(f"{what}: gdb has exited", command=what)
            return None
        status = self._qemu_status()
        if status is not None and status < 0:
            raise self._qemu_gone_error(what)
        return self._exited_event(0.0)

    def _exited_event(self, elapsed: float) -> StopEvent:
        status = self._qemu_status()
        if status is not None and status < 0:
            raise self._qemu_gone_error("continue")
        detail = f"QEMU exited with status {status}"
        if status is not None and status & 1 and self.config.debug_exit and status > 1:
            detail += f" (isa-debug-exit value {status >> 1:#x})"
        event = StopEvent("exited", exit_code=status, detail=detail, elapsed=elapsed)
        self.last_stop = event
        return event

    @_machine_call
    def cont(self, *, timeout: float, poll: Callable[[], None] | None = None) -> StopEvent:
        """Continue until a stop, QEMU exiting, a triple fault, or ``timeout`` seconds
        (then interrupt and return ``reason="timeout"``). ``poll`` is called about every
        50 ms while the guest runs (e.g. to stream the serial output)."""
        gone = self._run_state_check("continue")
        if gone is not None:
            return gone
        if self.last_stop is not None and self.last_stop.reason == "shutdown":
            return self.last_stop  # a shut-down VM cannot run again (reset() restarts)
        gdb = self.gdb
        gdb.drain_stopped()
        started = time.monotonic()
        deadline = started + timeout
        # gdb steps over the breakpoint it stopped at; with a hardware watchpoint in the
        # page that instruction writes, QEMU's TCG reports that step as a bare SIGTRAP
        stepping_over = self.last_stop is not None and self.last_stop.reason in (
            "breakpoint",
            "vector",
        )
        gdb.command("-exec-continue")
        while True:
            record = gdb.wait_stopped(max(0.0, min(0.05, deadline - time.monotonic())))
            elapsed = time.monotonic() - started
            if poll is not None:
                poll()
            if record is not None:
                if stepping_over and self._spurious_sigtrap(record):
                    stepping_over = False
                    gdb.command("-exec-continue")
                    continue
                return self._stop_event(record, elapsed)
            if not self._qemu_running():
                return self._exited_event(elapsed)
            if not gdb.alive:
                raise GdbError("continue: gdb exited unexpectedly", command="-exec-continue")
            if time.monotonic() >= deadline:
                stopped = self._interrupt_running()
                if stopped is None:
                    return self._exited_event(elapsed)
                event = self._stop_event(stopped, elapsed)
                if event.reason in ("interrupted", "signal") and event.signal == "SIGINT":
                    event = replace(
                        event,
                        reason="timeout",
                        detail=f"timeout after {timeout:g} s at {self._where(event.address)}",
                    )
                self.last_stop = event
                return event

    def _spurious_sigtrap(self, record: MiRecord) -> bool:
        """A SIGTRAP right after stepping over a breakpoint while a watchpoint is set."""
        payload = record.payload if isinstance(record.payload, dict) else {}
        if payload.get("reason") != "signal-received" or payload.get("signal-name") != "SIGTRAP":
            return False
        if not any(b.kind == "watchpoint" for b in self._breakpoints.values()):
            return False
        log.debug("ignoring the SIGTRAP of a breakpoint step-over (watchpoint set)")
        return True

    def _interrupt_running(self) -> MiRecord | None:
        """Interrupt a running guest and wait for its ``*stopped`` (None if QEMU exits)."""
        try:
            self.gdb.interrupt()
        except GdbError:
            if not self._qemu_running():
                return None
            raise
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            record = self.gdb.wait_stopped(0.05)
            if record is not None:
                return record
            if not self._qemu_running():
                return None
        raise GdbError("gdb did not stop the guest after -exec-interrupt", command="interrupt")

    def _where(self, address: int | None) -> str:
        if address is None:
            return "?"
        sym = self.symbolize(address)
        return f"{address:#x}" if sym.startswith("0x") else f"{sym} ({address:#x})"

    def _stop_event(self, record: MiRecord, elapsed: float) -> StopEvent:
        payload = record.payload if isinstance(record.payload, dict) else {}
        frame = payload.get("frame") or {}
        address = _int_or_none(frame.get("addr"))
        reason_text = str(payload.get("reason", ""))
        event: StopEvent
        if reason_text == "breakpoint-hit":
            number = int(payload.get("bkptno", 0))
            bp = self._breakpoints.get(number)
            if bp is not None:
                bp.hits += 1
                if payload.get("disp") == "del":
                    self._breakpoints.pop(number, None)
            event = StopEvent(
                "breakpoint",
                address,
                number,
                detail=f"breakpoint {number} hit at {self._where(address)}",
                elapsed=elapsed,
            )
        elif reason_text in (
            "watchpoint-trigger",
            "read-watchpoint-trigger",
            "access-watchpoint-trigger",
        ):
            wpt = payload.get("wpt") or payload.get("hw-rwpt") or payload.get("hw-awpt") or {}
            number = int(wpt.get("number", 0))
            bp = self._breakpoints.get(number)
            if bp is not None:
                bp.hits += 1
            event = StopEvent(
                "breakpoint",
                address,
                number,
                detail=f"watchpoint {number} triggered at {self._where(address)}",
                elapsed=elapsed,
            )
        elif reason_text == "end-stepping-range":
            event = StopEvent("step", address, detail=f"at {self._where(address)}", elapsed=elapsed)
        elif reason_text == "signal-received" or not reason_text:
            name = str(payload.get("signal-name", "")) or None
            if name == "SIGQUIT" or self._shutdown_seen():
                event = StopEvent(
                    "shutdown",
                    address,
                    signal=name,
                    detail="the guest shut down (triple fault or reset): QEMU is paused",
                    elapsed=elapsed,
                )
            elif name == "SIGINT":
                event = StopEvent(
                    "interrupted",
                    address,
                    signal=name,
                    detail=f"interrupted at {self._where(address)}",
                    elapsed=elapsed,
                )
            else:
                event = StopEvent(
                    "signal",
                    address,
                    signal=name,
                    detail=f"{name or 'stopped'} at {self._where(address)}",
                    elapsed=elapsed,
                )
        else:
            event = StopEvent(
                "signal",
                address,
                detail=f"{reason_text} at {self._where(address)}",
                elapsed=elapsed,
            )
        self.last_stop = event
        return event

    def _shutdown_seen(self) -> bool:
        status: dict[str, Any] = {}
        try:
            status = self.qmp.status()
        except MachineError:
            return False
        return str(status.get("status")) in ("shutdown", "guest-panicked", "internal-error")

    @_machine_call
    def stepi(self, count: int = 1) -> StopEvent:
        """Execute ``count`` instructions (one MI command each)."""
        gone = self._run_state_check("stepi")
        if gone is not None:
            return gone
        event: StopEvent | None = None
        started = time.monotonic()
        for _ in range(count):
            self.gdb.drain_stopped()
            self.gdb.command("-exec-step-instruction")
            record = self.gdb.wait_stopped(5.0)
            if record is None:
                if not self._qemu_running():
                    return self._exited_event(time.monotonic() - started)
                raise TargetTimeout("stepi: the guest did not stop after one instruction")
            event = self._stop_event(record, time.monotonic() - started)
            if event.reason != "step":
                break
        assert event is not None
        return event

    @_machine_call
    def interrupt(self) -> StopEvent:
        """Stop a running guest; when it is already stopped, report where it is."""
        gone = self._run_state_check("interrupt")
        if gone is not None:
            return gone
        if not self.gdb.running:
            pc = self.pc()
            return StopEvent("interrupted", pc, detail=f"already stopped at {self._where(pc)}")
        record = self._interrupt_running()
        if record is None:
            return self._exited_event(0.0)
        return self._stop_event(record, 0.0)

    @_machine_call
    def run_to_vector(self, vector: int, *, count: int = 1, timeout: float) -> StopEvent:
        """Run until the CPU has entered the handler that IDT[``vector``] points to
        ``count`` times, for any multiboot kernel (stripped too). Arms once the kernel runs
        ``lidt`` (found by scanning its executable segments), re-arms when the gate
        changes (write watchpoint, TCG). Returns ``reason="vector"`` at the handler's first
        instruction, or ``timeout``/``exited``/``shutdown``; another breakpoint of the
        user's returns its ``breakpoint`` event."""
        from lhvdbg.machine.vector import VectorRun

        self.last_stop = VectorRun(self, fixed_vector=vector).run(count=count, timeout=timeout)
        return self.last_stop

    @_machine_call
    def run_to_timer(self, *, count: int = 1, timeout: float) -> StopEvent:
        """Like :meth:`run_to_vector` for the timer vector, re-evaluated (PIC ``irq_base``
        for IRQ0, else the LAPIC LVT timer) at each arming point: ``lidt``, ``sti`` and
        gate writes. ``count`` is the number of timer ticks handled."""
        from lhvdbg.machine.vector import VectorRun

        self.last_stop = VectorRun(self, fixed_vector=None).run(count=count, timeout=timeout)
        return self.last_stop

    def timer_vector(self) -> int | None:
        """The vector timer interrupts arrive on now: the master PIC's ``irq_base`` (IRQ0)
        when IRQ0 is unmasked, else the LAPIC LVT timer vector when that timer is enabled
        and unmasked, else the PIC's ``irq_base``; None when there is no PIC state."""
        from lhvdbg.machine.vector import timer_vector_of

        return timer_vector_of(self.target.pic(), self.target.lapic())

    # --- state ------------------------------------------------------------------------

    def pc(self) -> int:
        """The instruction pointer as gdb sees it."""
        regs = self.read_registers(["rip" if self.config.qemu_system == "x86_64" else "eip"])
        return next(iter(regs.values()))

    def read_memory(self, address: int, size: int) -> bytes:
        """Guest linear memory through gdb (``-data-read-memory-bytes``)."""
        self._check_usable("read memory")
        data = self.read_memory_many([(address, size)])[0]
        assert data is not None  # check=True raised otherwise
        return data

    @_machine_call
    def read_memory_many(
        self, regions: list[tuple[int, int]], *, check: bool = True
    ) -> list[bytes | None]:
        """Several reads pipelined in one round trip; ``None`` for a read that failed or
        came back short when ``check`` is False (else GdbError)."""
        from lhvdbg.machine.memory import memory_runs, read_command, whole_contents

        if not regions:
            return []
        results = self.gdb.batch([read_command(a, n) for a, n in regions], check=check)
        out: list[bytes | None] = []
        for (addr, size), res in zip(regions, results, strict=True):
            if res.message == "error":
                out.append(None)
            elif check:
                out.append(whole_contents(res.payload, addr, size))
            else:
                runs = memory_runs(res.payload, addr, size)
                whole = len(runs) == 1 and len(runs[0][1]) == size
                out.append(runs[0][1] if whole else None)
        return out

    @_machine_call
    def read_memory_readable(self, regions: list[tuple[int, int]]) -> list[list[tuple[int, bytes]]]:
        """The readable parts of each ``(address, size)`` region as sorted
        ``(address, bytes)`` runs (empty when nothing is readable); unmapped memory is
        never an error. One round trip when all is readable, two otherwise
        (:func:`lhvdbg.machine.memory.read_readable`)."""
        from lhvdbg.machine.memory import read_readable

        self._check_usable("read memory")
        return read_readable(self.gdb, regions)

    @_machine_call
    def write_memory(self, address: int, data: bytes) -> None:
        """Write guest linear memory through gdb."""
        self._check_usable("write memory")
        self.gdb.command(f"-data-write-memory-bytes {address:#x} {data.hex()}")

    @_machine_call
    def register_numbers(self) -> dict[str, int]:
        """gdb's register name → number map (cached)."""
        if self._register_numbers is None:
            names = self.gdb.command("-data-list-register-names").payload["register-names"]
            self._register_numbers = {n: i for i, n in enumerate(names) if n}
        return self._register_numbers

    @_machine_call
    def read_registers(self, names: list[str] | None = None) -> dict[str, int]:
        """gdb register values by lower-case name (all integer registers when None)."""
        self._check_usable("read registers")
        numbers = self.register_numbers()
        if names is None:
            wanted = {
                n: i
                for n, i in numbers.items()
                if not n.startswith(("st", "xmm", "ymm", "mxcsr", "f"))
            }
        else:
            unknown = [n for n in names if n not in numbers]
            if unknown:
                raise UsageError(f"unknown register: {', '.join(unknown)}")
            wanted = {n: numbers[n] for n in names}
        by_number = {i: n for n, i in wanted.items()}
        res = self.gdb.command(
            "-data-list-register-values x " + " ".join(str(i) for i in wanted.values())
        )
        out: dict[str, int] = {}
        for item in res.payload.get("register-values", []):
            name = by_number.get(int(item["number"]))
            value = _int_or_none(item.get("value"))
            if name is not None and value is not None:
                out[name] = value
        return out

    @_machine_call
    def write_register(self, name: str, value: int) -> None:
        """Set a gdbstub register (``rax``, ``rip``, ``eflags``, ...)."""
        self._check_usable("write register")
        if name not in self.register_numbers():
            raise UsageError(f"unknown register: {name}")
        self.gdb.command(f"-data-evaluate-expression ${name}={value:#x}")

    def read_string(self, address: int, max_length: int = 256) -> str:
        """A NUL-terminated string at ``address`` (latin-1, at most ``max_length``)."""
        self._check_usable("read string")
        out = bytearray()
        addr = address
        while len(out) < max_length:
            chunk_size = min(64, max_length - len(out), 0x1000 - (addr & 0xFFF))
            chunk = self.read_memory(addr, chunk_size)
            end = chunk.find(b"\0")
            if end >= 0:
                out += chunk[:end]
                break
            out += chunk
            addr += chunk_size
        return out.decode("latin-1")

    def backtrace(self) -> list[dict[str, object]]:
        """gdb's frames (``level``, ``address``, ``function``) where it can unwind;
        at least the current frame."""
        self._check_usable("backtrace")
        try:
            res = self.gdb.command("-stack-list-frames 0 31", timeout=2.0)
            frames = res.payload.get("stack", [])
        except GdbError:
            frames = []
        info = self.kernel_info
        out: list[dict[str, object]] = []
        for f in frames:
            frame = f.get("frame", f) if isinstance(f, dict) else {}
            addr = _int_or_none(frame.get("addr"))
            if addr is None:
                break
            # without debug info gdb guesses frames; keep those inside the kernel image
            if out and (info is None or not any(seg.contains(addr) for seg in info.segments)):
                break
            out.append({"level": len(out), "address": addr, "function": self.symbolize(addr)})
        if not out:
            pc = self.pc()
            out.append({"level": 0, "address": pc, "function": self.symbolize(pc)})
        return out

    @_machine_call
    def hmp(self, command: str) -> str:
        """The text of an HMP command (``info registers``, ``info pic``...) via QMP."""
        self._check_usable("hmp")
        return self.qmp.hmp(command)

    def capture(self, *, note: str = "") -> Snapshot:
        """Shortcut for ``self.target.capture(note=note)``."""
        return self.target.capture(note=note)

    # --- outputs ----------------------------------------------------------------------

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
        while True:
            if text in self.serial_text():
                return True
            if time.monotonic() >= deadline or not self._qemu_running():
                return text in self.serial_text()
            time.sleep(0.005)

    def int_log_text(self) -> str:
        """The ``-d int,cpu_reset`` log so far; ``""`` under KVM or without int_log."""
        path = self.int_log_path
        if path is None:
            return ""
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def int_log_path(self) -> Path | None:
        """Path of the ``-d`` log (None under KVM / without int_log)."""
        if self.accel != "tcg" or not self.config.int_log:
            return None
        return self.paths.int_log

    @property
    def serial_path(self) -> Path:
        """Path of the file the serial port is written to."""
        return self.paths.serial_log

    def events(self) -> list[QmpEvent]:
        """QMP events received so far (SHUTDOWN, RESET, STOP, GUEST_PANICKED...)."""
        return self.qmp.events()


def _mi_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value), 0)
    except ValueError:
        return None


def _inspect_symbols(path: Path) -> KernelInfo:
    """KernelInfo for a symbol file that is not booted itself (no multiboot check)."""
    from lhvdbg.state.elf import inspect_elf

    return inspect_elf(path)

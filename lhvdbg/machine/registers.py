"""Registers and stack frames as gdb shows them (``-data-list-register-*``,
``-stack-list-frames``), and :class:`SessionRegisters`, the session's guarded register
reads and writes (a base class of :class:`~lhvdbg.machine.session.Session`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lhvdbg.errors import GdbError, TargetTimeout, UsageError
from lhvdbg.machine.runstate import INSPECTABLE, RunstateMachine, require
from lhvdbg.machine.stops import int_or_none

if TYPE_CHECKING:
    from lhvdbg.machine.gdbmi import GdbMi
    from lhvdbg.machine.launch import LaunchConfig
    from lhvdbg.state.elf import KernelInfo

NOT_INTEGER = ("st", "xmm", "ymm", "mxcsr", "f")  # x87, SSE/AVX and their control


def register_numbers(gdb: GdbMi) -> dict[str, int]:
    """gdb's register name → number map."""
    names = gdb.command("-data-list-register-names").payload["register-names"]
    return {n: i for i, n in enumerate(names) if n}


def read_registers(gdb: GdbMi, numbers: dict[str, int], names: list[str] | None) -> dict[str, int]:
    """Register values by name (every integer register when ``names`` is None);
    UsageError naming unknown registers."""
    if names is None:
        wanted = {n: i for n, i in numbers.items() if not n.startswith(NOT_INTEGER)}
    else:
        unknown = [n for n in names if n not in numbers]
        if unknown:
            raise UsageError(f"unknown register: {', '.join(unknown)}")
        wanted = {n: numbers[n] for n in names}
    by_number = {i: n for n, i in wanted.items()}
    res = gdb.command("-data-list-register-values x " + " ".join(map(str, wanted.values())))
    out: dict[str, int] = {}
    for item in res.payload.get("register-values", []):
        name = by_number.get(int(item["number"]))
        value = int_or_none(item.get("value"))
        if name is not None and value is not None:
            out[name] = value
    return out


def backtrace(
    gdb: GdbMi,
    info: KernelInfo | None,
    symbolize: Callable[[int], str],
    pc: Callable[[], int],
) -> list[dict[str, object]]:
    """gdb's frames (``level``, ``address``, ``function``) as far as they stay inside the
    kernel image (without debug info gdb guesses beyond); at least the current frame."""
    try:
        frames = gdb.command("-stack-list-frames 0 31", timeout=2.0).payload.get("stack", [])
    except (GdbError, TargetTimeout):
        frames = []
    out: list[dict[str, object]] = []
    for f in frames:
        frame = f.get("frame", f) if isinstance(f, dict) else {}
        addr = int_or_none(frame.get("addr"))
        if addr is None:
            break
        if out and (info is None or not any(seg.contains(addr) for seg in info.segments)):
            break
        out.append({"level": len(out), "address": addr, "function": symbolize(addr)})
    if not out:
        address = pc()
        out.append({"level": 0, "address": address, "function": symbolize(address)})
    return out


class SessionRegisters(RunstateMachine):
    """The register half of :class:`~lhvdbg.machine.session.Session` (a base class)."""

    config: LaunchConfig
    kernel_info: KernelInfo | None
    _register_numbers: dict[str, int] | None

    @property
    def gdb(self) -> GdbMi:
        raise NotImplementedError

    def symbolize(self, address: int) -> str:
        raise NotImplementedError

    def _numbers(self) -> dict[str, int]:
        if self._register_numbers is None:
            self._register_numbers = register_numbers(self.gdb)
        return self._register_numbers

    def _pc(self) -> int:
        name = "rip" if self.config.qemu_system == "x86_64" else "eip"
        return read_registers(self.gdb, self._numbers(), [name])[name]

    @require(*INSPECTABLE)
    def pc(self) -> int:
        """The instruction pointer as gdb sees it."""
        return self._pc()

    @require(*INSPECTABLE)
    def register_numbers(self) -> dict[str, int]:
        """gdb's register name → number map (cached)."""
        return self._numbers()

    @require(*INSPECTABLE)
    def read_registers(self, names: list[str] | None = None) -> dict[str, int]:
        """gdb register values by lower-case name (all integer registers when None)."""
        return read_registers(self.gdb, self._numbers(), names)

    @require(*INSPECTABLE)
    def write_register(self, name: str, value: int) -> None:
        """Set a gdbstub register (``rax``, ``rip``, ``eflags``, ...)."""
        if name not in self._numbers():
            raise UsageError(f"unknown register: {name}")
        self.gdb.command(f"-data-evaluate-expression ${name}={value:#x}")

    @require(*INSPECTABLE)
    def backtrace(self) -> list[dict[str, object]]:
        """gdb's frames (``level``, ``address``, ``function``) where it can unwind;
        at least the current frame."""
        return backtrace(self.gdb, self.kernel_info, self.symbolize, self._pc)

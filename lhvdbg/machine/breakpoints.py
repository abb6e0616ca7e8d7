"""The breakpoints and watchpoints a session set, and the gdb/MI commands that set them.

:class:`BreakpointTable` is the session's own record (gdb numbers, what was asked, hit
counts, which are internal to ``run_to_vector``); :func:`insert_breakpoint`,
:func:`insert_watchpoint` and :func:`delete_breakpoints` talk to gdb. The policy that
picks hardware breakpoints under KVM (software ones crash the guest there; x86 has four
debug registers) is :func:`choose_hardware`. :class:`SessionBreakpoints` is the
session's public breakpoint API (``break_at``, ``watch``, ``delete``, ``breakpoints``),
guarded by the run state like every live operation.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lhvdbg.errors import GdbError, UsageError
from lhvdbg.machine.runstate import INSPECTABLE, RunstateMachine, require

if TYPE_CHECKING:
    from lhvdbg.machine.gdbmi import GdbMi
    from lhvdbg.state.elf import KernelInfo

log = logging.getLogger(__name__)
_LOCATION_RE = re.compile(r"^\s*([A-Za-z_.$][\w.$@]*)?\s*(?:([+-])\s*(0x[0-9a-fA-F]+|\d+))?\s*$")

KVM_HW_BREAKPOINTS = 4  # x86 DR0-DR3 (Intel SDM Vol. 3B §18.2)
KVM_NOTE = "KVM: using hardware breakpoints (software ones crash the guest here)"
WATCH_FLAGS = {"write": "", "read": "-r ", "access": "-a "}


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


class BreakpointTable:
    """The session's breakpoints by gdb number."""

    def __init__(self) -> None:
        self._by_number: dict[int, Breakpoint] = {}

    def add(self, bp: Breakpoint) -> None:
        """Record a breakpoint gdb has set."""
        self._by_number[bp.number] = bp

    def remove(self, number: int) -> None:
        """Forget breakpoint ``number`` (UsageError when there is none)."""
        if number not in self._by_number:
            raise UsageError(f"no breakpoint number {number}")
        del self._by_number[number]

    def clear(self) -> None:
        """Forget every breakpoint."""
        self._by_number.clear()

    def numbers(self) -> set[int]:
        """Every number, internal breakpoints included."""
        return set(self._by_number)

    def hardware_count(self) -> int:
        """How many hardware breakpoints and watchpoints are set."""
        return sum(1 for b in self._by_number.values() if b.hardware)

    def has_watchpoint(self) -> bool:
        """Whether any watchpoint is set."""
        return any(b.kind == "watchpoint" for b in self._by_number.values())

    def has_breakpoint_at(self, address: int | None) -> bool:
        """Whether a breakpoint (not a watchpoint) is set at ``address``."""
        return any(
            b.kind == "breakpoint" and b.address == address for b in self._by_number.values()
        )

    def note_hit(self, number: int, deleted: bool) -> None:
        """Count a hit of ``number``; a temporary breakpoint gdb deleted goes away."""
        bp = self._by_number.get(number)
        if bp is None:
            return
        bp.hits += 1
        if deleted:
            del self._by_number[number]

    def rows(self, *, internal: bool = False) -> list[dict[str, object]]:
        """The table as dicts in number order (internal ones only when asked)."""
        return [
            b.to_dict()
            for b in sorted(self._by_number.values(), key=lambda b: b.number)
            if internal or not b.internal
        ]


def choose_hardware(
    requested: bool | None, accel: str, table: BreakpointTable
) -> tuple[bool, str | None]:
    """Whether a new breakpoint is a hardware one, and a note to show the user when the
    choice was made for them. ``None`` means: software under TCG, hardware under KVM.
    UsageError when KVM's debug registers are all in use."""
    note = None
    hardware = requested
    if hardware is None:
        hardware = accel == "kvm"
        note = KVM_NOTE if hardware else None
    if hardware and accel == "kvm" and table.hardware_count() >= KVM_HW_BREAKPOINTS:
        raise UsageError(f"KVM allows {KVM_HW_BREAKPOINTS} hardware breakpoints; delete one first")
    return hardware, note


def insert_breakpoint(gdb: GdbMi, address: int, *, hardware: bool, temporary: bool) -> int:
    """``-break-insert`` at ``address``; gdb's breakpoint number."""
    flags = ("-h " if hardware else "") + ("-t " if temporary else "")
    result = gdb.command(f"-break-insert {flags}*{address:#x}")
    return int(result.payload["bkpt"]["number"])


def insert_watchpoint(gdb: GdbMi, address: int, size: int, access: str) -> int:
    """A hardware watchpoint (``write``/``read``/``access``) on ``size`` bytes; its number.
    A watchpoint gdb could only make in software (single-stepping: far too slow) is
    deleted again and reported as GdbError."""
    flag = WATCH_FLAGS.get(access)
    if flag is None:
        raise UsageError(f"watch access must be write, read or access, not {access!r}")
    result = gdb.command(f'-break-watch {flag}"*(unsigned char (*)[{size}]){address:#x}"')
    record = next(
        (v for k, v in result.payload.items() if k in ("wpt", "hw-rwpt", "hw-awpt")), None
    )
    if not isinstance(record, dict):
        raise GdbError("gdb did not set a watchpoint", command="-break-watch")
    number = int(record["number"])
    info = gdb.command(f"-break-info {number}")
    body = info.payload.get("BreakpointTable", {}).get("body", [])
    kind = str(body[0].get("type", "")) if body else ""
    if "hw" not in kind and "acc" not in kind and "read" not in kind:
        gdb.command(f"-break-delete {number}")
        raise GdbError(
            "gdb could only set a software watchpoint (too slow); not set",
            command="-break-watch",
            reply=kind,
        )
    return number


def delete_breakpoints(gdb: GdbMi, numbers: set[int] | list[int]) -> None:
    """``-break-delete`` of ``numbers`` in one command (nothing when empty)."""
    if numbers:
        gdb.command("-break-delete " + " ".join(str(n) for n in sorted(numbers)))


def resolve_location(location: str | int, symbols: Mapping[str, int]) -> int:
    """An address from an int, a number (``0x100000``), or ``symbol[+off]``."""
    if isinstance(location, int):
        return location
    text = location.strip().lstrip("*")
    with contextlib.suppress(ValueError):
        return int(text, 0)
    m = _LOCATION_RE.match(text)
    if not m or not m.group(1):
        raise UsageError(f"not an address or symbol: {location!r}")
    name, sign, off = m.group(1), m.group(2), m.group(3)
    if name not in symbols:
        hint = " (the kernel has no symbols)" if not symbols else ""
        raise UsageError(f"unknown symbol: {name}{hint}")
    addr = symbols[name]
    if off is not None:
        addr = addr + int(off, 0) if sign == "+" else addr - int(off, 0)
    return addr


class SessionBreakpoints(RunstateMachine):
    """The breakpoint half of :class:`~lhvdbg.machine.session.Session` (a base class)."""

    accel: str
    notes: list[str]
    kernel_info: KernelInfo | None
    _breakpoints: BreakpointTable

    @property
    def gdb(self) -> GdbMi:
        raise NotImplementedError

    def resolve(self, location: str | int) -> int:
        """An address from an int, a number (``0x100000``), or ``symbol[+off]``."""
        return resolve_location(location, self.kernel_info.symbols if self.kernel_info else {})

    @require(*INSPECTABLE)
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
        address = self.resolve(location)
        hardware, note = choose_hardware(hardware, self.accel, self._breakpoints)
        if note is not None and note not in self.notes:
            self.notes.append(note)
            log.info(note)
        number = insert_breakpoint(self.gdb, address, hardware=hardware, temporary=temporary)
        asked = location if isinstance(location, str) else f"{address:#x}"
        self._breakpoints.add(Breakpoint(number, address, asked, hardware, internal=internal))
        return number

    @require(*INSPECTABLE)
    def watch(
        self, address: int, size: int, *, access: str = "write", internal: bool = False
    ) -> int:
        """Set a hardware watchpoint (``write``/``read``/``access``) on ``size`` bytes at
        ``address``; return its number. TCG: fires; the kvm-pvm KVM here never does."""
        number = insert_watchpoint(self.gdb, address, size, access)
        label = f"{size} bytes at {address:#x}"
        bp = Breakpoint(number, address, label, True, kind="watchpoint", internal=internal)
        self._breakpoints.add(bp)
        return number

    @require(*INSPECTABLE)
    def delete(self, number: int | None = None) -> None:
        """Delete breakpoint ``number``, or every breakpoint when None."""
        if number is None:
            delete_breakpoints(self.gdb, self._breakpoints.numbers())
            self._breakpoints.clear()
            return
        if number not in self._breakpoints.numbers():
            raise UsageError(f"no breakpoint number {number}")
        delete_breakpoints(self.gdb, [number])
        self._breakpoints.remove(number)

    def breakpoint_numbers(self) -> set[int]:
        """Numbers of every breakpoint and watchpoint set, internal ones included."""
        return self._breakpoints.numbers()

    @contextlib.contextmanager
    def suspended(self, numbers: set[int] | list[int]) -> Iterator[None]:
        """Breakpoints ``numbers`` disabled for the block, enabled again after (while gdb
        is still there): a search that runs with its own watchpoints is not stopped or
        misled by the user's (gdb names one watchpoint when two cover the same bytes)."""
        wanted = " ".join(str(n) for n in sorted(numbers))
        if wanted:
            self.gdb.command(f"-break-disable {wanted}")
        try:
            yield
        finally:
            if wanted and self.gdb.alive:
                self.gdb.command(f"-break-enable {wanted}")

    def breakpoints(self, *, internal: bool = False) -> list[dict[str, object]]:
        """The breakpoint table: dicts with ``number``, ``type``, ``address`` (int),
        ``location`` (what was asked), ``hardware`` (bool), ``hits`` (int). Internal
        breakpoints (set by run_to_vector) only with ``internal=True``."""
        return self._breakpoints.rows(internal=internal)

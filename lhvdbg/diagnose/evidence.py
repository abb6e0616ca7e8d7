"""Everything the diagnosis reads, collected once: plain data, no target access.

The collector (``lhvdbg.commands._diagnosis``) fills an :class:`Evidence` from a live
session or a snapshot: the interrupt log's events (TCG), the snapshot at the stop, the
words on the stack at the vector-8 handler, instruction bytes at the addresses involved,
the serial output. Rules never talk to QEMU; they read this.

The frame test (Intel SDM Vol. 3A §6.12.1, Figures 6-4 and 6-9): at a handler's first
instruction the stack holds ``[error code], RIP, CS, RFLAGS[, RSP, SS]``. A hardware IRQ
pushes no error code, so ``frame[0]`` is a RIP, ``frame[1]`` the kernel CS and
``frame[2]`` an RFLAGS value (bit 1 always set); a real #DF pushes an error code of 0
first, shifting them by one word.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from lhvdbg.diagnose.events import ChainEvent
from lhvdbg.errors import LhvdbgError, MemoryNotCaptured
from lhvdbg.state.history import History
from lhvdbg.state.snapshot import MemoryRegion, Snapshot
from lhvdbg.x86.cpustate import Arch, CpuState
from lhvdbg.x86.insn_sites import HLT, describe_instruction
from lhvdbg.x86.tables import SystemTables

__all__ = [
    "Evidence",
    "FrameReading",
    "StopInfo",
    "evidence_from_snapshot",
    "frame_at_handler",
    "read_frame",
]

DF_VECTOR = 8
FRAME_WORDS = 6

FrameKind = Literal["no-error-code", "error-code", "unknown"]

# RFLAGS: bit 1 is always 1; bits 3, 5, 15 and 22..63 are reserved 0 (SDM Vol. 1 §3.4.3).
_RFLAGS_FIXED1 = 1 << 1
_RFLAGS_RESERVED0 = (1 << 3) | (1 << 5) | (1 << 15) | ~((1 << 22) - 1)
_RFLAGS_IF = 1 << 9


@dataclass(frozen=True)
class StopInfo:
    """How the run stopped: ``vector`` (at the handler IDT[vector] names), ``shutdown``
    (a triple fault or a reset the guest asked for, QEMU paused: ``reset`` says which),
    ``exited`` (the guest's own exit), ``timeout`` (``kernel_entered`` False: before the
    kernel's entry point), or what a shell user was doing (``breakpoint``, ``step``,
    ``interrupted``, ``snapshot``)."""

    reason: str
    vector: int | None = None
    address: int | None = None
    exit_value: int | None = None
    detail: str = ""
    elapsed: float | None = None
    exit_name: str | None = None  # the exit value's name in the kernel's DWARF enum
    reset: str | None = None  # a shutdown stop: "triple-fault" or "reset-requested"
    reset_how: str = ""  # how that was told (lhvdbg.diagnose.reset)
    limit: float | None = None  # the run's time limit (counted from the kernel's entry)
    kernel_entered: bool | None = None  # whether the kernel's entry point was reached


@dataclass(frozen=True)
class FrameReading:
    """The interrupt frame at a handler's entry, read as one of the two shapes."""

    kind: FrameKind
    words: tuple[int, ...]
    error_code: int | None = None
    rip: int | None = None
    cs: int | None = None
    rflags: int | None = None
    in_kernel_text: bool | None = None

    @property
    def interrupts_were_enabled(self) -> bool | None:
        """EFLAGS.IF of the interrupted code, from the pushed RFLAGS."""
        return None if self.rflags is None else bool(self.rflags & _RFLAGS_IF)

    def describe(self, width: int) -> str:
        """One line: what the words say."""
        digits = width * 2
        shown = ", ".join(f"{w:#0{digits + 2}x}" for w in self.words[:4])
        if self.kind == "no-error-code":
            where = " (in kernel text)" if self.in_kernel_text else ""
            return (
                f"no error code: frame[0]={self.rip:#x} is a RIP{where}, frame[1]="
                f"{self.cs:#x} the CS, frame[2]={self.rflags:#x} RFLAGS [{shown}]"
            )
        if self.kind == "error-code":
            return (
                f"error code {self.error_code:#x}, then RIP {self.rip:#x}, CS {self.cs:#x}, "
                f"RFLAGS {self.rflags:#x} [{shown}]"
            )
        return f"neither frame shape fits [{shown}]"


def _plausible_rflags(value: int) -> bool:
    return bool(value & _RFLAGS_FIXED1) and not value & _RFLAGS_RESERVED0


def _plausible_cs(value: int, kernel_cs: int | None) -> bool:
    if value >> 16 or value & 0xFFFC == 0:
        return False
    if kernel_cs is not None and value == kernel_cs:
        return True
    return kernel_cs is None or value & 3 == 3  # from ring 3: any RPL-3 selector


def read_frame(
    words: Sequence[int],
    *,
    kernel_cs: int | None,
    text: Sequence[tuple[int, int]] = (),
) -> FrameReading:
    """Classify the words at the handler's stack pointer (``kernel_cs``: the handler's CS;
    ``text``: [start, end) ranges of kernel code, used when known)."""
    w = tuple(words)

    def in_text(address: int) -> bool | None:
        if not text:
            return None
        return any(start <= address < end for start, end in text)

    fits3 = len(w) >= 3 and _plausible_cs(w[1], kernel_cs) and _plausible_rflags(w[2])
    if fits3 and in_text(w[0]) is not False:
        return FrameReading("no-error-code", w, None, w[0], w[1], w[2], in_text(w[0]))
    fits4 = len(w) >= 4 and _plausible_cs(w[2], kernel_cs) and _plausible_rflags(w[3])
    if fits4 and in_text(w[1]) is not False:
        return FrameReading("error-code", w, w[0], w[1], w[2], w[3], in_text(w[1]))
    return FrameReading("unknown", w)


@dataclass(frozen=True)
class Evidence:
    """What was collected at the stop.

    ``events``: the kernel run's events from the ``-d int`` log (empty under KVM, where
    ``int_log`` is False). ``snapshot``: the machine at the stop. ``tables``: its decoded
    GDT/IDT/TR/TSS. ``frame``: the interrupt frame at the vector-8 handler's entry, when
    stopped there. ``memory``: extra bytes read for the diagnosis (instructions at the
    RIPs involved, the stack under a faulting ``iret``). ``physical``: bytes read at
    *physical* addresses (the paging-structure entries walked for each #PF's CR2).
    ``text``: kernel code ranges. ``reference``: the known-good snapshot whose
    differences are weighed. ``history``: the kernel's 8259 writes from its entry on,
    when recorded (QEMU's trace lines; ``lhvdbg.machine.trace``).
    """

    arch: Arch
    accel: str | None
    stop: StopInfo
    events: tuple[ChainEvent, ...] = ()
    int_log: bool = False
    snapshot: Snapshot | None = None
    tables: SystemTables | None = None
    frame: FrameReading | None = None
    memory: tuple[MemoryRegion, ...] = ()
    physical: tuple[MemoryRegion, ...] = ()
    text: tuple[tuple[int, int], ...] = ()
    serial: str = ""
    qemu_version: str | None = None
    kernel: str | None = None
    symbols: Mapping[str, int] = field(default_factory=dict)
    reference: Snapshot | None = None
    reference_name: str | None = None
    history: History | None = None  # what the kernel programmed (lhvdbg.machine.trace)

    @property
    def cpu(self) -> CpuState | None:
        """The CPU at the stop."""
        return self.snapshot.cpu if self.snapshot is not None else None

    @property
    def word_size(self) -> int:
        """8 on amd64, 4 on i386."""
        return 8 if self.arch == "amd64" else 4

    def read(self, address: int, size: int) -> bytes | None:
        """Bytes from the extra memory or the snapshot, or None when not collected."""
        for region in self.memory:
            if region.address <= address and address + size <= region.end:
                offset = address - region.address
                return region.data[offset : offset + size]
        if self.snapshot is not None:
            try:
                return self.snapshot.read(address, size)
            except LhvdbgError:
                return None
        return None

    def read_physical(self, address: int, size: int) -> bytes:
        """Bytes at a physical address from ``physical`` (MemoryNotCaptured otherwise):
        the reader a page walk over the collected entries uses."""
        for region in self.physical:
            if region.address <= address and address + size <= region.end:
                offset = address - region.address
                return region.data[offset : offset + size]
        raise MemoryNotCaptured(f"physical {address:#x}..{address + size:#x} was not collected")

    def instruction_at(self, address: int) -> str | None:
        """The instruction at ``address`` when it is one :func:`describe_instruction`
        names and its bytes were collected."""
        code = self.read(address, 2) or self.read(address, 1)
        return describe_instruction(code, self.arch) if code else None

    def after_hlt(self, address: int) -> bool | None:
        """Whether the byte before ``address`` is ``hlt`` (an IRQ woke a halted CPU; the
        saved RIP is the next instruction). None when not collected."""
        code = self.read(address - 1, 1)
        return None if code is None else code[0] == HLT

    def words_at(self, address: int, count: int) -> tuple[int, ...] | None:
        """``count`` stack words at ``address``, when collected."""
        size = self.word_size
        data = self.read(address, size * count)
        if data is None:
            return None
        return tuple(
            int.from_bytes(data[i : i + size], "little") for i in range(0, len(data), size)
        )


def frame_at_handler(
    snapshot: Snapshot,
    tables: SystemTables,
    *,
    vector: int = DF_VECTOR,
    text: Sequence[tuple[int, int]] = (),
    read: Callable[[int, int], bytes] | None = None,
) -> FrameReading | None:
    """The interrupt frame, when the CPU sits at the first instruction of the handler
    IDT[``vector``] names and the stack words can be read (``read``: the snapshot's
    memory by default; a live reader may fall back to the machine)."""
    if tables.idt is None:
        return None
    gate = tables.idt.gate(vector)
    if gate is None or not gate.present or gate.decoded.values["offset"] != snapshot.cpu.ip:
        return None
    size = 8 if snapshot.arch == "amd64" else 4
    try:
        data = (read or snapshot.read)(snapshot.cpu.sp, size * FRAME_WORDS)
    except LhvdbgError:
        return None
    words = [int.from_bytes(data[i : i + size], "little") for i in range(0, len(data), size)]
    return read_frame(words, kernel_cs=snapshot.cpu.segments["cs"].selector, text=text)


def evidence_from_snapshot(
    snapshot: Snapshot,
    *,
    events: Sequence[ChainEvent] = (),
    int_log: bool | None = None,
    stop: StopInfo | None = None,
    memory: Sequence[MemoryRegion] = (),
    physical: Sequence[MemoryRegion] = (),
    text: Sequence[tuple[int, int]] = (),
    serial: str = "",
    reference: Snapshot | None = None,
    reference_name: str | None = None,
) -> Evidence:
    """Evidence from a recorded snapshot (and, when recorded too, the ``-d int`` log's
    events and the physical memory read for page walks): offline diagnosis and tests.
    ``int_log`` defaults to "events were given"."""
    from lhvdbg.state.system import tables_from_reader

    tables = tables_from_reader(snapshot.cpu, snapshot.read)
    frame = frame_at_handler(snapshot, tables, text=text)
    if stop is None:
        stop = StopInfo(
            reason="vector" if frame is not None else "snapshot",
            vector=DF_VECTOR if frame is not None else None,
            address=snapshot.cpu.ip,
            detail=snapshot.provenance.stop_reason or "",
        )
    return Evidence(
        arch=snapshot.arch,
        accel=snapshot.provenance.accel,
        stop=stop,
        events=tuple(events),
        int_log=bool(events) if int_log is None else int_log,
        snapshot=snapshot,
        tables=tables,
        frame=frame,
        memory=tuple(memory),
        physical=tuple(physical),
        text=tuple(text),
        serial=serial,
        qemu_version=snapshot.provenance.qemu_version,
        kernel=snapshot.provenance.kernel_path,
        symbols=dict(snapshot.symbols),
        reference=reference,
        reference_name=reference_name,
    )

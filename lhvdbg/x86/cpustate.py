"""Plain data for the state of one x86 CPU and its interrupt controllers.

These are the shapes every layer shares: the HMP parsers (`lhvdbg.x86.hmp`) produce them,
snapshots store them, the live target returns them, diagnosis reads them. Frozen
dataclasses with integer fields; no behaviour beyond small derived properties.

The segment ``flags`` word is the descriptor's attribute bits as QEMU prints them in
``info registers`` (e.g. ``00008b00``): bits 8-11 type, 12 S, 13-14 DPL, 15 P, 20 AVL,
21 L, 22 D/B, 23 G — i.e. bits 32..63 of the 8-byte descriptor with base and limit
masked out (Intel SDM Vol. 3A §3.4.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Arch = Literal["amd64", "i386"]
CpuMode = Literal["real", "protected", "long", "compat", "vm86"]

SEGMENT_NAMES = ("es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr")


@dataclass(frozen=True)
class SegmentRegister:
    """A segment register with its hidden (descriptor cache) part."""

    selector: int
    base: int
    limit: int
    flags: int

    @property
    def type(self) -> int:
        """Descriptor type field (bits 8-11 of ``flags``)."""
        return (self.flags >> 8) & 0xF

    @property
    def dpl(self) -> int:
        """Descriptor privilege level (bits 13-14 of ``flags``)."""
        return (self.flags >> 13) & 0x3

    @property
    def present(self) -> bool:
        """Segment-present bit (bit 15 of ``flags``)."""
        return bool(self.flags & 0x8000)


@dataclass(frozen=True)
class TableRegister:
    """GDTR or IDTR: linear base and limit (the last valid byte offset)."""

    base: int
    limit: int


@dataclass(frozen=True)
class CpuState:
    """Registers of one CPU as lhvdbg knows them.

    ``gprs`` maps lower-case register names to values, as the machine names them
    (``rax``..``r15`` on amd64 targets, ``eax``..``edi`` on i386); ``ip``/``flags`` are the
    instruction pointer and (R)EFLAGS whatever the width. ``efer`` is 0 when the CPU has
    none to report. ``halted`` is QEMU's HLT state when known.
    """

    mode: CpuMode
    ip: int
    flags: int
    gprs: Mapping[str, int]
    segments: Mapping[str, SegmentRegister]
    gdtr: TableRegister
    idtr: TableRegister
    cr0: int
    cr2: int
    cr3: int
    cr4: int
    efer: int
    cpl: int
    halted: bool | None = None

    @property
    def tr(self) -> SegmentRegister:
        """The task register with its hidden part."""
        return self.segments["tr"]

    @property
    def ldtr(self) -> SegmentRegister:
        """The LDT register with its hidden part."""
        return self.segments["ldtr"]

    @property
    def sp(self) -> int:
        """The stack pointer (rsp or esp)."""
        return self.gprs.get("rsp", self.gprs.get("esp", 0))

    @property
    def interrupts_enabled(self) -> bool:
        """EFLAGS.IF."""
        return bool(self.flags & 0x200)


@dataclass(frozen=True)
class PicChip:
    """One 8259A as ``info pic`` shows it (Intel 8259A datasheet; QEMU hw/intc/i8259.c)."""

    irr: int
    imr: int
    isr: int
    irq_base: int
    hprio: int = 0
    init_state: int | None = None
    extra: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PicState:
    """The two cascaded 8259A PICs."""

    master: PicChip
    slave: PicChip


@dataclass(frozen=True)
class LapicState:
    """The local APIC registers lhvdbg uses (Intel SDM Vol. 3A §11.4-11.5, §11.8).

    ``isr``/``irr``/``tmr`` are 256-bit vector bitmaps as Python ints. ``lvt_timer`` is the
    raw LVT timer register. ``timer_initial``/``timer_current`` are the counts and
    ``timer_divide`` the raw divide-configuration register. ``svr`` is the spurious
    interrupt vector register; ``enabled`` is SVR bit 8 (software enable).
    """

    apic_id: int
    svr: int
    lvt_timer: int
    timer_initial: int
    timer_current: int
    timer_divide: int
    isr: int
    irr: int
    tmr: int = 0
    tpr: int = 0
    ppr: int = 0
    lvt: Mapping[str, int] = field(default_factory=dict)
    extra: Mapping[str, int] = field(default_factory=dict)  # icr, icr2, esr, apr, dfr, ldr

    @property
    def enabled(self) -> bool:
        """SVR bit 8: the APIC software enable."""
        return bool(self.svr & 0x100)

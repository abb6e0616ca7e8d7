"""Whole-table views: the GDT, the IDT, and the system tables of one CPU together.

Built from (base, limit, raw bytes, mode); pure, no target access. Entries past the table
limit are kept and marked ``beyond-limit``; in IA-32e mode a 16-byte system descriptor
(LDT, TSS, call gate) takes two GDT slots, the second marked ``second-half``
(Intel SDM Vol. 3A §3.5.1 GDTR/IDTR limits, §7.2.3, §6.10 and §6.14.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from lhvdbg.x86.cpustate import SegmentRegister
from lhvdbg.x86.layout import Decoded, TableMode, normalize_mode
from lhvdbg.x86.segments import (
    gate_layout,
    gate_size,
    is_16_byte_system_type,
    is_code,
    segment_descriptor_layout,
    selector_index,
    system_descriptor_layout,
)
from lhvdbg.x86.tss import decode_tss

__all__ = [
    "GdtEntry",
    "GdtKind",
    "GdtTable",
    "IdtEntry",
    "IdtKind",
    "IdtTable",
    "SystemTables",
    "decode_gdt",
    "decode_idt",
    "decode_tss",
    "idtr_holds_ivt",
    "tr_never_loaded",
]

#: IDTR at reset and in real mode: the 256 four-byte vectors of the real-mode interrupt
#: vector table at 0 (Intel SDM Vol. 3A §9.1.1 "Processor State After Reset", §20.1.4).
IVT_BASE, IVT_LIMIT = 0, 0x3FF
NO_IDT_YET = "no IDT loaded yet (IDTR still holds the real-mode IVT)"

GdtKind = Literal["null", "empty", "code", "data", "system", "second-half", "beyond-limit"]
IdtKind = Literal["gate", "not-present", "beyond-limit"]


@dataclass(frozen=True)
class GdtEntry:
    """One GDT slot: index, byte offset (= selector with TI=0, RPL=0), kind, decoded form.

    ``decoded`` is None only for the ``second-half`` of a 16-byte descriptor. ``raw`` holds
    the bytes decoded (16 for a 16-byte system descriptor). ``note`` explains oddities.
    """

    index: int
    offset: int
    kind: GdtKind
    raw: bytes
    decoded: Decoded | None
    note: str = ""

    @property
    def selector(self) -> int:
        """The selector naming this slot (TI=0, RPL=0)."""
        return self.offset


@dataclass(frozen=True)
class GdtTable:
    """A decoded GDT. ``truncated``: fewer bytes than ``limit + 1`` were given."""

    base: int
    limit: int
    mode: TableMode
    entries: tuple[GdtEntry, ...]
    truncated: bool = False

    def entry(self, selector: int) -> GdtEntry | None:
        """The slot a selector names (RPL/TI ignored), or None if no bytes for it."""
        index = selector_index(selector)
        if index < len(self.entries):
            return self.entries[index]
        return None

    def within_limit(self, selector: int, size: int = 8) -> bool:
        """Whether a ``size``-byte descriptor at ``selector`` lies inside the limit."""
        return selector_index(selector) * 8 + size - 1 <= self.limit


#: System types that are gates (call, task, interrupt, trap): decoded with the gate layout.
_GATE_TYPES = frozenset({0x4, 0x5, 0x6, 0x7, 0xC, 0xE, 0xF})


def _gdt_kind(desc: Decoded) -> GdtKind:
    if desc.raw == 0:
        return "empty"
    if desc.values["s"] == 0:
        return "system"
    return "code" if is_code(desc) else "data"


def decode_gdt(base: int, limit: int, data: bytes, mode: str) -> GdtTable:
    """Decode the GDT bytes ``data`` read at ``base``; ``limit`` from GDTR.

    Every whole 8-byte slot in ``data`` becomes an entry (those past ``limit`` are
    ``beyond-limit``); a trailing partial slot is ignored. Code/data descriptors decode with
    :func:`segment_descriptor_layout`, LDT/TSS descriptors with
    :func:`system_descriptor_layout` (16 bytes in IA-32e mode) and call/task gates with
    :func:`gate_layout`.
    """
    tmode = normalize_mode(mode)
    seg = segment_descriptor_layout(tmode)
    entries: list[GdtEntry] = []
    count = len(data) // 8
    i = 0
    while i < count:
        off = i * 8
        raw = bytes(data[off : off + 8])
        desc = seg.decode(raw)
        kind = "beyond-limit" if off + 7 > limit else "null" if i == 0 else _gdt_kind(desc)
        note = ""
        if kind == "system":
            is_gate = desc.values["type"] in _GATE_TYPES
            if tmode == "legacy":
                layout = gate_layout(tmode) if is_gate else system_descriptor_layout(tmode)
                desc = layout.decode(raw)
            elif is_16_byte_system_type(desc.values["type"]):
                if off + 15 <= limit and i + 1 < count:
                    raw16 = bytes(data[off : off + 16])
                    layout = gate_layout(tmode) if is_gate else system_descriptor_layout(tmode)
                    upper = f"upper half of {off:#x}"
                    entries.append(GdtEntry(i, off, "system", raw16, layout.decode(raw16)))
                    entries.append(GdtEntry(i + 1, off + 8, "second-half", raw16[8:], None, upper))
                    i += 2
                    continue
                note = "upper half of this 16-byte descriptor is beyond the GDT limit"
        entries.append(GdtEntry(i, off, kind, raw, desc, note))
        i += 1
    return GdtTable(base, limit, tmode, tuple(entries), truncated=len(data) < limit + 1)


@dataclass(frozen=True)
class IdtEntry:
    """One IDT slot: vector, byte offset, raw bytes, decoded gate, kind."""

    vector: int
    offset: int
    kind: IdtKind
    raw: bytes
    decoded: Decoded

    @property
    def present(self) -> bool:
        """Gate P bit (False beyond the limit)."""
        return self.kind == "gate"


@dataclass(frozen=True)
class IdtTable:
    """A decoded IDT. ``truncated``: fewer bytes than ``limit + 1`` were given."""

    base: int
    limit: int
    mode: TableMode
    entries: tuple[IdtEntry, ...]
    truncated: bool = False
    real_mode_ivt: bool = False  # protected/long mode with IDTR still at the reset IVT

    @property
    def entry_size(self) -> int:
        """8 or 16 bytes per gate."""
        return gate_size(self.mode)

    def covers(self, vector: int) -> bool:
        """Whether the IDT limit covers the whole gate of ``vector``."""
        return vector * self.entry_size + self.entry_size - 1 <= self.limit

    def gate(self, vector: int) -> IdtEntry | None:
        """The slot of ``vector`` if its bytes were given."""
        if 0 <= vector < len(self.entries):
            return self.entries[vector]
        return None

    @property
    def present(self) -> tuple[IdtEntry, ...]:
        """Present gates within the limit (none while IDTR still holds the real-mode IVT:
        its 4-byte vectors are no gates the kernel wrote, whatever their bits read as)."""
        if self.real_mode_ivt:
            return ()
        return tuple(e for e in self.entries if e.kind == "gate")


def decode_idt(base: int, limit: int, data: bytes, mode: str) -> IdtTable:
    """Decode the IDT bytes ``data`` read at ``base``; ``limit`` from IDTR (max 256 gates)."""
    tmode = normalize_mode(mode)
    layout = gate_layout(tmode)
    size = layout.size_bytes
    entries: list[IdtEntry] = []
    for vector in range(min(len(data) // size, 256)):
        off = vector * size
        raw = bytes(data[off : off + size])
        gate = layout.decode(raw)
        kind: IdtKind
        if off + size - 1 > limit:
            kind = "beyond-limit"
        elif gate.values["present"]:
            kind = "gate"
        else:
            kind = "not-present"
        entries.append(IdtEntry(vector, off, kind, raw, gate))
    return IdtTable(base, limit, tmode, tuple(entries), truncated=len(data) < limit + 1)


def idtr_holds_ivt(mode: str, base: int, limit: int) -> bool:
    """Protected or long mode with IDTR still at the real-mode IVT (base 0, limit 0x3ff):
    the kernel has not run ``lidt`` yet."""
    return mode not in ("real", "vm86") and base == IVT_BASE and limit == IVT_LIMIT


def tr_never_loaded(tr: SegmentRegister) -> bool:
    """TR still in its reset state: a null selector (LTR never ran; SDM Vol. 3A §9.1.1)."""
    return tr.selector & 0xFFFC == 0


@dataclass(frozen=True)
class SystemTables:
    """GDT, IDT, the TR descriptor and the TSS of one CPU, decoded together.

    ``tr`` is the task register with its hidden part (what the CPU uses). ``tr_entry`` is
    the GDT slot TR's selector names; ``tss`` the TSS body read at ``tr.base`` (partial if
    the TR limit is small). ``unavailable`` maps ``gdt``/``idt``/``tss`` to why a part
    could not be read (not captured, TR never loaded).
    """

    mode: TableMode
    tr: SegmentRegister
    gdt: GdtTable | None
    idt: IdtTable | None
    tr_entry: GdtEntry | None
    tss: Decoded | None
    unavailable: Mapping[str, str] = field(default_factory=dict)

    @property
    def tr_loaded(self) -> bool:
        """Whether LTR has loaded TR (its selector is not null)."""
        return not tr_never_loaded(self.tr)

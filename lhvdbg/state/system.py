"""Read and decode a target's system tables: GDT, IDT, the TR descriptor and the TSS.

The Target-aware glue over the pure views in :mod:`lhvdbg.x86.tables`: one memory read per
table (the whole table, ``limit + 1`` bytes), never a crash on unreadable memory — a part
that cannot be read is left out and named in ``SystemTables.unavailable``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from lhvdbg.errors import MachineError, SnapshotError
from lhvdbg.x86.cpustate import CpuState
from lhvdbg.x86.layout import Decoded, normalize_mode
from lhvdbg.x86.tables import (
    GdtEntry,
    GdtTable,
    IdtTable,
    SystemTables,
    decode_gdt,
    decode_idt,
    decode_tss,
    idtr_holds_ivt,
    tr_never_loaded,
)
from lhvdbg.x86.tss import TSS32_SIZE, TSS64_SIZE

if TYPE_CHECKING:
    from lhvdbg.state.target import Target

__all__ = ["Reader", "SystemTables", "system_tables", "tables_from_reader"]

Reader = Callable[[int, int], bytes]

#: The GDT/IDT limit is 16 bits, so a table is at most 64 KiB (SDM Vol. 3A §2.4.1).
_MAX_TABLE = 0x10000


def _read(
    read: Reader, address: int, size: int, what: str, unavailable: dict[str, str]
) -> bytes | None:
    try:
        return read(address, size)
    except (SnapshotError, MachineError) as exc:
        unavailable[what] = f"{what} at {address:#x} ({size} bytes) not readable: {exc}"
        return None


def tables_from_reader(cpu: CpuState, reader: Reader) -> SystemTables:
    """Decode the system tables of ``cpu`` reading memory with ``reader(address, size)``."""
    mode = normalize_mode(cpu.mode)
    unavailable: dict[str, str] = {}

    gdt: GdtTable | None = None
    size = min(cpu.gdtr.limit + 1, _MAX_TABLE)
    data = _read(reader, cpu.gdtr.base, size, "gdt", unavailable)
    if data is not None:
        gdt = decode_gdt(cpu.gdtr.base, cpu.gdtr.limit, data, mode)

    idt: IdtTable | None = None
    size = min(cpu.idtr.limit + 1, _MAX_TABLE)
    data = _read(reader, cpu.idtr.base, size, "idt", unavailable)
    if data is not None:
        idt = decode_idt(cpu.idtr.base, cpu.idtr.limit, data, mode)
        if idtr_holds_ivt(cpu.mode, cpu.idtr.base, cpu.idtr.limit):
            idt = replace(idt, real_mode_ivt=True)

    tr = cpu.tr
    tr_entry: GdtEntry | None = None
    tss: Decoded | None = None
    if tr_never_loaded(tr):
        unavailable["tss"] = "TR was never loaded (null selector)"
    else:
        if gdt is not None:
            tr_entry = gdt.entry(tr.selector)
        tss_size = TSS64_SIZE if mode == "ia32e" else TSS32_SIZE
        size = min(tr.limit + 1, tss_size)
        data = _read(reader, tr.base, size, "tss", unavailable)
        if data is not None:
            tss = decode_tss(data, mode)
    return SystemTables(mode, tr, gdt, idt, tr_entry, tss, unavailable)


def system_tables(target: Target) -> SystemTables:
    """GDT, IDT, TR descriptor and TSS of ``target``'s CPU (one read per table)."""
    return tables_from_reader(target.cpu(), target.read_memory)

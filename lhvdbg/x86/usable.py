"""Whether a gate, a code selector or a stack selector is usable: decided once, here.

The predicates the delivery and IRET models, the table checks and the rules share (Intel
SDM Vol. 2A INT n and IRET pseudo-code; Vol. 3A §3.4.5 descriptors, §6.11 gates). Each
answers ``(check id, reason)`` or None. Pure.
"""

from __future__ import annotations

from typing import Literal

from lhvdbg.x86.cpuview import sel_hex
from lhvdbg.x86.layout import Decoded
from lhvdbg.x86.segments import TYPE_TASK_GATE, is_code, is_data, is_system, is_valid_idt_gate_type
from lhvdbg.x86.tables import GdtTable, SystemTables

__all__ = ["code_segment_problem", "descriptor_at", "gate_problem", "stack_segment_problem"]


def gate_problem(tables: SystemTables, vector: int) -> tuple[str, str] | None:
    """Why IDT[vector] cannot deliver a hardware event at CPL 0: ``(check id, reason)``,
    or None when it can (or the IDT was not captured)."""
    if tables.idt is None:
        return None
    if not tables.idt.covers(vector):
        return "idt-limit", f"IDT[{vector:#04x}] lies beyond the IDT limit {tables.idt.limit:#x}"
    gate = tables.idt.gate(vector)
    if gate is None:
        return None
    values = gate.decoded.values
    if values.get("s", 0) or not is_valid_idt_gate_type(values["type"], tables.mode):
        return "gate-type", f"IDT[{vector:#04x}] has type {values['type']:#x}"
    if not values["present"]:
        return "gate-present", f"IDT[{vector:#04x}] is not present"
    if tables.mode == "legacy" and values["type"] == TYPE_TASK_GATE:
        return None
    return code_segment_problem(tables, values["selector"], cpl=0, ia32e=tables.mode == "ia32e")


def descriptor_at(
    gdt: GdtTable | None, selector: int
) -> tuple[Literal["null", "ldt", "limit", "unknown", "ok"], Decoded | None]:
    if selector & 0xFFFC == 0:
        return "null", None
    if selector & 0x4:
        return "ldt", None
    if gdt is None:
        return "unknown", None
    if not gdt.within_limit(selector, 8):
        return "limit", None
    entry = gdt.entry(selector)
    if entry is None or entry.decoded is None:
        return "unknown", None
    return "ok", entry.decoded


def code_segment_problem(
    tables: SystemTables, selector: int, *, cpl: int, ia32e: bool
) -> tuple[str, str] | None:
    """Why ``selector`` cannot be the code segment of an interrupt handler at ``cpl``:
    ``(check id, reason)``, or None when it can (or the GDT is unknown)."""
    state, desc = descriptor_at(tables.gdt, selector)
    if state == "null":
        return "cs-null", f"the gate's selector {sel_hex(selector)} is null"
    if state == "ldt":
        return (
            "cs-limit",
            f"the selector {sel_hex(selector)} names the LDT (TI=1); none is in use",
        )
    if state == "limit":
        limit = tables.gdt.limit if tables.gdt is not None else 0
        return (
            "cs-limit",
            f"the selector {sel_hex(selector)} lies beyond the GDT limit {limit:#x}",
        )
    if desc is None:
        return None
    v = desc.values
    if not is_code(desc):
        kind = "a system descriptor" if is_system(desc) else "a data segment"
        return "cs-type", f"GDT[{sel_hex(selector)}] is {kind}, not a code segment"
    if v["dpl"] > cpl:
        return "cs-dpl", f"GDT[{sel_hex(selector)}] has DPL {v['dpl']} > CPL {cpl}"
    if ia32e and not (v["l"] == 1 and v["db"] == 0):
        return "cs-long", (
            f"GDT[{sel_hex(selector)}] is not a 64-bit code segment (L={v['l']}, D={v['db']})"
        )
    if not v["present"]:
        return "cs-present", f"GDT[{sel_hex(selector)}] is not present"
    return None


def stack_segment_problem(
    tables: SystemTables, selector: int, *, cpl: int
) -> tuple[str, str] | None:
    """Why ``selector`` cannot be the stack segment for ``cpl`` (protected-mode stack
    switch, SS0 of the TSS): ``(check id, reason)``, or None when it can."""
    state, desc = descriptor_at(tables.gdt, selector)
    if state == "null":
        return "ss0-null", f"the stack selector {sel_hex(selector)} is null"
    if state in ("ldt", "limit"):
        return "ss0-invalid", f"the stack selector {sel_hex(selector)} lies outside the GDT"
    if selector & 3 != cpl:
        return (
            "ss0-invalid",
            f"the stack selector {sel_hex(selector)} has RPL {selector & 3} ≠ {cpl}",
        )
    if desc is None:
        return None
    v = desc.values
    if not is_data(desc) or not v["type"] & 0x2:
        return "ss0-invalid", f"GDT[{sel_hex(selector)}] is not a writable data segment"
    if v["dpl"] != cpl:
        return "ss0-invalid", f"GDT[{sel_hex(selector)}] has DPL {v['dpl']} ≠ {cpl}"
    if not v["present"]:
        return "ss0-present", f"GDT[{sel_hex(selector)}] is not present"
    return None

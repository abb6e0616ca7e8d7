"""The facts dict assertions resolve against: one JSON-like view of a stop.

Built from a snapshot (registers with hidden segment parts, decoded GDT/IDT/TSS, PIC,
LAPIC) plus what the run added (the last stop, the diagnosis report, the serial text,
saved command output). Numbers are ints, one-bit fields are booleans, so assertions
compare values, not spellings. Layout of the main keys::

    arch, mode, ip, flags, cpl, halted, interrupts_enabled
    rip rflags / eip eflags   ip and flags under their register names
    rax.. / eax..         general registers (also under regs)
    cs ss ds es fs gs ldtr tr   {selector, base, limit, flags, type, dpl, present}
    gdtr idtr             {base, limit}
    cr0 cr2 cr3 cr4 efer  raw values; bits.cr0.pg, bits.eflags.if, bits.efer.lma ... decoded
    gdt[SELECTOR]         {kind, index, base, limit, type, type_name, s, dpl, present, ...}
    idt[VECTOR]           {kind, present, offset, selector, type, type_name, dpl, ist, ...}
    tss                   decoded TSS fields (rsp0, ist1, ss0, iomap_base ...) or null
    tr_loaded             false when TR still has the reset state (null selector)
    pic.master/slave      {irr, imr, isr, irq_base, ...} or null
    lapic                 {apic_id, svr, enabled, lvt_timer, ...} or null
    symbols[NAME], provenance.accel ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from lhvdbg.state.snapshot import Snapshot
from lhvdbg.state.system import tables_from_reader
from lhvdbg.x86.cpustate import CpuState, LapicState, PicChip
from lhvdbg.x86.layout import Decoded
from lhvdbg.x86.registers import cr0_layout, cr4_layout, efer_layout, eflags_layout


def decoded_facts(decoded: Decoded) -> dict[str, object]:
    """A decoded layout as facts: one-bit fields as booleans, reserved fields left out."""
    out: dict[str, object] = {}
    for f in decoded.layout.fields:
        if f.reserved or f.name not in decoded.values:
            continue
        value = decoded.values[f.name]
        out[f.name] = bool(value) if f.is_flag and not f.has_enum else value
        name = decoded.name_of(f.name)
        if name is not None:
            out[f"{f.name}_name"] = name
    return out


def cpu_facts(cpu: CpuState) -> dict[str, object]:
    """Registers, segments with hidden parts, descriptor-table registers, control bits."""
    facts: dict[str, object] = {
        "mode": cpu.mode,
        "ip": cpu.ip,
        "flags": cpu.flags,
        "cpl": cpu.cpl,
        "halted": cpu.halted,
        "interrupts_enabled": cpu.interrupts_enabled,
        "regs": dict(cpu.gprs),
    }
    ip_name, flags_name = ("rip", "rflags") if "rax" in cpu.gprs else ("eip", "eflags")
    facts[ip_name], facts[flags_name] = cpu.ip, cpu.flags
    facts.update(cpu.gprs)
    for name, seg in cpu.segments.items():
        facts[name] = _attrs(seg, "selector", "base", "limit", "flags", "type", "dpl", "present")
    facts["gdtr"] = _attrs(cpu.gdtr, "base", "limit")
    facts["idtr"] = _attrs(cpu.idtr, "base", "limit")
    facts.update(_attrs(cpu, "cr0", "cr2", "cr3", "cr4", "efer"))
    facts["bits"] = {
        "eflags": decoded_facts(eflags_layout().decode(cpu.flags)),
        "cr0": decoded_facts(cr0_layout().decode(cpu.cr0)),
        "cr4": decoded_facts(cr4_layout().decode(cpu.cr4)),
        "efer": decoded_facts(efer_layout().decode(cpu.efer)),
    }
    return facts


def _attrs(obj: object, *names: str) -> dict[str, object]:
    return {name: getattr(obj, name) for name in names}


def _pic_chip(chip: PicChip) -> dict[str, object]:
    fields = ("irr", "imr", "isr", "irq_base", "hprio", "init_state")
    return _attrs(chip, *fields) | dict(chip.extra)


def _lapic(lapic: LapicState) -> dict[str, object]:
    out: dict[str, Any] = asdict(lapic)
    out["lvt"] = dict(lapic.lvt)
    out["enabled"] = lapic.enabled
    return out


def snapshot_facts(snapshot: Snapshot) -> dict[str, object]:
    """Everything a snapshot says, decoded, as one dict (see the module docstring)."""
    facts: dict[str, object] = {"arch": snapshot.arch}
    facts.update(cpu_facts(snapshot.cpu))
    tables = tables_from_reader(snapshot.cpu, snapshot.read)
    gdt: dict[int, object] = {}
    if tables.gdt is not None:
        for entry in tables.gdt.entries:
            item: dict[str, object] = {"kind": entry.kind, "index": entry.index}
            if entry.decoded is not None:
                item.update(decoded_facts(entry.decoded))
            if entry.note:
                item["note"] = entry.note
            gdt[entry.offset] = item
    idt: dict[int, object] = {}
    if tables.idt is not None:
        for gate in tables.idt.entries:
            idt[gate.vector] = {
                "kind": gate.kind,
                **decoded_facts(gate.decoded),
                "present": gate.present,
            }
    facts["gdt"] = gdt
    facts["idt"] = idt
    facts["tss"] = decoded_facts(tables.tss) if tables.tss is not None else None
    facts["tr_loaded"] = tables.tr_loaded
    facts["unavailable"] = dict(tables.unavailable)
    facts["pic"] = (
        {"master": _pic_chip(snapshot.pic.master), "slave": _pic_chip(snapshot.pic.slave)}
        if snapshot.pic is not None
        else None
    )
    facts["lapic"] = _lapic(snapshot.lapic) if snapshot.lapic is not None else None
    facts["symbols"] = dict(snapshot.symbols)
    facts["provenance"] = asdict(snapshot.provenance)
    facts["accel"] = snapshot.provenance.accel
    return facts


def jsonable(value: object) -> object:
    """``value`` with every mapping key a string (ints in hex), for ``--json`` output."""
    if isinstance(value, Mapping):
        return {
            (f"{k:#x}" if isinstance(k, int) else str(k)): jsonable(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value

"""The facts dict built from recorded QEMU snapshots (tests/fixtures/snapshots)."""

from __future__ import annotations

import json

from lhvdbg.scenario.facts import jsonable, snapshot_facts
from lhvdbg.scenario.paths import Missing, resolve
from tests.unit.recorded_snapshots import recorded


def _facts(name: str) -> dict[str, object]:
    return snapshot_facts(recorded(name))


def test_long_mode_tr_loaded() -> None:
    f = _facts("long-tcg")
    assert resolve(f, "mode") == "long" and resolve(f, "arch") == "amd64"
    assert resolve(f, "tr.selector") == 0x20 and resolve(f, "tr.limit") == 0x67
    assert resolve(f, "tr_loaded") is True
    # the TSS descriptor in the GDT: 16 bytes in long mode, the second half marked
    assert resolve(f, "gdt[0x20].kind") == "system"
    assert resolve(f, "gdt[0x20].type_name") == "64-bit TSS (busy)"  # ltr marked it busy
    assert resolve(f, "gdt[0x20].base") == resolve(f, "tr.base")
    assert resolve(f, "gdt[0x28].kind") == "second-half"
    assert resolve(f, "gdt[0x18].l") is True
    assert resolve(f, "idt[8].present") is True
    assert resolve(f, "idt[8].type_name") == "64-bit interrupt gate"
    assert resolve(f, "idt[8].ist") == 0 and resolve(f, "idt[8].selector") == 0x18
    assert resolve(f, "tss.rsp0") == 0 and resolve(f, "tss.io_map_base") == 0
    assert resolve(f, "pic.master.irq_base") == 0x20 and resolve(f, "pic.master.imr") == 0xFE
    assert resolve(f, "lapic.enabled") is True
    assert resolve(f, "bits.efer.lma") is True and resolve(f, "bits.cr0.pg") is True
    assert resolve(f, "bits.eflags.if") is resolve(f, "interrupts_enabled")
    assert resolve(f, "rsp") == resolve(f, "regs.rsp")
    assert resolve(f, "rip") == resolve(f, "ip") and resolve(f, "rflags") == resolve(f, "flags")
    assert resolve(f, "accel") == "tcg"


def test_tr_never_loaded() -> None:
    f = _facts("long-tr-never-loaded")
    assert resolve(f, "tr.selector") == 0 and resolve(f, "tr.limit") == 0xFFFF
    assert resolve(f, "tr.type") == 0xB  # busy: the reset state
    assert resolve(f, "tr_loaded") is False
    assert resolve(f, "tss") is None
    assert resolve(f, "unavailable.tss") == "TR was never loaded (null selector)"
    assert isinstance(resolve(f, "tss.rsp0"), Missing)


def test_protected_i386() -> None:
    f = _facts("protected-i386")
    assert resolve(f, "mode") == "protected" and resolve(f, "arch") == "i386"
    assert resolve(f, "idt[8].type_name") == "32-bit interrupt gate"
    assert isinstance(resolve(f, "idt[8].ist"), Missing)  # no IST in 8-byte gates
    assert resolve(f, "tss.ss0") == 0x10 and resolve(f, "tss.io_map_base") == 0x68
    assert resolve(f, "tss.esp0") == 0x107000
    assert resolve(f, "eip") == resolve(f, "ip") and isinstance(resolve(f, "rip"), Missing)


def test_jsonable_has_string_keys() -> None:
    f = jsonable(_facts("long-tcg"))
    text = json.dumps(f)
    back = json.loads(text)
    assert back["idt"]["0x20"]["present"] is True
    assert back["gdt"]["0x0"]["kind"] == "null"

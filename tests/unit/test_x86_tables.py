"""GDT/IDT views and system_tables over real captured snapshots and synthetic tables."""

from __future__ import annotations

import dataclasses
import struct

from lhvdbg.state.snapshot import MemoryRegion
from lhvdbg.state.system import system_tables
from lhvdbg.state.target import SnapshotTarget
from lhvdbg.x86.segments import gate_layout, segment_descriptor_layout, system_descriptor_layout
from lhvdbg.x86.tables import decode_gdt, decode_idt
from tests.unit.recorded_snapshots import recorded, recorded_tables

SEG64 = segment_descriptor_layout("long")
SYS64 = system_descriptor_layout("long")


def test_long_snapshot_tables() -> None:
    snap = recorded("long-tcg")
    t = recorded_tables(snap)
    assert t.mode == "ia32e" and t.tr_loaded and dict(t.unavailable) == {}
    assert t.gdt is not None and t.idt is not None and t.tss is not None
    kinds = [e.kind for e in t.gdt.entries]
    assert kinds == ["null", "code", "data", "code", "system", "second-half"]
    assert t.gdt.entries[3].decoded is not None and t.gdt.entries[3].decoded.l == 1
    tr = t.tr_entry
    assert tr is not None and tr.decoded is not None and tr.offset == 0x20
    assert tr.decoded.base == snap.cpu.tr.base == 0x1001C0
    assert tr.decoded.name_of("type") == "64-bit TSS (busy)"
    assert len(t.idt.entries) == 256 and len(t.idt.present) == 256
    assert t.idt.entries[8].decoded.selector == 0x18
    assert t.tss.layout.name == "tss64" and t.tss.io_map_base == 0


def test_protected_snapshot_tables() -> None:
    t = recorded_tables(recorded("protected-i386"))
    assert t.mode == "legacy"
    assert t.gdt is not None and [e.kind for e in t.gdt.entries][-1] == "system"
    assert t.tss is not None and (t.tss.esp0, t.tss.ss0, t.tss.io_map_base) == (
        0x107000,
        0x10,
        0x68,
    )
    assert t.idt is not None and t.idt.entry_size == 8 and t.idt.covers(255)


def test_tr_never_loaded_snapshot() -> None:
    t = recorded_tables(recorded("long-tr-never-loaded"))
    assert not t.tr_loaded and t.tss is None and t.tr_entry is None
    assert "never loaded" in t.unavailable["tss"]


def test_unreadable_tables_are_marked_not_raised() -> None:
    snap = recorded("long-tcg")
    bare = dataclasses.replace(snap, memory=tuple(r for r in snap.memory if r.label == "gdt"))
    t = recorded_tables(bare)
    assert t.gdt is not None and t.idt is None and t.tss is None
    assert set(t.unavailable) == {"idt", "tss"}
    assert "0x104000" in t.unavailable["idt"]


def test_gdt_entries_beyond_limit_and_split_16_byte_descriptor() -> None:
    code = SEG64.encode(limit=0xFFFFF, type=0xA, s=1, present=1, l=1, g=1)
    tss = SYS64.encode(base=0xFFFF800000001000, limit=0x67, type=0x9, present=1)
    data = struct.pack("<QQ", 0, code) + SYS64.to_bytes(tss) + struct.pack("<Q", code)
    gdt = decode_gdt(0x5000, 0x1F, data, "long")
    assert [e.kind for e in gdt.entries] == [
        "null",
        "code",
        "system",
        "second-half",
        "beyond-limit",
    ]
    assert gdt.entries[2].decoded is not None and gdt.entries[2].decoded.base == 0xFFFF800000001000
    assert gdt.within_limit(0x10, 16) and not gdt.within_limit(0x20)
    # limit cutting the 16-byte descriptor in half
    half = decode_gdt(0x5000, 0x17, data[:0x18], "long")
    assert half.entries[2].kind == "system" and "beyond the GDT limit" in half.entries[2].note
    # legacy mode: no second halves, 8-byte system descriptors
    legacy = decode_gdt(0, len(data) - 1, data, "protected")
    assert "second-half" not in [e.kind for e in legacy.entries]
    assert decode_gdt(0, 0x17, data[:0x10], "long").truncated


def test_idt_beyond_limit_and_coverage() -> None:
    gate = gate_layout("protected").encode(offset=0x1009B8, selector=0x10, type=0xE, present=1)
    data = gate_layout("protected").to_bytes(gate) * 4
    idt = decode_idt(0x100100, 0x17, data, "protected")
    assert [e.kind for e in idt.entries] == ["gate", "gate", "gate", "beyond-limit"]
    assert idt.covers(2) and not idt.covers(3)
    assert idt.gate(3) is not None and idt.gate(4) is None
    assert [e.vector for e in idt.present] == [0, 1, 2]


def test_one_read_per_table() -> None:
    snap = recorded("long-tcg")
    reads: list[tuple[int, int]] = []

    class Counting(SnapshotTarget):
        def read_memory(self, address: int, size: int) -> bytes:
            reads.append((address, size))
            return super().read_memory(address, size)

    system_tables(Counting(snap))
    assert reads == [(0x100170, 0x30), (0x104000, 0x1000), (0x1001C0, 0x68)]
    assert isinstance(snap.memory[0], MemoryRegion)


def test_call_gates_in_the_gdt_decode_as_gates() -> None:
    legacy_gate = gate_layout("protected").encode(
        offset=0x101234, selector=0x08, param_count=2, type=0xC, dpl=3, present=1
    )
    gdt = decode_gdt(0, 0xF, struct.pack("<QQ", 0, legacy_gate), "protected")
    entry = gdt.entries[1]
    assert entry.kind == "system" and entry.decoded is not None
    assert entry.decoded.layout is gate_layout("protected")
    assert (entry.decoded.offset, entry.decoded.param_count) == (0x101234, 2)
    wide = gate_layout("long").encode(offset=0xFFFFFFFF80000000, selector=8, type=0xC, present=1)
    gdt = decode_gdt(0, 0x17, struct.pack("<Q", 0) + gate_layout("long").to_bytes(wide), "long")
    assert [e.kind for e in gdt.entries] == ["null", "system", "second-half"]
    assert gdt.entries[1].decoded is not None
    assert gdt.entries[1].decoded.name_of("type") == "64-bit call gate"
    assert gdt.entries[1].decoded.offset == 0xFFFFFFFF80000000

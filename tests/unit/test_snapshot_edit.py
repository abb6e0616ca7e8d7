"""The snapshot editing helper: one field changes, through the layout, and nothing else."""

from __future__ import annotations

import pytest

from lhvdbg.errors import DecodeError
from lhvdbg.x86.segments import gate_layout, segment_descriptor_layout, system_descriptor_layout
from lhvdbg.x86.tss import tss64_layout
from tests.unit.recorded_snapshots import recorded
from tests.unit.snapshot_edit import with_descriptor, with_gate, with_tss, write


def _changed_bytes(a: bytes, b: bytes) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


def test_with_gate_clears_only_the_present_bit_of_that_gate() -> None:
    snap = recorded("long-tcg")
    idt = snap.cpu.idtr.base
    edited = with_gate(snap, 0x20, present=0)
    before, after = snap.read(idt, 4096), edited.read(idt, 4096)
    assert _changed_bytes(before, after) == [0x20 * 16 + 5]  # the byte with P (bit 47)
    assert gate_layout("long").decode(after[0x200:0x210]).present == 0
    assert snap.read(idt + 0x205, 1) != after[0x205:0x206]  # the original is unchanged


def test_with_tss_writes_the_field_at_its_sdm_offset() -> None:
    snap = recorded("long-tcg")
    base = snap.cpu.segments["tr"].base
    edited = with_tss(snap, ist2=0x200008)
    assert edited.read(base + 0x2C, 8) == (0x200008).to_bytes(8, "little")  # IST2 at 0x2c
    assert tss64_layout().decode(edited.read(base, 0x68)).ist2 == 0x200008
    assert _changed_bytes(snap.read(base, 0x68), edited.read(base, 0x68)) == [0x2C, 0x2E]


def test_with_descriptor_code_data_and_16_byte_system_descriptors() -> None:
    snap = recorded("long-tcg")
    gdt = snap.cpu.gdtr.base
    user = with_descriptor(snap, 0x10, type=0xA, dpl=3, l=1, db=0)
    d = segment_descriptor_layout("long").decode(user.read(gdt + 0x10, 8))
    assert (d.type, d.dpl, d.l, d.db, d.present, d.limit) == (0xA, 3, 1, 0, 1, 0xFFFFF)
    tr = snap.cpu.segments["tr"].selector
    moved = with_descriptor(snap, tr, base=0x1_0000_2000)  # needs the upper 8 bytes
    t = system_descriptor_layout("long").decode(moved.read(gdt + tr, 16))
    assert t.base == 0x1_0000_2000 and t.limit == snap.cpu.segments["tr"].limit


def test_edits_refuse_unknown_fields_and_memory_outside_the_capture() -> None:
    snap = recorded("long-tcg")
    with pytest.raises(DecodeError):
        with_gate(snap, 8, colour=1)
    with pytest.raises(DecodeError):
        with_gate(snap, 8, ist=8)  # three bits
    with pytest.raises(AssertionError, match="not in a captured region"):
        write(snap, 0x10, b"\0")

"""Selectors, descriptors, gates from annotated bytes (Intel SDM Vol. 3A §3.4, §6.11, §6.14)."""

from __future__ import annotations

import pytest

from lhvdbg.errors import DecodeError
from lhvdbg.x86.describe import describe_descriptor, describe_gate, describe_selector
from lhvdbg.x86.segments import (
    gate_layout,
    gate_size,
    is_code,
    is_data,
    is_tss_type,
    limit_bytes,
    segment_descriptor_layout,
    selector_layout,
    system_descriptor_layout,
)

# Pebbles' TSS descriptor, as x/2wx prints it: 0x09500067 0x00008910.
PEBBLES_TSS_DESC = bytes(
    [
        0x67, 0x00,  # limit 15:0 = 0x0067
        0x50, 0x09, 0x10,  # base 23:0 = 0x100950
        0x89,  # P=1 DPL=0 S=0 type=9 (32-bit TSS, available)
        0x00,  # G=0 D/B=0 L=0 AVL=0, limit 19:16 = 0
        0x00,  # base 31:24 = 0
    ]
)  # fmt: skip

# Pebbles' #DF gate: 0x001009b8 0x00108e00.
PEBBLES_DF_GATE = bytes(
    [
        0xB8, 0x09,  # offset 15:0 = 0x09b8
        0x10, 0x00,  # selector = 0x0010 (kernel CS)
        0x00,  # reserved / parameter count
        0x8E,  # P=1 DPL=0 S=0 type=0xE (32-bit interrupt gate)
        0x10, 0x00,  # offset 31:16 = 0x0010
    ]
)  # fmt: skip

# A flat 64-bit kernel code segment: 0x00af9a000000ffff.
CODE64 = bytes(
    [
        0xFF, 0xFF,  # limit 15:0
        0x00, 0x00, 0x00,  # base 23:0
        0x9A,  # P=1 DPL=0 S=1 type=0xA (code, execute/read)
        0xAF,  # G=1 D=0 L=1 AVL=0, limit 19:16 = 0xF
        0x00,  # base 31:24
    ]
)  # fmt: skip

# A 16-byte 64-bit TSS descriptor, base 0xffff800000123450, limit 0x67, busy.
TSS64_DESC = bytes(
    [
        0x67, 0x00,  # limit 15:0
        0x50, 0x34, 0x12,  # base 23:0
        0x8B,  # P=1 DPL=0 S=0 type=0xB (64-bit TSS, busy)
        0x00,  # G=0, limit 19:16 = 0
        0x00,  # base 31:24
        0x00, 0x80, 0xFF, 0xFF,  # base 63:32
        0x00, 0x00, 0x00, 0x00,  # reserved; bits 8-12 of this dword must be zero
    ]
)  # fmt: skip

# A 64-bit interrupt gate to 0xffffffff80001234 through CS 0x08, IST 2, DPL 3.
GATE64 = bytes(
    [
        0x34, 0x12,  # offset 15:0
        0x08, 0x00,  # selector 0x0008
        0x02,  # IST = 2
        0xEE,  # P=1 DPL=3 S=0 type=0xE (64-bit interrupt gate)
        0x00, 0x80,  # offset 31:16
        0xFF, 0xFF, 0xFF, 0xFF,  # offset 63:32
        0x00, 0x00, 0x00, 0x00,  # reserved
    ]
)  # fmt: skip


def test_pebbles_tss_descriptor() -> None:
    d = segment_descriptor_layout("protected").decode(PEBBLES_TSS_DESC)
    assert d.raw == 0x00008910_09500067
    assert (d.base, d.limit, d.type, d.s, d.dpl, d.present) == (0x100950, 0x67, 9, 0, 0, 1)
    assert (d.l, d.db, d.g, d.avl) == (0, 0, 0, 0)
    assert d.name_of("type") == "32-bit TSS (available)"
    assert describe_descriptor(d) == (
        "32-bit TSS (available), base 0x100950, limit 0x67, DPL 0, present"
    )


def test_type_names_depend_on_mode_and_s() -> None:
    legacy = segment_descriptor_layout("protected").decode(PEBBLES_TSS_DESC)
    ia32e = segment_descriptor_layout("long").decode(PEBBLES_TSS_DESC)
    assert ia32e.name_of("type") == "64-bit TSS (available)"
    assert legacy.replace(type=1).name_of("type") == "16-bit TSS (available)"
    assert ia32e.replace(type=1).name_of("type") == "reserved"
    assert legacy.replace(s=1).name_of("type") == "code, execute-only, accessed"


def test_pebbles_df_gate() -> None:
    g = gate_layout("protected").decode(PEBBLES_DF_GATE)
    assert g.raw == 0x00108E00_001009B8
    assert (g.offset, g.selector, g.type, g.dpl, g.present) == (0x1009B8, 0x10, 0xE, 0, 1)
    assert g.name_of("type") == "32-bit interrupt gate"
    assert describe_gate(g) == "32-bit interrupt gate -> 0x0010:0x1009b8, DPL 0, present"


def test_code64_segment() -> None:
    d = segment_descriptor_layout("long").decode(CODE64)
    assert (d.base, d.limit, d.g, d.l, d.db, d.type, d.s) == (0, 0xFFFFF, 1, 1, 0, 0xA, 1)
    assert limit_bytes(d) == 0xFFFFFFFF
    assert is_code(d) and not is_data(d)
    assert d.name_of("type") == "code, execute/read"
    assert describe_descriptor(d).endswith("present, 64-bit")


def test_16_byte_tss_descriptor() -> None:
    layout = system_descriptor_layout("long")
    assert layout.size_bytes == 16
    d = layout.decode(TSS64_DESC)
    assert (d.base, d.limit, d.type, d.present, d.zero_type) == (
        0xFFFF800000123450,
        0x67,
        0xB,
        1,
        0,
    )
    assert d.name_of("type") == "64-bit TSS (busy)"
    assert layout.encode(
        base=0xFFFF800000123450, limit=0x67, type=0xB, present=1
    ) == int.from_bytes(TSS64_DESC, "little")
    assert system_descriptor_layout("protected").size_bytes == 8


def test_gate64_with_ist() -> None:
    g = gate_layout("long").decode(GATE64)
    assert (g.offset, g.selector, g.ist, g.type, g.dpl, g.present) == (
        0xFFFFFFFF80001234,
        8,
        2,
        0xE,
        3,
        1,
    )
    assert g.name_of("type") == "64-bit interrupt gate"
    assert "IST2" in describe_gate(g)
    assert gate_size("long") == 16 and gate_size("protected") == 8


def test_selector() -> None:
    s = selector_layout().decode(0x2B)
    assert (s.index, s.ti, s.rpl) == (5, 0, 3)
    assert describe_selector(s) == "GDT index 5 (0x0028), RPL 3"
    assert selector_layout().decode(0x0C).name_of("ti") == "LDT"


def test_tss_type_validity_per_mode() -> None:
    assert is_tss_type(0x9, "long") and is_tss_type(0xB, "protected")
    assert is_tss_type(0x1, "protected") and not is_tss_type(0x1, "long")
    assert not is_tss_type(0x2, "protected")


def test_wrong_sizes_raise_decode_error() -> None:
    with pytest.raises(DecodeError, match="needs 16 bytes, got 8"):
        gate_layout("long").decode(PEBBLES_DF_GATE)

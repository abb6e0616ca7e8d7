"""32-bit and 64-bit TSS layouts (Intel SDM Vol. 3A §7.2.1 Figure 7-2, §7.7 Figure 7-11)."""

from __future__ import annotations

import struct

import pytest

from lhvdbg.x86.tss import (
    decode_tss,
    ist_min_limit,
    ist_offset,
    rsp_min_limit,
    tss32_layout,
    tss64_layout,
)

# Pebbles' TSS body at 0x100950 (background.md): 8 bytes zero, SS0 = 0x0018 at offset 8,
# everything else zero up to the I/O map base 0x0068 at offset 102.
PEBBLES_TSS = (
    struct.pack("<HH", 0, 0)  # 0x00 previous task link, reserved
    + struct.pack("<I", 0)  # 0x04 ESP0
    + struct.pack("<HH", 0x18, 0)  # 0x08 SS0 = kernel data, reserved
    + bytes(0x64 - 0x0C)  # 0x0c..0x63: ESP1/SS1, ESP2/SS2, CR3, EIP, EFLAGS, GPRs, segs, LDT
    + struct.pack("<H", 0)  # 0x64 T bit (0) and reserved
    + struct.pack("<H", 0x68)  # 0x66 I/O map base = 0x68 (no bitmap)
)

# A 64-bit TSS with RSP0 and IST1/IST7 set.
TSS64 = (
    struct.pack("<I", 0)  # 0x00 reserved
    + struct.pack("<QQQ", 0xFFFF800000010000, 0, 0)  # 0x04 RSP0, 0x0c RSP1, 0x14 RSP2
    + struct.pack("<Q", 0)  # 0x1c reserved
    + struct.pack("<7Q", 0x200000, 0, 0, 0, 0, 0, 0x7F0000)  # 0x24 IST1 .. 0x54 IST7
    + struct.pack("<QH", 0, 0)  # 0x5c reserved, 0x64 reserved
    + struct.pack("<H", 0x68)  # 0x66 I/O map base
)


def test_pebbles_tss32() -> None:
    assert len(PEBBLES_TSS) == 0x68
    t = tss32_layout().decode(PEBBLES_TSS)
    assert (t.ss0, t.esp0, t.io_map_base, t.t, t.link) == (0x18, 0, 0x68, 0, 0)
    assert t.missing == ()


def test_tss32_field_offsets() -> None:
    layout = tss32_layout()
    assert layout.field("cr3").pieces == ((0x1C * 8, 0x20 * 8 - 1),)
    assert layout.field("ldt").pieces[0][0] == 0x60 * 8
    assert layout.field("io_map_base").pieces[0][0] == 0x66 * 8
    raw = layout.encode(eip=0x100000, eflags=0x202, cs=0x10, t=1)
    t = layout.decode(raw)
    assert (t.eip, t.eflags, t.cs, t.t) == (0x100000, 0x202, 0x10, 1)


def test_tss64() -> None:
    t = tss64_layout().decode(TSS64)
    assert (t.rsp0, t.ist1, t.ist7, t.ist2, t.io_map_base) == (
        0xFFFF800000010000,
        0x200000,
        0x7F0000,
        0,
        0x68,
    )


# Intel SDM Vol. 3A Figure 7-11 (64-bit TSS format), typed from the figure: byte offset
# of each 8-byte field (the figure shows each as two dwords, lower half first).
SDM_TSS64_OFFSETS = {
    "rsp0": 0x04,
    "rsp1": 0x0C,
    "rsp2": 0x14,
    "ist1": 0x24,
    "ist2": 0x2C,
    "ist3": 0x34,
    "ist4": 0x3C,
    "ist5": 0x44,
    "ist6": 0x4C,
    "ist7": 0x54,
}


def test_ist_offsets_and_limits_match_the_sdm() -> None:
    assert [ist_offset(n) for n in range(1, 8)] == [0x24, 0x2C, 0x34, 0x3C, 0x44, 0x4C, 0x54]
    assert ist_min_limit(1) == 0x2B and ist_min_limit(7) == 0x5B
    assert rsp_min_limit(0) == 0x0B
    with pytest.raises(ValueError):
        ist_offset(0)


@pytest.mark.parametrize(("name", "offset"), SDM_TSS64_OFFSETS.items())
def test_tss64_layout_puts_each_stack_pointer_where_figure_7_11_does(
    name: str, offset: int
) -> None:
    assert tss64_layout().field(name).pieces == ((offset * 8, offset * 8 + 63),)
    # and a value written at that byte offset decodes as that field
    data = bytearray(0x68)
    data[offset : offset + 8] = (0x1122334455667788).to_bytes(8, "little")
    assert getattr(tss64_layout().decode(bytes(data)), name) == 0x1122334455667788


def test_partial_tss_leaves_fields_beyond_the_data_missing() -> None:
    t = decode_tss(TSS64[:0x2C], "long")  # limit 0x2b: through IST1
    assert t.ist1 == 0x200000
    assert "ist2" in t.missing and "io_map_base" in t.missing
    assert "rsp0" not in t.missing
    longer = decode_tss(TSS64 + b"\xff" * 32, "long")  # an I/O bitmap after it is cut off
    assert longer.missing == () and longer.io_map_base == 0x68

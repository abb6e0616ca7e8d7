"""Byte-level instruction recognition (lhvdbg.x86.insn_sites) beyond ``scan``."""

from __future__ import annotations

import pytest

from lhvdbg.x86.insn_sites import lidt_sites, out_ending_at

BASE = 0x100000


def test_lidt_sites_take_memory_forms_and_their_prefixes() -> None:
    code = bytes.fromhex(
        "0f011d00101000"  # lidt (0x101000)             at +0
        "0f01d8"  # ModRM.mod 3: vmrun, not lidt          at +7
        "0f0115"  # lgdt, reg 2                           at +10
        "48670f0118"  # REX.W + addr-size prefix, lidt (%eax)  at +13 (opcode at +15)
        "0f01"  # cut off at the end of the segment
    )
    assert lidt_sites(code, BASE) == {BASE, BASE + 13, BASE + 14, BASE + 15}


@pytest.mark.parametrize(
    ("code", "found"),
    [
        (bytes.fromhex("b0fee664"), (0x64, 1)),  # mov $0xfe,%al; out %al,$0x64
        (bytes.fromhex("e7ee"), (0xEE, 4)),  # out %eax,$0xee: the immediate is any byte
        (bytes.fromhex("66baf90cee"), (None, 1)),  # mov $0xcf9,%dx; out %al,(%dx)
        (bytes.fromhex("ef"), (None, 4)),
        (bytes.fromhex("90f4"), None),
        (b"", None),
    ],
)
def test_the_out_that_ends_just_before_the_stop(
    code: bytes, found: tuple[int | None, int] | None
) -> None:
    assert out_ending_at(code) == found

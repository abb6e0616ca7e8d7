"""Byte-level instruction recognition (lhvdbg.x86.insn_sites) beyond ``scan``."""

from __future__ import annotations

import pytest

from lhvdbg.x86.insn_sites import lidt_sites, may_stay_in_place, out_ending_at

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


@pytest.mark.parametrize(
    ("hex_bytes", "stays"),
    [
        ("0d00000080", False),  # or $0x80000000,%eax (the CI run's "step" to itself)
        ("0f22c0", False),  # mov %eax,%cr0
        ("a490", False),  # movsb without REP: one move, the next instruction
        ("f3a4", True),  # rep movsb: one iteration a step
        ("f348ab", True),  # rep stosq (REX.W after REP)
        ("f2ae", True),  # repne scasb
        ("f490", True),  # hlt
        ("ebfe", True),  # jmp .
        ("75fe", True),  # jne .
        ("e2fe", True),  # loop .
        ("ebfd", False),  # jmp to 1 byte before itself
        ("e9fbffffff", True),  # jmp rel32 .
        ("e9faffffff", False),
        ("0f84faffffff", True),  # je rel32 .
        ("2ee9faffffff", True),  # with a segment prefix the jump is 6 bytes long
        ("", True),  # not readable: cannot tell, so may stay
        ("f3", True),
    ],
)
def test_which_instructions_a_step_may_leave_in_place(hex_bytes: str, stays: bool) -> None:
    assert may_stay_in_place(bytes.fromhex(hex_bytes)) is stays

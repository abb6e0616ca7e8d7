"""Instruction bytes recognised without a disassembler (pure): where a kernel image may
execute the instructions a history records, and what a few bytes at a stopped RIP are.

A byte scan, not a disassembly: every place the opcode bytes of ``lgdt``, ``lidt``,
``ltr``, ``mov CRn, reg``, ``wrmsr``, ``sti``, ``cli`` or ``out`` appear, plus the
addresses of up to two prefix bytes before a two-byte opcode (REX, operand/address size).
Under TCG a breakpoint at an address where no instruction starts never fires (QEMU
compares the PC), so the false positives cost nothing but a breakpoint slot.

Encodings: Intel SDM Vol. 2 — LGDT/LIDT ``0F 01 /2``, ``/3`` (memory operand), LTR
``0F 00 /3``, MOV to control register ``0F 22 /r`` (ModRM.reg is the CR number), WRMSR
``0F 30``, STI ``FB``, CLI ``FA``, OUT ``E6 ib``/``E7 ib`` (port in the immediate) and
``EE``/``EF`` (port in DX).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lhvdbg.x86.cpustate import Arch

__all__ = [
    "HLT",
    "OUT_OPCODES",
    "PREFIXES",
    "Site",
    "describe_instruction",
    "lidt_sites",
    "may_stay_in_place",
    "out_ending_at",
    "scan",
]

PREFIXES = frozenset({0x66, 0x67, 0xF2, 0xF3, *range(0x40, 0x50)})
OUT_OPCODES = {0xE6: 1, 0xE7: 4, 0xEE: 1, 0xEF: 4}  # size before a 0x66 prefix
OUT_IMM8 = (0xE6, 0xE7)  # out imm8, al / eax: the port is the next byte; EE/EF use DX
HLT = 0xF4


@dataclass(frozen=True)
class Site:
    """A possible instruction start: ``kind`` (``lgdt``, ``lidt``, ``ltr``, ``mov-cr``,
    ``wrmsr``, ``sti``, ``cli``, ``out``), ``port`` (an ``out imm8``'s port), ``cr``
    (the CR a ``mov`` writes), ``size`` (an ``out``'s operand bytes), ``rex_r`` (a
    REX.R prefix before ``mov CRn``: CR8..15)."""

    address: int
    kind: str
    port: int | None = None
    cr: int | None = None
    size: int = 1


def _with_prefixes(data: bytes, i: int, vaddr: int, site: Site) -> list[Site]:
    """``site`` at ``i`` and at the one or two prefix bytes before it."""
    out = [site]
    j = i
    while j > 0 and i - j < 2 and data[j - 1] in PREFIXES:
        j -= 1
        prefix = data[j]
        cr = site.cr
        size = site.size
        if site.kind == "mov-cr" and prefix & 0xF4 == 0x44 and cr is not None:
            cr |= 8  # REX.R extends ModRM.reg
        if site.kind == "out" and prefix == 0x66 and size == 4:
            size = 2
        out.append(Site(vaddr + j, site.kind, site.port, cr, size))
    return out


def scan(data: bytes, vaddr: int, *, ports: Iterable[int] | None = None) -> list[Site]:
    """Every candidate site in ``data`` (loaded at ``vaddr``). With ``ports``, an
    ``out imm8`` is kept only when its port is one of them (``out dx`` always is)."""
    wanted = None if ports is None else frozenset(ports)
    sites: list[Site] = []
    n = len(data)
    for i, byte in enumerate(data):
        if byte == 0xFB:
            sites.append(Site(vaddr + i, "sti"))
        elif byte == 0xFA:
            sites.append(Site(vaddr + i, "cli"))
        elif byte in OUT_OPCODES:
            port = None
            if byte in (0xE6, 0xE7):
                if i + 1 >= n:
                    continue
                port = data[i + 1]
                if wanted is not None and port not in wanted:
                    continue
            site = Site(vaddr + i, "out", port=port, size=OUT_OPCODES[byte])
            sites += _with_prefixes(data, i, vaddr, site)
        elif byte == 0x0F and i + 2 < n:
            op, modrm = data[i + 1], data[i + 2]
            reg, mod = modrm >> 3 & 7, modrm >> 6
            site_or_none: Site | None = None
            if op == 0x01 and mod != 3 and reg in (2, 3):
                site_or_none = Site(vaddr + i, "lgdt" if reg == 2 else "lidt")
            elif op == 0x00 and reg == 3:
                site_or_none = Site(vaddr + i, "ltr")
            elif op == 0x22 and reg in (0, 2, 3, 4):
                site_or_none = Site(vaddr + i, "mov-cr", cr=reg)
            elif op == 0x30:
                site_or_none = Site(vaddr + i, "wrmsr")
            if site_or_none is not None:
                sites += _with_prefixes(data, i, vaddr, site_or_none)
    return sites


def lidt_sites(data: bytes, vaddr: int) -> set[int]:
    """Addresses in ``data`` (loaded at ``vaddr``) where a ``lidt`` (``0F 01 /3``, memory
    operand) may start, with the one or two prefix bytes before it (``bytes.find``: this
    runs on every session start, over the whole image)."""
    found: set[int] = set()
    start = 0
    while True:
        i = data.find(b"\x0f\x01", start)
        if i < 0 or i + 2 >= len(data):
            return found
        start = i + 1
        modrm = data[i + 2]
        if (modrm >> 3) & 7 == 3 and modrm >> 6 != 3:
            found.update(s.address for s in _with_prefixes(data, i, vaddr, Site(vaddr + i, "lidt")))


def out_ending_at(code: bytes) -> tuple[int | None, int] | None:
    """The ``out`` whose last byte ends ``code`` (the bytes just before a stopped
    instruction pointer): ``(port, operand bytes)`` with ``port`` None when it is DX's,
    else None. ``E6 ib``/``E7 ib`` is checked first (its immediate may be any byte)."""
    if len(code) >= 2 and code[-2] in OUT_IMM8:
        return code[-1], OUT_OPCODES[code[-2]]
    if code and code[-1] in (0xEE, 0xEF):
        return None, OUT_OPCODES[code[-1]]
    return None


#: INS, OUTS, MOVS, CMPS, STOS, LODS, SCAS: one iteration a step under REP/REPNE.
_STRING_OPS = frozenset({0x6C, 0x6D, 0x6E, 0x6F, *range(0xA4, 0xA8), *range(0xAA, 0xB0)})
#: Prefixes that may come before them or before a jump (segment, LOCK, sizes, REX).
_ANY_PREFIX = PREFIXES | {0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0xF0}


def may_stay_in_place(code: bytes) -> bool:
    """Whether one step of the instruction at the start of ``code`` may end at its own
    address (Intel SDM Vol. 2): a REP/REPNE string instruction (one iteration a step), HLT,
    or a jump, conditional jump or LOOP/JCXZ to itself. True when ``code`` is too short to
    tell."""
    i, repeated = 0, False
    while i < len(code) and code[i] in _ANY_PREFIX:
        repeated = repeated or code[i] in (0xF2, 0xF3)
        i += 1
    rest = code[i:]
    if len(rest) < 2:
        return True
    op = rest[0]
    if op in _STRING_OPS:
        return repeated
    if op == HLT:
        return True
    # rel8 to itself: JMP EB, Jcc 70-7F, LOOPNE/LOOPE/LOOP/JCXZ E0-E3 (2 bytes, rel -2)
    if (op == 0xEB or 0x70 <= op <= 0x7F or 0xE0 <= op <= 0xE3) and rest[1] == 0xFE:
        return True
    # rel32 to itself: JMP E9 (5 bytes, rel -5), Jcc 0F 80-8F (6 bytes, rel -6)
    if op == 0xE9 and rest[1:5] == (-5 - i).to_bytes(4, "little", signed=True):
        return True
    return (
        op == 0x0F
        and 0x80 <= rest[1] <= 0x8F
        and rest[2:6] == (-6 - i).to_bytes(4, "little", signed=True)
    )


# A few one- and two-byte instructions that matter when reading an interrupted RIP.
_ONE_BYTE = {
    HLT: "hlt",
    0xFB: "sti",
    0xFA: "cli",
    0xCF: "iret",
    0xCC: "int3",
    0x90: "nop",
    0xC3: "ret",
}


def describe_instruction(code: bytes, arch: Arch) -> str | None:
    """Name the instruction at the start of ``code`` when it is one that matters here
    (``hlt``, ``sti``, ``iretq``, ``int 0x30``, ``ud2``, ``call``, ``push``), else None."""
    if not code:
        return None
    b = code
    if arch == "amd64" and len(b) >= 2 and b[0] == 0x48 and b[1] == 0xCF:
        return "iretq"
    if len(b) >= 2 and b[0] == 0x66 and b[1] == 0xCF:
        return "iretw"
    if len(b) >= 2 and b[0] == 0x0F and b[1] == 0x0B:
        return "ud2"
    if len(b) >= 2 and b[0] == 0xCD:
        return f"int {b[1]:#04x}"
    if len(b) >= 2 and b[0] == 0xEB and b[1] == 0xFE:
        return "jmp . (spin)"
    if b[0] == 0xE8:
        return "call"
    if 0x50 <= b[0] <= 0x57 or (
        arch == "amd64" and b[0] == 0x41 and len(b) > 1 and 0x50 <= b[1] <= 0x57
    ):
        return "push"
    return _ONE_BYTE.get(b[0])

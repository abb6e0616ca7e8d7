"""Where a kernel image may execute the instructions a history records (pure).

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

PREFIXES = frozenset({0x66, 0x67, 0xF2, 0xF3, *range(0x40, 0x50)})
OUT_OPCODES = {0xE6: 1, 0xE7: 4, 0xEE: 1, 0xEF: 4}  # size before a 0x66 prefix


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

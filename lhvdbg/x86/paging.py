"""Paging-structure entries and a software page walk.

Intel SDM Vol. 3A §4.3 (32-bit paging, Tables 4-4 to 4-6), §4.4.2 (PAE paging, Tables 4-8
to 4-11) and §4.5 (4-level paging, Tables 4-14 to 4-20; Figure 4-11 for the entry
formats). Levels are numbered as the SDM walks them: 4 = PML4E, 3 = PDPTE, 2 = PDE,
1 = PTE. An entry with PS=1 at level 3 or 2 (level 2 only for 32-bit paging) maps a
page and has a different layout: :func:`pte_layout` takes ``ps``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from lhvdbg.errors import DecodeError, LhvdbgError
from lhvdbg.x86.layout import Decoded, Field, Layout, bit, bits, catalogued
from lhvdbg.x86.registers import Paging, paging_mode

LEVEL_NAMES = {4: "PML4E", 3: "PDPTE", 2: "PDE", 1: "PTE"}
_TOP_LEVEL: dict[Paging, int] = {"4level": 4, "pae": 3, "32bit": 2}


def _flags(*, dirty: bool, pat: int | None, global_: bool) -> tuple[Field, ...]:
    out = [
        bit("present", 0, "present"),
        bit("rw", 1, "writable (0: read-only)"),
        bit("us", 2, "user accessible (0: supervisor only)"),
        bit("pwt", 3, "page-level write-through"),
        bit("pcd", 4, "page-level cache disable"),
        bit("accessed", 5, "accessed"),
    ]
    if dirty:
        out.append(bit("dirty", 6, "dirty"))
    if pat == 7:
        out.append(bit("pat", 7, "page attribute table index bit"))
    else:
        out.append(bit("ps", 7, "page size: 1 maps a page here"))
    if global_:
        out.append(bit("global", 8, "global translation"))
    if pat == 12:
        out.append(bit("pat", 12, "page attribute table index bit"))
    return tuple(out)


_XD = bit("xd", 63, "execute disable (if EFER.NXE)")
_PK = bits("pk", 59, 62, "protection key")


def _addr(lo: int, hi: int, what: str) -> Field:
    return bits("address", lo, hi, f"physical address of the {what}", shift=lo)


@catalogued(
    *(
        ("4level", level, ps)
        for level, ps in ((4, False), (3, False), (3, True), (2, False), (2, True), (1, False))
    ),
    *(("pae", level, ps) for level, ps in ((3, False), (2, False), (2, True), (1, False))),
    *(("32bit", level, ps) for level, ps in ((2, False), (2, True), (1, False))),
)
@cache
def _pte_layout(paging: Paging, level: int, ps: bool) -> Layout:
    name = LEVEL_NAMES[level] + (" (page)" if ps else "")
    fields: tuple[Field, ...]
    if paging == "4level":
        if level == 1:
            fields = (*_flags(dirty=True, pat=7, global_=True), _addr(12, 51, "4 KiB page"))
            fields += (_PK, _XD)
        elif ps:
            lo, what = (30, "1 GiB page") if level == 3 else (21, "2 MiB page")
            fields = (*_flags(dirty=True, pat=12, global_=True), _addr(lo, 51, what), _PK, _XD)
        else:
            fields = (*_flags(dirty=False, pat=None, global_=False), _addr(12, 51, "next table"))
            fields += (_XD,)
        ref = {4: "Table 4-15", 3: "Tables 4-16/4-17", 2: "Tables 4-18/4-19", 1: "Table 4-20"}
        doc = f"{name}, 4-level paging (Intel SDM Vol. 3A §4.5, {ref[level]})."
        return Layout(name, 64, fields, doc)
    if paging == "pae":
        if level == 3:
            fields = (
                bit("present", 0, "present"),
                bit("pwt", 3, "page-level write-through"),
                bit("pcd", 4, "page-level cache disable"),
                _addr(12, 51, "page directory"),
            )
        elif level == 1:
            fields = (*_flags(dirty=True, pat=7, global_=True), _addr(12, 51, "4 KiB page"), _XD)
        elif ps:
            fields = (*_flags(dirty=True, pat=12, global_=True), _addr(21, 51, "2 MiB page"), _XD)
        else:
            fields = (
                *_flags(dirty=False, pat=None, global_=False),
                _addr(12, 51, "page table"),
                _XD,
            )
        ref = {3: "Table 4-8", 2: "Tables 4-9/4-10", 1: "Table 4-11"}
        doc = f"{name}, PAE paging (Intel SDM Vol. 3A §4.4.2, {ref[level]})."
        return Layout(name, 64, fields, doc)
    if level == 1:
        fields = (*_flags(dirty=True, pat=7, global_=True), _addr(12, 31, "4 KiB page"))
    elif ps:
        fields = (
            *_flags(dirty=True, pat=12, global_=True),
            Field(
                "address",
                ((22, 31), (13, 20)),
                "physical address of the 4 MiB page (bits 13-20 give address bits 32-39)",
                shift=22,
            ),
        )
    else:
        fields = (*_flags(dirty=False, pat=None, global_=False), _addr(12, 31, "page table"))
    ref = {2: "Tables 4-4/4-5", 1: "Table 4-6"}
    doc = f"{name}, 32-bit paging (Intel SDM Vol. 3A §4.3, {ref[level]})."
    return Layout(name, 32, fields, doc)


def pte_layout(paging: str, level: int, ps: bool = False) -> Layout:
    """The entry layout at ``level`` of ``paging`` (``ps``: the page-mapping form)."""
    mode = paging_mode(paging)
    if not 1 <= level <= _TOP_LEVEL[mode]:
        raise DecodeError(f"{paging} paging has no level {level} (1..{_TOP_LEVEL[mode]})")
    if ps and not _can_map(mode, level):
        raise DecodeError(f"a {LEVEL_NAMES[level]} cannot map a page with {paging} paging")
    return _pte_layout(mode, level, ps)


def _can_map(paging: Paging, level: int) -> bool:
    if paging == "4level":
        return level in (2, 3)
    return level == 2


def decode_entry(paging: str, level: int, raw: int | bytes) -> Decoded:
    """Decode an entry, using the page form when its PS bit is set where PS is allowed."""
    entry = pte_layout(paging, level).decode(raw)
    if entry.values.get("ps") and _can_map(paging_mode(paging), level):
        return pte_layout(paging, level, ps=True).decode(raw)
    return entry


@dataclass(frozen=True)
class WalkStep:
    """One level of a walk: the table, the index used, the entry read (None if unread)."""

    level: int
    name: str
    table: int
    index: int
    entry_address: int
    entry: Decoded | None


@dataclass(frozen=True)
class PageWalk:
    """The result of translating ``va``: steps, then a physical address or a fault."""

    va: int
    paging: Paging | None  # None: paging disabled (CR0.PG=0)
    steps: tuple[WalkStep, ...]
    physical: int | None
    fault: str | None
    page_size: int | None = None
    writable: bool = False
    user: bool = False
    executable: bool = False


Reader = Callable[[int, int], bytes]

_CR0_PG = 1 << 31
_CR4_PAE = 1 << 5
_CR4_PSE = 1 << 4
_CR4_LA57 = 1 << 12
_EFER_LMA = 1 << 10
_EFER_LME = 1 << 8
_EFER_NXE = 1 << 11


def _paging_of(cr0: int, cr4: int, efer: int) -> Paging | None:
    if not cr0 & _CR0_PG:
        return None
    if not cr4 & _CR4_PAE:
        return "32bit"
    if efer & (_EFER_LMA | _EFER_LME):
        return "4level"
    return "pae"


def walk(read: Reader, cr3: int, cr4: int, efer: int, cr0: int, va: int) -> PageWalk:
    """Translate linear address ``va`` as the CPU would; ``read(phys, size)`` reads memory.

    Faults are reported, not raised: not present, reserved bits, an unreadable entry,
    a non-canonical address. 5-level paging (CR4.LA57) is reported as unsupported.
    """
    paging = _paging_of(cr0, cr4, efer)
    if paging is None:
        return PageWalk(va, None, (), va, None, None, True, True, True)
    if paging == "4level":
        if cr4 & _CR4_LA57:
            return PageWalk(va, paging, (), None, "5-level paging (CR4.LA57) is not supported")
        if not (va >> 47 == 0 or va >> 47 == (1 << 17) - 1):
            return PageWalk(va, paging, (), None, f"{va:#x} is not canonical")
        table = cr3 & 0x000F_FFFF_FFFF_F000
        shifts = {4: 39, 3: 30, 2: 21, 1: 12}
        width, esize = 9, 8
    elif paging == "pae":
        if va >> 32:
            return PageWalk(va, paging, (), None, f"{va:#x} is wider than 32 bits")
        table = cr3 & 0xFFFF_FFE0
        shifts = {3: 30, 2: 21, 1: 12}
        width, esize = 9, 8
    else:
        if va >> 32:
            return PageWalk(va, paging, (), None, f"{va:#x} is wider than 32 bits")
        table = cr3 & 0xFFFF_F000
        shifts = {2: 22, 1: 12}
        width, esize = 10, 4
    nxe = bool(efer & _EFER_NXE)
    steps: list[WalkStep] = []
    writable = user = executable = True
    for level in sorted(shifts, reverse=True):
        name = LEVEL_NAMES[level]
        bits_here = 2 if (paging == "pae" and level == 3) else width
        index = (va >> shifts[level]) & ((1 << bits_here) - 1)
        address = table + index * esize
        try:
            data = read(address, esize)
            entry = decode_entry(paging, level, data)
        except LhvdbgError as exc:
            steps.append(WalkStep(level, name, table, index, address, None))
            fault = f"{name} at {address:#x} not readable: {exc}"
            return PageWalk(va, paging, tuple(steps), None, fault)
        steps.append(WalkStep(level, name, table, index, address, entry))
        values = entry.values
        if not values["present"]:
            return PageWalk(va, paging, tuple(steps), None, f"{name} not present")
        if values.get("xd") and not nxe:
            fault = f"{name} sets XD while EFER.NXE=0 (reserved bit)"
            return PageWalk(va, paging, tuple(steps), None, fault)
        if paging == "4level" and level == 4 and values.get("ps"):
            return PageWalk(va, paging, tuple(steps), None, "PML4E sets PS (reserved bit)")
        if paging != "pae" or level != 3:
            writable = writable and bool(values["rw"])
            user = user and bool(values["us"])
        executable = executable and not (nxe and values.get("xd", 0))
        is_page = level == 1 or entry.layout.name.endswith("(page)")
        if is_page:
            if paging == "32bit" and level == 2 and not cr4 & _CR4_PSE:
                # Without CR4.PSE the PS bit is ignored (Table 4-5): walk on as a table.
                entry = pte_layout(paging, level).decode(entry.raw)
                steps[-1] = WalkStep(level, name, table, index, address, entry)
                table = entry.values["address"]
                continue
            size = 1 << shifts[level]
            physical = values["address"] | (va & (size - 1))
            return PageWalk(
                va, paging, tuple(steps), physical, None, size, writable, user, executable
            )
        table = values["address"]
    return PageWalk(va, paging, tuple(steps), None, "walk ended without mapping a page")

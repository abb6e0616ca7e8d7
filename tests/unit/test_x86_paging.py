"""Paging-entry layouts and the software walk (Intel SDM Vol. 3A §4.3, §4.4.2, §4.5)."""

from __future__ import annotations

import pytest

from lhvdbg.errors import DecodeError, MemoryNotCaptured
from lhvdbg.x86.paging import decode_entry, pte_layout, walk

CR0_PG_PE = 0x80000001
CR4_PAE, CR4_PSE = 0x20, 0x10
EFER_LME_LMA, EFER_NXE = 0x500, 0x800


class Memory:
    """Sparse physical memory for walks: write entries, read them back."""

    def __init__(self) -> None:
        self.data: dict[int, int] = {}

    def put(self, address: int, value: int, size: int = 8) -> None:
        for i, b in enumerate(value.to_bytes(size, "little")):
            self.data[address + i] = b

    def read(self, address: int, size: int) -> bytes:
        if any(a not in self.data for a in range(address, address + size)):
            raise MemoryNotCaptured(f"{address:#x} not captured")
        return bytes(self.data[a] for a in range(address, address + size))


def _table_entry(paging: str, level: int, address: int, **flags: int) -> int:
    return pte_layout(paging, level).encode(present=1, rw=1, address=address, **flags)


def test_4level_pte_fields() -> None:
    # 0x8000000000123067: XD, address 0x123000, D A U/S R/W P
    e = decode_entry("4level", 1, 0x8000000000123067)
    assert (e.present, e.rw, e.us, e.accessed, e.dirty, e.xd) == (1, 1, 1, 1, 1, 1)
    assert e.address == 0x123000
    assert e.layout.name == "PTE"


def test_ps_selects_the_page_form() -> None:
    e = decode_entry("4level", 2, 0x00000000002000E3)  # 2 MiB page at 0x200000, PS D A RW P
    assert e.layout.name == "PDE (page)"
    assert (e.address, e.ps, e.dirty) == (0x200000, 1, 1)
    gib = decode_entry("4level", 3, 0x40000083)
    assert gib.layout.name == "PDPTE (page)" and gib.address == 0x40000000
    # 32-bit 4 MiB page: address bits 39:32 come from entry bits 20:13 (PSE-36)
    big = decode_entry("32bit", 2, 0x00C00083 | (0x05 << 13))
    assert big.address == 0x05_00C00000
    with pytest.raises(DecodeError, match="cannot map a page"):
        pte_layout("4level", 4, ps=True)
    with pytest.raises(DecodeError, match="no level 4"):
        pte_layout("pae", 4)


def test_walk_4level_4k_page() -> None:
    mem = Memory()
    va = 0xFFFF8000_00201234
    idx = [(va >> s) & 0x1FF for s in (39, 30, 21, 12)]
    mem.put(0x1000 + idx[0] * 8, _table_entry("4level", 4, 0x2000))
    mem.put(0x2000 + idx[1] * 8, _table_entry("4level", 3, 0x3000))
    mem.put(0x3000 + idx[2] * 8, _table_entry("4level", 2, 0x4000, us=1))
    mem.put(0x4000 + idx[3] * 8, _table_entry("4level", 1, 0x99000, xd=1))
    w = walk(mem.read, 0x1000, CR4_PAE, EFER_LME_LMA | EFER_NXE, CR0_PG_PE, va)
    assert w.fault is None and w.paging == "4level"
    assert w.physical == 0x99234 and w.page_size == 0x1000
    assert [s.name for s in w.steps] == ["PML4E", "PDPTE", "PDE", "PTE"]
    assert w.steps[0].entry_address == 0x1000 + 0x100 * 8
    assert (w.writable, w.user, w.executable) == (True, False, False)


def test_walk_2m_page_and_not_present() -> None:
    mem = Memory()
    mem.put(0x1000, _table_entry("4level", 4, 0x2000))
    mem.put(0x2000, _table_entry("4level", 3, 0x3000))
    mem.put(0x3000 + 8, pte_layout("4level", 2, ps=True).encode(present=1, ps=1, address=0x600000))
    mem.put(0x3000 + 16, 0)
    w = walk(mem.read, 0x1000, CR4_PAE, EFER_LME_LMA, CR0_PG_PE, 0x2ABCDE)
    assert (w.physical, w.page_size, w.writable) == (0x6ABCDE, 0x200000, False)
    w = walk(mem.read, 0x1000, CR4_PAE, EFER_LME_LMA, CR0_PG_PE, 0x400000)
    assert w.physical is None and w.fault == "PDE not present"


def test_walk_faults_reported_not_raised() -> None:
    mem = Memory()
    w = walk(mem.read, 0x1000, CR4_PAE, EFER_LME_LMA, CR0_PG_PE, 0x1000)
    assert w.fault is not None and "PML4E at 0x1000 not readable" in w.fault
    w = walk(mem.read, 0x1000, CR4_PAE, EFER_LME_LMA, CR0_PG_PE, 0x0000_8000_0000_0000)
    assert w.fault == "0x800000000000 is not canonical"
    mem.put(0x1000, _table_entry("4level", 4, 0x2000, xd=1))
    w = walk(mem.read, 0x1000, CR4_PAE, EFER_LME_LMA, CR0_PG_PE, 0x10)
    assert w.fault == "PML4E sets XD while EFER.NXE=0 (reserved bit)"
    w = walk(mem.read, 0x1000, CR4_PAE | 0x1000, EFER_LME_LMA, CR0_PG_PE, 0x10)
    assert w.fault is not None and "5-level" in w.fault


def test_walk_32bit_and_pae_and_no_paging() -> None:
    mem = Memory()
    va = 0xC0101ABC
    mem.put(0x5000 + (va >> 22) * 4, _table_entry("32bit", 2, 0x6000), 4)
    mem.put(0x6000 + ((va >> 12) & 0x3FF) * 4, _table_entry("32bit", 1, 0x101000), 4)
    w = walk(mem.read, 0x5000, 0, 0, CR0_PG_PE, va)
    assert (w.paging, w.physical) == ("32bit", 0x101ABC)
    # 4 MiB page needs CR4.PSE
    mem.put(0x7000, pte_layout("32bit", 2, ps=True).encode(present=1, ps=1, address=0x400000), 4)
    w = walk(mem.read, 0x7000, CR4_PSE, 0, CR0_PG_PE, 0x123456)
    assert (w.physical, w.page_size) == (0x523456, 0x400000)
    # PAE: 4 PDPTEs at CR3 (32-byte aligned)
    mem.put(0x8020 + 3 * 8, pte_layout("pae", 3).encode(present=1, address=0x9000))
    mem.put(0x9000, pte_layout("pae", 2, ps=True).encode(present=1, rw=1, ps=1, address=0))
    w = walk(mem.read, 0x8020, CR4_PAE, 0, CR0_PG_PE, 0xC0000123)
    assert (w.paging, w.physical, w.page_size) == ("pae", 0x123, 0x200000)
    w = walk(mem.read, 0, 0, 0, 0x11, 0x1234)
    assert (w.paging, w.physical, w.steps) == (None, 0x1234, ())

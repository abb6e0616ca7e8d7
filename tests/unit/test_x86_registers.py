"""EFLAGS, CR0, CR3, CR4, EFER and error codes (Intel SDM Vol. 3A §2.3, §2.5, §4.7, §6.13)."""

from __future__ import annotations

import pytest

from lhvdbg.errors import DecodeError
from lhvdbg.x86.describe import describe_flags, describe_page_fault, describe_selector_error
from lhvdbg.x86.errorcodes import error_code_layout, selector_error_code_layout
from lhvdbg.x86.registers import cr0_layout, cr3_layout, cr4_layout, efer_layout, eflags_layout


def test_eflags() -> None:
    f = eflags_layout().decode(0x00000202)  # IF (bit 9) + reserved bit 1
    assert (f.values["if"], f.fixed1, f.cf, f.iopl) == (1, 1, 0, 0)
    assert describe_flags(f) == "if"
    assert eflags_layout().decode(0x3046).iopl == 3  # IOPL bits 12-13, ZF, PF


def test_cr0_and_cr4() -> None:
    c = cr0_layout().decode(0x80000011)  # PG | ET | PE
    assert (c.pg, c.et, c.pe, c.wp) == (1, 1, 1, 0)
    assert describe_flags(c) == "pe et pg"
    c4 = cr4_layout().decode(0x20 | 0x80 | 0x1000)
    assert (c4.pae, c4.pge, c4.la57, c4.pse) == (1, 1, 1, 0)


def test_efer() -> None:
    e = efer_layout().decode(0xD01)  # SCE, LME, LMA, NXE
    assert (e.sce, e.lme, e.lma, e.nxe) == (1, 1, 1, 1)
    assert efer_layout().decode(0x500).lma == 1


def test_cr3_per_paging_mode() -> None:
    assert cr3_layout("4level").decode(0x1000 | 0x18).pml4 == 0x1000
    assert cr3_layout("4level").decode(0x1018).pcd == 1
    assert cr3_layout("pae").decode(0x12345660).pdpt == 0x12345660
    assert cr3_layout("32bit").decode(0x00105000).pd == 0x105000
    with pytest.raises(DecodeError, match="unknown paging mode"):
        cr3_layout("5level")


def test_selector_error_code() -> None:
    # 0x42: IDT=1, index 8 -> the IDT gate of vector 8 (#DF)
    e = selector_error_code_layout().decode(0x42)
    assert (e.ext, e.idt, e.ti, e.index) == (0, 1, 0, 8)
    assert describe_selector_error(e) == "IDT vector 0x08 (#DF)"
    # 0x11: EXT=1, GDT index 2 (selector 0x10)
    e = selector_error_code_layout().decode(0x11)
    assert (e.ext, e.idt, e.ti, e.index) == (1, 0, 0, 2)
    assert describe_selector_error(e) == "GDT selector 0x0010 (index 2), external event"


def test_page_fault_error_code() -> None:
    layout = error_code_layout(14)
    e = layout.decode(0x6)  # W/R=1, U/S=1, P=0
    assert (e.p, e.wr, e.us, e.rsvd, e.values["id"]) == (0, 1, 1, 0, 0)
    assert describe_page_fault(e) == "user write: not-present page"
    e = layout.decode(0x11 | 0x8 | 0x20 | 0x40)  # P, I/D, RSVD, PK, SS
    assert (e.p, e.values["id"], e.rsvd, e.pk, e.ss) == (1, 1, 1, 1, 1)
    assert (
        describe_page_fault(e)
        == "supervisor instruction fetch: protection violation (RSVD, PK, SS)"
    )


def test_error_code_layout_by_vector() -> None:
    assert error_code_layout(13) is selector_error_code_layout()
    assert error_code_layout(None) is selector_error_code_layout()
    assert error_code_layout(8).name == "error code (zero)"
    assert error_code_layout(21).decode(3).name_of("cpec") == "ENDBRANCH"
    with pytest.raises(DecodeError, match=r"vector 3 \(#BP\) pushes no error code"):
        error_code_layout(3)
    with pytest.raises(DecodeError, match="pushes no error code"):
        error_code_layout(0x20)

"""Flag and control registers: EFLAGS, CR0, CR3, CR4, EFER.

Intel SDM Vol. 1 §3.4.3 and Vol. 3A §2.3 (EFLAGS), Vol. 3A §2.5 (CR0, CR3, CR4; Figure 2-7),
§4.5 / Table 4-12 (CR3 with 4-level paging), §4.3 / Table 4-3 (32-bit paging),
§4.4.1 / Table 4-7 (PAE), and Vol. 3A §2.2.1 / Table 2-1 (IA32_EFER, MSR C000_0080H).
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from lhvdbg.errors import DecodeError
from lhvdbg.x86.layout import Layout, bit, bits, catalogued

Paging = Literal["32bit", "pae", "4level"]
PAGING_MODES: tuple[Paging, ...] = ("32bit", "pae", "4level")


@catalogued()
@cache
def eflags_layout() -> Layout:
    """(R)EFLAGS, 64 bits (Intel SDM Vol. 1 §3.4.3, Figure 3-8; Vol. 3A §2.3)."""
    return Layout(
        "eflags",
        64,
        (
            bit("cf", 0, "carry"),
            bit("fixed1", 1, "reserved, always 1", reserved=True),
            bit("pf", 2, "parity"),
            bit("af", 4, "auxiliary carry"),
            bit("zf", 6, "zero"),
            bit("sf", 7, "sign"),
            bit("tf", 8, "trap (single-step)"),
            bit("if", 9, "interrupt enable"),
            bit("df", 10, "direction"),
            bit("of", 11, "overflow"),
            bits("iopl", 12, 13, "I/O privilege level"),
            bit("nt", 14, "nested task"),
            bit("rf", 16, "resume"),
            bit("vm", 17, "virtual-8086 mode"),
            bit("ac", 18, "alignment check / access control"),
            bit("vif", 19, "virtual interrupt flag"),
            bit("vip", 20, "virtual interrupt pending"),
            bit("id", 21, "CPUID available"),
        ),
        "EFLAGS/RFLAGS (Intel SDM Vol. 1 §3.4.3, Figure 3-8; Vol. 3A §2.3).",
    )


@catalogued()
@cache
def cr0_layout() -> Layout:
    """CR0 (Intel SDM Vol. 3A §2.5, Figure 2-7)."""
    return Layout(
        "cr0",
        64,
        (
            bit("pe", 0, "protection enable"),
            bit("mp", 1, "monitor coprocessor"),
            bit("em", 2, "x87 emulation"),
            bit("ts", 3, "task switched"),
            bit("et", 4, "extension type (always 1)"),
            bit("ne", 5, "numeric error reporting"),
            bit("wp", 16, "write protect (supervisor writes honour R/W)"),
            bit("am", 18, "alignment mask"),
            bit("nw", 29, "not write-through"),
            bit("cd", 30, "cache disable"),
            bit("pg", 31, "paging"),
        ),
        "CR0 (Intel SDM Vol. 3A §2.5, Figure 2-7).",
    )


@catalogued()
@cache
def cr4_layout() -> Layout:
    """CR4 (Intel SDM Vol. 3A §2.5, Figure 2-7)."""
    return Layout(
        "cr4",
        64,
        (
            bit("vme", 0, "virtual-8086 mode extensions"),
            bit("pvi", 1, "protected-mode virtual interrupts"),
            bit("tsd", 2, "time stamp disable"),
            bit("de", 3, "debugging extensions"),
            bit("pse", 4, "page size extensions (4 MiB pages, 32-bit paging)"),
            bit("pae", 5, "physical address extension"),
            bit("mce", 6, "machine-check enable"),
            bit("pge", 7, "page global enable"),
            bit("pce", 8, "performance-counter enable"),
            bit("osfxsr", 9, "FXSAVE/FXRSTOR support"),
            bit("osxmmexcpt", 10, "unmasked SIMD FP exceptions"),
            bit("umip", 11, "user-mode instruction prevention"),
            bit("la57", 12, "57-bit linear addresses (5-level paging)"),
            bit("vmxe", 13, "VMX enable"),
            bit("smxe", 14, "SMX enable"),
            bit("fsgsbase", 16, "RDFSBASE/WRFSBASE enable"),
            bit("pcide", 17, "PCID enable"),
            bit("osxsave", 18, "XSAVE enable"),
            bit("kl", 19, "Key Locker enable"),
            bit("smep", 20, "supervisor-mode execution prevention"),
            bit("smap", 21, "supervisor-mode access prevention"),
            bit("pke", 22, "protection keys for user pages"),
            bit("cet", 23, "control-flow enforcement"),
            bit("pks", 24, "protection keys for supervisor pages"),
            bit("uintr", 25, "user interrupts enable"),
        ),
        "CR4 (Intel SDM Vol. 3A §2.5, Figure 2-7).",
    )


@catalogued()
@cache
def efer_layout() -> Layout:
    """IA32_EFER, MSR C000_0080H (Intel SDM Vol. 3A §2.2.1, Table 2-1)."""
    return Layout(
        "efer",
        64,
        (
            bit("sce", 0, "SYSCALL enable"),
            bit("lme", 8, "IA-32e mode enable"),
            bit("lma", 10, "IA-32e mode active"),
            bit("nxe", 11, "execute-disable enable"),
        ),
        "IA32_EFER (Intel SDM Vol. 3A §2.2.1, Table 2-1; Vol. 4 MSR C000_0080H).",
    )


@catalogued(("32bit",), ("pae",), ("4level",))
@cache
def _cr3_layout(paging: Paging) -> Layout:
    if paging == "pae":
        return Layout(
            "cr3",
            64,
            (bits("pdpt", 5, 31, "physical address of the 4 PDPTEs (32-byte aligned)", shift=5),),
            "CR3 with PAE paging (Intel SDM Vol. 3A §4.4.1, Table 4-7).",
        )
    if paging == "32bit":
        return Layout(
            "cr3",
            64,
            (
                bit("pwt", 3, "page-level write-through"),
                bit("pcd", 4, "page-level cache disable"),
                bits("pd", 12, 31, "physical address of the page directory", shift=12),
            ),
            "CR3 with 32-bit paging (Intel SDM Vol. 3A §4.3, Table 4-3).",
        )
    return Layout(
        "cr3",
        64,
        (
            bit("pwt", 3, "page-level write-through (if CR4.PCIDE=0)"),
            bit("pcd", 4, "page-level cache disable (if CR4.PCIDE=0)"),
            bits("pml4", 12, 51, "physical address of the PML4 table", shift=12),
            bit("lam57", 61, "LAM for user pointers, 57-bit"),
            bit("lam48", 62, "LAM for user pointers, 48-bit"),
        ),
        "CR3 with 4-level paging (Intel SDM Vol. 3A §4.5, Table 4-12; "
        "with CR4.PCIDE=1 bits 0-11 are the PCID).",
    )


def cr3_layout(paging: str) -> Layout:
    """CR3 as the paging mode reads it (``32bit``, ``pae`` or ``4level``)."""
    return _cr3_layout(paging_mode(paging))


def paging_mode(name: str) -> Paging:
    """Validate a paging-mode name (``4level``, ``pae``, ``32bit``)."""
    for mode in PAGING_MODES:
        if mode == name:
            return mode
    raise DecodeError(f"unknown paging mode {name!r} (expected 4level, pae or 32bit)")

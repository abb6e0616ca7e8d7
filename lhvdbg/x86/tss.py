"""Task-state segments: the 32-bit TSS and the 64-bit (IA-32e) TSS.

Intel SDM Vol. 3A §7.2.1 (32-bit TSS, Figure 7-2) and §7.7 (64-bit TSS, Figure 7-11).
Offsets below are byte offsets into the TSS; a field at offsets ``a..b`` is readable only
if the TSS limit is at least ``b`` (§7.2.2: the limit is the last valid byte offset).
"""

from __future__ import annotations

from functools import cache

from lhvdbg.x86.layout import Decoded, Field, Layout, bit, catalogued, normalize_mode


def _b(offset: int, size: int) -> tuple[int, int]:
    """Bit range of ``size`` bytes at byte ``offset``."""
    return (offset * 8, (offset + size) * 8 - 1)


def _f(name: str, offset: int, size: int, meaning: str, *, reserved: bool = False) -> Field:
    return Field(name, (_b(offset, size),), meaning, reserved=reserved)


TSS32_SIZE = 0x68
TSS64_SIZE = 0x68
#: The smallest limit LTR accepts for a 32-bit TSS, and the one a full 64-bit TSS needs.
TSS_FULL_LIMIT = 0x67

#: Byte offsets of the 64-bit TSS stack pointers (Figure 7-11).
TSS64_RSP_OFFSETS = {0: 0x04, 1: 0x0C, 2: 0x14}
TSS64_IST_BASE = 0x24


def ist_offset(n: int) -> int:
    """Byte offset of ISTn (1..7) in the 64-bit TSS: 0x24 + 8(n-1)."""
    if not 1 <= n <= 7:
        raise ValueError(f"IST index {n} not in 1..7")
    return TSS64_IST_BASE + 8 * (n - 1)


def ist_min_limit(n: int) -> int:
    """The smallest TSS limit that covers ISTn: its last byte, 0x24 + 8n - 1."""
    return ist_offset(n) + 7


def rsp_min_limit(n: int) -> int:
    """The smallest 64-bit TSS limit that covers RSPn (n = 0..2)."""
    return TSS64_RSP_OFFSETS[n] + 7


#: The smallest 32-bit TSS limit covering ESP0 and SS0 (offsets 4..9).
ESP0_SS0_MIN_LIMIT = 0x09


@catalogued()
@cache
def tss32_layout() -> Layout:
    """32-bit TSS, 104 bytes (Intel SDM Vol. 3A §7.2.1, Figure 7-2)."""
    fields = [
        _f("link", 0x00, 2, "previous task link (selector)"),
        _f("reserved_link", 0x02, 2, "reserved", reserved=True),
    ]
    for n in range(3):
        off = 0x04 + 8 * n
        fields.append(_f(f"esp{n}", off, 4, f"stack pointer for CPL {n}"))
        fields.append(_f(f"ss{n}", off + 4, 2, f"stack segment for CPL {n}"))
        fields.append(_f(f"reserved_ss{n}", off + 6, 2, "reserved", reserved=True))
    fields += [
        _f("cr3", 0x1C, 4, "page-directory base (CR3)"),
        _f("eip", 0x20, 4, "saved EIP"),
        _f("eflags", 0x24, 4, "saved EFLAGS"),
    ]
    for i, reg in enumerate(("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")):
        fields.append(_f(reg, 0x28 + 4 * i, 4, f"saved {reg.upper()}"))
    for i, seg in enumerate(("es", "cs", "ss", "ds", "fs", "gs", "ldt")):
        off = 0x48 + 4 * i
        what = "LDT segment selector" if seg == "ldt" else f"saved {seg.upper()} selector"
        fields.append(_f(seg, off, 2, what))
        fields.append(_f(f"reserved_{seg}", off + 2, 2, "reserved", reserved=True))
    fields += [
        bit("t", 0x64 * 8, "debug trap on task switch"),
        Field("reserved_t", ((0x64 * 8 + 1, 0x66 * 8 - 1),), "reserved", reserved=True),
        _f("io_map_base", 0x66, 2, "I/O permission bitmap offset"),
    ]
    return Layout(
        "tss32",
        TSS32_SIZE * 8,
        tuple(fields),
        "32-bit task-state segment (Intel SDM Vol. 3A §7.2.1, Figure 7-2).",
        "legacy",
    )


@catalogued()
@cache
def tss64_layout() -> Layout:
    """64-bit TSS, 104 bytes (Intel SDM Vol. 3A §7.7, Figure 7-11)."""
    fields = [_f("reserved0", 0x00, 4, "reserved", reserved=True)]
    for n, off in TSS64_RSP_OFFSETS.items():
        fields.append(_f(f"rsp{n}", off, 8, f"stack pointer loaded on a change to CPL {n}"))
    fields.append(_f("reserved1", 0x1C, 8, "reserved", reserved=True))
    for n in range(1, 8):
        fields.append(_f(f"ist{n}", ist_offset(n), 8, f"interrupt stack table pointer {n}"))
    fields += [
        _f("reserved2", 0x5C, 8, "reserved", reserved=True),
        _f("reserved3", 0x64, 2, "reserved", reserved=True),
        _f("io_map_base", 0x66, 2, "I/O permission bitmap offset"),
    ]
    return Layout(
        "tss64",
        TSS64_SIZE * 8,
        tuple(fields),
        "64-bit task-state segment (Intel SDM Vol. 3A §7.7, Figure 7-11).",
        "ia32e",
    )


def tss_layout(mode: str) -> Layout:
    """The TSS format of ``mode``: 64-bit in IA-32e mode, 32-bit otherwise."""
    return tss64_layout() if normalize_mode(mode) == "ia32e" else tss32_layout()


def decode_tss(data: bytes, mode: str) -> Decoded:
    """Decode a TSS body; a short ``data`` (small limit) decodes partially.

    Fields beyond ``data`` are listed in ``Decoded.missing``. Longer data (an I/O bitmap
    after the TSS) is cut to the TSS size.
    """
    layout = tss_layout(mode)
    return layout.decode(bytes(data[: layout.size_bytes]), partial=True)


def stack_fields(mode: str) -> tuple[str, ...]:
    """Names of the stack-pointer fields of the TSS in ``mode``."""
    if normalize_mode(mode) == "ia32e":
        return ("rsp0", "rsp1", "rsp2", *(f"ist{n}" for n in range(1, 8)))
    return ("esp0", "esp1", "esp2")

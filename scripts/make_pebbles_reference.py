"""Build lhvdbg/state/references/pebbles.json: the Pebbles (CMU 15-410) known-good tables.

Pebbles is the 32-bit teaching kernel of CMU's 15-410. Its boot code lays out a GDT, an
IDT and a TSS at fixed addresses; the values below are the words of public copies of the
15-410 support files, cited per item. Run from the repository root:

    .venv/bin/python scripts/make_pebbles_reference.py [OUT.json]

The result is a snapshot (docs/snapshot-format.md) whose ``provenance.scope`` names what
the sources vouch for; registers a running kernel would have (EIP, the GPRs, CR3) are not
known and are left out of the scope.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from lhvdbg.state.snapshot import MemoryRegion, Provenance, Snapshot, save_snapshot
from lhvdbg.x86.cpustate import (
    CpuState,
    PicChip,
    PicState,
    SegmentRegister,
    TableRegister,
)
from lhvdbg.x86.segments import gate_layout, limit_bytes, segment_descriptor_layout
from lhvdbg.x86.tss import tss32_layout

OUT = Path(__file__).resolve().parent.parent / "lhvdbg/state/references/pebbles.json"

# 410kern/x86/seg.h
SEGSEL_TSS = 0x08
SEGSEL_KERNEL_CS = 0x10
SEGSEL_KERNEL_DS = 0x18
SEGSEL_USER_CS = 0x23
SEGSEL_USER_DS = 0x2B

# 410kern/boot/head.S: init_idt at 0x100100 (2048 bytes, vector 8 preset), init_gdt at
# 0x100900, init_tss at 0x100950 (104 bytes), df_handler at 0x1009b8.
IDT_BASE = 0x100100
GDT_BASE = 0x100900
TSS_BASE = 0x100950
DF_HANDLER = 0x1009B8
IDT_ENTS = 256  # 410kern/x86/idt.h
IDT_DF = 8  # 410kern/x86/idt.h

# head.S's GDT, as (low word, high word) pairs, slot by slot. The TSS descriptor is declared
# available (0x00008910); LTR marks it busy in the GDT (Intel SDM Vol. 3A §7.2.4, LTR), so
# the state after boot holds 0x00008b10.
GDT_WORDS = (
    (0x00000000, 0x00000000),  # 0x00 null
    (0x09500067, 0x00008B10),  # 0x08 SEGSEL_TSS: base 0x100950, limit 0x67, busy after ltr
    (0x0000FFFF, 0x00CF9B00),  # 0x10 SEGSEL_KERNEL_CS: flat 4 GiB code, DPL 0
    (0x0000FFFF, 0x00CF9300),  # 0x18 SEGSEL_KERNEL_DS: flat 4 GiB data, DPL 0
    (0x0000FFFF, 0x00CFFB00),  # 0x20 SEGSEL_USER_CS (0x23 with RPL 3): flat code, DPL 3
    (0x0000FFFF, 0x00CFF200),  # 0x28 SEGSEL_USER_DS (0x2b with RPL 3): flat data, DPL 3
    (0x00000000, 0x00000000),  # 0x30 SEGSEL_SPARE0
    (0x00000000, 0x00000000),  # 0x38 SEGSEL_SPARE1
    (0x00000000, 0x00000000),  # 0x40 SEGSEL_SPARE2
    (0x00000000, 0x00000000),  # 0x48 SEGSEL_SPARE3
)
# head.S: vector 8 is an interrupt gate to df_handler through SEGSEL_KERNEL_CS.
DF_GATE_WORDS = (0x001009B8, 0x00108E00)

# 410kern/x86/pic.c: pic_init(0x20, 0x28), "IRQ 0..15 occupy IDT slots 32..47".
PIC_MASTER_BASE = 0x20
PIC_SLAVE_BASE = 0x28

SOURCES = (
    "410kern/boot/head.S (init_idt, init_gdt, init_tss, df_handler; lgdt, lidt, ltr)",
    "410kern/x86/seg.h (SEGSEL_TSS 0x08, SEGSEL_KERNEL_CS 0x10, SEGSEL_KERNEL_DS 0x18, "
    "SEGSEL_USER_CS 0x23, SEGSEL_USER_DS 0x2b, SEG_TYPE_TSS 0x09)",
    "410kern/x86/idt.h (IDT_DF 8, IDT_KERN_START 32, IDT_ENTS 256)",
    "410kern/x86/pic.c (pic_init 0x20/0x28)",
    "410kern/x86/timer_defines.h (TIMER_IDT_ENTRY 0x20)",
)

SCOPE = (
    "cpu.mode",
    "cpu.cpl",
    "cpu.cr0.pe",
    "cpu.segments.cs",
    "cpu.segments.ss",
    "cpu.segments.ds",
    "cpu.segments.es",
    "cpu.segments.tr",
    "cpu.gdtr",
    "cpu.idtr",
    "gdt",
    f"idt[{IDT_DF}]",
    "tss",
    "pic.master.irq_base",
    "pic.slave.irq_base",
)


def _words(pairs: tuple[tuple[int, int], ...]) -> bytes:
    return b"".join(struct.pack("<II", lo, hi) for lo, hi in pairs)


def _hidden(selector: int, index: int) -> SegmentRegister:
    """A segment register loaded from GDT slot ``index``: the hidden part QEMU shows."""
    lo, hi = GDT_WORDS[index]
    desc = segment_descriptor_layout("protected").decode(_words(((lo, hi),)))
    # QEMU's flags word is the high descriptor word without its base bits (info registers
    # shows "00cf9300": limit bits 16-19 stay)
    return SegmentRegister(selector, desc.base, limit_bytes(desc), hi & 0x00FFFF00)


def build() -> Snapshot:
    """The Pebbles reference snapshot."""
    gdt = _words(GDT_WORDS)
    idt = bytearray(IDT_ENTS * 8)
    idt[IDT_DF * 8 : IDT_DF * 8 + 8] = _words((DF_GATE_WORDS,))
    tss = tss32_layout().encode_bytes(ss0=SEGSEL_KERNEL_DS, io_map_base=0x68)

    # Cross-check the words against the layouts (the descriptor must name the TSS, the
    # gate df_handler) so a typo here cannot go unnoticed.
    tss_desc = segment_descriptor_layout("protected").decode(gdt[8:16])
    assert (tss_desc.base, tss_desc.limit, tss_desc.type) == (TSS_BASE, 0x67, 0xB)
    gate = gate_layout("protected").decode(bytes(idt[64:72]))
    assert (gate.offset, gate.selector, gate.type, gate.present) == (
        DF_HANDLER,
        SEGSEL_KERNEL_CS,
        0xE,
        1,
    )
    kernel_ds = _hidden(SEGSEL_KERNEL_DS, 3)
    segments = {
        "cs": _hidden(SEGSEL_KERNEL_CS, 2),
        "ss": kernel_ds,
        "ds": kernel_ds,
        "es": kernel_ds,
        "fs": kernel_ds,
        "gs": kernel_ds,
        # never loaded: the reset state (Intel SDM Vol. 3A §9.1.1, Table 9-1)
        "ldtr": SegmentRegister(0, 0, 0xFFFF, 0x8200),
        # background: "TR =0008 00100950 00000067 00008b00 DPL=0 TSS32-busy"
        "tr": SegmentRegister(SEGSEL_TSS, TSS_BASE, 0x67, 0x8B00),
    }
    cpu = CpuState(
        mode="protected",
        ip=0,
        flags=0x2,
        gprs={},
        segments=segments,
        gdtr=TableRegister(GDT_BASE, len(gdt) - 1),  # init_tss - init_gdt - 1
        idtr=TableRegister(IDT_BASE, len(idt) - 1),  # init_gdt - init_idt - 1
        cr0=0x11,  # PE; ET reads 1 on every CPU QEMU models
        cr2=0,
        cr3=0,
        cr4=0,
        efer=0,
        cpl=0,
    )
    return Snapshot(
        arch="i386",
        cpu=cpu,
        memory=(
            MemoryRegion(IDT_BASE, bytes(idt), "idt"),
            MemoryRegion(GDT_BASE, gdt, "gdt"),
            MemoryRegion(TSS_BASE, tss, "tss"),
        ),
        provenance=Provenance(
            source="reference",
            captured_at="2026-11-24T00:00:00Z",
            note=(
                "Pebbles (CMU 15-410) after boot (lgdt, lidt, ltr $SEGSEL_TSS; pic_init(0x20, "
                "0x28)), from the words of public copies of "
                + "; ".join(SOURCES)
                + ". Built by scripts/make_pebbles_reference.py. Only the paths in scope "
                "are known; EIP, EFLAGS, the GPRs, CR2-CR4 and the PIC masks are placeholders."
            ),
            scope=SCOPE,
        ),
        pic=PicState(
            master=PicChip(irr=0, imr=0, isr=0, irq_base=PIC_MASTER_BASE),
            slave=PicChip(irr=0, imr=0, isr=0, irq_base=PIC_SLAVE_BASE),
        ),
        symbols={
            "init_idt": IDT_BASE,
            "init_gdt": GDT_BASE,
            "init_tss": TSS_BASE,
            "df_handler": DF_HANDLER,
        },
    )


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    save_snapshot(build(), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

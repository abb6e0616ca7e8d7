"""Build CPU states and system tables from the layouts, for tests of the delivery model.

``Machine`` holds a flat kernel's GDT, IDT, TR and TSS as decoded values; each test
changes one field through the layouts (``with_gate``, ``with_descriptor``, ``with_tss``,
``with_tr``) and asks the model. The bytes come from ``Layout.encode_bytes``: no
hand-written shifts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from lhvdbg.x86.cpustate import CpuState, SegmentRegister, TableRegister
from lhvdbg.x86.cpuview import CpuView
from lhvdbg.x86.segments import gate_layout, segment_descriptor_layout, system_descriptor_layout
from lhvdbg.x86.tables import SystemTables, decode_gdt, decode_idt
from lhvdbg.x86.tss import decode_tss, tss_layout

Kind = Literal["ia32e", "legacy"]

KERNEL_CS_64 = 0x08
CODE_32 = 0x10
KERNEL_DS = 0x18
TSS_SEL = 0x20
USER_CS = 0x33
USER_DS = 0x2B
HANDLER = 0x101000
STACK = 0x10F000
IST1_STACK = 0x120000
RSP0_STACK = 0x130000
GDT_BASE, IDT_BASE, TSS_BASE = 0x109000, 0x108000, 0x10A000


def code(mode: Kind, *, dpl: int = 0, long: bool = True, present: int = 1) -> bytes:
    """A flat code descriptor (64-bit when ``long`` in IA-32e)."""
    return segment_descriptor_layout(mode).encode_bytes(
        limit=0xFFFFF, base=0, type=0xA, s=1, dpl=dpl, present=present,
        l=int(long and mode == "ia32e"), db=int(not (long and mode == "ia32e")), g=1,
    )  # fmt: skip


def data(mode: Kind, *, dpl: int = 0, writable: bool = True) -> bytes:
    """A flat data descriptor."""
    return segment_descriptor_layout(mode).encode_bytes(
        limit=0xFFFFF, base=0, type=0x2 if writable else 0x0, s=1, dpl=dpl, present=1, db=1, g=1
    )


@dataclass(frozen=True)
class Machine:
    """A flat kernel at CPL ``cpl``: GDT slots by selector, gates by vector, the TSS."""

    mode: Kind = "ia32e"
    cpl: int = 0
    sp: int = STACK
    gdt: dict[int, bytes] = field(default_factory=dict)
    gates: dict[int, dict[str, int]] = field(default_factory=dict)
    idt_limit: int | None = None
    gdt_limit: int | None = None
    tss: dict[str, int] = field(default_factory=dict)
    tr: SegmentRegister | None = None

    @classmethod
    def flat(cls, mode: Kind = "ia32e", *, cpl: int = 0) -> Machine:
        """GDT: null, 0x08 kernel code, 0x10 32-bit code, 0x18 data, 0x20 TSS, user
        data 0x28 and code 0x30; every gate an interrupt gate to HANDLER; TSS with RSP0 and
        IST1 (ESP0/SS0 on legacy)."""
        gdt = {
            KERNEL_CS_64: code(mode),
            CODE_32: code(mode, long=False),
            KERNEL_DS: data(mode),
            0x28: data(mode, dpl=3),
            0x30: code(mode, dpl=3),
        }
        tss = (
            {"rsp0": RSP0_STACK, "ist1": IST1_STACK, "io_map_base": 0x68}
            if mode == "ia32e"
            else {"esp0": RSP0_STACK, "ss0": KERNEL_DS, "io_map_base": 0x68}
        )
        cs = KERNEL_CS_64 if mode == "ia32e" else CODE_32
        gates = {
            v: {"offset": HANDLER, "selector": cs, "type": 0xE, "present": 1} for v in range(256)
        }
        tr = SegmentRegister(TSS_SEL, TSS_BASE, 0x67, 0x8B00)
        return cls(mode, cpl, STACK, gdt, gates, None, None, tss, tr)

    def with_gate(self, vector: int, **fields: int) -> Machine:
        """IDT[vector] with some fields changed."""
        gates = dict(self.gates)
        gates[vector] = {**gates[vector], **fields}
        return replace(self, gates=gates)

    def with_descriptor(self, selector: int, raw: bytes | None) -> Machine:
        """GDT slot of ``selector`` replaced (None: empty)."""
        gdt = dict(self.gdt)
        if raw is None:
            gdt.pop(selector & 0xFFF8, None)
        else:
            gdt[selector & 0xFFF8] = raw
        return replace(self, gdt=gdt)

    def with_tss(self, **fields: int) -> Machine:
        """TSS fields changed."""
        return replace(self, tss={**self.tss, **fields})

    def with_tr(self, **fields: int) -> Machine:
        """TR's hidden part changed (selector, base, limit, flags)."""
        assert self.tr is not None
        return replace(self, tr=replace(self.tr, **fields))

    def _gdt_bytes(self) -> bytes:
        top = max([*self.gdt, TSS_SEL]) + 16
        out = bytearray(top)
        for selector, raw in self.gdt.items():
            out[selector : selector + len(raw)] = raw
        tss_desc = system_descriptor_layout(self.mode).encode_bytes(
            limit=0x67, base=TSS_BASE, type=0xB, s=0, dpl=0, present=1
        )
        out[TSS_SEL : TSS_SEL + len(tss_desc)] = tss_desc
        return bytes(out)

    def _idt_bytes(self) -> bytes:
        layout = gate_layout(self.mode)
        return b"".join(layout.encode_bytes(**self.gates[v]) for v in range(256))

    def tables(self) -> SystemTables:
        """The decoded tables, as :func:`lhvdbg.state.system.tables_from_reader` gives."""
        gdt_bytes = self._gdt_bytes()
        idt_bytes = self._idt_bytes()
        gdt_limit = self.gdt_limit if self.gdt_limit is not None else len(gdt_bytes) - 1
        idt_limit = self.idt_limit if self.idt_limit is not None else len(idt_bytes) - 1
        gdt = decode_gdt(GDT_BASE, gdt_limit, gdt_bytes, self.mode)
        idt = decode_idt(IDT_BASE, idt_limit, idt_bytes, self.mode)
        assert self.tr is not None
        tss_bytes = tss_layout(self.mode).encode_bytes(**self.tss)
        tss = decode_tss(tss_bytes[: self.tr.limit + 1], self.mode)
        return SystemTables(self.mode, self.tr, gdt, idt, gdt.entry(TSS_SEL), tss)

    def cpu(self) -> CpuState:
        """A CPU at ``cpl`` with paging off (CR0.PE only; EFER.LMA in IA-32e)."""
        ia32e = self.mode == "ia32e"
        cs_sel = (0x30 | 3) if self.cpl == 3 else (KERNEL_CS_64 if ia32e else CODE_32)
        ss_sel = (0x28 | 3) if self.cpl == 3 else KERNEL_DS
        seg = SegmentRegister(KERNEL_DS, 0, 0xFFFFFFFF, 0xCF9300)
        segments = {
            "cs": SegmentRegister(cs_sel, 0, 0xFFFFFFFF, 0xAF9A00 if ia32e else 0xCF9A00),
            "ss": replace(seg, selector=ss_sel),
            **{n: seg for n in ("ds", "es", "fs", "gs")},
            "ldtr": SegmentRegister(0, 0, 0xFFFF, 0x8200),
            "tr": self.tr or SegmentRegister(0, 0, 0xFFFF, 0x8B00),
        }
        return CpuState(
            mode="long" if ia32e else "protected",
            ip=0x100000,
            flags=0x202,
            gprs={"rsp" if ia32e else "esp": self.sp},
            segments=segments,
            gdtr=TableRegister(GDT_BASE, 0),
            idtr=TableRegister(IDT_BASE, 0),
            cr0=0x11,
            cr2=0,
            cr3=0,
            cr4=0x20 if ia32e else 0,
            efer=0x500 if ia32e else 0,
            cpl=self.cpl,
        )

    def view(self) -> CpuView:
        """The model's view of this machine."""
        return CpuView.of(self.cpu(), self.tables())

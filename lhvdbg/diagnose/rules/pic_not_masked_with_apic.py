"""``pic-not-masked-with-apic``: an APIC-only kernel left the 8259s unmasked.

Intel SDM Vol. 3A §11.5.1 (LVT), §11.9 (spurious vector); the 8259A datasheet (OCW1 masks).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.rules._common import gate_unusable, irq_text, where
from lhvdbg.diagnose.rules._registry import Cause, rule
from lhvdbg.diagnose.tss_diff import vector_ranges
from lhvdbg.x86.interrupt_sources import SPURIOUS_LINE, interrupt_sources
from lhvdbg.x86.vectors import FIRST_USER_VECTOR

LVT_MASKED = 1 << 16
PIC_BIOS_BASES = (0x08, 0x70)


def _pic_irq_vectors(ev: Evidence) -> list[int]:
    """The vectors >= 32 the 8259s deliver their IRQ lines on (not the cascade line, not
    the spurious line 7), minus those the local APIC itself uses (its unmasked fixed-mode
    LVT entries and spurious vector): where a kernel that takes PIC interrupts must have
    handlers."""
    snapshot = ev.snapshot
    if snapshot is None or snapshot.pic is None:
        return []
    sources = interrupt_sources(snapshot.pic, snapshot.lapic)
    apic = {s.vector for s in sources if s.source.startswith("lapic-") and not s.masked}
    return [
        s.vector
        for s in sources
        if s.chip is not None
        and s.line != SPURIOUS_LINE
        and s.vector >= FIRST_USER_VECTOR
        and s.vector not in apic
    ]


@rule(
    "pic-not-masked-with-apic",
    order=30,
    sdm="Vol. 3A §11.5.1; 8259A OCW1",
    cites=(
        "`info lapic` SVR, LVT timer; the IDT's missing gates at the PIC's vectors; "
        "whether the PIC was remapped; PIC IMRs"
    ),
    tested_on="real capture with gates cleared; silent on every recorded firmware variant",
)
def pic_not_masked_with_apic(chain: Chain, ev: Evidence) -> Cause | None:
    """The kernel means to take its interrupts through the local APIC *instead of* the
    legacy PIC, yet left the 8259s unmasked, and a PIC IRQ arrived (rust-osdev bootloader
    #192). Intent is read from the IDT: no present gate for any vector the PIC delivers
    its IRQs on (apart from the APIC's own vectors). A kernel that uses the PIT on the PIC
    and the LAPIC timer together on purpose (LHV) has handlers there: no cause."""
    lapic = ev.snapshot.lapic if ev.snapshot is not None else None
    pic = ev.snapshot.pic if ev.snapshot is not None else None
    tables = ev.tables
    if lapic is None or pic is None or tables is None or tables.idt is None:
        return None
    if not lapic.enabled or lapic.lvt_timer & LVT_MASKED:
        return None
    if pic.master.imr == 0xFF or (pic.master.imr | 0x04 == 0xFF and pic.slave.imr == 0xFF):
        return None  # no IRQ gets through now: it came before the kernel masked the PIC
    step = next((s for s in chain.steps if s.source == "hardware" and s.irq is not None), None)
    if step is None or step.irq is None:
        return None
    wanted = _pic_irq_vectors(ev)
    if not wanted:
        return None  # the PIC's lines all sit on exception vectors: intent unknown
    idt = tables.idt
    if any(idt.covers(v) and idt.gate(v) is None for v in wanted):
        return None  # those IDT bytes were not read: intent unknown
    if not any(idt.covers(v) for v in wanted):
        return None  # the IDT limit ends before them: a short limit, not a statement of intent
    handled = [v for v in wanted if idt.covers(v) and gate_unusable(tables, v) is None]
    if handled:
        return None  # handlers for PIC IRQs: the kernel takes them on purpose
    remapped = pic.master.irq_base not in PIC_BIOS_BASES
    bases = f"{pic.master.irq_base:#04x}/{pic.slave.irq_base:#04x}"
    timer = lapic.lvt_timer & 0xFF
    evidence = [
        f"info lapic: software-enabled (SVR {lapic.svr:#x}), LVT timer {lapic.lvt_timer:#x} "
        f"unmasked on vector {timer:#04x}: the kernel uses the APIC timer",
        f"IDT: no present gate for any vector the PIC delivers IRQs on ({vector_ranges(wanted)}; "
        "the APIC's own vectors left out): the kernel installed no handler for 8259 IRQs",
    ]
    if remapped:
        evidence.append(
            f"info pic: the kernel remapped the PIC (bases {bases}) but put no gates there"
        )
    evidence += [
        f"info pic: master IMR={pic.master.imr:#04x}, slave IMR={pic.slave.imr:#04x}: "
        "not fully masked",
        f"yet a legacy PIC interrupt, {irq_text(*step.irq)}, arrived on vector "
        f"{step.vector:#04x} at {where(step)}",
    ]
    return Cause(
        "pic-not-masked-with-apic",
        "the kernel takes its interrupts through the local APIC but left the legacy 8259 "
        f"PIC unmasked: {irq_text(*step.irq)} arrived on vector {step.vector:#04x}",
        tuple(evidence),
        "Remap the PIC to 0x20/0x28 (so a stray IRQ cannot hit an exception vector) and "
        "then mask every line: 0xff to ports 0x21 and 0xA1, before sti; keep handlers for "
        "the spurious vectors 0x27/0x2f.",
        "medium",
        "LHV keeps the PIT on the remapped PIC (vector 0x20, with a handler) and the LAPIC "
        "timer on 0x22",
    )

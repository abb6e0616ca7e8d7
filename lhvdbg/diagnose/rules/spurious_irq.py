"""``spurious-irq``: IRQ7/IRQ15 delivered with its in-service bit clear, with no handler.

Intel 8259A datasheet (a spurious interrupt is signalled on line 7 with ISR bit 7 clear;
OCW3 reads the ISR); Intel SDM Vol. 3A §6.3.2 (maskable hardware interrupts).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.rules._common import (
    escalation,
    idt_field,
    irq_text,
    log_ref,
    next_step,
    pic_chip,
)
from lhvdbg.diagnose.rules._registry import Cause, rule


@rule(
    "spurious-irq",
    order=20,
    sdm="Vol. 3A §6.3.2; 8259A OCW3",
    fires_on=("spurious-irq",),
    cites="the vector = base+7, `info pic` ISR",
    tested_on="constructed chain on a real capture",
)
def spurious_irq(chain: Chain, ev: Evidence) -> Cause | None:
    """IRQ7 (or IRQ15) delivered with its ISR bit clear: a spurious interrupt that the
    kernel has no handler for (8259A datasheet; blog_os #881)."""
    for step in chain.steps:
        if step.source != "hardware" or step.irq is None or step.irq[1] != 7:
            continue
        chip = pic_chip(ev, step.irq[0])
        if chip is None or chip.isr & 0x80:
            continue
        nxt = next_step(chain, step)
        if not step.cause_of_next and chain.stop is not step:
            continue
        irq_name = irq_text(*step.irq)
        evidence = [
            f"{log_ref(step)}: hardware interrupt on vector {step.vector:#04x} = "
            f"{step.irq[0]} base {chip.irq_base:#04x} + 7",
            f"info pic: {step.irq[0]} ISR={chip.isr:#04x}, bit 7 clear: no real IRQ7 is in "
            "service, so the 8259 signalled a spurious interrupt",
        ]
        if nxt is not None and step.cause_of_next:
            evidence.append(f"its delivery failed: {nxt.summary()}")
        evidence += escalation(chain, nxt) if nxt is not None else []
        return Cause(
            "spurious-irq",
            f"spurious {irq_name} on vector {step.vector:#04x} with no handler",
            tuple(evidence),
            f"Install a handler for vector {step.vector:#04x} that reads the ISR (OCW3 0x0b "
            f"to port {0x20 if step.irq[0] == 'master' else 0xA0:#04x}, then read it) and "
            "returns without EOI when bit 7 is clear (for IRQ15 send the EOI to the master "
            "only).",
            "high",
            "LHV handles vector 0x27 (spurious IRQ7) and checks the ISR before acknowledging",
            check="spurious-irq",
            fix_fields=(idt_field(step.vector, "present"),),
        )
    return None

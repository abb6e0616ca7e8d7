"""``pic-not-remapped``: a hardware IRQ delivered on a CPU-exception vector.

Intel SDM Vol. 3A §6.2 (vectors 0-31 are the exceptions'), §6.3 (sources of interrupts);
the Intel 8259A datasheet (ICW2 sets the vector base; the BIOS leaves 0x08/0x70).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.history import pic_story
from lhvdbg.diagnose.rules._common import interrupted_flags, irq_text, log_ref, where
from lhvdbg.diagnose.rules._model import failure_for, model_applies
from lhvdbg.diagnose.rules._registry import Cause, Confidence, rule
from lhvdbg.x86.interrupt_sources import CASCADE_LINE, attribute
from lhvdbg.x86.vectors import FIRST_USER_VECTOR, vector_name

PIC_FIX = (
    "Initialise both 8259 PICs before sti: ICW1 0x11 to ports 0x20 and 0xA0; ICW2 the "
    "vector bases 0x20 (master, port 0x21) and 0x28 (slave, port 0xA1); ICW3 0x04 and "
    "0x02; ICW4 0x01. Install handlers at 0x20 (PIT, IRQ0) and 0x21 (keyboard, IRQ1), and "
    "end each IRQ with a non-specific EOI: 0x20 to port 0x20 (also to 0xA0 for IRQ8-15)."
)
PIC_REFERENCE = (
    "Pebbles calls pic_init(0x20, 0x28): IRQ0-15 occupy vectors 0x20-0x2f, the timer at "
    "TIMER_IDT_ENTRY 0x20; LHV-good does the same"
)


@rule(
    "pic-not-remapped",
    order=10,
    sdm="Vol. 3A §6.2, §6.3; 8259A ICW2",
    fires_on=("hardware-on-exception-vector",),
    cites=(
        "`Servicing hardware INT=0x08` right before `v=08` and no `check_exception`; "
        "`info pic` master `irq_base=0x08` (BIOS mapping) and ISR bit set; no error code "
        "on the handler's stack; EFLAGS.IF=1; where it was interrupted (after `hlt`?)"
    ),
    tested_on="firmware `pic-unremapped` (amd64, i386; TCG and KVM)",
)
def pic_not_remapped(chain: Chain, ev: Evidence) -> Cause | None:
    """A hardware IRQ delivered on a CPU-exception vector (< 32): the PIC kept (or was
    given) a base that overlaps the exceptions — LHV's bug, IRQ0 on vector 8."""
    step = next(
        (s for s in chain.steps if s.source == "hardware" and s.vector < FIRST_USER_VECTOR), None
    )
    if step is None:
        return None
    if model_applies(chain, ev):
        found = failure_for(chain, ev, ("hardware-on-exception-vector",), None)
        if found is not None and not any(f.startswith("pic.") for f in found[0].check.fix_fields):
            return None  # another device (LAPIC, I/O APIC) delivered it
    vector = step.vector
    pic = ev.snapshot.pic if ev.snapshot is not None else None
    lapic = ev.snapshot.lapic if ev.snapshot is not None else None
    evidence: list[str] = []
    if ev.int_log and step.event.line:
        evidence.append(
            f"{log_ref(step)}: 'Servicing hardware INT={vector:#04x}' right before "
            f"'v={vector:02x}', and no check_exception line: QEMU delivered a hardware "
            "interrupt, it did not raise an exception"
        )
    elif ev.frame is not None:
        evidence.append(
            f"no interrupt log ({ev.accel or 'offline'}); the stack at the vector-{vector} "
            f"handler: {ev.frame.describe(ev.word_size)}; a real #DF pushes an error code of 0"
        )
    confidence: Confidence = "high"
    source = attribute(vector, pic, lapic)
    irq = (source.chip, source.line) if source and source.chip and source.line is not None else None
    if pic is None:
        logged = ev.int_log and bool(step.event.line)
        confidence = "high" if logged and vector < 16 else "medium"
        evidence.append(
            "the PIC state was not captured; only the 8259s deliver vectors below 16 "
            "(a LAPIC cannot), so the IRQ came from a PIC based at 0x08"
            if vector < 16
            else "the PIC state was not captured: the IRQ line is inferred"
        )
        irq_name = "an IRQ"
        base = None
    elif irq is None:
        bases = f"{pic.master.irq_base:#04x}/{pic.slave.irq_base:#04x}"
        if vector == (pic.master.irq_base + CASCADE_LINE) & 0xFF:
            text = (
                f"info pic: vector {vector:#04x} is the master's IRQ2, the slave's cascade, "
                "which is never delivered"
            )
        else:
            text = f"info pic: bases {bases} do not cover vector {vector:#04x}"
        if source is not None:
            text += f"; {source.label} ({source.source}) is programmed with it"
        else:
            text += "; the IRQ did not come from the 8259s as now set up"
        evidence.append(text)
        confidence = "low"
        irq_name = "an IRQ"
        base = None
    else:
        chip = pic.master if irq[0] == "master" else pic.slave
        base = chip.irq_base
        irq_name = irq_text(*irq)
        origin = "the BIOS mapping, never reprogrammed" if base in (0x08, 0x70) else "as set"
        evidence.append(
            f"info pic: {irq[0]} irq_base={base:#04x} ({origin}): IRQ lines arrive on vectors "
            f"{base:#04x}-{base + 7:#04x}, CPU exception vectors"
        )
        if chip.isr & (1 << irq[1]):
            evidence.append(
                f"info pic: {irq[0]} ISR bit {irq[1]} set: {irq_name} is in service "
                "(delivered, not yet acknowledged)"
            )
    if (
        ev.int_log
        and ev.frame is not None
        and chain.stop is step
        and ev.frame.kind == "no-error-code"
    ):
        evidence.append(
            f"the handler's stack has no error code ({ev.frame.describe(ev.word_size)}); "
            "a real #DF pushes an error code of 0"
        )
    flags = interrupted_flags(step, ev, chain)
    if flags is not None:
        evidence.append(
            f"EFLAGS.IF was 1 at the interrupted instruction (RFLAGS {flags:#x}): interrupts "
            "had been enabled (sti)"
            if flags & 0x200
            else f"EFLAGS.IF was 0 at the interrupted instruction (RFLAGS {flags:#x}), yet a "
            "maskable IRQ was delivered: the flags and the log disagree"
        )
    if ev.history is not None:
        evidence.append(f"history from the kernel's entry: {pic_story(ev.history)}")
    place = f"interrupted at {where(step)}"
    if ev.after_hlt(step.event.rip):
        place += ", just after hlt (the CPU was idle)"
    evidence.append(place)
    if base is not None and base in (0x08, 0x70):
        summary = (
            f"{irq_name} arrived on vector {vector:#04x} ({vector_name(vector)}): the 8259 PIC "
            f"was never remapped and still uses the BIOS base {base:#04x}"
        )
    else:
        summary = (
            f"{irq_name} arrived on vector {vector:#04x} ({vector_name(vector)}): the PIC's "
            "vector base overlaps the CPU exceptions (0x00-0x1f)"
        )
    chip_name = irq[0] if irq is not None else "master"
    return Cause(
        "pic-not-remapped",
        summary,
        tuple(evidence),
        PIC_FIX,
        confidence,
        PIC_REFERENCE,
        check="hardware-on-exception-vector",
        fix_fields=(f"pic.{chip_name}.base",),
    )

"""Diagnosis rules: small pure functions from (chain, evidence) to an optional Cause.

Each rule recognises one known cause of "vector 8 fired" (see ``docs/diagnosis.md`` and
the fault catalog), cites the evidence it used, and says how to fix it and what the
known-good reference does instead. :func:`diagnose` runs them all and ranks what fired,
most likely first; when nothing explains the chain, ``unexplained-chain`` gives a precise
account of every exception in order.

Facts used: Intel SDM Vol. 3A §6.12.1 (delivery, stack switch on a privilege change),
§6.13 (error codes), §6.14.5 (IST), §6.15 Interrupt 8 (Table 6-5), §8.7 (64-bit TSS), the
Intel 8259A datasheet (ICW1..ICW4, OCW3, spurious IRQ7) and QEMU 7.2 behaviour recorded in
``tests/fixtures/intlog``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lhvdbg.diagnose.chain import Chain, ChainStep, describe_gate, pic_line, symbolize
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.tss_diff import vector_ranges
from lhvdbg.x86.checks import is_canonical
from lhvdbg.x86.cpustate import PicChip
from lhvdbg.x86.paging import walk
from lhvdbg.x86.segments import is_code, is_data, is_valid_idt_gate_type
from lhvdbg.x86.tables import IdtEntry, SystemTables
from lhvdbg.x86.tss import ist_min_limit, ist_offset, rsp_min_limit
from lhvdbg.x86.vectors import exception_info, vector_name

__all__ = ["CAUSE_IDS", "RULES", "Cause", "Confidence", "diagnose"]

Confidence = Literal["high", "medium", "low"]
_RANK = {"high": 0, "medium": 1, "low": 2}

CAUSE_IDS = (
    "pic-not-remapped",
    "spurious-irq",
    "pic-not-masked-with-apic",
    "ist-without-tss",
    "tss-rsp0-invalid",
    "ring3-int-gate-dpl",
    "iret-bad-selector",
    "stack-overflow",
    "gate-not-present",
    "unexplained-chain",
)

IRQ_DEVICES = {
    0: "PIT timer",
    1: "keyboard",
    2: "cascade",
    3: "COM2",
    4: "COM1",
    6: "floppy",
    7: "LPT1 or spurious",
    8: "RTC",
    12: "PS/2 mouse",
    14: "primary ATA",
    15: "secondary ATA or spurious",
}

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


@dataclass(frozen=True)
class Cause:
    """A diagnosed cause: stable id, one-line summary, evidence lines, fix, confidence."""

    id: str
    summary: str
    evidence: tuple[str, ...]
    fix: str
    confidence: Confidence
    reference: str = ""  # what the known-good reference does instead

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fix": self.fix,
            "confidence": self.confidence,
            "reference": self.reference,
        }


Rule = Callable[[Chain, Evidence], "Cause | None"]


# --- helpers ---------------------------------------------------------------------------


def _where(step: ChainStep) -> str:
    return step.symbol or f"{step.event.rip:#x}"


def _log_ref(step: ChainStep) -> str:
    return f"-d int log line {step.event.line}" if step.event.line else "the chain"


def _irq_text(chip: str, line: int) -> str:
    number = line + (8 if chip == "slave" else 0)
    device = IRQ_DEVICES.get(number)
    return f"IRQ{number}" + (f" ({device})" if device else "")


def _interrupted_flags(step: ChainStep, ev: Evidence, chain: Chain) -> int | None:
    if step.event.registers is not None:
        return step.event.registers.flags
    if ev.frame is not None and chain.stop is step and ev.frame.rflags is not None:
        return ev.frame.rflags
    return None


def _gate(tables: SystemTables | None, vector: int) -> IdtEntry | None:
    if tables is None or tables.idt is None:
        return None
    return tables.idt.gate(vector)


def _next(chain: Chain, step: ChainStep) -> ChainStep | None:
    index = chain.steps.index(step)
    return chain.steps[index + 1] if index + 1 < len(chain.steps) else None


def _escalation(chain: Chain, step: ChainStep) -> list[str]:
    """Evidence lines for what followed ``step`` (#DF, triple fault)."""
    lines = []
    after = chain.steps[chain.steps.index(step) + 1 :]
    for nxt in after:
        lines.append(f"then {nxt.summary()}")
    if chain.triple_fault is not None:
        lines.append(
            "then a triple fault (QEMU: 'Triple fault'): the #DF could not be delivered either"
        )
    return lines


def _chip(ev: Evidence, name: str) -> PicChip | None:
    pic = ev.snapshot.pic if ev.snapshot is not None else None
    if pic is None:
        return None
    return pic.master if name == "master" else pic.slave


# --- rules -----------------------------------------------------------------------------


def pic_not_remapped(chain: Chain, ev: Evidence) -> Cause | None:
    """A hardware IRQ delivered on a CPU-exception vector (< 32): the PIC kept (or was
    given) a base that overlaps the exceptions — LHV's bug, IRQ0 on vector 8."""
    step = next((s for s in chain.steps if s.source == "hardware" and s.vector < 32), None)
    if step is None:
        return None
    vector = step.vector
    pic = ev.snapshot.pic if ev.snapshot is not None else None
    evidence: list[str] = []
    if ev.int_log and step.event.line:
        evidence.append(
            f"{_log_ref(step)}: 'Servicing hardware INT={vector:#04x}' right before "
            f"'v={vector:02x}', and no check_exception line: QEMU delivered a hardware "
            "interrupt, it did not raise an exception"
        )
    elif ev.frame is not None:
        evidence.append(
            f"no interrupt log ({ev.accel or 'offline'}); the stack at the vector-{vector} "
            f"handler: {ev.frame.describe(ev.word_size)}; a real #DF pushes an error code of 0"
        )
    confidence: Confidence = "high"
    irq = pic_line(vector, pic)
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
        evidence.append(
            f"info pic: bases {pic.master.irq_base:#04x}/{pic.slave.irq_base:#04x} do not "
            f"cover vector {vector:#04x}; the IRQ did not come from the 8259s as now set up"
        )
        confidence = "low"
        irq_name = "an IRQ"
        base = None
    else:
        chip = pic.master if irq[0] == "master" else pic.slave
        base = chip.irq_base
        irq_name = _irq_text(*irq)
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
    flags = _interrupted_flags(step, ev, chain)
    if flags is not None:
        evidence.append(
            f"EFLAGS.IF was 1 at the interrupted instruction (RFLAGS {flags:#x}): interrupts "
            "had been enabled (sti)"
            if flags & 0x200
            else f"EFLAGS.IF was 0 at the interrupted instruction (RFLAGS {flags:#x}), yet a "
            "maskable IRQ was delivered: the flags and the log disagree"
        )
    where = f"interrupted at {_where(step)}"
    if ev.after_hlt(step.event.rip):
        where += ", just after hlt (the CPU was idle)"
    evidence.append(where)
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
    return Cause("pic-not-remapped", summary, tuple(evidence), PIC_FIX, confidence, PIC_REFERENCE)


def spurious_irq(chain: Chain, ev: Evidence) -> Cause | None:
    """IRQ7 (or IRQ15) delivered with its ISR bit clear: a spurious interrupt that the
    kernel has no handler for (8259A datasheet; blog_os #881)."""
    for step in chain.steps:
        if step.source != "hardware" or step.irq is None or step.irq[1] != 7:
            continue
        chip = _chip(ev, step.irq[0])
        if chip is None or chip.isr & 0x80:
            continue
        nxt = _next(chain, step)
        if not step.cause_of_next and chain.stop is not step:
            continue
        irq_name = _irq_text(*step.irq)
        evidence = [
            f"{_log_ref(step)}: hardware interrupt on vector {step.vector:#04x} = "
            f"{step.irq[0]} base {chip.irq_base:#04x} + 7",
            f"info pic: {step.irq[0]} ISR={chip.isr:#04x}, bit 7 clear: no real IRQ7 is in "
            "service, so the 8259 signalled a spurious interrupt",
        ]
        if nxt is not None and step.cause_of_next:
            evidence.append(f"its delivery failed: {nxt.summary()}")
        evidence += _escalation(chain, nxt) if nxt is not None else []
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
        )
    return None


LVT_MASKED = 1 << 16
PIC_BIOS_BASES = (0x08, 0x70)


def _apic_vectors(ev: Evidence) -> set[int]:
    """Vectors the local APIC itself delivers: the unmasked fixed-mode LVT entries (timer
    first) and the spurious vector (SDM Vol. 3A §11.5.1, §11.9)."""
    lapic = ev.snapshot.lapic if ev.snapshot is not None else None
    if lapic is None:
        return set()
    out = {lapic.svr & 0xFF}
    for value in (lapic.lvt_timer, *lapic.lvt.values()):
        if not value & LVT_MASKED and (value >> 8) & 7 == 0:  # fixed delivery mode
            out.add(value & 0xFF)
    return out


def _pic_irq_vectors(ev: Evidence) -> list[int]:
    """The vectors >= 32 the 8259s deliver their IRQ lines on (not the cascade line, not
    the spurious line 7), minus those the local APIC uses: where a kernel that takes PIC
    interrupts must have handlers."""
    pic = ev.snapshot.pic if ev.snapshot is not None else None
    if pic is None:
        return []
    apic = _apic_vectors(ev)
    out = []
    for name, chip in (("master", pic.master), ("slave", pic.slave)):
        for line in range(7):
            vector = chip.irq_base + line
            if name == "master" and line == 2:
                continue
            if vector >= 32 and vector not in apic:
                out.append(vector)
    return out


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
    handled = [v for v in wanted if idt.covers(v) and _gate_unusable(tables, v) is None]
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
        f"yet a legacy PIC interrupt, {_irq_text(*step.irq)}, arrived on vector "
        f"{step.vector:#04x} at {_where(step)}",
    ]
    return Cause(
        "pic-not-masked-with-apic",
        "the kernel takes its interrupts through the local APIC but left the legacy 8259 "
        f"PIC unmasked: {_irq_text(*step.irq)} arrived on vector {step.vector:#04x}",
        tuple(evidence),
        "Remap the PIC to 0x20/0x28 (so a stray IRQ cannot hit an exception vector) and "
        "then mask every line: 0xff to ports 0x21 and 0xA1, before sti; keep handlers for "
        "the spurious vectors 0x27/0x2f.",
        "medium",
        "LHV keeps the PIT on the remapped PIC (vector 0x20, with a handler) and the LAPIC "
        "timer on 0x22",
    )


def _ist_problem(tables: SystemTables, ist: int, ev: Evidence) -> str | None:
    tr = tables.tr
    slot = tr.base + ist_offset(ist)
    if not tables.tr_loaded:
        text = (
            f"TR was never loaded (selector {tr.selector:#06x}, base {tr.base:#x}, limit "
            f"{tr.limit:#x}), so IST{ist} is read from linear {slot:#x}"
        )
        if tr.base == 0:
            text += ", inside the BIOS's real-mode interrupt vector table"
        data = ev.read(slot, 8)
        if data is not None:
            value = int.from_bytes(data, "little")
            text += f": {value:#x}" + ("" if is_canonical(value) else " (not canonical)")
        return text
    if tr.limit < ist_min_limit(ist):
        return (
            f"the TSS limit {tr.limit:#x} does not cover IST{ist} (needs {ist_min_limit(ist):#x})"
        )
    if tables.tss is not None:
        slot_value = tables.tss.values.get(f"ist{ist}")
        if slot_value == 0:
            return f"TSS.IST{ist} is 0: the handler would run with RSP=0"
        if slot_value is not None and not is_canonical(slot_value):
            return f"TSS.IST{ist} = {slot_value:#x} is not canonical"
    return None


def ist_without_tss(chain: Chain, ev: Evidence) -> Cause | None:
    """A gate with IST > 0 was used while TR was never loaded or its IST slot is unusable
    (SDM §6.14.5): the CPU switches to a garbage stack and faults while pushing."""
    tables = ev.tables
    if tables is None or tables.mode != "ia32e" or tables.idt is None:
        return None
    steps = list(chain.steps)
    for step in steps:
        gate = _gate(tables, step.vector)
        if gate is None or not gate.present:
            continue
        ist = gate.decoded.values.get("ist", 0)
        if not ist:
            continue
        problem = _ist_problem(tables, ist, ev)
        if problem is None:
            continue
        nxt = _next(chain, step)
        evidence = [
            f"IDT[{step.vector:#04x}] ({step.title}) uses IST{ist}",
            problem,
        ]
        confidence: Confidence = "medium"
        if nxt is not None and step.cause_of_next:
            evidence.append(
                f"delivering it failed at the same RIP: {nxt.summary()} — the frame could not "
                "be pushed on that stack"
            )
            confidence = "high"
        others = [
            e.vector
            for e in tables.idt.present
            if e.decoded.values.get("ist") and e.vector != step.vector
        ]
        if others:
            evidence.append("other gates with an IST: " + vector_ranges(others))
            if 8 in others:
                evidence.append(
                    "the #DF gate uses an IST too, so the #DF fails the same way: triple fault"
                )
        evidence += _escalation(chain, nxt) if nxt is not None else []
        fix = (
            f"Load a TSS before sti: a 64-bit TSS descriptor (type 0x9, limit ≥ "
            f"{ist_min_limit(ist):#x}) in the GDT, TSS.IST{ist} = the top of a dedicated, "
            "mapped stack, then ltr; or set IST to 0 in the gates that do not need a "
            "separate stack."
        )
        return Cause(
            "ist-without-tss",
            f"IDT[{step.vector:#04x}] uses IST{ist} but "
            + ("TR was never loaded" if not tables.tr_loaded else "its IST slot is unusable"),
            tuple(evidence),
            fix,
            confidence,
            "LHV-good loads TR (ltr) and its gates use IST 0; Pebbles (32-bit) has no IST",
        )
    return None


def tss_rsp0_invalid(chain: Chain, ev: Evidence) -> Cause | None:
    """An interrupt from an outer ring could not switch to the CPL-0 stack: RSP0 (or
    ESP0/SS0) in the TSS is bad, or TR was never loaded (SDM §6.12.1, PaybackOS #6)."""
    tables = ev.tables
    for i, step in enumerate(chain.steps):
        nxt = chain.steps[i + 1] if i + 1 < len(chain.steps) else None
        if step.event.cpl == 0 or not step.cause_of_next or nxt is None:
            continue
        if nxt.vector not in (10, 12, 13, 14):
            continue
        if nxt.vector == 13 and nxt.error is not None and nxt.error.table == "IDT":
            continue  # gate DPL: another rule
        evidence = [
            f"{step.title} on vector {step.vector:#04x} arrived at CPL {step.event.cpl} "
            f"({_where(step)}): delivery to a CPL-0 handler loads the stack from the TSS",
            f"it failed at the same RIP: {nxt.summary()}",
        ]
        if tables is not None:
            ia32e = tables.mode == "ia32e"
            if not tables.tr_loaded:
                evidence.append("TR was never loaded: there is no TSS to take RSP0 from")
            elif tables.tss is not None:
                name = "rsp0" if ia32e else "esp0"
                value = tables.tss.values.get(name)
                if value is not None:
                    bad = value == 0 or (ia32e and not is_canonical(value))
                    evidence.append(
                        f"TSS.{name.upper()} = {value:#x}" + (" (unusable)" if bad else "")
                    )
                if not ia32e:
                    ss0 = tables.tss.values.get("ss0")
                    if ss0 is not None:
                        evidence.append(f"TSS.SS0 = {ss0:#06x}")
                if tables.tr.limit < (rsp_min_limit(0) if ia32e else 9):
                    evidence.append(f"the TSS limit {tables.tr.limit:#x} does not cover it")
        if nxt.vector == 14 and nxt.event.cr2 is not None:
            evidence.append(f"#PF CR2={nxt.event.cr2:#x}: the CPL-0 stack is not mapped")
        evidence += _escalation(chain, nxt)
        return Cause(
            "tss-rsp0-invalid",
            f"an interrupt from CPL {step.event.cpl} could not switch to the kernel stack "
            "(TSS RSP0/SS0)",
            tuple(evidence),
            "Before entering ring 3, set TSS.RSP0 (i386: ESP0, and SS0 = the kernel data "
            "selector) to the top of a mapped kernel stack and keep it current per task; "
            "load TR with ltr.",
            "high",
            "Pebbles sets SS0 = 0x18 (SEGSEL_KERNEL_DS) in its TSS and ESP0 per thread",
        )
    return None


def ring3_int_gate_dpl(chain: Chain, ev: Evidence) -> Cause | None:
    """``int N`` from ring 3 through a gate whose DPL is below the CPL: #GP(N*8+2)."""
    for i, step in enumerate(chain.steps):
        nxt = chain.steps[i + 1] if i + 1 < len(chain.steps) else None
        if step.source != "software" or step.event.cpl == 0 or nxt is None:
            continue
        if nxt.vector != 13 or nxt.error is None or nxt.error.table != "IDT":
            continue
        if nxt.error.index != step.vector:
            continue
        gate = _gate(ev.tables, step.vector)
        dpl = gate.decoded.values["dpl"] if gate is not None else None
        evidence = [
            f"software int {step.vector:#04x} at CPL {step.event.cpl} ({_where(step)})",
            f"then {nxt.summary()}",
        ]
        if dpl is not None:
            evidence.append(f"IDT[{step.vector:#04x}] has DPL {dpl} < CPL {step.event.cpl}")
        return Cause(
            "ring3-int-gate-dpl",
            f"int {step.vector:#04x} from ring {step.event.cpl} through a gate with a lower DPL",
            tuple(evidence),
            f"Give IDT[{step.vector:#04x}] DPL 3 (interrupt gate type byte 0xEE) if user code "
            "may call it; keep DPL 0 for the others.",
            "high",
            "Pebbles installs its system-call gates with DPL 3",
        )
    return None


_IRET = ("iret", "iretq", "iretw")


def _iret_frame(ev: Evidence, step: ChainStep) -> dict[str, int] | None:
    sp = step.event.sp
    words = ev.words_at(sp, 5)
    if words is None:
        return None
    names = (
        ("rip", "cs", "rflags", "rsp", "ss")
        if ev.arch == "amd64"
        else ("eip", "cs", "eflags", "esp", "ss")
    )
    return dict(zip(names, words, strict=False))


def _selector_problem(tables: SystemTables | None, selector: int, role: str) -> str | None:
    if tables is None or tables.gdt is None:
        return None
    gdt = tables.gdt
    if selector & 0xFFFC == 0:
        return "the null selector"
    if not gdt.within_limit(selector):
        return f"beyond the GDT limit {gdt.limit:#x}"
    entry = gdt.entry(selector)
    if entry is None or entry.decoded is None:
        return None
    desc = entry.decoded
    kind = desc.name_of("type") or "?"
    if role == "ss":
        if not is_data(desc) or not desc.values["type"] & 0x2:
            return f"a {kind} segment; SS must be a writable data segment"
    elif role == "cs" and not is_code(desc):
        return f"a {kind} segment; CS must be a code segment"
    if not desc.values["present"]:
        return "a segment that is not present"
    if desc.values["dpl"] != selector & 3 and role == "ss":
        return f"DPL {desc.values['dpl']} ≠ RPL {selector & 3}"
    return None


def iret_bad_selector(chain: Chain, ev: Evidence) -> Cause | None:
    """``iret``/``iretq`` faults on the frame it pops: a bad CS or SS selector (blog_os
    #277, rust-osdev bootloader #418)."""
    for step in chain.steps:
        if step.source != "exception" or step.vector not in (10, 11, 12, 13):
            continue
        instruction = ev.instruction_at(step.event.rip)
        by_name = instruction is None and step.symbol is not None and "iret" in step.symbol
        if instruction not in _IRET and not by_name:
            continue
        err = step.error
        selector = None
        if err is not None and err.table in ("GDT", "LDT"):
            selector = err.raw & 0xFFFC | (0x4 if err.table == "LDT" else 0)
        evidence = [
            f"{step.summary()}",
            f"the instruction there is {instruction}"
            if instruction
            else f"the symbol {step.symbol} names an iret path (instruction bytes not read)",
        ]
        if err is not None and err.names:
            evidence.append(f"the selector names {err.names}")
        frame = _iret_frame(ev, step)
        role = None
        if frame is not None:
            shown = ", ".join(f"{k.upper()}={v:#x}" for k, v in frame.items())
            evidence.append(f"the frame iret pops at SP {step.event.sp:#x}: {shown}")
            if selector is not None:
                if frame.get("ss", -1) & 0xFFFC == selector and (
                    ev.arch == "amd64" or frame.get("cs", 0) & 3
                ):
                    role = "ss"
                elif frame.get("cs", -1) & 0xFFFC == selector:
                    role = "cs"
        if selector is not None and role is None:
            role = "ss" if ev.arch == "amd64" else "cs"
        problem = _selector_problem(ev.tables, selector, role) if selector and role else None
        if problem:
            evidence.append(f"{(role or '').upper()}={selector:#06x} is {problem}")
        context = chain.context
        if context is not None and chain.steps[0] is step:
            evidence.append(f"returning from {context.title} (vector {context.vector:#04x})")
        evidence += _escalation(chain, step)
        what = f"{role.upper()} selector {selector:#06x}" if role and selector else "its frame"
        return Cause(
            "iret-bad-selector",
            f"{instruction or 'iret'} at {_where(step)} faulted on {what}"
            + (f": {problem}" if problem else ""),
            tuple(evidence),
            "Make the frame iret pops valid: CS a present code segment and SS a present "
            "writable data segment with DPL = RPL (64-bit: SS may be null at CPL 0). Check "
            "the GDT has a kernel data segment, the handler restores the stack exactly "
            "(pops the error code before iretq) and never writes a selector into the frame.",
            "high" if instruction in _IRET else "medium",
            "LHV-good returns with iretq to CS 0x08 / SS 0x18 (amd64), Pebbles with iret to "
            "SEGSEL_KERNEL_CS 0x10",
        )
    return None


PAGE = 0x1000


def _place(address: int, ev: Evidence) -> str:
    """Where ``address`` is, by symbol: ``boot_stack_guard+0xfc0: the guard page below
    boot_stack`` when the symbol names a guard and another symbol starts right above."""
    where = symbolize(address, ev.symbols)
    if where is None:
        return ""
    name = where.split("+", 1)[0]
    if "guard" not in name.lower():
        return f"; {where}"
    start = ev.symbols[name]
    above = sorted((a, n) for n, a in ev.symbols.items() if a > start and "guard" not in n)
    page_end = (address // PAGE + 1) * PAGE
    below = next((n for a, n in above if a == page_end), None)
    return f"; {where}: the guard page" + (f" below {below}" if below else "")


def _cr2_walk(step: ChainStep, ev: Evidence) -> str | None:
    """The page walk of the #PF's CR2 over the collected paging entries, as one line
    (None when the entries were not read). Control registers: the log's dump before the
    delivery, else the CPU at the stop."""
    cr2 = step.event.cr2
    cpu = step.event.registers or ev.cpu
    if cr2 is None or cpu is None or not ev.physical:
        return None
    result = walk(ev.read_physical, cpu.cr3, cpu.cr4, cpu.efer, cpu.cr0, cr2)
    read = [s for s in result.steps if s.entry is not None]
    if not read or len(read) < len(result.steps):
        return None
    path = " → ".join(f"{s.name}[{s.index:#x}] {s.entry.raw:#x}" for s in read if s.entry)
    last = read[-1].entry
    assert last is not None
    kind = {"4level": "4-level", "pae": "PAE", "32bit": "32-bit"}.get(result.paging or "", "no")
    tables = f"(CR3 {cpu.cr3:#x}, {kind} paging)"
    if result.physical is not None:
        rights = "writable" if result.writable else "read-only"
        return (
            f"CR2 {cr2:#x} is mapped {tables}: {path} → physical {result.physical:#x}, "
            f"{rights}{_place(cr2, ev)}"
        )
    if not last.values["present"]:
        return f"CR2 {cr2:#x} is in a not-present page {tables}: {path} P=0{_place(cr2, ev)}"
    return f"CR2 {cr2:#x}: the page walk {tables} fails: {path}: {result.fault}"


def stack_overflow(chain: Chain, ev: Evidence) -> Cause | None:
    """#PF with CR2 at or just below the stack pointer, then #DF (and a triple fault when
    the #DF has no IST stack): the kernel stack ran into an unmapped page (anos #140)."""
    for step in chain.steps:
        if step.vector != 14 or step.source != "exception" or step.event.cr2 is None:
            continue
        sp, cr2 = step.event.sp, step.event.cr2
        if not sp - 0x2000 <= cr2 < sp + 0x100:
            continue
        delta = cr2 - sp
        rel = "= RSP" if delta == 0 else (f"RSP{delta:+#x}")
        evidence = [
            f"#PF at {_where(step)}: CR2={cr2:#x} with RSP={sp:#x} (CR2 {rel}): an access "
            "at the stack pointer",
        ]
        if step.error is not None:
            evidence.append(f"#PF error code {step.error.raw:#x}: {step.error.text}")
        walked = _cr2_walk(step, ev)
        if walked is not None:
            evidence.append(walked)
        elif step.error is not None and not step.error.fields.get("p", 1):
            evidence.append("the page is not present: the guard page below the stack?")
        nxt = _next(chain, step)
        confidence: Confidence = "medium"
        if nxt is not None and nxt.vector == 8:
            evidence.append(
                "delivering the #PF pushes onto the same stack and faults again: #PF during "
                "#PF delivery is a #DF (SDM Table 6-5)"
            )
            confidence = "high"
        gate = _gate(ev.tables, 8)
        if chain.triple_fault is not None:
            ist = gate.decoded.values.get("ist", 0) if gate is not None else 0
            evidence.append(
                "the #DF is pushed onto the same dead stack"
                + (" (IDT[8] IST=0)" if gate is not None and not ist else "")
                + ": triple fault"
            )
        return Cause(
            "stack-overflow",
            f"the kernel stack overflowed into an unmapped page at {cr2:#x} ({_where(step)})",
            tuple(evidence),
            "Find the unbounded recursion or oversized frame at "
            f"{_where(step)}; make the stack larger if the depth is legitimate. Give #DF its "
            "own stack (IST1 in a loaded TSS) so a stack overflow reports instead of resetting.",
            confidence,
            "LHV-good's stack is never exhausted; its guard page turns an overflow into a #PF",
        )
    return None


def _gate_unusable(tables: SystemTables | None, vector: int) -> str | None:
    """Why IDT[vector] cannot deliver (None if it can, or the IDT is unknown)."""
    if tables is None or tables.idt is None:
        return None
    if not tables.idt.covers(vector):
        return f"IDT[{vector:#04x}] is beyond the IDT limit {tables.idt.limit:#x}"
    gate = tables.idt.gate(vector)
    if gate is None:
        return None
    if not gate.present:
        return describe_gate(tables, vector)
    valid = is_valid_idt_gate_type(gate.decoded.values["type"], tables.mode)
    return None if valid else describe_gate(tables, vector)


def _missing_exception_gate(chain: Chain, ev: Evidence) -> Cause | None:
    """A #DF that QEMU logged as ``check_exception old: X new 0xb/0xd``: the gate of the
    exception X being delivered is unusable (no v= line for the #NP/#GP in between)."""
    for step in chain.steps:
        event = step.event
        if step.vector != 8 or event.check_new not in (11, 13):
            continue
        old = event.check_old
        if old is None or old < 0:
            continue
        why = _gate_unusable(ev.tables, old)
        if why is None:
            continue
        evidence = [
            f"{_log_ref(step)}: 'check_exception old: {old:#x} new {event.check_new:#x}': "
            f"{vector_name(event.check_new or 0)} was raised while delivering "
            f"{vector_name(old)}, so the CPU delivered #DF instead",
            why,
        ]
        evidence += _escalation(chain, step)
        return Cause(
            "gate-not-present",
            f"no usable IDT gate for {vector_name(old)} (vector {old:#04x}): the "
            f"{vector_name(old)} became a #DF",
            tuple(evidence),
            f"Install a present interrupt gate for vector {old:#04x} ({vector_name(old)}); "
            "fill gates for all exceptions 0-31 so a fault reports instead of escalating.",
            "medium",
            "LHV-good fills all 256 gates, exceptions included",
        )
    return None


def gate_not_present(chain: Chain, ev: Evidence) -> Cause | None:
    """#NP (or #GP) with an IDT-format error code: the gate for vector v is missing, not
    present, of an invalid type, or beyond the IDT limit (blog_os "hardware interrupts")."""
    for i, step in enumerate(chain.steps):
        err = step.error
        if step.vector not in (11, 13) or err is None or err.table != "IDT":
            continue
        vector = err.index
        if vector is None:
            continue
        gate = _gate(ev.tables, vector)
        if (
            step.vector == 13
            and gate is not None
            and gate.present
            and ev.tables is not None
            and is_valid_idt_gate_type(gate.decoded.values["type"], ev.tables.mode)
        ):
            continue  # a present, valid gate: DPL or selector trouble, not "missing"
        delivering = chain.steps[i - 1] if i > 0 and chain.steps[i - 1].cause_of_next else None
        evidence = [f"{step.summary()}"]
        if err.quirk:
            evidence.append(err.quirk)
        evidence.append(err.names or f"IDT[{vector:#04x}] (the IDT was not captured)")
        primary = delivering is None or delivering.source in ("hardware", "software")
        what = f"vector {vector:#04x}"
        if delivering is not None:
            if delivering.vector != vector:
                evidence.append(
                    f"note: the error code names {vector:#04x} but {delivering.vector:#04x} was "
                    "being delivered"
                )
            what = f"{delivering.title} on vector {delivering.vector:#04x}"
            evidence.append(f"raised while delivering {what}, at {_where(delivering)}")
            if delivering.source == "hardware" and not err.external:
                evidence.append(
                    "EXT=0 although a hardware interrupt was being delivered: QEMU TCG does not "
                    "set EXT (a CPU does)"
                )
        evidence += _escalation(chain, step)
        irq = step.irq or (delivering.irq if delivering is not None else None)
        fix = (
            f"Install a present interrupt gate for vector {vector:#04x} (type 0xE, P=1, "
            "selector = the kernel CS, offset = its handler) before the vector can fire"
        )
        if irq is not None:
            fix += f" — it is {_irq_text(*irq)}: install it before unmasking that line or sti"
        fix += ". Fill gates for all exceptions 0-31 too, so a fault reports instead of "
        fix += "escalating to #DF."
        label = vector_name(vector)
        info = exception_info(vector)
        summary = (
            f"no usable IDT gate for vector {vector:#04x}"
            + (f" ({label}: {info.name})" if info is not None else "")
            + (f", needed to deliver {what}" if delivering is not None else "")
        )
        if not primary:
            summary += "; so that exception escalated"
        return Cause(
            "gate-not-present",
            summary,
            tuple(evidence),
            fix,
            "high" if primary else "medium",
            "Pebbles installs its timer gate at TIMER_IDT_ENTRY 0x20 before enabling "
            "interrupts; LHV-good fills all 256 gates",
        )
    return _missing_exception_gate(chain, ev)


def unexplained_chain(chain: Chain, ev: Evidence) -> Cause | None:
    """No rule fired: a precise account of every event in order, error codes decoded."""
    if chain.empty:
        return None
    evidence = []
    if chain.context is not None:
        evidence.append(f"last normal event: {chain.context.summary()}")
    for n, step in enumerate(chain.steps, start=1):
        line = f"{n}. {step.summary()}"
        if step.error is not None and step.error.names:
            line += f" — {step.error.names}"
        if step.event.cpl:
            line += f" (CPL {step.event.cpl})"
        if step.cause_of_next:
            line += "; its delivery raised the next one"
        evidence.append(line)
        if step.error is not None and step.error.quirk:
            evidence.append(f"   {step.error.quirk}")
        instruction = ev.instruction_at(step.event.rip)
        if instruction:
            evidence.append(f"   instruction at {step.event.rip:#x}: {instruction}")
    if chain.triple_fault is not None:
        evidence.append(f"{len(chain.steps) + 1}. triple fault")
    first = chain.first
    return Cause(
        "unexplained-chain",
        "no known cause matches; the chain, in order"
        + (f", starts with {first.name} at {_where(first)}" if first is not None else ""),
        tuple(evidence),
        "Start from the first exception: its error code and the table entry it names, and "
        "the instruction at its RIP.",
        "low",
    )


RULES: tuple[Rule, ...] = (
    pic_not_remapped,
    spurious_irq,
    pic_not_masked_with_apic,
    ist_without_tss,
    tss_rsp0_invalid,
    ring3_int_gate_dpl,
    iret_bad_selector,
    stack_overflow,
    gate_not_present,
)


def diagnose(chain: Chain, ev: Evidence) -> list[Cause]:
    """Every cause that fired, most likely first (confidence, then rule order); adds
    ``unexplained-chain`` when nothing explains the chain with high confidence."""
    fired: list[tuple[int, int, Cause]] = []
    for order, rule in enumerate(RULES):
        cause = rule(chain, ev)
        if cause is not None:
            fired.append((_RANK[cause.confidence], order, cause))
    fired.sort(key=lambda t: (t[0], t[1]))
    causes = [c for _, _, c in fired]
    if not any(c.confidence == "high" for c in causes):
        fallback = unexplained_chain(chain, ev)
        if fallback is not None and (chain.exceptions or chain.triple_fault is not None):
            causes.append(fallback)
    return causes

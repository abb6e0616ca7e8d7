"""``gate-not-present``: no usable IDT gate for a vector that was delivered.

Intel SDM Vol. 3A §6.10 (IDTR limit), §6.11 (gate descriptors), §6.12.1 (delivery:
#NP for a not-present gate, #GP for one beyond the limit or of the wrong type), §6.13
(the IDT-format error code).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._common import (
    escalation,
    gate_at,
    gate_check,
    gate_unusable,
    irq_text,
    log_ref,
    where,
)
from lhvdbg.diagnose.rules._model import cause_for, kernel_selectors, model_applies
from lhvdbg.diagnose.rules._registry import Cause, rule
from lhvdbg.x86.segments import is_valid_idt_gate_type
from lhvdbg.x86.vectors import exception_info, vector_name

_NOT_PRESENT = 11  # #NP: the check that raises it is the gate's P bit
_REFERENCE = (
    "Pebbles installs its timer gate at TIMER_IDT_ENTRY 0x20 before enabling interrupts; "
    "LHV-good fills all 256 gates"
)


def _fix(failure: Failure, ev: Evidence) -> str:
    d = failure.delivery
    vector = d.event.vector if d is not None else 0
    cs, _ = kernel_selectors(ev)
    kind = "64-bit" if d is not None and d.mode == "ia32e" else "32-bit"
    text = (
        f"Install a present {kind} interrupt gate for vector {vector:#04x} (type 0xE, P=1, "
        "selector = the kernel's code segment"
        + (f" {cs:#04x}" if cs is not None else "")
        + ", offset = its handler) before the vector can fire"
    )
    irq = failure.step.irq if d is not None and d.event.kind == "hardware" else None
    if irq is not None:
        text += f" — it is {irq_text(*irq)}: install it before unmasking that line or sti"
    if d is not None and d.event.kind == "exception":
        text += "; fill gates for all exceptions 0-31, so a fault reports instead of escalating"
    return text + "."


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
        why = gate_unusable(ev.tables, old)
        if why is None:
            continue
        evidence = [
            f"{log_ref(step)}: 'check_exception old: {old:#x} new {event.check_new:#x}': "
            f"{vector_name(event.check_new or 0)} was raised while delivering "
            f"{vector_name(old)}, so the CPU delivered #DF instead",
            why,
        ]
        evidence += escalation(chain, step)
        check, field = gate_check(ev.tables, old)
        return Cause(
            "gate-not-present",
            f"no usable IDT gate for {vector_name(old)} (vector {old:#04x}): the "
            f"{vector_name(old)} became a #DF",
            tuple(evidence),
            f"Install a present interrupt gate for vector {old:#04x} ({vector_name(old)}); "
            "fill gates for all exceptions 0-31 so a fault reports instead of escalating.",
            "medium",
            "LHV-good fills all 256 gates, exceptions included",
            check=check or ("gate-present" if event.check_new == _NOT_PRESENT else None),
            fix_fields=(field,),
        )
    return None


@rule(
    "gate-not-present",
    order=90,
    sdm="Vol. 3A §6.10, §6.11, §6.12.1",
    fires_on=("gate-present",),
    cites="the decoded code, the gate, what was being delivered",
    tested_on="firmware `timer-gate-missing` (amd64, i386), `iret-bad-ss` (the missing #GP "
    "gate, medium)",
)
def gate_not_present(chain: Chain, ev: Evidence) -> Cause | None:
    """A delivered vector's gate is not present (P=0): #NP with the IDT error code
    (blog_os "hardware interrupts"). With the state captured the delivery model decides;
    from the log alone, an #NP/#GP naming an unusable gate."""
    if model_applies(chain, ev):
        return cause_for(
            chain,
            ev,
            "gate-not-present",
            ("gate-present",),
            fix=_fix,
            reference=_REFERENCE,
        )
    for i, step in enumerate(chain.steps):
        err = step.error
        if step.vector not in (11, 13) or err is None or err.table != "IDT":
            continue
        vector = err.index
        if vector is None:
            continue
        gate = gate_at(ev.tables, vector)
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
            evidence.append(f"raised while delivering {what}, at {where(delivering)}")
            if delivering.source == "hardware" and not err.external:
                evidence.append(
                    "EXT=0 although a hardware interrupt was being delivered: QEMU TCG does not "
                    "set EXT (a CPU does)"
                )
        evidence += escalation(chain, step)
        irq = step.irq or (delivering.irq if delivering is not None else None)
        fix = (
            f"Install a present interrupt gate for vector {vector:#04x} (type 0xE, P=1, "
            "selector = the kernel CS, offset = its handler) before the vector can fire"
        )
        if irq is not None:
            fix += f" — it is {irq_text(*irq)}: install it before unmasking that line or sti"
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
        check, field = gate_check(ev.tables, vector)
        return Cause(
            "gate-not-present",
            summary,
            tuple(evidence),
            fix,
            "high" if primary else "medium",
            "Pebbles installs its timer gate at TIMER_IDT_ENTRY 0x20 before enabling "
            "interrupts; LHV-good fills all 256 gates",
            check=check or ("gate-present" if step.vector == _NOT_PRESENT else None),
            fix_fields=(field,),
        )
    return _missing_exception_gate(chain, ev)

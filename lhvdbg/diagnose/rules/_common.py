"""Helpers the rules share: where a step happened, what followed it, the IRQ it was, the
gate it went through and whether that gate can deliver (Intel SDM Vol. 3A §6.11, §6.12)."""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain, ChainStep, describe_gate
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.x86.cpustate import PicChip
from lhvdbg.x86.interrupt_sources import irq_device
from lhvdbg.x86.tables import IdtEntry, SystemTables
from lhvdbg.x86.usable import gate_problem

__all__ = [
    "escalation",
    "gate_at",
    "gate_check",
    "gate_unusable",
    "idt_field",
    "interrupted_flags",
    "irq_text",
    "log_ref",
    "next_step",
    "pic_chip",
    "where",
]


def where(step: ChainStep) -> str:
    """The symbol at the step's RIP, else the address."""
    return step.symbol or f"{step.event.rip:#x}"


def log_ref(step: ChainStep) -> str:
    """``-d int log line N`` for a logged step, else ``the chain``."""
    return f"-d int log line {step.event.line}" if step.event.line else "the chain"


def irq_text(chip: str, line: int) -> str:
    """``IRQ0 (PIT timer)`` for a PIC input (``slave`` lines count from 8)."""
    number = line + (8 if chip == "slave" else 0)
    device = irq_device(number)
    return f"IRQ{number}" + (f" ({device})" if device else "")


def idt_field(vector: int, field: str) -> str:
    """A fix field naming one field of an IDT gate: ``idt[0x20].present``."""
    return f"idt[{vector:#04x}].{field}"


def interrupted_flags(step: ChainStep, ev: Evidence, chain: Chain) -> int | None:
    """RFLAGS of the interrupted code: the log's register dump, else the frame at the stop."""
    if step.event.registers is not None:
        return step.event.registers.flags
    if ev.frame is not None and chain.stop is step and ev.frame.rflags is not None:
        return ev.frame.rflags
    return None


def gate_at(tables: SystemTables | None, vector: int) -> IdtEntry | None:
    """IDT[vector] as captured (None when the IDT or that entry was not read)."""
    if tables is None or tables.idt is None:
        return None
    return tables.idt.gate(vector)


def next_step(chain: Chain, step: ChainStep) -> ChainStep | None:
    """The next delivered step after ``step`` (raises folded into it are passed over)."""
    index = chain.steps.index(step)
    return next((s for s in chain.steps[index + 1 :] if s.delivered), None)


def escalation(chain: Chain, step: ChainStep) -> list[str]:
    """Evidence lines for what was delivered after ``step`` (#DF, triple fault); a folded
    raise is named by the #DF that replaced it."""
    lines = []
    after = chain.steps[chain.steps.index(step) + 1 :]
    for nxt in (s for s in after if s.delivered):
        lines.append(f"then {nxt.summary()}")
    if chain.triple_fault is not None:
        lines.append(
            "then a triple fault (QEMU: 'Triple fault'): the #DF could not be delivered either"
        )
    return lines


def pic_chip(ev: Evidence, name: str) -> PicChip | None:
    """The ``master`` or ``slave`` 8259 as captured."""
    pic = ev.snapshot.pic if ev.snapshot is not None else None
    if pic is None:
        return None
    return pic.master if name == "master" else pic.slave


def gate_unusable(tables: SystemTables | None, vector: int) -> str | None:
    """Why IDT[vector] cannot deliver (None if it can, or the IDT is unknown): the
    delivery model's reason (:func:`lhvdbg.x86.usable.gate_problem`), with the gate."""
    problem = gate_problem(tables, vector) if tables is not None else None
    if problem is None or tables is None:
        return None
    gate = describe_gate(tables, vector)
    return problem[1] if gate is None or problem[0] == "idt-limit" else gate


_FIX_FIELD = {"idt-limit": "idtr.limit", "gate-type": "type", "gate-present": "present"}


def gate_check(tables: SystemTables | None, vector: int) -> tuple[str | None, str]:
    """The delivery check IDT[vector] fails and the fix field that mends it: the IDT limit
    (``idt-limit``, ``idtr.limit``), the type (``gate-type``) or P (``gate-present``), as
    the delivery model decides. Unknown state (or another check) gives no check and the
    gate's present bit."""
    problem = gate_problem(tables, vector) if tables is not None else None
    field = _FIX_FIELD.get(problem[0]) if problem is not None else None
    if problem is None or field is None:
        return None, idt_field(vector, "present")
    return problem[0], field if "." in field else idt_field(vector, field)

"""Helpers the rules share: where a step happened, what followed it, the IRQ it was, the
gate it went through and whether that gate can deliver (Intel SDM Vol. 3A §6.11, §6.12)."""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain, ChainStep, describe_gate
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.x86.cpustate import PicChip
from lhvdbg.x86.interrupt_sources import irq_device
from lhvdbg.x86.segments import is_valid_idt_gate_type
from lhvdbg.x86.tables import IdtEntry, SystemTables

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


def gate_check(tables: SystemTables | None, vector: int) -> tuple[str | None, str]:
    """The delivery check IDT[vector] fails and the fix field that mends it: the IDT limit
    (``idt-limit``, ``idtr.limit``), the type (``gate-type``) or P (``gate-present``).
    Unknown state gives no check and the gate's present bit."""
    present = idt_field(vector, "present")
    if tables is None or tables.idt is None:
        return None, present
    if not tables.idt.covers(vector):
        return "idt-limit", "idtr.limit"
    gate = tables.idt.gate(vector)
    if gate is None:
        return None, present
    if not is_valid_idt_gate_type(gate.decoded.values["type"], tables.mode):
        return "gate-type", idt_field(vector, "type")
    if not gate.present:
        return "gate-present", present
    return None, present

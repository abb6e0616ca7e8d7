"""``iret-bad-selector``: ``iret``/``iretq`` faults on the CS or SS selector it pops.

Intel SDM Vol. 2A IRET/IRETD/IRETQ pseudo-code (CS and SS checks: #GP(selector),
#NP/#SS when not present); Vol. 3A §6.14.3 (IRETQ always pops SS:RSP in 64-bit mode).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain, ChainStep
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._common import escalation, where
from lhvdbg.diagnose.rules._model import cause_for, model_applies
from lhvdbg.diagnose.rules._registry import Cause, rule
from lhvdbg.x86.segments import is_code, is_data
from lhvdbg.x86.tables import SystemTables

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


def _selector_problem(
    tables: SystemTables | None, selector: int, role: str
) -> tuple[str, str] | None:
    """Why ``selector`` cannot be popped as ``role`` (``cs``/``ss``): the text and the
    IRET check it fails (``iret-ss-type``...); None when it is usable or unknown."""
    if tables is None or tables.gdt is None:
        return None
    gdt = tables.gdt
    if selector & 0xFFFC == 0:
        return "the null selector", f"iret-{role}-null"
    if not gdt.within_limit(selector):
        return f"beyond the GDT limit {gdt.limit:#x}", f"iret-{role}-limit"
    entry = gdt.entry(selector)
    if entry is None or entry.decoded is None:
        return None
    desc = entry.decoded
    kind = desc.name_of("type") or "?"
    if role == "ss":
        if not is_data(desc) or not desc.values["type"] & 0x2:
            return f"a {kind} segment; SS must be a writable data segment", "iret-ss-type"
    elif role == "cs" and not is_code(desc):
        return f"a {kind} segment; CS must be a code segment", "iret-cs-type"
    if not desc.values["present"]:
        return "a segment that is not present", f"iret-{role}-present"
    if desc.values["dpl"] != selector & 3 and role == "ss":
        return f"DPL {desc.values['dpl']} ≠ RPL {selector & 3}", "iret-ss-dpl"
    return None


_REFERENCE = (
    "LHV-good returns with iretq to CS 0x08 / SS 0x18 (amd64), Pebbles with iret to "
    "SEGSEL_KERNEL_CS 0x10"
)
_MODEL_CHECKS = tuple(
    f"iret-{part}-{what}"
    for part in ("cs", "ss")
    for what in ("null", "limit", "type", "rpl", "dpl", "present")
)


def _summary(failure: Failure) -> str:
    step = failure.step
    return f"iret at {where(step)} faulted on the frame it popped: {failure.check.text}"


def _fix(failure: Failure, ev: Evidence) -> str:
    part = "CS" if failure.check.id.startswith("iret-cs") else "SS"
    value = failure.check.fields.get(f"iret_frame.{part.lower()}", 0)
    wanted = (
        "a present code segment whose DPL equals its RPL (the CPL returned to)"
        if part == "CS"
        else "a present, writable data segment with RPL = DPL = the CS's RPL (IA-32e: a "
        "null SS is allowed returning to CPL 0-2)"
    )
    return (
        f"The frame iret popped holds {part}={value:#06x}; it must be {wanted}. Check the "
        "handler restores the stack exactly (pops the error code before iret), that the "
        "GDT has that segment, and any code that builds or edits a frame by hand."
    )


@rule(
    "iret-bad-selector",
    order=70,
    sdm="Vol. 2A IRET; Vol. 3A §6.14.3",
    fires_on=(
        "iret-cs-null",
        "iret-cs-limit",
        "iret-cs-type",
        "iret-cs-rpl",
        "iret-cs-dpl",
        "iret-cs-present",
        "iret-ss-null",
        "iret-ss-rpl",
        "iret-ss-limit",
        "iret-ss-type",
        "iret-ss-dpl",
        "iret-ss-present",
    ),
    cites=(
        "the selector, the descriptor it names, the frame `iret` pops (which slot holds "
        "it) and why it is unusable"
    ),
    tested_on="firmware `iret-bad-ss` (amd64: SS=0x08, i386: CS=0x10)",
)
def iret_bad_selector(chain: Chain, ev: Evidence) -> Cause | None:
    """``iret``/``iretq`` faults on the frame it pops: a bad CS or SS selector (blog_os
    #277, rust-osdev bootloader #418)."""
    if model_applies(chain, ev):
        return cause_for(
            chain,
            ev,
            "iret-bad-selector",
            _MODEL_CHECKS,
            fix=_fix,
            summary=_summary,
            reference=_REFERENCE,
        )
    for step in chain.steps:
        if step.source != "exception" or step.vector not in (10, 11, 12, 13):
            continue
        if not step.delivered:
            continue  # folded: raised by a delivery, not by the iret
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
        found = _selector_problem(ev.tables, selector, role) if selector and role else None
        problem, check = found if found is not None else (None, None)
        if problem:
            evidence.append(f"{(role or '').upper()}={selector:#06x} is {problem}")
        context = chain.context
        if context is not None and chain.steps[0] is step:
            evidence.append(f"returning from {context.title} (vector {context.vector:#04x})")
        evidence += escalation(chain, step)
        what = f"{role.upper()} selector {selector:#06x}" if role and selector else "its frame"
        return Cause(
            "iret-bad-selector",
            f"{instruction or 'iret'} at {where(step)} faulted on {what}"
            + (f": {problem}" if problem else ""),
            tuple(evidence),
            "Make the frame iret pops valid: CS a present code segment and SS a present "
            "writable data segment with DPL = RPL (64-bit: SS may be null at CPL 0). Check "
            "the GDT has a kernel data segment, the handler restores the stack exactly "
            "(pops the error code before iretq) and never writes a selector into the frame.",
            "high" if instruction in _IRET else "medium",
            _REFERENCE,
            check=check,
            fix_fields=(f"iret_frame.{role}",) if role else (),
        )
    return None

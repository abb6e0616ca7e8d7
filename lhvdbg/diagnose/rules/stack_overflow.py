"""``stack-overflow``: the kernel stack ran into an unmapped page.

Intel SDM Vol. 3A §6.15 Interrupt 14 (#PF, CR2) and Interrupt 8 (Table 6-5: #PF while
delivering #PF is #DF; a fault while delivering #DF is a shutdown), §4.5 (4-level paging).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain, ChainStep
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.rules._common import gate_at, next_step, where
from lhvdbg.diagnose.rules._registry import Cause, Confidence, rule
from lhvdbg.state.symbols import symbolize
from lhvdbg.x86.paging import walk

PAGE = 0x1000


def _place(address: int, ev: Evidence) -> str:
    """Where ``address`` is, by symbol: ``boot_stack_guard+0xfc0: the guard page below
    boot_stack`` when the symbol names a guard and another symbol starts right above."""
    named = symbolize(address, ev.symbols)
    if named is None:
        return ""
    name = named.split("+", 1)[0]
    if "guard" not in name.lower():
        return f"; {named}"
    start = ev.symbols[name]
    above = sorted((a, n) for n, a in ev.symbols.items() if a > start and "guard" not in n)
    page_end = (address // PAGE + 1) * PAGE
    below = next((n for a, n in above if a == page_end), None)
    return f"; {named}: the guard page" + (f" below {below}" if below else "")


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


def _df_stack_advice(ev: Evidence) -> str:
    """What to say about #DF's own stack, in the mode's language (IA-32e: an IST slot;
    protected mode: a task gate to its own TSS, SDM Vol. 3A §6.15 Interrupt 8)."""
    gate = gate_at(ev.tables, 8)
    if ev.tables is not None and ev.tables.mode == "ia32e":
        if gate is not None and gate.decoded.values.get("ist", 0):
            return "#DF already has its own IST stack, which is why the overflow reported."
        return (
            "Give #DF its own stack (IDT[8].ist = n with TSS.ISTn the top of a separate stack, "
            "TR loaded) so an overflow reports instead of resetting."
        )
    if gate is not None and gate.decoded.values.get("type") == 0x5:
        return "#DF already runs as its own task (a task gate), which is why it reported."
    return (
        "Give #DF a task gate to its own TSS (its own ESP0/SS0 stack and EIP) so an "
        "overflow reports instead of resetting: there is no IST in protected mode."
    )


@rule(
    "stack-overflow",
    order=80,
    sdm="Vol. 3A §6.15 (Interrupt 14, Interrupt 8)",
    fires_on=("stack-push",),
    cites=(
        "error code (not present, write); the page walk of CR2 (`x86.paging.walk` over "
        "the paging entries the collector read with HMP `xp`: each level's entry, P=0 "
        "where it stops) and the symbol CR2 falls in (`boot_stack_guard+0xfc0: the guard "
        "page below boot_stack`); the #DF that follows (SDM Table 6-5), the triple fault "
        "when IDT[8] has no IST"
    ),
    tested_on="firmware `stack-overflow` (amd64, i386)",
)
def stack_overflow(chain: Chain, ev: Evidence) -> Cause | None:
    """#PF with CR2 at or just below the stack pointer, then #DF (and a triple fault when
    the #DF has no IST stack): the kernel stack ran into an unmapped page (anos #140)."""
    for step in chain.steps:
        if step.vector != 14 or step.source != "exception" or step.event.cr2 is None:
            continue  # (a folded #PF has no CR2 in the log)
        sp, cr2 = step.event.sp, step.event.cr2
        if not sp - 0x2000 <= cr2 < sp + 0x100:
            continue
        delta = cr2 - sp
        rel = "= RSP" if delta == 0 else (f"RSP{delta:+#x}")
        evidence = [
            f"#PF at {where(step)}: CR2={cr2:#x} with RSP={sp:#x} (CR2 {rel}): an access "
            "at the stack pointer",
        ]
        if step.error is not None:
            evidence.append(f"#PF error code {step.error.raw:#x}: {step.error.text}")
        walked = _cr2_walk(step, ev)
        if walked is not None:
            evidence.append(walked)
        elif step.error is not None and not step.error.fields.get("p", 1):
            evidence.append("the page is not present: the guard page below the stack?")
        nxt = next_step(chain, step)
        confidence: Confidence = "medium"
        if nxt is not None and nxt.vector == 8:
            evidence.append(
                "delivering the #PF pushes onto the same stack and faults again: #PF during "
                "#PF delivery is a #DF (SDM Table 6-5)"
            )
            confidence = "high"
        gate = gate_at(ev.tables, 8)
        if chain.triple_fault is not None:
            ist = gate.decoded.values.get("ist", 0) if gate is not None else 0
            evidence.append(
                "the #DF is pushed onto the same dead stack"
                + (" (IDT[8] IST=0)" if gate is not None and not ist else "")
                + ": triple fault"
            )
        return Cause(
            "stack-overflow",
            f"the kernel stack overflowed into an unmapped page at {cr2:#x} ({where(step)})",
            tuple(evidence),
            "Find the unbounded recursion or oversized frame at "
            f"{where(step)}; make the stack larger if the depth is legitimate. "
            + _df_stack_advice(ev),
            confidence,
            "LHV-good's stack is never exhausted; its guard page turns an overflow into a #PF",
            check="stack-push",
            fix_fields=("stack",),
        )
    return None

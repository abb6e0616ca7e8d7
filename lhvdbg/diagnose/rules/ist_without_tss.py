"""``ist-without-tss``: a gate with IST > 0 used while its IST slot cannot give a stack.

Intel SDM Vol. 3A §6.14.5 (interrupt stack table), §7.7 (64-bit TSS: IST1-7 at 0x24 + 8·(n−1)).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._common import escalation, gate_at, next_step
from lhvdbg.diagnose.rules._model import cause_for, model_applies
from lhvdbg.diagnose.rules._registry import Cause, Confidence, rule
from lhvdbg.diagnose.tss_diff import vector_ranges
from lhvdbg.x86.cpuview import is_canonical
from lhvdbg.x86.tables import SystemTables
from lhvdbg.x86.tss import ist_min_limit, ist_offset


def _ist_problem(
    tables: SystemTables, ist: int, ev: Evidence
) -> tuple[str, str | None, str] | None:
    """What is wrong with IST``ist``: the text, the delivery check it fails (None when
    the captured state cannot tell) and the fix field."""
    tr = tables.tr
    slot_field = f"tss.ist{ist}"
    slot = tr.base + ist_offset(ist)
    if not tables.tr_loaded:
        text = (
            f"TR was never loaded (selector {tr.selector:#06x}, base {tr.base:#x}, limit "
            f"{tr.limit:#x}), so IST{ist} is read from linear {slot:#x}"
        )
        if tr.base == 0:
            text += ", inside the BIOS's real-mode interrupt vector table"
        check = None
        data = ev.read(slot, 8)
        if data is not None:
            value = int.from_bytes(data, "little")
            text += f": {value:#x}" + ("" if is_canonical(value) else " (not canonical)")
            check = None if is_canonical(value) else "stack-pointer"
        return text, check, "tr"
    if tr.limit < ist_min_limit(ist):
        return (
            f"the TSS limit {tr.limit:#x} does not cover IST{ist} (needs {ist_min_limit(ist):#x})",
            "tss-limit",
            "tr.limit",
        )
    if tables.tss is not None:
        slot_value = tables.tss.values.get(f"ist{ist}")
        if slot_value == 0:
            return (
                f"TSS.IST{ist} is 0: the handler would run with RSP=0",
                "stack-pointer",
                slot_field,
            )
        if slot_value is not None and not is_canonical(slot_value):
            return f"TSS.IST{ist} = {slot_value:#x} is not canonical", "stack-pointer", slot_field
    return None


def _tr_never_loaded(failure: Failure) -> bool:
    d = failure.delivery
    via_tss = d is not None and (d.stack or "").startswith(("ist", "rsp", "ss"))
    return failure.check.fix_fields == ("tr",) or (
        via_tss and any("never loaded" in c.text for c in (d.checks if d else ()))
    )


def _fix(failure: Failure, ev: Evidence) -> str:
    d = failure.delivery
    stack = (d.stack if d is not None else None) or "ist1"
    return (
        "Load a TSS before sti: build the 64-bit TSS with "
        f"TSS.{stack} = the top of a mapped stack, put its 16-byte descriptor (type 0x9, "
        "limit ≥ 0x67) in the GDT and run ltr with its selector — or give the gates IST 0 "
        "until then."
    )


@rule(
    "ist-without-tss",
    order=40,
    sdm="Vol. 3A §6.14.5, §7.7",
    fires_on=("tss-limit", "stack-pointer", "stack-push"),
    cites=(
        "the gate's IST, TR's reset state, the IST value read from linear 0x24 (the real-"
        "mode IVT), the fault at the same RIP, the #DF gate's IST"
    ),
    tested_on="firmware `ist-without-tss` (amd64)",
)
def ist_without_tss(chain: Chain, ev: Evidence) -> Cause | None:
    """A gate with IST > 0 was used while TR was never loaded (SDM §6.14.5): the CPU
    reads the IST slot at TR's reset base 0 — the real-mode IVT — switches to a garbage
    stack and faults."""
    if model_applies(chain, ev):
        return cause_for(
            chain,
            ev,
            "ist-without-tss",
            ("tss-limit", "stack-pointer", "stack-push"),
            fix=_fix,
            accept=_tr_never_loaded,
            reference="LHV-good loads TR (ltr 0x20) before sti; its gates use no IST",
        )
    tables = ev.tables
    if tables is None or tables.mode != "ia32e" or tables.idt is None:
        return None
    steps = list(chain.steps)
    for step in steps:
        if not step.delivered:
            continue  # folded: never went through its gate
        gate = gate_at(tables, step.vector)
        if gate is None or not gate.present:
            continue
        ist = gate.decoded.values.get("ist", 0)
        if not ist:
            continue
        found = _ist_problem(tables, ist, ev)
        if found is None:
            continue
        problem, check, field = found
        nxt = next_step(chain, step)
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
        evidence += escalation(chain, nxt) if nxt is not None else []
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
            check=check,
            fix_fields=(field,),
        )
    return None

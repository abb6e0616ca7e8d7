"""``ring3-int-gate-dpl``: ``int n`` from an outer ring through a gate of lower DPL.

Intel SDM Vol. 3A §6.12.1.1 (gate DPL is checked for software interrupts only); Vol. 2A
INT n pseudo-code (#GP(vector*8 + 2)).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._common import gate_at, idt_field, where
from lhvdbg.diagnose.rules._model import cause_for, model_applies
from lhvdbg.diagnose.rules._registry import Cause, rule


def _fix(failure: Failure, ev: Evidence) -> str:
    vector = failure.delivery.event.vector if failure.delivery is not None else 0
    return (
        f"Give IDT[{vector:#04x}] DPL 3 (interrupt gate type byte 0xEE) if user code may "
        "call it; keep DPL 0 for the others."
    )


@rule(
    "ring3-int-gate-dpl",
    order=60,
    sdm="Vol. 3A §6.12.1.1; Vol. 2A INT n",
    fires_on=("gate-dpl",),
    cites="the gate's DPL",
)
def ring3_int_gate_dpl(chain: Chain, ev: Evidence) -> Cause | None:
    """``int N`` from ring 3 through a gate whose DPL is below the CPL: #GP(N*8+2)."""
    if model_applies(chain, ev):
        return cause_for(
            chain,
            ev,
            "ring3-int-gate-dpl",
            ("gate-dpl",),
            fix=_fix,
            reference="Pebbles installs its system-call gates with DPL 3",
        )
    for i, step in enumerate(chain.steps):
        nxt = chain.steps[i + 1] if i + 1 < len(chain.steps) else None
        if step.source != "software" or step.event.cpl == 0 or nxt is None:
            continue
        if nxt.vector != 13 or nxt.error is None or nxt.error.table != "IDT":
            continue
        if nxt.error.index != step.vector:
            continue
        gate = gate_at(ev.tables, step.vector)
        dpl = gate.decoded.values["dpl"] if gate is not None else None
        evidence = [
            f"software int {step.vector:#04x} at CPL {step.event.cpl} ({where(step)})",
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
            check="gate-dpl",
            fix_fields=(idt_field(step.vector, "dpl"),),
        )
    return None

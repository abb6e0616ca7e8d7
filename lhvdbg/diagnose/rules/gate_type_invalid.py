"""``gate-type-invalid``: the vector's gate has a type the CPU cannot deliver through.

Intel SDM Vol. 3A §6.11 (IDT descriptors: task, interrupt, trap gates), §6.14.1 (IA-32e:
only 64-bit interrupt 0xE and trap 0xF gates), Table 3-2; Vol. 2A INT n: #GP(IDT code).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for, view_mode
from lhvdbg.diagnose.rules._registry import Cause, rule


def _fix(failure: Failure, ev: Evidence) -> str:
    vector = failure.delivery.event.vector if failure.delivery is not None else 0
    wanted = (
        "a 64-bit interrupt gate (type 0xE; 0xF for a trap gate)"
        if view_mode(failure) == "ia32e"
        else "a 32-bit interrupt gate (type 0xE; 0xF for a trap gate, 0x5 for a task gate)"
    )
    return f"Write IDT[{vector:#04x}] as {wanted}, S=0, P=1."


@rule(
    "gate-type-invalid",
    order=86,
    sdm="Vol. 3A §6.11, §6.14.1, Table 3-2; Vol. 2A INT n",
    fires_on=("gate-type",),
    cites="the gate's type and S bits, the #GP with the IDT error code",
)
def gate_type_invalid(chain: Chain, ev: Evidence) -> Cause | None:
    """A delivered vector's gate has a type not valid in the CPU's mode (a call gate, a
    16-bit or task gate in IA-32e mode, a reserved type): #GP with the IDT error code."""
    return cause_for(
        chain,
        ev,
        "gate-type-invalid",
        ("gate-type",),
        fix=_fix,
        reference="LHV-good's gates are all interrupt gates (type 0xE)",
    )

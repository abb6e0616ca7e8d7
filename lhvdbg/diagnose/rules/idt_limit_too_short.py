"""``idt-limit-too-short``: the vector's gate lies beyond IDTR.limit.

Intel SDM Vol. 3A §6.10 (IDTR: the limit is the last valid byte), §6.14.1 (16-byte gates in
IA-32e mode); Vol. 2A INT n: a gate beyond the limit raises #GP(vector·8 + 2 + EXT).
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for, gate_size
from lhvdbg.diagnose.rules._registry import Cause, rule


def _fix(failure: Failure, ev: Evidence) -> str:
    size = gate_size(failure)
    vector = failure.delivery.event.vector if failure.delivery is not None else 0
    limit = failure.check.fields.get("idtr.limit", 0)
    return (
        f"Load the IDT with a limit that covers vector {vector:#04x}: lidt with limit "
        f"≥ {(vector + 1) * size - 1:#x} (all 256 gates: {256 * size - 1:#x}; it is "
        f"{limit:#x} now). The limit is the table's size in bytes minus one."
    )


@rule(
    "idt-limit-too-short",
    order=85,
    sdm="Vol. 3A §6.10, §6.14.1; Vol. 2A INT n",
    fires_on=("idt-limit",),
    cites="IDTR.limit, the vector's gate offset, the #GP with the IDT error code",
)
def idt_limit_too_short(chain: Chain, ev: Evidence) -> Cause | None:
    """The gate of a delivered vector lies beyond IDTR.limit: the CPU raises #GP with the
    IDT error code before it even reads the gate (the gate may well be there)."""
    return cause_for(
        chain,
        ev,
        "idt-limit-too-short",
        ("idt-limit",),
        fix=_fix,
        reference="LHV-good loads its IDT with limit 256·gate size − 1",
    )

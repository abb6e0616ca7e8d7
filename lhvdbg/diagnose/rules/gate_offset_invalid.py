"""``gate-offset-invalid``: the gate's handler offset cannot be executed.

Intel SDM Vol. 2A INT n: a non-canonical target (IA-32e) or one beyond the code segment's
limit raises #GP(EXT); Vol. 3A §6.14.1.
"""

from __future__ import annotations

from lhvdbg.diagnose.chain import Chain
from lhvdbg.diagnose.evidence import Evidence
from lhvdbg.diagnose.explain import Failure
from lhvdbg.diagnose.rules._model import cause_for, view_mode
from lhvdbg.diagnose.rules._registry import Cause, rule


def _fix(failure: Failure, ev: Evidence) -> str:
    vector = failure.delivery.event.vector if failure.delivery is not None else 0
    where = "a canonical address" if view_mode(failure) == "ia32e" else "inside CS's limit"
    return (
        f"Write the handler's address into IDT[{vector:#04x}].offset (all of it: the "
        f"offset is split over the gate) — {where}."
    )


@rule(
    "gate-offset-invalid",
    order=88,
    sdm="Vol. 3A §6.14.1; Vol. 2A INT n",
    fires_on=("target-offset",),
    cites="the gate's offset, CS's limit",
)
def gate_offset_invalid(chain: Chain, ev: Evidence) -> Cause | None:
    """A delivered vector's gate points at a non-canonical handler (IA-32e) or beyond the
    code segment's limit (protected mode): #GP(EXT)."""
    return cause_for(chain, ev, "gate-offset-invalid", ("target-offset",), fix=_fix)
